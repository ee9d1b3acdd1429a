"""A simulated Asterisk PBX: an AMI server and a FastAGI client that place calls.

Used by `crm-bridge demo` and by tests. `SimPbx` runs calls (random ones, or the recorded
scenarios of tests/fixtures/asterisk-traces); `AmiServer` serves their events over AMI.
"""

from __future__ import annotations

from bridge.sim.ami_server import BANNER, AmiServer
from bridge.sim.call import CallResult
from bridge.sim.clock import Clock, FastClock, RealClock
from bridge.sim.model import AmiUser, CallPlan, SimAgent, SimConfig, SimQueue, Transfer
from bridge.sim.pbx import SimPbx
from bridge.sim.scenarios import SCENARIOS, lab_config, scenario

__all__ = [
    "BANNER",
    "SCENARIOS",
    "AmiServer",
    "AmiUser",
    "CallPlan",
    "CallResult",
    "Clock",
    "FastClock",
    "RealClock",
    "SimAgent",
    "SimConfig",
    "SimPbx",
    "SimQueue",
    "Transfer",
    "lab_config",
    "scenario",
]
