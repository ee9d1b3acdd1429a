"""Screen-pops: the websocket hub, what agents may see of a customer, dispositions.
The card type itself is `bridge.models.CustomerCard`."""

from __future__ import annotations

from bridge.pops.card import load_card
from bridge.pops.disposition import NotYourCall, save_disposition
from bridge.pops.hub import PopHub
from bridge.pops.permissions import visible_card

__all__ = [
    "NotYourCall",
    "PopHub",
    "load_card",
    "save_disposition",
    "visible_card",
]
