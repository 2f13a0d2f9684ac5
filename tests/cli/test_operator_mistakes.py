"""Operator mistakes get one clear line and an exit code, through the real `p38` command: bad
settings, an unreachable database, a busy port; and what a start says about itself."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.helpers import env_for, p38, p38_running, terminate
from tests.manifest_samples import MANIFESTS, sample_manifests

NOWHERE = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [("P38_WORKERS", "0", "greater than or equal to 1"),
     ("P38_WORKERS", "65", "less than or equal to 64"),
     ("P38_PORT", "70000", "less than or equal to 65535"),
     ("PORT", "99999", "less than or equal to 65535"),  # Railway's variable, named as set
     ("P38_LOG_LEVEL", "loud", "must be one of debug, info, warning, error, critical"),
     ("P38_MAX_BODY_BYTES", "10", "greater than or equal to 1024"),
     ("P38_LEASE_SECONDS", "0", "greater than 0"),
     ("P38_POLL_SECONDS", "-1", "greater than 0"),
     ("P38_INGEST_MAX_BATCH", "0", "greater than or equal to 1"),
     ("P38_RESYNC_SECONDS", "0", "greater than 0"),
     ("P38_LEASE_SECONDS", "inf", "a finite number"),  # every claim would fail
     ("P38_HEADER_TIMEOUT_SECONDS", "1e300", "at most 604800 seconds (a week)"),
     ("GITHUB_WEBHOOK_SECRET", "s3cret-gh", "must be at least 16 characters (generate one "
                                            "with `openssl rand -hex 32`)"),
     ("P38_API_TOKEN", "letmein", "must be at least 16 characters (generate one with "
                                  "`openssl rand -hex 32`)")],
)
def test_a_setting_out_of_range_is_named_with_its_rule(variable: str, value: str,
                                                       rule: str) -> None:
    """Each setting that can break the service is checked at start: one line, exit 2."""
    result = p38("status", env={**os.environ, variable: value})
    assert result.returncode == 2
    assert result.stderr.strip() == f"configuration error: {variable}: Input should be " \
        f"{rule}" or result.stderr.strip() == f"configuration error: {variable}: {rule}"


@pytest.mark.parametrize(("flag", "value", "rule"), [
    ("--port", "99999", "99999 is not between 0 and 65535"),
    ("--port", "-5", "-5 is not between 0 and 65535"),
    ("--workers", "-1", "-1 is not between 0 and 64"),
    ("--workers", "many", "'many' is not an integer")])
def test_a_flag_out_of_range_is_refused_like_its_variable(flag: str, value: str,
                                                          rule: str) -> None:
    """The flags that override a setting are checked against the same range, before anything
    starts: argparse's two lines (usage, the rule), exit 2, no traceback."""
    result = p38("serve", f"{flag}={value}", env={**os.environ, "DATABASE_URL": NOWHERE})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].endswith(f"error: argument {flag}: {rule}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("dsn", "rule"), [
    ("host=127.0.0.1 user=postgres password=hunter22x dbname=nope",
     "must be a URL postgresql://user:password@host:port/database"),
    ("postgres//user:hunter22x@127.0.0.1:1/x", "must be a URL postgresql://"),
    ("postgresql://user:hunter22x@127.0.0.1:notaport/x", "its port is not a number"),
])
def test_a_malformed_database_url_is_named_without_its_password(dsn: str, rule: str) -> None:
    """DATABASE_URL is checked with the other settings: the rule, never the value."""
    result = p38("serve", env={**os.environ, "DATABASE_URL": dsn})
    assert result.returncode == 2
    assert result.stderr.startswith(f"configuration error: DATABASE_URL: {rule}")
    assert "hunter22x" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_an_address_not_on_this_machine_is_refused_before_anything_starts() -> None:
    """`--host` an address no interface has, even with `--port 0`: one line, exit 2, before
    the database is tried (NOWHERE would be the other complaint)."""
    result = p38("serve", "--host", "192.0.2.1", "--port", "0",
                 env={**os.environ, "DATABASE_URL": NOWHERE})
    assert (result.returncode, result.stderr.strip()) == (
        2, "cannot start: cannot listen on 192.0.2.1:0: Cannot assign requested address")


def test_backoff_cap_below_base_is_refused() -> None:
    """Settings that contradict each other are named together."""
    result = p38("status", env={**os.environ, "P38_BACKOFF_CAP_SECONDS": "0.5"})
    assert (result.returncode, result.stderr.strip()) == (
        2, "configuration error: P38_BACKOFF_CAP_SECONDS must be at least "
           "P38_BACKOFF_BASE_SECONDS")


def test_an_unreachable_database_is_one_line_before_any_banner() -> None:
    """`p38 serve` with a DATABASE_URL nobody answers: host, port and cause, exit 2; the
    one-shot commands say they cannot run, exit 3."""
    served = p38("serve", "--port", "0", env={**os.environ, "DATABASE_URL": NOWHERE})
    assert served.returncode == 2 and served.stdout == ""
    assert served.stderr.strip() == ("cannot start: cannot reach the database at "
                                     "127.0.0.1:1/nothing: connection refused (is PostgreSQL "
                                     "running there?)")
    for command in (["status"], ["plan", str(MANIFESTS)], ["migrate"]):
        result = p38(*command, env={**os.environ, "DATABASE_URL": NOWHERE})
        assert result.returncode == 3, command
        assert result.stderr.startswith("cannot run: cannot reach the database at 127.0.0.1:1")


def test_a_busy_port_is_one_line_with_the_hint(dsn: str) -> None:
    """Another process holds the port: nothing starts, one line says what to do, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = p38("serve", "--port", str(port), env=env_for(dsn))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"cannot start: 127.0.0.1:{port} is already in use "
                                     "(another p38?); choose another port with --port or "
                                     "P38_PORT")


def test_port_zero_prints_the_port_and_sigterm_is_logged(dsn: str, tmp_path: Path) -> None:
    """`p38 up --port 0`: the banner names the port bound, the routes, providers and the
    killswitch; /readyz says the same; SIGTERM logs a line and exits 0."""
    env = {**env_for(dsn), "GITHUB_WEBHOOK_SECRET": "gh-secret-123456", "P38_HOME": str(tmp_path)}
    folder = str(sample_manifests(tmp_path))
    with p38_running("up", "--port", "0", "--manifests", folder, env=env,
                     cwd=tmp_path) as process:
        assert process.stderr is not None
        banner = [process.stderr.readline() for _ in range(4)]
        while not banner[0].startswith("project38 on "):  # JSON log lines come first
            banner = [*banner[1:], process.stderr.readline()]
        url = banner[0].split()[2]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        assert banner[2].strip() == "webhooks: POST /webhooks/github"
        assert "/webhooks/railway (RAILWAY_WEBHOOK_SECRET is not set)" in banner[3]
        import json
        import urllib.request

        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as answer:
            ready = json.load(answer)
        assert ready["status"] == "ready" and ready["killswitch"]["on"] == []
        assert [r["path"] for r in ready["routes"] if r["enabled"]] == ["/webhooks/github"]
        assert ready["providers"]["github"]["live"] is False
        code, rest = terminate(process)
    assert code == 0
    lines = [line for line in rest.splitlines() if '"shutting_down"' in line]
    assert len(lines) == 1 and '"signal":"SIGTERM"' in lines[0].replace(" ", "")


def test_plan_on_a_fresh_database_and_on_nothing(fresh_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A database never migrated has applied nothing (every object a create, exit 2, and it is
    not migrated by plan); an empty folder is a problem (exit 1); `--version` answers."""
    env = env_for(fresh_database("plan_fresh"))
    result = p38("plan", str(MANIFESTS), env=env)
    assert result.returncode == 2, result.stderr
    assert "Plan (local): 8 to create, 0 to update, 0 to delete." in result.stdout
    assert "migrations pending" in p38("status", env=env).stdout  # plan migrated nothing
    empty = p38("plan", str(tmp_path), env=env)
    assert empty.returncode == 1
    assert f"{tmp_path}:1:1: no manifests found" in empty.stdout
    version = p38("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("p38 ")
    nothing = p38("validate", str(tmp_path), env=env)  # nothing to validate
    assert nothing.returncode == 1
    assert nothing.stderr.splitlines()[-1] == "1 problem(s); no manifest file was read"


def _unlistable_folder(parent: Path) -> None:
    """A folder below `parent` that `scandir` refuses for any user, root included: nested so
    deep that its path is longer than PATH_MAX (made with relative `mkdir`s)."""
    fd = os.open(parent, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 251 bytes > 4096
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def test_a_folder_that_cannot_be_listed_is_a_problem_not_a_prune(tmp_path: Path) -> None:
    """A manifests folder with a subfolder that cannot be listed is invalid (exit 1, the
    folder named): skipping it quietly would make its objects look deleted, and the local
    source would prune them."""
    from controller.providers.local import _read_local

    for name in ("policy.yaml", "agents/tesla-watch.yaml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text((MANIFESTS / name).read_text())
    assert p38("validate", str(tmp_path), env=env_for("postgresql://unused@127.0.0.1:1/x")
               ).returncode == 0
    _unlistable_folder(tmp_path)
    result = p38("validate", str(tmp_path), env=env_for("postgresql://unused@127.0.0.1:1/x"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot list folder: File name too long" in result.stdout + result.stderr
    read = _read_local(tmp_path, known_tree=None)
    assert read.files and any("cannot list folder" in line for line in read.unreadable)


def test_another_unreadable_folder_is_another_revision(tmp_path: Path) -> None:
    """Pointing the local source at a missing folder, then at a file: each is its own
    revision, so the problems recorded (and shown with the status) are the current ones."""
    from controller.providers.local import _read_local

    (tmp_path / "file").write_text("x")
    missing, a_file = _read_local(tmp_path / "missing", None), _read_local(tmp_path / "file", None)
    assert missing.revision != a_file.revision
    assert a_file.unreadable == (f"{tmp_path / 'file'}:1:1: a file, not a folder: give the "
                                 "folder that holds the manifests",)


def test_a_look_never_creates_the_embedded_database(tmp_path: Path) -> None:
    """With DATABASE_URL unset and no embedded database yet, `p38 status` says so (exit 3) and
    `p38 plan` compares with nothing applied; neither runs initdb nor starts a server."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["P38_HOME"] = str(tmp_path / "home")
    status = p38("status", env=env)
    assert status.returncode == 3
    assert "does not exist yet (`p38 up` or `p38 migrate` creates it)" in status.stderr
    plan = p38("plan", str(MANIFESTS), env=env)
    assert plan.returncode == 2, plan.stderr
    assert "Plan (local): 8 to create, 0 to update, 0 to delete." in plan.stdout
    assert not (tmp_path / "home").exists()
    # A stopped embedded server (its data folder, no postmaster.pid: what `p38 db-stop` leaves)
    # is not started by a look either; plan cannot know what it applied.
    (tmp_path / "home" / "pgdata").mkdir(parents=True)
    (tmp_path / "home" / "pgdata" / "PG_VERSION").write_text("16\n")
    for args in (("status",), ("plan", str(MANIFESTS))):
        stopped = p38(*args, env=env)
        assert stopped.returncode == 3 and "is stopped (`p38 up` starts it)" in stopped.stderr
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()


def test_odd_arguments_get_a_reason_not_a_traceback(dsn: str) -> None:
    """Bytes a terminal passes undecodably, digits that are not ASCII, numbers past any id,
    retention past a century: each is a usage error or "not found", never a traceback."""
    env = env_for(dsn)
    cases = [
        (("replay", "\udcff"), 2, "argument delivery: not valid UTF-8"),
        (("approve", "\udcff", "--by", "me"), 2, "argument idempotency_key: not valid UTF-8"),
        (("replay", "²"), 1, "no delivery with GUID or id '²'"),
        (("replay", "\u0663"), 1, "no delivery with GUID or id '\u0663'"),  # Arabic 3
        (("replay", "9" * 30), 1, "no delivery with GUID or id"),
        (("prune", "--days", "2147483648"), 2, "2147483648 is not between 0 and 36500"),
        (("prune", "--days", "\u0667"), 2, "'\u0667' is not an integer"),  # Arabic 7
        (("prune", "--days", "3"), 2, "--days 3: must be 0 (keep everything) or at least 7"),
    ]
    for args, code, message in cases:
        result = p38(*args, env=env)
        assert (result.returncode, "Traceback" in result.stderr) == (code, False), result.stderr
        assert message in result.stderr, (args, result.stderr)


def test_a_missing_manifests_folder_or_an_empty_socket_path_is_refused(tmp_path: Path) -> None:
    """A typo in --manifests would serve a source that can only be Stalled; an empty --unix
    would silently serve TCP: both refused before anything starts."""
    env = {**os.environ, "DATABASE_URL": NOWHERE}
    missing = p38("serve", "--manifests", str(tmp_path / "typo"), env=env)
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"cannot start: the manifests folder {tmp_path / 'typo'} is not a directory "
           "(--manifests or P38_MANIFESTS_DIR)")
    empty = p38("serve", "--unix", "", env=env)
    assert empty.returncode == 2 and "argument --unix: an empty path" in empty.stderr
    (tmp_path / "notes.txt").write_text("keep me")
    taken = p38("serve", "--unix", str(tmp_path / "notes.txt"), env=env)
    assert (taken.returncode, taken.stderr.strip()) == (
        2, f"cannot start: {tmp_path / 'notes.txt'} already exists and is not a socket; "
           "choose another path")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    nobody = p38("approve", "some-key", "--by", " ", env=env)
    assert nobody.returncode == 2 and "argument --by: an empty name" in nobody.stderr


def test_what_a_terminal_would_act_on_is_printed_as_an_escape() -> None:
    """`p38 status` prints repository names and providers' messages through `shown`: an
    escape sequence (retitle, clear screen) or a bidi override is printed, not obeyed."""
    from controller.cli.common import shown

    assert shown("octo/\x1b]0;pwned\x07r\u202eepo é 😀\n") == \
        "octo/\\x1b]0;pwned\\x07r\\u202eepo é 😀\\n"
