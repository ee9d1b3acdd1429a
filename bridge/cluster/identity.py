"""Who this bridge instance is: its id in logs, `/healthz`, heartbeat rows and metric labels.

`[cluster] instance_id` when set; else `hostname-pid-random`, made once per process, so a
restarted instance is a new one (its old row simply stops being seen).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from functools import cache

__all__ = ["Instance", "InstanceLogFilter", "this_instance"]

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.:-]")


@dataclass(frozen=True, slots=True)
class Instance:
    id: str
    host: str
    pid: int


@cache
def _generated() -> str:
    host = _NOT_ALLOWED.sub("_", socket.gethostname())[:80] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def this_instance(configured_id: str = "") -> Instance:
    """This process's identity: the configured id (checked by the config), else generated."""
    return Instance(configured_id or _generated(), socket.gethostname()[:200], os.getpid())


class InstanceLogFilter(logging.Filter):
    """Gives every log record an `instance` attribute, for a format with `%(instance)s`."""

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self.instance_id = instance_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.instance = self.instance_id
        return True
