"""Local channels' two halves, by name (core_local.c's naming)."""

from __future__ import annotations

import re

# A Local channel's half: `Local/<ext>@<context>-<seq>;1` (what the dialler holds) and `;2`
# (what runs the dialplan at <ext>@<context>). core_local.c names them so.
LOCAL_HALF = re.compile(r"^(Local/[^;]+);([12])$")


def local_partner(name: str, half: str) -> str | None:
    """The other half's name when `name` is the given half of a Local channel."""
    m = LOCAL_HALF.match(name)
    if m is None or m.group(2) != half:
        return None
    return f"{m.group(1)};{'1' if half == '2' else '2'}"


def local_ext(name: str) -> str:
    """`600` of `Local/600@ringgroup-0000001a;1`."""
    return name.removeprefix("Local/").split("@", 1)[0]
