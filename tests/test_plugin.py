"""Plugins and their context, without a database: typed parts, the prepare-before-start
guarantee the shared PgListener relies on, and the CONTRACT names in /healthz."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, cast

import pytest

from bridge.component import Health
from bridge.config import build_config
from bridge.plugin import Context, Key, Plugin
from bridge.runtime import PLUGINS, start_plugins

NUMBER: Key[int] = Key("number")


def context(plugins: list[Plugin] | None = None) -> Context:
    return Context(build_config({}, {}, runtime=False), cast(Any, None), plugins or [])


class Part:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self._log = log

    async def start(self) -> None:
        self._log.append(f"start {self.name}")

    async def stop(self) -> None:
        self._log.append(f"stop {self.name}")

    def health(self) -> Health:
        return Health("up")


def test_a_part_is_provided_once_and_needed_by_its_key() -> None:
    ctx = context()
    assert ctx.maybe(NUMBER) is None
    with pytest.raises(LookupError, match="number"):
        ctx.need(NUMBER)
    assert ctx.provide(NUMBER, 7) == 7
    assert ctx.need(NUMBER) == 7 and ctx.maybe(NUMBER) == 7
    with pytest.raises(RuntimeError, match="number is provided twice"):
        ctx.provide(NUMBER, 8)
    assert ctx.need(NUMBER) == 7


async def test_every_plugin_prepares_before_the_first_component_starts() -> None:
    log: list[str] = []

    def prepare(name: str) -> Any:
        return lambda ctx: log.append(f"prepare {name}")

    plugins = [
        Plugin("a", prepare=prepare("a"), build=lambda ctx: Part("a", log)),
        Plugin("b", build=lambda ctx: Part("b", log)),
        Plugin("c", prepare=prepare("c"), build=lambda ctx: Part("c", log)),
    ]
    async with AsyncExitStack() as stack:
        await start_plugins(stack, context(plugins))
    assert log == [
        "prepare a",
        "prepare c",
        "start a",
        "start b",
        "start c",
        "stop c",
        "stop b",
        "stop a",
    ]


def test_health_always_names_the_contract_components() -> None:
    ctx = context()
    ctx.components["database"] = Part("database", [])
    states = {name: health.state for name, health in ctx.health().items()}
    assert states == {
        "database": "up",
        "ami": "disabled",
        "ari": "disabled",
        "agi": "disabled",
        "pops": "disabled",
    }


def test_the_bridge_plugins_have_distinct_names_and_records_start_before_calls() -> None:
    names = [plugin.name for plugin in PLUGINS]
    assert len(names) == len(set(names))
    # Call records start before anything producing calls (so they stop last); the monitor
    # is last to start, the HTTP server (which mounts every plugin's routes) just before.
    for producer in ("route", "pops", "ami", "agi", "ari"):
        assert names.index("records") < names.index(producer)
        assert names.index("outbox") < names.index(producer)
    assert names[-2:] == ["http", "monitor"]
