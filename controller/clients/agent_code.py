"""The static check of an agent's code: what an agent must never do, found before it runs.

`check(code, *, test=None)` parses the module (and its test) and returns every problem as
`file:line: message`. Agents reach the outside through their tools only, so imports come from an
allow-list of pure standard-library modules (no os, sys, subprocess, socket, HTTP libraries,
ctypes, importlib, pickle); dynamic code (`eval`, `exec`, `compile`, `__import__`, `globals`)
is refused, and so is reaching past the names given (private and frame attributes, a module
through another: `agent_reach`); `open` of an absolute path or one with `..` is refused;
string literals that look like credentials (GitHub, Anthropic, AWS, Slack tokens, private
keys, long values assigned to names like `token` or `password`) are refused. The module must
define `run(task)`. A first, friendly filter: the kernel's sandbox holds when it is passed.

Pure: no I/O. `ruff check` and the test run are the harness's (controller/clients/harness.py).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from controller.clients import agent_reach

ALLOWED_IMPORTS = frozenset({
    "p38_agent", "agent", "json", "re", "math", "cmath", "statistics", "decimal", "fractions",
    "random", "datetime", "time", "zoneinfo", "calendar", "collections", "collections.abc",
    "itertools", "functools", "operator", "dataclasses", "typing", "enum", "copy", "string",
    "textwrap", "unicodedata", "difflib", "html", "urllib.parse", "base64", "binascii",
    "hashlib", "hmac", "uuid", "bisect", "heapq", "csv", "io", "pprint", "numbers", "abc",
    "contextlib", "__future__", "secrets", "email.utils", "ipaddress", "graphlib"})
WHY_REFUSED = {
    "os": "reads the environment and runs commands", "sys": "reaches the interpreter",
    "subprocess": "runs commands", "socket": "opens connections; use tools.http",
    "http": "opens connections; use tools.http", "urllib.request": "opens connections; use "
    "tools.http", "requests": "opens connections; use tools.http", "httpx": "opens "
    "connections; use tools.http", "aiohttp": "opens connections; use tools.http",
    "ctypes": "loads native code", "importlib": "imports code at run time",
    "pickle": "runs code while loading", "shutil": "changes files outside the run",
    "multiprocessing": "starts processes", "threading": "starts threads",
    "asyncio": "opens connections and processes"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "globals", "locals", "vars",
                   "breakpoint", "input"}
SECRET_PATTERNS = (
    (re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"), "a GitHub token"),
    (re.compile(r"sk-ant-[A-Za-z0-9_\-]{20,}"), "an Anthropic API key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"xox[abpors]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
)
SECRET_NAMES = re.compile(r"(token|secret|password|passwd|api_?key|credential)", re.I)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def check(code: str, *, test: str | None = None) -> list[Problem]:
    """Every problem of the agent module (`agent.py`) and its test (`test_agent.py`)."""
    problems = _check_file("agent.py", code, needs_run=True)
    if test is not None:
        problems += _check_file("test_agent.py", test, needs_run=False)
    return problems


def _check_file(name: str, code: str, *, needs_run: bool) -> list[Problem]:
    try:
        tree = ast.parse(code, filename=name)
    except SyntaxError as exc:
        return [Problem(name, exc.lineno or 1, f"does not parse: {exc.msg}")]
    problems: list[Problem] = []
    for node in ast.walk(tree):
        problems.extend(Problem(name, getattr(node, "lineno", 1), message)
                        for message in _node_problems(node))
    problems.extend(Problem(name, line, message)
                    for line, message in agent_reach.problems(tree, ALLOWED_IMPORTS))
    if needs_run and not any(isinstance(n, ast.FunctionDef) and n.name == "run"
                             and len(n.args.args) == 1 for n in tree.body):
        problems.append(Problem(name, 1, "must define run(task) at module level, taking one "
                                         "argument"))
    return sorted(problems, key=lambda p: (p.line, p.message))


def _node_problems(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [m for alias in node.names if (m := _import_problem(alias.name))]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return ["relative imports are not available to agents"]
        return [m] if (m := _import_problem(node.module or "")) else []
    if isinstance(node, ast.Call):
        return _call_problems(node)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [f"hard-coded secret: this looks like {what}; secrets are the controller's "
                "and reach the outside through tools" for pattern, what in SECRET_PATTERNS
                if pattern.search(node.value)][:1]
    if isinstance(node, ast.Assign | ast.AnnAssign):
        return _secret_assignment(node)
    return []


def _import_problem(module: str) -> str | None:
    if module in ALLOWED_IMPORTS:
        return None
    root = module.partition(".")[0]
    why = WHY_REFUSED.get(module) or WHY_REFUSED.get(root)
    reason = f" ({why})" if why else ""
    return (f"import {module} is not allowed{reason}; agents may import "
            "p38_agent and pure standard-library modules (docs/agents.md lists them)")


def _call_problems(node: ast.Call) -> list[str]:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name in FORBIDDEN_CALLS:
        return [f"{name}() is not allowed in agents (dynamic code or the interpreter's "
                "internals)"]
    if name == "open" and node.args:
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and (
                first.value.startswith(("/", "~")) or ".." in first.value.split("/")):
            return [f"open({first.value!r}): agents may use files only in their working "
                    "directory"]
    return []


def _secret_assignment(node: ast.Assign | ast.AnnAssign) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)
            and len(value.value) >= 12 and " " not in value.value):
        return []
    for target in targets:
        name = target.id if isinstance(target, ast.Name) else \
            target.attr if isinstance(target, ast.Attribute) else ""
        if SECRET_NAMES.search(name):
            return [f"hard-coded secret: {name} is assigned a literal; secrets are the "
                    "controller's and reach the outside through tools"]
    return []
