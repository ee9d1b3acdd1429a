"""Child process for the Cdr SIGKILL test: feeds a call's Cdrs to a writer as the AMI link
does (its end never comes), printing `ACK <uniqueid>` after each is accepted, then waits to
die. The Cdrs are held for the call's end, so none is in PostgreSQL when it is killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bridge.db.pool import create_pool
from bridge.records import RecordWriter, Spool
from tests.records.test_cdr_batching import cdr_events


async def main(url: str, spool_dir: str, call_id: str) -> None:
    pool = await create_pool(url, min_size=0, max_size=2)
    writer = RecordWriter(pool, Spool(Path(spool_dir)), region="US", cdr_hold_s=3600)
    await writer.start()
    for event in cdr_events(call_id):
        await writer.on_events([event])
        print("ACK", event.uniqueid, flush=True)
    print("DONE", flush=True)
    await asyncio.Event().wait()  # killed here, the Cdrs still unwritten


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
