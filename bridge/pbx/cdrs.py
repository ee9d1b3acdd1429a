"""One of several PBXs' own CDR store, read in that PBX's namespace, so its reconciliation
rebuilds calls under the same call ids the live link gives them."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from bridge.pbx.namespace import namespace_event
from bridge.sync.sources import CdrBatch, CdrSource

__all__ = ["NamespacedSource"]


class NamespacedSource:
    """A `CdrSource` whose CDRs' Uniqueid and Linkedid carry `prefix`."""

    def __init__(self, inner: CdrSource, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.description = inner.description

    async def read(self, since: datetime | None) -> CdrBatch:
        batch = await self.inner.read(since)
        cdrs = [namespace_event(cdr, self.prefix) for cdr in batch.cdrs]
        return dataclasses.replace(batch, cdrs=cdrs)
