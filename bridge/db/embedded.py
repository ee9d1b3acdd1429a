"""The database URL to use: the configured one, or an embedded PostgreSQL for the demo.

With `[database] url` empty, `database_url(config)` runs PostgreSQL from the `pgserver`
wheel (the `embedded` extra ships the server binaries) with its data under
`./.crm-bridge/pgdata`, yields its URL and stops it on exit. A second start reuses the data
(initdb only runs once). The server listens on a Unix socket inside the data folder only —
no TCP port, so nothing to collide with and nothing exposed on the network; the URL is
`postgresql://postgres@/postgres?host=<pgdata>`.

Sharing: a command run while the demo is up (e.g. `crm-bridge agents add`) finds the
running server through `postmaster.pid` and uses it without stopping it. The process that
started the server records itself in `./.crm-bridge/pg.owner`; a server left behind by a
process that no longer exists (killed with SIGKILL) is adopted and stopped by the next user.

Running as root: PostgreSQL refuses to run as root (initdb and postgres exit with "cannot
be run as root"). We then run it as a dedicated system user `crm-bridge-pg` (created with
`useradd --system` if missing; `nobody` if it cannot be created), with that user's group
and no supplementary groups. The user must reach the data folder and the binaries: an
ancestor folder that it cannot traverse gets the search bit for others (`o+x`, never read)
and a warning names it. We do not use pgserver's own `get_server()`: as root it chmods
every ancestor `g+rx,o+rx`, and it never stops a server whose handle list kept a dead pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bridge.config import Config
from bridge.errors import ConfigError, CrmUnavailable

log = logging.getLogger(__name__)

DEFAULT_ROOT = Path(".crm-bridge")
PG_USER = "crm-bridge-pg"
START_TIMEOUT_S = 60
_SOCKET_MAX = 90  # sun_path holds 107 bytes on Linux, minus "/.s.PGSQL.5432"


def pg_bin_dir() -> Path:
    """The `bin` folder of the pgserver wheel, without importing pgserver (its import
    sets up runtime folders and warns when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "database.url",
            "not set, and the embedded PostgreSQL is not installed: "
            "pip install 'asterisk-crm-bridge[embedded]' or set CRM_BRIDGE_DATABASE_URL",
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (folder / "pg_ctl").exists():
        raise ConfigError("database.url", f"pgserver has no server binaries in {folder}")
    return folder


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who PostgreSQL runs as: the current user, or a dedicated one when we are root."""

    uid: int | None = None
    gid: int | None = None
    name: str = ""

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _run_as() -> RunAs:
    if os.geteuid() != 0:
        return RunAs()
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        created = False
        if useradd:
            result = subprocess.run(
                [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                capture_output=True,
                text=True,
                check=False,
            )
            created = result.returncode == 0 or "already exists" in result.stderr
        try:
            entry = pwd.getpwnam(PG_USER) if created else pwd.getpwnam("nobody")
        except KeyError as exc:
            raise ConfigError(
                "database.url",
                "running as root, and no unprivileged user could be found or created to run "
                "the embedded PostgreSQL; set CRM_BRIDGE_DATABASE_URL or run as a normal user",
            ) from exc
    log.info("running as root: the embedded PostgreSQL runs as user %s", entry.pw_name)
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _ensure_traversable(path: Path, who: RunAs) -> None:
    """Give `o+x` to each ancestor of `path` that `who` could not otherwise enter."""
    if who.uid is None:
        return
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == who.uid:
            continue
        if st.st_gid == who.gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        folder.chmod(st.st_mode | stat.S_IXOTH)
        log.warning(
            "gave 'search' permission to others on %s so that user %s can reach the "
            "embedded PostgreSQL (set CRM_BRIDGE_DATABASE_URL to avoid this)",
            folder,
            who.name,
        )


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class Postmaster:
    pid: int
    socket_dir: str
    port: int
    status: str


def read_postmaster(pgdata: Path) -> Postmaster | None:
    """postmaster.pid of a running server in `pgdata`, else None (absent, stale, unreadable)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        info = Postmaster(int(lines[0]), lines[4], int(lines[3]), lines[7].strip())
    except (OSError, ValueError, IndexError):
        return None
    return info if _pid_alive(info.pid) else None


class EmbeddedPostgres:
    """One PostgreSQL data folder: start (or join) its server, and stop it if we own it."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root.expanduser().resolve()
        self.pgdata = self.root / "pgdata"
        self.owner_file = self.root / "pg.owner"
        self.owned = False
        self.url = ""
        self._run_as = RunAs()
        self._socket_dir: Path | None = None

    # --- blocking parts, run in a thread ------------------------------------------------------
    def _pg(self, tool: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        command = [str(pg_bin_dir() / tool), *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=str(self.root),
            stdin=subprocess.DEVNULL,
            # Own session: a Ctrl-C in the terminal reaches the demo, which then stops the
            # server in order, instead of reaching PostgreSQL directly.
            start_new_session=True,
            **self._run_as.kwargs(),
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise CrmUnavailable(f"embedded PostgreSQL: {tool} failed: {' / '.join(detail)}")

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._run_as = _run_as()
        who = self._run_as
        if who.uid is not None:
            bins = pg_bin_dir()
            _ensure_traversable(bins, who)
            _ensure_traversable(bins.parent / "lib", who)
            _ensure_traversable(bins.parent / "share", who)
            _ensure_traversable(self.root, who)
        if not self.pgdata.exists():
            self.pgdata.mkdir(mode=0o700)
        if who.uid is not None and self.pgdata.stat().st_uid != who.uid:
            for path in [self.pgdata, *self.pgdata.rglob("*")]:
                os.chown(path, who.uid, who.gid or -1, follow_symlinks=False)
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising the embedded PostgreSQL in %s", self.pgdata)
            self._pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            )

    def _socket_folder(self) -> Path:
        if len(str(self.pgdata)) <= _SOCKET_MAX:
            return self.pgdata
        # A deep folder would overflow the socket path: use a short private one instead.
        folder = Path(tempfile.mkdtemp(prefix="crm-bridge-pg-"))
        if self._run_as.uid is not None:
            os.chown(folder, self._run_as.uid, self._run_as.gid or -1)
        return folder

    def _start_blocking(self) -> None:
        self._prepare()
        running = read_postmaster(self.pgdata)
        if running is not None:
            owner = self._read_owner()
            if owner is not None and _pid_alive(owner):
                # (this very process too: the instance that started it will stop it)
                log.info("using the embedded PostgreSQL already run by process %d", owner)
            else:
                log.info("adopting an embedded PostgreSQL left running (pid %d)", running.pid)
                self._own()
            self.url = self._url(running.socket_dir, running.port)
            self._wait_ready()
            return
        self._socket_dir = self._socket_folder()
        # pg_ctl hands -o to a shell: quote the folder (spaces, quotes in the path)
        options = f"-h '' -k {shlex.quote(str(self._socket_dir))} -p 5432"
        log.info("starting the embedded PostgreSQL (%s)", self.pgdata)
        self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
            timeout=START_TIMEOUT_S + 10,
        )
        self._own()
        self.url = self._url(str(self._socket_dir), 5432)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = read_postmaster(self.pgdata)
            if info is not None and info.status == "ready":
                return
            time.sleep(0.1)
        raise CrmUnavailable(f"embedded PostgreSQL in {self.pgdata} did not become ready")

    def _stop_blocking(self) -> None:
        if not self.owned:
            return
        self.owned = False
        if read_postmaster(self.pgdata) is not None:
            log.info("stopping the embedded PostgreSQL")
            try:
                self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", timeout=60)
            except (CrmUnavailable, subprocess.TimeoutExpired) as exc:
                log.warning("pg_ctl stop failed (%s); terminating the server", exc)
                info = read_postmaster(self.pgdata)
                if info is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(info.pid, 15)
        with contextlib.suppress(FileNotFoundError):
            if self._read_owner() == os.getpid():
                self.owner_file.unlink()
        if self._socket_dir is not None and self._socket_dir != self.pgdata:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def _own(self) -> None:
        self.owner_file.write_text(f"{os.getpid()}\n")
        self.owned = True

    def _read_owner(self) -> int | None:
        try:
            return int(self.owner_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _url(socket_dir: str, port: int) -> str:
        return f"postgresql://postgres@/postgres?host={quote(socket_dir, safe='/')}&port={port}"

    # --- async API ---------------------------------------------------------------------------
    async def start(self) -> str:
        try:
            await asyncio.to_thread(self._start_blocking)
        except subprocess.TimeoutExpired as exc:
            raise CrmUnavailable(f"embedded PostgreSQL did not start: {exc}") from exc
        except OSError as exc:
            raise CrmUnavailable(f"embedded PostgreSQL could not start: {exc}") from exc
        return self.url

    async def stop(self) -> None:
        # Shielded: a Ctrl-C arriving while we stop must not leave the server running.
        await asyncio.shield(asyncio.to_thread(self._stop_blocking))


@asynccontextmanager
async def database_url(config: Config) -> AsyncIterator[str]:
    if config.database.url:
        yield config.database.url
        return
    server = EmbeddedPostgres(DEFAULT_ROOT)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()
