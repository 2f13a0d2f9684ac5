"""`p38 validate` through the real command: problems are its output (stdout, one
`path:line:col: message` each) and the summary goes to stderr, so a pipe sees the problems;
a folder that is not there, or a file given instead of a folder, is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import env_for, p38
from tests.manifest_samples import sample_manifests

NO_DATABASE = "postgresql://unused@127.0.0.1:1/x"  # validate never connects


def test_problems_go_to_stdout_and_the_summary_to_stderr(tmp_path: Path) -> None:
    """Each problem is a stdout line a pipe can grep; the count is on stderr; a valid folder
    prints nothing on stdout and its `ok:` summary on stderr."""
    folder = sample_manifests(tmp_path)
    env = env_for(NO_DATABASE)
    ok = p38("validate", str(folder), env=env)
    assert (ok.returncode, ok.stdout) == (0, "")
    assert ok.stderr == "ok: 8 object(s) in 5 file(s) (3 Agent, 1 Policy, 3 Schedule, " \
                        "1 Service)\n"

    agent = folder / "agents" / "tesla-watch.yaml"
    agent.write_text(agent.read_text().replace("catchUp: latest", "catchUp: latest\n  bad: 1"))
    (folder / "extra.yaml").write_text("kind: [\n")
    bad = p38("validate", str(folder), env=env)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(str(folder)) for line in lines)
    assert any(line.startswith(f"{agent}:") and line.endswith("spec.bad: unknown field")
               for line in lines), lines
    assert bad.stderr == "2 problem(s) in 2 of 6 file(s) read\n"

    piped = subprocess.run(f"{sys.executable} -m controller.cli validate {folder} "
                           "| grep -c 'unknown field'", shell=True, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert piped.stdout == "1\n" and piped.stderr == "2 problem(s) in 2 of 6 file(s) read\n"


def test_a_missing_folder_or_a_file_is_named_for_what_it_is(tmp_path: Path) -> None:
    """`validate /nonexistent` says there is no such folder, `validate file.yaml` that it is
    a file; with the absolute path, exit 2 (plan: 1, its 2 means changes), nothing on
    stdout."""
    env = env_for(NO_DATABASE)
    a_file = tmp_path / "policy.yaml"
    a_file.write_text("kind: Policy\n")
    for command, code in (("validate", 2), ("plan", 1)):
        missing = subprocess.run([sys.executable, "-m", "controller.cli", command, "typo"],
                                 env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=60, check=False)
        assert (missing.returncode, missing.stdout) == (code, "")
        assert missing.stderr == f"p38 {command}: {tmp_path / 'typo'}: no such folder\n"
        file = p38(command, str(a_file), env=env)
        assert (file.returncode, file.stdout) == (code, "")
        assert file.stderr == f"p38 {command}: {a_file}: a file, not a folder: give the " \
                              "folder that holds the manifests\n"
