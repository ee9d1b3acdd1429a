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

from bridge.errors import ConfigError

ENV_PREFIX = "CRM_BRIDGE_"
DEFAULT_FILE = "crm-bridge.toml"

# PJSIP/1001-0000000a, SIP/1001-00000001, Local/1001@phones/n, Local/1001@phones-0003;1
DEFAULT_DEVICE_PATTERN = r"^(?:PJSIP|SIP|IAX2|DAHDI|Local)/(?P<ext>[A-Za-z0-9_.+]+?)(?:[-@/;].*)?$"

SECRET_KEYS = frozenset(
    {
        ("database", "url"),
        ("ami", "secret"),
        ("ari", "password"),
        ("crm", "auth_header"),
        ("webhook", "secret"),
        ("alerts", "smtp_password"),
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


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class PopsConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    # Browser origins allowed to open the pop websocket; empty means the agent page's own
    # origin (http://[http] host:port, and localhost/127.0.0.1 for a loopback bind).
    origins: list[str] = field(default_factory=list)
    client_queue: int = 256


@dataclass(frozen=True)
class RoutingConfig:
    default_queue: str = "support"
    default_priority: int = 0
    timezone: str = "UTC"


@dataclass(frozen=True)
class PbxConfig:
    default_region: str = "US"
    device_pattern: str = DEFAULT_DEVICE_PATTERN
    recording_template: str = "${linkedid}.wav"
    # A call still open after this long (its Hangups were lost) is closed with what is known,
    # marked inferred for reconciliation: live state stays bounded.
    max_call_s: int = 14400


@dataclass(frozen=True)
class CrmConfig:
    connector: str = "builtin"  # builtin | rest
    lookup_url: str = ""  # e.g. https://crm.example/api/customers?phone={phone}
    records_url: str = ""  # e.g. https://crm.example/api/calls/{call_id}
    auth_header: str = ""  # e.g. "Authorization: Bearer abc"
    field_map: dict[str, str] = field(default_factory=dict)
    timeout_ms: int = 2000
    max_attempts: int = 5


@dataclass(frozen=True)
class WebhookConfig:
    secret: str = ""
    max_skew_s: int = 300


@dataclass(frozen=True)
class AlertsConfig:
    lag_threshold_s: float = 5.0
    webhook_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "crm-bridge@localhost"
    smtp_to: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecordsConfig:
    # Local durable spool of ended calls not yet committed; empty means
    # $CRM_BRIDGE_RECORDS_SPOOL_DIR or ./.crm-bridge/spool.
    spool_dir: str = ""


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
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def device_regex(self) -> re.Pattern[str]:
        return re.compile(self.pbx.device_pattern)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The configuration as plain data with every secret replaced, for logs."""
        out: dict[str, dict[str, Any]] = {}
        for section in dataclasses.fields(self):
            values = dataclasses.asdict(getattr(self, section.name))
            for key in values:
                if (section.name, key) in SECRET_KEYS and values[key]:
                    values[key] = "***"
            out[section.name] = values
        return out


def _section_types() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {name: hints[name] for name in (f.name for f in dataclasses.fields(Config))}


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


def _validate(config: Config, *, runtime: bool) -> None:
    for section in ("ami", "agi", "http", "pops"):
        port = getattr(config, section).port
        if not 0 <= port <= 65535:
            raise ConfigError(f"{section}.port", f"{port} is not a TCP port")
    if config.agi.budget_ms <= 0:
        raise ConfigError("agi.budget_ms", "must be a positive number of milliseconds")
    if config.agi.read_timeout_s <= 0:
        raise ConfigError("agi.read_timeout_s", "must be positive")
    if config.agi.max_sessions <= 0:
        raise ConfigError("agi.max_sessions", "must be positive")
    if config.pops.client_queue <= 0:
        raise ConfigError("pops.client_queue", "must be positive")
    if config.pbx.max_call_s <= 0:
        raise ConfigError("pbx.max_call_s", "must be a positive number of seconds")
    if config.ami.keepalive_s <= 0:
        raise ConfigError("ami.keepalive_s", "must be positive")
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
    import phonenumbers

    if config.pbx.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError("pbx.default_region", f"unknown region {config.pbx.default_region!r}")
    try:
        pattern = re.compile(config.pbx.device_pattern)
    except re.error as exc:
        raise ConfigError("pbx.device_pattern", f"not a regular expression: {exc}") from exc
    if "ext" not in pattern.groupindex:
        raise ConfigError("pbx.device_pattern", "needs a named group (?P<ext>...)")
    if "${linkedid}" not in config.pbx.recording_template and "${uniqueid}" not in (
        config.pbx.recording_template
    ):
        raise ConfigError(
            "pbx.recording_template", "must contain ${linkedid} or ${uniqueid} to be unique"
        )
    if config.crm.connector not in {"builtin", "rest"}:
        raise ConfigError("crm.connector", "either 'builtin' or 'rest'")
    if config.crm.connector == "rest" and not config.crm.lookup_url:
        raise ConfigError("crm.lookup_url", "required when [crm] connector = 'rest'")
    if config.crm.timeout_ms <= 0:
        raise ConfigError("crm.timeout_ms", "must be positive")
    if config.crm.max_attempts <= 0:
        raise ConfigError("crm.max_attempts", "must be positive")
    if config.log.level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log.level", "one of debug, info, warning, error")
    if runtime and config.ami.enabled and not config.ami.username:
        raise ConfigError("ami.username", "required when [ami] enabled = true")
    if runtime and config.ami.enabled and not config.ami.secret:
        raise ConfigError("ami.secret", "required when [ami] enabled = true")
    if runtime and config.ari.enabled:
        if not config.ari.url.startswith(("http://", "https://")):
            raise ConfigError("ari.url", "must be an http:// or https:// URL")
        if not config.ari.username:
            raise ConfigError("ari.username", "required when [ari] enabled = true")
        if not config.ari.password:
            raise ConfigError("ari.password", "required when [ari] enabled = true")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", config.ari.app):
            raise ConfigError("ari.app", "letters, digits, '_', '.' and '-' only")


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
    built: dict[str, Any] = {}
    for name, section_type in sections.items():
        raw = file_values.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(name, "must be a table")
        hints = get_type_hints(section_type)
        known = {f.name for f in dataclasses.fields(section_type)}
        for key in raw:
            if key not in known:
                raise ConfigError(f"{name}.{key}", "unknown key")
        values: dict[str, Any] = {}
        for key in known:
            dotted = f"{name}.{key}"
            env_name = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
            if env_name in environ:
                values[key] = _coerce(dotted, hints[key], environ[env_name], from_env=True)
            elif key in raw:
                values[key] = _coerce(dotted, hints[key], raw[key], from_env=False)
        built[name] = section_type(**values)
    config = Config(**built)
    if validate:
        _validate(config, runtime=runtime)
    return config


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
