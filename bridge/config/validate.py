"""Each section's own rules, checked once it is built: a wrong value raises `ConfigError`
naming the key (`pbx.east.ami.port`), which the CLI turns into exit status 2."""

from __future__ import annotations

import re
import zoneinfo

from bridge.config.pbx import PbxSite
from bridge.config.root import Config
from bridge.config.sections import (
    CARD_SECTIONS,
    AlertsConfig,
    ClusterConfig,
    PbxConfig,
    PermissionsConfig,
)
from bridge.devices import DevicePatterns
from bridge.errors import ConfigError
from bridge.netguard.allow import parse_allow

CRM_CONNECTORS = ("builtin", "rest", "hubspot", "salesforce", "zoho", "odoo", "suitecrm")

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


def validate_config(config: Config, *, runtime: bool) -> None:
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


def site_keys(site: PbxSite) -> tuple[str, str, str]:
    """How errors name a PBX's keys: `pbx.`/`ami.`/`ari.` for the legacy single PBX,
    `pbx.<name>.`, `pbx.<name>.ami.`, `pbx.<name>.ari.` for a `[[pbx]]` entry."""
    if not site.namespaced:
        return "pbx.", "ami.", "ari."
    return f"pbx.{site.name}.", f"pbx.{site.name}.ami.", f"pbx.{site.name}.ari."


def _validate_pbx(site: PbxSite, *, runtime: bool) -> None:
    """One PBX's own keys: `[pbx]`, `[ami]`, `[ari]` (or a `[[pbx]]` entry's)."""
    pbx_key, ami_key, ari_key = site_keys(site)
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
