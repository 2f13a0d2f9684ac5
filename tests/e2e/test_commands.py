"""`/claude` command intake through the real app and the stateful fake GitHub: who may give a
command is decided before anything else; an allowed one gets 👀 and one answer quoting it, a
refused one a single reply saying why; bots and edits are ignored; a delivery twice, or
redelivered, answers once."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.e2e.test_gitops import REPO, GitOps, gitops  # noqa: F401 (the fixture)
from tests.helpers import SAMPLES, github_payload, wait_until

SAMPLE = json.loads((SAMPLES / "issue_comment" / "claude-command" / "payload.json").read_text())
ISSUE = SAMPLE["issue"]["number"]


def comment(body: str, *, comment_id: int, login: str = "dana-ops",
            association: str = "MEMBER", action: str = "created",
            kind: str = "User") -> dict[str, Any]:
    payload = copy.deepcopy(SAMPLE)
    payload["action"] = action
    payload["comment"].update(id=comment_id, body=body, author_association=association)
    payload["comment"]["user"].update(login=login, type=kind)
    return payload


async def send(to: GitOps, payload: dict[str, Any], guid: str | None = None) -> None:
    headers, body = github_payload("issue_comment", payload, guid=guid)
    response = await to.client.post("/webhooks/github", data=body, headers=headers)
    assert response.status in (200, 202), await response.text()


def replies(of: GitOps) -> list[str]:
    return [c["body"] for c in of.fake.comments.get((REPO, ISSUE), [])]


async def test_commands_are_authorised_acknowledged_and_answered_once(
        gitops: GitOps) -> None:  # noqa: F811
    fake = gitops.fake
    fake.issues[REPO] = [{"number": ISSUE, "state": "open", "title": "t", "body": "",
                          "labels": []}]
    fake.permissions[(REPO, "dana-ops")] = "write"
    fake.permissions[(REPO, "reader")] = "read"

    status = comment("/claude status", comment_id=101)
    await send(gitops, status, guid="command-guid-1")
    await send(gitops, status, guid="command-guid-1")  # the same delivery twice
    await send(gitops, status, guid="command-guid-2")  # GitHub's redelivery: a new GUID
    await send(gitops, comment("/claude status", comment_id=102, login="eve",
                               association="NONE"))
    await send(gitops, comment("/claude help", comment_id=103, login="reader"))
    await send(gitops, comment("/claude status", comment_id=104, login="project38[bot]",
                               kind="Bot"))
    await send(gitops, comment("/claude help", comment_id=105, action="edited"))
    await send(gitops, comment("/claude add a README section about X", comment_id=106))

    async def answered() -> list[str] | None:
        found = replies(gitops)
        return found if len(found) == 4 else None

    found = await wait_until(answered, what="four replies", store=gitops.store)
    await gitops.settled()
    assert len(replies(gitops)) == 4  # nothing more came
    by_comment = {c: next(b for b in found if f"p38:command:{c} " in b) for c in
                  (101, 102, 103, 106)}
    assert by_comment[101].startswith("> /claude status\n\n@dana-ops no /claude task")
    assert "the killswitch is off" in by_comment[101]
    assert "@eve not accepted: @eve is NONE here; the Policy lets OWNER, MEMBER" in \
        by_comment[102]
    assert "@reader not accepted: @reader has read permission on this repository; " \
        "/claude needs write" in by_comment[103]
    # No Anthropic key in this controller: the task is a dry run, and says what it would do.
    assert "recorded as a dry run, nothing was done: no ANTHROPIC_API_KEY: would have asked " \
        "claude-sonnet-5-5 to 'add a README section about X' on octo-org/infra" in \
        by_comment[106]
    # 👀 on the allowed commands only; nothing for the bot, the edit or the refused.
    assert fake.reactions == {(REPO, 101): ["eyes"], (REPO, 106): ["eyes"]}
    # Each commenter's permission was read once at most (cached), the bot's never.
    asked = [q.url.path for q in fake.requests if q.url.path.endswith("/permission")]
    assert sorted(set(asked)) == sorted(asked)
    assert not any("project38" in p for p in asked)


async def test_stop_holds_every_action_and_resume_releases_them(
        gitops: GitOps) -> None:  # noqa: F811
    """`/claude stop` turns the repository's killswitch on: the next command's 👀 and reply
    are held (and audited), not sent; `/claude resume` turns it off and they go out at once."""
    fake = gitops.fake
    fake.issues[REPO] = [{"number": ISSUE, "state": "open", "title": "t", "body": "",
                          "labels": []}]
    fake.permissions[(REPO, "dana-ops")] = "admin"
    await send(gitops, comment("/claude stop", comment_id=201))

    async def replied(n: int) -> list[str] | None:
        found = replies(gitops)
        return found if len(found) >= n else None

    [stopped] = await wait_until(lambda: replied(1), what="the stop answered",
                                 store=gitops.store)
    assert "the killswitch is on for octo-org/infra" in stopped
    assert await gitops.store.pool.fetchval("SELECT by_whom FROM killswitches") == "@dana-ops"

    await send(gitops, comment("/claude help", comment_id=202))

    async def held() -> bool:
        row = await gitops.store.fetchrow("statuses_of", [f"command:{REPO}#{ISSUE}@202"])
        return row is not None and row["reason"] == "Killswitch"

    await wait_until(held, what="the help held", store=gitops.store)
    assert len(replies(gitops)) == 1 and (REPO, 202) not in fake.reactions
    status = await gitops.store.fetchrow("statuses_of", [f"command:{REPO}#{ISSUE}@202"])
    assert "/claude stop by @dana-ops in octo-org/infra" in status["message"]

    await send(gitops, comment("/claude resume", comment_id=203))
    found = await wait_until(lambda: replied(3), what="resume and the held help answered",
                             store=gitops.store)
    assert any("p38:command:202 " in b and "`/claude retry`" in b for b in found)
    assert any("the killswitch of octo-org/infra is off" in b for b in found)
    assert fake.reactions[(REPO, 202)] == ["eyes"] and fake.reactions[(REPO, 203)] == ["eyes"]
    assert await gitops.store.pool.fetchval("SELECT count(*) FROM killswitches") == 0


async def test_approve_releases_a_held_action(gitops: GitOps) -> None:  # noqa: F811
    """`/claude approve KEY` does what `p38 approve` does, recorded with who; a key no action
    has, or one not waiting, is answered with why and approves nothing."""
    fake, store = gitops.fake, gitops.store
    fake.issues[REPO] = [{"number": ISSUE, "state": "open", "title": "t", "body": "",
                          "labels": []}]
    fake.permissions[(REPO, "dana-ops")] = "write"
    await store.fetchrow("action_record", "rollback:svc:42", "railway.rollback", {}, "held",
                         "held: waiting for approval", f"service:{REPO}/api", None, "roll back",
                         None)
    await store.pool.execute(
        "INSERT INTO work_queue (key, kind, not_before, wait_kind)"
        " VALUES ($1, 'service', now() + interval '60 seconds', 'requeue')", f"service:{REPO}/api")
    await send(gitops, comment("/claude approve rollback:svc:42", comment_id=301))
    await send(gitops, comment("/claude approve nothing:here", comment_id=302))

    async def answered() -> list[str] | None:
        found = replies(gitops)
        return found if len(found) == 2 else None

    found = await wait_until(answered, what="two answers", store=store)
    assert any("approved `rollback:svc:42` (railway.rollback)" in b for b in found)
    assert any("no action has the key `nothing:here`" in b for b in found)
    approvals = await store.pool.fetch("SELECT idempotency_key, approved_by FROM approvals")
    assert [(r["idempotency_key"], r["approved_by"]) for r in approvals] == \
        [("rollback:svc:42", "@dana-ops")]

    async def looked_again() -> bool:  # at once, not at its requeue a minute later
        return bool(await store.fetch("audit_list", f"service:{REPO}/api", None, None, 5))

    await wait_until(looked_again, what="the held key looked at again", timeout=20,
                     store=store)


async def test_a_comment_cannot_approve_another_repositorys_action(
        gitops: GitOps) -> None:  # noqa: F811
    """An admin of this repository names the held rollback of another source's service: the
    answer says why, nothing is approved, the action stays held."""
    fake, store = gitops.fake, gitops.store
    fake.issues[REPO] = [{"number": ISSUE, "state": "open", "title": "t", "body": "",
                          "labels": []}]
    fake.permissions[(REPO, "dana-ops")] = "admin"
    await store.fetchrow("action_record", "rollback:prod:7", "railway.rollback", {}, "held",
                         "held: waiting for approval", "service:octo-org/prod/api", None,
                         "roll back prod", None)
    await send(gitops, comment("/claude approve rollback:prod:7", comment_id=311,
                               association="OWNER"))

    async def answered() -> list[str] | None:
        found = replies(gitops)
        return found or None

    [reply] = await wait_until(answered, what="the answer", store=store)
    assert ("`rollback:prod:7` was not approved: @dana-ops writes in octo-org/infra and may "
            "act only on its actions, not on octo-org/prod.") in reply
    assert await store.pool.fetchval("SELECT count(*) FROM approvals") == 0
    assert await store.pool.fetchval(
        "SELECT status FROM actions WHERE idempotency_key = 'rollback:prod:7'") == "held"


KILLSWITCH_POLICY = """apiVersion: p38/v1
kind: Policy
metadata: {name: default}
spec:
  killswitch: true
"""


async def test_each_killswitch_is_lifted_by_what_set_it(gitops: GitOps) -> None:  # noqa: F811
    """The Policy's killswitch and a `/claude stop` are both on: `/claude resume` lifts the
    comment's stop (before, it refused while the Policy's was on, and the stop outlived it), and
    its answer, which no killswitch holds, names the switch that remains."""
    fake, store = gitops.fake, gitops.store
    fake.issues[REPO] = [{"number": ISSUE, "state": "open", "title": "t", "body": "",
                          "labels": []}]
    fake.permissions[(REPO, "dana-ops")] = "admin"
    await gitops.push({"README.md": "infra\n", "manifests/policy.yaml": KILLSWITCH_POLICY})
    row = await store.fetchrow("statuses_of", [f"policy:{REPO}/default"])
    assert row is not None and row["reason"] == "KillswitchOn"

    async def switches() -> list[str]:
        return [row["by_whom"] for row in await store.fetch("killswitches_all")]

    await send(gitops, comment("/claude stop", comment_id=401))

    async def stopped() -> bool:
        return await switches() == ["@dana-ops"]

    await wait_until(stopped, what="the comment's stop on", store=store)
    await send(gitops, comment("/claude resume", comment_id=402))

    async def answered() -> list[str] | None:
        found = [b for b in replies(gitops) if "p38:command:402 " in b]
        return found or None

    [answer] = await wait_until(answered, what="the resume answered", store=store)
    assert await switches() == []  # the comment's stop is lifted though the Policy's is on
    assert ("no `/claude stop` holds octo-org/infra now; the killswitch stays on, held by "
            "Policy/default in octo-org/infra (commit its killswitch off), which `/claude "
            "resume` does not lift.") in answer
