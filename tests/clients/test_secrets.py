"""Secrets come from the environment or Secret Manager, live in memory, and never reach logs."""

from __future__ import annotations

import json

import structlog

from controller.clients.secrets import GoogleSecretManager, Secrets, load
from controller.logs import REDACTED, configure_logging
from tests.fakes.secret_manager import FakeSecretManager

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"


async def test_secret_manager_overrides_env_and_missing_ones_fall_back() -> None:
    """The seed's secret names map to our variables; absent secrets keep the env value."""
    fake = FakeSecretManager("p38-prod", {"ANTHROPIC-API": "sk-ant-from-gsm-123456",
                                          "github-app-private-key": PEM})
    secrets = Secrets({"ANTHROPIC_API_KEY": "sk-ant-from-env-000000",
                       "RAILWAY_TOKEN": "railway-env-token-99"})
    loaded = await load(secrets, GoogleSecretManager("p38-prod", fake))
    assert loaded == ["ANTHROPIC_API_KEY", "GITHUB_APP_PRIVATE_KEY"]
    assert secrets.get("ANTHROPIC_API_KEY") == "sk-ant-from-gsm-123456"
    assert secrets.get("GITHUB_APP_PRIVATE_KEY") == PEM
    assert secrets.get("RAILWAY_TOKEN") == "railway-env-token-99"
    assert "projects/p38-prod/secrets/TELEGRAM-BOT-TOKEN/versions/latest" in fake.requests


async def test_loaded_secrets_are_redacted_from_every_log_line(capsys) -> None:  # type: ignore[no-untyped-def]
    """Values fetched from Secret Manager are scrubbed from logs, wherever they appear."""
    redactor = configure_logging(fmt="json")
    try:
        secrets = Secrets({}, on_change=redactor.update)
        await load(secrets, GoogleSecretManager("p", FakeSecretManager(
            "p", {"RAILWAY-API": "rw-secret-value-42", "N8N-API": "n8n-key-value-7"})))
        structlog.get_logger("t").warning("calling railway", token="rw-secret-value-42",
                                          url="https://x/?key=n8n-key-value-7")
        lines = [json.loads(x) for x in capsys.readouterr().err.strip().splitlines()]
    finally:
        structlog.reset_defaults()
    text = json.dumps(lines)
    assert "rw-secret-value-42" not in text and "n8n-key-value-7" not in text
    assert lines[-1]["token"] == REDACTED
    assert lines[-1]["url"] == f"https://x/?key={REDACTED}"
    assert any(line.get("event") == "secrets_loaded" for line in lines)


def test_provider_settings_take_the_values_in_force() -> None:
    """Secrets loaded at start become the provider credentials (and so decide dry-run)."""
    from controller.clients.secrets import with_provider_secrets
    from controller.config import ProviderSettings, Settings

    settings = Settings(providers=ProviderSettings(ANTHROPIC_API_KEY=None, RAILWAY_TOKEN=None,
                                                   GITHUB_APP_ID=None,
                                                   GITHUB_APP_PRIVATE_KEY=None))
    assert settings.dry_run_providers() == ["github", "railway", "anthropic"]
    updated = with_provider_secrets(settings, Secrets({"RAILWAY_TOKEN": "rw-token-123456"}))
    assert updated.providers.railway_token is not None
    assert updated.providers.railway_token.get_secret_value() == "rw-token-123456"
    assert updated.dry_run_providers() == ["github", "anthropic"]
    assert "rw-token-123456" in updated.secret_values()


async def test_running_app_uses_a_rotated_github_key(aiohttp_client, store, dsn) -> None:  # type: ignore[no-untyped-def]
    """Secret Manager is re-read on the TTL; the GitHub App signs with the new key at once."""
    import jwt

    from controller.app import create_app
    from controller.clients.secrets import SecretSource, with_provider_secrets
    from controller.config import ProviderSettings
    from controller.web.keys import PROVIDERS
    from tests.fakes.github import make_key_pair
    from tests.helpers import make_settings, wait_until

    (old_private, old_public), (new_private, new_public) = make_key_pair(), make_key_pair()
    manager_fake = FakeSecretManager("p38-prod", {"github-app-private-key": old_private})
    held = Secrets({})
    manager = GoogleSecretManager("p38-prod", manager_fake)
    await load(held, manager)
    settings = make_settings(dsn).model_copy(update={"providers": ProviderSettings(
        GITHUB_APP_ID="1034567", P38_SECRETS_TTL_SECONDS=0.05)})
    settings = with_provider_secrets(settings, held)
    client = await aiohttp_client(create_app(settings, secrets=SecretSource(held, manager)))
    github = client.app[PROVIDERS]["github"].reads.client
    jwt.decode(github.app_jwt(), old_public, algorithms=["RS256"])

    manager_fake.secrets["github-app-private-key"] = new_private  # rotated in Secret Manager

    async def rotated() -> bool:
        return held.get("GITHUB_APP_PRIVATE_KEY") == new_private

    await wait_until(rotated, what="the refresh")
    assert jwt.decode(github.app_jwt(), new_public, algorithms=["RS256"])["iss"] == "1034567"
