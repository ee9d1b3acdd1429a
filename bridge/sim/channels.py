"""Simulated channels and the identifiers Asterisk gives them.

A Uniqueid is `<epoch seconds>.<sequence>`, the sequence counting every channel the PBX
ever created; a call's Linkedid is the Uniqueid of its first channel. Channel names end in
`-<8 hex digits>` from a second counter, with `;1`/`;2` halves for Local channels.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

STATES = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
SNAPSHOT_KEYS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)
UNKNOWN = "<unknown>"


@dataclass(slots=True)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    state: int = 0
    cid_num: str = UNKNOWN
    cid_name: str = UNKNOWN
    connected_num: str = UNKNOWN
    connected_name: str = UNKNOWN
    priority: int = 1
    created_at: float = 0.0
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""  # the bridge it is in now (CoreShowChannel BridgeId)
    variables: dict[str, str] = field(default_factory=dict)

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        values = (
            self.name,
            str(self.state),
            STATES.get(self.state, "Unknown"),
            self.cid_num,
            self.cid_name,
            self.connected_num,
            self.connected_name,
            "en",
            "",
            self.context,
            self.exten,
            str(self.priority),
            self.uniqueid,
            self.linkedid,
        )
        return [(prefix + k, v) for k, v in zip(SNAPSHOT_KEYS, values, strict=True)]


class Ids:
    """Uniqueids, channel name suffixes and bridge ids, from one PBX's counters."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._sequence = 0
        self._suffix = 0

    def uniqueid(self) -> str:
        value = f"{int(self._now())}.{self._sequence}"
        self._sequence += 1
        return value

    def suffix(self) -> str:
        value = f"{self._suffix:08x}"
        self._suffix += 1
        return value

    @staticmethod
    def bridge() -> str:
        return str(uuid.uuid4())
