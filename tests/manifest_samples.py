"""A manifests folder for tests, copied from tests/samples/repository/ (8 objects in 5 files,
with the hand-written heartbeat agent's code beside it). Tests never read the working tree's
`manifests/`: a user edits it, as the README tells them to."""

from __future__ import annotations

import shutil
from pathlib import Path

REPOSITORY = Path(__file__).parent / "samples" / "repository"
MANIFESTS = REPOSITORY / "manifests"  # read only; copy it before changing anything


def sample_manifests(root: Path) -> Path:
    """Copy the sample repository's `manifests/` and `agents/` into `root`; the manifests
    folder."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MANIFESTS, root / "manifests")
    shutil.copytree(REPOSITORY / "agents", root / "agents")
    return root / "manifests"
