"""The Asterisk Manager Interface: wire format (`protocol`), frames to typed PBX events
(`decode`) and the live link (`link`), which publishes those events on an `EventBus`."""

from __future__ import annotations

from bridge.ami.protocol import AmiParser, Frame, encode_action

__all__ = ["AmiParser", "Frame", "encode_action"]
