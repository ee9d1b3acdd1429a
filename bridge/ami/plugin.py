"""The AMI plugin: the call tracker (the one live-call truth, made in `prepare` so the pops
and the wallboard can read it) and the AMI link feeding it (component `ami`).

Plugins before `ami` that consume the link (the pop hub, the wallboard, the participants and
the record writer) register with `LINK_USERS` when they are built; the link is attached to
them in that order once it exists, before it starts. With `[ami] enabled = false` there is
no link and they are never called.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.ami.link import AmiLink
from bridge.crm.plugin import AGENT_ROSTER
from bridge.plugin import Context, Key, Plugin
from bridge.tracker import CallTracker

__all__ = ["AMI", "AMI_LINK", "LINK_USERS", "TRACKER", "LinkUsers"]


class LinkUsers:
    """What to attach to the AMI link once it exists, in registration order."""

    def __init__(self) -> None:
        self._users: list[Callable[[AmiLink], None]] = []

    def add(self, attach: Callable[[AmiLink], None]) -> None:
        self._users.append(attach)

    def attach(self, link: AmiLink) -> None:
        for attach in self._users:
            attach(link)


TRACKER: Key[CallTracker] = Key("tracker")
LINK_USERS: Key[LinkUsers] = Key("ami_link_users")
AMI_LINK: Key[AmiLink] = Key("ami_link")


def _prepare(ctx: Context) -> None:
    roster = ctx.maybe(AGENT_ROSTER)
    # Agents are devices of the roster: Local hops and trunks are never listed as agents.
    is_agent = None if roster is None else (lambda ext: roster.agent_id_of(ext) is not None)
    tracker = CallTracker(
        ctx.config.device_regex, max_call_s=ctx.config.pbx.max_call_s, is_agent=is_agent
    )
    ctx.provide(TRACKER, tracker)
    ctx.provide(LINK_USERS, LinkUsers())


def _link(ctx: Context) -> AmiLink | None:
    if not ctx.config.ami.enabled:
        return None
    link = ctx.provide(AMI_LINK, AmiLink(ctx.config.ami, ctx.need(TRACKER)))
    ctx.need(LINK_USERS).attach(link)
    return link


AMI = Plugin("ami", prepare=_prepare, build=_link)
