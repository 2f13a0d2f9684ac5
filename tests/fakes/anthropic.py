"""A stateful fake of Anthropic's Messages API (`POST /v1/messages`), served over real HTTP so the
official SDK reaches it through `ANTHROPIC_BASE_URL` exactly as it reaches the real API.

Like the API where the controller depends on it: `x-api-key` and `anthropic-version` are
required (`x-api-key`, or `Authorization: Bearer` as the SDK 2.x sends it; 401
`authentication_error`, 400 `invalid_request_error`), the body needs `model`,
`max_tokens` and alternating `messages` starting with the user; responses are message objects
(`msg_...` id, text content blocks, `stop_reason`, `usage` with `cache_creation_input_tokens`,
`cache_read_input_tokens` and `cache_creation`), errors are `{"type": "error", "error":
{"type", "message"}, "request_id"}` with a `request-id` header. System blocks marked
`cache_control` are written to the prompt cache on first sight and read from it after.

Tool use as the API does it: `tools` are checked (name, object `input_schema`), a step made
with `use(...)` answers `tool_use` blocks (`toolu_...` ids, `stop_reason` `tool_use`), and every
`tool_use` must be answered by `tool_result` blocks first in the next user message (else the
API's 400). What it answers: the next scripted step (`say`, `use`, `fail`), else its `author`:
by default, for a request with a `write_file` tool, a `/claude` task that reads README.md,
appends a section named after the task and finishes; otherwise one that writes a working agent
and test for any description, or, when the description contains `[fake:broken]`, an agent
whose test never passes.
Standalone: `python -m tests.fakes.anthropic --key KEY [--port 0]` prints its base URL.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import re
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Step = dict[str, Any]


def say(text: str, stop_reason: str = "end_turn") -> Step:
    return {"text": text, "stop_reason": stop_reason}


def use(*calls: tuple[str, dict[str, Any]], text: str = "") -> Step:
    """A reply that calls tools: (name, input) each, after an optional text."""
    return {"text": text, "stop_reason": "tool_use", "tools": list(calls)}


def fail(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Step:
    return {"status": status, "kind": kind, "message": message, "headers": headers or {}}


def files(code: str, test: str) -> str:
    return (f"Here is the agent.\n\n```python agent.py\n{code}```\n\n"
            f"And its test:\n\n```python test_agent.py\n{test}```\n")


GOOD_CODE = '''def run(task):
    seen = task.state.get("runs", 0) + 1
    task.state["runs"] = seen
    return {"runs": seen, "input": task.input, "job": JOB}


JOB = "%s"
'''
GOOD_TEST = '''from agent import run
from p38_agent import FakeTools, Task


def test_counts_and_echoes():
    task = Task(input={"x": 1}, state={"runs": 1}, tools=FakeTools())
    assert run(task)["runs"] == 2 and task.state["runs"] == 2
'''
BROKEN_TEST = GOOD_TEST.replace('["runs"] == 2 and', '["runs"] == 3 and')


def default_author(body: dict[str, Any]) -> Step:
    first = body["messages"][0]["content"]
    text = first if isinstance(first, str) else " ".join(
        b.get("text", "") for b in first if isinstance(b, dict))
    match = re.search(r"<description>\n(.*?)\n</description>", text, re.DOTALL)
    description = (match.group(1) if match else text)[:60].replace('"', "'").replace("\\", "")
    test = BROKEN_TEST if "[fake:broken]" in text else GOOD_TEST
    job = description.splitlines()[0] if description.strip() else "nothing"
    return say(files(GOOD_CODE % job, test))


def _task_text(body: dict[str, Any]) -> str:
    first = body["messages"][0]["content"]
    text = first if isinstance(first, str) else str(first)
    match = re.search(r"<task>\n(.*?)\n</task>", text, re.DOTALL)
    return match.group(1) if match else text[:60]


def _last_tool(body: dict[str, Any]) -> tuple[str | None, str]:
    """The name of the tool the last assistant turn called, and what came back for it."""
    messages = body["messages"]
    if len(messages) < 3:
        return None, ""
    called = [b for b in messages[-2]["content"] if b.get("type") == "tool_use"]
    result = [b for b in messages[-1]["content"] if b.get("type") == "tool_result"]
    answer = result[0]["content"] if result else ""
    if result and result[0].get("is_error"):
        answer = ""
    return (called[0]["name"] if called else None), str(answer)


def task_author(body: dict[str, Any]) -> Step:
    """A `/claude` task: read README.md, append a section about the task, finish."""
    task = _task_text(body).strip()
    topic = task.split(" about ", 1)[1] if " about " in task else task
    topic = topic.splitlines()[0].strip().rstrip(".")[:60] or "it"
    last, answer = _last_tool(body)
    if last is None:
        return use(("read_file", {"path": "README.md"}), text="Let me read the README.")
    if last == "read_file":
        readme = re.sub(r"^<untrusted[^>]*>\n|\n</untrusted>$", "", answer)
        section = f"\n## {topic}\n\nThis section is about {topic}.\n"
        return use(("write_file", {"path": "README.md",
                                   "content": readme.rstrip("\n") + "\n" + section}))
    return use(("finish", {"title": f"Add a README section about {topic}"[:72],
                           "summary": f"README.md gains a section about {topic}."}))


def author_for(body: dict[str, Any]) -> Step:
    tools = {t.get("name") for t in body.get("tools") or []}
    return task_author(body) if "write_file" in tools else default_author(body)


def tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


@dataclass
class FakeAnthropic:
    api_key: str = "sk-ant-fake-key-0123456789"
    author: Callable[[dict[str, Any]], Step] = author_for
    script: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # The token counts of each message answered (input, output, cache write, cache read).
    answered: list[dict[str, int]] = field(default_factory=list)
    cache: set[str] = field(default_factory=set)
    # Awaited with each request's index before it is answered (a test acting mid-session).
    before: Callable[[int], Awaitable[None]] | None = None
    _ids: Any = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/_fake/answered", self.show_answered)
        return app

    async def show_answered(self, _request: web.Request) -> web.Response:
        """What was asked and answered so far (a trial compares a task's accounting to it)."""
        return web.json_response({"requests": len(self.requests), "answered": self.answered})

    async def messages(self, request: web.Request) -> web.Response:
        request_id = f"req_{secrets.token_hex(12)}"
        given = request.headers.get("x-api-key") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        if given != self.api_key:
            return _error(401, "authentication_error", "invalid x-api-key", request_id)
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is "
                                                        "required", request_id)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not JSON", request_id)
        problem = _invalid(body)
        if problem:
            return _error(400, "invalid_request_error", problem, request_id)
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if self.before is not None:
            await self.before(len(self.requests) - 1)
        step = self.script.popleft() if self.script else self.author(body)
        if "status" in step:
            return _error(step["status"], step["kind"], step["message"], request_id,
                          step["headers"])
        return web.json_response(self._message(body, step), headers={"request-id": request_id})

    def _message(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        total, read, written = self._cache(body)
        uncached = total - read - written
        output = step["text"][:body["max_tokens"] * 4]
        stop = step["stop_reason"]
        # An empty text block before tool_use, as the API sometimes sends (and refuses back).
        content: list[dict[str, Any]] = [{"type": "text", "text": output}] if output or \
            step.get("tools") else []
        for name, given in step.get("tools") or ():
            content.append({"type": "tool_use", "id": f"toolu_01{next(self._ids):022d}",
                            "name": name, "input": given})
        produced = output + "".join(str(b.get("input", "")) for b in content)
        if tokens(produced) > body["max_tokens"]:
            stop = "max_tokens"
        self.answered.append({"input": uncached, "output": tokens(produced),
                              "cache_write": written, "cache_read": read})
        return {
            "id": f"msg_01{next(self._ids):022d}", "type": "message", "role": "assistant",
            "model": body["model"], "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": uncached, "output_tokens": tokens(produced),
                      "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
                      "cache_creation": {"ephemeral_5m_input_tokens": written,
                                         "ephemeral_1h_input_tokens": 0},
                      "service_tier": "standard"}}


    def _cache(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(prompt tokens, read from the cache, written to it): the prompt is tools, system,
        then messages, block by block; each block marked `cache_control` ends a cacheable
        prefix, cached only from MIN_CACHE_TOKENS on (as the API skips shorter ones). The
        longest prefix cached before is read; the rest up to the last mark is written."""
        segments: list[tuple[str, bool]] = [
            (str({k: v for k, v in t.items() if k != "cache_control"}),
             bool(t.get("cache_control"))) for t in body.get("tools") or []]
        system = body.get("system") or []
        for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
            segments.append((str(block.get("text", "")), bool(block.get("cache_control"))))
        for message in body["messages"]:
            content = message["content"]
            for block in [{"type": "text", "text": content}] if isinstance(content, str) \
                    else content:
                plain = {k: v for k, v in block.items() if k != "cache_control"}
                segments.append((str(plain), bool(block.get("cache_control"))))
        prefix, total, marks, boundaries = hashlib.sha256(), 0, [], []
        for text, marked in segments:
            prefix.update(text.encode())
            total += tokens(text)
            boundaries.append((prefix.hexdigest(), total))
            if marked and total >= MIN_CACHE_TOKENS:
                marks.append((prefix.hexdigest(), total))
        if not marks:
            return total, 0, 0
        # A hit is looked for at every block boundary before the last mark (the API looks
        # back about 20 blocks), a write made at the marks.
        last = marks[-1][1]
        read = max((n for digest, n in boundaries[-40:] if n <= last and digest in self.cache),
                   default=0)
        self.cache.update(digest for digest, _ in marks)
        return total, read, last - read


MIN_CACHE_TOKENS = 1024  # the smallest prompt prefix the API caches (Sonnet; more for some)


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body: must be an object"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for n, message in enumerate(messages):
        wanted = "user" if n % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != wanted:
            return f"messages.{n}.role: roles must alternate between user and assistant"
        if not message.get("content"):
            return f"messages.{n}: all messages must have non-empty content"
        for block in _blocks(message, "text"):
            if not str(block.get("text") or "").strip():
                return f"messages.{n}: text content blocks must contain non-whitespace text"
    return _invalid_tools(body, messages)


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] \
        if isinstance(content, list) else []


def _invalid_tools(body: dict[str, Any], messages: list[Any]) -> str | None:
    """The API's checks of `tools` and of tool_use / tool_result turns."""
    tools = body.get("tools")
    for n, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}",
                                                           str(tool.get("name"))):
            return f"tools.{n}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{n}.input_schema.type: Input should be 'object'"
    used = any(_blocks(m, "tool_use") or _blocks(m, "tool_result") for m in messages)
    if used and not tools:
        return ("Requests which include `tool_use` or `tool_result` blocks must define tools.")
    for n, message in enumerate(messages):
        asked = [b.get("id") for b in _blocks(message, "tool_use")]
        if message["role"] == "user":
            answered = _blocks(message, "tool_result")
            before = [b.get("id") for b in _blocks(messages[n - 1], "tool_use")] if n else []
            for block in answered:
                if block.get("tool_use_id") not in before:
                    return (f"messages.{n}.content: unexpected `tool_use_id` found in "
                            f"`tool_result` blocks: {block.get('tool_use_id')}. Each "
                            "`tool_result` block must have a corresponding `tool_use` block "
                            "in the previous message.")
        if not asked:
            continue
        following = messages[n + 1] if n + 1 < len(messages) else None
        content = following.get("content") if following else None
        leading = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                break
            leading.append(block.get("tool_use_id"))
        missing = [i for i in asked if i not in leading]
        if following is not None and missing:
            return (f"messages.{n}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(map(str, missing))}. Each `tool_use` "
                    "block must have a corresponding `tool_result` block in the next message.")
    return None


def _error(status: int, kind: str, message: str, request_id: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message},
                              "request_id": request_id}, status=status,
                             headers={"request-id": request_id, **(headers or {})})


async def _serve(key: str, port: int, delay: float = 0.0) -> None:
    fake = FakeAnthropic(api_key=key)
    if delay:
        async def slowly(_index: int) -> None:
            await asyncio.sleep(delay)

        fake.before = slowly
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.anthropic",
        description="A stateful fake of Anthropic's Messages API (POST /v1/messages), served "
                    "over real HTTP on 127.0.0.1; it prints its base URL, for "
                    "ANTHROPIC_BASE_URL. Without a script it writes a working agent for any "
                    "description and, for a /claude task, appends a section to README.md.")
    parser.add_argument("--key", required=True,
                        help="the API key it accepts; give the controller the same as "
                             "ANTHROPIC_API_KEY.")
    parser.add_argument("--port", type=int, default=0,
                        help="the port to listen on (default 0: a free one, printed).")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds each answer takes (a trial stops the controller in the "
                             "middle of a session); GET /_fake/answered lists the token "
                             "counts of every answer.")
    args = parser.parse_args()
    asyncio.run(_serve(args.key, args.port, args.delay))
