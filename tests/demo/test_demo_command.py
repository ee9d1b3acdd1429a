"""`crm-bridge demo` end to end, as a user runs it: from an empty folder, no database
configured. An agent from its output logs in over the websocket and gets a screen-pop;
/healthz answers 200; SIGINT ends it and leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
import websockets

from bridge.db.embedded import read_postmaster

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "State:\tZ" not in status:
            found.append(f"{proc.name}: {cmdline}")
    return found


def children_of(pid: int) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    out.append(proc.name)
    return out


async def wait_for_pop(pops_port: int, tokens: dict[str, str]) -> dict[str, object]:
    """Log every handset agent in; return the first call.ringing any of them receives."""
    sockets = []
    try:
        for agent_id in ("1001", "1002", "2001", "2002"):
            ws = await websockets.connect(f"ws://127.0.0.1:{pops_port}/")
            sockets.append(ws)
            await ws.send(json.dumps({"type": "hello", "token": tokens[agent_id]}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert welcome == {"type": "welcome", "agent": agent_id}

        async def first_ringing(ws: websockets.ClientConnection) -> dict[str, object]:
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "call.ringing":
                    return message

        tasks = [asyncio.ensure_future(first_ringing(ws)) for ws in sockets]
        try:
            done, _ = await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert done, "no screen-pop within 30 s"
            return next(iter(done)).result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for ws in sockets:
            await ws.close()


async def test_demo_from_an_empty_folder_pops_a_screen_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {k: free_port() for k in ("AGI", "HTTP", "POPS")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env.update({f"CRM_BRIDGE_{k}_PORT": str(v) for k, v in ports.items()})
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "demo", "--calls-per-minute", "30",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not any(line.startswith("simulated PBX:") for line in lines):
                raw = await proc.stdout.readline()
                assert raw, "demo exited early:\n" + (tmp_path / "stderr.log").read_text()
                lines.append(raw.decode().rstrip("\n"))
        text = "\n".join(lines)
        url = re.search(r"http://127\.0\.0\.1:(\d+)/agent", text)
        assert url and int(url.group(1)) == ports["HTTP"]
        tokens = dict(re.findall(r"^agent (\S+) (\S+)$", text, re.M))
        assert {"1001", "1002", "2001", "2002"} <= set(tokens)

        pop = await wait_for_pop(ports["POPS"], tokens)
        assert pop["call_id"] and pop["queue"] in {"support", "senior", "intl"}

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{ports['HTTP']}/healthz") as response:
                assert response.status == 200, await response.text()
            async with http.get(url.group(0)) as response:
                assert response.status == 200
            # the supervisor's token opens the wallboard; a handset agent's does not
            board = re.search(r"open the wallboard: (http://\S+/wallboard)", text)
            assert board, text
            async with http.get(board.group(1)) as response:
                assert response.status == 200
            queues = f"http://127.0.0.1:{ports['HTTP']}/api/queues"
            lead = {"Authorization": f"Bearer {tokens['lead']}"}
            async with http.get(queues, headers=lead) as response:
                assert response.status == 200, await response.text()
                names = {q["queue"] for q in (await response.json())["queues"]}
                assert {"support", "senior", "intl"} <= names
            agent = {"Authorization": f"Bearer {tokens['1001']}"}
            async with http.get(queues, headers=agent) as response:
                assert response.status == 403
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        finally:
            stderr.close()
    assert proc.returncode == 0, (tmp_path / "stderr.log").read_text()[-3000:]
    assert read_postmaster(tmp_path / ".crm-bridge" / "pgdata") is None
    assert not processes_mentioning(str(tmp_path)), "processes left behind"
    assert not children_of(proc.pid)


async def test_a_second_demo_start_reuses_the_data_with_fresh_tokens(tmp_path: Path) -> None:
    ports = {k: free_port() for k in ("AGI", "HTTP", "POPS")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_BRIDGE_")}
    env.update({f"CRM_BRIDGE_{k}_PORT": str(v) for k, v in ports.items()})

    async def run_once() -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "demo", "--duration", "2",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode()

    code, first = await run_once()
    assert code == 0, first
    version = (tmp_path / ".crm-bridge" / "pgdata" / "PG_VERSION").stat().st_mtime_ns
    code, second = await run_once()
    assert code == 0, second
    assert (tmp_path / ".crm-bridge" / "pgdata" / "PG_VERSION").stat().st_mtime_ns == version
    tokens = [dict(re.findall(r"^agent (\S+) (\S+)$", out, re.M)) for out in (first, second)]
    assert tokens[0].keys() == tokens[1].keys() and len(tokens[0]) == 6
    assert all(tokens[0][a] != tokens[1][a] for a in tokens[0])
    assert read_postmaster(tmp_path / ".crm-bridge" / "pgdata") is None
    assert not processes_mentioning(str(tmp_path))
