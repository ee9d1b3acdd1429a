"""The CRM connector's plugins: the connector `[crm] connector` names (component `crm`), the
prebuilt connectors' change feed and webhook (`crm_feed`), and the merge notices that tell
the connector of customer merges (`merge_notice`, run by the cluster's lease holder only).

With a prebuilt connector, every part of the bridge uses the connector through its cache
(`PrebuiltDirectory`): `crm_feed` keeps that cache fresh by polling `changes_since` every
`[crm] poll_s`, and by `POST /webhooks/crm/{name}` where the CRM offers webhooks.

The merge notices subscribe to the shared listener in `prepare`; they reach the connector
only once started, after it.
"""

from __future__ import annotations

from bridge.cluster.plugin import leader_only
from bridge.connectors import CrmConnector, build_connector
from bridge.connectors.prebuilt.webhook import setup_crm_webhook
from bridge.connectors.prebuilt.wiring import CrmFeed, build_crm_feed
from bridge.crm.merge_notice import MergeNotifier
from bridge.crm.plugin import CUSTOMER_DIRECTORY, PG_LISTENER
from bridge.plugin import Context, Http, Key, Plugin

__all__ = ["CONNECTOR", "CRM_CONNECTOR", "CRM_FEED", "MERGE_NOTICE"]

CRM_CONNECTOR: Key[CrmConnector] = Key("crm_connector")
_FEED: Key[CrmFeed] = Key("crm_feed")
_MERGE_NOTIFIER: Key[MergeNotifier] = Key("merge_notifier")


def _connector(ctx: Context) -> CrmConnector:
    connector = build_connector(ctx.config, ctx.need(CUSTOMER_DIRECTORY))
    feed = build_crm_feed(ctx.config, connector)
    if feed is None:
        return ctx.provide(CRM_CONNECTOR, connector)
    ctx.provide(_FEED, feed)
    # The cache stands in for the connector everywhere, and starts and stops it.
    return ctx.provide(CRM_CONNECTOR, feed.directory)


def _feed_routes(http: Http, ctx: Context) -> None:
    feed = ctx.maybe(_FEED)
    if feed is not None:
        setup_crm_webhook(http.app, feed)


def _prepare_merge_notice(ctx: Context) -> None:
    notifier = MergeNotifier(
        ctx.pool,
        lambda record: ctx.need(CRM_CONNECTOR).merged(record),
        listener=ctx.need(PG_LISTENER),
        retry_s=ctx.config.crm.merge_retry_s,
    )
    ctx.provide(_MERGE_NOTIFIER, notifier)


CONNECTOR = Plugin("crm", build=_connector)
CRM_FEED = Plugin("crm_feed", build=lambda ctx: ctx.maybe(_FEED), routes=_feed_routes)
MERGE_NOTICE = Plugin(
    "merge_notice",
    prepare=_prepare_merge_notice,
    build=lambda ctx: leader_only(ctx, ctx.need(_MERGE_NOTIFIER)),
)
