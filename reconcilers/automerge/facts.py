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
    """What auto-merge reads from GitHub (the GitHub provider's reads)."""

    async def pull_request(self, repo: str, number: int, *,
                           installation_id: int) -> Mapping[str, Any]: ...

    async def open_pulls(self, repo: str, *,
                         installation_id: int) -> list[Mapping[str, Any]]: ...

    async def check_runs(self, repo: str, sha: str, *,
                         installation_id: int) -> list[Mapping[str, Any]]: ...

    async def statuses(self, repo: str, sha: str, *,
                       installation_id: int) -> list[Mapping[str, Any]]: ...

    async def reviews(self, repo: str, number: int, *,
                      installation_id: int) -> list[Mapping[str, Any]]: ...

    async def paths(self, repo: str, number: int, *,
                    installation_id: int) -> tuple[list[str], bool]: ...

    async def permission(self, repo: str, login: str, *, installation_id: int) -> str: ...


PULLS: ReadsKey[PullReads] = ReadsKey("github")


@dataclass(frozen=True)
class Seen:
    """A pull request as GitHub has it at this reconcile, with what ran on its head."""

    pull: PullFacts
    title: str = ""
    checks: tuple[Check, ...] = ()
    reviews: tuple[Review, ...] = ()
    merge_commit: str | None = None
    tasks: tuple[int, ...] = ()  # the /claude tasks of this controller that made or worked on it

    def fingerprint(self) -> str:
        """Changes when anything the judgement reads changes (a merge GitHub refused is tried
        again only then)."""
        p = self.pull
        text = repr((p.head_sha, p.mergeable, p.mergeable_state, p.labels, p.draft,
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
               spec: AutoMerge | None, known_paths: Mapping[str, Any]) -> Seen:
    """Everything `judge` needs, read concurrently; the paths only when the head (or the
    `protectedPaths`) is not the one `known_paths` was read for."""
    github = ctx.reads(PULLS)
    pull = await github.pull_request(repo, number, installation_id=installation_id)
    head = str(dig(pull, "head", "sha") or "")
    if pull.get("merged") or pull.get("state") != "open":
        return Seen(facts(repo, number, pull, ()), title=str(pull.get("title") or ""),
                    merge_commit=_str(pull.get("merge_commit_sha")))
    runs, statuses, reviews, tasks = await asyncio.gather(
        github.check_runs(repo, head, installation_id=installation_id),
        github.statuses(repo, head, installation_id=installation_id),
        github.reviews(repo, number, installation_id=installation_id),
        ctx.reads(TASKS).of_pull(repo, number))
    paths: tuple[str, ...]
    if known_paths.get("head") == head and known_paths.get("globs") == globs_of(spec) \
            and isinstance(known_paths.get("paths"), list):
        paths = tuple(str(p) for p in known_paths["paths"])
    else:
        listed, complete = await github.paths(repo, number, installation_id=installation_id)
        paths = tuple(listed) + (() if complete else (UNLISTED,))
    writers = await _writers(github, repo, installation_id, reviews)
    untrusted = any(task.untrusted_input for task in tasks)
    return Seen(facts(repo, number, pull, protected(paths, spec), untrusted=untrusted),
                title=str(pull.get("title") or ""),
                checks=tuple(check_runs(runs, head)) + tuple(statuses_as_checks(statuses, head)),
                reviews=tuple(parse_reviews(reviews, writers)),
                tasks=tuple(task.id for task in tasks))


UNLISTED = "(files GitHub did not list: more than 3,000)"


def globs_of(spec: AutoMerge | None) -> list[str]:
    return sorted(spec.protected_paths) if spec is not None else []


def protected(paths: Sequence[str], spec: AutoMerge | None) -> tuple[str, ...]:
    """The paths worth remembering: those `protectedPaths` names (and the mark that GitHub
    did not list them all); the judgement needs no others."""
    globs = globs_of(spec)
    return tuple(p for p in paths if p == UNLISTED or any(matches(p, g) for g in globs))


def facts(repo: str, number: int, pull: Mapping[str, Any], files: Sequence[str], *,
          untrusted: bool = False) -> PullFacts:
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
        untrusted=untrusted)


def check_runs(runs: Sequence[Mapping[str, Any]], head: str) -> list[Check]:
    """Every app's newest run of each name on the head, but auto-merge's own."""
    return [Check(str(r.get("name")), str(r.get("head_sha") or head),
                  str(r.get("status") or "queued"), _str(r.get("conclusion")))
            for r in runs if r.get("name") and r.get("name") != CHECK_NAME]


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
    return [Review(str(login), str(r.get("state") or ""), str(login) in writers)
            for r in reviews if isinstance(login := dig(r, "user", "login"), str)]


async def _writers(github: PullReads, repo: str, installation_id: int,
                   reviews: Sequence[Mapping[str, Any]]) -> set[str]:
    """The reviewers whose approval or request for changes counts: those who may write."""
    logins = sorted({str(dig(r, "user", "login")) for r in reviews
                     if r.get("state") in COUNTED_REVIEWS and dig(r, "user", "login")})
    roles = await asyncio.gather(*(github.permission(repo, login,
                                                     installation_id=installation_id)
                                   for login in logins))
    return {login for login, role in zip(logins, roles, strict=True) if role in WRITERS}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
