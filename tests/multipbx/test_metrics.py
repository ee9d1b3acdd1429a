"""`crm_bridge_ami_active_calls` has one series per PBX (`pbx` label): two PBXs each
following a call show 1 and 1, not whichever fed last. A legacy single PBX's series has
`pbx=""`, which Prometheus stores as the unlabelled series it always was."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami.sites import SiteLink, build_site
from bridge.ami_replay import ReplayClock
from bridge.config import build_config
from tests.conftest import TRACES

VIP = (TRACES / "vip-answered" / "ami.log").read_bytes()
TALKING = VIP[: VIP.index(b"Event: BridgeEnter")]  # one call up, not yet over


def feed(link: SiteLink, raw: bytes) -> None:
    assert link.pipeline is not None
    clock = ReplayClock()
    for frame in AmiParser().feed(raw):
        if (event := decode_event(frame, clock())) is not None:
            link.pipeline.events.publish([event])


def active(pbx: str) -> float | None:
    return REGISTRY.get_sample_value("crm_bridge_ami_active_calls", {"pbx": pbx})


def test_each_pbx_has_its_own_active_calls_series() -> None:
    entries = [{"name": name, "ami": {"username": "u", "secret": "s"}} for name in ("east", "west")]
    config = build_config({"pbx": entries}, {}, runtime=False)
    east, west = (build_site(site, is_agent=None) for site in config.pbxs)
    feed(east, TALKING)
    feed(west, TALKING)  # the same Linkedid on the other PBX: a second call
    assert (active("east"), active("west")) == (1, 1)
    feed(west, VIP[len(TALKING) :])  # west's call ends; east's is still up
    assert (east.tracker.active_calls, west.tracker.active_calls) == (1, 0)
    assert (active("east"), active("west")) == (1, 0)


def test_a_single_pbx_series_has_an_empty_pbx_label() -> None:
    (site,) = build_config({}, {}, runtime=False).pbxs
    link = build_site(site, is_agent=None)
    feed(link, TALKING)
    assert active("") == link.tracker.active_calls == 1
    assert b'crm_bridge_ami_active_calls{pbx=""} 1.0' in generate_latest(REGISTRY)
