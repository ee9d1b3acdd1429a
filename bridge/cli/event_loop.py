"""The event loop `crm-bridge run` uses: uvloop when installed, else asyncio's own.

uvloop is the optional extra `[fast]` (`pip install 'asterisk-crm-bridge[fast]'`); it only
changes how fast the loop runs, never what the bridge does.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def choose_loop() -> tuple[LoopFactory | None, str]:
    """(loop factory or None for asyncio's default, a name for the log)."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None, "asyncio (install asterisk-crm-bridge[fast] for uvloop)"
    factory: LoopFactory = uvloop.new_event_loop
    return factory, f"uvloop {getattr(uvloop, '__version__', '')}".strip()


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(main)` on a loop from `factory` (asyncio's default when None)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
