"""Secrets never reach a log line: the redacting processor scrubs every configured value."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from controller.config import SecretsSettings, Settings
from controller.logs import REDACTED, SecretRedactor, configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_configured_secrets_are_redacted_from_json_lines(capsys) -> None:  # type: ignore[no-untyped-def]
    """A secret in the event, a field, or nested data is replaced before rendering."""
    settings = Settings(secrets=SecretsSettings(GITHUB_WEBHOOK_SECRET="hunter2-webhook-secret"))
    redactor = configure_logging(fmt="json", level="info")
    redactor.update(settings.secret_values())
    log = structlog.get_logger("test")
    log.info("connecting with hunter2-webhook-secret",
             header="Bearer hunter2-webhook-secret", nested={"list": ["x hunter2-webhook-secret"]})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "hunter2" not in line
    record = json.loads(line)
    assert record["event"] == f"connecting with {REDACTED}"
    assert record["header"] == f"Bearer {REDACTED}"
    assert record["nested"] == {"list": [f"x {REDACTED}"]}


def test_redactor_prefers_longest_and_ignores_tiny_values() -> None:
    """Overlapping secrets are replaced whole; values under 6 characters are not scrubbed."""
    redactor = SecretRedactor(["abcdefgh", "abcdefghijkl", "ab"])
    out = redactor(None, "info", {"event": "x abcdefghijkl y abcdefgh ab"})
    assert out["event"] == f"x {REDACTED} y {REDACTED} ab"
