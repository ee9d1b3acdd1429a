"""Click-to-call from the desk in real headless Chromium, against the whole bridge and the
PBX simulator: a phone number on the desk is a button; clicking it rings the agent's phone,
the far end is dialled and the card shows the dialled customer; the "Call back" list offers
the caller who gave up, and calling back empties it."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import build_config
from bridge.crm.agents import create_agent
from bridge.plugin import Context
from bridge.runtime import run_bridge
from bridge.sim import AmiServer, AmiUser, FastClock, SimPbx, lab_config
from bridge.sim.originate import OriginateTiming
from tests.crm.fixture_crm import load_trace_crm
from tests.pops.test_agent_browser import ARGS, CHROMIUM
from tests.test_end_to_end import free_port

SCREENS = Path("/tmp/screens/clicktocall")


def _keep(shots: list[Path]) -> None:
    """Copy the screenshots where a reviewer looks at them."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, SCREENS / shot.name)


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


async def test_clicking_a_number_and_a_call_back_dial_out_from_the_desk(
    database_url: str, pool: asyncpg.Pool[Any], tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    tokens = await load_trace_crm(pool)
    boss = await create_agent(pool, "boss", "Supervisor", "supervisor", "9001")
    now = datetime.now(UTC)
    # Bob's earlier answered call (a number on the desk: "my calls today") and Zhang's
    # abandoned one (the callback list).
    await pool.execute(
        "INSERT INTO call_records (call_id, caller, customer_id, queue, outcome, started_at,"
        " talk_s, agents, direction) VALUES ('1796000000.1', '+15551230002', 'cust-bob',"
        " 'support', 'answered', $1, 42, '[{\"agent\": \"1001\"}]', 'inbound'),"
        " ('1796000000.2', '+8613800138000', 'cust-zhangwei', 'support', 'abandoned', $2, 0,"
        " '[]', 'inbound')",
        min(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=1)),
        now - timedelta(minutes=3),
    )
    agi_port = free_port()
    pbx = SimPbx(
        lab_config(technology="PJSIP", agi_port=agi_port, ami_users=(AmiUser("bridge", "s3cret"),)),
        clock=FastClock(speed=20),
    )
    shots: list[Path] = []

    async def shot(page: Any, name: str) -> None:
        shots.append(tmp_path / name)
        await page.screenshot(path=str(shots[-1]), full_page=True)

    async with AmiServer(pbx) as ami:
        far_answer = asyncio.Event()
        ami.originate_timing = OriginateTiming(far_answer=far_answer)
        config = build_config(
            {
                "database": {"url": database_url},
                "ami": {"port": ami.port, "username": "bridge", "secret": "s3cret"},
                "agi": {"port": agi_port},
                "http": {"port": free_port()},  # the pops accept the page's own origin
                "pops": {"port": 0},
                "records": {"spool_dir": str(tmp_path / "spool")},
            },
            {},
        )
        stop = asyncio.Event()
        ready: asyncio.Future[Context] = asyncio.get_running_loop().create_future()
        bridge = asyncio.ensure_future(run_bridge(config, stop=stop, started=ready.set_result))
        try:
            async with asyncio.timeout(30):
                await asyncio.wait([ready, bridge], return_when=asyncio.FIRST_COMPLETED)
            rt = ready.result()
            await asyncio.wait_for(rt.get("ami").connected(), 10)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 800})
                    await page.goto(rt.get("http").url + "/agent")
                    await page.fill("#token", tokens["1001"])
                    await page.click("#login button[type=submit]")
                    await page.wait_for_selector("#status.online", timeout=10_000)
                    number = "#today-list button.dial"
                    await page.wait_for_selector(number, timeout=10_000)
                    await page.wait_for_selector('#callbacks-list li[data-call-id="1796000000.2"]')
                    await shot(page, "1-desk-with-numbers-and-callbacks.png")
                    assert await page.text_content(number) == "+15551230002"

                    wall = await browser.new_page(viewport={"width": 1280, "height": 800})
                    await wall.goto(rt.get("http").url + "/wallboard")
                    await wall.fill("#token", boss)
                    await wall.click("#login button[type=submit]")
                    row = '#callbacks tr[data-call-id="1796000000.2"]'
                    await wall.wait_for_selector(row, timeout=10_000)
                    assert "+8613800138000" in (await wall.text_content(row) or "")
                    await shot(wall, "0-wallboard-callbacks.png")
                    await wall.close()

                    await page.click(number)  # Bob's number in "my calls today"
                    await page.wait_for_selector(".call[data-state=dialing] .customer-name")
                    status = await page.text_content("#dial-status")
                    assert status and "Your phone rings" in status
                    await shot(page, "2-clicked-number-dialing-bob.png")
                    card = ".call[data-state] .customer-name"
                    assert await page.text_content(card) == "Bob Li"
                    far_answer.set()
                    await page.wait_for_selector(".call[data-state=ended]", timeout=15_000)
                    await shot(page, "3-call-ended.png")

                    far_answer.clear()
                    await page.click('#callbacks-list li[data-call-id="1796000000.2"] button')
                    await page.wait_for_selector(
                        ".call[data-state=dialing] .customer-name >> text=张伟", timeout=10_000
                    )
                    await shot(page, "4-calling-back-zhang.png")
                    far_answer.set()
                    await page.wait_for_selector(
                        '#callbacks-list:not(:has(li[data-call-id="1796000000.2"]))',
                        state="attached",
                        timeout=15_000,
                    )
                    await page.wait_for_selector("#callbacks-empty:not([hidden])")
                    await shot(page, "5-callback-list-emptied.png")

                    await page.fill("#dial-number", "1234,Application,System")
                    await page.click("#dial-form button[type=submit]")
                    await page.wait_for_selector("#dial-status[data-ok=no]")
                    refused = await page.text_content("#dial-status")
                    assert refused and refused.startswith("Not dialled: number: only digits")
                    await shot(page, "6-hostile-number-refused.png")
                finally:
                    await browser.close()
            originates = [a for a in ami.actions_seen if a.get("action") == "Originate"]
            assert [a["exten"] for a in originates] == ["15551230002", "0118613800138000"]
        finally:
            stop.set()
            await asyncio.wait_for(bridge, 30)
            _keep(shots)
