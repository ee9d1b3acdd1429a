"""The wallboard plugin: queue figures for supervisors (component `wallboard`), the pauses
from the agents' desks, and `GET /api/queues`.

The PBX side (queue members, pauses over AMI) is attached once the AMI link exists, after
the board has started, like the board's call events (after the pop hub's).
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.ami.plugin import LINK_USERS, TRACKER
from bridge.ami.sites import SiteLink
from bridge.crm.plugin import AGENT_ROSTER
from bridge.plugin import Context, Http, Key, Plugin
from bridge.pops.plugin import POP_HUB
from bridge.wallboard.ami import AmiQueues
from bridge.wallboard.board import WallBoard
from bridge.wallboard.pbx_queues import PbxQueues
from bridge.wallboard.queues_api import QueuesApiDeps, setup_queues_api

__all__ = ["WALLBOARD", "WALL_BOARD"]

WALL_BOARD: Key[WallBoard] = Key("wallboard")


def _board(ctx: Context) -> WallBoard:
    cfg = ctx.config
    hub = ctx.need(POP_HUB)
    board = WallBoard(
        ctx.need(TRACKER),
        agent_of=ctx.need(AGENT_ROSTER).agent_id_of,
        sla_s=cfg.wallboard.sla_s,
        wrapup_s=cfg.wallboard.wrapup_s,
        refresh_s=cfg.wallboard.refresh_s,
        timezone=cfg.routing.timezone,
        pool=ctx.pool,
        queues=[site.prefix + cfg.routing.default_queue for site in cfg.pbxs],
    )
    hub.use_board(board)
    board.on_stats(hub.publish_queue, wanted=hub.follows)
    board.use_names(hub.customer_name)
    ctx.provide(WALL_BOARD, board)

    def attach(sites: Sequence[SiteLink]) -> None:
        # Each PBX's queue members and pauses; several PBXs' read as one.
        controls = [
            (s.site.prefix, AmiQueues(s.pipeline.link, s.devices))
            for s in sites
            if s.pipeline is not None
        ]
        if len(controls) == 1:
            board.use_control(controls[0][1])
        elif controls:
            board.use_control(PbxQueues(controls))
        for site in sites:
            site.observe_calls(board.dispatch)

    ctx.need(LINK_USERS).add(attach)
    return board


def _queues_routes(http: Http, ctx: Context) -> None:
    setup_queues_api(http.api, QueuesApiDeps(ctx.maybe(WALL_BOARD), ctx.config.wallboard.sla_s))


WALLBOARD = Plugin("wallboard", build=_board, routes=_queues_routes)
