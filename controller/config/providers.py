"""Settings of the outside world: inbound webhook secrets, outbound credentials and endpoints,
and the check of a GitHub App private key. Never quotes a secret's value in a message."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from controller.config.base import _ENV, _Group, _strong


class SecretsSettings(_Group):
    """Inbound webhook secrets; a route whose secret is missing answers 503."""

    model_config = _ENV
    github_webhook_secret: SecretStr | None = Field(None, validation_alias="GITHUB_WEBHOOK_SECRET")
    railway_webhook_secret: SecretStr | None = Field(None,
                                                     validation_alias="RAILWAY_WEBHOOK_SECRET")
    n8n_webhook_secret: SecretStr | None = Field(None, validation_alias="N8N_WEBHOOK_SECRET")

    @field_validator("github_webhook_secret", "railway_webhook_secret", "n8n_webhook_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        return _strong(secret)


PROVIDERS = ("github", "railway", "anthropic")


class ProviderSettings(_Group):
    """Outbound credentials and endpoints."""

    model_config = _ENV
    github_app_id: str | None = Field(None, validation_alias="GITHUB_APP_ID")
    github_app_private_key: SecretStr | None = Field(None,
                                                     validation_alias="GITHUB_APP_PRIVATE_KEY")
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL",
                                description="REST base; set for GitHub Enterprise Server.")
    railway_token: SecretStr | None = Field(None, validation_alias="RAILWAY_TOKEN")
    railway_api_url: str = Field("https://backboard.railway.app/graphql/v2",
                                 validation_alias="RAILWAY_API_URL")
    railway_token_kind: Literal["account", "team", "project"] = Field(
        "account", validation_alias="RAILWAY_TOKEN_KIND",
        description="What RAILWAY_TOKEN is: an account or team (workspace) token is sent as "
                    "`Authorization: Bearer`, a project token as `Project-Access-Token`.")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")

    @field_validator("github_app_private_key")
    @classmethod
    def _a_private_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and (problem := private_key_problem(key.get_secret_value())):
            raise ValueError(problem)
        return key
    gcp_project_id: str | None = Field(
        None, validation_alias="GCP_PROJECT_ID",
        description="When set, secrets are read from Google Secret Manager in this project.")
    secrets_ttl_seconds: float = Field(
        600.0, validation_alias="P38_SECRETS_TTL_SECONDS", gt=0,
        description="How often secrets are re-read from Secret Manager (a rotated key is used "
                    "from then on).")

    def configured(self) -> frozenset[str]:
        """The providers whose credentials are set: github, railway, anthropic."""
        found = {"github": bool(self.github_app_id and self.github_app_private_key),
                 "railway": bool(self.railway_token), "anthropic": bool(self.anthropic_api_key)}
        return frozenset(name for name, ok in found.items() if ok)

    def any_credentials(self) -> bool:
        """True when at least one provider could be written to."""
        return bool(self.configured())


PEM_MARK = "-----BEGIN"


def private_key_problem(value: str) -> str | None:
    """Why `value` is not a usable GitHub App private key (a PEM, a PEM with escaped newlines
    as environment variables often carry it, or the path of a file holding one), or None.
    The message never quotes the value, nor a file's content: either may be the key."""
    text = value.strip()
    where = "it"
    if PEM_MARK not in text:
        path = Path(text).expanduser()
        try:
            found = path.is_file()
        except (OSError, ValueError):  # a name too long, a NUL byte: not a path either
            found = False
        if not found:
            shown = f" ({path.absolute()})" if _path_like(text) else ""
            return ("neither a PEM private key (-----BEGIN RSA PRIVATE KEY----- ...) nor the "
                    f"path of an existing file{shown}")
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"cannot read {path.absolute()}: {getattr(exc, 'strerror', None) or exc}"
        where = str(path.absolute())
        if PEM_MARK not in text:
            return f"{where} does not hold a PEM private key (no -----BEGIN line)"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(text.replace("\\n", "\n").strip().encode() + b"\n", None)
    except (ValueError, TypeError, UnicodeEncodeError):  # TypeError: it needs a password
        return (f"{'the PEM' if where == 'it' else 'the PEM in ' + where} does not parse as "
                "an unencrypted private key (download a new one from the GitHub App's "
                "settings; the value is not shown)")
    return None


def _path_like(text: str) -> bool:
    """A value that reads as a file path (shown in a message), not as a mangled key (never
    shown): one short line starting like a path."""
    return text.startswith(("/", "~", "./", "../")) and len(text) <= 255 \
        and not any(c.isspace() for c in text)
