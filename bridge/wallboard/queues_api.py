"""`GET /api/queues`: the wallboard's figures per queue, in the admin API
(`bridge.web.admin_api`); supervisors may read it too."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bridge.wallboard.board import WallBoard
from bridge.web.auth import allow_supervisors
from bridge.web.errors import ApiError

__all__ = ["QueuesApiDeps", "setup_queues_api"]


@dataclass(frozen=True, slots=True)
class QueuesApiDeps:
    board: WallBoard | None  # None: the wallboard is not running (503)
    sla_s: int  # [wallboard] sla_s


_DEPS = web.AppKey("bridge_queues_api_deps", QueuesApiDeps)


async def list_queues(request: web.Request) -> web.Response:
    """The wallboard's figures per queue (supervisors and admins)."""
    deps = request.config_dict[_DEPS]
    if deps.board is None:
        raise ApiError(503, "unavailable", "the wallboard is not running")
    await deps.board.ready()
    stats = [s.as_json() for s in deps.board.all_stats()]
    return web.json_response({"sla_s": deps.sla_s, "queues": stats})


def setup_queues_api(api: web.Application, deps: QueuesApiDeps) -> None:
    """Mount `GET /queues` on the admin API, open to supervisors."""
    api[_DEPS] = deps
    api.router.add_get("/queues", list_queues)
    allow_supervisors(api, "GET", "/api/queues")
