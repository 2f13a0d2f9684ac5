"""The stateful fake Railway (`tests/fakes/railway.py`) served over real HTTP, for trying the
real `p38 serve` by hand: point RAILWAY_API_URL at it (RAILWAY_TOKEN as printed).

    python -m tests.fakes.railway_server [--port 0]

`GET /_fake/state` shows the deployments and the mutations received; `POST /_fake/advance`
`{"id": "dep-1", "status": "SUCCESS"}` moves a deployment as Railway's builders would and
answers Railway's webhook body for it, for `p38 send-webhook railway FILE` to post; `POST
/_fake/add` `{"service": "svc", "environment": "env", "commit": "<sha>", "status": "SUCCESS"}`
makes a deployment as Railway's own GitHub integration would, and answers the same.
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from typing import Any

import httpx
from aiohttp import web

from tests.fakes.railway import FakeRailway


def app_for(fake: FakeRailway) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/_fake/state":
            return web.json_response({"deployments": fake.deployments,
                                      "mutations": fake.mutations})
        if request.path == "/_fake/add" and request.method == "POST":
            wanted = await request.json()
            made = fake.add(str(wanted["service"]), str(wanted["environment"]),
                            str(wanted["commit"]), str(wanted.get("status", "QUEUED")))
            return web.json_response(webhook(made))
        if request.path == "/_fake/advance" and request.method == "POST":
            wanted = await request.json()
            moved = fake.advance(str(wanted["id"]), str(wanted["status"]))
            return web.json_response(webhook(moved))
        outgoing = httpx.Request(request.method, str(request.url),
                                 headers=list(request.headers.items()),
                                 content=await request.read())
        answered = fake.handle(outgoing)
        return web.Response(status=answered.status_code, body=answered.content,
                            headers={"Content-Type": answered.headers.get(
                                "content-type", "application/json")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def webhook(deployment: dict[str, Any]) -> dict[str, Any]:
    """Railway's project webhook for a deployment, as documented."""
    kind = {"SUCCESS": "deployed", "FAILED": "failed", "CRASHED": "crashed"}.get(
        deployment["status"], deployment["status"].lower())
    return {"type": f"Deployment.{kind}",
            "details": {"id": deployment["id"], "status": deployment["status"],
                        "commitHash": deployment["meta"]["commitHash"], "branch": "main"},
            "resource": {"project": {"id": deployment["projectId"]},
                         "environment": {"id": deployment["environmentId"]},
                         "service": {"id": deployment["serviceId"]},
                         "deployment": {"id": deployment["id"]}},
            "severity": "INFO", "timestamp": deployment["createdAt"]}


async def serve(port: int) -> None:
    fake = FakeRailway()
    runner = web.AppRunner(app_for(fake))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"RAILWAY_API_URL=http://127.0.0.1:{bound}/graphql/v2 RAILWAY_TOKEN={fake.token}",
          flush=True)
    await asyncio.Event().wait()


def parser() -> argparse.ArgumentParser:
    """The command line; --help says in whole sentences what it does (the module's text)."""
    summary, _, rest = (__doc__ or "").partition("\n\n")
    made = argparse.ArgumentParser(
        prog="python -m tests.fakes.railway_server",
        description=textwrap.fill(" ".join(summary.split()), 79),
        epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--port", type=int, default=0,
                      help="the port to listen on, on 127.0.0.1 (default 0: a free one, "
                           "printed).")
    return made


if __name__ == "__main__":
    asyncio.run(serve(parser().parse_args().port))
