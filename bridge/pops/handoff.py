"""What routing decided for a call, handed to the pop hub keyed by the call.

The AGI (or ARI) session knows the channel's uniqueid and the call's linkedid when the route
service records its decision; the tracker names a call by its linkedid. So the hub learns the
customer and the routing reason of a ringing call from memory instead of asking PostgreSQL
again. The first decision for a key wins, as in `route_decisions`. Bounded and expiring:
a call that never rings (hung up in the IVR, no AMI link) is forgotten after `ttl_s`, and
past `max_calls` the oldest entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bridge.clock import MonotonicClock
from bridge.models import Decision, InboundCall

__all__ = ["CallHandoff", "Routed"]

MAX_KEY = 150  # as route_decisions.uniqueid/linkedid


@dataclass(frozen=True, slots=True)
class Routed:
    customer_id: str | None
    route: dict[str, Any]  # {"rule", "queue", "priority", "degraded"}, as `route_for_call`
    at: float


class CallHandoff:
    def __init__(
        self,
        *,
        max_calls: int = 50_000,
        ttl_s: float = 900.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self._max = max(1, max_calls)
        self._ttl = ttl_s
        self._clock = clock
        self._calls: OrderedDict[str, Routed] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._calls)

    def note(self, call: InboundCall, decision: Decision) -> Routed:
        """Keep `decision` under the call's linkedid and uniqueid (if not already kept)."""
        routed = Routed(
            decision.customer.id if decision.customer is not None else None,
            {
                "rule": decision.rule,
                "queue": decision.queue,
                "priority": decision.priority,
                "degraded": decision.degraded,
            },
            self._clock(),
        )
        self._expire(routed.at)
        for key in {call.linkedid, call.uniqueid}:
            if key and len(key) <= MAX_KEY and "\x00" not in key and key not in self._calls:
                self._calls[key] = routed
        while len(self._calls) > self._max:
            self._calls.popitem(last=False)
        return routed

    def get(self, call_id: str) -> Routed | None:
        routed = self._calls.get(call_id)
        if routed is None:
            return None
        if self._clock() - routed.at > self._ttl:
            self._expire(self._clock())
            return None
        return routed

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def _expire(self, now: float) -> None:
        while self._calls:
            oldest = next(iter(self._calls.values()))
            if now - oldest.at <= self._ttl:
                return
            self._calls.popitem(last=False)
