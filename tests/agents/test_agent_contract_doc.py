"""docs/agents.md lists exactly the modules the validator lets an agent import, and states the
contract's fixed points (`from agent import run`, `run(task)`, the result's shape)."""

from __future__ import annotations

import re
from pathlib import Path

from controller.clients.agent_code import ALLOWED_IMPORTS, check

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"


def test_the_documented_imports_are_the_validators_list() -> None:
    """The section between the allowed-imports markers names every module of ALLOWED_IMPORTS
    and nothing else: the doc and the list cannot drift apart."""
    text = DOC.read_text()
    section = re.search(r"<!-- allowed-imports[^>]*-->\n(.*?)\n<!-- /allowed-imports -->",
                        text, re.S)
    assert section is not None, "docs/agents.md lost its allowed-imports markers"
    listed = re.findall(r"`([\w.]+)`", section.group(1))
    assert sorted(listed) == sorted(ALLOWED_IMPORTS), (
        "docs/agents.md's allowed imports differ from controller/clients/agent_code.py: "
        f"missing {sorted(ALLOWED_IMPORTS - set(listed))}, "
        f"extra {sorted(set(listed) - ALLOWED_IMPORTS)}")


def test_the_documented_examples_pass_the_static_check() -> None:
    """The contract's example module and test are accepted by the validator's static check,
    and the refusal message points at the doc that lists the imports."""
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    module = next(b for b in blocks if b.startswith("def run(task):"))
    test = next(b for b in blocks if b.startswith("from agent import run"))
    assert check(module.replace("    ...\n", ""), test=test) == []
    [refused] = check("import os\n\n\ndef run(task):\n    return 1\n")
    assert "docs/agents.md lists them" in refused.message
    for fixed in ("from agent import run", "`task.input`", "`task.state`", "`task.tools.<name>`",
                  '`{"output": <the return value>}`'):
        assert fixed in text, fixed
