"""The manifest commands: validate, schema, plan (plan reads the database, never writes it).

What a command finds is its output (stdout: one `path:line:col: message` per problem; plan:
one line per planned change, its changed fields' old -> new values, and the plan's line);
validate's summary and the problem count go to stderr, so `p38 validate | grep` sees only
the problems. A folder that is not there and a source the controller does not know are one
line on stderr: exit 2 for validate, exit 1 for plan (whose 2 means "changes", as with
`terraform plan -detailed-exitcode`, so a script never reads a typo as pending changes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controller.cli.common import settings_from, shown, with_store
from controller.manifests import reference
from controller.manifests.loader import ManifestSet, Problem, load_dir, not_a_folder
from controller.manifests.models import json_schema
from controller.store import Store
from reconcilers.gitops.diff import ObjectState, value_changes
from reconcilers.gitops.manifest_decide import LOCAL_SOURCE, object_changes, snapshot_of
from reconcilers.gitops.manifest_decide import decide as manifests_decide

EXIT_USAGE = 2
EXIT_PLAN_ERROR = 1  # plan's 2 means "changes"


def _print_problems(manifests: ManifestSet) -> None:
    for problem in manifests.problems:
        print(shown(problem))


def _missing_folder(command: str, folder: str, code: int = EXIT_USAGE) -> int | None:
    """`code` with one line when the folder argument is no folder (absent, a file)."""
    why = not_a_folder(Path(folder))
    if why is None:
        return None
    print(f"p38 {command}: {Path(folder).absolute()}: {why}", file=sys.stderr)
    return code


def _load(folder: str) -> ManifestSet:
    """The folder's manifests; an empty folder is a problem too (a plan of nothing would
    prune everything, and validating nothing proves nothing)."""
    manifests = load_dir(Path(folder))
    if manifests.ok and not manifests.objects:
        manifests.problems.append(Problem(folder, 1, 1, "no manifests found (*.yaml, *.yml)"))
    return manifests


def cmd_validate(args: argparse.Namespace) -> int:
    if (refused := _missing_folder("validate", args.dir)) is not None:
        return refused
    manifests = _load(args.dir)
    _print_problems(manifests)
    if not manifests.ok:
        files = len({p.path for p in manifests.problems})
        print(f"{len(manifests.problems)} problem(s) in {files} of {manifests.files} "
              "file(s) read" if manifests.files else
              f"{len(manifests.problems)} problem(s); no manifest file was read",
              file=sys.stderr)
        return 1
    kinds = Counter(o.kind for o in manifests.objects)
    print(f"ok: {len(manifests.objects)} object(s) in {manifests.files} file(s)"
          + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""),
          file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(reference.render() if args.markdown else json.dumps(json_schema(), indent=2), end=""
          if args.markdown else "\n")
    return 0


def _unknown_source(source: str, known: list[str], *, database: bool) -> int:
    names = ", ".join(shown(s) for s in known)
    where = f"the known sources are {names}" if database else \
        f"there is no database here, so the only known source is {names}"
    print(f"p38 plan: --source {shown(source)} is not a source this controller knows: "
          f"{where} (a GitHub source is OWNER/NAME)", file=sys.stderr)
    return EXIT_PLAN_ERROR


def _plan_lines(manifests: ManifestSet, rows: list[Any], source: str) -> tuple[list[str], str]:
    """Each change (`+`, `~`, `-` with kind/name), each update followed by its fields' old ->
    new values (secrets redacted); and the plan's one-line reason."""
    snapshot = snapshot_of(manifests, rows, source=source)
    plan = manifests_decide(snapshot)
    applied: Mapping[tuple[str, str], ObjectState] = {(o.kind, o.name): o
                                                      for o in snapshot.applied}
    desired: Mapping[tuple[str, str], ObjectState] = {(o.kind, o.name): o
                                                      for o in snapshot.desired}
    lines: list[str] = []
    for action in object_changes(plan):
        lines.append(shown(action.description))
        ident = (action.params["kind"], action.params["name"])
        if ident in applied and ident in desired:
            lines.extend(f"    {shown(change)}" for change in value_changes(
                applied[ident].document, desired[ident].document))
    return lines, plan.reason


def cmd_plan(args: argparse.Namespace) -> int:
    """Exit 0: nothing would change; 2: something would; 1: the manifests are invalid or
    empty, the folder is not there, or the source is unknown; 3: no database to compare
    with."""
    if (refused := _missing_folder("plan", args.dir, EXIT_PLAN_ERROR)) is not None:
        return refused

    def against(rows: list[Any]) -> int:
        manifests = _load(args.dir)
        if not manifests.ok:
            _print_problems(manifests)
            print(f"{len(manifests.problems)} problem(s): nothing would be applied",
                  file=sys.stderr)
            return 1
        lines, reason = _plan_lines(manifests, rows, args.source)
        for line in lines:
            print(line)
        print(f"Plan ({shown(args.source)}): {reason}.")
        return 2 if lines else 0

    async def applied(store: Store) -> int:
        # A database never migrated (a fresh clone) has applied nothing: every object is a
        # create. Plan reads only; it never migrates.
        migrated = await store.schema_version() >= APPLIED_OBJECTS_SINCE
        known = sorted({LOCAL_SOURCE} | ({r["name"] for r in await store.fetch(
            "manifest_sources_known")} if migrated else set()))
        if args.source not in known:
            return _unknown_source(args.source, known, database=True)
        return against(await store.fetch("applied_objects_of", args.source) if migrated
                       else [])

    def nothing_applied() -> int:
        if args.source != LOCAL_SOURCE:
            return _unknown_source(args.source, [LOCAL_SOURCE], database=False)
        print("(no database here yet: compared with nothing applied)", file=sys.stderr)
        return against([])

    return asyncio.run(with_store(settings_from(args), applied, need_schema=False,
                                   absent=nothing_applied))


APPLIED_OBJECTS_SINCE = 3  # the migration that created applied_objects
