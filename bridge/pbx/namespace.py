"""The one boundary where a PBX's own identifiers become the bridge's.

A Linkedid (`1700000000.42`) and an extension (`1001`) are unique only within one Asterisk.
With several PBXs (`[[pbx]]` entries) every Uniqueid and Linkedid of a normalised AMI event,
and every agent extension its channels carry, is prefixed with the PBX's name
(`east:1700000000.42`, `east:1001`) before the call tracker sees it. Everything downstream
(call events, pops' `call_id`, `call_records`, participants, dispositions, the wallboard)
then carries the namespaced values without knowing PBXs exist. A legacy single PBX has an
empty prefix: nothing changes.

What goes back to a PBX (an Originate, a QueuePause) uses its own bare values: `bare`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from bridge.ami import normalise as ev
from bridge.config import PbxSite
from bridge.devices import DeviceMatcher
from bridge.models import CallEvent
from bridge.tracker.tracker import CallTracker

__all__ = ["NamespacedTracker", "QualifiedDevices", "bare", "namespace_event"]

E = TypeVar("E")

_ID_SUFFIXES = ("uniqueid", "linkedid")
_WHOLE = re.compile(r"(?P<ext>.+)", re.DOTALL)


def _id_fields(event_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(event_type) if f.name.endswith(_ID_SUFFIXES))


_FIELDS: dict[type, tuple[str, ...]] = {}


def namespace_event(event: E, prefix: str) -> E:
    """`event` with each non-empty `*uniqueid`/`*linkedid` field prefixed (a new object)."""
    if not prefix or not dataclasses.is_dataclass(event) or isinstance(event, type):
        return event
    names = _FIELDS.get(type(event))
    if names is None:
        names = _FIELDS[type(event)] = _id_fields(type(event))
    changes = {n: prefix + v for n in names if (v := getattr(event, n))}
    return dataclasses.replace(event, **changes) if changes else event


def bare(value: str, prefix: str) -> str:
    """`value` as its PBX names it (the prefix taken off, when it has it)."""
    return value[len(prefix) :] if prefix and value.startswith(prefix) else value


class QualifiedDevices:
    """A `DeviceMatcher` whose `ext` is the PBX's extension prefixed (`east:1001`).

    The returned match is over the qualified text, so `group("ext")` - all a matcher's
    users read - is the qualified extension."""

    def __init__(self, inner: DeviceMatcher, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def match(self, string: str, /) -> re.Match[str] | None:
        found = self.inner.match(string)
        if found is None or not self.prefix:
            return found
        ext = found.group("ext")
        return _WHOLE.fullmatch(self.prefix + ext) if ext else None


class NamespacedTracker(CallTracker):
    """A `CallTracker` for one of several PBXs: its inputs are namespaced on the way in
    (`device_pattern` should be a `QualifiedDevices` with the same prefix)."""

    def __init__(self, site: PbxSite, device_pattern: DeviceMatcher, **kwargs: Any) -> None:
        super().__init__(device_pattern, **kwargs)
        self.site = site
        self.prefix = site.prefix

    def feed(self, event: ev.AmiEvent) -> list[CallEvent]:
        return super().feed(namespace_event(event, self.prefix))

    def resync(
        self,
        channels: Iterable[ev.ChannelListed],
        queue_entries: Iterable[ev.QueueEntryListed] = (),
        *,
        now: datetime,
        complete: bool = True,
    ) -> list[CallEvent]:
        return super().resync(
            [namespace_event(c, self.prefix) for c in channels],
            [namespace_event(q, self.prefix) for q in queue_entries],
            now=now,
            complete=complete,
        )
