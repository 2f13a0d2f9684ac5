"""The Claude client: one Messages API call at a time through the official SDK
(`AsyncAnthropic`, which honours `ANTHROPIC_BASE_URL`, so a proxy or a fake works unchanged),
with this project's own retries, and what each call cost in tokens and US dollars.

Retries (the SDK's own are off, so every attempt is counted here): a 429 whose `retry-after`
is at most `max_sleep` seconds is slept and retried, a longer one is `RateLimited` (the key
comes back then); 529 `overloaded_error`, other 5xx, timeouts and dropped connections are
retried with backoff, then `ClaudeUnavailable` (the engine retries the action later); any
other 4xx is `ClaudeRefused` with the API's own message. The price table is here and only
here. Must not know what the calls are for (agents, `/claude` tasks).

The SDK (some 3,000 modules, ~50 MB resident) is imported and built at the first call, not
when the provider opens: a process that never calls Claude (an ingest-only replica, a `serve`
whose `p38 worker` carries the generations and sessions) does not carry it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.reconcile.errors import ProviderError, ProviderRefused, RateLimited

if TYPE_CHECKING:
    import anthropic


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens: input, output; a 5-minute cache write costs 1.25 times
    the input price, a cache read `read` times it."""

    input: float
    output: float
    read: float = 0.1

    @property
    def cache_write(self) -> float:
        return self.input * 1.25

    @property
    def cache_read(self) -> float:
        return self.input * self.read


# By model id prefix, longest match first (platform.claude.com/docs/en/about-claude/pricing,
# read 2026-11). A model not listed is priced as the dearest, so budgets err on the safe side.
PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(10.0, 50.0, 0.025), "claude-mythos-5-1": Price(10.0, 50.0, 0.025),
    "claude-fable-5": Price(10.0, 50.0), "claude-mythos-5": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0, 0.05), "claude-opus-5": Price(5.0, 25.0),
    "claude-opus-4-0": Price(15.0, 75.0), "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-2": Price(15.0, 75.0),  # claude-opus-4-20250514, which is Opus 4.0
    "claude-opus-4": Price(5.0, 25.0),  # 4.5 to 4.8
    "claude-sonnet-5-5": Price(2.0, 10.0, 0.05), "claude-sonnet-5": Price(2.0, 10.0),
    "claude-sonnet-4": Price(3.0, 15.0), "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-haiku-5-5": Price(0.1, 0.5),  # prompts up to 100k tokens
    "claude-haiku-4": Price(1.0, 5.0), "claude-3-5-haiku": Price(0.8, 4.0),
}
DEAREST = Price(15.0, 75.0)


def price_of(model: str) -> Price:
    for prefix in sorted(PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            return PRICES[prefix]
    return DEAREST


@dataclass(frozen=True)
class Usage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output,
                     self.cache_read + other.cache_read, self.cache_write + other.cache_write)

    @property
    def tokens(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def billed_tokens(self, model: str) -> int:
        """Tokens as the API bills them: a prompt-cache read counts at its price relative to
        an input token (a tenth at Anthropic's prices), everything else in full."""
        p = price_of(model)
        return self.input + self.output + self.cache_write + round(
            self.cache_read * p.cache_read / p.input)

    def usd(self, model: str) -> float:
        p = price_of(model)
        return (self.input * p.input + self.output * p.output + self.cache_read * p.cache_read
                + self.cache_write * p.cache_write) / 1_000_000


@dataclass(frozen=True)
class Reply:
    """One response: its text blocks joined, every content block as sent, why it stopped
    (`end_turn`, `max_tokens`, `refusal`, `tool_use`, ...), the tokens and their price."""

    text: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    usd: float
    model: str


class ClaudeRefused(ProviderRefused):
    """The API refused the request (a 4xx other than 429): bad request, unknown model, key."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"Anthropic API {status} {kind}: {message}")
        self.status, self.kind = status, kind


class ClaudeUnavailable(ProviderError):
    """Overloaded, failing or unreachable after every attempt: try again later."""


Sleep = Callable[[float], Awaitable[None]]


class Claude:
    def __init__(self, api_key: str, *, base_url: str | None = None, timeout: float = 120.0,
                 attempts: int = 4, max_sleep: float = 10.0, backoff: float = 1.0,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._options: dict[str, Any] = {"api_key": api_key, "base_url": base_url,
                                          "timeout": timeout, "max_retries": 0}
        self._sdk: anthropic.AsyncAnthropic | None = None  # built at the first call
        self._attempts, self._max_sleep, self._backoff = attempts, max_sleep, backoff
        self._sleep = sleep

    async def close(self) -> None:
        if self._sdk is not None:
            await self._sdk.close()

    def _client(self) -> anthropic.AsyncAnthropic:
        if self._sdk is None:
            import anthropic  # here, not at the top: see the docstring

            self._sdk = anthropic.AsyncAnthropic(**self._options)
        return self._sdk

    async def message(self, *, model: str, system: Sequence[dict[str, Any]] | str,
                      messages: Sequence[dict[str, Any]], max_tokens: int,
                      tools: Sequence[dict[str, Any]] | None = None) -> Reply:
        import anthropic  # loaded by _client: a lookup

        sdk = self._client()
        extra: dict[str, Any] = {"tools": list(tools)} if tools else {}
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                response = await sdk.messages.create(
                    model=model, system=system, messages=list(messages),  # type: ignore[arg-type]
                    max_tokens=max_tokens, **extra)
            except anthropic.RateLimitError as exc:
                wait = _retry_after(exc.response.headers.get("retry-after"))
                if wait <= self._max_sleep and not last:
                    await self._sleep(wait)
                    continue
                raise RateLimited(max(wait, 1.0), f"Anthropic rate limit: retry after "
                                                  f"{wait:.0f}s ({_message(exc)})") from exc
            except (anthropic.APITimeoutError, anthropic.APIConnectionError) as exc:
                if last:
                    raise ClaudeUnavailable(f"Anthropic API unreachable after {attempt} "
                                            f"attempts: {type(exc).__name__}") from exc
            except anthropic.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 409):
                    raise ClaudeRefused(exc.status_code, _kind(exc), _message(exc)) from exc
                if last:
                    raise ClaudeUnavailable(f"Anthropic API {exc.status_code} {_kind(exc)} "
                                            f"after {attempt} attempts: {_message(exc)}") from exc
            else:
                return _reply(response, model)
            await self._sleep(min(self._backoff * 2 ** (attempt - 1), 16.0))
        raise AssertionError("unreachable")  # pragma: no cover


def cached_up_to_here(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with a prompt-cache breakpoint on the last block of the last one, so a
    conversation that grows call after call (fix rounds, a tool-use session) reads its earlier
    turns from the cache (the API caches prefixes from ~1,024 tokens on, and ignores the mark
    below that). The caller's list is not changed."""
    if not messages:
        return []
    *head, last = messages
    content = last["content"]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] \
        if isinstance(content, str) else [dict(b) for b in content]
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return [*head, {**last, "content": blocks}]


def _reply(response: Any, model: str) -> Reply:
    content = [block.model_dump(mode="json") for block in response.content]
    usage = response.usage
    used = Usage(usage.input_tokens or 0, usage.output_tokens or 0,
                 getattr(usage, "cache_read_input_tokens", None) or 0,
                 getattr(usage, "cache_creation_input_tokens", None) or 0)
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    return Reply(text, content, response.stop_reason, used, used.usd(model),
                 getattr(response, "model", model) or model)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 60.0
    except ValueError:
        return 60.0


def _error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    """The `error` object of an error body (`{"type": "error", "error": {type, message}}`)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def _kind(exc: anthropic.APIStatusError) -> str:
    return str(_error(exc).get("type") or "error")


def _message(exc: anthropic.APIStatusError) -> str:
    return str(_error(exc).get("message") or exc.message)[:500]
