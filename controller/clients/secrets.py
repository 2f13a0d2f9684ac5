"""Secrets: the environment for local use, Google Secret Manager in production.

With `GCP_PROJECT_ID` set, the secrets named in `SECRET_MANAGER_NAMES` are fetched at start
(google-cloud-secret-manager, `latest` version) and held in memory only; `refresh_forever`
re-reads them on a TTL. A secret missing there falls back to the environment. Every value
loaded is handed to the log redactor. Nothing is written to disk or logged.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import SecretStr

from controller.config import Settings

log = structlog.get_logger("p38.secrets")

# Environment variable -> secret id in Secret Manager (the names the seed project uses).
SECRET_MANAGER_NAMES: dict[str, str] = {
    "ANTHROPIC_API_KEY": "ANTHROPIC-API",
    "N8N_API_KEY": "N8N-API",
    "RAILWAY_TOKEN": "RAILWAY-API",
    "TELEGRAM_BOT_TOKEN": "TELEGRAM-BOT-TOKEN",
    "GITHUB_APP_PRIVATE_KEY": "github-app-private-key",
}


class SecretManagerClient(Protocol):
    """The part of google.cloud.secretmanager.SecretManagerServiceAsyncClient used here."""

    async def access_secret_version(self, *, request: Mapping[str, str]) -> Any: ...


class _Threaded:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def access_secret_version(self, *, request: Mapping[str, str]) -> Any:
        return await asyncio.to_thread(self._client.access_secret_version, request=request)


class SecretsUnavailable(Exception):
    """Secret Manager could not be read at start."""


class Secrets:
    """The secret values in force, by environment variable name. In memory only."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 on_change: Callable[[list[str]], None] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._values = {name: env[name] for name in SECRET_MANAGER_NAMES if env.get(name)}
        self._on_change = on_change
        self._notify()

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def names(self) -> list[str]:
        return sorted(self._values)

    def update(self, values: Mapping[str, str]) -> None:
        self._values.update({k: v for k, v in values.items() if v})
        self._notify()

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change(list(self._values.values()))


class GoogleSecretManager:
    """Reads the mapped secrets' latest versions from one project."""

    def __init__(self, project_id: str, client: SecretManagerClient) -> None:
        self.project_id = project_id
        self._client = client

    @classmethod
    def connect(cls, project_id: str) -> GoogleSecretManager:
        """The real service (application default credentials), through its sync client in a
        thread, so it works from any event loop."""
        try:
            from google.cloud import secretmanager
        except ImportError as exc:
            raise SecretsUnavailable("GCP_PROJECT_ID is set but google-cloud-secret-manager is "
                                     "not installed: pip install 'project38[gcp]'") from exc
        return cls(project_id, _Threaded(secretmanager.SecretManagerServiceClient()))

    async def fetch(self) -> dict[str, str]:
        """Every mapped secret that exists, by environment variable name."""
        found: dict[str, str] = {}
        for env_name, secret_id in SECRET_MANAGER_NAMES.items():
            name = f"projects/{self.project_id}/secrets/{secret_id}/versions/latest"
            try:
                response = await self._client.access_secret_version(request={"name": name})
            except Exception as exc:  # NotFound, PermissionDenied, ...: fall back to the env
                log.warning("secret_unavailable", secret=secret_id,
                            error=type(exc).__name__)
                continue
            found[env_name] = response.payload.data.decode("utf-8")
        return found


@dataclass(frozen=True)
class SecretSource:
    """The values in force and where they are refreshed from."""

    secrets: Secrets
    manager: GoogleSecretManager


async def load(secrets: Secrets, manager: GoogleSecretManager) -> list[str]:
    """Fetch once (at start); returns the names loaded from Secret Manager."""
    values = await manager.fetch()
    secrets.update(values)
    log.info("secrets_loaded", source="secret-manager", names=sorted(values))
    return sorted(values)


async def refresh_forever(secrets: Secrets, manager: GoogleSecretManager, *,
                          ttl: float) -> None:
    """Re-read every `ttl` seconds; a failed refresh keeps the values in force."""
    while True:
        await asyncio.sleep(ttl)
        try:
            secrets.update(await manager.fetch())
        except Exception as exc:
            log.warning("secrets_refresh_failed", error=type(exc).__name__)


def with_provider_secrets(settings: Settings, secrets: Secrets) -> Settings:
    """Settings whose provider credentials are the values in force."""
    updates = {field: SecretStr(value) for env, field in _PROVIDER_FIELDS.items()
               if (value := secrets.get(env))}
    if not updates:
        return settings
    providers = settings.providers.model_copy(update=updates)
    return settings.model_copy(update={"providers": providers})


_PROVIDER_FIELDS = {"ANTHROPIC_API_KEY": "anthropic_api_key", "RAILWAY_TOKEN": "railway_token",
                    "GITHUB_APP_PRIVATE_KEY": "github_app_private_key"}


API_TOKEN_FILE = "api-token"


def api_write_token(home: Path) -> str:
    """The token writes to the API need when P38_API_TOKEN is not set: read from
    `$P38_HOME/api-token`, or made there (mode 0600, 32 random bytes) the first time."""
    path = home / API_TOKEN_FILE
    try:
        token = path.read_text("utf-8").strip()
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return api_write_token(home)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
        return token
    if len(token) < 16:
        raise ValueError(f"{path} holds no usable token (at least 16 characters); delete it "
                         "and a new one is made")
    return token
