"""The GitHub handler verifies signatures, parses both content types, and asks the
reconcilers' watches (the route it is given) for the keys."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from handlers import github
from handlers.base import Rejection
from tests.helpers import GITHUB_SECRET, ROUTE, github_request, sample, sign


def test_valid_signature_gives_a_delivery_with_keys() -> None:
    """A correctly signed push is parsed into a delivery keyed by its repository."""
    headers, body = github_request("push", "default-branch", guid="g-1")
    delivery = github.from_http(headers, body, secret=GITHUB_SECRET, route=ROUTE)
    assert delivery.source == "github"
    assert delivery.guid == "g-1"
    assert delivery.event == "push"
    assert delivery.hook == "512345678"
    assert delivery.keys == ("repo:octo-org/infra", "manifests:octo-org/infra")
    assert json.loads(delivery.payload_json)["after"].startswith("0d1a26e6")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({**h, "X-Hub-Signature-256": sign(b, "wrong-secret")}, b),
         "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, b),
         "missing X-Hub-Signature-256"),
        (lambda h, b: ({**{k: v for k, v in h.items() if k != "X-Hub-Signature-256"},
                        "X-Hub-Signature": "sha1=" + "0" * 40}, b), "sha1"),
        (lambda h, b: ({**h, "X-Hub-Signature-256": "md5=abc"}, b), "sha256=<hex"),
        (lambda h, b: ({**h, "X-Hub-Signature-256": "sha256="}, b), "sha256=<hex"),
    ],
    ids=["tampered-body", "wrong-secret", "missing-header", "sha1-only", "bad-scheme", "empty"],
)
def test_signature_matrix_rejects_with_401(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    """Anything but a valid X-Hub-Signature-256 over the exact body is a 401 with a reason."""
    headers, body = mutate(*github_request("push", "default-branch"))
    with pytest.raises(Rejection) as caught:
        github.from_http(headers, body, secret=GITHUB_SECRET, route=ROUTE)
    assert caught.value.status == 401
    assert reason in caught.value.reason


def test_header_names_are_case_insensitive() -> None:
    """Lower-case header names (as some proxies send them) are accepted."""
    headers, body = github_request("ping", "app-hook")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert github.from_http(lowered, body, secret=GITHUB_SECRET, route=ROUTE).event == "ping"


def test_form_encoded_payload_is_accepted() -> None:
    """application/x-www-form-urlencoded bodies carry the JSON in `payload=`."""
    _, raw = sample("pull_request", "opened")
    body = b"payload=" + quote(raw.decode()).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event":
               "pull_request", "X-GitHub-Delivery": "g-form", "X-Hub-Signature-256": sign(body)}
    delivery = github.from_http(headers, body, secret=GITHUB_SECRET, route=ROUTE)
    assert delivery.keys == ("pull:octo-org/infra#12", "plan:octo-org/infra#12")
    assert json.loads(delivery.payload_json) == json.loads(raw)


@pytest.mark.parametrize(
    ("headers_update", "body", "status", "reason"),
    [
        ({"Content-Type": "text/plain"}, None, 415, "unsupported Content-Type"),
        ({"Content-Type": ""}, None, 415, "Content-Type is missing"),
        ({"X-GitHub-Event": ""}, None, 400, "X-GitHub-Event"),
        ({"X-GitHub-Delivery": ""}, None, 400, "X-GitHub-Delivery"),
        ({}, b"{not json", 400, "not valid JSON"),
        ({}, b"[1, 2]", 400, "must be a JSON object"),
        ({}, b'{"a": "nul \x00 here"}', 400, "not valid JSON"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"other=1", 400, "payload"),
    ],
    ids=["text-plain", "no-content-type", "no-event", "no-guid", "bad-json", "not-object",
         "raw-nul", "form-without-payload"],
)
def test_bad_input_is_rejected_with_a_reason(headers_update, body, status, reason) -> None:  # type: ignore[no-untyped-def]
    """Malformed requests are refused with the right status and a readable reason."""
    headers, sample_body = github_request("push", "default-branch")
    body = sample_body if body is None else body
    headers = {**headers, **headers_update, "X-Hub-Signature-256": sign(body)}
    headers = {k: v for k, v in headers.items() if v != ""}
    with pytest.raises(Rejection) as caught:
        github.from_http(headers, body, secret=GITHUB_SECRET, route=ROUTE)
    assert caught.value.status == status
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("event", "case", "keys"),
    [
        ("push", "default-branch", ("repo:octo-org/infra", "manifests:octo-org/infra")),
        ("pull_request", "opened", ("pull:octo-org/infra#12", "plan:octo-org/infra#12")),
        ("pull_request", "old-shape", ("pull:octo-org/infra#3",)),
        ("check_suite", "completed", ("pull:octo-org/infra#12",)),
        ("issue_comment", "claude-command", ("issue:octo-org/infra#11",
                                             "command:octo-org/infra#11@2487654321")),
        ("installation", "created", ("installation:51234567", "manifests:octo-org/infra")),
        ("ping", "app-hook", ()),
        ("star", "created", ()),
    ],
)
def test_keys_derived_from_real_shapes(event: str, case: str, keys: tuple[str, ...]) -> None:
    """Each sample produces the keys of the objects it is a hint about (none: ignored)."""
    headers, body = github_request(event, case)
    assert github.from_http(headers, body, secret=GITHUB_SECRET, route=ROUTE).keys == keys
