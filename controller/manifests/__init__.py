"""Manifests: the desired state people commit (`Agent`, `Schedule`, `Service`, `Policy`).

`models` is the single source of truth (validation, JSON Schema, docs); `loader` reads YAML
files into models and reports every problem as `path:line:col: message`.
"""
