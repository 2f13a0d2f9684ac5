"""What auto-merge reads to judge a pull request, and how GitHub's answers become the pure
facts `conditions.judge` takes: the reads it needs from the GitHub provider (`PullReads`,
declared here since only auto-merge uses them), the Policy that governs a repository, and the
parsing of pull requests, check runs, commit statuses and reviews.

Reads happen only through the `ObserveContext` given to `observe`; parsing is pure. A reply
missing a field (GitHub adds fields, old objects lack new ones) reads as the cautious value:
an unknown `mergeable` is "still computing", a missing head repository is a fork.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from controller.manifests.models import AutoMerge, PolicySpec
from controller.reconcile.context import ObserveContext, ReadsKey
from controller.reconcile.globs import matches
from controller.reconcile.payloads import dig
from reconcilers.automerge.actions import CHECK_NAME
from reconcilers.automerge.conditions import Check, PullFacts, Review
from reconcilers.claude.task_actions import TASKS

WRITERS = frozenset({"admin", "maintain", "write"})
COUNTED_REVIEWS = frozenset({"APPROVED", "CHANGES_REQUESTED"})
_STATUS_STATES = {"pending": ("in_progress", None), "success": ("completed", "success"),
                  "failure": ("completed", "failure"), "error": ("completed", "error")}


class PullReads(Protocol):
    """What auto-merge reads from GitHub (the GitHub provider's reads). A list read with
    `bool` says whether it is all GitHub has (it lists a bounded number)."""

    async def pull_request(self, repo: str, number: int, *,
                           installation_id: int) -> Mapping[str, Any]: ...

    async def open_pulls(self, repo: str, *,
                         installation_id: int) -> list[Mapping[str, Any]]: ...

    async def pulls_of_commit(self, repo: str, sha: str, *,
                              installation_id: int) -> list[Mapping[str, Any]]: ...

    async def check_runs(self, repo: str, sha: str, *,
                         installation_id: int) -> tuple[list[Mapping[str, Any]], bool]: ...

    async def statuses(self, repo: str, sha: str, *,
                       installation_id: int) -> tuple[list[Mapping[str, Any]], bool]: ...

    async def reviews(self, repo: str, number: int, *,
                      installation_id: int) -> tuple[list[Mapping[str, Any]], bool]: ...

    async def paths(self, repo: str, number: int, *,
                    installation_id: int) -> tuple[list[str], bool]: ...

    async def permission(self, repo: str, login: str, *, installation_id: int) -> str: ...


PULLS: ReadsKey[PullReads] = ReadsKey("github")


@dataclass(frozen=True)
class Seen:
    """A pull request as GitHub has it at this reconcile, with what ran on its head."""

    pull: PullFacts
    title: str = ""
    globs: tuple[str, ...] = ()  # the protected globs `pull.files` was filtered with
    base_sha: str = ""
    checks: tuple[Check, ...] = ()
    reviews: tuple[Review, ...] = ()
    merge_commit: str | None = None
    tasks: tuple[int, ...] = ()  # the /claude tasks of this controller that made or worked on it

    def fingerprint(self) -> str:
        """Changes when anything the judgement reads changes (a merge GitHub refused is tried
        again only then)."""
        p = self.pull
        text = repr((p.head_sha, self.base_sha, p.mergeable, p.mergeable_state, p.labels,
                     p.draft, p.base_ref, p.unread,
                     sorted((c.name, c.status, c.conclusion or "") for c in self.checks),
                     sorted((r.login, r.state, r.writer) for r in self.reviews)))
        return hashlib.sha256(text.encode()).hexdigest()


async def governing(ctx: ObserveContext, repo: str) -> AutoMerge | None:
    """The `autoMerge` of the Policy manifest applied from the repository itself; None when
    none applies (auto-merge needs a Policy: without one nothing is merged)."""
    for applied in await ctx.applied_objects(repo):
        if applied.kind != "Policy":
            continue
        try:
            return PolicySpec.model_validate(applied.document.get("spec") or {}).auto_merge
        except ValidationError:
            return None
    return None


async def installation_of(ctx: ObserveContext, repo: str, known: Any) -> int | None:
    """The App installation on `repo`: as a delivery or the last reconcile said, else as the
    repository's manifest source recorded it."""
    if isinstance(known, int):
        return known
    source = await ctx.resource("manifests", repo)
    found = source.data.get("installation_id") if source is not None else None
    return found if isinstance(found, int) else None


async def read(ctx: ObserveContext, repo: str, number: int, installation_id: int,
               globs: Sequence[str], known_paths: Mapping[str, Any]) -> Seen:
    """Everything `judge` needs, read concurrently; the changed paths only when the head, the
    base or the protected `globs` differ from those `known_paths` was read for."""
    github = ctx.reads(PULLS)
    pull = await github.pull_request(repo, number, installation_id=installation_id)
    head = str(dig(pull, "head", "sha") or "")
    base_sha = str(dig(pull, "base", "sha") or "")
    title = str(pull.get("title") or "")
    if pull.get("merged") or pull.get("state") != "open":
        return Seen(facts(repo, number, pull, ()), title=title, base_sha=base_sha,
                    merge_commit=_str(pull.get("merge_commit_sha")))
    (runs, runs_all), (statuses, statuses_all), (reviews, reviews_all), tasks = \
        await asyncio.gather(
            github.check_runs(repo, head, installation_id=installation_id),
            github.statuses(repo, head, installation_id=installation_id),
            github.reviews(repo, number, installation_id=installation_id),
            ctx.reads(TASKS).of_pull(repo, number))
    cache = {"head": head, "base": base_sha, "globs": sorted(globs)}
    paths: tuple[str, ...]
    if {k: known_paths.get(k) for k in cache} == cache \
            and isinstance(known_paths.get("paths"), list):
        paths = tuple(str(p) for p in known_paths["paths"])
    else:
        listed, complete = await github.paths(repo, number, installation_id=installation_id)
        paths = tuple(listed) + (() if complete else (UNLISTED,))
    writers = await _writers(github, repo, installation_id, reviews)
    unread = tuple(what for what, complete in (("check runs", runs_all),
                                               ("commit statuses", statuses_all),
                                               ("reviews", reviews_all)) if not complete)
    untrusted = any(task.untrusted_input for task in tasks)
    return Seen(facts(repo, number, pull, protected(paths, globs), untrusted=untrusted,
                      unread=unread),
                title=title, globs=tuple(sorted(globs)), base_sha=base_sha,
                checks=tuple(check_runs(runs, head)) + tuple(statuses_as_checks(statuses, head)),
                reviews=tuple(parse_reviews(reviews, writers)),
                tasks=tuple(task.id for task in tasks))


UNLISTED = "(files GitHub did not list: more than 3,000)"


def protected_globs(spec: AutoMerge | None, manifests_folder: str) -> list[str]:
    """`protectedPaths`, and always the manifests folder (where the Policy itself lives,
    wherever P38_MANIFESTS_PATH puts it)."""
    globs = set(spec.protected_paths if spec is not None else [])
    globs.add(manifests_folder.rstrip("/") + "/**")
    return sorted(globs)


def protected(paths: Sequence[str], globs: Sequence[str]) -> tuple[str, ...]:
    """The paths worth remembering: those the protected globs name (and the mark that GitHub
    did not list them all); the judgement needs no others."""
    return tuple(p for p in paths if p == UNLISTED or any(matches(p, g) for g in globs))


def facts(repo: str, number: int, pull: Mapping[str, Any], files: Sequence[str], *,
          untrusted: bool = False, unread: tuple[str, ...] = ()) -> PullFacts:
    head_repo = dig(pull, "head", "repo", "full_name")
    base_repo = dig(pull, "base", "repo", "full_name") or repo
    labels = tuple(str(label.get("name")) for label in pull.get("labels") or []
                   if isinstance(label, dict) and label.get("name"))
    mergeable = pull.get("mergeable")
    return PullFacts(
        repo=repo, number=number, state=str(pull.get("state") or "open"),
        head_ref=str(dig(pull, "head", "ref") or ""), head_sha=str(dig(pull, "head", "sha") or ""),
        base_ref=str(dig(pull, "base", "ref") or ""), merged=bool(pull.get("merged")),
        draft=bool(pull.get("draft")), fork=head_repo != base_repo, labels=labels,
        mergeable=mergeable if isinstance(mergeable, bool) else None,
        mergeable_state=str(pull.get("mergeable_state") or "unknown"), files=tuple(files),
        untrusted=untrusted, default_branch=_str(dig(pull, "base", "repo", "default_branch")),
        unread=unread)


def check_runs(runs: Sequence[Mapping[str, Any]], head: str) -> list[Check]:
    """Every app's newest run of each name on the head (a re-run replaces the same app's
    earlier run; another app's never does), but auto-merge's own."""
    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for run in runs:
        name = run.get("name")
        if not isinstance(name, str) or name == CHECK_NAME:
            continue
        key = (str(dig(run, "app", "id")), name)
        if key not in newest or _id(run) > _id(newest[key]):
            newest[key] = run
    return [Check(name, str(r.get("head_sha") or head), str(r.get("status") or "queued"),
                  _str(r.get("conclusion"))) for (_, name), r in sorted(newest.items())]


def _id(run: Mapping[str, Any]) -> int:
    value = run.get("id")
    return value if isinstance(value, int) else -1


def statuses_as_checks(statuses: Sequence[Mapping[str, Any]], head: str) -> list[Check]:
    """Commit statuses (the combined status lists the newest of each context) as checks."""
    found = []
    for status in statuses:
        context, state = status.get("context"), status.get("state")
        if isinstance(context, str) and state in _STATUS_STATES:
            run_status, conclusion = _STATUS_STATES[str(state)]
            found.append(Check(context, head, run_status, conclusion))
    return found


def parse_reviews(reviews: Sequence[Mapping[str, Any]], writers: set[str]) -> list[Review]:
    return [Review(str(login), str(r.get("state") or "").upper(), str(login) in writers,
                   _str(r.get("commit_id")))
            for r in reviews if isinstance(login := dig(r, "user", "login"), str)]


def _bot(review: Mapping[str, Any]) -> bool:
    login = str(dig(review, "user", "login") or "")
    return dig(review, "user", "type") == "Bot" or login.endswith("[bot]")


async def _writers(github: PullReads, repo: str, installation_id: int,
                   reviews: Sequence[Mapping[str, Any]]) -> set[str]:
    """The reviewers whose approval or request for changes counts: people who may write (an
    App's bot is never one)."""
    logins = sorted({str(dig(r, "user", "login")) for r in reviews
                     if str(r.get("state") or "").upper() in COUNTED_REVIEWS
                     and dig(r, "user", "login") and not _bot(r)})
    roles = await asyncio.gather(*(github.permission(repo, login,
                                                     installation_id=installation_id)
                                   for login in logins))
    return {login for login, role in zip(logins, roles, strict=True) if role in WRITERS}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
