"""The recorded calls of tests/fixtures/asterisk-traces as simulator plans.

Each plan reproduces what the lab's test driver and its scripted handsets did (see each
scenario.json): who called, how long handsets rang (the lab's 2002 rang 3 s longer),
talk time, abandon and transfer. The queue is not in the plan: the bridge (or a test's
FastAGI server) chooses it, as on a real PBX.
"""

from __future__ import annotations

from bridge.sim.model import CallPlan, SimAgent, SimConfig, SimQueue, Transfer

LAB_DID = "18005550100"


def lab_config(**overrides: object) -> SimConfig:
    """The lab PBX of the recordings: support (rrmemory 1001, 1002), senior (ringall 2001, 2002)."""
    values: dict[str, object] = {
        "technology": "Local",
        "agents": (
            SimAgent("1001", "Agent 1001"),
            SimAgent("1002", "Agent 1002"),
            SimAgent("2001", "Senior 2001"),
            SimAgent("2002", "Senior 2002"),
        ),
        "queues": (
            SimQueue("support", "rrmemory", ("1001", "1002")),
            SimQueue("senior", "ringall", ("2001", "2002")),
        ),
        "did": LAB_DID,
        "monitor_dir": "/tmp/astrun/spool/monitor",  # noqa: S108 - a path on the simulated PBX
    }
    values.update(overrides)
    return SimConfig(**values)  # type: ignore[arg-type]


def _plan(caller: str, name: str, ring: float, talk: float, **kw: object) -> CallPlan:
    # The lab's handset 2002 rings 3 s longer than the others.
    overrides = (("2002", ring + 3.0),)
    return CallPlan(caller, name, LAB_DID, ring, overrides, talk, **kw)  # type: ignore[arg-type]


def scenario(name: str) -> list[CallPlan]:
    """The plans of one recorded scenario; KeyError names the known ones."""
    plans: dict[str, list[CallPlan]] = {
        "regular-answered": [_plan("+15551230002", "Bob", 0.5, 2.0, first_member="1001")],
        "vip-answered": [_plan("+15551230001", "Alice VIP", 0.5, 2.0)],
        "vip-answered-least-privilege": [_plan("+15551230001", "Alice VIP", 0.5, 2.0)],
        "unicode-name": [_plan("+8613800138000", "张伟", 0.5, 2.0)],
        "unknown-caller": [_plan("+442071838750", "", 0.5, 2.0, first_member="1002")],
        "anonymous": [_plan("anonymous", "Anonymous", 0.2, 1.0, first_member="1002")],
        "abandoned": [
            _plan("+15551230002", "Bob", 6.0, 1.0, abandon_after_s=2.0, first_member="1001")
        ],
        "blind-transfer": [
            _plan(
                "+15551230002",
                "Bob",
                0.3,
                4.0,
                first_member="1001",
                transfer=Transfer(after_s=1.0, to_ext="2001", talk_s=4.0, ring_s=0.3),
            )
        ],
        "concurrent-8": [_plan(f"+1555123100{i}", f"Caller 100{i}", 0.3, 1.5) for i in range(8)],
    }
    if name not in plans:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(plans))}")
    return plans[name]


SCENARIOS = (
    "regular-answered",
    "vip-answered",
    "vip-answered-least-privilege",
    "unicode-name",
    "unknown-caller",
    "anonymous",
    "abandoned",
    "blind-transfer",
    "concurrent-8",
)
