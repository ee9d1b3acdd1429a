"""Reading the recorded FastAGI sessions and the linkedids of their channels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RecordedSession:
    header: bytes  # the agi_* lines and the blank line, byte for byte as Asterisk sent them
    exchanges: list[tuple[str, str]] = field(default_factory=list)  # (command, reply)


def agi_sessions(path: Path) -> list[RecordedSession]:
    """Split an agi.log into sessions: a header, a blank line, `>> command` / reply pairs."""
    sessions: list[RecordedSession] = []
    lines = path.read_bytes().split(b"\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith(b"agi_"):
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i]:
            i += 1
        session = RecordedSession(b"\n".join(lines[start:i]) + b"\n\n")
        i += 1
        while i < len(lines) and lines[i].startswith(b">> "):
            command = lines[i][3:].decode()
            reply = lines[i + 1].decode() if i + 1 < len(lines) else ""
            session.exchanges.append((command, reply))
            i += 2
        sessions.append(session)
    return sessions


def linkedids(ami_log: Path) -> dict[str, str]:
    """Uniqueid → Linkedid of every channel in an ami.log."""
    found: dict[str, str] = {}
    for frame in ami_log.read_bytes().decode("utf-8", "replace").split("\r\n\r\n"):
        headers = dict(line.split(": ", 1) for line in frame.split("\r\n") if ": " in line)
        if "Uniqueid" in headers and "Linkedid" in headers:
            found.setdefault(headers["Uniqueid"], headers["Linkedid"])
    return found
