"""The click-to-call plugin: the agent's dial and callback routes on the `[http]` port and
`POST /api/dial` in the admin API. Without the AMI link, dials answer 503."""

from __future__ import annotations

from bridge.ami.plugin import AMI_LINK
from bridge.dial.routes import DialDeps, setup_admin_dial, setup_dial_routes
from bridge.dial.service import Dialer
from bridge.plugin import Context, Http, Plugin
from bridge.wallboard.plugin import WALL_BOARD

__all__ = ["DIAL"]


def _routes(http: Http, ctx: Context) -> None:
    cfg = ctx.config
    link, board = ctx.maybe(AMI_LINK), ctx.maybe(WALL_BOARD)
    deps = DialDeps(
        ctx.pool,
        None if link is None else Dialer(ctx.pool, cfg, link.action),
        callbacks_days=cfg.dial.callbacks_days,
        region=cfg.pbx.default_region,
        queues_of=(lambda device: None) if board is None else board.queues_of,
    )
    setup_dial_routes(http.app, deps)
    setup_admin_dial(http.api)


DIAL = Plugin("dial", routes=_routes)
