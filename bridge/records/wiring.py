"""Call records, their delivery and alerts assembled outside the running bridge (the
bridge's own plugins, `bridge.records.plugin`, use `build_delivery`):

    parts = build_records(config, pool, directory=crm_directory)
    for component in parts.components():      # start in this order, stop in reverse
        await stack.enter_async_context(running(component))
    # On the AMI pipeline's event bus. lossless: a full writer pauses the AMI read instead
    # of dropping an end event; batch: one fsync per burst. CallEnded from the tracker,
    # Cdrs kept for sync.
    events.subscribe(parts.writer.on_events, CALL_EVENT_TYPES, lossless=True, batch=True)
    events.subscribe(parts.writer.on_events, (CdrRecord,), lossless=True, batch=True)
    route_directory = parts.connector  # with [crm] connector = "rest", lookups go there too

The writer wakes the outbox after each commit, so delivery starts at once; the outbox also
polls, and picks up dispositions queued by the call_records trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.alerts import Alerter
from bridge.component import Component
from bridge.config import Config
from bridge.connectors import CrmConnector, build_connector
from bridge.pbx.regions import PbxRegions
from bridge.records.outbox import OutboxWorker
from bridge.records.spool import Spool, default_spool_dir
from bridge.records.writer import RecordWriter

__all__ = ["RecordsParts", "build_delivery", "build_records"]


@dataclass(frozen=True, slots=True)
class RecordsParts:
    writer: RecordWriter
    outbox: OutboxWorker
    connector: CrmConnector
    alerter: Alerter

    def components(self) -> list[Component]:
        """Start order: alerts and the connector before those that use them."""
        return [self.alerter, self.connector, self.writer, self.outbox]


def build_records(
    config: Config,
    pool: Any,
    *,
    directory: Any = None,
    spool_dir: Path | None = None,
    connector: CrmConnector | None = None,
) -> RecordsParts:
    """`directory` answers builtin lookups; `spool_dir` defaults to
    `$CRM_BRIDGE_RECORDS_SPOOL_DIR` or `./.crm-bridge/spool`."""
    connector = connector or build_connector(config, directory)
    alerter = Alerter(config.alerts)
    writer, outbox = build_delivery(
        config, pool, connector=connector, alerts=alerter, spool_dir=spool_dir
    )
    return RecordsParts(writer, outbox, connector, alerter)


def build_delivery(
    config: Config,
    pool: Any,
    *,
    connector: CrmConnector,
    alerts: Alerter | None,
    spool_dir: Path | None = None,
) -> tuple[RecordWriter, OutboxWorker]:
    """The record writer and the outbox delivering its records to `connector`, the writer
    waking the outbox after each commit."""
    writer = RecordWriter(
        pool, Spool(spool_dir or default_spool_dir()), region=PbxRegions.of(config).of_call
    )
    outbox = OutboxWorker(
        pool,
        connector,
        max_attempts=config.crm.max_attempts,
        alerts=alerts,
        lag_threshold_s=config.alerts.lag_threshold_s,
    )
    writer.on_committed(lambda _kind, _key, _at: outbox.wake())
    return writer, outbox
