"""Child process for the SIGKILL test: replays a trace into a writer whose database is
unreachable, printing `ACK <call_id>` after each end event is accepted, then waits to die."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bridge.db.pool import create_pool
from bridge.records import RecordWriter, Spool
from tests.records.helpers import ended_events


async def main(url: str, spool_dir: str, scenario: str) -> None:
    pool = await create_pool(url, min_size=0, max_size=2)
    writer = RecordWriter(pool, Spool(Path(spool_dir)), retry_max_s=0.2, region="US")
    await writer.start()
    for event in ended_events(scenario):
        await writer.submit(event)
        print("ACK", event.call_id, flush=True)
    print("DONE", flush=True)
    await asyncio.Event().wait()  # killed here, records still unwritten


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
