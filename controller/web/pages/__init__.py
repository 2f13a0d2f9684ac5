"""The operator's page, served by the same process at `/`: server-rendered HTML (Jinja2 via
aiohttp-jinja2, autoescaped; docs/decisions.md says why) over the same reads as the JSON API,
and forms for the operator's words. Static assets ship in the package; nothing is fetched from
elsewhere. Reading works without JavaScript; a small script only refreshes the page's main
part. Each page module adds its own routes.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from controller.web.pages import (
    agents,
    deliveries,
    objects,
    oplog,
    overview,
    pulls,
    services,
    tasks,
    words,
)
from controller.web.pages.activity import ACTIVITY, Activity, keep_counting
from controller.web.pages.filters import FILTERS

HERE = Path(__file__).parent
__all__ = ["add_routes", "keep_counting"]


def add_routes(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True)
    env.filters.update(FILTERS)
    static = app.router.add_static("/static/", HERE / "static", name="static",
                                   append_version=True)
    env.globals["static"] = lambda name: str(static.url_for(filename=name))
    app[ACTIVITY] = Activity()
    for module in (overview, objects, deliveries, oplog, agents, tasks, services, pulls,
                   words):
        module.add_routes(app)
