"""What the agents', runs', tasks' pages show of a payload: the same redaction as the
deliveries' (controller/web/pages/redact.py): secret-looking keys' values and token-looking
strings at any depth, the controller's own secrets wherever they appear, the rest as is."""

from __future__ import annotations

from typing import Any

import pytest

from controller.web.pages.reading import pretty, redacted, scrub
from controller.web.pages.redact import REDACTED


@pytest.mark.parametrize(("given", "shown"), [
    ({"token": "t-1", "Password": "p", "apiKey": "k", "api_key": "k", "X-Hub-Signature-256": "s",
      "Authorization": "Bearer x", "cookie": "c", "client_secret": "s", "key": "k"},
     {"token": REDACTED, "Password": REDACTED, "apiKey": REDACTED, "api_key": REDACTED,
      "X-Hub-Signature-256": REDACTED, "Authorization": REDACTED, "cookie": REDACTED,
      "client_secret": REDACTED, "key": REDACTED}),
    # One rule for every page (redact.py), erring on hiding: a word ending in "key" is hidden
    # ("monkey" too), an empty secret as well; null carries nothing and stays.
    ({"monkey": "banana", "keys": ["a"], "n": 1, "token": None, "secret": "", "name": "ok"},
     {"monkey": REDACTED, "keys": REDACTED, "n": 1, "token": None, "secret": REDACTED,
      "name": "ok"}),
    ({"a": [{"b": {"password": "deep"}}, "Bearer abcdefgh12345", "ghp_" + "x" * 36]},
     {"a": [{"b": {"password": REDACTED}}, REDACTED, REDACTED]}),
    ({"note": "a token is needed", "sk": "sk-ant-" + "y" * 20}, {"note": "a token is needed",
                                                                  "sk": REDACTED}),
])
def test_secret_looking_values_are_redacted_at_any_depth(given: Any, shown: Any) -> None:
    assert redacted(given) == shown


def test_the_controllers_own_secrets_are_scrubbed_wherever_they_appear() -> None:
    assert scrub("it printed hush-123456 twice: hush-123456", ["hush-123456"]) == \
        f"it printed {REDACTED} twice: {REDACTED}"
    assert pretty({"out": "hush-123456", "n": 1}, ["hush-123456"]) == \
        f'{{\n  "out": "{REDACTED}",\n  "n": 1\n}}'
    assert pretty(None) is None and scrub(None, ["x"]) is None
