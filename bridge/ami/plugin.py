"""The AMI plugin: each PBX's call tracker (the live-call truth, made in `prepare` so the
pops and the wallboard can read it) and AMI pipeline feeding it (component `ami`: one PBX's
pipeline, or several PBXs' grouped).

Plugins before `ami` that follow calls (the pop hub, the wallboard, the participants and
the record writer) register with `LINK_USERS` when they are built; every PBX's link is
attached to them in that order once the links exist, before they start. With AMI disabled
everywhere there is no link and they are never called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.ami.sites import SiteLink, build_site
from bridge.component import Component
from bridge.crm.plugin import AGENT_ROSTER
from bridge.pbx.group import grouped
from bridge.pbx.live import PbxCalls
from bridge.plugin import Context, Key, Plugin
from bridge.tracker import CallTracker

__all__ = ["AMI", "LINK_USERS", "SITE_LINKS", "TRACKER", "LinkUsers"]

Attach = Callable[[Sequence[SiteLink]], None]


class LinkUsers:
    """What to attach to the PBXs' links once they exist, in registration order."""

    def __init__(self) -> None:
        self._users: list[Attach] = []

    def add(self, attach: Attach) -> None:
        self._users.append(attach)

    def attach(self, sites: Sequence[SiteLink]) -> None:
        for attach in self._users:
            attach(sites)


TRACKER: Key[CallTracker | PbxCalls] = Key("tracker")
SITE_LINKS: Key[list[SiteLink]] = Key("ami_sites")
LINK_USERS: Key[LinkUsers] = Key("ami_link_users")


def _prepare(ctx: Context) -> None:
    roster = ctx.maybe(AGENT_ROSTER)
    # Agents are devices of the roster: Local hops and trunks are never listed as agents.
    is_agent = None if roster is None else (lambda ext: roster.agent_id_of(ext) is not None)
    sites = [build_site(site, is_agent=is_agent) for site in ctx.config.pbxs]
    ctx.provide(SITE_LINKS, sites)
    trackers = [s.tracker for s in sites]
    ctx.provide(TRACKER, trackers[0] if len(trackers) == 1 else PbxCalls(trackers))
    ctx.provide(LINK_USERS, LinkUsers())


def _links(ctx: Context) -> Component | None:
    sites = ctx.need(SITE_LINKS)
    if all(s.pipeline is None for s in sites):
        return None
    ctx.need(LINK_USERS).attach(sites)
    return grouped("ami", [(s.site.name, s.pipeline) for s in sites])


AMI = Plugin("ami", prepare=_prepare, build=_links)
