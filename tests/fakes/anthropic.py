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

What it answers: the next scripted step (`say`, `fail`), else its `author` — by default one
that writes a working agent and test for any description, or, when the description contains
`[fake:broken]`, an agent whose test never passes.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Step = dict[str, Any]


def say(text: str, stop_reason: str = "end_turn") -> Step:
    return {"text": text, "stop_reason": stop_reason}


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


def tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


@dataclass
class FakeAnthropic:
    api_key: str = "sk-ant-fake-key-0123456789"
    author: Callable[[dict[str, Any]], Step] = default_author
    script: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    cache: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.messages)
        return app

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
        step = self.script.popleft() if self.script else self.author(body)
        if "status" in step:
            return _error(step["status"], step["kind"], step["message"], request_id,
                          step["headers"])
        return web.json_response(self._message(body, step), headers={"request-id": request_id})

    def _message(self, body: dict[str, Any], step: Step) -> dict[str, Any]:
        written = read = 0
        system = body.get("system") or []
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
        uncached = ""
        for block in blocks:
            text = block.get("text", "")
            if block.get("cache_control"):
                digest = hashlib.sha256(text.encode()).hexdigest()
                if digest in self.cache:
                    read += tokens(text)
                else:
                    self.cache.add(digest)
                    written += tokens(text)
            else:
                uncached += text
        for message in body["messages"]:
            content = message["content"]
            uncached += content if isinstance(content, str) else str(content)
        output = step["text"][:body["max_tokens"] * 4]
        stop = step["stop_reason"]
        if tokens(step["text"]) > body["max_tokens"]:
            stop = "max_tokens"
        return {
            "id": f"msg_01{next(self._ids):022d}", "type": "message", "role": "assistant",
            "model": body["model"], "content": [{"type": "text", "text": output}],
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": tokens(uncached), "output_tokens": tokens(output),
                      "cache_creation_input_tokens": written, "cache_read_input_tokens": read,
                      "cache_creation": {"ephemeral_5m_input_tokens": written,
                                         "ephemeral_1h_input_tokens": 0},
                      "service_tier": "standard"}}


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
    return None


def _error(status: int, kind: str, message: str, request_id: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message},
                              "request_id": request_id}, status=status,
                             headers={"request-id": request_id, **(headers or {})})


async def _serve(key: str, port: int) -> None:
    runner = web.AppRunner(FakeAnthropic(api_key=key).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{bound}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(_serve(args.key, args.port))
