"""Pull requests that merge themselves (`pull:owner/repo#N`, issue 21): the pull request
tracker of `reconcilers/github/pulls.py`, which also judges every open pull request the
repository's Policy puts in scope and acts on the judgement.

`observe` reads the pull request, what ran on its CURRENT head (check runs and commit
statuses), its reviews (whose authors' permission decides whether they count), the paths it
changes and the `/claude` tasks that made it, only for a pull request auto-merge may concern (a
Policy manifest applies to the repository, auto-merge is on, the head branch matches); others
are tracked from their deliveries alone, without a call. `decide` is pure: one step per
reconcile, in this order: a merged pull request has its branch deleted and its check run
completed; an open one in scope is merged with the head SHA that was judged (then looked at
again at once), or updated when it is behind, or waits for the next delivery (a requeue wait:
a check, a review, a label ends it) with the blockers in words on its `p38/automerge` check run.
A merge GitHub refused (405, 409, 422) is tried again only when something it was judged on
changed: looking again, never a retry loop. No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from controller.reconcile.context import ActionRecord, ObserveContext
from controller.reconcile.errors import NotConfigured
from controller.reconcile.globs import matches
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import dig, installation_id
from controller.reconcile.plan import Action, Plan, Transition
from controller.reconcile.reconciler import Event, Watch
from reconcilers.automerge import facts as read_facts
from reconcilers.automerge.actions import (
    CHECK_NAME,
    MERGE_KIND,
    DeleteBranch,
    MergePull,
    UpdateBranch,
    blockers_markdown,
    check_action,
    describe_check,
    merge_title,
)
from reconcilers.automerge.conditions import Judgement, judge
from reconcilers.automerge.facts import Seen
from reconcilers.github.pulls import (
    CHECK_EVENTS,
    ISSUE_EVENTS,
    PULL_EVENTS,
    PullRequests,
    issue_keys,
    pull_keys,
)
from reconcilers.github.pulls import check_keys as tracked_check_keys
from reconcilers.gitops.reporting import short
from reconcilers.tracking import TrackedSnapshot

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy

RECHECK_SECONDS = 3.0  # GitHub computing mergeability sends no delivery when it is done
SAFETY_SECONDS = 600.0  # a wait a delivery ends; this bounds it if the delivery never comes


def check_keys(event: Event) -> Iterable[str]:
    """A check run, suite or workflow run names the pull requests of its head (a fork's
    head: none, and `Commits` looks its commit up). Auto-merge's own check run is no news."""
    container = event.payload.get(CHECK_EVENTS[event.name])
    if isinstance(container, dict) and container.get("name") == CHECK_NAME:
        return ()
    return tracked_check_keys(event)


@dataclass(frozen=True)
class PullSnapshot(TrackedSnapshot):
    seen: Seen | None = None  # GitHub's answers, when auto-merge may concern it
    unseen: str = ""  # why GitHub was not read, when it may
    installation: int | None = None
    attempt: ActionRecord | None = None  # the last merge action's record
    first_attempt: ActionRecord | None = None  # the merge of the current head, if any
    update: ActionRecord | None = None
    paths: Mapping[str, Any] = field(default_factory=dict)


class AutoMergePulls(PullRequests):
    owns: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, manifests_folder: str = "manifests/") -> None:
        self.folder = manifests_folder  # always protected: the Policy itself lives there

    def watches(self) -> Sequence[Watch]:
        return (Watch("github", PULL_EVENTS, pull_keys),
                Watch("github", frozenset(CHECK_EVENTS), check_keys),
                Watch("github", ISSUE_EVENTS, issue_keys))

    async def observe(self, ctx: ObserveContext, key: str) -> PullSnapshot:
        tracked = await super().observe(ctx, key)
        base = {f: getattr(tracked, f) for f in ("key", "current", "recent", "reread", "owners")}
        repo, _, n = key_name(key).rpartition("#")
        data = dict(tracked.current.data) if tracked.current else {}
        automerge = dict(data.get("automerge") or {})
        spec = await read_facts.governing(ctx, repo)
        head_ref = data.get("head_ref")
        for item in tracked.recent:
            head_ref = dig(item.payload, "pull_request", "head", "ref") or head_ref
        concerned = spec is not None and spec.enabled and (
            not isinstance(head_ref, str) or any(matches(head_ref, g) for g in spec.branches))
        unfinished = bool(automerge) and not automerge.get("done")
        if automerge.get("done") and tracked.current is not None \
                and tracked.current.state == "merged":
            concerned = False  # merged, its branch and check run seen to: nothing to read
        if not (n.isascii() and n.isdigit()) or not (concerned or unfinished):
            return PullSnapshot(**base)
        known = data.get("installation_id")
        for item in tracked.recent:
            known = installation_id(item.payload) or known
        installation = await read_facts.installation_of(ctx, repo, known)
        if installation is None:
            return PullSnapshot(**base, unseen="no GitHub App installation is known for "
                                                f"{repo}")
        paths = dict(automerge.get("paths") or {})
        globs = read_facts.protected_globs(spec, self.folder)
        try:
            seen = await read_facts.read(ctx, repo, int(n), installation, globs, paths)
        except NotConfigured as exc:
            return PullSnapshot(**base, unseen=str(exc), installation=installation)
        attempt = automerge.get("attempt") or {}
        update = automerge.get("update") or {}
        return PullSnapshot(
            **base, seen=seen, installation=installation,
            attempt=await ctx.action(attempt["key"]) if attempt.get("key") else None,
            first_attempt=await ctx.action(merge_key(repo, int(n), seen.pull.head_sha)),
            update=await ctx.action(update["key"]) if update.get("key") else None,
            paths=paths)

    def decide(self, snapshot: TrackedSnapshot, policy: Policy) -> Plan:
        if not isinstance(snapshot, PullSnapshot) or snapshot.seen is None:
            plan = super().decide(snapshot, policy)
            unseen = snapshot.unseen if isinstance(snapshot, PullSnapshot) else ""
            if unseen and plan.decision in ("UpToDate", "NothingObserved"):
                return Plan("NotJudged", f"auto-merge could not read it: {unseen}",
                            status="Blocked")
            return plan
        return Judge(snapshot, policy, self.folder).plan()


MAX_TRIES = 5  # merges GitHub refused on one head before it waits for a person


def merge_key(repo: str, number: int, sha: str, tries: int = 0) -> str:
    """The merge of one head (a later attempt on it, after a refusal, is numbered)."""
    return f"github.merge:{repo}#{number}@{sha}" + (f":{tries + 1}" if tries else "")


class Judge:
    """One decision on a pull request GitHub was read for (a helper of `decide`: pure)."""

    def __init__(self, snapshot: PullSnapshot, policy: Policy, folder: str) -> None:
        assert snapshot.seen is not None and snapshot.installation is not None
        self.s, self.seen, self.pull = snapshot, snapshot.seen, snapshot.seen.pull
        self.policy = policy
        self.globs = read_facts.protected_globs(policy.spec.auto_merge, folder)
        self.spec = policy.spec.auto_merge.model_copy(update={"protected_paths": self.globs})
        self.installation = snapshot.installation
        current = snapshot.current
        self.before: dict[str, Any] = dict(current.data) if current else {}
        self.was: dict[str, Any] = dict(self.before.get("automerge") or {})
        self.now: dict[str, Any] = {k: v for k, v in self.was.items()
                                    if k in ("check", "attempt", "tries", "update", "merge",
                                             "deleted")}
        self.actions: list[Action] = []

    def plan(self) -> Plan:
        pull = self.pull
        if self.policy.governed_by is None:
            judged = Judgement(False, "no Policy manifest applies to this repository")
        else:
            judged = judge(pull, self.seen.checks, self.seen.reviews, self.spec)
        self.now.update(in_scope=judged.in_scope, why=judged.why, head=pull.head_sha,
                        paths={"head": pull.head_sha, "base": self.seen.base_sha,
                               "globs": list(self.seen.globs), "paths": list(pull.files)})
        if (self.now.get("tries") or {}).get("sha") != pull.head_sha:
            self.now.pop("tries", None)  # a new head: its merges are counted afresh
        if pull.merged:
            decision, reason, wait = self._merged()
        elif pull.state != "open":
            decision, reason, wait = self._closed()
        elif not judged.in_scope:
            decision, reason, wait = self._out_of_scope(judged)
        else:
            decision, reason, wait = self._in_scope(judged)
        return Plan(decision, reason, actions=tuple(self.actions), transition=self._transition(),
                    requeue_after=wait, revision=pull.head_sha)

    # --- the four cases -------------------------------------------------------------------

    def _merged(self) -> tuple[str, str, float | None]:
        pull, seen = self.pull, self.s
        record = seen.attempt if _merged_by(seen.attempt) else \
            seen.first_attempt if _sent(seen.first_attempt) else None
        merge = dict(self.was.get("merge") or {})
        if not merge:
            result = dict(record.result or {}) if record is not None else {}
            merge = {"sha": pull.head_sha, "commit": self.seen.merge_commit,
                     "method": result.get("method") if record else None,
                     "by": "project38" if record is not None else "someone else"}
        in_scope = bool(self.was.get("in_scope")) or record is not None
        self.now.update(merge=merge, blockers=[], in_scope=in_scope,
                        why=self.was.get("why", "") if in_scope else self.now["why"])
        if in_scope:
            self._show("success", "Merged", f"Merged {short(pull.head_sha)}"
                       + (f" ({merge['method']})" if merge.get("method") else "")
                       + (f" as {short(merge.get('commit'))}." if merge.get("commit") else "."))
            if self.spec.delete_branch and not pull.fork and not self.was.get("deleted") \
                    and any(matches(pull.head_ref, g) for g in self.spec.branches):
                params = DeleteBranch(repo=pull.repo, installation_id=self.installation,
                                      branch=pull.head_ref, sha=pull.head_sha)
                self.actions.append(params.action(
                    f"github.delete-branch:{pull.repo}#{pull.number}@{pull.head_sha}",
                    description=f"delete the merged branch {pull.head_ref}"))
                self.now["deleted"] = True
        self.now["done"] = True
        return "Merged", f"merged at {short(pull.head_sha)} by {merge['by']}", None

    def _closed(self) -> tuple[str, str, float | None]:
        self.now.update(blockers=[], done=True)
        if self.was.get("in_scope"):
            self._show("neutral", "Closed without merging", "The pull request was closed; "
                                                            "nothing was merged.")
        return "Closed", "closed without merging", None

    def _out_of_scope(self, judged: Judgement) -> tuple[str, str, float | None]:
        self.now.update(blockers=[], done=True)
        if self.was.get("in_scope"):  # it was shown a check run: say it no longer applies
            self._show("neutral", "Auto-merge does not apply", judged.why)
        return "OutOfScope", f"auto-merge does not apply: {judged.why}", None

    def _in_scope(self, judged: Judgement) -> tuple[str, str, float | None]:
        pull, policy = self.pull, self.policy
        blockers = list(judged.blockers)
        recheck = judged.recheck
        if list(self.seen.globs) != self.globs:  # the Policy changed between read and judge
            blockers.append("the Policy changed while it was read: looked at again")
            recheck = True
        pending = self._merged_not_seen()
        if pending:
            blockers.append(pending)
            recheck = True
        refused = self._refused()
        if refused and not blockers:
            blockers.append(refused)
        update_refused = self._update_refused()
        if update_refused and judged.behind:
            blockers.append(f"GitHub refused to update the branch: {update_refused}")
        self.now.update(blockers=blockers, done=False)
        rechecks = int(self.was.get("rechecks") or 0) + 1 if recheck else 0
        self.now["rechecks"] = rechecks
        if not blockers:
            return self._merge()
        summary = blockers_markdown(blockers)
        if judged.behind and not update_refused:
            params = UpdateBranch(repo=pull.repo, installation_id=self.installation,
                                  number=pull.number, expected_head_sha=pull.head_sha)
            key = f"github.update-branch:{pull.repo}#{pull.number}@{pull.head_sha}"
            self.actions.append(params.action(key, description=f"update {pull.head_ref} with "
                                                               f"{pull.base_ref}"))
            self.now["update"] = {"key": key, "sha": pull.head_sha}
        self._show(None, f"Waiting: {len(blockers)} condition(s) unmet", summary)
        # GitHub computing sends no delivery when done: looked at again, less and less often.
        wait = min(SAFETY_SECONDS, RECHECK_SECONDS * 2 ** (rechecks - 1)) if recheck \
            else SAFETY_SECONDS
        if policy.killswitch:
            blockers.append(f"the killswitch is on ({policy.killswitch_by})")
        return "Waiting", "; ".join(blockers), wait

    def _merge(self) -> tuple[str, str, float | None]:
        pull = self.pull
        tries = dict(self.now.get("tries") or {"sha": pull.head_sha, "n": 0})
        key = merge_key(pull.repo, pull.number, pull.head_sha, int(tries["n"]))
        params = MergePull(repo=pull.repo, installation_id=self.installation, number=pull.number,
                           sha=pull.head_sha, method=self.spec.method,
                           title=merge_title(self._title(), pull.number))
        held = MERGE_KIND in self.policy.approval_required
        self._show(None, "All conditions hold: merging",
                   f"Every condition holds on {short(pull.head_sha)}; merging ({self.spec.method})."
                   + (f"\n\nThe merge waits for approval: `p38 approve {key}`." if held else ""))
        self.actions.append(params.action(key, description=f"merge #{pull.number} at "
                                                           f"{short(pull.head_sha)} "
                                                           f"({self.spec.method})"))
        self.now["attempt"] = {"key": key, "sha": pull.head_sha,
                               "facts": self.seen.fingerprint()}
        self.now["tries"] = {"sha": pull.head_sha, "n": int(tries["n"]) + 1}
        return "Merging", f"every condition holds on {short(pull.head_sha)}", 0.0

    # --- helpers ----------------------------------------------------------------------------

    def _refused(self) -> str | None:
        """Why GitHub refused the last merge of this head, while nothing it was judged on has
        changed since (any change forgets it: the merge is tried again), or once it refused
        MAX_TRIES merges of this head."""
        attempt, record = self.was.get("attempt") or {}, self.s.attempt
        if record is None or record.status != "succeeded" or (record.result or {}).get("merged"):
            return None
        if attempt.get("sha") != self.pull.head_sha:
            return None
        why = str((record.result or {}).get("refused") or "refused")
        if int((self.now.get("tries") or {}).get("n") or 0) >= MAX_TRIES:
            return (f"GitHub refused the merge of {short(self.pull.head_sha)} {MAX_TRIES} "
                    f"times, last: {why} (a new head, or a person, is needed)")
        if attempt.get("facts") != self.seen.fingerprint():
            self.now.pop("attempt", None)  # forgotten: what it was refused on has changed
            return None
        return (f"GitHub refused the merge of {short(self.pull.head_sha)}: {why} (tried "
                "again when something changes)")

    def _merged_not_seen(self) -> str | None:
        """The merge of this head succeeded, yet GitHub still reads it open (a replica behind):
        never a second merge; look again."""
        attempt, record = self.was.get("attempt") or {}, self.s.attempt
        if attempt.get("sha") == self.pull.head_sha and _merged_by(record):
            return f"merged at {short(self.pull.head_sha)}; GitHub does not say so yet"
        return None

    def _update_refused(self) -> str | None:
        update, record = self.was.get("update") or {}, self.s.update
        if update.get("sha") != self.pull.head_sha or record is None \
                or record.status != "succeeded" or (record.result or {}).get("updated"):
            return None
        return str((record.result or {}).get("refused") or "refused")

    def _show(self, conclusion: Literal["success", "neutral", "cancelled"] | None, title: str,
              summary: str) -> None:
        """Plan the check run on the head when what it shows changed."""
        pull = self.pull
        params, digest = check_action(pull.repo, self.installation, pull.number,
                                      pull.head_sha, conclusion=conclusion, title=title,
                                      summary=summary)
        was = dict(self.was.get("check") or {})
        if (was.get("sha"), was.get("digest")) == (pull.head_sha, digest):
            return
        n = int(was.get("n") or 0) + 1  # each write its own key: words may come back
        self.actions.insert(0, params.action(
            f"github.automerge-check:{pull.repo}#{pull.number}@{pull.head_sha}:{n}:"
            f"{digest[:12]}",
            description=describe_check(params)))
        self.now["check"] = {"sha": pull.head_sha, "digest": digest, "n": n}

    def _title(self) -> str:
        return self.seen.title or str(self.before.get("title")
                                      or f"Pull request #{self.pull.number}")

    def _transition(self) -> Transition | None:
        pull = self.pull
        state = "merged" if pull.merged else pull.state
        data = {**self.before, "title": self._title(), "head_sha": pull.head_sha,
                "head_ref": pull.head_ref, "base_ref": pull.base_ref, "draft": pull.draft,
                "installation_id": self.installation, "automerge": self.now}
        current = self.s.current
        if current is not None and current.state == state and current.data == data:
            return None
        if current is not None and not self.s_allows(current.state, state):
            state = current.state  # (a merged pull request stays merged)
        return Transition(from_state=current.state if current else None, to_state=state,
                          data=data, expected_version=current.version if current else None,
                          reason=f"read from GitHub: {state} at {short(pull.head_sha)}")

    def s_allows(self, current: str, target: str) -> bool:
        return AutoMergePulls.machine.allows(current, target)


def _sent(record: ActionRecord | None) -> bool:
    """The merge of this head was sent to GitHub (its answer may have been lost: a pull
    request merged at that head was merged by it)."""
    return record is not None and record.status in ("succeeded", "failed", "running") and \
        (record.status != "succeeded" or bool((record.result or {}).get("merged")))


def _merged_by(record: ActionRecord | None) -> bool:
    return record is not None and record.status == "succeeded" and \
        bool((record.result or {}).get("merged"))
