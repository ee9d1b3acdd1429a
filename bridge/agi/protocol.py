"""FastAGI wire protocol, sans I/O: bytes in, values and bytes out; no sockets here.

What Asterisk does (res/res_agi.c, Asterisk 22):

- On connect it writes the channel environment, one `agi_<name>: <value>\\n` line each,
  then an empty line. Values are written with `%s` and are NOT escaped: a caller name
  holding a newline would start a line of its own. `EnvParser` therefore rejects a key
  that appears twice (`Bob\\nagi_network_script: admin` cannot override the real one,
  which Asterisk always writes earlier), lines that are not `agi_<name>:`, and headers
  over `MAX_HEADER_BYTES` (64 KiB) / `MAX_HEADER_LINES`. A single oversized value (a 20 KB
  caller name from a trunk) is not a broken header: it is cut to `MAX_ENV_VALUE`
  characters and named in `AgiEnv.truncated`, so the call still routes by its number.
- Bytes that are not UTF-8 (a Latin-1 caller name from a trunk) are decoded with U+FFFD
  replacement rather than refused: the caller's number still routes the call.
- Each command is one line, read with `fgets` into an 8192-byte buffer and split by
  `parse_args`: blanks separate words outside `"…"`; `\\` makes the next character literal
  (so `\\"` and `\\\\`); a `"` toggles quoting. `encode_set_variable` quotes the value,
  escapes `\\` and `"`, and replaces CR, LF, NUL and other control characters (a newline
  would end the command and start another).
- Replies: `200 result=N [(data)] [endpos=N]`, `510 Invalid or unknown command`,
  `511 Command Not Permitted on a dead channel or intercept routine`, a `520-…` usage
  block ending with `520 End of proper usage.`, and an unsolicited `HANGUP` line when the
  channel hangs up while the session runs (AGISIGHUP).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from bridge.errors import AgiProtocolError, UnsafeValueError

MAX_HEADER_BYTES = 64 * 1024
MAX_ENV_VALUE = 1024  # characters kept of one agi_* value
MAX_HEADER_LINES = 64
MAX_REPLY_LINE = 8192  # Asterisk's own AGI_BUF_LEN
MAX_USAGE_LINES = 100  # lines in one 520 usage block
MAX_VALUE_CHARS = 1024  # a channel variable value we send (GET VARIABLE reads back 1024)
MAX_COMMAND_BYTES = 8191  # AGI_BUF_LEN less the newline

_KEY = re.compile(r"agi_([a-z0-9_]{1,40})")
# A variable, or a dialplan function with plain arguments: BRIDGE_QUEUE, CHANNEL(linkedid).
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,79}(?:\([A-Za-z0-9_,.-]{0,80}\))?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # everything but TAB; CR/LF/NUL included
# The keys res_agi.c writes (setup_env), already known to match `_KEY`: agi_x -> x.
_KNOWN_KEYS = {
    f"agi_{name}": name
    for name in (
        "network",
        "network_script",
        "request",
        "channel",
        "language",
        "type",
        "uniqueid",
        "version",
        "callerid",
        "calleridname",
        "callingpres",
        "callingani2",
        "callington",
        "callingtns",
        "dnid",
        "rdnis",
        "context",
        "extension",
        "priority",
        "enhanced",
        "accountcode",
        "threadid",
    )
}
_REPLY_200 = re.compile(r"200 result=(-?\d+)(?: \((.*)\))?(?: endpos=(-?\d+))?\s*")


# --- environment ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgiEnv:
    """The `agi_*` environment of one session; keys without the `agi_` prefix."""

    values: Mapping[str, str]
    truncated: frozenset[str] = frozenset()  # keys whose value was cut to MAX_ENV_VALUE

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def script(self) -> str:
        """The script asked for: `route` for `agi://host:4573/route?x=1`."""
        script = self.get("network_script") or urlsplit(self.get("request")).path
        return script.split("?", 1)[0].strip("/")

    @property
    def args(self) -> tuple[str, ...]:
        """`agi_arg_1`, `agi_arg_2`, … in order (stopping at the first gap)."""
        found: list[str] = []
        while f"arg_{len(found) + 1}" in self.values:
            found.append(self.values[f"arg_{len(found) + 1}"])
        return tuple(found)


class EnvParser:
    """Incremental parser of the environment header.

    `feed(data)` returns the `AgiEnv` once the blank line has arrived (bytes after it are
    kept in `rest`), None while more is needed, and raises `AgiProtocolError` as soon as
    the header breaks a rule, so a hostile peer cannot make us buffer without bound.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._values: dict[str, str] = {}
        self._truncated: set[str] = set()
        self._lines = 0
        self._size = 0
        self.rest = b""
        self.env: AgiEnv | None = None

    def feed(self, data: bytes) -> AgiEnv | None:
        if self.env is not None:
            self.rest += data
            return self.env
        buffer = self._buffer
        buffer += data
        start = 0  # lines before it are parsed; the buffer is cut once per feed, not per line
        try:
            while self.env is None:
                end = buffer.find(b"\n", start)
                if end < 0:
                    if self._size + len(buffer) - start > MAX_HEADER_BYTES:
                        raise AgiProtocolError(f"AGI header longer than {MAX_HEADER_BYTES} bytes")
                    return None
                self._size += end + 1 - start
                if self._size > MAX_HEADER_BYTES:
                    raise AgiProtocolError(f"AGI header longer than {MAX_HEADER_BYTES} bytes")
                if end > start and buffer[end - 1] == 13:  # CR before the LF
                    self._line(bytes(buffer[start : end - 1]))
                else:
                    self._line(bytes(buffer[start:end]))
                start = end + 1
        finally:
            del buffer[:start]
        self.rest = bytes(buffer)
        buffer.clear()
        return self.env

    def _line(self, raw: bytes) -> None:
        if not raw:
            if not self._values:
                raise AgiProtocolError("empty AGI header")
            self.env = AgiEnv(dict(self._values), frozenset(self._truncated))
            return
        self._lines += 1
        if self._lines > MAX_HEADER_LINES:
            raise AgiProtocolError(f"AGI header has more than {MAX_HEADER_LINES} lines")
        line = raw.decode("utf-8", "replace")
        key, sep, value = line.partition(":")
        name = _KNOWN_KEYS.get(key)  # Asterisk's own keys skip the pattern
        if name is None:
            match = _KEY.fullmatch(key)
            if not sep or match is None:
                raise AgiProtocolError(f"not an agi_<name>: line: {line[:60]!r}")
            name = match.group(1)
        elif not sep:
            raise AgiProtocolError(f"not an agi_<name>: line: {line[:60]!r}")
        if name in self._values:
            raise AgiProtocolError(f"agi_{name} appears twice in the AGI header")
        value = value.removeprefix(" ")
        if len(value) > MAX_ENV_VALUE:
            value = value[:MAX_ENV_VALUE]
            self._truncated.add(name)
        self._values[name] = value


def parse_env(data: bytes) -> AgiEnv:
    """The environment in `data`, which must hold the complete header."""
    parser = EnvParser()
    env = parser.feed(data)
    if env is None:
        raise AgiProtocolError("AGI header not terminated by a blank line")
    return env


# --- commands --------------------------------------------------------------------------


def argument_text(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`value` as one AGI command argument may carry it: CR, LF, NUL and the other control
    characters but TAB → spaces (a newline would end the command), capped at `limit`."""
    return _CONTROL.sub(" ", value)[:limit]


def quote(value: str) -> str:
    """A `parse_args` argument that reads back as exactly `value` (already made safe)."""
    if _CONTROL.search(value):
        raise UnsafeValueError("AGI argument holds a control character")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=256)  # the same few names on every call; a refused one is not cached
def check_variable(name: str) -> str:
    if not _VARIABLE.fullmatch(name):
        raise UnsafeValueError(f"not a channel variable name: {name[:60]!r}")
    return name


def _command(text: str) -> bytes:
    data = text.encode("utf-8") + b"\n"
    if len(data) > MAX_COMMAND_BYTES:
        raise UnsafeValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return data


def encode_set_variable(name: str, value: str) -> bytes:
    """`SET VARIABLE NAME "value"\\n`, the value made safe (control characters → space)."""
    return _command(f"SET VARIABLE {check_variable(name)} {quote(argument_text(value))}")


def encode_get_variable(name: str) -> bytes:
    """`GET VARIABLE NAME\\n`; also reads functions such as `CHANNEL(linkedid)`."""
    return _command(f"GET VARIABLE {check_variable(name)}")


def encode_verbose(message: str, level: int = 1) -> bytes:
    return _command(f"VERBOSE {quote(argument_text(message, 256))} {max(1, min(level, 4))}")


# --- replies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply to a command. `result`/`data` only for 200; `text` for the others."""

    code: int
    result: int | None = None
    data: str | None = None
    endpos: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200


def parse_reply_line(line: str) -> Reply:
    """One complete reply line (not a 520 block, not HANGUP)."""
    if line.startswith("200"):
        match = _REPLY_200.fullmatch(line)
        if match is None:
            raise AgiProtocolError(f"malformed 200 reply: {line[:80]!r}")
        result, data, endpos = match.groups()
        return Reply(200, int(result), data, int(endpos) if endpos is not None else None)
    code, _, text = line.partition(" ")
    if len(code) == 3 and code.isdigit() and code[0] in "45":
        return Reply(int(code), text=text)
    raise AgiProtocolError(f"not an AGI reply: {line[:80]!r}")


_SET_OK = Reply(200, 1)


@dataclass
class ReplyParser:
    """Incremental reply reader: `feed(bytes)`, then `replies()` yields complete replies.

    `HANGUP` lines are not replies: they set `hangup` and are skipped. A line longer than
    `MAX_REPLY_LINE` or a usage block over `MAX_USAGE_LINES` raises `AgiProtocolError`.
    """

    hangup: bool = False
    _buffer: bytearray = field(default_factory=bytearray)
    _usage: list[str] | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def replies(self) -> Iterator[Reply]:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_LINE:
                    raise AgiProtocolError(f"AGI reply line longer than {MAX_REPLY_LINE} bytes")
                return
            if end > MAX_REPLY_LINE:
                raise AgiProtocolError(f"AGI reply line longer than {MAX_REPLY_LINE} bytes")
            raw = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            reply = self._line(raw.decode("utf-8", "replace"))
            if reply is not None:
                yield reply

    def _line(self, line: str) -> Reply | None:
        if self._usage is not None:
            self._usage.append(line)
            if line.startswith("520 "):
                text = "\n".join(self._usage)
                self._usage = None
                return Reply(520, text=text)
            if len(self._usage) > MAX_USAGE_LINES:
                raise AgiProtocolError("AGI usage block too long")
            return None
        if line == "200 result=1":  # every SET VARIABLE's answer: no need to parse it
            return _SET_OK
        if line.strip() == "HANGUP":
            self.hangup = True
            return None
        if not line.strip():
            return None
        if line.startswith("520-"):
            self._usage = [line]
            return None
        return parse_reply_line(line)
