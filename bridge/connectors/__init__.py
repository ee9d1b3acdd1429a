"""CRM connectors: the built-in store, a generic REST CRM and prebuilt ones for well-known
CRMs (`bridge.connectors.prebuilt`), behind `CrmConnector`."""

from __future__ import annotations

from typing import Any

from bridge.config import Config
from bridge.connectors.base import CrmConnector
from bridge.connectors.builtin import BuiltinConnector
from bridge.connectors.prebuilt import build_prebuilt
from bridge.connectors.rest import RestConnector

__all__ = ["BuiltinConnector", "CrmConnector", "RestConnector", "build_connector"]


def build_connector(config: Config, directory: Any = None) -> CrmConnector:
    """The connector `[crm] connector` names; `directory` serves builtin lookups."""
    if config.crm.connector == "rest":
        return RestConnector(config.crm)
    if config.crm.connector != "builtin":
        return build_prebuilt(config.crm)
    return BuiltinConnector(directory)
