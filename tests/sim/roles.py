"""Reduce an AMI event stream to what the simulator must reproduce: per channel role, the
sequence of the events that matter to the bridge, with their key fields.

Roles: `caller` (the channel running the dialplan: PJSIP/trunk-… or Local/…@inbound-…;2),
`origin` (the ;1 half of a Local caller), `agent:EXT#n` (the nth channel the queue or a
transfer dialled towards EXT), `phone:EXT#n` (the ;2 half of a Local agent channel).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

Frame = dict[str, str]

KEY_EVENTS = {
    "Newchannel",
    "AGIExecStart",
    "AGIExecEnd",
    "MixMonitorStart",
    "QueueCallerJoin",
    "AgentCalled",
    "DialBegin",
    "DialEnd",
    "QueueCallerAbandon",
    "QueueCallerLeave",
    "AgentConnect",
    "BridgeEnter",
    "BridgeLeave",
    "BlindTransfer",
    "AgentComplete",
    "Hangup",
}
KEY_VARIABLES = {"MIXMONITOR_FILENAME", "BRIDGE_QUEUE"}
KEY_FIELDS = (
    "Queue",
    "Interface",
    "MemberName",
    "DialStatus",
    "Cause",
    "Cause-txt",
    "Reason",
    "Extension",
    "Variable",
    "ChannelStateDesc",
)

_AGENT = re.compile(
    r"^(?:Local/(?P<lext>[^@]+)@phones-[0-9a-f]{8};(?P<half>[12])|PJSIP/(?P<pext>\d+)-[0-9a-f]{8})$"
)
_CALLER = re.compile(
    r"^(?:Local/[^@]+@inbound[^;]*-[0-9a-f]{8};(?P<half>[12])|PJSIP/trunk-[0-9a-f]{8})$"
)


def parse_frames(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    for block in data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
        frame: Frame = {}
        for line in block.split("\n"):
            if not line:
                continue
            key, _, value = line.partition(": ")
            frame.setdefault(key, value)
        if frame:
            frames.append(frame)
    return frames


class _Roles:
    def __init__(self) -> None:
        self.by_channel: dict[str, str] = {}
        self.count: Counter[str] = Counter()

    def role(self, channel: str) -> str | None:
        m = _CALLER.match(channel)
        if m:
            return "origin" if m.group("half") == "1" else "caller"
        m = _AGENT.match(channel)
        if not m:
            return None
        ext = m.group("lext") or m.group("pext")
        base = channel[:-2] if m.group("half") else channel
        if base not in self.by_channel:
            self.count[ext] += 1
            self.by_channel[base] = f"{ext}#{self.count[ext]}"
        tag = self.by_channel[base]
        return f"phone:{tag}" if m.group("half") == "2" else f"agent:{tag}"


def role_sequences(frames: Iterable[Frame]) -> dict[str, list[tuple[str, ...]]]:
    """role -> [(event, key field values..., dest role)] in stream order (Cdr excluded)."""
    roles = _Roles()
    out: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for f in frames:
        event = f.get("Event")
        if event is None:
            continue
        if event == "VarSet" and f.get("Variable") not in KEY_VARIABLES:
            continue
        if event not in KEY_EVENTS and event != "VarSet":
            continue
        channel = f.get("Channel") or f.get("TransfererChannel") or f.get("DestChannel", "")
        role = roles.role(channel)
        if role is None:
            continue
        dest = roles.role(f["DestChannel"]) if "DestChannel" in f and "Channel" in f else None
        item = (event, *(f"{k}={f[k]}" for k in KEY_FIELDS if k in f))
        if dest:
            item = (*item, f"dest={dest}")
        out[role].append(item)
    return dict(out)


def cdr_sets(frames: Iterable[Frame]) -> dict[str, Counter[tuple[str, str]]]:
    """role -> multiset of (Disposition, Destination-is-agent) of its Cdr events."""
    roles = _Roles()
    out: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for f in frames:
        for key in ("Channel", "DestChannel"):
            if key in f:
                roles.role(f[key])
        if f.get("Event") == "Cdr":
            role = roles.role(f.get("Channel", ""))
            if role:
                out[role][(f.get("Disposition", ""), f.get("BillableSeconds", ""))] += 1
    return dict(out)


def header_names(frames: Iterable[Frame]) -> dict[str, frozenset[str]]:
    """event -> the header names its first occurrence carries (ActionID dropped)."""
    out: dict[str, frozenset[str]] = {}
    for f in frames:
        event = f.get("Event")
        if event in KEY_EVENTS | {"Cdr", "VarSet"} and event not in out:
            out[event] = frozenset(k for k in f if k != "ActionID")
    return out
