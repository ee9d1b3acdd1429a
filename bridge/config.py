"""Layered configuration: defaults < TOML file < environment (`CRM_BRIDGE_<SECTION>_<KEY>`).

Each section is a frozen dataclass; its fields are the keys a user may set. Loading checks
every value against its field's type and the section's own rules, and a wrong value raises
`ConfigError` naming the key, which the CLI turns into exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from bridge.devices import DevicePatterns
from bridge.errors import ConfigError
from bridge.netguard.allow import LOOPBACK, parse_allow

ENV_PREFIX = "CRM_BRIDGE_"
DEFAULT_FILE = "crm-bridge.toml"

# PJSIP/1001-0000000a, SIP/1001-00000001, Local/1001@phones/n, Local/1001@phones-0003;1
DEFAULT_DEVICE_PATTERN = r"^(?:PJSIP|SIP|IAX2|DAHDI|Local)/(?P<ext>[A-Za-z0-9_.+]+?)(?:[-@/;].*)?$"

CRM_CONNECTORS = ("builtin", "rest", "hubspot", "salesforce", "zoho", "odoo", "suitecrm")

SECRET_KEYS = frozenset(
    {
        ("database", "url"),
        ("ami", "secret"),
        ("ari", "password"),
        ("crm", "auth_header"),
        ("webhook", "secret"),
        ("alerts", "smtp_password"),
        ("alerts", "sms_token"),
        ("alerts", "sms_auth_header"),
        ("alerts", "sms_url"),  # a generic gateway's URL may carry its key
        ("pbx", "cdr_source"),  # a PostgreSQL URL may hold a password
    }
)


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


# `[[pbx]]` entry names: short, lower case, digits and inner dashes; they prefix call ids
# (`east:1700000000.42`), agents' devices (`east:1001`) and environment names.
PBX_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?")
LEGACY_PBX_NAME = "default"  # the one PBX of a `[pbx]` + `[ami]` + `[ari]` configuration


@dataclass(frozen=True)
class PbxSite:
    """One PBX the bridge serves: its own `[pbx]`, `[ami]` and `[ari]` keys.

    `namespaced` (every `[[pbx]]` entry) prefixes what the PBX numbers on its own with
    `<name>:`, since a Linkedid or an extension is unique only within one PBX. The single PBX
    of a legacy configuration is not namespaced: its call ids stay the bare Linkedid.
    """

    name: str
    pbx: PbxConfig = field(default_factory=PbxConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    ari: AriConfig = field(default_factory=AriConfig)
    namespaced: bool = False

    @property
    def prefix(self) -> str:
        return f"{self.name}:" if self.namespaced else ""

    def qualify(self, value: str) -> str:
        """A Linkedid, Uniqueid or extension of this PBX as the bridge names it."""
        return f"{self.prefix}{value}" if value else value


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


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    ari: AriConfig = field(default_factory=AriConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    pops: PopsConfig = field(default_factory=PopsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    pbx: PbxConfig = field(default_factory=PbxConfig)
    crm: CrmConfig = field(default_factory=CrmConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    records: RecordsConfig = field(default_factory=RecordsConfig)
    permissions: PermissionsConfig = field(default_factory=PermissionsConfig)
    wallboard: WallboardConfig = field(default_factory=WallboardConfig)
    dial: DialConfig = field(default_factory=DialConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    log: LogConfig = field(default_factory=LogConfig)
    # `[[pbx]]` entries; empty for a legacy single PBX (`pbxs` then derives it from `pbx`,
    # `ami` and `ari`, which otherwise hold the first entry's values). Not a section.
    pbx_sites: tuple[PbxSite, ...] = field(default=(), metadata={"section": False})

    @property
    def device_regex(self) -> DevicePatterns:
        return DevicePatterns.parse(self.pbx.device_pattern)

    @property
    def pbxs(self) -> tuple[PbxSite, ...]:
        """Every PBX the bridge serves, in configuration order (at least one)."""
        return self.pbx_sites or (PbxSite(LEGACY_PBX_NAME, self.pbx, self.ami, self.ari),)

    def for_pbx(self, site: PbxSite) -> Config:
        """This configuration as seen by one PBX's parts (its `[pbx]`, `[ami]`, `[ari]`)."""
        return dataclasses.replace(self, pbx=site.pbx, ami=site.ami, ari=site.ari, pbx_sites=())

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced, for logs."""
        out: dict[str, Any] = {}
        for section in section_fields():
            out[section.name] = _redacted_section(section.name, getattr(self, section.name))
        if self.pbx_sites:
            out["pbx_sites"] = {
                site.name: {
                    part: _redacted_section(part, getattr(site, part))
                    for part in ("pbx", "ami", "ari")
                }
                for site in self.pbx_sites
            }
        return out


def _redacted_section(name: str, section: Any) -> dict[str, Any]:
    values = dataclasses.asdict(section)
    for key in values:
        if (name, key) in SECRET_KEYS and values[key]:
            values[key] = "***"
    return values


def section_fields() -> list[dataclasses.Field[Any]]:
    """The fields of `Config` that are TOML sections (`[database]`, `[ami]`, …)."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("section", True)]


def _section_types() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in section_fields()}


def _coerce(key: str, annotation: Any, value: Any, from_env: bool) -> Any:
    """Turn a raw TOML or environment value into the field's type, or raise ConfigError."""
    text = str(annotation)
    if annotation is bool or text == "bool":
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if annotation is int or text == "int":
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if annotation is float or text == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(key, f"expected a number, got {value!r}")
    if text == "str | list[str]":
        # One value or several (`[pbx] device_pattern`); in the environment a JSON list.
        if from_env and isinstance(value, str) and value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"expected a JSON list of strings: {exc}") from exc
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(key, f"expected a string or a list of strings, got {value!r}")
    if annotation is str or text == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"expected a string, got {value!r}")
    if text.startswith("list"):
        if from_env and isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(key, f"expected a list of strings, got {value!r}")
    if text.startswith("dict"):
        if from_env and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(key, f"expected a JSON object: {exc}") from exc
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ConfigError(key, f"expected a table of strings, got {value!r}")
    raise ConfigError(key, f"unsupported type {annotation!r}")  # pragma: no cover


MAX_CONNECTION_CAP = 1_000_000
MAX_DEADLINE_S = 3600.0


def _check_connection_limits(config: Config) -> None:
    """The ports' guards: who may connect, how many at once, how long a header may take."""
    parse_allow(config.agi.allow, "agi.allow")
    caps = {
        "agi.max_pending": config.agi.max_pending,
        "http.max_connections": config.http.max_connections,
        "pops.max_connections": config.pops.max_connections,
    }
    for key, cap in caps.items():
        if not 0 < cap <= MAX_CONNECTION_CAP:
            raise ConfigError(key, f"must be between 1 and {MAX_CONNECTION_CAP}")
    deadlines = {
        "agi.first_byte_timeout_s": config.agi.first_byte_timeout_s,
        "http.header_timeout_s": config.http.header_timeout_s,
    }
    for key, seconds in deadlines.items():
        if not 0 < seconds <= MAX_DEADLINE_S:  # also refuses nan and inf
            raise ConfigError(key, f"must be more than 0 and at most {MAX_DEADLINE_S:.0f} s")


SMS_PROVIDERS = ("", "generic", "twilio", "vonage")


def _check_alerts(alerts: AlertsConfig) -> None:
    """Thresholds in range, and an SMS gateway that names what it needs."""
    positive = {
        "alerts.lag_threshold_s": alerts.lag_threshold_s,
        "alerts.link_down_s": alerts.link_down_s,
        "alerts.degraded_window_s": alerts.degraded_window_s,
        "alerts.check_s": alerts.check_s,
    }
    for key, value in positive.items():
        if not 0 < value <= 86400:  # also refuses nan and inf
            raise ConfigError(key, "must be more than 0 and at most 86400 s")
    for key, pct in (
        ("alerts.degraded_pct", alerts.degraded_pct),
        ("alerts.spool_min_free_pct", alerts.spool_min_free_pct),
    ):
        if not 0 <= pct <= 100:
            raise ConfigError(key, "must be a percentage between 0 and 100")
    if alerts.degraded_min_calls < 1:
        raise ConfigError("alerts.degraded_min_calls", "must be at least 1")
    if alerts.sms_provider not in SMS_PROVIDERS:
        raise ConfigError("alerts.sms_provider", f"must be one of {', '.join(SMS_PROVIDERS[1:])}")
    if alerts.sms_method.upper() not in {"POST", "PUT", "GET"}:
        raise ConfigError("alerts.sms_method", "must be POST, PUT or GET")
    if alerts.sms_auth_header and ":" not in alerts.sms_auth_header:
        raise ConfigError("alerts.sms_auth_header", "expected 'Name: value'")
    if not alerts.sms_provider:
        return
    if not alerts.sms_to:
        raise ConfigError("alerts.sms_to", "list the phone numbers that get SMS alerts")
    if alerts.sms_provider == "generic" and not alerts.sms_url.startswith(("http://", "https://")):
        raise ConfigError("alerts.sms_url", "the generic SMS gateway needs an http(s) URL")
    if alerts.sms_provider in {"twilio", "vonage"}:
        for key in ("sms_account", "sms_token", "sms_from"):
            if not getattr(alerts, key):
                raise ConfigError(
                    f"alerts.{key}", f"required by sms_provider {alerts.sms_provider}"
                )


def _validate(config: Config, *, runtime: bool) -> None:
    for section in ("agi", "http", "pops"):
        port = getattr(config, section).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"{section}.port", f"{port} is not a TCP port")
    if config.agi.budget_ms <= 0:
        raise ConfigError("agi.budget_ms", "must be a positive number of milliseconds")
    if config.agi.read_timeout_s <= 0:
        raise ConfigError("agi.read_timeout_s", "must be positive")
    if config.agi.max_sessions <= 0:
        raise ConfigError("agi.max_sessions", "must be positive")
    _check_connection_limits(config)
    _check_alerts(config.alerts)
    if config.pops.client_queue <= 0:
        raise ConfigError("pops.client_queue", "must be positive")
    if not config.routing.default_queue or not re.fullmatch(
        r"[A-Za-z0-9_.-]{1,80}", config.routing.default_queue
    ):
        raise ConfigError("routing.default_queue", "a queue name of letters, digits, _ . -")
    try:
        zoneinfo.ZoneInfo(config.routing.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            "routing.timezone", f"unknown time zone {config.routing.timezone!r}"
        ) from exc
    for site in config.pbxs:
        _validate_pbx(site, runtime=runtime)
    if config.crm.connector not in CRM_CONNECTORS:
        raise ConfigError("crm.connector", "one of " + ", ".join(CRM_CONNECTORS))
    for key in ("base_url", "token_url", "merge_url", "create_url"):
        url = getattr(config.crm, key)
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"crm.{key}", "must be an http:// or https:// URL")
    if config.crm.connector == "odoo" and not config.crm.database:
        raise ConfigError("crm.database", "required when [crm] connector = 'odoo'")
    if not 0 <= config.crm.poll_s <= 86400:
        raise ConfigError("crm.poll_s", "seconds between polls (0 to 86400), 0 turns it off")
    if not 0 < config.crm.cache_ttl_s <= 86400:
        raise ConfigError("crm.cache_ttl_s", "seconds a cached lookup or card lives (0 to 86400]")
    if not 1 <= config.crm.cache_size <= 1_000_000:
        raise ConfigError("crm.cache_size", "entries per cache (1 to 1000000)")
    if config.crm.webhook_url and not config.crm.webhook_url.startswith(("http://", "https://")):
        raise ConfigError("crm.webhook_url", "must be an http:// or https:// URL")
    if not 1024 <= config.crm.webhook_max_bytes <= 16 << 20:
        raise ConfigError("crm.webhook_max_bytes", "bytes (1024 to 16777216)")
    if config.crm.tags_field and not re.fullmatch(
        r"[A-Za-z][A-Za-z0-9_]{0,79}", config.crm.tags_field
    ):
        raise ConfigError("crm.tags_field", "a field's API name: letters, digits and _")
    if config.crm.connector == "rest" and not config.crm.lookup_url:
        raise ConfigError("crm.lookup_url", "required when [crm] connector = 'rest'")
    if config.crm.timeout_ms <= 0:
        raise ConfigError("crm.timeout_ms", "must be positive")
    if config.crm.max_attempts <= 0:
        raise ConfigError("crm.max_attempts", "must be positive")
    if not 1 <= config.crm.merge_retry_s <= 86400:
        raise ConfigError("crm.merge_retry_s", "seconds between retries (1 to 86400)")
    _validate_permissions(config.permissions)
    _validate_desk(config)
    _validate_dial(config)
    _validate_cluster(config.cluster)
    if config.log.level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log.level", "one of debug, info, warning, error")


def _site_keys(site: PbxSite) -> tuple[str, str, str]:
    """How errors name a PBX's keys: `pbx.`/`ami.`/`ari.` for the legacy single PBX,
    `pbx.<name>.`, `pbx.<name>.ami.`, `pbx.<name>.ari.` for a `[[pbx]]` entry."""
    if not site.namespaced:
        return "pbx.", "ami.", "ari."
    return f"pbx.{site.name}.", f"pbx.{site.name}.ami.", f"pbx.{site.name}.ari."


def _validate_pbx(site: PbxSite, *, runtime: bool) -> None:
    """One PBX's own keys: `[pbx]`, `[ami]`, `[ari]` (or a `[[pbx]]` entry's)."""
    pbx_key, ami_key, ari_key = _site_keys(site)
    pbx, ami, ari = site.pbx, site.ami, site.ari
    if not 0 <= ami.port <= 65535:
        raise ConfigError(f"{ami_key}port", f"{ami.port} is not a TCP port")
    if pbx.max_call_s <= 0:
        raise ConfigError(f"{pbx_key}max_call_s", "must be a positive number of seconds")
    if ami.keepalive_s <= 0:
        raise ConfigError(f"{ami_key}keepalive_s", "must be positive")
    import phonenumbers

    if pbx.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{pbx_key}default_region", f"unknown region {pbx.default_region!r}")
    try:
        DevicePatterns.parse(pbx.device_pattern)
    except ValueError as exc:
        raise ConfigError(f"{pbx_key}device_pattern", str(exc)) from exc
    if "${linkedid}" not in pbx.recording_template and "${uniqueid}" not in (
        pbx.recording_template
    ):
        raise ConfigError(
            f"{pbx_key}recording_template", "must contain ${linkedid} or ${uniqueid} to be unique"
        )
    try:
        zoneinfo.ZoneInfo(pbx.cdr_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"{pbx_key}cdr_timezone", f"unknown time zone {pbx.cdr_timezone!r}"
        ) from exc
    if pbx.reconcile_s < 0:
        raise ConfigError(f"{pbx_key}reconcile_s", "seconds between runs, 0 to turn it off")
    if pbx.cdr_source.strip() and not pbx.cdr_source.strip().startswith(
        ("csv:", "postgresql://", "postgres://")
    ):
        raise ConfigError(f"{pbx_key}cdr_source", "csv:PATH or postgresql://...?table=NAME")
    _validate_outbound(pbx, pbx_key)
    if runtime and ami.enabled and not ami.username:
        raise ConfigError(f"{ami_key}username", "required when [ami] enabled = true")
    if runtime and ami.enabled and not ami.secret:
        raise ConfigError(f"{ami_key}secret", "required when [ami] enabled = true")
    if runtime and ari.enabled:
        if not ari.url.startswith(("http://", "https://")):
            raise ConfigError(f"{ari_key}url", "must be an http:// or https:// URL")
        if not ari.username:
            raise ConfigError(f"{ari_key}username", "required when [ari] enabled = true")
        if not ari.password:
            raise ConfigError(f"{ari_key}password", "required when [ari] enabled = true")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", ari.app):
            raise ConfigError(f"{ari_key}app", "letters, digits, '_', '.' and '-' only")


_COLOR = re.compile(r"#[0-9A-Fa-f]{3,8}|[a-z]{3,20}")


def _validate_desk(config: Config) -> None:
    """The agent's desk and the wallboard: values that reach a browser are checked here."""
    for tag, color in config.pops.tag_colors.items():
        if not isinstance(color, str) or not _COLOR.fullmatch(color) or len(tag) > 64:
            raise ConfigError("pops.tag_colors", f"{tag[:40]!r}: a #hex or named CSS colour")
    url = config.crm.customer_url
    if url and (not url.startswith(("http://", "https://")) or "{id}" not in url):
        raise ConfigError("crm.customer_url", "an http(s) URL with {id}")
    if not 1 <= config.wallboard.sla_s <= 3600:
        raise ConfigError("wallboard.sla_s", "seconds from 1 to 3600")
    if not 0 <= config.wallboard.wrapup_s <= 3600:
        raise ConfigError("wallboard.wrapup_s", "seconds from 0 to 3600")
    if not 0.2 <= config.wallboard.refresh_s <= 300:
        raise ConfigError("wallboard.refresh_s", "seconds from 0.2 to 300")


_CHANNEL_TEMPLATE = re.compile(r"[A-Za-z0-9]{1,20}/[A-Za-z0-9_.@/-]*\{ext\}[A-Za-z0-9_.@/-]*")
_CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,79}")
_PREFIX = re.compile(r"\+[0-9]{1,14}")


def _validate_outbound(pbx: PbxConfig, key: str) -> None:
    """What reaches an AMI Originate: plain words only, so no value can smuggle a field."""
    template = pbx.agent_channel
    if not _CHANNEL_TEMPLATE.fullmatch(template) or template.count("{") != 1:
        raise ConfigError(f"{key}agent_channel", "a channel such as PJSIP/{ext} (one {ext})")
    if not _CONTEXT.fullmatch(pbx.outbound_context):
        raise ConfigError(f"{key}outbound_context", "a dialplan context: letters, digits, _ . -")
    callerid = pbx.outbound_callerid
    if len(callerid) > 80 or any(ord(ch) < 32 or ord(ch) == 127 for ch in callerid):
        raise ConfigError(f"{key}outbound_callerid", "at most 80 characters, no control ones")


def _validate_dial(config: Config) -> None:
    for prefix in config.dial.allow:
        if not _PREFIX.fullmatch(prefix):
            raise ConfigError("dial.allow", f"{prefix[:40]!r}: an E.164 prefix such as +1")
    if not 1 <= config.dial.per_minute <= 600:
        raise ConfigError("dial.per_minute", "dials per agent per minute, 1 to 600")
    if not 5 <= config.dial.ring_s <= 300:
        raise ConfigError("dial.ring_s", "seconds from 5 to 300")
    if not 1 <= config.dial.callbacks_days <= 365:
        raise ConfigError("dial.callbacks_days", "days from 1 to 365")


INSTANCE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


def _validate_cluster(cluster: ClusterConfig) -> None:
    """The id shows in logs, /healthz and every metric's label: plain characters only."""
    if not 0.5 <= cluster.takeover_s <= 3600:  # also refuses nan and inf
        raise ConfigError("cluster.takeover_s", "seconds from 0.5 to 3600")
    if cluster.instance_id and not INSTANCE_ID.fullmatch(cluster.instance_id):
        raise ConfigError("cluster.instance_id", "1-100 letters, digits, _ . : -")


def _validate_permissions(permissions: PermissionsConfig) -> None:
    if permissions.agents_edit not in ("none", "own", "all"):
        raise ConfigError("permissions.agents_edit", "one of none, own, all")
    for name in permissions.non_owner_sections:
        if name not in CARD_SECTIONS:
            raise ConfigError(
                "permissions.non_owner_sections",
                f"unknown card section {name[:40]!r}; known: {', '.join(CARD_SECTIONS)}",
            )
    for name in permissions.non_owner_attributes:
        if not name or len(name) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ConfigError(
                "permissions.non_owner_attributes",
                "attribute names are 1-100 characters without control ones",
            )


def build_config(
    file_values: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    validate: bool = True,
    runtime: bool = True,
) -> Config:
    """Merge defaults, file values and environment into a checked `Config`.

    `runtime=False` skips what only running the bridge needs (PBX credentials), for
    commands such as `db migrate` or `rules list`.
    """
    file_values = dict(file_values or {})
    environ = os.environ if environ is None else environ
    sections = _section_types()
    for name in file_values:
        if name not in sections:
            raise ConfigError(name, "unknown section")
    entries = file_values.get("pbx")
    if isinstance(entries, list):  # `[[pbx]]`: several PBXs (see _build_sites)
        file_values["pbx"] = {}
    built: dict[str, Any] = {}
    for name, section_type in sections.items():
        raw = file_values.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(name, "must be a table")
        built[name] = _build_section(
            name, section_type, raw, environ, f"{ENV_PREFIX}{name.upper()}_", {}
        )
    if isinstance(entries, list):
        sites = _build_sites(entries, environ, built["pbx"], built["ami"], built["ari"])
        first = sites[0]
        built.update(pbx=first.pbx, ami=first.ami, ari=first.ari, pbx_sites=sites)
    config = Config(**built)
    if validate:
        _validate(config, runtime=runtime)
    return config


def _build_section(
    dotted: str,
    section_type: type,
    raw: Mapping[str, Any],
    environ: Mapping[str, str],
    env_prefix: str,
    base: Mapping[str, Any],
) -> Any:
    """One section: `base` values, then the file's `raw` table, then `<env_prefix><KEY>`."""
    hints = get_type_hints(section_type)
    known = {f.name for f in dataclasses.fields(section_type)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{dotted}.{key}", "unknown key")
    values: dict[str, Any] = dict(base)
    for key in known:
        env_name = f"{env_prefix}{key.upper()}"
        if env_name in environ:
            values[key] = _coerce(f"{dotted}.{key}", hints[key], environ[env_name], from_env=True)
        elif key in raw:
            values[key] = _coerce(f"{dotted}.{key}", hints[key], raw[key], from_env=False)
    return section_type(**values)


_SITE_PARTS: dict[str, type] = {"ami": AmiConfig, "ari": AriConfig}


def pbx_env_prefix(name: str) -> str:
    """`CRM_BRIDGE_PBX_EAST_1_` for the `[[pbx]]` entry `east-1` (its `[pbx.ami]` keys:
    `CRM_BRIDGE_PBX_EAST_1_AMI_<KEY>`)."""
    return f"{ENV_PREFIX}PBX_{name.upper().replace('-', '_')}_"


def _build_sites(
    entries: list[Any],
    environ: Mapping[str, str],
    pbx: PbxConfig,
    ami: AmiConfig,
    ari: AriConfig,
) -> tuple[PbxSite, ...]:
    """`[[pbx]]` entries: each `name`, its `[pbx]` keys and `[pbx.ami]`/`[pbx.ari]` tables.

    Layers, most specific last: defaults, `[ami]`/`[ari]` and `CRM_BRIDGE_PBX_<KEY>` (shared
    by every entry), the entry's own keys, then `CRM_BRIDGE_PBX_<NAME>_<KEY>` and
    `CRM_BRIDGE_PBX_<NAME>_AMI_<KEY>` / `_ARI_<KEY>`.
    """
    if not entries:
        raise ConfigError("pbx", "[[pbx]] needs at least one entry")
    legacy_keys = {f.name for f in dataclasses.fields(PbxConfig)}
    shared = {"pbx": dataclasses.asdict(pbx), "ami": dataclasses.asdict(ami)}
    shared["ari"] = dataclasses.asdict(ari)
    sites: list[PbxSite] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"pbx[{index}]", "must be a table")
        name = entry.get("name")
        if not isinstance(name, str) or not PBX_NAME.fullmatch(name):
            raise ConfigError(
                f"pbx[{index}].name",
                "required: 1-16 of a-z, 0-9 and inner '-' (it prefixes call ids)",
            )
        if any(site.name == name for site in sites):
            raise ConfigError(f"pbx.{name}.name", "two [[pbx]] entries have this name")
        env_name = name.replace("-", "_")
        if any(f"{env_name}_{key}" in legacy_keys for key in legacy_keys):
            # No key today, but a future `[pbx] east_x` would make CRM_BRIDGE_PBX_EAST_X mean
            # both it and the key `x` of an entry named `east`.
            raise ConfigError(f"pbx.{name}.name", "clashes with a [pbx] key's environment name")
        prefix = pbx_env_prefix(name)
        parts: dict[str, Any] = {}
        for part, part_type in _SITE_PARTS.items():
            raw = entry.get(part, {})
            if not isinstance(raw, dict):
                raise ConfigError(f"pbx.{name}.{part}", "must be a table")
            parts[part] = _build_section(
                f"pbx.{name}.{part}",
                part_type,
                raw,
                environ,
                f"{prefix}{part.upper()}_",
                shared[part],
            )
        own = {k: v for k, v in entry.items() if k not in ("name", *_SITE_PARTS)}
        site_pbx = _build_section(f"pbx.{name}", PbxConfig, own, environ, prefix, shared["pbx"])
        sites.append(PbxSite(name, site_pbx, parts["ami"], parts["ari"], namespaced=True))
    return tuple(sites)


def config_path(explicit: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """`--config FILE`, else `$CRM_BRIDGE_CONFIG`, else `./crm-bridge.toml` if present."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("CRM_BRIDGE_CONFIG"):
        return Path(environ["CRM_BRIDGE_CONFIG"])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


def load_config(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    validate: bool = True,
    runtime: bool = True,
) -> Config:
    path = config_path(explicit, environ)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("--config", f"no such file {path}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    return build_config(file_values, environ, validate=validate, runtime=runtime)
