"""The argparse types `p38`'s commands share (controller/cli/common.py) check each argument the
same way wherever it is used: a value in range is taken as it is, anything else is a usage
error (exit 2) naming the argument and what is wrong."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from controller.cli import build_parser


def parse(*argv: str) -> tuple[str, Any]:
    """("ok", namespace) or ("error", argparse's last stderr line), without a process."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return "ok", build_parser().parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2
        return "error", err.getvalue().strip().splitlines()[-1]


@pytest.mark.parametrize(("argv", "field", "value"), [
    (("get", "--interval", "0.1"), "interval", 0.1),
    (("get", "--interval", "3600"), "interval", 3600.0),
    (("status", "--watch", "0.5"), "watch", 0.5),
    (("run", "a", "--timeout", "0.001"), "timeout", 0.001),
    (("runs", "--limit", "500"), "limit", 500),
    (("logs", "4611686018427387903"), "run", 2**62 - 1),
    (("describe", "y" * 500), "what", "y" * 500),
    (("replay", "z" * 1000), "delivery", "z" * 1000),
    (("replay", ""), "delivery", ""),  # blank is this command's own "not found"
    (("approve", "k", "--by", "Ada"), "by", "Ada"),
    (("prune", "--days", "0"), "days", 0),
])
def test_a_value_in_range_is_taken(argv: tuple[str, ...], field: str, value: object) -> None:
    """Each bound is inclusive where a range is named, and the value arrives typed."""
    outcome, namespace = parse(*argv)
    assert outcome == "ok" and getattr(namespace, field) == value


@pytest.mark.parametrize(("argv", "message"), [
    (("get", "--interval", "0.09"), "argument --interval: must be between 0.1 and 3600 seconds"),
    (("get", "--interval", "nan"), "argument --interval: must be between 0.1 and 3600 seconds"),
    (("status", "--watch", "3601"), "argument --watch: must be between 0.5 and 3600 seconds"),
    (("run", "a", "--timeout", "0"), "argument --timeout: must be more than 0 seconds"),
    (("run", "a", "--timeout", "inf"), "argument --timeout: must be more than 0 seconds"),
    (("run", "a", "--timeout", "x" * 60),
     f"argument --timeout: {'x' * 40!r} is not a number of seconds"),
    (("get", "--interval", "soon"), "argument --interval: 'soon' is not a number of seconds"),
    (("runs", "--limit", "501"), "argument --limit: at most 500"),
    (("tasks", "0"), "argument id: '0' is not a positive integer"),
    (("describe", "y" * 501), "argument what: longer than 500 characters"),
    (("replay", "z" * 1001), "argument delivery: longer than 1000 characters"),
    (("runs", "cancel", "3", "--by", " "), "argument --by: must not be blank"),
    (("approve", "k", "--by", " "), "argument --by: an empty name"),
    (("get", "agent", "\udcff"), "argument name: not valid UTF-8"),
    (("run", "a", "--input", "\udcff"), "argument --input: not valid UTF-8"),
    (("replay", "a\x00b"), "argument delivery: contains a NUL character"),
    (("up", "--port", "65536"), "argument --port: 65536 is not between 0 and 65535"),
    (("up", "--unix", ""), "argument --unix: an empty path"),
])
def test_a_value_out_of_range_is_a_usage_error(argv: tuple[str, ...], message: str) -> None:
    """The message names the argument and says what is wrong with the value."""
    assert parse(*argv) == ("error", f"p38 {argv[0]}: error: {message}")
