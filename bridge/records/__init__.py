"""Durable call records: the writer (end events -> call_records), its spool, the outbox."""

from __future__ import annotations

from bridge.records.cdr import PbxCdr
from bridge.records.spool import Spool, default_spool_dir
from bridge.records.writer import RecordWriter

__all__ = ["PbxCdr", "RecordWriter", "Spool", "default_spool_dir"]
