"""Routing rules and the parsers for their condition specs.

A rule's conditions combine with AND; an empty condition is no condition, so a rule with
none is a catch-all. Spec grammars (what `crm-bridge rules add` and the admin API accept):

`--when`: one or more windows ``[DAYS] [HH:MM-HH:MM]``, each with at least one part, e.g.
``mon-fri 09:00-18:00``, ``sat,sun 10:00-14:00``, ``mon-fri``, ``22:00-06:00``; several are
separated by a comma after a time range, or by ``;`` (``mon-fri 09:00-18:00, sat
10:00-12:00``): the rule applies inside any of them. A wrong window is named by its number
and text. DAYS is a comma list of days
(``mon``…``sun`` or full names) and ranges (``mon-fri``; ``fri-mon`` wraps). The start
is inclusive, the end exclusive; ``24:00`` may end a window. When the end is not after the
start the window runs overnight, and its after-midnight part belongs to the day it started:
``fri 22:00-06:00`` covers Saturday 02:00, not Friday 02:00.

`--attr`: ``KEY OP VALUE`` with OP one of ``>= <= > < = !=``. When both the customer's
attribute and VALUE are numbers the comparison is numeric; otherwise ``=``/``!=`` compare
text and the ordering operators do not match. A missing attribute never matches.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.errors import ValidationError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_TAG = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_PREFIX = re.compile(r"\+[0-9]{1,15}")
_DID = re.compile(r"[0-9A-Za-z+*#_.-]{1,80}")
_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_ATTR = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*(>=|<=|!=|>|<|=)\s*(.*?)\s*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
MAX_SPEC = 200
PRIORITY_RANGE = (-1_000_000, 1_000_000)


# --- --when ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days (0 = Monday) and an optional [start, end) in minutes since midnight."""

    days: frozenset[int]
    start: int | None = None
    end: int | None = None  # 1440 = 24:00; end <= start means overnight

    def contains(self, local: datetime) -> bool:
        """Whether the wall-clock time `local` (already in the rules' zone) is inside."""
        day = local.weekday()
        minute = local.hour * 60 + local.minute
        if self.start is None or self.end is None:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        if minute >= self.start:  # overnight: the evening part
            return day in self.days
        return minute < self.end and (day - 1) % 7 in self.days

    def __str__(self) -> str:
        parts = []
        if self.days != frozenset(range(7)) or self.start is None:
            parts.append(_format_days(self.days))
        if self.start is not None and self.end is not None:
            parts.append(f"{_hhmm(self.start)}-{_hhmm(self.end)}")
        return " ".join(parts)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _format_days(days: frozenset[int]) -> str:
    """Canonical text: runs of three or more consecutive days become ranges."""
    ordered = sorted(days)
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{DAY_NAMES[ordered[i]]}-{DAY_NAMES[ordered[j]]}")
        else:
            out.extend(DAY_NAMES[d] for d in ordered[i : j + 1])
        i = j + 1
    return ",".join(out)


def _day(text: str) -> int:
    lowered = text.lower()
    if lowered in DAY_NAMES:
        return DAY_NAMES.index(lowered)
    if lowered in _FULL_DAYS:
        return _FULL_DAYS.index(lowered)
    raise ValidationError("when", f"unknown day {text!r} (use mon, tue, wed, thu, fri, sat, sun)")


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValidationError("when", f"empty day in {text!r}")
        if "-" in item:
            first, _, last = item.partition("-")
            a, b = _day(first), _day(last)
            d = a
            days.add(d)
            while d != b:
                d = (d + 1) % 7
                days.add(d)
        else:
            days.add(_day(item))
    return frozenset(days)


def _minutes(hour: str, minute: str, *, end: bool) -> int:
    h, m = int(hour), int(minute)
    if h == 24 and m == 0 and end:
        return 1440
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValidationError("when", f"{hour}:{minute} is not a time of day (00:00-23:59)")
    return h * 60 + m


MAX_WINDOWS = 10
# Windows are separated by `;`, or by a comma right after a time range (a comma between
# day names belongs to the day list: `sat,sun 10:00-14:00`).
_DAY_LIST_SPACES = re.compile(r"(?<=[A-Za-z]),\s+(?=[A-Za-z])")  # "mon-fri, sat" = "mon-fri,sat"
_WINDOW_SEPARATOR = re.compile(r"\s*;\s*|(?<=\d\d)\s*,\s*")


@dataclass(frozen=True, slots=True)
class Schedule:
    """One or more windows: a call is inside when it is inside any of them."""

    windows: tuple[TimeWindow, ...]

    def contains(self, local: datetime) -> bool:
        return any(window.contains(local) for window in self.windows)

    @property
    def always(self) -> bool:
        """Every day, all day: the condition matches every call."""
        return any(w.start is None and len(w.days) == 7 for w in self.windows)

    def __str__(self) -> str:
        return ", ".join(str(window) for window in self.windows)


def parse_when(spec: str) -> Schedule:
    """Parse a `--when` spec (see module docstring); ValidationError("when", …) if bad."""
    if not isinstance(spec, str) or len(spec) > MAX_SPEC:
        raise ValidationError("when", f"at most {MAX_SPEC} characters")
    if any((ord(ch) < 32 and ch not in " \t") or ord(ch) == 127 for ch in spec):
        raise ValidationError("when", "control characters are not allowed")
    parts = _WINDOW_SEPARATOR.split(_DAY_LIST_SPACES.sub(",", spec.strip()))
    if len(parts) > MAX_WINDOWS:
        raise ValidationError("when", f"at most {MAX_WINDOWS} windows")
    windows = []
    for number, part in enumerate(parts, 1):
        try:
            window = _parse_window(part)
        except ValidationError as exc:
            if len(parts) == 1:
                raise
            raise ValidationError(
                "when", f"window {number} ({part[:60]!r}): {exc.reason}"
            ) from None
        if window not in windows:
            windows.append(window)
    return Schedule(tuple(windows))


def _parse_window(spec: str) -> TimeWindow:
    tokens = spec.split()
    if not tokens:
        raise ValidationError("when", "an empty window (expected 'DAYS', 'HH:MM-HH:MM' or"
                              " 'DAYS HH:MM-HH:MM', several separated by ', ')")  # fmt: skip
    if len(tokens) > 2:
        raise ValidationError(
            "when",
            f"{spec[:60]!r}: expected 'DAYS', 'HH:MM-HH:MM' or 'DAYS HH:MM-HH:MM'; separate"
            " several windows with a comma after the time range (mon-fri 09:00-12:00,"
            " mon-fri 13:00-18:00)",
        )
    days: frozenset[int] | None = None
    start = end = None
    for index, token in enumerate(tokens):
        times = _TIME_RANGE.fullmatch(token)
        if times:
            if start is not None:
                raise ValidationError("when", "only one time range")
            start = _minutes(times[1], times[2], end=False)
            end = _minutes(times[3], times[4], end=True)
            if start == end or (start == 0 and end == 1440):
                raise ValidationError(
                    "when", f"{token}: start and end must differ (omit for all day)"
                )
        elif ":" in token:
            raise ValidationError("when", f"{token!r} is not a time range like 09:00-18:00")
        elif index == 0 and days is None:
            days = _parse_days(token)
        else:
            raise ValidationError("when", "days come first, then one time range")
    return TimeWindow(days if days is not None else frozenset(range(7)), start, end)


# --- --attr ----------------------------------------------------------------------------


def as_number(value: Any) -> float | None:
    """A finite number from an int, float or numeric text; None otherwise (bools too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64 and _NUMBER.fullmatch(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) else None


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None  # lists, objects, null: not comparable


@dataclass(frozen=True, slots=True)
class AttrCondition:
    key: str
    op: str
    value: str

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        if self.key not in attributes:
            return False
        actual = attributes[self.key]
        left, right = as_number(actual), as_number(self.value)
        if left is not None and right is not None:
            if self.op == ">=":
                return left >= right
            if self.op == "<=":
                return left <= right
            if self.op == ">":
                return left > right
            if self.op == "<":
                return left < right
            if self.op == "=":
                return left == right
            return left != right
        text = _as_text(actual)
        if text is None:
            return False
        if self.op == "=":
            return text == self.value
        if self.op == "!=":
            return text != self.value
        return False

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse_attr(spec: str) -> AttrCondition:
    """Parse an `--attr` spec (see module docstring); ValidationError("attr", …) if bad."""
    if not isinstance(spec, str) or len(spec) > MAX_SPEC:
        raise ValidationError("attr", f"at most {MAX_SPEC} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in spec):
        raise ValidationError("attr", "control characters are not allowed")
    match = _ATTR.fullmatch(spec)
    if not match:
        raise ValidationError(
            "attr",
            "expected KEY OP VALUE with OP one of >= <= > < = != (e.g. lifetime_value>=10000)",
        )
    key, op, value = match[1], match[2], match[3]
    if value[:1] in {"<", ">", "=", "!"}:
        raise ValidationError("attr", f"{op}{value[:1]} is not an operator (use >= <= > < = !=)")
    if value == "" and op not in {"=", "!="}:
        raise ValidationError("attr", f"{op} needs a value")
    if op in {">=", "<=", ">", "<"} and as_number(value) is None:
        raise ValidationError("attr", f"{op} needs a number, got {value!r}")
    return AttrCondition(key, op, value)


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    position: int
    queue: str
    priority: int = 0
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    unknown_caller: bool = False
    caller_prefix: str | None = None
    did: str | None = None
    when: Schedule | None = None
    attr: AttrCondition | None = None
    enabled: bool = True

    @property
    def catch_all(self) -> bool:
        """No condition, or only conditions every call meets: this rule shadows every rule
        below it (`rules add` refuses it without --catch-all)."""
        return not (
            self.tags_any
            or self.tags_all
            or self.unknown_caller
            or self.caller_prefix
            or self.did
            or self.attr
            or (self.when is not None and not self.when.always)
        )

    def describe(self) -> str:
        """The conditions as `rules add` options (for `rules list`)."""
        parts = []
        if self.tags_any:
            parts.append(f"--tags-any {','.join(self.tags_any)}")
        if self.tags_all:
            parts.append(f"--tags-all {','.join(self.tags_all)}")
        if self.unknown_caller:
            parts.append("--unknown-caller")
        if self.caller_prefix:
            parts.append(f"--prefix {self.caller_prefix}")
        if self.did:
            parts.append(f"--did {self.did}")
        if self.when:
            parts.append(f"--when '{self.when}'")
        if self.attr:
            parts.append(f"--attr '{self.attr}'")
        return " ".join(parts) or "(always)"


def parse_tags(value: str | Iterable[str] | None, field: str = "tags") -> tuple[str, ...]:
    """`a,b` (or a list) → ('a', 'b'), de-duplicated in order; ValidationError if a tag is bad."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError(field, "tags are text")
        tag = item.strip()
        if not tag:
            continue
        if not _TAG.fullmatch(tag):
            raise ValidationError(field, f"bad tag {tag[:70]!r}: 1-64 of A-Z a-z 0-9 _ . : -")
        if tag not in out:
            out.append(tag)
    if len(out) > 50:
        raise ValidationError(field, "at most 50 tags")
    return tuple(out)


def make_rule(
    name: str,
    queue: str,
    *,
    position: int = 0,
    priority: int = 0,
    tags_any: str | Iterable[str] | None = None,
    tags_all: str | Iterable[str] | None = None,
    unknown_caller: bool = False,
    caller_prefix: str | None = None,
    did: str | None = None,
    when: str | Schedule | TimeWindow | None = None,
    attr: str | AttrCondition | None = None,
    enabled: bool = True,
) -> Rule:
    """Build a checked Rule from user input; ValidationError names the bad field."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "default":
        raise ValidationError("name", "1-80 of A-Z a-z 0-9 _ . - (and not 'default')")
    if not isinstance(queue, str) or not _NAME.fullmatch(queue):
        raise ValidationError("queue", "1-80 of A-Z a-z 0-9 _ . -")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValidationError("priority", "an integer")
    if not PRIORITY_RANGE[0] <= priority <= PRIORITY_RANGE[1]:
        raise ValidationError("priority", f"between {PRIORITY_RANGE[0]} and {PRIORITY_RANGE[1]}")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValidationError("position", "a positive integer")
    if caller_prefix is not None and caller_prefix != "":
        if not isinstance(caller_prefix, str) or not _PREFIX.fullmatch(caller_prefix):
            raise ValidationError("prefix", "an E.164 prefix: '+' and 1-15 digits, e.g. +86")
    else:
        caller_prefix = None
    if did is not None and did != "":
        if not isinstance(did, str) or not _DID.fullmatch(did):
            raise ValidationError("did", "1-80 of 0-9 A-Z a-z + * # _ . -")
    else:
        did = None
    window = parse_when(when) if isinstance(when, str) and when.strip() else None
    if isinstance(when, Schedule):
        window = when
    elif isinstance(when, TimeWindow):
        window = Schedule((when,))
    condition = parse_attr(attr) if isinstance(attr, str) and attr.strip() else None
    if isinstance(attr, AttrCondition):
        condition = attr
    return Rule(
        name=name,
        position=position,
        queue=queue,
        priority=priority,
        tags_any=parse_tags(tags_any, "tags_any"),
        tags_all=parse_tags(tags_all, "tags_all"),
        unknown_caller=bool(unknown_caller),
        caller_prefix=caller_prefix,
        did=did,
        when=window,
        attr=condition,
        enabled=bool(enabled),
    )
