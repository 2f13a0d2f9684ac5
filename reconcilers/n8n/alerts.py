"""Alerts from n8n (`alert:owner/repo#KEY`, issue 17): `{"event": "alert", "repo":
"owner/repo", "key": "disk-full", "title": ..., "message": ..., "severity": ...}` opens an
incident issue on the repository, or updates the open one with that alert's key (found by a
marker in its body), so that an alert n8n repeats is one issue. The repository must be a
manifest source the App is installed on (its Policy governs the issue like any other action).
No I/O of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from controller.reconcile.context import ObserveContext, StoredPayload
from controller.reconcile.ids import key_name
from controller.reconcile.payloads import PLAIN_NAME, plausible_repo
from controller.reconcile.plan import Plan
from controller.reconcile.reconciler import Event, Reconciler, Watch, repo_of
from reconcilers.gitops.reporting import IssueUpsert

if TYPE_CHECKING:
    from controller.reconcile.policy import Policy



def alert_keys(event: Event) -> Iterable[str]:
    repo, key = event.payload.get("repo"), event.payload.get("key")
    if plausible_repo(repo) and isinstance(key, str) and PLAIN_NAME.fullmatch(key):
        return (f"alert:{repo}#{key}",)
    return ()


def marker(key: str) -> str:
    return f"<!-- p38:alert:{key} -->"


@dataclass(frozen=True)
class AlertSnapshot:
    key: str
    repo: str
    alert: str
    latest: StoredPayload | None = None
    installation: int | None = None


class Alerts(Reconciler):
    kind: ClassVar[str] = "alert"

    def watches(self) -> Sequence[Watch]:
        return (Watch("n8n", frozenset({"alert"}), alert_keys),)

    def source(self, key: str) -> str | None:
        return repo_of(key)

    async def observe(self, ctx: ObserveContext, key: str) -> AlertSnapshot:
        repo, _, alert = key_name(key).rpartition("#")
        found = await ctx.recent_payloads(key, 1, events=("alert",))
        source = await ctx.resource("manifests", repo)
        installation = source.data.get("installation_id") if source is not None else None
        return AlertSnapshot(key, repo, alert, found[0] if found else None,
                             installation if isinstance(installation, int) else None)

    def decide(self, snapshot: AlertSnapshot, policy: Policy) -> Plan:
        if snapshot.latest is None:
            return Plan("NothingObserved", "no alert delivery for this key")
        if snapshot.installation is None:
            return Plan("NoInstallation", f"{snapshot.repo} is not a repository the App is "
                                          "installed on and reads manifests from",
                        status="Blocked")
        payload = snapshot.latest.payload
        title = _text(payload.get("title"), 200) or f"Alert {snapshot.alert}"
        body = "\n".join([
            marker(snapshot.alert),
            f"**{_text(payload.get('severity'), 40) or 'alert'}** from n8n "
            f"(`{snapshot.alert}`, workflow {_text(payload.get('workflow'), 100) or '?'}):",
            "", _text(payload.get("message"), 60_000) or "(no message)", "",
            "This issue is updated each time n8n sends this alert again."])
        params = IssueUpsert(repo=snapshot.repo, installation_id=snapshot.installation,
                             marker=marker(snapshot.alert), title=f"project38 alert: {title}",
                             body=body, labels=["p38", "alert"])
        return Plan("Reported", f"alert {snapshot.alert} on {snapshot.repo}: {title}",
                    actions=(params.action(
                        f"alert:{snapshot.repo}#{snapshot.alert}:{snapshot.latest.delivery_id}",
                        description=f"open or update the issue of alert {snapshot.alert}"),))


def _text(value: Any, limit: int) -> str:
    """A string n8n sent, as text the issue can show (no NUL, at most `limit` characters)."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return ""
    return str(value).replace("\x00", "")[:limit]
