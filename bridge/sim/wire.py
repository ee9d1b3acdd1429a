"""Wire formats the simulated PBX speaks, as pure functions (no sockets).

AMI: a message is `Key: Value` lines ended by CRLF, and a blank line (CRLF) ends the message.
What the simulator sends is made safe here: a CR, LF or NUL inside a value would split one
event into two on the wire (header injection), so those characters become spaces.

FastAGI (what Asterisk sends a FastAGI server): `agi_<name>: <value>` lines, a blank line,
then one reply line per command, `200 result=<n>[ (<data>)]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from bridge.errors import AgiProtocolError, AmiProtocolError

Fields = Sequence[tuple[str, str]]

MAX_ACTION_BYTES = 64 * 1024
MAX_AGI_LINE = 8 * 1024
_UNSAFE = re.compile(r"[\r\n\x00]")


def safe(value: object) -> str:
    """A header or AGI value with CR, LF and NUL replaced by spaces."""
    return _UNSAFE.sub(" ", str(value))


def encode_message(fields: Fields) -> bytes:
    """One AMI message (response or event) with CRLF framing."""
    lines = [f"{k}: {v}" for k, v in fields]
    if _UNSAFE.search("".join(lines)) is not None:  # rare: one search instead of one per value
        lines = [f"{safe(k)}: {safe(v)}" for k, v in fields]
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8")


class ActionParser:
    """Incremental parser of the actions an AMI client sends (bare LF tolerated).

    `feed(data)` returns the complete actions as dicts with lower-case keys (AMI action
    headers are case-insensitive); a message over `MAX_ACTION_BYTES` raises
    `AmiProtocolError` (the server then drops the client).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, str]]:
        self._buffer += data
        actions: list[dict[str, str]] = []
        while True:
            text = self._buffer.replace(b"\r\n", b"\n")
            end = text.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > MAX_ACTION_BYTES:
                    self._buffer.clear()
                    raise AmiProtocolError("action larger than 64 KiB")
                return actions
            block, rest = bytes(text[:end]), bytes(text[end + 2 :])
            self._buffer = bytearray(rest)
            if len(block) > MAX_ACTION_BYTES:
                raise AmiProtocolError("action larger than 64 KiB")
            action: dict[str, str] = {}
            for raw in block.split(b"\n"):
                line = raw.decode("utf-8", "replace")
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                action.setdefault(key.strip().lower(), value.strip())
            if action:
                actions.append(action)


def encode_agi_env(env: Iterable[tuple[str, str]]) -> bytes:
    """The `agi_*` header Asterisk sends first, ended by a blank line."""
    return ("".join(f"agi_{safe(k)}: {safe(v)}\n" for k, v in env) + "\n").encode("utf-8")


def split_agi_args(line: str) -> list[str]:
    """Split an AGI command line the way Asterisk's res_agi does: spaces separate
    arguments, double quotes group, a backslash takes the next character literally."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = started = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
            started = True
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            started = True
        elif ch in " \t" and not quoted:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if quoted:
        raise AgiProtocolError("unterminated quote in AGI command")
    if started:
        args.append("".join(current))
    return args


def agi_reply(code: int, result: str, data: str | None = None) -> bytes:
    text = f"{code} result={result}"
    if data is not None:
        text += f" ({safe(data)})"
    return (text + "\n").encode("utf-8")
