"""Claude writes agents: the client against a fake Messages API served over HTTP (the SDK
reaches it through ANTHROPIC_BASE_URL), and generations that end READY, after a fix round,
or FAILED with the reason for each way the API and its replies really fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.clients.claude import Claude, ClaudeRefused, ClaudeUnavailable, price_of
from controller.providers.anthropic import generate_version
from controller.reconcile.errors import RateLimited
from controller.store import Store
from reconcilers.agents.agent_actions import GenerateVersion
from tests.fakes.anthropic import (
    BROKEN_TEST,
    GOOD_CODE,
    GOOD_TEST,
    FakeAnthropic,
    fail,
    files,
    say,
)

MODEL = "claude-sonnet-5-5"


@pytest.fixture
async def fake(aiohttp_server: Any, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    api = FakeAnthropic()
    server = await aiohttp_server(api.app())
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(server.make_url("")).rstrip("/"))
    return api


@pytest.fixture
async def claude(fake: FakeAnthropic) -> AsyncIterator[tuple[Claude, list[float]]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = Claude(fake.api_key, sleep=sleep)
    yield client, slept
    await client.close()


async def ask(client: Claude, system: Any = "be brief") -> Any:
    return await client.message(model=MODEL, system=system, max_tokens=100,
                                messages=[{"role": "user", "content": "hello"}])


async def test_usage_and_prompt_caching_are_counted_and_priced(
        fake: FakeAnthropic, claude: tuple[Claude, list[float]]) -> None:
    client, _ = claude
    fake.script.extend([say("hi"), say("hi again")])
    system = [{"type": "text", "text": "x" * 4400, "cache_control": {"type": "ephemeral"}}]
    first, second = await ask(client, system), await ask(client, system)
    assert (first.usage.cache_write, first.usage.cache_read) == (1100, 0)
    assert (second.usage.cache_write, second.usage.cache_read) == (0, 1100)
    assert first.text == "hi" and first.stop_reason == "end_turn"
    price = price_of(MODEL)
    assert first.usd == pytest.approx((first.usage.input * 2 + first.usage.output * 10
                                       + 1100 * 2.5) / 1e6)
    assert second.usd < first.usd and price.cache_read == pytest.approx(0.1)
    assert fake.requests[0]["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert fake.requests[0]["headers"]["anthropic-version"]


async def test_rate_limits_overload_and_refusals(fake: FakeAnthropic,
                                                 claude: tuple[Claude, list[float]]) -> None:
    client, slept = claude
    fake.script.extend([fail(429, "rate_limit_error", "slow down", {"retry-after": "3"}),
                        fail(529, "overloaded_error", "Overloaded"),
                        fail(500, "api_error", "Internal server error"), say("done")])
    assert (await ask(client)).text == "done"
    assert slept == [3.0, 2.0, 4.0]  # retry-after, then backoff for 529 and 500

    fake.script.append(fail(429, "rate_limit_error", "slow down", {"retry-after": "45"}))
    with pytest.raises(RateLimited) as waited:
        await ask(client)
    assert waited.value.requeue_after == 45.0 and "slow down" in waited.value.reason

    fake.script.extend([fail(529, "overloaded_error", "Overloaded")] * 4)
    with pytest.raises(ClaudeUnavailable, match="529 overloaded_error after 4 attempts"):
        await ask(client)

    fake.script.append(fail(404, "not_found_error", "model: claude-nope"))
    with pytest.raises(ClaudeRefused, match="404 not_found_error: model: claude-nope"):
        await ask(client)
    bad = Claude("sk-ant-wrong-key-000000000")
    try:
        with pytest.raises(ClaudeRefused, match="401 authentication_error"):
            await ask(bad)
    finally:
        await bad.close()


def params(**changes: Any) -> GenerateVersion:
    fields: dict[str, Any] = {
        "agent": "agent:local/digest", "spec_hash": "h1", "model": MODEL,
        "spec": {"description": "Echo the input.", "tools": [], "model": MODEL},
        "fix_rounds": 2, "usd_ceiling": 3.0, **changes}
    return GenerateVersion(**fields)


async def version(store: Store, number: int = 1) -> dict[str, Any]:
    row = await store.fetchrow("agent_version_get", "agent:local/digest", number)
    assert row is not None
    return dict(row)


async def test_a_fix_round_sends_the_exact_problems_back(
        store: Store, fake: FakeAnthropic, claude: tuple[Claude, list[float]]) -> None:
    client, _ = claude
    sneaky = "import os\n\n\ndef run(task):\n    return os.getcwd()\n"
    fake.script.append(say(files(sneaky, GOOD_TEST)))
    done = await generate_version(store, client, params())
    assert (done["state"], done["rounds"]) == ("READY", 1)
    row = await version(store)
    assert (row["state"], row["origin"], row["rounds"]) == ("READY", "generated", 1)
    # The prompt is cached up to its last turn: the fix round reads the first round's prefix.
    assert row["cache_write_tokens"] > 0 and row["cache_read_tokens"] > 0
    assert row["usd"] > 0 and row["output_tokens"] > 0
    second = fake.requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert "agent.py:1: import os is not allowed" in second[2]["content"][0]["text"]
    assert "Echo the input." in second[0]["content"]
    assert row["report"]["ok"] is True and len(row["report"]["rounds"]) == 2


async def test_a_failed_test_goes_back_with_its_trace_and_is_one_line_elsewhere(
        store: Store, fake: FakeAnthropic, claude: tuple[Claude, list[float]]) -> None:
    """The fix round shows Claude where the test failed (its trace from the test's frame on,
    the harness's left out); the version's recorded problems stay one line each."""
    client, _ = claude
    fake.script.append(say(files(GOOD_CODE % "x", BROKEN_TEST)))
    done = await generate_version(store, client, params())
    assert (done["state"], done["rounds"]) == ("READY", 1)
    sent = fake.requests[1]["body"]["messages"][2]["content"][0]["text"]
    assert "- test_agent.py:7: test_counts_and_echoes: AssertionError" in sent
    assert 'line 7, in test_counts_and_echoes' in sent and "bootstrap" not in sent
    [first, _] = (await version(store))["report"]["rounds"]
    assert first["problems"] == ["test_agent.py:7: test_counts_and_echoes: AssertionError"]


CUT_OFF = say("```python agent.py\ndef run(task):\n    return [" + "1, " * 50, "max_tokens")


@pytest.mark.parametrize(("script", "error"), [
    ([say("I can't help with that.", "refusal")], "Claude declined to write this agent"),
    ([CUT_OFF] * 3, "cut off at 8192 tokens (stop_reason max_tokens)"),
    ([say("Sure! Here is how you would do it, in words.")] * 3, "no code block in the reply"),
    ([say(files("def run(task):\n    return 1\n", GOOD_TEST) * 2)] * 3,
     "two code blocks for agent.py"),
    ([say("```python main.py\ndef run(task):\n    return 1\n```\n")] * 3,
     "a code block for main.py: only agent.py and test_agent.py are written"),
    ([say(files("def run(task):\n    return 1\n", GOOD_TEST))] * 3, "test_counts_and_echoes"),
    ([fail(400, "invalid_request_error", "max_tokens: 8192 > 4096, the maximum")],
     "the Anthropic API refused the request: Anthropic API 400 invalid_request_error"),
], ids=["refusal", "max-tokens", "no-code-block", "two-code-blocks", "wrong-file",
        "test-never-passes", "bad-request"])
async def test_each_way_a_generation_fails_is_a_failed_version_with_the_reason(
        store: Store, fake: FakeAnthropic, claude: tuple[Claude, list[float]],
        script: list[dict[str, Any]], error: str) -> None:
    client, _ = claude
    fake.script.extend(script)
    done = await generate_version(store, client, params())
    row = await version(store)
    assert done["state"] == row["state"] == "FAILED"
    assert error in row["error"]
    assert len(fake.requests) == len(script)  # fix rounds end at the Policy's (2)


async def test_the_generation_ceiling_stops_it_with_the_figure(
        store: Store, fake: FakeAnthropic, claude: tuple[Claude, list[float]]) -> None:
    client, _ = claude
    fake.script.extend([say("no code")] * 10)
    done = await generate_version(store, client, params(usd_ceiling=0.004, fix_rounds=10))
    row = await version(store)
    assert done["state"] == "FAILED" and "the generation ceiling was reached" in row["error"]
    assert "of $0.004 (Policy agents.generationUsd)" in row["error"]
    assert row["usd"] >= 0.004 and 1 < len(fake.requests) < 10


async def test_a_rate_limited_generation_resumes_on_its_row(
        store: Store, fake: FakeAnthropic, claude: tuple[Claude, list[float]]) -> None:
    client, _ = claude
    fake.script.extend([say("no code"),
                        fail(429, "rate_limit_error", "slow down", {"retry-after": "120"})])
    with pytest.raises(RateLimited):
        await generate_version(store, client, params())
    waiting = await version(store)
    assert waiting["state"] == "GENERATING" and waiting["usd"] > 0
    done = await generate_version(store, client, params())
    assert (done["version"], done["state"], done["rounds"]) == (1, "READY", 1)
    assert (await version(store))["usd"] > waiting["usd"]  # the first spend still counts
    # Resumed at its last round: the fix round's request, not the first one again.
    resumed = fake.requests[-1]["body"]["messages"]
    assert [m["role"] for m in resumed] == ["user", "assistant", "user"]
    assert resumed[1]["content"] == "no code"
    assert len(fake.requests) == 3  # answered, rate-limited, the fix round resumed
