"""What a feature adds to the running bridge: a `Plugin`, and the `Context` plugins share.

A plugin is a name and up to three steps, each optional:

- `prepare(ctx)` makes parts other plugins need before anything starts. The runtime calls
  every plugin's `prepare`, in order, before the first `build`: this is where the parts
  sharing the one `PgListener` (directory, rules, roster, merge notices) subscribe to it,
  since a listener takes no new channel once started.
- `build(ctx)` returns the plugin's `Component` (started at once, stopped in reverse), or
  None when its feature is disabled by configuration.
- `routes(http, ctx)` mounts its HTTP routes: on `http.app` (the `[http]` root) or on
  `http.api` (the admin API under /api/, admin bearer auth). The HTTP plugin calls every
  plugin's `routes`, in order, when it builds the server.

Parts one plugin makes for another go through the context under typed keys, declared by the
package that owns the part's type (or, to keep imports one-way, by the one that uses it):

    DIRECTORY: Key[PostgresDirectory] = Key("directory")
    ctx.provide(DIRECTORY, PostgresDirectory(ctx.pool, listener=ctx.need(LISTENER)))
    directory = ctx.need(DIRECTORY)     # LookupError naming the key if nobody provided it
    board = ctx.maybe(WALL_BOARD)       # None: that feature is off
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg
from aiohttp import web

from bridge.component import Component, Health
from bridge.config import Config

__all__ = ["CONTRACT_HEALTH_NAMES", "Context", "Http", "Key", "Plugin"]

T = TypeVar("T")

# /healthz always names these (CONTRACT), even when one is disabled by configuration.
CONTRACT_HEALTH_NAMES = ("ami", "ari", "database", "agi", "pops")


class Key(Generic[T]):
    """The typed name of a part one plugin provides to the others."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"


@dataclass(frozen=True, slots=True)
class Http:
    """Where a plugin mounts routes: the `[http]` root app and the admin API sub-app."""

    app: web.Application
    api: web.Application


@dataclass(frozen=True, slots=True)
class Plugin:
    name: str  # the component's name in /healthz and the logs
    build: Callable[[Context], Component | None] | None = None
    prepare: Callable[[Context], None] | None = None
    routes: Callable[[Http, Context], None] | None = None


class Context:
    """The configuration, the database pool, the plugins in order, the parts they provide
    and the components started so far (by plugin name, in start order)."""

    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool[Any],
        plugins: Sequence[Plugin] = (),
        *,
        database_url: str | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        # Where the pool connects: for a part that needs its own connection outside the pool
        # (the cluster lease). None: a context built without `run_bridge` (tests).
        self.database_url = database_url
        self.plugins: tuple[Plugin, ...] = tuple(plugins)
        self.components: dict[str, Component] = {}
        self._parts: dict[Key[Any], Any] = {}

    def provide(self, key: Key[T], part: T) -> T:
        if key in self._parts:
            raise RuntimeError(f"{key.name} is provided twice")
        self._parts[key] = part
        return part

    def need(self, key: Key[T]) -> T:
        try:
            part: T = self._parts[key]
        except KeyError:
            raise LookupError(f"no plugin before this one provides {key.name}") from None
        return part

    def maybe(self, key: Key[T]) -> T | None:
        part: T | None = self._parts.get(key)
        return part

    def get(self, name: str) -> Any:
        """The started component named `name` (tests and the demo read them)."""
        return self.components[name]

    def health(self) -> dict[str, Health]:
        states = {name: component.health() for name, component in self.components.items()}
        for name in CONTRACT_HEALTH_NAMES:  # a disabled part still shows, as "disabled"
            states.setdefault(name, Health("disabled", required=False))
        return states
