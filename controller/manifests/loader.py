"""Read manifest files (YAML, several documents per file) into models, reporting every problem
in one pass as `path:line:col: message`.

`parse_text` and `load_texts` are pure; `load_dir` reads `*.yaml`/`*.yml` below a directory.
Cross-object checks (`check_set`): duplicate names per kind, dangling references (a Schedule
naming a missing Agent, an Agent notifying an undefined target), at most one Policy. Nothing
here touches the network or the database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any, get_args, get_origin

import orjson
from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from controller.manifests.models import API_VERSION, KINDS, Agent, Manifest, Policy, Schedule


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"


class _Source:
    """One file's text; its round-trip parse (for positions) is made only when needed."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self._docs: list[Any] | None = None

    def docs(self) -> list[Any]:
        if self._docs is None:
            self._docs = list(_yaml(fast=False).load_all(self.text))
        return self._docs

    def start(self, index: int) -> tuple[int, int]:
        doc = self.docs()[index]
        return (doc.lc.line + 1, doc.lc.col + 1) if isinstance(doc, CommentedMap) else (1, 1)

    def position(self, index: int, loc: Sequence[str | int], *,
                 key: bool = False) -> tuple[int, int]:
        return _position(self.docs()[index], loc, self.start(index), key=key)


@dataclass(frozen=True)
class Loaded:
    """One valid manifest and where it came from (its document's index in its file)."""

    manifest: Manifest
    path: str
    index: int
    source: _Source = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def name(self) -> str:
        return self.manifest.metadata.name

    @property
    def line(self) -> int:
        return self.source.start(self.index)[0]

    def document(self) -> dict[str, Any]:
        """The normalised document (defaults filled in), as stored and compared."""
        return self.manifest.model_dump(mode="json", by_alias=True)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS)
                              ).hexdigest()

    def position(self, *loc: str | int) -> tuple[int, int]:
        return self.source.position(self.index, loc)


@dataclass
class ManifestSet:
    objects: list[Loaded] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _yaml(*, fast: bool) -> YAML:
    """fast: the C-accelerated safe loader (plain values); else round-trip (with positions).
    Both read YAML 1.2 (`yes` and `no` are strings) and refuse duplicate keys."""
    yaml = YAML(typ="safe", pure=False) if fast else YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _position(node: Any, loc: Sequence[str | int], start: tuple[int, int], *,
              key: bool = False) -> tuple[int, int]:
    """1-based (line, col) of the node at `loc`; the nearest existing ancestor otherwise."""
    pos = start
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            line, col = node.lc.key(part) if (key and last) else node.lc.value(part)
            pos = (line + 1, col + 1)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, col = node.lc.item(part)
            pos = (line + 1, col + 1)
            node = node[part]
        else:
            break
    return pos


def _message(error: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    loc = [p for p in error["loc"] if p != "[key]"]
    where = ".".join(str(p) for p in loc)
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind == "extra_forbidden":
        near = get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=1, cutoff=0.6) \
            if model is not None and loc else []
        return f"{where}: unknown field" + (f"; did you mean {near[0]}?" if near else "")
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The YAML names of the fields of the model found at `loc` inside `model` (none when the
    path leaves the models). A list's index and a mapping's free key (a notification target's
    name) pass to the model of its items."""
    current: Any = model
    keyed = False  # `current` is the model of a mapping's values: the next part is a key
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        found = next((f for name, f in current.model_fields.items()
                      if part in (name, f.alias)), None)
        if found is None:
            return []
        current = _model_in(found.annotation)
        keyed = get_origin(found.annotation) in (dict, Mapping)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    """The model an annotation holds (`X`, `X | None`, `list[X]`, `dict[str, X]`), else the
    annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def parse_text(text: str, path: str) -> tuple[list[Loaded], list[Problem]]:
    """Parse one file's text: every document validated, every problem reported."""
    source = _Source(text, path)
    try:
        documents = list(_yaml(fast=True).load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return [], [Problem(path, line, col, f"invalid YAML: {reason}")]
    except YAMLError as exc:
        return [], [Problem(path, 1, 1, f"invalid YAML: {exc}")]
    loaded: list[Loaded] = []
    problems: list[Problem] = []

    def problem(index: int, loc: Sequence[str | int], message: str, key: bool = False) -> None:
        line, col = source.position(index, loc, key=key)
        problems.append(Problem(path, line, col, message))

    for index, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problem(index, [], "a manifest must be a mapping with apiVersion, kind, metadata "
                               "and spec")
            continue
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if api_version != API_VERSION:
            problem(index, ["apiVersion"], f"apiVersion: must be {API_VERSION!r}, "
                                           f"not {api_version!r}")
            continue
        model = KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            problem(index, ["kind"], f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")
            continue
        try:
            manifest = model.model_validate(doc)
        except ValidationError as exc:
            for error in exc.errors():
                loc = [p for p in error["loc"] if p != "[key]"]
                problem(index, loc, _message(error, model),
                        key=error["type"] == "extra_forbidden" or "[key]" in error["loc"])
            continue
        loaded.append(Loaded(manifest, path, index, source))
    return loaded, problems


def check_set(objects: Iterable[Loaded]) -> list[Problem]:
    """Problems between objects: duplicates, dangling references, more than one Policy."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Loaded] = {}
    objects = list(objects)
    for obj in objects:
        ident = (obj.kind, obj.name)
        if ident in seen:
            first = seen[ident]
            line, col = obj.position("metadata", "name")
            problems.append(Problem(obj.path, line, col, f"duplicate {obj.kind} {obj.name!r} "
                                                         f"(first defined at {first.path}:"
                                                         f"{first.line})"))
        else:
            seen[ident] = obj
    agents = {o.name for o in objects if isinstance(o.manifest, Agent)}
    policies = [o for o in objects if isinstance(o.manifest, Policy)]
    targets = {t for p in policies if isinstance(p.manifest, Policy)
               for t in p.manifest.spec.notifications}
    for extra in policies[1:]:
        line, col = extra.position("metadata", "name")
        problems.append(Problem(extra.path, line, col, f"only one Policy is allowed; "
                                                       f"{policies[0].name!r} is at "
                                                       f"{policies[0].path}:{policies[0].line}"))
    for obj in objects:
        manifest = obj.manifest
        if isinstance(manifest, Schedule) and manifest.spec.agent not in agents:
            line, col = obj.position("spec", "agent")
            problems.append(Problem(obj.path, line, col, f"spec.agent: no Agent named "
                                                         f"{manifest.spec.agent!r}"))
        if isinstance(manifest, Agent):
            for i, target in enumerate(manifest.spec.notify):
                if target not in targets:
                    line, col = obj.position("spec", "notify", i)
                    problems.append(Problem(obj.path, line, col, f"spec.notify: no notification "
                                                                 f"target {target!r} in the "
                                                                 f"Policy"))
    return problems


def load_texts(files: Mapping[str, str]) -> ManifestSet:
    """Every manifest in `files` (path -> text, as read from a folder or a git tree)."""
    result = ManifestSet(files=len(files))
    for path in sorted(files):
        loaded, problems = parse_text(files[path], path)
        result.objects.extend(loaded)
        result.problems.extend(problems)
    result.problems.extend(check_set(result.objects))
    result.problems.sort()
    return result


def manifest_files(root: Path) -> tuple[list[Path], list[Problem]]:
    """The manifest files below `root`, and a problem for every folder that could not be
    listed (unreadable, or gone while being read). Skipping such a folder quietly, as
    `Path.rglob` does, would make its objects look deleted and prune them."""
    problems: list[Problem] = []

    def unlistable(exc: OSError) -> None:
        problems.append(Problem(str(exc.filename or root), 1, 1,
                                f"cannot list folder: {exc.strerror or exc}"))

    found = [Path(folder, name)
             for folder, _dirs, names in os.walk(root, onerror=unlistable)
             for name in names if name.endswith((".yaml", ".yml"))]
    return sorted(p for p in found if p.is_file()), problems


def not_a_folder(root: Path) -> str | None:
    """Why `root` cannot be read as a manifests folder (it does not exist, it is a file),
    or None when it is a folder."""
    if root.is_dir():
        return None
    if not root.exists():
        return "no such folder" if not root.is_symlink() else \
            "no such folder (a link to nothing)"
    return "a file, not a folder: give the folder that holds the manifests" \
        if root.is_file() else "not a folder"


def load_dir(root: Path) -> ManifestSet:
    """Every manifest below `root`, with every problem (file, syntax, schema, references)."""
    result = ManifestSet()
    if (why := not_a_folder(root)) is not None:
        result.problems.append(Problem(str(root), 1, 1, why))
        return result
    files, unlisted = manifest_files(root)
    result.problems.extend(unlisted)
    for file in files:
        result.files += 1
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result.problems.append(Problem(str(file), 1, 1, f"cannot read: {exc}"))
            continue
        loaded, problems = parse_text(text, str(file))
        result.objects.extend(loaded)
        result.problems.extend(problems)
    result.problems.extend(check_set(result.objects))
    result.problems.sort()
    return result
