"""AgiSession's reply deadlines: one timer per session, re-armed when a later reply's deadline
moved past it. The loop's clock is a fake that only moves when the test says, so the deadlines
are checked by logic, not by waiting."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bridge.agi import AgiSession
from bridge.agi.protocol import AgiEnv, encode_set_variable


@dataclass
class Wired:
    session: AgiSession
    pbx_reader: asyncio.StreamReader
    pbx_writer: asyncio.StreamWriter
    clock: list[float]


@pytest.fixture
async def wired(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Wired]:
    loop = asyncio.get_running_loop()
    clock = [loop.time()]
    monkeypatch.setattr(loop, "time", lambda: clock[0])
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    pbx_reader, pbx_writer = await asyncio.open_connection(sock=theirs)
    session = AgiSession(reader, writer, AgiEnv({}), b"", read_timeout_s=1.0, write_timeout_s=1.0)
    try:
        yield Wired(session, pbx_reader, pbx_writer, clock)
    finally:
        session.close()
        writer.close()
        pbx_writer.close()


async def started(w: Wired, data: bytes) -> asyncio.Task[object]:
    """The command running and waiting for its reply (the PBX has read the command)."""
    task: asyncio.Task[object] = asyncio.ensure_future(w.session.command(data))
    assert await w.pbx_reader.readline() == data
    return task


async def timers_due(w: Wired) -> None:
    """Return once every timer due at the fake clock's now has run: a timer of ours at now
    runs after those due earlier (the loop runs due timers in time order)."""
    fired = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_at(w.clock[0], fired.set_result, None)
    await fired


async def test_a_reply_later_than_the_read_timeout_is_a_timeout(wired: Wired) -> None:
    task = await started(wired, encode_set_variable("A", "1"))
    wired.clock[0] += 1.5
    with pytest.raises(TimeoutError):
        await task


async def test_the_timer_moves_on_when_a_later_reply_is_not_yet_due(wired: Wired) -> None:
    w = wired
    first = await started(w, encode_set_variable("A", "1"))  # timer armed for t0 + 1.0
    w.pbx_writer.write(b"200 result=1\n")
    assert (await first).ok  # type: ignore[attr-defined]
    w.clock[0] += 0.5
    second = await started(w, encode_set_variable("B", "2"))  # due at t0 + 1.5
    w.clock[0] += 0.7  # t0 + 1.2: the session's timer is due, early for this reply ...
    await timers_due(w)
    # ... and it waited on instead of cutting the reply short: re-armed at t0 + 1.5.
    assert not second.done()
    timer = w.session._timer
    assert timer is not None and timer.when() == pytest.approx(w.clock[0] + 0.3)
    w.pbx_writer.write(b"200 result=1\n")
    assert (await second).ok  # type: ignore[attr-defined]
    third = await started(w, encode_set_variable("C", "3"))
    w.clock[0] += 2.0
    with pytest.raises(TimeoutError):
        await third


async def test_a_cancelled_command_stays_cancelled_and_is_not_a_timeout(wired: Wired) -> None:
    task = await started(wired, encode_set_variable("A", "1"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wired.clock[0] += 5
    await timers_due(wired)  # the session's timer, firing now, finds nothing to cut
    assert wired.session._timer is None
