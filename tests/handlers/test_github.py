"""The GitHub handler verifies signatures, parses both content types and derives keys."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from handlers import github
from handlers.base import Rejection
from tests.helpers import GITHUB_SECRET, github_request, sample, sign


def test_valid_signature_gives_a_delivery_with_keys() -> None:
    """A correctly signed push is parsed into a delivery keyed by its repository."""
    headers, body = github_request("push", "default-branch", guid="g-1")
    delivery = github.from_http(headers, body, secret=GITHUB_SECRET)
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
        github.from_http(headers, body, secret=GITHUB_SECRET)
    assert caught.value.status == 401
    assert reason in caught.value.reason


def test_header_names_are_case_insensitive() -> None:
    """Lower-case header names (as some proxies send them) are accepted."""
    headers, body = github_request("ping", "app-hook")
    lowered = {k.lower(): v for k, v in headers.items()}
    assert github.from_http(lowered, body, secret=GITHUB_SECRET).event == "ping"


def test_form_encoded_payload_is_accepted() -> None:
    """application/x-www-form-urlencoded bodies carry the JSON in `payload=`."""
    _, raw = sample("pull_request", "opened")
    body = b"payload=" + quote(raw.decode()).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-GitHub-Event":
               "pull_request", "X-GitHub-Delivery": "g-form", "X-Hub-Signature-256": sign(body)}
    delivery = github.from_http(headers, body, secret=GITHUB_SECRET)
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
        github.from_http(headers, body, secret=GITHUB_SECRET)
    assert caught.value.status == status
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("event", "case", "keys"),
    [
        ("push", "default-branch", ("repo:octo-org/infra", "manifests:octo-org/infra")),
        ("pull_request", "opened", ("pull:octo-org/infra#12", "plan:octo-org/infra#12")),
        ("pull_request", "old-shape", ("pull:octo-org/infra#3",)),
        ("check_suite", "completed", ("pull:octo-org/infra#12",)),
        ("issue_comment", "claude-command", ("issue:octo-org/infra#11",)),
        ("installation", "created", ("installation:51234567", "manifests:octo-org/infra")),
        ("ping", "app-hook", ()),
        ("star", "created", ()),
    ],
)
def test_keys_derived_from_real_shapes(event: str, case: str, keys: tuple[str, ...]) -> None:
    """Each sample produces the keys of the objects it is a hint about (none: ignored)."""
    headers, body = github_request(event, case)
    assert github.from_http(headers, body, secret=GITHUB_SECRET).keys == keys


def test_missing_and_unexpected_fields_are_tolerated() -> None:
    """Odd shapes derive no key instead of raising; extra fields are ignored."""
    assert github.derive_keys("pull_request", {"repository": {"full_name": "a/b"},
                                               "pull_request": {"number": "7"}}) == ()
    assert github.derive_keys("check_run", {"repository": {"full_name": "a/b"},
                                            "check_run": {"pull_requests": None}}) == ()
    assert github.derive_keys("push", {"repository": "not-an-object"}) == ()
    assert github.derive_keys("brand_new_event", {"repository": {"full_name": "a/b"},
                                                  "novel": {"x": 1}}) == ()
    comment_on_pull = {"repository": {"full_name": "a/b"},
                       "issue": {"number": 5, "pull_request": {"url": "u"}}}
    assert github.derive_keys("issue_comment", comment_on_pull) == ("pull:a/b#5",)


def _push(paths: list[str], *, ref: str = "refs/heads/main", **extra: object) -> dict[str, object]:
    return {"ref": ref, "before": "a" * 40, "after": "b" * 40,
            "repository": {"full_name": "a/b", "default_branch": "main"},
            "commits": [{"id": "c1", "added": [], "removed": [], "modified": paths}], **extra}


def test_pushes_enqueue_the_manifest_source_only_when_they_may_touch_it() -> None:
    """Default branch + a path under the folder (or a push that cannot say) -> manifests key."""
    keys = github.derive_keys
    assert "manifests:a/b" in keys("push", _push(["manifests/x.yaml"]))
    assert "manifests:a/b" not in keys("push", _push(["README.md"]))
    assert "manifests:a/b" not in keys("push", _push(["manifests/x.yaml"],
                                                     ref="refs/heads/feature"))
    assert "manifests:a/b" in keys("push", _push(["deploy/m/x.yaml"]),
                                   manifests_path="deploy/m/")
    assert "manifests:a/b" in keys("push", _push(["README.md"], forced=True))
    assert "manifests:a/b" in keys("push", {**_push([]), "commits": []})  # cannot say
    assert "manifests:a/b" not in keys("push", _push(["manifests/x.yaml"], deleted=True))


def test_pull_request_updates_are_planned_and_closing_is_not() -> None:
    pull = {"repository": {"full_name": "a/b"}, "pull_request": {"number": 4}}
    assert "plan:a/b#4" in github.derive_keys("pull_request", {**pull, "action": "synchronize"})
    assert "plan:a/b#4" not in github.derive_keys("pull_request", {**pull, "action": "closed"})
    assert "plan:a/b#4" not in github.derive_keys("pull_request_review",
                                                  {**pull, "action": "submitted"})


def test_repositories_added_to_an_installation_are_enqueued() -> None:
    payload = {"action": "added", "installation": {"id": 9},
               "repositories_added": [{"id": 1, "full_name": "a/b"}, {"id": 2}]}
    assert github.derive_keys("installation_repositories", payload) == (
        "installation:9", "manifests:a/b")
