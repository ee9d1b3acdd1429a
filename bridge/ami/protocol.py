"""Asterisk Manager Interface wire format, sans I/O.

Bytes in (`AmiParser.feed`), frames out; actions in (`encode_action`), bytes out. Nothing here
touches a socket, so the live link and trace replay share exactly the same code.

The AMI framing (Asterisk `manager.c`): a connection starts with one banner line
``Asterisk Call Manager/<version>\\r\\n``; after it every message is a block of
``Key: Value\\r\\n`` lines closed by an empty line. Keys may repeat (``ChanVariable``,
``Output``). We also accept bare LF line ends, because some proxies and test tools send them.

Limits: a frame larger than `max_frame_bytes` or with more than `max_headers` lines is
discarded up to the next blank line (the stream resynchronises there) and reported as an
`AmiProtocolError`; memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from bridge.errors import AmiProtocolError, UnsafeValueError

__all__ = [
    "BANNER_KEY",
    "MAX_FRAME_BYTES",
    "MAX_HEADERS",
    "MAX_VALUE_CHARS",
    "AmiParser",
    "Frame",
    "encode_action",
]

BANNER_PREFIX = b"Asterisk Call Manager/"
BANNER_KEY = "Banner"  # the pseudo header a banner frame carries
MAX_FRAME_BYTES = 64 * 1024
MAX_HEADERS = 1024
MAX_VALUE_CHARS = 8 * 1024  # longest value we agree to send in an action

# A frame ends at an empty line; tolerate LF as well as CRLF on either line.
_FRAME_END = re.compile(rb"\r?\n\r?\n")
_UNSAFE = re.compile(r"[\r\n\x00]")


class Frame:
    """One AMI message: ordered (key, value) pairs; `get` is case-insensitive.

    Asterisk is not consistent about key case (`Uniqueid` in channel events, `UniqueID` in
    `Cdr`), so lookups ignore it. Repeated keys are kept in order; `get` returns the first.
    """

    __slots__ = ("_folded", "_index", "items")

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.items: tuple[tuple[str, str], ...] = tuple(items)
        # Reversed, so the first of repeated keys wins. Exact keys first (fast, C-level);
        # a case-insensitive index is built only when a lookup misses.
        self._index: dict[str, str] = dict(reversed(self.items))
        self._folded: dict[str, str] | None = None

    def _fold(self) -> dict[str, str]:
        folded = self._folded
        if folded is None:
            folded = self._folded = {k.lower(): v for k, v in reversed(self.items)}
        return folded

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self._index.get(key)
        if value is None:
            value = self._fold().get(key.lower())
        return default if value is None else value

    def get_all(self, key: str) -> list[str]:
        wanted = key.lower()
        return [value for k, value in self.items if k.lower() == wanted]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and other.items == self.items

    def __hash__(self) -> int:
        return hash(self.items)

    def __repr__(self) -> str:
        return f"Frame({list(self.items)!r})"

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def banner(self) -> str | None:
        """The banner text (`Asterisk Call Manager/6.0.0`) if this is the banner frame."""
        return self._index.get(BANNER_KEY) if len(self.items) == 1 else None


class AmiParser:
    """Incremental AMI frame parser: `feed(bytes) -> list[Frame]`.

    Bytes are buffered until a whole frame is present and only then decoded, so a UTF-8
    character split across two reads survives. Invalid UTF-8 is replaced (U+FFFD), never fatal.
    """

    def __init__(
        self,
        *,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_headers: int = MAX_HEADERS,
        events: Mapping[str, str] | None = None,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_headers = max_headers
        # `events`: parse only the unsolicited events named here (a name's text, when not
        # empty, must also be in the frame: `VarSet` of one variable). A real PBX sends
        # two thirds of its events (Newexten, VarSet, DeviceStateChange, ...) to nobody
        # here; they are counted in `frames_skipped` without being split into lines. A
        # frame holding an `ActionID` (the answer to an action) is always parsed.
        self._events = events
        self.frames_skipped = 0
        self._buf = bytearray()
        self._discarding = False  # inside an oversized frame, skipping to its end
        self._fresh = True  # nothing parsed yet: a banner line may come first
        self.frames_parsed = 0
        self.errors = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Parse what `data` completes. Raises `AmiProtocolError` after parsing everything
        if a frame had to be dropped; the good frames are then on the exception's `frames`."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        problems: list[str] = []
        pos = 0
        limit = self.max_frame_bytes
        events = self._events
        while True:
            if self._discarding:
                m = _FRAME_END.search(buf, pos)
                if m is None:
                    # Keep only what could begin a terminator split across reads.
                    pos = max(pos, len(buf) - 3)
                    break
                pos = m.end()
                self._discarding = False
                continue
            if self._fresh:
                pos = self._banner(buf, pos, frames)
                if self._fresh:
                    if len(buf) - pos > limit:
                        problems.append("banner line too long")
                        self._discarding = True
                        self._fresh = False
                        continue
                    break
            # Everything up to the last blank line is whole frames: decode it in one go (a
            # blank line is ASCII, so no UTF-8 sequence straddles the cut).
            lf, crlf = buf.rfind(b"\n\n", pos), buf.rfind(b"\n\r\n", pos)
            end = max(lf + 2 if lf >= 0 else -1, crlf + 3 if crlf >= 0 else -1)
            if end < 0:
                if len(buf) - pos > limit:
                    problems.append(f"frame larger than {limit} bytes")
                    self._discarding = True
                    continue
                break
            text = buf[pos:end].decode("utf-8", "replace")
            pos = end
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            for block in text.split("\n\n"):
                if not block or block[0] == "\n":
                    block = block.lstrip("\n")
                    if not block:
                        continue
                if len(block) > limit:
                    problems.append(f"frame larger than {limit} bytes")
                    continue
                if events is not None and block.startswith("Event: ") and _unwanted(block, events):
                    self.frames_skipped += 1
                    continue
                frame = self._parse_block(block, problems)
                if frame is not None:
                    frames.append(frame)
        del buf[:pos]
        self.frames_parsed += len(frames)
        if problems:
            self.errors += len(problems)
            error = AmiProtocolError("; ".join(problems))
            error.frames = frames  # type: ignore[attr-defined]
            raise error
        return frames

    def _banner(self, buf: bytearray, pos: int, frames: list[Frame]) -> int:
        """At the very start of a stream: consume the banner line if there is one."""
        n = len(buf)
        while pos < n and buf[pos] in (0x0A, 0x0D):
            pos += 1
        rest = n - pos
        if rest == 0 or (rest < len(BANNER_PREFIX) and buf.startswith(BANNER_PREFIX[:rest], pos)):
            return pos  # not enough bytes to tell yet
        if buf.startswith(BANNER_PREFIX, pos):
            nl = buf.find(b"\n", pos)
            if nl == -1:
                return pos
            line = bytes(buf[pos:nl]).rstrip(b"\r").decode("utf-8", "replace")
            frames.append(Frame(((BANNER_KEY, line),)))
            pos = nl + 1
        self._fresh = False
        return pos

    def _parse_block(self, block: str, problems: list[str]) -> Frame | None:
        if block.count("\n") >= self.max_headers:
            problems.append(f"frame with more than {self.max_headers} lines")
            return None
        if block.startswith("Response: Follows"):
            return _follows(block.split("\n"))
        items: list[tuple[str, str]] = []
        append = items.append
        for line in block.split("\n"):
            key, sep, value = line.partition(": ")
            if sep and key:
                append((key, value))
                continue
            colon = line.find(":")
            if colon > 0:  # `Key:` or `Key:value`, no space
                append((line[:colon], line[colon + 1 :]))
            # A line without a key is noise; ignore it rather than fail the frame.
        return Frame(items) if items else None


def _unwanted(block: str, events: Mapping[str, str]) -> bool:
    """Whether an `Event:`-first block is an unsolicited event nobody asked for."""
    end = block.find("\n")
    name = block[7:] if end < 0 else block[7:end]
    needle = events.get(name)
    if needle is None:
        needle = events.get(name.strip())
    if needle is not None and (not needle or needle in block):
        return False
    return "ActionID" not in block


def _follows(lines: list[str]) -> Frame:
    """Old-style `Response: Follows` command output: headers, then raw lines."""
    items: list[tuple[str, str]] = []
    for line in lines:
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key and (not items or items[-1][0] != "Output"):
            items.append((key, value))
        elif line != "--END COMMAND--":
            items.append(("Output", line))
    return Frame(items)


def _check(text: str, what: str) -> str:
    if _UNSAFE.search(text):
        raise UnsafeValueError(f"AMI {what} contains CR, LF or NUL: {text[:40]!r}")
    if len(text) > MAX_VALUE_CHARS:
        raise UnsafeValueError(f"AMI {what} longer than {MAX_VALUE_CHARS} characters")
    return text


def encode_action(
    name: str,
    fields: Mapping[str, str | int] | Iterable[tuple[str, str | int]] = (),
) -> bytes:
    """Encode an action. Refuses CR, LF or NUL in any key or value (`UnsafeValueError`):
    one embedded CRLF would let a caller-controlled value inject a whole new action."""
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise UnsafeValueError(f"AMI action name {name[:40]!r} is not a plain word")
    out = [f"Action: {name}\r\n"]
    for key, raw in pairs:
        value = str(raw) if isinstance(raw, int) else raw
        if not isinstance(value, str):
            raise UnsafeValueError(f"AMI field {key!r} is not text")
        _check(key, "key")
        if not key or ":" in key or key != key.strip():
            raise UnsafeValueError(f"AMI key {key[:40]!r} is empty or has ':' or spaces")
        out.append(f"{key}: {_check(value, 'value')}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")
