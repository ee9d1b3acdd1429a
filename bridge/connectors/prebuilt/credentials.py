"""A prebuilt connector's secrets: from the environment, or a TOML file only its owner reads.

The `[crm]` section names where the CRM is, never how to get in: tokens and client secrets
live in `$CRM_BRIDGE_CRM_<NAME>` or in `[crm] credentials_file` (mode 0600, refused when
group or others may read it, as ssh does with private keys). `Credentials` never prints a
value: its repr lists names only, so a log line or a traceback cannot leak one.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from bridge.config import CrmConfig
from bridge.errors import ConfigError

__all__ = ["NAMES", "Credentials", "load_credentials"]

NAMES = (
    "token",
    "client_id",
    "client_secret",
    "refresh_token",
    "username",
    "password",
    "webhook_secret",  # HubSpot: the app's client secret; Zoho: the notification token
)
ENV_PREFIX = "CRM_BRIDGE_CRM_"
MAX_VALUE = 8192


class Credentials:
    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = {k: v for k, v in (values or {}).items() if v}

    def __repr__(self) -> str:
        return f"Credentials(names={sorted(self._values)!r})"

    def get(self, name: str) -> str:
        return self._values.get(name, "")

    def require(self, name: str, connector: str) -> str:
        value = self._values.get(name)
        if not value:
            raise ConfigError(
                f"credentials {name}",
                f"required by [crm] connector = {connector!r}: set ${ENV_PREFIX}{name.upper()} "
                "or put it in [crm] credentials_file (mode 0600)",
            )
        return value

    def secrets(self) -> tuple[str, ...]:
        """Every value, so log filters and tests can check none of them leaks."""
        return tuple(self._values.values())


def _checked(name: str, value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, f"{name} must be a string")
    if len(value) > MAX_VALUE or any(c in value for c in "\r\n\x00"):
        raise ConfigError(where, f"{name} must be one line of at most {MAX_VALUE} characters")
    return value.strip()


def read_credentials_file(path: Path) -> dict[str, str]:
    where = "crm.credentials_file"
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(where, f"no such file {path}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(where, f"{path} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(where, f"{path} may be read by others: run `chmod 600 {path}`")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # The decoder's message may quote the line, which may be a secret: say where only.
        raise ConfigError(where, f"{path} is not valid TOML") from exc
    values: dict[str, str] = {}
    for name, value in raw.items():
        if name not in NAMES:
            raise ConfigError(where, f"unknown name {name[:40]!r}; known: {', '.join(NAMES)}")
        values[name] = _checked(name, value, where)
    return values


def load_credentials(config: CrmConfig, environ: Mapping[str, str] | None = None) -> Credentials:
    """File first, then `$CRM_BRIDGE_CRM_<NAME>` (the environment wins, as for every key)."""
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    if config.credentials_file:
        values.update(read_credentials_file(Path(config.credentials_file)))
    for name in NAMES:
        env = ENV_PREFIX + name.upper()
        if env in environ:
            values[name] = _checked(name, environ[env], env)
    return Credentials(values)
