"""The spool keeps every unacknowledged entry across reopen, torn writes and compaction."""

from __future__ import annotations

from pathlib import Path

from bridge.records.codec import decode_ended, ended_to_dict
from bridge.records.spool import Spool, SpoolEntry
from tests.records.factory import make_ended


def reopen(directory: Path) -> list[SpoolEntry]:
    spool = Spool(directory)
    try:
        return spool.open()
    finally:
        spool.close()


def test_unacknowledged_entries_come_back_after_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.open() == []
    a = spool.append("ended", {"x": 1})
    b = spool.append("cdr", {"y": 2})
    spool.ack([a.n])
    spool.close()
    again = Spool(tmp_path)
    pending = again.open()
    assert [(e.n, e.kind, e.value) for e in pending] == [(b.n, "cdr", {"y": 2})]
    c = again.append("ended", {"z": 3})
    assert c.n > b.n  # numbers never repeat while entries are pending
    again.close()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append("ended", {"ok": True})
    spool.close()
    with open(tmp_path / "records.jsonl", "ab") as f:
        f.write(b'{"n": 2, "k": "ended", "v": {"half')
    pending = reopen(tmp_path)
    assert [e.value for e in pending] == [{"ok": True}]


def test_compaction_keeps_pending_and_shrinks_the_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, compact_bytes=4096)
    spool.open()
    keep = spool.append("ended", {"keep": "me"})
    for i in range(200):
        spool.ack([spool.append("ended", {"i": i, "pad": "x" * 50}).n])
    size = (tmp_path / "records.jsonl").stat().st_size
    assert size < 4096
    spool.close()
    assert [e.n for e in reopen(tmp_path)] == [keep.n]


def test_hostile_text_survives_the_round_trip(tmp_path: Path) -> None:
    nasty = 'a\x00b\r\n{"n": 9, "k": "ack"}\n\udcff 张伟 \'; DROP TABLE x; --'
    event = make_ended("1.1", caller=nasty, device=nasty)
    spool = Spool(tmp_path)
    spool.open()
    spool.append("ended", ended_to_dict(event))
    spool.close()
    raw = (tmp_path / "records.jsonl").read_bytes()
    assert raw.count(b"\n") == 1 and raw.isascii()
    (entry,) = reopen(tmp_path)
    assert decode_ended(entry.value) == event


def test_an_ack_on_the_event_loop_never_waits_nor_compacts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, compact_bytes=1 << 20)
    spool.open()
    first, second = spool.append_many([("cdr", {"uniqueid": "1"}), ("cdr", {"uniqueid": "2"})])
    assert spool.try_ack([first.n])
    with spool._lock:  # another thread's fsync holds the spool: nothing done, no wait
        assert not spool.try_ack([second.n])
    assert spool.pending == 1
    spool.compact_bytes = spool._compact_at = 1  # compaction due: left to `ack`, in a thread
    assert not spool.try_ack([second.n])
    spool.ack([second.n])
    spool.close()
    assert tmp_path.joinpath("records.jsonl").read_bytes() == b""  # compacted: none pending
    reopened = Spool(tmp_path)
    assert reopened.open() == []
    reopened.close()


def test_an_append_on_the_event_loop_never_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    with spool._lock:
        assert spool.try_append_many([("cdr", {"uniqueid": "1"})]) is None
    (entry,) = spool.try_append_many([("cdr", {"uniqueid": "1"})]) or []
    spool.close()
    reopened = Spool(tmp_path)
    assert reopened.open() == [entry]
    reopened.close()
