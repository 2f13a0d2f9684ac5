"""The stateful fake GitHub (`tests/fakes/github.py`) served over real HTTP, for trying the real
`p38 serve` by hand: point GITHUB_API_URL at it and post the webhooks it answers with
`p38 send-webhook github FILE` (docs/trying.md).

    python -m tests.fakes.github_server --key-file /tmp/app.pem \\
        [--repo octo-org/infra] [--installation 51234567] [--writer dana-ops] [--issue 11]

Writes the App's private key (PEM) to --key-file, installs the App on the repository (one
commit on main: README.md), opens the issue, gives the writer write permission, and prints
the base URL and the App id. `GET /_fake/state` shows the branches, pull requests, comments,
reactions, check runs and merges as JSON, so a trial can see what the controller did.

Arranging a trial (each answers `{"event": ..., "payload": ...}`, the webhook GitHub would
send, for `p38 send-webhook github FILE` to sign and post to the controller):

    POST /_fake/commit  {"files": {...}}                      a commit on main (a push)
    POST /_fake/pull    {"number": 7, "branch": "claude/7-x",
                         "files": {...}}                      a branch and its pull request
    POST /_fake/check   {"number": 7, "name": "test",
                         "conclusion": "success"}             a check run on its head
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.fakes.github import FakeGitHub, make_key_pair


def app_for(fake: FakeGitHub) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/_fake/state":
            return web.json_response(state(fake))
        if request.path.startswith("/_fake/") and request.method == "POST":
            return web.json_response(arrange(fake, request.path.removeprefix("/_fake/"),
                                             await request.json()))
        outgoing = httpx.Request(request.method, str(request.url),
                                 headers=list(request.headers.items()),
                                 content=await request.read())
        answered = fake.handle(outgoing)
        return web.Response(status=answered.status_code, body=answered.content,
                            headers={k: v for k, v in answered.headers.items()
                                     if k.lower() in ("content-type", "link")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def arrange(fake: FakeGitHub, what: str, body: dict[str, Any]) -> dict[str, Any]:
    from tests.fakes.github_events import check_run_event, pull_request_event

    repo = str(body.get("repo") or next(iter(fake.repos)))
    installation = next(i for i, repos in fake.installations.items() if repo in repos)
    r = fake.repos[repo]
    if what == "commit":
        before = r.branches.get(r.default_branch, "0" * 40)
        after = fake.commit(repo, dict(body["files"]))
        return {"event": "push", "payload": {
            "ref": f"refs/heads/{r.default_branch}", "before": before, "after": after,
            "repository": fake.repo_json(repo), "installation": {"id": installation},
            "sender": {"login": "dana-ops"}, "pusher": {"name": "dana-ops"},
            "head_commit": {"id": after, "added": sorted(body["files"]), "removed": [],
                            "modified": []}, "commits": []}}
    number = int(body["number"])
    if what == "pull":
        base = {p: r.blobs[s].decode() for p, s in
                r.files[r.branches[r.default_branch]].items()}
        fake.push_branch(repo, str(body["branch"]), {**base, **dict(body["files"])})
        fake.open_pull(repo, number, head=str(body["branch"]), title=str(
            body.get("title") or f"Pull request {number}"))
        event, payload = pull_request_event(fake, repo, number, "opened", installation)
        return {"event": event, "payload": payload}
    if what == "check":
        head = str(fake.pull_json(r, number)["head"]["sha"])
        run = fake.add_check_run(repo, head, str(body.get("name") or "test"),
                                 conclusion=str(body.get("conclusion") or "success"))
        event, payload = check_run_event(fake, repo, run, installation)
        return {"event": event, "payload": payload}
    raise web.HTTPNotFound(text=f"no arrangement {what!r}")


def state(fake: FakeGitHub) -> dict[str, Any]:
    return {name: {
        "branches": repo.branches,
        "pulls": {n: {**fake.pull_json(repo, n)} for n in repo.pulls},
        "comments": {str(k[1]): v for k, v in fake.comments.items() if k[0] == name},
        "reactions": {str(k[1]): v for k, v in fake.reactions.items() if k[0] == name},
        "check_runs": [{k: v for k, v in run.items() if not k.startswith("_")}
                       for run in fake.check_runs if run.get("_repo", name) == name],
        "merges": [m for m in fake.merges if m["repo"] == name],
        "deleted_refs": [b for n, b in fake.deleted_refs if n == name],
        "files": {branch: {p: repo.blobs[s].decode(errors="replace")
                           for p, s in repo.files.get(sha, {}).items()}
                  for branch, sha in repo.branches.items()}}
        for name, repo in fake.repos.items()}


async def serve(args: argparse.Namespace, public: str) -> None:
    fake = FakeGitHub(public_key=public)
    runner = web.AppRunner(app_for(fake))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.host = f"http://127.0.0.1:{port}"
    fake.install(args.installation, args.repo)
    fake.commit(args.repo, {"README.md": "infra\n"})
    fake.open_issue(args.repo, args.issue, title="Document X", author=args.writer)
    fake.permissions[(args.repo, args.writer)] = "write"
    print(f"GITHUB_API_URL=http://127.0.0.1:{port} GITHUB_APP_ID={fake.app_id} "
          f"GITHUB_APP_PRIVATE_KEY={args.key_file}", flush=True)
    await asyncio.Event().wait()


def parser() -> argparse.ArgumentParser:
    """The command line; --help says in whole sentences what it does (the module's text)."""
    summary, _, rest = (__doc__ or "").partition("\n\n")
    made = argparse.ArgumentParser(
        prog="python -m tests.fakes.github_server",
        description=textwrap.fill(" ".join(summary.split()), 79),
        epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--key-file", required=True,
                      help="where to write the App's private key (PEM); give the same path "
                           "to the controller as GITHUB_APP_PRIVATE_KEY.")
    made.add_argument("--repo", default="octo-org/infra",
                      help="the repository the App is installed on (default octo-org/infra).")
    made.add_argument("--installation", type=int, default=51234567,
                      help="the installation's id (default 51234567).")
    made.add_argument("--writer", default="dana-ops",
                      help="a user with write permission, the author of the issue (default "
                           "dana-ops).")
    made.add_argument("--issue", type=int, default=11,
                      help="the number of the open issue (default 11).")
    made.add_argument("--port", type=int, default=0,
                      help="the port to listen on, on 127.0.0.1 (default 0: a free one, "
                           "printed).")
    return made


if __name__ == "__main__":
    arguments = parser().parse_args()
    private_key, public_key = make_key_pair()
    Path(arguments.key_file).write_text(private_key)
    asyncio.run(serve(arguments, public_key))
