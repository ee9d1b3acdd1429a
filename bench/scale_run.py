"""Issue 18's scale run: several simulated PBXs at a peak, two bridges, one killed mid-run.

    .venv/bin/python bench/scale_run.py [--pbxs 2] [--agents 500] [--rate 100] [--seconds 60]
                                        [--down-s 10] [--quick] [--json out.json]

A throw-away database on CRM_BRIDGE_TEST_PG (default postgresql://postgres@127.0.0.1:5432/
postgres) is seeded with customers (a tenth tagged `vip`, routed to the `senior` queue),
`--pbxs` x `--agents` agents (each with its PBX's device) and a rule. Each PBX is a simulator
in its own process (`bench/scale_sim.py`), numbering its calls from the same epoch as the
others (their Linkedids collide). Two real `crm-bridge run` processes share the database and
the `[[pbx]]` entries; each links to every PBX. Every agent's page holds a websocket to one
instance (dealt round-robin), and each call is routed by FastAGI against one instance in turn,
failing over to the other as the dialplan does.

Calls arrive at random (Poisson) at `--rate` per second in all for `--seconds`. After a third
of the run the lease holder (read from /healthz) is SIGKILLed and started again `--down-s`
later. When every call has ended and the records are written, it prints:
- calls placed vs `call_records` rows: lost (placed, no row), rows of no placed call, and
  per (PBX, Linkedid) whether any call has a row under another id;
- route answers while an instance was down (from the kill until it is back up): how many,
  who answered, p99 latency, whether all were within `[agi] budget_ms`; and for the whole run;
- the killed instance's agents: time from the kill until they were welcomed by the survivor
  and until their next call pop (p50/max);
- how long until the survivor held the lease;
- RSS (peak) and CPU seconds per instance (each life of the killed one), the simulators'
  CPU, and the load average (others may be using the machine: read the figures with it).
Nothing is asserted. `--json PATH` writes the same report as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from scale_pages import Page, spread
from scale_sim import FIRST_EXT, SECRET

from bridge.crm.agents import hash_token
from bridge.db.migrate import apply_migrations
from bridge.db.pool import connect
from bridge.routing.rules import make_rule
from bridge.routing.store import RuleStore

ADMIN = os.environ.get("CRM_BRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HERE = Path(__file__).resolve().parent
NAMES = ("east", "west", "north", "south", "centre", "coast", "hills", "lakes")
EPOCH = 1_700_000_000
CUSTOMERS = 5000
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the database -------------------------------------------------------------------------
async def seed(url: str, pbxs: list[str], agents: int) -> tuple[dict[str, str], list[list[str]]]:
    """Customers, agents and the vip rule; returns ({agent: token}, callers for the PBXs)."""
    conn = await connect(url)
    try:
        await apply_migrations(conn)
        customers = [
            (f"cust-{i}", f"Customer {i}", f"+1555{2000000 + i:07d}") for i in range(CUSTOMERS)
        ]
        await conn.executemany(
            "INSERT INTO customers (id, name) VALUES ($1, $2)", [(c, n) for c, n, _ in customers]
        )
        await conn.executemany(
            "INSERT INTO customer_phones (e164, customer_id) VALUES ($1, $2)",
            [(p, c) for c, _, p in customers],
        )
        await conn.executemany(
            "INSERT INTO customer_tags (customer_id, tag) VALUES ($1, 'vip')",
            [(c,) for c, _, _ in customers[::10]],
        )
        tokens: dict[str, str] = {}
        rows = []
        for pbx in pbxs:
            for i in range(agents):
                ext = str(FIRST_EXT + i)
                agent = f"{pbx}-{ext}"
                tokens[agent] = secrets.token_urlsafe(32)
                rows.append((agent, f"{pbx} {ext}", "agent", ext, hash_token(tokens[agent]), pbx))
        await conn.executemany(
            "INSERT INTO agents (id, name, role, device, token_hash, pbx)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        await RuleStore(pool).add_rule(make_rule("vip", "senior", tags_any="vip"))
    finally:
        await pool.close()
    # callers: the customers, and one in five calls from a number the CRM does not know
    callers = [[p, n] for _, n, p in customers] + [
        [f"+1555{3000000 + i:07d}", ""] for i in range(CUSTOMERS // 4)
    ]
    return tokens, callers


# --- the bridges --------------------------------------------------------------------------
@dataclass
class Life:
    """One process lifetime of an instance: its CPU and peak RSS, from /proc/<pid>."""

    pid: int
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    born: float = field(default_factory=time.time)
    last: float = field(default_factory=time.time)  # the last sample that found it alive

    def sample(self) -> None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            self.cpu_s = (int(stat[11]) + int(stat[12])) / TICKS  # utime, stime
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
            self.last = time.time()
        except (OSError, IndexError, ValueError):
            pass  # gone: keep the last sample


@dataclass
class Bridge:
    """One `crm-bridge run` process, restartable with the same id, ports and spool."""

    id: str
    folder: Path
    database_url: str
    pbx_ports: dict[str, int]
    budget_ms: int
    takeover_s: float
    pool_size: int
    profile: bool = False
    agi_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    pops_port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    lives: list[Life] = field(default_factory=list)

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        entries = "".join(
            f'[[pbx]]\nname = "{name}"\nreconcile_s = 0\n'
            f'[pbx.ami]\nport = {port}\nsecret = "{SECRET}"\n'
            for name, port in self.pbx_ports.items()
        )
        config = self.folder / "bridge.toml"
        config.write_text(
            f'[database]\nurl = "{self.database_url}"\npool_size = {self.pool_size}\n'
            f'[cluster]\ninstance_id = "{self.id}"\ntakeover_s = {self.takeover_s}\n'
            f'[agi]\nhost = "127.0.0.1"\nport = {self.agi_port}\nbudget_ms = {self.budget_ms}\n'
            f'[http]\nhost = "127.0.0.1"\nport = {self.http_port}\n'
            f'[pops]\nhost = "127.0.0.1"\nport = {self.pops_port}\nmax_connections = 4096\n'
            f'[records]\nspool_dir = "{self.folder / "spool"}"\n'
            '[log]\nlevel = "warning"\n'
            '[ami]\nusername = "bridge"\nreconnect_max_s = 1.0\n' + entries,
            encoding="utf-8",
        )
        return config

    def profiler(self) -> list[str]:
        """`--profile`: each life under cProfile, its stats next to its log (a SIGKILLed
        life writes none)."""
        if not self.profile:
            return []
        return ["-m", "cProfile", "-o", str(self.folder / f"profile-{len(self.lives) + 1}.out")]

    async def start(self) -> None:
        config = self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
        with (self.folder / "bridge.log").open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *self.profiler(), "-m", "bridge", "--config", str(config), "run",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                cwd=self.folder,
            )  # fmt: skip
        self.lives.append(Life(self.proc.pid))

    def kill(self) -> None:
        assert self.proc is not None
        self.lives[-1].sample()
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.lives[-1].sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with http.get(f"http://127.0.0.1:{self.http_port}/healthz") as resp:
                body = await resp.json()
                return body if isinstance(body, dict) else None
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError):
            return None

    async def until_up(
        self, http: aiohttp.ClientSession, deadline_s: float = 120
    ) -> dict[str, Any]:
        """/healthz until every PBX's AMI link is up."""
        async with asyncio.timeout(deadline_s):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.log_tail()
                body = await self.health(http)
                if body is not None and linked(body, list(self.pbx_ports)):
                    return body
                await asyncio.sleep(0.1)

    def log_tail(self) -> str:
        path = self.folder / "bridge.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def linked(body: dict[str, Any], pbxs: list[str]) -> bool:
    ami = body.get("components", {}).get("ami", {})
    states = ami.get("detail", {}).get("pbx", {})
    return all(states.get(name) == "up" for name in pbxs)


def role(body: dict[str, Any] | None) -> str | None:
    return ((body or {}).get("instance") or {}).get("role")


# --- the simulated PBXs -------------------------------------------------------------------
@dataclass
class Sim:
    name: str
    proc: asyncio.subprocess.Process
    out: Path
    ami_port: int = 0
    life: Life | None = None


async def start_sim(
    name: str, args: argparse.Namespace, agi_ports: list[int], callers: Path, folder: Path, n: int
) -> Sim:
    out = folder / f"sim-{name}.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "scale_sim.py"), "--name", name,
        "--agi-ports", ",".join(map(str, agi_ports)), "--agents", str(args.agents),
        "--rate", str(args.rate / args.pbxs), "--seconds", str(args.seconds),
        "--epoch", str(EPOCH), "--seed", str(args.seed + n), "--callers", str(callers),
        "--out", str(out),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=(folder / f"sim-{name}.log").open("ab"),
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    if not line.startswith("ready "):
        raise RuntimeError(f"simulator {name} did not start: {line!r}")
    return Sim(name, proc, out, int(line.split()[1]), Life(proc.pid))


# --- the run --------------------------------------------------------------------------------
@dataclass
class Kill:
    victim: str = ""
    at: float = 0.0
    takeover_s: float | None = None  # until the survivor reported itself leader
    back_at: float = 0.0  # the victim was linked to every PBX again (or the bench gave up)
    back: bool = False


async def sampler(procs: list[Bridge], sims: list[Sim], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for bridge in procs:
            if bridge.lives:
                bridge.lives[-1].sample()
        for sim in sims:
            if sim.life is not None:
                sim.life.sample()
        await asyncio.sleep(0.5)


# The worst event-loop lateness each instance's /healthz showed (`event_loop.lag_max_ms`).
LOOP_LAG_WORST_MS: dict[str, float] = {}


async def health_log(bridges: list[Bridge], folder: Path, stop: asyncio.Event) -> None:
    """Every instance's /healthz each 2 s, to `healthz.jsonl` beside the logs (`--keep`);
    the worst event-loop lateness seen in `LOOP_LAG_WORST_MS`."""
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        with (folder / "healthz.jsonl").open("a", encoding="utf-8") as out:
            while not stop.is_set():
                for bridge in bridges:
                    body = await bridge.health(http)
                    lag = (
                        (((body or {}).get("components") or {}).get("event_loop") or {})
                        .get("detail", {})
                        .get("lag_max_ms")
                    )
                    if isinstance(lag, int | float):
                        worst = max(LOOP_LAG_WORST_MS.get(bridge.id, 0.0), float(lag))
                        LOOP_LAG_WORST_MS[bridge.id] = worst
                    out.write(json.dumps({"at": time.time(), "id": bridge.id, "body": body}) + "\n")
                out.flush()
                await asyncio.sleep(2)


async def kill_and_restart(
    bridges: list[Bridge],
    http: aiohttp.ClientSession,
    after_s: float,
    down_s: float,
    deadline: float,
) -> Kill:
    await asyncio.sleep(after_s)
    bodies = [await b.health(http) for b in bridges]
    leaders = [b for b, body in zip(bridges, bodies, strict=True) if role(body) == "leader"]
    victim = leaders[0] if leaders else bridges[0]
    survivor = next(b for b in bridges if b is not victim)
    kill = Kill(victim.id)
    victim.kill()
    kill.at = time.time()
    while time.time() - kill.at < max(down_s, 60):
        if role(await survivor.health(http)) == "leader":
            kill.takeover_s = time.time() - kill.at
            break
        await asyncio.sleep(0.05)
    assert victim.proc is not None
    await victim.proc.wait()
    await asyncio.sleep(max(0.0, kill.at + down_s - time.time()))
    await victim.start()
    try:
        await victim.until_up(http, deadline_s=max(300.0, deadline - time.time()))
        kill.back = True
    except TimeoutError:
        print(f"{victim.id} restarted but not linked to every PBX in time", file=sys.stderr)
    kill.back_at = time.time()
    return kill


async def records_settled(
    url: str, bridges: list[Bridge], http: aiohttp.ClientSession, expected: int, quiet_s: float
) -> None:
    """Until every placed call has a row, or for `quiet_s` nothing moved: the row count, each
    instance's spool and the time of the last AMI event it read (an instance that does not
    answer /healthz is still busy). At most ten minutes."""
    conn = await connect(url)
    try:
        last: object = None
        began = since = time.time()
        while time.time() - since < quiet_s and time.time() - began < 600:
            rows = int(await conn.fetchval("SELECT count(*) FROM call_records"))
            state: list[object] = [rows]
            pending = 0
            for bridge in bridges:
                body = await bridge.health(http)
                if body is None:
                    state.append(time.time())  # not answering: busy, not settled
                    continue
                components = body.get("components", {})
                pending += int(
                    components.get("records", {}).get("detail", {}).get("spool_pending", 0)
                )
                links = components.get("ami", {}).get("detail", {}).get("links", {})
                state.append(pending)
                state.append(sorted(str(v.get("last_event_at")) for v in links.values()))
            if rows >= expected and pending == 0:
                return
            if state != last:
                last, since = state, time.time()
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def run(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    names = list(NAMES[: args.pbxs])
    load_before = os.getloadavg()
    tokens, callers = await seed(url, names, args.agents)
    callers_file = folder / "callers.json"
    callers_file.write_text(json.dumps(callers), encoding="utf-8")
    agi_ports = [free_port(), free_port()]
    sims = [
        await start_sim(name, args, agi_ports, callers_file, folder, n)
        for n, name in enumerate(names)
    ]
    pbx_ports = {sim.name: sim.ami_port for sim in sims}
    bridges = [
        Bridge(
            f"bridge-{x}",
            folder / f"bridge-{x}",
            url,
            pbx_ports,
            args.budget_ms,
            args.takeover_s,
            args.pool_size,
            args.profile,
            agi_port=port,
        )
        for x, port in zip("ab", agi_ports, strict=True)
    ]
    stop = asyncio.Event()
    sample_task = asyncio.ensure_future(sampler(bridges, sims, stop))
    health_task = asyncio.ensure_future(health_log(bridges, folder, stop))
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            await bridges[0].start()
            await bridges[0].until_up(http)
            await bridges[1].start()
            await bridges[1].until_up(http)
            pages = spread(tokens, [b.pops_port for b in bridges])
            page_tasks = [asyncio.ensure_future(p.run(stop)) for p in pages]
            async with asyncio.timeout(120):
                for page in pages:
                    await page.welcomed.wait()
            print(f"{len(pages)} pages welcomed; calls start", file=sys.stderr)
            for sim in sims:
                assert sim.proc.stdin is not None
                sim.proc.stdin.write(b"go\n")
                await sim.proc.stdin.drain()
            began = time.time()
            kill = await kill_and_restart(
                bridges, http, args.seconds / 3, args.down_s, began + args.seconds
            )
            print(
                f"killed {kill.victim}, back after {kill.back_at - kill.at:.1f} s", file=sys.stderr
            )
            for sim in sims:  # its calls have ended; it still serves AMI
                assert sim.proc.stdout is not None
                line = await sim.proc.stdout.readline()
                if not line.startswith(b"done"):
                    raise RuntimeError(f"simulator {sim.name} failed: {line!r}")
            calls_done = time.time()
            placed = [json.loads(sim.out.read_text("utf-8")) for sim in sims]
            total = sum(p["placed"] for p in placed)
            await records_settled(url, bridges, http, total, args.settle_s)
            settled = time.time()
            for sim in sims:
                assert sim.proc.stdin is not None
                sim.proc.stdin.write(b"stop\n")
                await sim.proc.stdin.drain()
                await sim.proc.wait()
            stop.set()
            await asyncio.gather(*page_tasks, return_exceptions=True)
        finally:
            stop.set()
            for bridge in bridges:
                await bridge.stop()
            for sim in sims:
                if sim.proc.returncode is None:
                    sim.proc.kill()
                    await sim.proc.wait()
            await sample_task
            await health_task
    report = await summarise(args, url, placed, bridges, pages, kill)
    report["timeline"] = {
        "calls_s": round(calls_done - began, 1),
        "records_settled_after_calls_s": round(settled - calls_done, 1),
        "sim_arrivals_s": [round(p["arrivals_s"], 1) for p in placed],
        "sim_drain_s": [round(p["drain_s"], 1) for p in placed],
    }
    report["simulators_cpu_s"] = {p["name"]: round(p["cpu_s"], 1) for p in placed}
    report["simulators_loop_lag"] = {p["name"]: p.get("loop_lag", {}) for p in placed}
    report["bridges_loop_lag_worst_ms"] = dict(LOOP_LAG_WORST_MS)
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return report


async def summarise(
    args: argparse.Namespace,
    url: str,
    placed: list[dict[str, Any]],
    bridges: list[Bridge],
    pages: list[Page],
    kill: Kill,
) -> dict[str, Any]:
    conn = await connect(url)
    try:
        rows = await conn.fetch("SELECT call_id, outcome FROM call_records")
    finally:
        await conn.close()
    ids = {r["call_id"] for r in rows}
    expected = {f"{p['name']}:{c['linkedid']}" for p in placed for c in p["calls"]}
    lost = sorted(expected - ids)
    unknown = sorted(ids - expected)
    # a call recorded twice under different ids: its Linkedid, bare or with another prefix
    by_linkedid: dict[str, list[str]] = {}
    for call_id in ids:
        by_linkedid.setdefault(call_id.rpartition(":")[2], []).append(call_id)
    twice = sorted(
        c for c in unknown if any(x in expected for x in by_linkedid[c.rpartition(":")[2]])
    )
    routes = [trip for p in placed for trip in p["routes"].values()]
    budget = args.budget_ms
    index = {b.id: n for n, b in enumerate(bridges)}
    victim = index.get(kill.victim, 0)

    def route_stats(trips: list[dict[str, Any]]) -> dict[str, Any]:
        answered = [t for t in trips if t["answered_by"] >= 0]
        latencies = [t["answer_ms"] for t in answered]
        return {
            "count": len(trips),
            "answered_by": {b: sum(t["answered_by"] == n for t in trips) for b, n in index.items()},
            "unanswered": len(trips) - len(answered),
            "failed_over": sum(t["failed_over"] for t in trips),
            "p50_ms": round(pct(latencies, 0.5), 1),
            "p99_ms": round(pct(latencies, 0.99), 1),
            "max_ms": round(max(latencies, default=float("nan")), 1),
            "over_budget": sum(x > budget for x in latencies),
            "degraded": sum(t["degraded"] for t in answered),
        }

    down = [t for t in routes if kill.at <= t["at"] <= kill.back_at]
    killed_pages = [p for p in pages if p.ports[0] == bridges[victim].pops_port]
    welcomed = [p.welcomed_at - kill.at for p in killed_pages if p.welcomed_at is not None]
    popped = [p.popped_at - kill.at for p in killed_pages if p.popped_at is not None]
    in_call = [p for p in killed_pages if p.live_at_loss]
    caught_up = [p.popped_at - kill.at for p in in_call if p.popped_at is not None]
    placed_count = sum(p["placed"] for p in placed)
    # lost calls by when they arrived: tenths of the run
    arrived = {
        f"{p['name']}:{uid}": trip["at"] - p["began"]
        for p in placed
        for uid, trip in p["routes"].items()
    }
    lost_by_tenth = [0] * 10
    for call_id in lost:
        tenth = int(10 * arrived.get(call_id, 0.0) / max(args.seconds, 1e-9))
        lost_by_tenth[min(9, max(0, tenth))] += 1
    return {
        "config": {
            "pbxs": args.pbxs,
            "agents_per_pbx": args.agents,
            "rate": args.rate,
            "seconds": args.seconds,
            "down_s": args.down_s,
            "budget_ms": budget,
            "takeover_s": args.takeover_s,
            "pool_size": args.pool_size,
        },
        "calls": {
            "placed": placed_count,
            "sim_failures": sum(p["failed"] for p in placed),
            "records": len(ids),
            "lost": len(lost),
            "lost_examples": lost[:5],
            "lost_by_tenth_of_the_run": lost_by_tenth,
            "rows_of_no_placed_call": len(unknown),
            "recorded_twice": len(twice),
            "outcomes": {
                o: sum(r["outcome"] == o for r in rows)
                for o in ("answered", "abandoned", "unanswered")
            },
        },
        "routes_while_down": {"window_s": round(kill.back_at - kill.at, 1), **route_stats(down)},
        "routes_all": route_stats(routes),
        "kill": {
            "victim": kill.victim,
            "after_s": round(args.seconds / 3, 1),
            "lease_takeover_s": None if kill.takeover_s is None else round(kill.takeover_s, 2),
            "back_up_after_s": round(kill.back_at - kill.at, 1) if kill.back else None,
        },
        "victim_pages": {
            "pages": len(killed_pages),
            "welcomed_again": len(welcomed),
            "welcome_p50_s": round(pct(welcomed, 0.5), 2),
            "welcome_max_s": round(max(welcomed, default=float("nan")), 2),
            "in_a_call_at_the_kill": len(in_call),
            "caught_up": len(caught_up),
            "catch_up_p50_s": round(pct(caught_up, 0.5), 2),
            "catch_up_max_s": round(max(caught_up, default=float("nan")), 2),
            "popped_again": len(popped),
            "pop_p50_s": round(pct(popped, 0.5), 2),
            "pop_max_s": round(max(popped, default=float("nan")), 2),
        },
        "pops_received": dict(sum((p.received for p in pages), start=Counter())),
        "instances": {
            b.id: [
                {
                    "pid": life.pid,
                    "wall_s": round(life.last - life.born, 1),
                    "cpu_s": round(life.cpu_s, 1),
                    "peak_rss_mb": round(life.peak_rss_mb, 1),
                }
                for life in b.lives
            ]
            for b in bridges
        },
    }


def show(report: dict[str, Any]) -> None:
    c, k, d, a, v = (
        report["calls"], report["kill"], report["routes_while_down"], report["routes_all"],
        report["victim_pages"],
    )  # fmt: skip
    cfg = report["config"]
    print(
        f"scale run: {cfg['pbxs']} PBXs x {cfg['agents_per_pbx']} agents, {cfg['rate']:g} calls/s"
        f" for {cfg['seconds']:g} s, budget {cfg['budget_ms']} ms, takeover_s {cfg['takeover_s']:g}"
    )
    print(
        f"calls: placed {c['placed']}, records {c['records']}, lost {c['lost']}, rows of no"
        f" placed call {c['rows_of_no_placed_call']}, recorded twice {c['recorded_twice']}"
        f" (simulator failures {c['sim_failures']}; outcomes {c['outcomes']});"
        f" lost by tenth of the run {c['lost_by_tenth_of_the_run']}"
    )
    print(
        f"kill: {k['victim']} (the leader) SIGKILLed at {k['after_s']} s; survivor leader after"
        f" {k['lease_takeover_s']} s; victim linked again after {k['back_up_after_s']} s"
    )
    for label, r in (("while down", d), ("whole run", a)):
        print(
            f"routes {label}: {r['count']} (answered by {r['answered_by']}, unanswered"
            f" {r['unanswered']}, failed over {r['failed_over']}); p50 {r['p50_ms']} ms,"
            f" p99 {r['p99_ms']} ms, max {r['max_ms']} ms; over budget {r['over_budget']},"
            f" degraded (CRM late, default route) {r['degraded']}"
        )
    print(
        f"victim's pages: {v['pages']}; welcomed by the survivor {v['welcomed_again']}"
        f" (p50 {v['welcome_p50_s']} s, max {v['welcome_max_s']} s after the kill);"
        f" {v['in_a_call_at_the_kill']} were in a call: {v['caught_up']} got it back"
        f" (p50 {v['catch_up_p50_s']} s, max {v['catch_up_max_s']} s); any next pop"
        f" {v['popped_again']} (p50 {v['pop_p50_s']} s, max {v['pop_max_s']} s)"
    )
    print(f"pops received: {report['pops_received']}")
    for name, lives in report["instances"].items():
        for n, life in enumerate(lives):
            print(
                f"{name} life {n + 1}: CPU {life['cpu_s']} s in {life['wall_s']} s,"
                f" peak RSS {life['peak_rss_mb']} MB"
            )
    print(f"simulators' CPU s: {report['simulators_cpu_s']}; timeline {report['timeline']}")
    print(f"simulators' event loop, late by: {report['simulators_loop_lag']}")
    print(f"bridges' event loop, worst lateness in /healthz: {report['bridges_loop_lag_worst_ms']}")
    la = report["load_average"]
    print(f"load average before {la['before']}, after {la['after']} (2 cores, shared)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pbxs", type=int, default=2)
    parser.add_argument("--agents", type=int, default=500, help="per PBX")
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second in all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--down-s", type=float, default=10.0)
    parser.add_argument("--budget-ms", type=int, default=300)
    parser.add_argument("--takeover-s", type=float, default=3.0)
    parser.add_argument("--pool-size", type=int, default=3, help="per instance (+1 lease)")
    parser.add_argument("--settle-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 PBXs x 50 agents, 10/s, 20 s")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true", help="run the bridges under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    args = parser.parse_args()
    if args.quick:
        args.pbxs, args.agents, args.rate, args.seconds, args.down_s = 2, 50, 10.0, 20.0, 5.0
    args.pbxs = max(1, min(args.pbxs, len(NAMES)))
    random.seed(args.seed)
    name = f"crmbridge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN)  # closed during the run: 10 connections at most
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN.rpartition("/")[0] + "/" + name
    folder = Path(tempfile.mkdtemp(prefix="scale-run-"))
    try:
        report = await run(args, url, folder)
    except BaseException:
        print(f"logs kept: {folder}", file=sys.stderr)
        raise
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    if args.keep or args.profile:
        print(f"logs kept: {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    show(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
