"""The manifest commands: validate, schema, plan (plan reads the database, never writes it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from controller.cli.common import settings_from, with_store
from controller.manifests import reference
from controller.manifests.loader import ManifestSet, Problem, load_dir
from controller.manifests.models import json_schema
from controller.store import Store
from reconcilers.gitops.manifests import decide as manifests_decide
from reconcilers.gitops.manifests import object_changes, snapshot_of


def _print_problems(manifests: ManifestSet) -> None:
    for problem in manifests.problems:
        print(problem, file=sys.stderr)


def _load(folder: str) -> ManifestSet:
    """The folder's manifests; an empty folder is a problem too (a plan of nothing would
    prune everything, and validating nothing proves nothing)."""
    manifests = load_dir(Path(folder))
    if manifests.ok and not manifests.objects:
        manifests.problems.append(Problem(folder, 1, 1, "no manifests found (*.yaml, *.yml)"))
    return manifests


def cmd_validate(args: argparse.Namespace) -> int:
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
          + (f" ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})" if kinds else ""))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(reference.render() if args.markdown else json.dumps(json_schema(), indent=2), end=""
          if args.markdown else "\n")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Exit 0: nothing would change; 2: something would; 1: the manifests are invalid or
    empty; 3: no database to compare with."""
    manifests = _load(args.dir)
    if not manifests.ok:
        _print_problems(manifests)
        print(f"{len(manifests.problems)} problem(s): nothing would be applied",
              file=sys.stderr)
        return 1

    def against(rows: list[Any]) -> int:
        plan = manifests_decide(snapshot_of(manifests, rows, source=args.source))
        changes = object_changes(plan)
        for action in changes:
            print(action.description)
        print(f"Plan ({args.source}): {plan.reason}.")
        return 2 if changes else 0

    async def applied(store: Store) -> int:
        # A database never migrated (a fresh clone) has applied nothing: every object is a
        # create. Plan reads only; it never migrates.
        return against(await store.fetch("applied_objects_of", args.source)
                       if await store.schema_version() >= APPLIED_OBJECTS_SINCE else [])

    def nothing_applied() -> int:
        print("(no database here yet: compared with nothing applied)", file=sys.stderr)
        return against([])

    return asyncio.run(with_store(settings_from(args), applied, need_schema=False,
                                   absent=nothing_applied))


APPLIED_OBJECTS_SINCE = 3  # the migration that created applied_objects
