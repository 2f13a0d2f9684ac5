"""`p38 describe` as text: one object's describe view (controller/web/views.py `describe`) in
sections, as `kubectl describe` lays them out. Pure formatting; no I/O."""

from __future__ import annotations

from typing import Any

from controller.cli.common import shown
from controller.cli.tables import age, cell, stamp, table


def describe_lines(found: dict[str, Any]) -> list[str]:
    lines = [f"Key:         {shown(found['key'])}", f"Kind:        {shown(found['kind'])}"]
    status = found.get("status")
    if status is None:
        lines.append("Status:      none recorded yet")
    else:
        lines += [f"Status:      {shown(status['status'])} ({shown(status['reason'])}), since "
                  f"{stamp(status['since'])}",
                  f"Message:     {cell(status['message'])}",
                  f"Revision:    {cell(status['revision'])}",
                  f"Reconciled:  {stamp(status['reconciled_at'])}"]
    lines.append(f"Queue:       {_queue(found.get('queue'))}")
    manifest = found.get("manifest")
    if manifest is not None:
        lines.append(f"Applied:     {shown(manifest['kind'])} {shown(manifest['name'])} from "
                     f"{shown(manifest['source'])} at revision {cell(manifest['revision'])}, "
                     f"{stamp(manifest['applied_at'])}")
    elif "manifest" in found:
        lines.append("Applied:     not applied (no manifest defines it now)")
    if "versions" in found:
        lines.append(f"Versions (runs use: {cell(found.get('running_version'))}):")
        lines += _section(("NUMBER", "STATE", "ORIGIN", "MODEL", "ROUNDS", "USD", "AGE",
                           "ERROR"),
                          [[v["number"], v["state"], v["origin"], v["model"], v["rounds"],
                            v["usd"], age(v["created_at"]), v["error"]]
                           for v in found["versions"]])
    if "runs" in found:
        lines.append("Runs (p38 logs RUN shows one):")
        lines += _section(("ID", "TRIGGER", "VERSION", "STATE", "OUTCOME", "AGE",
                           "TOOL CALLS", "ERROR"),
                          [[r["id"], r["trigger"], r["version"], r["state"], r["outcome"],
                            age(r["requested_at"]), r["tool_calls"], r["error"]]
                           for r in found["runs"]])
    if "ticks" in found:
        lines.append("Ticks:")
        lines += _section(("DUE", "OUTCOME", "RUN", "REASON"),
                          [[stamp(t["due_at"]), t["outcome"], t["run_id"], t["reason"]]
                           for t in found["ticks"]])
    lines.append("Reconciles (newest first):")
    lines += _section(("AGE", "OUTCOME", "DECISION", "DELIVERIES", "REASON"),
                      [[age(r["started_at"]), r["outcome"], r["decision"],
                        ",".join(str(d) for d in r["deliveries"]) or "-",
                        r["reason"] + (f" (error: {r['error']})" if r["error"] else "")
                        if r["reason"] else r["error"]]
                       for r in found["reconciles"]])
    lines.append("Actions (newest first):")
    lines += _section(("ID", "STATUS", "KIND", "AGE", "IDEMPOTENCY KEY", "REASON"),
                      [[a["id"], a["status"], a["kind"], age(a["updated_at"]),
                        a["idempotency_key"], _why(a)]
                       for a in found["actions"]])
    lines.append("Deliveries (newest first):")
    lines += _section(("ID", "SOURCE", "EVENT", "STATUS", "AGE", "GUID"),
                      [[d["id"], d["source"],
                        d["event"] + (f".{d['action']}" if d["action"] else ""),
                        d["status"], age(d["received_at"]), d["guid"]]
                       for d in found["deliveries"]])
    return lines


def _why(action: dict[str, Any]) -> Any:
    """What to say of an action: its error, why it did not run, or else what it does."""
    if action["error"]:
        return action["error"]
    if action["status"] in ("held", "dry_run", "skipped", "pending"):
        return action["reason"] or action["description"]
    return action["description"] or action["reason"]


def _queue(queue: dict[str, Any] | None) -> str:
    if queue is None:
        return "not queued (reconciled again on a delivery, a resync or a change)"
    if queue["state"] == "dead":
        return f"dead-lettered after {queue['attempts']} attempts: {cell(queue['last_error'])}" \
               " (p38 replay, a delivery or the resync revives it)"
    if queue["leased"]:
        return "being reconciled now"
    text = f"queued, due {stamp(queue['not_before'])}"
    if queue["wait_kind"]:
        text += f" ({shown(queue['wait_kind'])})"
    if queue["attempts"]:
        text += f", {queue['attempts']} failed attempts, last: {cell(queue['last_error'])}"
    return text


def _section(headers: tuple[str, ...], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["  none"]
    return table(headers, rows, indent="  ")
