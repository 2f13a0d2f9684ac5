"""What the operator's page shows of a stored delivery: secrets redacted at any depth, token-
looking values scrubbed wherever they are, headers carrying credentials withheld."""

from __future__ import annotations

import json

import pytest

from controller.web.pages.redact import (
    REDACTED,
    SHOWN_BYTES,
    pretty_payload,
    redact,
    safe_headers,
    secret_name,
)


@pytest.mark.parametrize(("name", "secret"), [
    ("token", True), ("Token", True), ("access_token", True), ("accessToken", True),
    ("APIKey", True), ("api_key", True), ("apikey", True), ("private_key", True),
    ("client_secret", True), ("webhookSecret", True), ("PASSWORD", True), ("passwd", True),
    ("Authorization", True), ("Proxy-Authorization", True), ("Cookie", True),
    ("Set-Cookie", True), ("X-Hub-Signature-256", True), ("X-P38-Token", True),
    ("X-Api-Key", True), ("credentials", True), ("key", True),
    ("title", False), ("body", False), ("author", False), ("keyword", False),
    ("X-GitHub-Event", False), ("User-Agent", False), ("Content-Type", False),
    ("sha", False), ("head_ref", False), ("description", False), ("monkeys_seen", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    """A name is secret-looking by one of its words, whatever its case and punctuation."""
    assert secret_name(name) is secret


def test_values_of_secret_keys_are_redacted_at_any_depth() -> None:
    """Nested mappings and lists are walked; null and booleans under such keys stay."""
    given = {
        "title": "Add an agent", "token": "abc123",
        "hook": {"config": {"url": "https://example.test/h", "secret": "s3cr3t-value"}},
        "installations": [{"id": 1, "access_tokens_url": "https://x.test", "apiKey": 42}],
        "credentials": {"user": "u", "pass": "p"}, "password": None, "private": True,
    }
    assert redact(given) == {
        "title": "Add an agent", "token": REDACTED,
        "hook": {"config": {"url": "https://example.test/h", "secret": REDACTED}},
        "installations": [{"id": 1, "access_tokens_url": REDACTED, "apiKey": REDACTED}],
        "credentials": REDACTED, "password": None, "private": True,
    }


@pytest.mark.parametrize("leaked", [
    "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "sk-ant-api03-abcdefghijklmnop",
    "xoxb-123456789012-abcdefghij",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_token_looking_values_are_scrubbed_wherever_they_are(leaked: str) -> None:
    """A token pasted into ordinary text (a comment's body) is replaced, the text kept."""
    shown = redact({"comment": {"body": f"here it is: {leaked} oops"}})
    assert shown == {"comment": {"body": f"here it is: {REDACTED} oops"}}


def test_credentials_in_urls_and_bearer_headers_are_scrubbed() -> None:
    shown = redact(["https://bot:hunter2pass@git.example.test/o/r.git",
                    "Authorization: Bearer abcdefgh12345678", "-----BEGIN RSA PRIVATE KEY-----"
                    "\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"])
    assert shown == [f"https://{REDACTED}@git.example.test/o/r.git",
                     f"Authorization: {REDACTED}", REDACTED]


def test_pretty_payload_indents_redacts_and_cuts() -> None:
    text, cut = pretty_payload('{"a": {"token": "abc"}, "b": [1, 2]}')
    assert not cut and json.loads(text) == {"a": {"token": REDACTED}, "b": [1, 2]}
    assert text.startswith('{\n  "a": {\n')
    raw, cut = pretty_payload("not json: ghs_16C7e42F292c6912E7710c838347Ae178B4a")
    assert not cut and raw == f"not json: {REDACTED}"
    long, cut = pretty_payload(json.dumps({"text": "x" * (SHOWN_BYTES + 10)}))
    assert cut and len(long) == SHOWN_BYTES


def test_headers_carrying_credentials_are_withheld() -> None:
    shown, withheld = safe_headers({
        "X-GitHub-Event": "push", "Authorization": "Bearer abc", "Cookie": "p38_session=x",
        "X-Hub-Signature-256": "sha256=00", "User-Agent": "GitHub-Hookshot/1"})
    assert shown == [("User-Agent", "GitHub-Hookshot/1"), ("X-GitHub-Event", "push")]
    assert withheld == 3


def test_the_controllers_own_secrets_are_scrubbed_wherever_they_appear() -> None:
    """A payload echoing a configured secret (the webhook secret, the API token) under an
    innocent key shows it redacted; values too short to find safely are left alone."""
    known = ["webhook-secret-5f2a", "abc"]
    text, _ = pretty_payload('{"echo": "sent with webhook-secret-5f2a", "word": "abc"}', known)
    assert "webhook-secret-5f2a" not in text
    assert json.loads(text) == {"echo": f"sent with {REDACTED}", "word": "abc"}
    shown, _ = safe_headers({"User-Agent": "bot webhook-secret-5f2a"}, known)
    assert shown == [("User-Agent", f"bot {REDACTED}")]
