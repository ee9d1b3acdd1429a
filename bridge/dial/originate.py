"""The AMI Originate a click-to-call sends, built from configuration and the roster only.

    Action: Originate
    Channel: PJSIP/1001          [pbx] agent_channel with the agent's own roster device
    Context: from-internal       [pbx] outbound_context
    Exten: 15551230002           the checked number's digits as dialled in the PBX's region
                                 (bridge.dial.safety; 0118613800138000 for +86 from the US)
    Priority: 1
    CallerID: "Sales" <18005550100>   [pbx] outbound_callerid (omitted when empty)
    Timeout: 30000               [dial] ring_s, in ms: how long the agent's device rings
    ChannelId: c2d-…             the first channel's Uniqueid, hence the call's Linkedid
    Async: true                  answer at once ("Originate successfully queued")

Never `Application`/`Data` (manager.c then needs `system` write for System/Exec-like apps,
and any value there is code), never a channel from the request. `ChannelId` names the call
before it exists, so the 202 answer carries the `call_id` the pops and the record will use.
"""

from __future__ import annotations

import re
import secrets

from bridge.config import Config

__all__ = ["DEVICE", "new_call_id", "originate_fields"]

DEVICE = re.compile(r"[A-Za-z0-9_.+-]{1,64}")  # bridge.crm.agents' device rule
_DIGITS = re.compile(r"[0-9]{3,20}")


def new_call_id() -> str:
    """A fresh ChannelId: Asterisk takes it as the Uniqueid (and so the Linkedid)."""
    return "c2d-" + secrets.token_hex(8)


def originate_fields(config: Config, *, device: str, digits: str, call_id: str) -> dict[str, str]:
    """The action's fields (without ActionID, which the link adds). Raises ValueError for a
    device or number that is not plain: callers check both first, this is the last line."""
    if not DEVICE.fullmatch(device):
        raise ValueError(f"device {device[:40]!r} is not a plain extension")
    if not _DIGITS.fullmatch(digits):
        raise ValueError("the number must be 3 to 20 digits")
    if not re.fullmatch(r"c2d-[0-9a-f]{16}", call_id):
        raise ValueError("call ids come from new_call_id()")
    fields = {
        "Channel": config.pbx.agent_channel.replace("{ext}", device),
        "Context": config.pbx.outbound_context,
        "Exten": digits,
        "Priority": "1",
        "Timeout": str(config.dial.ring_s * 1000),
        "ChannelId": call_id,
        "Async": "true",
    }
    if config.pbx.outbound_callerid:
        fields["CallerID"] = config.pbx.outbound_callerid
    return fields
