"""The CRM connector's plugins: the connector `[crm] connector` names (component `crm`), and
the merge notices that tell it of customer merges (`merge_notice`).

The merge notices subscribe to the shared listener in `prepare`; they reach the connector
only once started, after it.
"""

from __future__ import annotations

from bridge.connectors import CrmConnector, build_connector
from bridge.crm.merge_notice import MergeNotifier
from bridge.crm.plugin import CUSTOMER_DIRECTORY, PG_LISTENER
from bridge.plugin import Context, Key, Plugin

__all__ = ["CONNECTOR", "CRM_CONNECTOR", "MERGE_NOTICE"]

CRM_CONNECTOR: Key[CrmConnector] = Key("crm_connector")
_MERGE_NOTIFIER: Key[MergeNotifier] = Key("merge_notifier")


def _connector(ctx: Context) -> CrmConnector:
    return ctx.provide(CRM_CONNECTOR, build_connector(ctx.config, ctx.need(CUSTOMER_DIRECTORY)))


def _prepare_merge_notice(ctx: Context) -> None:
    notifier = MergeNotifier(
        ctx.pool,
        lambda record: ctx.need(CRM_CONNECTOR).merged(record),
        listener=ctx.need(PG_LISTENER),
        retry_s=ctx.config.crm.merge_retry_s,
    )
    ctx.provide(_MERGE_NOTIFIER, notifier)


CONNECTOR = Plugin("crm", build=_connector)
MERGE_NOTICE = Plugin(
    "merge_notice", prepare=_prepare_merge_notice, build=lambda ctx: ctx.need(_MERGE_NOTIFIER)
)
