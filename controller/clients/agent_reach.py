"""The static check's second half: code that reaches past the names an agent was given, to a
module's internals, to another module, or to the interpreter's frames.

`problems(tree)` returns `(line, message)` for: an attribute whose name starts with `_` (as
`random._os` reaches `os`), but for the few dunders ordinary classes use; a module reached
through another module (`contextlib.os`, `typing.sys.modules[...]`, `from contextlib import
os`), decided from the allowed modules' real attributes; `getattr`-like calls with a private
or module-reaching literal; `attrgetter`/`methodcaller` with anything but literal public names
that name no module; frame and code attributes (`gi_frame`, `f_globals`, `tb_frame`...); the
helpers that evaluate text as code (`get_type_hints`, `ForwardRef`, `string.Formatter`) and
string annotations that are not plain type names; class patterns (`case
object(__globals__=g)`) and format-string fields (`"{0.__globals__}"`), held to the attribute
rules; and `eval`, `getattr` and the like used as values rather than called. A first,
friendly filter with a message that says why; the kernel's sandbox is what holds when it is
passed. Pure apart from importing the allowed (standard library) modules once to read their
attributes.
"""

from __future__ import annotations

import ast
import functools
import importlib
import string
import types
from collections.abc import Iterator

PUBLIC_DUNDERS = frozenset({
    "__init__", "__name__", "__doc__", "__repr__", "__str__", "__eq__", "__hash__", "__lt__",
    "__le__", "__gt__", "__ge__", "__len__", "__iter__", "__next__", "__contains__",
    "__post_init__", "__enter__", "__exit__", "__getitem__", "__bool__"})
FRAME_ATTRIBUTES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
    "ag_code", "ag_await", "f_globals", "f_locals", "f_builtins", "f_back", "f_code",
    "f_trace", "tb_frame", "tb_next", "co_code", "co_consts", "co_names", "func_globals",
    "im_func", "mro"})
EVALUATING = frozenset({"get_type_hints", "ForwardRef", "Formatter", "get_field", "get_value",
                        "vformat", "_evaluate"})
FORBIDDEN_VALUES = frozenset({"eval", "exec", "compile", "__import__", "globals", "locals",
                              "vars", "breakpoint", "input", "getattr", "setattr", "delattr",
                              "hasattr", "attrgetter", "methodcaller"})
NAMED_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
GETTERS = frozenset({"attrgetter", "methodcaller"})


@functools.cache
def module(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@functools.cache
def module_names(allowed: frozenset[str]) -> frozenset[str]:
    """Attribute names under which the allowed modules hold another module (os, sys, re...)."""
    names: set[str] = set()
    for name in allowed:
        found = module(name)
        if found is None:
            continue
        names.update(attribute for attribute, value in vars(found).items()
                     if isinstance(value, types.ModuleType) and not _inside(value, found))
    return frozenset(names)


def _inside(value: types.ModuleType, parent: types.ModuleType) -> bool:
    return value.__name__.startswith(parent.__name__ + ".")


def private(name: str) -> bool:
    return name.startswith("_") and name not in PUBLIC_DUNDERS


def problems(tree: ast.AST, allowed: frozenset[str]) -> list[tuple[int, str]]:
    return list(_Reach(allowed).scan(tree))


class _Reach:
    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed
        self.modules: dict[str, types.ModuleType] = {}  # local name -> module it is bound to
        self.getters: set[str] = set(GETTERS)  # names bound to attrgetter/methodcaller

    def scan(self, tree: ast.AST) -> Iterator[tuple[int, str]]:
        """Imports first (what each name is bound to), then every other node."""
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        nodes = list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield from ((node.lineno, message) for message in self._bind(node))
        for node in nodes:
            line = getattr(node, "lineno", 1)
            for message in self._problems(node, called):
                yield line, message

    def _problems(self, node: ast.AST, called: set[int]) -> Iterator[str]:
        if isinstance(node, ast.Attribute):
            yield from self._attribute(node, called)
        elif isinstance(node, ast.Name):
            if node.id in EVALUATING:
                yield f"{node.id} evaluates text as code; agents may not use it"
            elif node.id.startswith("__") and node.id not in PUBLIC_DUNDERS:
                yield f"the name {node.id} reaches the interpreter's internals"
            elif node.id in FORBIDDEN_VALUES | self.getters and id(node) not in called:
                yield (f"{node.id} may only be called directly (as a value it hides what is "
                       "looked up)")
        elif isinstance(node, ast.Call):
            yield from self._call(node)
        elif isinstance(node, ast.MatchClass):  # `case object(__globals__=g)` reads attributes
            for name in node.kwd_attrs:
                yield from self._literal_name("a class pattern", name, node.cls)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "{" in node.value:
            yield from _format_fields(node.value)
        elif isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str) \
                    and key.value.startswith("__"):
                yield f"the key {key.value!r} reaches the interpreter's internals"
        elif isinstance(node, ast.arg | ast.FunctionDef | ast.AsyncFunctionDef | ast.AnnAssign):
            annotation = node.returns if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                else node.annotation
            yield from self._annotation(annotation)

    def _bind(self, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = module(alias.name if alias.asname else alias.name.partition(".")[0])
                if found is not None and alias.name in self.allowed:
                    self.modules[alias.asname or alias.name.partition(".")[0]] = found
            return
        parent = module(node.module or "") if node.module in self.allowed else None
        for alias in node.names:
            if alias.name in GETTERS:
                self.getters.add(alias.asname or alias.name)
            value = getattr(parent, alias.name, None) if parent is not None else None
            if isinstance(value, types.ModuleType):
                if parent is not None and not _inside(value, parent):
                    yield (f"from {node.module} import {alias.name} reaches the module "
                           f"{value.__name__} through {node.module}; agents import only the "
                           "allowed modules, directly")
                else:
                    self.modules[alias.asname or alias.name] = value

    def _module_of(self, node: ast.expr) -> types.ModuleType | None:
        """The module an expression statically names (`json`, `json.decoder`), or None."""
        if isinstance(node, ast.Name):
            return self.modules.get(node.id)
        if isinstance(node, ast.Attribute):
            parent = self._module_of(node.value)
            value = getattr(parent, node.attr, None) if parent is not None else None
            if isinstance(value, types.ModuleType) and parent is not None \
                    and _inside(value, parent):
                return value
        return None

    def _attribute(self, node: ast.Attribute, called: set[int]) -> Iterator[str]:
        if private(node.attr):
            yield (f"the attribute {node.attr} is private: agents use public names only (a "
                   "private name reaches a module's internals, as random._os reaches os)")
            return
        if node.attr in FRAME_ATTRIBUTES:
            yield f"the attribute {node.attr} reaches the interpreter's frames and code"
            return
        if node.attr in EVALUATING:
            yield f"{node.attr} evaluates text as code; agents may not use it"
            return
        parent = self._module_of(node.value)
        value = getattr(parent, node.attr, None) if parent is not None else None
        if parent is not None and isinstance(value, types.ModuleType) \
                and not _inside(value, parent):
            yield (f"{ast.unparse(node)} reaches the module {value.__name__} through "
                   f"{parent.__name__}; agents import only the allowed modules, directly")
        elif node.attr in GETTERS and id(node) not in called:
            yield f"{node.attr} may only be called directly, with literal public names"

    def _call(self, node: ast.Call) -> Iterator[str]:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else \
            func.attr if isinstance(func, ast.Attribute) else None
        if name in NAMED_ATTRIBUTE_CALLS and isinstance(func, ast.Name):
            attribute = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)):
                yield f"{name}() needs a literal attribute name"
                return
            yield from self._literal_name(name, attribute.value, node.args[0])
        elif name in self.getters or (isinstance(func, ast.Attribute) and name in GETTERS):
            named = node.args[:1] if name == "methodcaller" else node.args
            texts = [a.value for a in named if isinstance(a, ast.Constant)
                     and isinstance(a.value, str)]
            if not named or len(texts) != len(named):
                yield f"{name}() needs literal attribute names"
                return
            for text in texts:
                for part in text.split("."):
                    yield from self._literal_name(name, part, None)

    def _literal_name(self, caller: str, name: str, target: ast.expr | None) -> Iterator[str]:
        if private(name) or name in FRAME_ATTRIBUTES or name in EVALUATING:
            yield f"{caller}() with {name!r} reaches the interpreter's internals"
            return
        parent = self._module_of(target) if target is not None else None
        reaches = isinstance(getattr(parent, name, None), types.ModuleType) if parent \
            else name in module_names(self.allowed)
        if reaches:
            yield (f"{caller}() with {name!r} reaches another module; agents import only the "
                   "allowed modules, directly")

    def _annotation(self, annotation: ast.expr | None) -> Iterator[str]:
        """A string annotation is evaluated by typing helpers: only dotted names are allowed."""
        for node in ast.walk(annotation) if annotation is not None else ():
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    parsed = ast.parse(node.value, mode="eval").body
                except SyntaxError:
                    yield "a string annotation must be a type name"
                    continue
                if not all(isinstance(n, ast.Name | ast.Attribute | ast.Subscript | ast.Load
                                      | ast.Tuple | ast.Constant | ast.BinOp | ast.BitOr)
                           for n in ast.walk(parsed)) or any(
                        isinstance(n, ast.Attribute | ast.Name) and private(
                            n.attr if isinstance(n, ast.Attribute) else n.id)
                        for n in ast.walk(parsed)):
                    yield (f"the string annotation {node.value[:60]!r} is more than a type "
                           "name (typing helpers would evaluate it as code)")


def _format_fields(text: str) -> Iterator[str]:
    """A format string's fields look attributes up (`"{0.__globals__}"`): private ones and
    frames are refused as they are in code."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(text) if field]
    except ValueError:
        return
    for field in fields:
        parts = field.replace("[", ".").replace("]", "").split(".")[1:]
        for part in parts:
            if private(part) or part in FRAME_ATTRIBUTES:
                yield (f"the format field {{{field[:60]}}} reaches {part}: a format string may "
                       "not look up private attributes")
                return
