"""`crm-bridge run`'s event loop: uvloop when importable, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from bridge.cli.event_loop import choose_loop, run


def test_without_uvloop_asyncios_own_loop_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # an import of it now fails
    factory, name = choose_loop()
    assert factory is None
    assert name.startswith("asyncio") and "[fast]" in name


def test_an_importable_uvloop_supplies_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[asyncio.AbstractEventLoop] = []

    def new_event_loop() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        made.append(loop)
        return loop

    fake = types.ModuleType("uvloop")
    fake.new_event_loop = new_event_loop  # type: ignore[attr-defined]
    fake.__version__ = "9.9"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uvloop", fake)
    factory, name = choose_loop()
    assert name == "uvloop 9.9"

    async def which() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert run(which(), factory) is made[0]
    assert len(made) == 1


def test_run_without_a_factory_returns_the_result() -> None:
    async def answer() -> int:
        return 42

    assert run(answer(), None) == 42
