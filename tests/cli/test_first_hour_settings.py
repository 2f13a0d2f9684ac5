"""A new operator's first mistakes in the environment, through the real `p38` command: a
GitHub App private key that is neither a file nor a PEM, a P38_HOME that cannot be made, a
relative P38_HOME: one line naming the variable and what is wrong (absolute paths, never the
key), exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.github import make_key_pair
from tests.helpers import p38

NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1
PRIVATE, _PUBLIC = make_key_pair()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "GITHUB_APP_PRIVATE_KEY", "P38_API_TOKEN")}
    return {**env, "P38_HOME": str(tmp_path / "home"), "GITHUB_APP_ID": "1", **extra}


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "asynchronous generator" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_private_key_path_that_does_not_exist_is_named(tmp_path: Path, command: str) -> None:
    """A path to no file: the variable, what it should be, and the path (absolute)."""
    result = p38(command, "--port", "0", env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY="/tmp/nope.pem"))
    assert _one_line(result) == (
        "configuration error: GITHUB_APP_PRIVATE_KEY: neither a PEM private key (-----BEGIN "
        "RSA PRIVATE KEY----- ...) nor the path of an existing file (/tmp/nope.pem)")
    assert not (tmp_path / "home").exists()  # nothing started


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_value_that_is_no_key_is_refused_without_quoting_it(tmp_path: Path,
                                                             command: str) -> None:
    """A value that is neither a PEM nor a file (a mangled key, say) is never printed."""
    result = p38(command, env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY="not-a-key"))
    line = _one_line(result)
    assert line == ("configuration error: GITHUB_APP_PRIVATE_KEY: neither a PEM private key "
                    "(-----BEGIN RSA PRIVATE KEY----- ...) nor the path of an existing file")
    assert "not-a-key" not in result.stderr


def test_a_pem_that_does_not_parse_says_so_without_printing_it(tmp_path: Path) -> None:
    """A PEM cut short (one line lost in a copy): said to not parse; no part of it printed."""
    lines = PRIVATE.splitlines()
    broken = "\n".join(lines[:5] + lines[7:])
    body = lines[3]
    for value in (broken, broken.replace("\n", "\\n")):  # as pasted, and escaped
        result = p38("serve", env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY=value))
        assert _one_line(result) == (
            "configuration error: GITHUB_APP_PRIVATE_KEY: the PEM does not parse as an "
            "unencrypted private key (download a new one from the GitHub App's settings; the "
            "value is not shown)")
        assert body not in result.stderr
    key_file = tmp_path / "key.pem"
    key_file.write_text(broken)
    result = p38("up", env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY=str(key_file)))
    assert _one_line(result) == (
        f"configuration error: GITHUB_APP_PRIVATE_KEY: the PEM in {key_file} does not parse as "
        "an unencrypted private key (download a new one from the GitHub App's settings; the "
        "value is not shown)")
    assert body not in result.stderr
    key_file.write_text("hello\n")
    result = p38("up", env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY=str(key_file)))
    assert _one_line(result) == (f"configuration error: GITHUB_APP_PRIVATE_KEY: {key_file} "
                                 "does not hold a PEM private key (no -----BEGIN line)")


def test_a_good_key_inline_escaped_or_in_a_file_passes_the_settings(tmp_path: Path) -> None:
    """The three forms GitHub's key arrives in are accepted: the command goes on to the
    database (absent here: exit 3, not a configuration error)."""
    key_file = tmp_path / "app.pem"
    key_file.write_text(PRIVATE)
    for value in (PRIVATE, PRIVATE.replace("\n", "\\n"), str(key_file)):
        result = p38("status", env=_env(tmp_path, GITHUB_APP_PRIVATE_KEY=value,
                                        DATABASE_URL=NOWHERE))
        assert result.returncode == 3, result.stderr
        assert "configuration error" not in result.stderr


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_home_that_cannot_be_created_is_one_line(tmp_path: Path, command: str) -> None:
    """P38_HOME where no folder can be made (/proc refuses): named, with the reason; the same
    with P38_API_TOKEN set (then only the embedded database needs it)."""
    for extra in ({}, {"P38_API_TOKEN": "0123456789abcdef-token"}):
        result = p38(command, env=_env(tmp_path, P38_HOME="/proc/nope", **extra))
        assert _one_line(result) == ("configuration error: P38_HOME: cannot create "
                                     "/proc/nope: No such file or directory")


def test_a_home_under_a_file_is_refused_by_every_command(tmp_path: Path) -> None:
    """A P38_HOME that is a file, or under one, is a configuration error of any command."""
    (tmp_path / "notes").write_text("x")
    for home, why in ((tmp_path / "notes", f"{tmp_path / 'notes'} exists and is not a "
                                           "directory"),
                      (tmp_path / "notes" / "p38", f"{tmp_path / 'notes' / 'p38'} cannot be "
                                                   f"created: {tmp_path / 'notes'} is not a "
                                                   "directory")):
        for command in ("status", "up"):
            result = p38(command, env=_env(tmp_path, P38_HOME=str(home)))
            assert _one_line(result) == f"configuration error: P38_HOME: {why}"


def test_a_relative_home_is_shown_absolute(tmp_path: Path) -> None:
    """`P38_HOME=.p38` run from another folder names the folder it actually means, so an
    operator sees it is not the database they started elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(tmp_path, P38_HOME=".p38")
    for args, code in ((("status",), 3), (("db-stop",), 0)):
        result = subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env,
                                cwd=elsewhere, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == code, result.stderr
        assert f"{elsewhere / '.p38' / 'pgdata'}" in result.stdout + result.stderr
        assert " .p38/pgdata" not in result.stdout + result.stderr
    assert not (elsewhere / ".p38").exists()  # a look creates nothing
