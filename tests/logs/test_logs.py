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
    import logging

    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, httpx_level = list(root.handlers), root.level, httpx.level
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level
    httpx.setLevel(httpx_level)


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


def test_standard_library_loggers_are_redacted_too(capsys) -> None:  # type: ignore[no-untyped-def]
    """aiohttp's own errors (a request line carrying ?token=, an exception's text) go through
    the same redactor: no log path carries a secret around it."""
    import logging

    redactor = configure_logging(fmt="json", level="info")
    redactor.update(["rw-secret-123456"])
    try:
        raise ValueError("bad header in GET /webhooks/railway?token=rw-secret-123456")
    except ValueError:
        logging.getLogger("aiohttp.server").exception(
            "Error handling request GET /webhooks/railway?token=rw-secret-123456 HTTP/1.1")
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "rw-secret-123456" not in "\n".join(lines)
    record = json.loads(lines[-1])
    assert record["logger"] == "aiohttp.server" and record["level"] == "error"
    assert record["event"] == f"Error handling request GET /webhooks/railway?token={REDACTED} " \
        "HTTP/1.1"
    assert f"token={REDACTED}" in record["exception"]


def test_a_percent_encoded_secret_is_redacted() -> None:
    """`?token=s3cret%2Drw` is accepted by the route as the secret, so it is one in a log line
    too: such a value is logged decoded, then redacted; other encoded text stays as it came."""
    redactor = SecretRedactor(["rw-secret-123456"])
    out = redactor(None, "info", {"event": "/webhooks/railway?token=rw%2Dsecret%2D123456&x=1",
                                  "other": "/api/x?q=a%20b"})
    assert out["event"] == f"/webhooks/railway?token={REDACTED}&x=1"
    assert out["other"] == "/api/x?q=a%20b"


def test_what_a_client_did_wrong_is_an_info_line_without_traceback(capsys) -> None:  # type: ignore[no-untyped-def]
    """aiohttp logs a body that did not decode, or a connection reset, with a traceback at
    error level when it surfaces after the answer; it is the client's doing: one info line."""
    import logging

    from aiohttp.web import RequestPayloadError

    configure_logging(fmt="json", level="info")
    for exc in (RequestPayloadError("Can not decode content-encoding: gzip"),
                ConnectionResetError("Connection lost")):
        try:
            raise exc
        except Exception:
            logging.getLogger("aiohttp.server").exception("Unhandled exception")
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [(r["level"], r["event"]) for r in records] == [
        ("info", "a client's request did not complete: RequestPayloadError"),
        ("info", "a client's request did not complete: ConnectionResetError")]
    assert not any("exception" in r for r in records)


def test_the_database_password_is_a_secret_too() -> None:
    """DATABASE_URL's password joins the values the redactor removes (decoded: a driver's
    error quotes it so)."""
    from controller.config import StoreSettings

    dsn = "postgresql://p38:s3cret%2Fpw@db.internal:5432/p38"
    assert "s3cret/pw" in Settings(store=StoreSettings(DATABASE_URL=dsn)).secret_values()


def test_secret_manager_values_join_the_settings_secrets() -> None:
    """Secret Manager's refresh replaces its own values, never the settings' (the webhook
    secrets, the API token): both stay redacted."""
    from controller.clients.secrets import Secrets

    redactor = SecretRedactor(["gh-webhook-secret-1"])
    holder = Secrets(on_change=lambda values: redactor.update(values, group="secret-manager"))
    holder.update({"ANTHROPIC_API_KEY": "sk-ant-secret-1"})
    holder.update({"ANTHROPIC_API_KEY": "sk-ant-secret-2"})  # rotated
    out = redactor(None, "info", {"event": "gh-webhook-secret-1 and sk-ant-secret-2"})
    assert out["event"] == f"{REDACTED} and {REDACTED}"


def test_a_flood_of_accept_errors_is_one_warning_per_period(capsys) -> None:  # type: ignore[no-untyped-def]
    """asyncio logs each failed accept() (no file descriptor left) with a traceback: under a
    flood, that is hundreds of lines a second. One warning line says how many instead."""
    import logging

    configure_logging(fmt="json", level="info")
    for _ in range(500):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logging.getLogger("asyncio").exception("socket.accept() out of system resource")
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert [(r["level"], r["event"]) for r in records] == [
        ("warning", "accept() failed 1 time(s): out of file descriptors")]


def test_httpx_request_lines_are_kept_out_at_info(capsys) -> None:  # type: ignore[no-untyped-def]
    """httpx's "HTTP Request: ..." line per call is not in the log at info (the actions record
    what was sent), and comes back at debug."""
    import logging

    configure_logging(fmt="json", level="info")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/x \"HTTP/1.1 200 OK\"")
    logging.getLogger("httpx").warning("a warning still shows")
    lines = capsys.readouterr().err
    assert "HTTP Request" not in lines and "a warning still shows" in lines
    configure_logging(fmt="json", level="debug")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/y")
    assert "HTTP Request: GET http://127.0.0.1/y" in capsys.readouterr().err
