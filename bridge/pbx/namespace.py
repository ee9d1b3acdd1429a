"""The one boundary where a PBX's own identifiers become the bridge's.

A Linkedid (`1700000000.42`) and an extension (`1001`) are unique only within one Asterisk.
With several PBXs (`[[pbx]]` entries) every Uniqueid and Linkedid of a normalised AMI event,
and every agent extension its channels carry, is prefixed with the PBX's name
(`east:1700000000.42`, `east:1001`) before the call tracker sees it. Everything downstream
(call events, pops' `call_id`, `call_records`, participants, dispositions, the wallboard)
then carries the namespaced values without knowing PBXs exist. A legacy single PBX has an
empty prefix: nothing changes.

What goes back to a PBX (an Originate's ChannelId, a QueuePause's interface) keeps the PBX's
own bare values: only what comes from it is renamed.

Queue names are a PBX's too: `support` on east and `support` on west are two queues. What
supervisors follow (the wallboard, `queue.stats`, `GET /api/queues`, a pop page's queue
subscription) names a namespaced PBX's queue `east:support` (`pbx_queue`), from the PBX
prefix of the call id or device it comes with; the calls' own `queue` (pops, records, the
callbacks list) stays the name the PBX uses. A legacy single PBX's queues keep their names.

Caller numbers are a PBX's too: a national caller ID means something only in that PBX's
`default_region`. A namespaced PBX's caller numbers are therefore made E.164 here, with its
own region, when they are valid numbers (an extension such as `1001` stays as it is); the
pops and the records, which read numbers with one region, then see an unambiguous number.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from bridge import pbx_events as ev
from bridge.config import PBX_NAME, PbxSite
from bridge.crm.phones import to_e164
from bridge.devices import DeviceMatcher, DevicePatterns
from bridge.models import CallEvent
from bridge.tracker.tracker import CallTracker

__all__ = [
    "NamespacedTracker",
    "QualifiedDevices",
    "caller_e164",
    "namespace_event",
    "pbx_queue",
    "site_devices",
]

E = TypeVar("E")

_ID_SUFFIXES = ("uniqueid", "linkedid")
_WHOLE = re.compile(r"(?P<ext>.+)", re.DOTALL)
# The `<pbx>:` a namespaced call id or device starts with (`PBX_NAME` and its colon).
_PBX_PREFIX = re.compile(f"(?:{PBX_NAME.pattern}):")


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


def pbx_queue(owner: str, queue: str) -> str:
    """`queue` as supervisors follow it: `east:support` when `owner` (a call id or a device
    of that call or member) is a namespaced PBX's (`east:…`), else `queue` as it is."""
    found = _PBX_PREFIX.match(owner)
    return found.group() + queue if found and queue else queue


@functools.lru_cache(maxsize=4096)
def _e164(number: str, region: str) -> str:
    return to_e164(number, region) or number


def caller_e164(event: E, region: str) -> E:
    """`event` with its `caller_num` in E.164 when that is a valid number in `region`."""
    number = getattr(event, "caller_num", "")
    if not isinstance(number, str) or not number or number.startswith("+"):
        return event
    e164 = _e164(number, region)
    if e164 == number:
        return event
    return dataclasses.replace(event, caller_num=e164)  # type: ignore[type-var]


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
        self.region = site.pbx.default_region

    def _own(self, event: E) -> E:
        return caller_e164(namespace_event(event, self.prefix), self.region)

    def feed(self, event: ev.PbxEvent) -> list[CallEvent]:
        return super().feed(self._own(event))

    def resync(
        self,
        channels: Iterable[ev.ChannelListed],
        queue_entries: Iterable[ev.QueueEntryListed] = (),
        *,
        now: datetime,
        complete: bool = True,
    ) -> list[CallEvent]:
        return super().resync(
            [self._own(c) for c in channels],
            [self._own(q) for q in queue_entries],
            now=now,
            complete=complete,
        )


def site_devices(site: PbxSite) -> DeviceMatcher:
    """The PBX's `device_pattern`, its extensions qualified when it is one of several."""
    patterns = DevicePatterns.parse(site.pbx.device_pattern)
    return QualifiedDevices(patterns, site.prefix) if site.namespaced else patterns
