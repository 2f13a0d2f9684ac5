"""Settings: one pydantic-settings object, read from the environment, passed down explicitly.

`Settings` is a plain model of groups; each group reads its own variables. A field is read
only from its documented variable (the alias), never from its Python name, so unrelated
variables such as HOME or PORT cannot leak in (PORT is read on purpose, for Railway).
Construct groups with the variable names: `StoreSettings(DATABASE_URL=...)`.
Nothing here reads the environment after start-up; nothing imports a global settings object.
"""


from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr

from controller.config.base import LONGEST_SECONDS, SHORTEST_SECRET
from controller.config.providers import (
    PEM_MARK,
    PROVIDERS,
    ProviderSettings,
    SecretsSettings,
    private_key_problem,
)
from controller.config.serving import JOB_KINDS, IngestSettings, QueueSettings, ServerSettings
from controller.config.storage import (
    LOG_LEVELS,
    LogSettings,
    ManifestSettings,
    PolicySettings,
    RetentionSettings,
    StoreSettings,
)

__all__ = ["JOB_KINDS", "LOG_LEVELS", "LONGEST_SECONDS", "PEM_MARK", "PROVIDERS", "SHORTEST_SECRET",
           "IngestSettings", "LogSettings", "ManifestSettings", "PolicySettings",
           "ProviderSettings", "QueueSettings", "RetentionSettings", "SecretsSettings",
           "ServerSettings", "Settings", "StoreSettings", "private_key_problem"]


class Settings(BaseModel):
    """Everything the controller needs to run, grouped by concern."""

    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    retention: RetentionSettings = Field(default_factory=lambda: RetentionSettings())
    policy: PolicySettings = Field(default_factory=lambda: PolicySettings())
    server: ServerSettings = Field(default_factory=lambda: ServerSettings())
    queue: QueueSettings = Field(default_factory=lambda: QueueSettings())
    ingest: IngestSettings = Field(default_factory=lambda: IngestSettings())
    secrets: SecretsSettings = Field(default_factory=lambda: SecretsSettings())
    providers: ProviderSettings = Field(default_factory=lambda: ProviderSettings())
    manifests: ManifestSettings = Field(default_factory=lambda: ManifestSettings())
    log: LogSettings = Field(default_factory=lambda: LogSettings())

    def dry_run_providers(self) -> list[str]:
        """The providers whose actions are recorded as dry-run, not executed."""
        if self.policy.dry_run:
            return list(PROVIDERS)
        return [p for p in PROVIDERS if p not in self.providers.configured()]

    def secret_values(self) -> list[str]:
        """Every configured secret value, for the log redactor."""
        found: list[str] = []
        for group in (self.server, self.secrets, self.providers):
            for name in type(group).model_fields:
                value = getattr(group, name)
                if isinstance(value, SecretStr) and value.get_secret_value():
                    found.append(value.get_secret_value())
        if password := _dsn_password(self.store.database_url):
            found.append(password)
        found.extend(value for name, value in os.environ.items()  # tools' targets' tokens
                     if name.startswith(("P38_NOTIFY_", "P38_N8N_")) and name.endswith("_TOKEN")
                     and value)
        return found


def _dsn_password(dsn: str | None) -> str | None:
    """The password in a DATABASE_URL (`postgresql://user:password@host/db`), decoded."""
    password = urlsplit(dsn).password if dsn else None
    return unquote(password) if password else None
