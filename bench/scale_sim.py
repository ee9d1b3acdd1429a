"""One simulated PBX of `bench/scale_run.py`, in its own process (the scale run's child).

    .venv/bin/python bench/scale_sim.py --name east --agi-ports 4573,4574 --rate 50 ...

Serves AMI on a free port (printed as `ready <port>` on stdout), waits for `go` on stdin,
then places calls arriving at random (Poisson, `--rate` per second) for `--seconds`, waits
for them all to end and writes what happened as JSON to `--out` (then prints `done`): every
call placed (its Linkedid and outcome) and every FastAGI route round trip (which bridge was
asked first, which answered, how long it took). It keeps serving AMI until the next line
on stdin.

Routing follows the dialplan's failover (`dialplan/extensions.conf`,
`[crm-bridge-agi-failover]`): the call asks one bridge (they alternate, as two PBXs
configured with swapped `BRIDGE_AGI`/`BRIDGE_AGI_2` would spread them), and asks the
other when the first fails (AGISTATUS FAILURE) or set no `BRIDGE_QUEUE`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import bridge.sim.call as sim_call
from bridge.alerts.loop_lag import LoopLag
from bridge.sim import AmiServer, AmiUser, CallPlan, RealClock, SimAgent, SimConfig, SimPbx
from bridge.sim.agi_client import run_agi
from bridge.sim.model import SimQueue, Transfer

SECRET = "scale-secret"
FIRST_EXT = 1000
SENIOR_SHARE = 0.2  # the last fifth of the agents answer the `senior` queue (VIP callers)


@dataclass(slots=True)
class RouteTrip:
    """One call's FastAGI routing, as the dialplan ran it."""

    at: float  # wall time the first session began
    first: int  # index of the bridge asked first
    answered_by: int  # index of the bridge whose answer set BRIDGE_QUEUE; -1: none did
    answer_ms: float  # from the answering session's start to its end
    total_ms: float  # from the first session's start to the last one's end
    failed_over: bool
    degraded: bool  # the answer said BRIDGE_DEGRADED=1 (the CRM was late: default route)


Answer = Callable[[str], Awaitable[bytes]]


class FailoverRouter:
    """Replaces the simulator's single FastAGI session by the dialplan's two-server failover."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.trips: dict[str, RouteTrip] = {}  # by the caller channel's Uniqueid (= Linkedid)
        self._turn = 0

    async def run(
        self,
        host: str,
        port: int,
        env: Iterable[tuple[str, str]],
        answer: Answer,
        *,
        timeout_s: float = 10.0,
    ) -> str:
        del port  # the bench chooses the bridge
        env = list(env)
        uniqueid = dict(env).get("uniqueid", "")
        first = self._turn % len(self.ports)
        self._turn += 1
        began = time.time()
        status = "FAILURE"
        for attempt in range(len(self.ports)):
            index = (first + attempt) % len(self.ports)
            said: dict[str, str] = {}

            async def watched(line: str, said: dict[str, str] = said) -> bytes:
                words = line.split(None, 3)
                if len(words) >= 4 and words[:2] == ["SET", "VARIABLE"]:
                    said[words[2]] = words[3].strip('"')
                return await answer(line)

            started = time.time()
            status = await run_agi(host, self.ports[index], env, watched, timeout_s=timeout_s)
            ended = time.time()
            if status == "SUCCESS" and said.get("BRIDGE_QUEUE"):
                self.trips[uniqueid] = RouteTrip(
                    began,
                    first,
                    index,
                    (ended - started) * 1000,
                    (ended - began) * 1000,
                    attempt > 0,
                    said.get("BRIDGE_DEGRADED") == "1",
                )
                return status
        self.trips[uniqueid] = RouteTrip(
            began, first, -1, 0.0, (time.time() - began) * 1000, len(self.ports) > 1, False
        )
        return status


def sim_config(name: str, agents: int, agi_port: int, epoch: int) -> SimConfig:
    exts = [str(FIRST_EXT + i) for i in range(agents)]
    seniors = max(1, int(agents * SENIOR_SHARE))
    return SimConfig(
        technology="PJSIP",
        agents=tuple(SimAgent(ext, f"{name} {ext}") for ext in exts),
        queues=(
            SimQueue("support", "rrmemory", tuple(exts[:-seniors])),
            SimQueue("senior", "rrmemory", tuple(exts[-seniors:])),
        ),
        fallback_queue="support",
        agi_port=agi_port,
        agi_script=f"route?pbx={name}",
        uniqueid_epoch=epoch,
        ami_users=(AmiUser("bridge", SECRET),),
    )


def random_plan(rng: random.Random, callers: list[tuple[str, str]], did: str) -> CallPlan:
    """A peak-hour call: rings 1-3 s, talks 3-10 s (8.5 s handled on average: 1,000 agents
    at 100 calls/s are about 85 % busy); 5 % abandon, 2 % are transferred."""
    number, name = rng.choice(callers)
    abandon = rng.uniform(2.0, 8.0) if rng.random() < 0.05 else None
    transfer = None
    if abandon is None and rng.random() < 0.02:
        transfer = Transfer(after_s=rng.uniform(1.0, 3.0), to_ext="", talk_s=rng.uniform(2, 5))
    return CallPlan(
        caller=number,
        caller_name=name,
        did=did,
        ring_s=rng.uniform(1.0, 3.0),
        talk_s=rng.uniform(3.0, 10.0),
        abandon_after_s=abandon,
        transfer=transfer,
    )


async def place_calls(
    pbx: SimPbx, rate: float, seconds: float, callers: list[tuple[str, str]], seed: int
) -> int:
    """Poisson arrivals at `rate` per second for `seconds`; returns how many were placed."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    due = start
    placed = 0
    while due - start < seconds:
        pbx.place_call(random_plan(rng, callers, pbx.config.did), at=time.time())
        placed += 1
        due += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, due - loop.time()))
    return placed


def lateness(probe: LoopLag) -> dict[str, float]:
    """How late this process's event loop woke the probe's 5 ms timer: what each of a
    FastAGI session's round trips waits on the simulator's side (a busy PBX answers late)."""
    lags = sorted(lag * 1000 for lag in probe.lags()) or [0.0]
    return {
        "p50_ms": round(lags[len(lags) // 2], 1),
        "p99_ms": round(lags[int(len(lags) * 0.99)], 1),
        "max_ms": round(lags[-1], 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--agi-ports", required=True, help="the bridges' FastAGI ports, a,b")
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--epoch", type=int, default=1_700_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--callers", type=Path, required=True, help="JSON [[number, name], ...]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    ports = [int(p) for p in args.agi_ports.split(",")]
    router = FailoverRouter(ports)
    sim_call.run_agi = router.run  # type: ignore[assignment]  # the dialplan's failover
    callers = [(str(n), str(c)) for n, c in json.loads(args.callers.read_text("utf-8"))]
    pbx = SimPbx(sim_config(args.name, args.agents, ports[0], args.epoch), clock=RealClock())
    async with AmiServer(pbx, outbox_limit=200_000) as ami:
        print(f"ready {ami.port}", flush=True)
        loop = asyncio.get_running_loop()
        go = await loop.run_in_executor(None, sys.stdin.readline)
        if not go.startswith("go"):
            return
        began = time.time()
        cpu0 = time.process_time()
        lag = LoopLag(interval_s=0.005, window_s=24 * 3600)  # every sample of the run
        await lag.start()
        placed = await place_calls(pbx, args.rate, args.seconds, callers, args.seed)
        arrivals_done = time.time()
        await pbx.drain()
        drained = time.time()
        await lag.stop()
        calls = [
            {"linkedid": r.linkedid, "outcome": r.outcome, "queue": r.queue} for r in pbx.results
        ]
        report = {
            "name": args.name,
            "placed": placed,
            "failed": placed - len(calls),  # the simulator's script raised: no result
            "calls": calls,
            "routes": {uid: asdict(trip) for uid, trip in router.trips.items()},
            "began": began,
            "arrivals_s": arrivals_done - began,
            "drain_s": drained - arrivals_done,
            "cpu_s": time.process_time() - cpu0,
            "loop_lag": lateness(lag),
        }
        args.out.write_text(json.dumps(report), encoding="utf-8")
        print("done", flush=True)
        # AMI stays up until told: a bridge behind on its events still reads them, as from
        # a real PBX, which does not go away when its calls do.
        await loop.run_in_executor(None, sys.stdin.readline)


if __name__ == "__main__":
    asyncio.run(main())
