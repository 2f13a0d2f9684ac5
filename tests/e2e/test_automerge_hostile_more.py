"""Auto-merge resists hostile input, end to end, continued: GitHub's refusals and races, odd
deliveries and odd questions. A transient 405 ("Base branch was modified") is merged on the
next look, a lasting one is not retried in a loop; a draft made during the merge is merged once
ready; a check run whose words come back is written again; `mergeable: null` forever while a
label holds the pull request is not polled; a branch pushed between the merge and its deletion
is kept, and a fork's merged branch never deletes the same-named one here; malformed
deliveries neither crash nor stall the real pull request; `/claude status` in another
repository does not read this one's pull request, and check names cannot speak in the App's
reply; the API refuses odd pull request numbers; a check run whose creation's answer was lost
is made once.

Where a test shows that something does NOT happen, it first waits for a sign that the
controller has looked (the check run's or the API's words, or every key settled)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from controller.store import Store
from tests.e2e.test_automerge import (  # noqa: F401 (the fixture)
    BRANCH,
    CHECK,
    Merging,
    _async,
    merging,
    policy,
    start,
)
from tests.e2e.test_automerge_hostile import on_pull
from tests.e2e.test_commands import send
from tests.e2e.test_gitops import INSTALLATION, REPO, waiting_for_a_tick
from tests.fakes.github_events import check_run_event, pull_request_event, status_event
from tests.helpers import github_payload, wait_until


async def _event(m: Merging, action: str, **how: Any) -> None:
    await m.send(pull_request_event(m.fake, REPO, 7, action, INSTALLATION, **how))


async def test_a_transient_405_base_branch_modified_is_merged_on_the_next_look(
        merging: Merging) -> None:  # noqa: F811
    """main moves while the merge is on its way; GitHub answers 405 "Base branch was
    modified": the moved base is something it was judged on, so it is merged once."""
    fake = merging.fake

    def base_moves(request: httpx.Request) -> None:
        if request.method == "PUT" and request.url.path.endswith("/pulls/7/merge"):
            merging.before.clear()
            fake.commit(REPO, merging.tree({"NEWS.md": "news\n"}))
            fake.fail_next("PUT", rf"/repos/{REPO}/pulls/7/merge", 405, body={
                "message": "Base branch was modified. Review and try the merge again."})

    merging.before.append(base_moves)
    head = await merging.open()
    await merging.green()
    assert (await merging.merged())["sha"] == head
    await merging.says(head, "Merged")
    await merging.gitops.settled()
    assert merging.calls("PUT", "/pulls/7/merge") == 2 and len(fake.merges) == 1


async def test_a_lasting_405_is_not_retried_in_a_loop(merging: Merging) -> None:  # noqa: F811
    """GitHub keeps refusing: the refusal is shown, and deliveries that change nothing it was
    judged on (duplicates, an edit) are looked at without another merge call."""
    fake = merging.fake
    fake.fail_next("PUT", rf"/repos/{REPO}/pulls/7/merge", 405, times=100,
                   body={"message": "Squash merges are not allowed on this repository."})
    head = await merging.open()
    run = fake.add_check_run(REPO, head, "test")
    green = check_run_event(fake, REPO, run, INSTALLATION)
    await merging.send(green)
    await merging.says(head, "Squash merges are not allowed")
    for _ in range(3):
        await merging.send(green)
    await _event(merging, "edited")
    await merging.gitops.settled()  # a loop would keep the key on the queue
    assert merging.calls("PUT", "/pulls/7/merge") == 1 and fake.merges == []
    assert merging.calls("PATCH", "/check-runs/") + merging.calls("POST", "/check-runs") <= 4
    assert "Squash merges are not allowed" in (await merging.pull())["automerge"]["blockers"][0]


async def test_a_draft_made_during_the_merge_is_merged_once_ready(merging: Merging) -> None:  # noqa: F811
    """Made a draft while the merge is on its way (405), then ready again: the facts are
    those the refused merge was judged on, yet it is merged."""
    fake = merging.fake

    def to_draft(request: httpx.Request) -> None:
        if request.method == "PUT" and request.url.path.endswith("/pulls/7/merge"):
            merging.before.clear()
            fake.set_pull(REPO, 7, draft=True)

    merging.before.append(to_draft)
    head = await merging.open()
    await merging.green()
    await merging.blocked_by("draft")
    assert fake.merges == []
    fake.set_pull(REPO, 7, draft=False)
    await _event(merging, "ready_for_review")
    assert (await merging.merged())["sha"] == head
    await merging.gitops.settled()
    assert merging.calls("PUT", "/pulls/7/merge") == 2 and len(fake.merges) == 1


async def test_a_check_run_whose_words_return_to_earlier_ones_is_rewritten(
        merging: Merging) -> None:  # noqa: F811
    """Waiting on the check (A), then on a label too (B), then the label is removed: A is
    written again, not left saying B."""
    fake = merging.fake
    head = await merging.open()
    first = f"- check `test` has not run on {head[:7]}"
    await merging.says(head, first)
    fake.add_label(REPO, 7, "hold")
    await _event(merging, "labeled", label="hold")
    await merging.says(head, "label `hold`")
    fake.remove_label(REPO, 7, "hold")
    await _event(merging, "unlabeled", label="hold")

    async def back() -> bool:
        shown = merging.shown(head)
        return shown is not None and shown["output"]["summary"] == first

    await wait_until(back, what="the first words back", store=merging.gitops.store)
    await merging.gitops.settled()
    assert merging.shown(head)["output"]["summary"] == first  # type: ignore[index]
    assert (await merging.pull())["automerge"]["blockers"] == [first[2:]]


async def test_mergeable_null_forever_while_a_label_holds_it_is_not_polled(
        merging: Merging) -> None:  # noqa: F811
    """GitHub answers `mergeable: null` for ever; `hold` would stop the merge anyway: the
    next look waits for a delivery, not for GitHub's computing."""
    fake = merging.fake
    head = await merging.open(labels=("hold",))
    fake.computing_mergeable(REPO, 7, times=10_000)
    await merging.green()
    await merging.says(head, "label `hold`")
    await merging.gitops.settled()  # polling would keep it on the queue seconds away
    rows = [r for r in await merging.gitops.store.fetch("queue_list", None, None, 100)
            if r["key"] == f"pull:{REPO}#7"]
    assert all(r["not_before"] > datetime.now(UTC) + timedelta(minutes=5) for r in rows)
    looks = merging.calls("GET", "/pulls/7")
    assert looks <= 3, f"{looks} reads of a pull request that cannot merge"


async def test_a_branch_pushed_between_the_merge_and_its_deletion_is_kept(
        merging: Merging) -> None:  # noqa: F811
    fake = merging.fake

    def push_before_delete(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path.endswith(f"/git/ref/heads/{BRANCH}"):
            merging.before.clear()
            fake.push_branch(REPO, BRANCH, merging.tree({"README.md": "more\n"}))

    merging.before.append(push_before_delete)
    head = await merging.open()
    await merging.green()
    assert (await merging.merged())["sha"] == head
    await wait_until(lambda: _async(not merging.before), what="the branch looked at")
    await merging.gitops.settled()
    assert merging.calls("DELETE", "/git/refs/") == 0 and BRANCH in fake.repos[REPO].branches


async def test_a_forks_merged_pull_request_never_deletes_the_same_named_branch_here(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    m = await start(aiohttp_client, store, dsn, policy("    allowForks: true\n"))
    head = await m.open(fork="mallory/infra")
    await m.green()
    assert (await m.merged())["sha"] == head
    await m.says(head, "Merged")
    await m.gitops.settled()
    assert m.calls("DELETE", "/git/refs/") == 0 and BRANCH in m.fake.repos[REPO].branches


AUTOMERGE_KEYS = ("pull:", "commit:", "automerge:")


async def _post(m: Merging, name: str, payload: dict[str, Any]) -> int:
    headers, body = github_payload(name, payload)
    response = await m.gitops.client.post("/webhooks/github", data=body, headers=headers)
    return int(response.status)


def _odd_deliveries(m: Merging, head: str) -> list[tuple[str, dict[str, Any]]]:
    """Wrong types, missing fields, weird numbers and SHAs, in signed deliveries."""
    fake, found = m.fake, []

    def odd(name: str, base: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> None:
        payload = copy.deepcopy(base)
        change(payload)
        found.append((name, payload))

    def renumber(payload: dict[str, Any], number: Any) -> None:
        payload["number"] = payload["pull_request"]["number"] = number

    _, pull = pull_request_event(fake, REPO, 7, "synchronize", INSTALLATION)
    for number in ("7", -7, 0, 2 ** 53, 2 ** 70, 7.0, True, None, [7], {"n": 7}):
        odd("pull_request", pull, lambda p, n=number: renumber(p, n))
    for head_field in (None, {}, {"ref": ["claude/x"], "sha": 12345},
                       {"ref": BRANCH, "sha": "../../../etc"},
                       {"ref": "claude/" + "x" * 10_000, "sha": "f" * 40}):
        odd("pull_request", pull, lambda p, h=head_field: p["pull_request"].update(head=h))
    odd("pull_request", pull, lambda p: p["pull_request"].update(
        labels=[{"name": "x" * 200}] * 5000 + ["hold", None, 7], state=["open"]))
    for name in (f"{REPO}#8", f"{REPO}/../other"):
        odd("pull_request", pull, lambda p, n=name: p["repository"].update(full_name=n))
    _, run = check_run_event(fake, REPO, fake.add_check_run(REPO, head, "lint"), INSTALLATION)
    for pulls in ([{"number": "7"}, {"number": -1}, None, "7", {}, {"number": 10 ** 30}],
                  {"number": 7}):
        odd("check_run", run, lambda p, q=pulls: p["check_run"].update(pull_requests=q))
    _, status = status_event(fake, REPO, head, "x", "success", INSTALLATION)
    for sha in (head.upper(), head[:39], "../" + head, None, 7, head + "\n"):
        odd("status", status, lambda p, s=sha: p.update(sha=s))
    return found


async def test_odd_deliveries_neither_crash_nor_stall_the_real_pull_request(
        merging: Merging) -> None:  # noqa: F811
    head = await merging.open()
    answers = [await _post(merging, name, p) for name, p in _odd_deliveries(merging, head)]
    assert all(a in (200, 202, 400, 413, 422) for a in answers), answers
    await merging.green()
    assert (await merging.merged())["sha"] == head
    store = merging.gitops.store

    async def looked_at() -> bool:  # every auto-merge key done with its deliveries
        rows = [r for r in await store.fetch("queue_list", None, None, 100)
                if r["key"].startswith(AUTOMERGE_KEYS)]
        return all(r["pending_deliveries"] == 0 and (r["state"] == "dead"
                                                     or waiting_for_a_tick(r)) for r in rows)

    await wait_until(looked_at, what="the odd deliveries looked at", store=store)
    assert len(merging.fake.merges) == 1 and merging.calls("PUT", "/merge") == 1
    [pull] = await store.fetch("statuses_of", [f"pull:{REPO}#7"])
    assert pull["status"] == "Ready" and pull["reason"] == "Merged", dict(pull)
    crashed = [(r["key"], r["message"]) for r in await store.fetch(
        "statuses_list", None, None, None, 100, None) if r["key"].startswith(AUTOMERGE_KEYS)
        and r["status"] == "Stalled" and "404 Not Found" not in r["message"]]
    assert not crashed  # a pull request GitHub does not have is a 404, never a crash


async def test_claude_status_in_another_repository_does_not_read_this_ones_pull(
        merging: Merging) -> None:  # noqa: F811
    fake, other = merging.fake, "octo-org/other"
    fake.install(INSTALLATION, other)
    fake.commit(other, {"README.md": "other\n"})
    fake.push_branch(other, "feature/y", {"README.md": "y\n"})
    fake.open_pull(other, 7, head="feature/y")
    head = await merging.open(labels=("hold",))
    await merging.says(head, "label `hold`")
    fake.permissions[(other, "dana-ops")] = "write"
    await send(merging.gitops, on_pull("/claude status", comment_id=7001, repo=other))

    async def answered() -> str | None:
        found = [c["body"] for c in fake.comments.get((other, 7), [])]
        return found[0] if found else None

    reply = await wait_until(answered, what="the reply", store=merging.gitops.store)
    assert "Auto-merge" not in reply and "hold" not in reply, reply


async def test_check_names_cannot_speak_in_the_apps_status_reply(
        aiohttp_client: Any, store: Store, dsn: str) -> None:
    """A check's name (a workflow's job, any installed App) lands in `/claude status`'s
    reply quoted: one line, inside its code span, no live mention."""
    m = await start(aiohttp_client, store, dsn, policy(checks="[]"))
    fake = m.fake
    head = await m.open()
    name = ("x` ok\n\n**p38: approved, merge at https://evil.example/approve** "
            "@octo-org/admins `y")
    run = fake.add_check_run(REPO, head, name, conclusion="failure", app="evil")
    await m.send(check_run_event(fake, REPO, run, INSTALLATION))
    await m.says(head, "evil.example")
    fake.permissions[(REPO, "dana-ops")] = "write"
    await send(m.gitops, on_pull("/claude status", comment_id=7101))

    async def answered() -> str | None:
        found = [c["body"] for c in fake.comments.get((REPO, 7), [])]
        return found[0] if found else None

    reply = await wait_until(answered, what="the reply", store=store)
    assert "@octo-org/admins" not in reply
    [line] = [x for x in reply.splitlines() if "evil.example" in x]
    assert line.startswith("- check `") and line.count("`") == 2, line
    assert line.index("`") < line.index("evil.example") < line.rindex("`"), line


async def test_the_api_refuses_odd_pull_request_numbers(merging: Merging) -> None:  # noqa: F811
    await merging.open()
    await merging.blocked_by("has not run")
    client = merging.gitops.client
    for raw in ("-1", "0", "7.0", "%EF%BC%97", "99999999999999", "7%00", "1e3"):
        response = await client.get(f"/api/pulls/{REPO}/{raw}")
        assert response.status in (400, 404), (raw, response.status)
    for query in ("state=bogus", "limit=100000", "limit=-1", "limit=abc"):
        response = await client.get(f"/api/pulls?{query}")
        assert response.status == 400, (query, response.status)
    response = await client.get(f"/api/pulls/{REPO}/007")
    assert response.status == 200 and (await response.json())["number"] == 7


async def test_a_check_run_whose_creation_answer_was_lost_is_made_once(
        merging: Merging) -> None:  # noqa: F811
    before = merging.calls("POST", "/check-runs")  # the manifests' own p38/reconcile run
    merging.fake.lose_answer_next("POST", rf"/repos/{REPO}/check-runs")
    head = await merging.open()
    await merging.says(head, "has not run")  # `shown` asserts one run per head
    await merging.gitops.settled()
    assert merging.calls("POST", "/check-runs") == before + 1
    await merging.green()
    assert (await merging.merged())["sha"] == head
    assert len([r for r in merging.fake.check_runs if r["name"] == CHECK]) == 1
