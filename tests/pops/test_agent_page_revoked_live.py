"""End to end in real Chromium: an agent's page shows a live pop from the real hub; an admin
rotates the agent's token in the database; the roster hears it (LISTEN/NOTIFY), the hub
closes the page with 4003, and the page forgets every customer value."""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.ami.decode import decode_event
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock
from bridge.crm import agents
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.models import CallRinging
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.hub import PopHub
from bridge.pops.origins import default_origins
from bridge.pops.sources import build_pop_hub
from bridge.tracker import CallTracker
from bridge.web import HttpServer, make_web_app
from tests.conftest import TRACES
from tests.crm.fixture_crm import load_trace_crm
from tests.pops.conftest import CONFIG
from tests.pops.test_agent_browser import ARGS, CHROMIUM, pytestmark  # noqa: F401
from tests.pops.test_agent_page_forgets import SCREENS, heap_holds


def ring_first_agent(tracker: CallTracker, hub: PopHub) -> None:
    """Play the recorded VIP call through the tracker to the hub until 2001 rings."""
    clock = ReplayClock()
    for frame in AmiParser().feed((TRACES / "vip-answered" / "ami.log").read_bytes()):
        event = decode_event(frame, clock())
        if event is None:
            continue
        batch = tracker.feed(event)
        hub.dispatch(batch)
        if any(isinstance(e, CallRinging) for e in batch):
            return


async def test_rotating_the_token_wipes_the_live_page(
    pool: asyncpg.Pool[Any], roster: AgentRoster, tmp_path: Any
) -> None:
    from playwright.async_api import async_playwright

    tokens = await load_trace_crm(pool)
    await pool.execute("UPDATE customers SET name = 'Alice Secretname' WHERE id = 'cust-alice'")
    http: HttpServer | None = None
    tracker = CallTracker(CONFIG.device_regex)
    hub = build_pop_hub(
        pool,
        CONFIG,
        PostgresDirectory(pool),
        roster,
        live=tracker,
        origins=lambda: default_origins("127.0.0.1", http.port if http else 0),
    )
    await hub.start()
    deps = AgentDeps(pool, lambda: hub.port)
    http = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await http.start()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(http.url + "/agent")
                await page.fill("#token", tokens["2001"])
                await page.click("#login button[type=submit]")
                await page.wait_for_selector("#status.online", timeout=10_000)
                await hub.wait_until(lambda: hub.connected_agents == 1)

                ring_first_agent(tracker, hub)  # 2001 rings with Alice's card
                await page.wait_for_selector("text=Alice Secretname", timeout=10_000)
                shot = tmp_path / "live-before-rotation.png"
                await page.screenshot(path=str(shot), full_page=True)

                assert await agents.rotate_token(pool, "2001") is not None
                await page.wait_for_selector(
                    "text=Signed out: your access was revoked.", timeout=10_000
                )
                assert await page.locator("article[data-call-id]").count() == 0
                assert "Alice Secretname" not in (await page.content())
                assert await heap_holds(page, "Alice Secretname") == set()
                after = tmp_path / "live-after-rotation.png"
                await page.screenshot(path=str(after), full_page=True)
                SCREENS.mkdir(parents=True, exist_ok=True)
                for png in (shot, after):
                    (SCREENS / png.name).write_bytes(png.read_bytes())
            finally:
                await browser.close()
    finally:
        await http.stop()
        await hub.stop()
