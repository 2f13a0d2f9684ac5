"""Small things a new operator trips on, through the real `p38` command: a mistyped command,
`prune --days 0`, and console logs written to a file."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import env_for, p38, p38_running


def test_a_mistyped_command_gets_the_closest_one(tmp_path: Path) -> None:
    """`p38 stauts`: one line suggesting `status`, exit 2, no usage dump; a word close to
    nothing lists the commands."""
    env = {**os.environ, "P38_HOME": str(tmp_path)}
    typo = p38("stauts", env=env)
    assert (typo.returncode, typo.stderr.strip()) == (
        2, "p38: unknown command 'stauts'; did you mean 'status'?")
    assert p38("db-stpo", env=env).stderr.strip() == \
        "p38: unknown command 'db-stpo'; did you mean 'db-stop'?"
    nothing = p38("frobnicate", env=env)
    assert nothing.returncode == 2
    assert nothing.stderr.startswith("p38: unknown command 'frobnicate'; the commands are: up, "
                                     "serve, worker, migrate, status,")
    assert "usage:" not in typo.stderr + nothing.stderr
    known = p38("status", "--help", env=env)  # a real command is still parsed as before
    assert known.returncode == 0 and known.stdout.startswith("usage: p38 status")


def test_prune_days_zero_names_the_flag(dsn: str) -> None:
    """`--days 0` is answered about the flag given, not about P38_RETENTION_DAYS."""
    result = p38("prune", "--days", "0", env=env_for(dsn))
    assert (result.returncode, result.stdout.strip()) == (
        0, "--days 0 keeps everything: nothing pruned")
    by_variable = p38("prune", env={**env_for(dsn), "P38_RETENTION_DAYS": "0"})
    assert by_variable.stdout.strip() == \
        "retention is off (P38_RETENTION_DAYS=0): nothing pruned"


def test_console_logs_into_a_file_have_no_colour_codes(dsn: str, tmp_path: Path) -> None:
    """P38_LOG_FORMAT=console with stderr not a terminal (a file, a pipe): readable lines, no
    escape sequences, from structlog's loggers and the standard library's alike."""
    env = {**env_for(dsn), "P38_LOG_FORMAT": "console", "P38_HOME": str(tmp_path),
           "P38_MIGRATE_ON_START": "false"}
    with p38_running("serve", "--port", "0", "--workers", "0", env=env,
                     cwd=tmp_path) as process:
        assert process.stderr is not None
        seen = []
        while not any("serving" in line for line in seen):
            line = process.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
    text = "".join(seen)
    assert "\x1b[" not in text
    serving = next(line for line in seen if "serving" in line)
    assert not serving.startswith("{") and "[info" in serving  # the console format, plain
