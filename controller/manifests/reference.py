"""The manifest reference (docs/manifests.md), rendered from the models' JSON Schema.

Pure. `p38 schema --markdown` prints it; a test keeps the committed file current.
"""

from __future__ import annotations

import json
from typing import Any

from controller.manifests.models import json_schema

INTRO = """# Manifest reference (`apiVersion: p38/v1`)

Generated from the pydantic models (`p38 schema --markdown`); do not edit by hand.
Keys are camelCase; unknown keys are errors; `p38 validate DIR` reports every problem as
`path:line:col: message`. Names are lower-case DNS labels, unique per kind. Durations are
`500ms`, `30s`, `5m`, `1h` (a bare number means seconds); sizes are `512Ki`, `256Mi`, `1Gi`.
A Schedule's `agent` must name an Agent; an Agent's `notify` entries must name targets in the
Policy's `notifications`; there is at most one Policy.
"""


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[1]}](#{prop['$ref'].rsplit('/', 1)[1].lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of name → {_type(prop['additionalProperties'], defs)}"
    if prop.get("format") == "uri":
        return "URL"
    return str(kind)


def _literal(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render() -> str:
    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    out = [INTRO]
    order = ["Agent", "Schedule", "Service", "Policy"]
    rest = sorted(k for k in defs if k not in order)
    for name in order + rest:
        definition = defs[name]
        out.append(f"## {name}\n")
        if definition.get("description") and name not in order:
            out.append(definition["description"].strip() + "\n")
        required = set(definition.get("required", []))
        out.append("| field | type | default | meaning |\n|---|---|---|---|")
        for field, prop in definition.get("properties", {}).items():
            default = ("required" if field in required
                       else f"`{_literal(prop['default'])}`" if "default" in prop else "")
            meaning = prop.get("description", "").replace("\n", " ")
            out.append(f"| `{field}` | {_type(prop, defs)} | {default} | {meaning} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
