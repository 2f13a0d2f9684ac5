"""What a Service tells people about a failure: its incident issue on the source repository
(one per Service, found by its marker, updated at each failure, closed once the branch head
runs healthy again) and the controller's own record of each failure (`service_incidents`, a
local folder's Service included). Pure builders of `github.issue_*` actions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from controller.reconcile.plan import Action
from reconcilers.gitops.reporting import IssueUpsert
from reconcilers.railway.service_actions import RecordIncident

if TYPE_CHECKING:
    from reconcilers.railway.services import ServiceSnapshot


def short(sha: object) -> str:
    return str(sha or "")[:7] or "(none)"


def incident_marker(key: str) -> str:
    return f"<!-- p38:incident:{key} -->"


def incident_body(s: ServiceSnapshot, failed: Mapping[str, Any],
                   target: Mapping[str, Any] | None) -> str:
    commit = failed.get("commit")
    done = [f"- marked `{short(commit)}` bad: it is not deployed again (a newer commit on the "
            f"branch is; `p38 services clear-bad {s.name} {commit}` clears the mark)"]
    done.append(f"- rolled back to deployment {target.get('id')} "
                f"(`{short(target.get('commit'))}`)" if target is not None else
                "- did not roll back (rollbackOnFailure is false, or no earlier deployment "
                "Railway can roll back to)")
    return "\n".join([
        incident_marker(s.key),
        f"**{s.name}**: Railway deployment `{failed.get('id')}` of `{commit}` is "
        f"{str(failed.get('status')).lower()}.", "",
        "What project38 did:", *done, "",
        "This issue is updated on every failure of this Service and closed when the branch's "
        "head runs healthy again."])


def incident_action(s: ServiceSnapshot, failed: Mapping[str, Any],
                     target: Mapping[str, Any] | None) -> tuple[Action, ...]:
    """The failure recorded (every Service: `/api/services` shows it), and, for a Service
    from a repository the App is installed on, its incident issue opened or updated."""
    to = target.get("id") if target is not None else None
    record = RecordIncident(service_key=s.key, deployment=str(failed.get("id")),
                            commit=_text(failed.get("commit")),
                            status=str(failed.get("status")), rolled_back_to=_text(to),
                            rolled_back_commit=_text(target.get("commit") if target else None))
    recorded = record.action(f"service.incident:{s.key}:{failed.get('id')}"
                             + (f"->{to}" if to is not None else ""),
                             description=f"record {s.name}'s incident")
    if s.installation is None or s.source == "local":
        return (recorded,)  # (a local folder's Service: no repository to open an issue on)
    params = IssueUpsert(repo=s.source, installation_id=s.installation,
                         marker=incident_marker(s.key),
                         title=f"project38: {s.name} deployment {str(failed.get('status')).lower()}"
                               f" ({short(failed.get('commit'))})",
                         body=incident_body(s, failed, target), labels=["p38", "incident"])
    return (recorded, params.action(f"incident:{s.key}:{failed.get('id')}",
                                    description=f"open or update {s.name}'s incident"))


def _text(value: object) -> str | None:
    return str(value) if value is not None and str(value) else None
