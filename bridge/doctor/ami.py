"""What `crm-bridge doctor` can learn about the AMI user, and how.

Asterisk has no action that lists a manager user's `read` classes, so they are read from
what the manager does (main/manager.c): after a Login it sends `FullyBooted` only to a user
that may read `system`, a class the bridge never needs; `ListCommands` lists the actions the
user's `write` classes allow (each with its `Priv:`), which shows whether the bridge's
restart listing (`CoreShowChannels`, write `reporting`) is allowed and whether the user may
run what it should not (`Command`, `GetConfig`/`UpdateConfig`: write `command`, `config`).
`call`, `agent` and `cdr` reads show only as events arrive; `/healthz` and the tracker's
metrics tell when calls are seen.

`classify(frames)` is pure: the frames an AMI session answered, in, findings out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bridge.ami.protocol import AmiParser, Frame, encode_action
from bridge.config import AmiConfig

__all__ = ["AmiFindings", "classify", "probe_ami"]

NEEDED_ACTIONS = {"CoreShowChannels": "reporting"}  # the restart listing
RISKY_CLASSES = {"command", "config", "system"}
NEEDED_READ = "call,agent,cdr"


@dataclass
class AmiFindings:
    logged_in: bool = False
    error: str = ""
    reads_system: bool = False
    actions: dict[str, str] = field(default_factory=dict)  # action -> its Priv text
    listed: bool = False

    def missing_actions(self) -> list[str]:
        return [a for a in NEEDED_ACTIONS if self.listed and a not in self.actions]

    def risky_actions(self) -> list[str]:
        out = []
        for action, priv in sorted(self.actions.items()):
            classes = {c.strip() for c in priv.split(",")} - {"all", "<none>"}
            if classes and classes <= RISKY_CLASSES:
                out.append(action)
        return out


def _priv(text: str) -> str:
    start = text.rfind("(Priv: ")
    return text[start + 7 : text.rfind(")")] if start >= 0 else ""


def classify(frames: list[Frame]) -> AmiFindings:
    found = AmiFindings()
    for frame in frames:
        aid = frame.get("ActionID", "")
        if aid == "doctor-login":
            if (frame.get("Response") or "").lower() == "success":
                found.logged_in = True
            else:
                found.error = frame.get("Message", "") or "login refused"
        elif (frame.get("Event") or "").lower() == "fullybooted":
            found.reads_system = True
        elif aid == "doctor-list" and (frame.get("Response") or "").lower() == "success":
            found.listed = True
            for key, value in frame.items:
                if key.lower() not in {"response", "actionid", "message"}:
                    found.actions[key] = _priv(value)
    return found


async def probe_ami(config: AmiConfig, *, timeout_s: float = 10.0) -> AmiFindings:
    """Log in, ask for ListCommands, log off; raise OSError/TimeoutError when unreachable."""
    parser = AmiParser()
    frames: list[Frame] = []
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(config.host, config.port)
        try:
            writer.write(
                encode_action(
                    "Login",
                    {
                        "ActionID": "doctor-login",
                        "Username": config.username,
                        "Secret": config.secret,
                        "Events": "system",
                    },
                )
            )
            writer.write(encode_action("ListCommands", {"ActionID": "doctor-list"}))
            writer.write(encode_action("Logoff", {"ActionID": "doctor-logoff"}))
            await writer.drain()
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                frames.extend(f for f in parser.feed(data) if isinstance(f, Frame))
                if any(f.get("ActionID") == "doctor-logoff" for f in frames):
                    break
        finally:
            writer.close()
    return classify(frames)
