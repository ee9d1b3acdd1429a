"""Prebuilt connectors for well-known CRMs, behind the same `CrmConnector` interface.

`build_prebuilt(config)` builds the one `[crm] connector` names, with credentials read from
the environment or `[crm] credentials_file`; `build_crm_feed(config, connector)` its cache and
change feed, `crm_webhook_handler(connector, feed)` the `POST /webhooks/crm/{name}` handler.
Each vendor module documents which published API document and version it follows.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config import CrmConfig
from bridge.connectors.prebuilt.base import PrebuiltConnector
from bridge.connectors.prebuilt.credentials import Credentials, load_credentials
from bridge.connectors.prebuilt.feed import ChangeFeed
from bridge.connectors.prebuilt.hubspot import HubSpotConnector
from bridge.connectors.prebuilt.odoo import OdooConnector
from bridge.connectors.prebuilt.salesforce import SalesforceConnector
from bridge.connectors.prebuilt.suitecrm import SuiteCrmConnector
from bridge.connectors.prebuilt.webhook import crm_webhook_handler
from bridge.connectors.prebuilt.wiring import CrmFeed, build_crm_feed
from bridge.connectors.prebuilt.zoho import ZohoConnector

__all__ = [
    "PREBUILT",
    "ChangeFeed",
    "Credentials",
    "CrmFeed",
    "PrebuiltConnector",
    "build_crm_feed",
    "build_prebuilt",
    "crm_webhook_handler",
]

PREBUILT: dict[str, type[PrebuiltConnector]] = {
    "hubspot": HubSpotConnector,
    "salesforce": SalesforceConnector,
    "zoho": ZohoConnector,
    "odoo": OdooConnector,
    "suitecrm": SuiteCrmConnector,
}


def build_prebuilt(
    config: CrmConfig,
    environ: Mapping[str, str] | None = None,
    credentials: Credentials | None = None,
) -> PrebuiltConnector:
    cls = PREBUILT[config.connector]
    return cls(config, credentials or load_credentials(config, environ))
