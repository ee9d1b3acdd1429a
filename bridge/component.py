"""What the composition root needs of each long-running part of the bridge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

State = Literal["up", "down", "degraded", "disabled", "starting", "standby"]


@dataclass(frozen=True, slots=True)
class Health:
    state: State
    required: bool = True  # a required component that is down makes /healthz answer 503
    detail: dict[str, Any] = field(default_factory=dict)


class Component(Protocol):
    name: str

    async def start(self) -> None:
        """Bind, connect or spawn; return once serving (or retrying in the background)."""

    async def stop(self) -> None:
        """Stop accepting work, finish or hand over what is in flight, release resources."""

    def health(self) -> Health: ...
