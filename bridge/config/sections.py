"""The TOML sections: one frozen dataclass each, whose fields are the keys a user may set.

The values here are the defaults; `bridge.config.validate` holds each section's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.netguard.allow import LOOPBACK

# PJSIP/1001-0000000a, SIP/1001-00000001, Local/1001@phones/n, Local/1001@phones-0003;1
DEFAULT_DEVICE_PATTERN = r"^(?:PJSIP|SIP|IAX2|DAHDI|Local)/(?P<ext>[A-Za-z0-9_.+]+?)(?:[-@/;].*)?$"


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = ""  # empty: embedded PostgreSQL under ./.crm-bridge/ (demo)
    pool_size: int = 10


@dataclass(frozen=True)
class AmiConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = ""
    keepalive_s: float = 10.0
    reconnect_max_s: float = 30.0


@dataclass(frozen=True)
class AriConfig:
    enabled: bool = False
    url: str = "http://127.0.0.1:8088/ari"
    username: str = ""
    password: str = ""
    app: str = "crm-bridge"
    reconnect_max_s: float = 30.0


@dataclass(frozen=True)
class AgiConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    budget_ms: int = 300
    read_timeout_s: float = 5.0
    max_sessions: int = 1000
    # Peers FastAGI accepts; any other is closed before a byte is read. Loopback by default:
    # a remote Asterisk must be listed (its address, or its network as a CIDR).
    allow: list[str] = field(default_factory=lambda: list(LOOPBACK))
    # Asterisk writes the whole environment as soon as it connects, so a real peer's first
    # byte comes within a round trip; 2 s leaves room for a loaded LAN, yet idle sockets go
    # quickly.
    first_byte_timeout_s: float = 2.0
    # Connections still before the end of their header, apart from max_sessions: far more
    # than a PBX has within those few milliseconds, few enough to cost nothing. When full,
    # the oldest is dropped, so idle sockets can never lock real calls out.
    max_pending: int = 256


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # Open connections: room for some hundred agents' browsers (up to 6 each) and scrapers,
    # well below the open-file limit the bridge raises at start, so a flood of slow clients
    # cannot take FastAGI's and the pops' descriptors. The oldest connection still sending its
    # request head is dropped first.
    max_connections: int = 1024
    # A browser sends its request head at once; 10 s forgives a slow mobile link but not a
    # slowloris trickle.
    header_timeout_s: float = 10.0


@dataclass(frozen=True)
class PopsConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    # Browser origins allowed to open the pop websocket; empty means the agent page's own
    # origin (http://[http] host:port, and localhost/127.0.0.1 for a loopback bind).
    origins: list[str] = field(default_factory=list)
    client_queue: int = 256
    # Open websocket connections: one per agent tab or wallboard, with room to spare.
    max_connections: int = 1024
    # Badge colour per customer tag on the agent's desk, e.g. {vip = "#b8860b"}; CSS colours.
    tag_colors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingConfig:
    default_queue: str = "support"
    default_priority: int = 0
    timezone: str = "UTC"


@dataclass(frozen=True)
class PbxConfig:
    default_region: str = "US"
    # One regex, or a list tried in order (bridge/devices.py): the first that matches wins.
    device_pattern: str | list[str] = DEFAULT_DEVICE_PATTERN
    recording_template: str = "${linkedid}.wav"
    # The PBX's own CDR store, read by reconciliation: csv:PATH (cdr_csv's Master.csv) or
    # postgresql://...?table=NAME (cdr_pgsql); empty: only the Cdrs kept from AMI.
    cdr_source: str = ""
    cdr_timezone: str = "UTC"  # zone of CDR times without one (cdr.conf usegmtime = no)
    reconcile_s: float = 300.0  # periodic reconciliation inside `crm-bridge run`; 0: off
    # A call still open after this long (its Hangups were lost) is closed with what is known,
    # marked inferred for reconciliation: live state stays bounded.
    max_call_s: int = 14400
    # Click-to-call (bridge/dial): the channel that rings the agent's own device ({ext} is
    # the roster's device), then the context and caller ID the dialled number goes out with.
    agent_channel: str = "PJSIP/{ext}"
    outbound_context: str = "from-internal"
    outbound_callerid: str = ""


@dataclass(frozen=True)
class DialConfig:
    # E.164 prefixes a click-to-call may reach (e.g. ["+1", "+44"]); empty: any dialable
    # national or international number except premium-rate and shared-cost ones.
    allow: list[str] = field(default_factory=list)
    per_minute: int = 10  # dials one agent may place per minute; more get 429
    ring_s: int = 30  # how long the agent's device rings before the dial gives up
    callbacks_days: int = 7  # how far back abandoned calls are offered for a call back


@dataclass(frozen=True)
class CrmConfig:
    connector: str = "builtin"  # builtin | rest | hubspot | salesforce | zoho | odoo | suitecrm
    lookup_url: str = ""  # e.g. https://crm.example/api/customers?phone={phone}
    records_url: str = ""  # e.g. https://crm.example/api/calls/{call_id}
    auth_header: str = ""  # e.g. "Authorization: Bearer abc"
    field_map: dict[str, str] = field(default_factory=dict)
    timeout_ms: int = 2000
    max_attempts: int = 5
    # Prebuilt connectors (bridge/connectors/prebuilt): where the CRM's API is, how to open
    # a customer in it, and where its credentials are (never in this file: env or a 0600 file).
    base_url: str = ""  # empty: the vendor's public API address
    customer_url: str = ""  # e.g. https://app.hubspot.com/contacts/123/record/0-1/{id}
    credentials_file: str = ""  # TOML of token/client_id/client_secret/..., mode 0600
    token_url: str = ""  # OAuth token endpoint override (Zoho's regional accounts server)
    database: str = ""  # odoo: the database name
    poll_s: float = 300.0  # change feed: seconds between `updated since` polls; 0: off
    # Prebuilt lookups and cards are cached (bridge/connectors/prebuilt/cache.py): the feed
    # and webhooks keep them fresh, the TTL is a safety net; a CRM down serves the last answer.
    cache_ttl_s: float = 3600.0
    cache_size: int = 10000  # entries per cache (numbers, cards), least recently used out
    webhook_max_bytes: int = 1048576  # POST /webhooks/crm/{name}: a larger body is 413
    webhook_url: str = ""  # that URL as registered in the CRM (HubSpot signs it); "": as received
    # HubSpot/Salesforce/SuiteCRM: the contact field that takes the desk's tags on "create
    # customer" (a custom property made beforehand, e.g. bridge_tags, Tags__c, tags_c);
    # empty: tags stay in the bridge. Zoho (Tag API) and Odoo (category_id) need none.
    tags_field: str = ""
    # Customer merges told to the CRM (bridge/crm/merge_notice.py): `rest` posts them here
    # (empty: acknowledged without sending); pending ones are retried this often.
    merge_url: str = ""
    merge_retry_s: float = 60.0
    # `rest`: where "create customer" from the desk is posted (empty: refused with 501).
    create_url: str = ""


@dataclass(frozen=True)
class WebhookConfig:
    secret: str = ""
    max_skew_s: int = 300


@dataclass(frozen=True)
class AlertsConfig:
    lag_threshold_s: float = 5.0
    link_down_s: float = 10.0  # AMI or ARI down this long: alert
    degraded_pct: float = 5.0  # % of calls routed degraded over `degraded_window_s`
    degraded_window_s: float = 300.0
    degraded_min_calls: int = 20  # fewer decisions in the window: no verdict
    spool_min_free_pct: float = 10.0  # the spool's filesystem: alert below this % free
    check_s: float = 1.0  # how often the monitor evaluates its conditions
    webhook_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "crm-bridge@localhost"
    smtp_to: list[str] = field(default_factory=list)
    # SMS gateway: "" (none), "generic" (sms_url/method/auth_header/body), "twilio", "vonage".
    sms_provider: str = ""
    sms_url: str = ""  # generic: the gateway; twilio/vonage: overrides the provider's API URL
    sms_method: str = "POST"
    sms_auth_header: str = ""  # generic: one header, e.g. "Authorization: Bearer ..."
    sms_content_type: str = "application/json"
    sms_body: str = '{"to": "{to}", "from": "{from}", "text": "{message}"}'
    sms_account: str = ""  # twilio: Account SID; vonage: api_key
    sms_token: str = ""  # twilio: Auth Token; vonage: api_secret
    sms_from: str = ""
    sms_to: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecordsConfig:
    # Local durable spool of ended calls not yet committed; empty means
    # $CRM_BRIDGE_RECORDS_SPOOL_DIR or ./.crm-bridge/spool.
    spool_dir: str = ""


# Card sections `[permissions] non_owner_sections` may grant ("attributes" = all of them).
CARD_SECTIONS = ("attributes", "orders", "contracts", "marketing", "history")


@dataclass(frozen=True)
class PermissionsConfig:
    # What an agent sees of another agent's customer besides id, name, tags and last outcome:
    # whole card sections, and single attributes by name. Empty: nothing more (the default).
    non_owner_sections: list[str] = field(default_factory=list)
    non_owner_attributes: list[str] = field(default_factory=list)
    # Who may correct a customer's name and tags from the desk: "none", "own" (the owner,
    # or anyone for a customer nobody owns) or "all". Supervisors and admins always may.
    agents_edit: str = "own"


@dataclass(frozen=True)
class WallboardConfig:
    sla_s: int = 20  # service level: answered within this many seconds of arriving
    refresh_s: float = 2.0  # how often the PBX's queue members are asked (QueueStatus)
    wrapup_s: int = 120  # an agent is "wrapping up" after a call until filed, at most this


@dataclass(frozen=True)
class ClusterConfig:
    # Several `crm-bridge run` instances may share one database (bridge/cluster): the one
    # holding the lease runs the jobs that must run once; a standby takes over within this.
    takeover_s: float = 5.0
    instance_id: str = ""  # empty: hostname-pid-random, new at each start


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
