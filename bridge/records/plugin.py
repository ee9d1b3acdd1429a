"""The call records' plugins: the record writer (`records`), its delivery worker (`outbox`),
the participants (`participants`), and the call routes of the admin API.

They start after the alerter and the connector and before anything that produces calls, so
they stop last and keep in-flight end events. The writer takes the tracker's call ends and
the Cdrs (kept for `sync run`) from the AMI link, after the participants: both losslessly (a
full subscriber pauses the AMI read instead of dropping an end event), the writer in batches
(one fsync per burst).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bridge.alerts.plugin import ALERTER, PENDING_END, SPOOL_DIR, WATCHED_OUTBOX
from bridge.ami.plugin import LINK_USERS
from bridge.ami.sites import SiteLink
from bridge.connectors.plugin import CRM_CONNECTOR
from bridge.crm.plugin import AGENT_ROSTER
from bridge.plugin import Context, Http, Key, Plugin
from bridge.records.calls_api import setup_calls_api
from bridge.records.outbox import OutboxWorker
from bridge.records.participants import ParticipantRecorder
from bridge.records.spool import default_spool_dir
from bridge.records.wiring import build_delivery
from bridge.records.writer import RecordWriter

__all__ = ["CALL_PARTICIPANTS", "OUTBOX", "PARTICIPANTS", "RECORDS", "RECORD_WRITER"]

RECORD_WRITER: Key[RecordWriter] = Key("record_writer")
_OUTBOX: Key[OutboxWorker] = Key("outbox")
CALL_PARTICIPANTS: Key[ParticipantRecorder] = Key("participants")


def _writer(ctx: Context) -> RecordWriter:
    configured = ctx.config.records.spool_dir
    spool_dir = Path(configured) if configured else default_spool_dir()
    writer, outbox = build_delivery(
        ctx.config,
        ctx.pool,
        connector=ctx.need(CRM_CONNECTOR),
        alerts=ctx.need(ALERTER),
        spool_dir=spool_dir,
    )
    ctx.provide(RECORD_WRITER, writer)
    ctx.provide(_OUTBOX, outbox)
    ctx.provide(PENDING_END, writer.oldest_pending_end)
    ctx.provide(WATCHED_OUTBOX, outbox)
    ctx.provide(SPOOL_DIR, spool_dir)
    return writer


def _participants(ctx: Context) -> ParticipantRecorder:
    participants = ParticipantRecorder(ctx.pool, ctx.need(AGENT_ROSTER).agent_id_of)
    ctx.provide(CALL_PARTICIPANTS, participants)
    writer = ctx.need(RECORD_WRITER)

    def attach(sites: Sequence[SiteLink]) -> None:
        # Who talked and the records are lossless: a full subscriber pauses the AMI read.
        # The Cdrs go to the writer too (kept for `sync run`).
        for site in sites:
            site.subscribe_calls(participants.on_event, batch=False)
            site.subscribe_calls(writer.on_events, batch=True)
            site.subscribe_cdrs(writer.on_events)

    ctx.need(LINK_USERS).add(attach)
    return participants


def _calls_routes(http: Http, ctx: Context) -> None:
    setup_calls_api(http.api, ctx.pool)


RECORDS = Plugin("records", build=_writer, routes=_calls_routes)
OUTBOX = Plugin("outbox", build=lambda ctx: ctx.need(_OUTBOX))
PARTICIPANTS = Plugin("participants", build=_participants)
