"""The local durable spool: end events and Cdrs survive a database outage or a SIGKILL.

An append-only JSONL file, `<dir>/records.jsonl`. Each entry is one line::

    {"n": 17, "k": "ended", "v": {...CallEnded...}}     kept until written to PostgreSQL
    {"n": 17, "k": "ack"}                               entry 17 is committed in PostgreSQL

`append` writes the line, flushes and fsyncs the file *before* it returns, so a caller that
acknowledges an event only after `append` can lose nothing: on start the spool is read back
and every entry without an ack is written again (the writes are upserts keyed by call_id, so
replaying an entry whose ack was lost is harmless; acks are therefore not fsync'd). A torn
last line (killed mid-write) is skipped. Once the file has grown past `compact_bytes` it is
rewritten with just the pending entries (write new, fsync, rename, fsync the folder), so
at every instant one complete file holds every unacknowledged entry.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Spool", "SpoolEntry", "default_spool_dir"]

log = logging.getLogger(__name__)

FILE_NAME = "records.jsonl"


def default_spool_dir(environ: dict[str, str] | None = None) -> Path:
    """`$CRM_BRIDGE_RECORDS_SPOOL_DIR`, else `./.crm-bridge/spool`."""
    env = os.environ if environ is None else environ
    return Path(env.get("CRM_BRIDGE_RECORDS_SPOOL_DIR") or ".crm-bridge/spool")


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    n: int
    kind: str  # "ended" | "cdr"
    value: dict[str, Any]


class Spool:
    """Blocking file operations; call them from a thread (`asyncio.to_thread`)."""

    def __init__(self, directory: Path, *, compact_bytes: int = 1 << 20) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.compact_bytes = compact_bytes
        self._lock = threading.Lock()
        self._next = 1
        self._pending: dict[int, SpoolEntry] = {}
        self._file: Any = None
        self._compact_at = compact_bytes

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> list[SpoolEntry]:
        """Open (creating the folder) and return the entries not yet acknowledged, in order."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._pending = {}
            self._next = 1
            if self.path.exists():
                self._load()
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for appends
            return list(self._pending.values())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _load(self) -> None:
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    item = json.loads(raw)
                    n = int(item["n"])
                    kind = item["k"]
                except (ValueError, KeyError, TypeError):
                    log.warning("spool %s line %d unreadable, skipped", self.path, number)
                    continue
                self._next = max(self._next, n + 1)
                if kind == "ack":
                    self._pending.pop(n, None)
                elif kind in {"ended", "cdr"} and isinstance(item.get("v"), dict):
                    self._pending[n] = SpoolEntry(n, kind, item["v"])

    # --- entries ---------------------------------------------------------------------------

    def append(self, kind: str, value: dict[str, Any], *, sync: bool = True) -> SpoolEntry:
        """Durably add one entry (flushed and fsync'd when this returns)."""
        return self.append_many([(kind, value)], sync=sync)[0]

    def append_many(
        self, items: list[tuple[str, dict[str, Any]]], *, sync: bool = True
    ) -> list[SpoolEntry]:
        """Add entries. Flushed to the kernel before returning, which survives the process
        being killed; `sync` (default) also fsyncs, which survives the machine going down.
        An fsync covers every earlier unsynced line too."""
        with self._lock:
            return self._append(items, sync=sync)

    def try_append_many(self, items: list[tuple[str, dict[str, Any]]]) -> list[SpoolEntry] | None:
        """`append_many(items, sync=False)` if nobody holds the spool right now, else None
        at once: cheap enough for the event loop, but never waits behind another
        thread's fsync."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._append(items, sync=False)
        finally:
            self._lock.release()

    def _append(self, items: list[tuple[str, dict[str, Any]]], *, sync: bool) -> list[SpoolEntry]:
        if self._file is None:
            raise RuntimeError("spool is not open")
        entries: list[SpoolEntry] = []
        lines: list[bytes] = []
        for kind, value in items:
            entry = SpoolEntry(self._next, kind, value)
            self._next += 1
            line = json.dumps(
                {"n": entry.n, "k": kind, "v": value}, ensure_ascii=True, separators=(",", ":")
            )
            lines.append(line.encode("ascii") + b"\n")
            entries.append(entry)
        self._file.write(b"".join(lines))
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        for entry in entries:
            self._pending[entry.n] = entry
        return entries

    def ack(self, numbers: list[int]) -> None:
        """Mark entries committed; compacts the file when nothing is pending."""
        with self._lock:
            if self._file is None or not numbers:
                return
            self._ack(numbers)
            if self._file.tell() >= self._compact_at:
                self._compact()
                # A large backlog must not be rewritten on every ack: wait for growth.
                self._compact_at = max(self.compact_bytes, 2 * self._file.tell())

    def try_ack(self, numbers: list[int]) -> bool:
        """`ack` without waiting or fsyncing, for the event loop: False (nothing done) when
        another thread holds the spool or the file is due for compaction; then `ack`."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._file is not None and self._file.tell() >= self._compact_at:
                return False
            self._ack(numbers)
            return True
        finally:
            self._lock.release()

    def _ack(self, numbers: list[int]) -> None:
        if self._file is None or not numbers:
            return
        lines = [
            json.dumps({"n": n, "k": "ack"}, separators=(",", ":")).encode() + b"\n"
            for n in numbers
            if n in self._pending
        ]
        for n in numbers:
            self._pending.pop(n, None)
        if lines:
            self._file.write(b"".join(lines))
            self._file.flush()

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for entry in self._pending.values():
                line = json.dumps(
                    {"n": entry.n, "k": entry.kind, "v": entry.value},
                    ensure_ascii=True,
                    separators=(",", ":"),
                )
                f.write(line.encode("ascii") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._file.close()
        self._file = open(self.path, "ab")  # noqa: SIM115
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    @property
    def pending(self) -> int:
        return len(self._pending)
