"""Manifests load from YAML into models; every problem is reported at path:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifests.loader import load_dir, parse_text
from tests.manifest_samples import MANIFESTS

AGENT = """\
apiVersion: p38/v1
kind: Agent
metadata: {name: tesla-watch}
spec:
  description: Watch TSLA and alert through n8n.
  tools: [http]
"""


def problems(text: str) -> list[str]:
    _, found = parse_text(text, "m.yaml")
    return [str(p) for p in found]


def test_sample_repository_manifests_are_valid() -> None:
    """The sample repository's manifests (a copy of the shipped ones) hold every kind and
    validate cleanly; CI validates the shipped manifests/ themselves (.ci/run)."""
    result = load_dir(MANIFESTS)
    assert result.problems == []
    assert {o.kind for o in result.objects} == {"Agent", "Schedule", "Service", "Policy"}


def test_defaults_are_filled_and_durations_normalised() -> None:
    """A minimal Agent gets its defaults; a bare number of seconds is a duration."""
    [agent], found = parse_text(AGENT.replace("tools: [http]", "limits: {timeout: 90}"), "a.yaml")
    assert found == []
    doc = agent.document()
    assert doc["spec"]["limits"] == {"timeout": "90s", "memory": "256Mi",
                                     "tokensPerRun": 50000, "usdPerDay": 5.0}
    assert doc["spec"]["model"] == "claude-sonnet-5-5"
    assert agent.line == 1 and agent.position("spec", "limits", "timeout") == (6, 21)


@pytest.mark.parametrize(("text", "expected"), [
    (AGENT.replace("tools: [http]", "tools: [http, telepathy]"),
     "m.yaml:6:17: spec.tools.1: Input should be"),
    (AGENT + "  colour: blue\n", "m.yaml:7:3: spec.colour: unknown field"),
    (AGENT.replace("  description: Watch TSLA and alert through n8n.\n", ""),
     "m.yaml:5:3: spec.description: required field is missing"),
    (AGENT.replace("{name: tesla-watch}", "{name: Tesla_Watch}"),
     "m.yaml:3:18: metadata.name: must be 1-63 lower-case"),
    (AGENT.replace("kind: Agent", "kind: Robot"), "m.yaml:2:7: kind: must be one of Agent"),
    (AGENT.replace("p38/v1", "p38/v2"), "m.yaml:1:13: apiVersion: must be 'p38/v1'"),
    ("apiVersion: p38/v1\nkind: Agent\nkind: Agent\n", "m.yaml:3:1: invalid YAML"),
    ("apiVersion: [unclosed\n", "m.yaml:2:1: invalid YAML"),
    ("- just\n- a list\n", "m.yaml:1:1: a manifest must be a mapping"),
])
def test_each_problem_names_file_line_and_column(text: str, expected: str) -> None:
    """Syntax, schema and unknown-field problems point at the offending line and column."""
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_in_one_pass(tmp_path: Path) -> None:
    """Several files, several documents, several problems each: all reported together."""
    (tmp_path / "a.yaml").write_text(AGENT + "---\n" + AGENT + "---\n"
                                     + AGENT.replace("tesla-watch", "other").replace("[http]",
                                                                                     "[nope]"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(
        "apiVersion: p38/v1\nkind: Schedule\nmetadata: {name: s}\n"
        "spec: {cron: '61 * * * *', timezone: Nowhere/City, agent: ghost}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    result = load_dir(tmp_path)
    text = [str(p) for p in result.problems]
    assert result.files == 2
    assert f"{tmp_path}/a.yaml:10:18: duplicate Agent 'tesla-watch' (first defined at " \
           f"{tmp_path}/a.yaml:1)" in text
    assert any(p.startswith(f"{tmp_path}/a.yaml:20:11: spec.tools.0: Input should be")
               for p in text), text
    assert any(p.startswith(f"{tmp_path}/sub/b.yml:4:14: spec.cron: field 1, '61', is not a "
                            "valid minute") for p in text)
    assert any(p.startswith(f"{tmp_path}/sub/b.yml:4:38: spec.timezone: unknown IANA time zone")
               for p in text)
    assert len(text) == 4  # the invalid Schedule's dangling agent is not checked as well


def test_dangling_references_and_single_policy(tmp_path: Path) -> None:
    """A Schedule naming a missing Agent, an unknown notify target, two Policies: errors."""
    (tmp_path / "m.yaml").write_text(
        AGENT.replace("tools: [http]", "notify: [pager]")
        + "---\napiVersion: p38/v1\nkind: Schedule\nmetadata: {name: s}\n"
          "spec: {cron: '0 9 * * 1-5', agent: ghost}\n"
        + "---\napiVersion: p38/v1\nkind: Policy\nmetadata: {name: one}\nspec: {}\n"
        + "---\napiVersion: p38/v1\nkind: Policy\nmetadata: {name: two}\nspec: {}\n")
    text = [str(p) for p in load_dir(tmp_path).problems]
    assert f"{tmp_path}/m.yaml:6:12: spec.notify: no notification target 'pager' in the Policy" \
        in text
    assert f"{tmp_path}/m.yaml:11:36: spec.agent: no Agent named 'ghost'" in text
    assert any("only one Policy is allowed; 'one'" in p for p in text)


def test_content_hash_ignores_formatting_but_not_meaning() -> None:
    """Reformatting a manifest (flow vs block, defaults spelled out) keeps its hash."""
    [a], _ = parse_text(AGENT, "a.yaml")
    [b], _ = parse_text(AGENT.replace("tools: [http]", "tools:\n    - http\n  model: "
                                      "claude-sonnet-5-5"), "b.yaml")
    [c], _ = parse_text(AGENT.replace("[http]", "[http, notify]"), "c.yaml")
    assert a.content_hash == b.content_hash != c.content_hash


def test_an_unknown_field_suggests_the_closest_one_at_its_place() -> None:
    """A misspelt field is answered with the field it most likely meant, at any depth (a
    list's item, a mapping's free key such as a notification target's name); nothing is
    suggested when nothing is close."""
    text = ("apiVersion: p38/v1\nkind: Policy\nmetadata:\n  name: p\nspec:\n"
            "  autoMerg: {}\n  autoMerge:\n    requiredCheks: [test]\n"
            "  notifications:\n    ops:\n      urll: http://127.0.0.1/x\n"
            "  zzzzzz: 1\n")
    _, problems = parse_text(text, "p.yaml")
    said = {p.message for p in problems}
    assert "spec.autoMerg: unknown field; did you mean autoMerge?" in said
    assert "spec.autoMerge.requiredCheks: unknown field; did you mean requiredChecks?" in said
    assert "spec.notifications.ops.urll: unknown field; did you mean url?" in said
    assert "spec.zzzzzz: unknown field" in said
