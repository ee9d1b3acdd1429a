"""The click-to-call plugin: the agent's dial and callback routes on the `[http]` port and
`POST /api/dial` in the admin API. A dial goes out through the agent's own PBX's AMI link;
without any link, dials answer 503."""

from __future__ import annotations

from bridge.ami.plugin import SITE_LINKS
from bridge.dial.routes import DialDeps, setup_admin_dial, setup_dial_routes
from bridge.dial.service import Dialer
from bridge.pbx.regions import PbxRegions
from bridge.plugin import Context, Http, Plugin
from bridge.wallboard.plugin import WALL_BOARD

__all__ = ["DIAL"]


def _dialer(ctx: Context) -> Dialer | None:
    """Click-to-call through the agent's own PBX's AMI link (None: no link at all)."""
    sites = [s for s in ctx.maybe(SITE_LINKS) or () if s.pipeline is not None]
    if not sites:
        return None
    actions = {s.site.name: (s.site, s.pipeline.link.action) for s in sites if s.pipeline}
    first = next(iter(actions.values()))[1]
    if not ctx.config.pbx_sites:  # a legacy single PBX
        return Dialer(ctx.pool, ctx.config, first)
    return Dialer(ctx.pool, ctx.config, first, sites=actions)


def _routes(http: Http, ctx: Context) -> None:
    cfg = ctx.config
    board = ctx.maybe(WALL_BOARD)
    deps = DialDeps(
        ctx.pool,
        _dialer(ctx),
        callbacks_days=cfg.dial.callbacks_days,
        regions=PbxRegions.of(cfg),
        queues_of=(lambda device: None) if board is None else board.queues_of,
    )
    setup_dial_routes(http.app, deps)
    setup_admin_dial(http.api)


DIAL = Plugin("dial", routes=_routes)
