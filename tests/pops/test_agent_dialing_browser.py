"""An agent's own call out on its page, in real headless Chromium (issue 20): `call.dialing`
shows the customer of the number dialled (never the agent's own caller ID), then answered,
ended, and the agent may file a disposition."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.ami_replay import replay
from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.models import CallDialing
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.origins import default_origins
from bridge.pops.sources import build_pop_hub
from bridge.records.participants import ParticipantRecorder
from bridge.tracker import CallTracker
from bridge.web import HttpServer, make_web_app
from tests.conftest import TRACES
from tests.crm.fixture_crm import load_trace_crm
from tests.pops.test_agent_browser import ARGS, CHROMIUM

SCREENS = Path("/tmp/screens/realpbx")


def _keep(shots: list[Path]) -> None:
    """Copy the screenshots where a reviewer looks at them."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, SCREENS / shot.name)


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


async def test_a_dial_out_shows_the_dialled_customer_and_takes_a_disposition(
    pool: asyncpg.Pool[Any], roster: AgentRoster, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    tokens = await load_trace_crm(pool)
    await roster.start()  # agents were loaded after the roster started: read them again
    config = build_config({"pops": {"port": 0}, "http": {"port": 0}}, {}, runtime=False)
    http: HttpServer | None = None
    hub = build_pop_hub(
        pool,
        config,
        PostgresDirectory(pool),
        roster,
        origins=lambda: default_origins("127.0.0.1", http.port if http else 0),
    )
    await hub.start()
    deps = AgentDeps(pool, lambda: hub.port)
    http = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await http.start()
    tracker = CallTracker(
        config.device_regex, is_agent=lambda ext: roster.agent_id_of(ext) is not None
    )
    events = replay((TRACES / "dial-out-phone" / "ami.log").read_bytes(), tracker)
    dialing = events[0]
    assert isinstance(dialing, CallDialing) and dialing.device == "1001"
    shots: list[Path] = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(http.url + "/agent")
                await page.fill("#token", tokens["1001"])
                await page.click("#login button[type=submit]")
                await page.wait_for_selector("#status.online", timeout=10_000)
                await hub.wait_until(lambda: hub.connected_agents == 1)

                call = f'article[data-call-id="{dialing.call_id}"]'
                await hub.handle_all(events[:1])
                await page.wait_for_selector(f'{call}[data-state="dialing"]', timeout=10_000)
                await page.wait_for_selector(f"{call} .customer-name", timeout=10_000)
                shots.append(tmp_path / "dialing.png")
                await page.screenshot(path=str(shots[-1]), full_page=True)
                assert await page.text_content(f"{call} .caller") == "calling 15551230002"
                assert await page.text_content(f"{call} .customer-name") == "Bob Li"

                participants = ParticipantRecorder(pool, roster.agent_id_of)
                for event in events:
                    participants.note(event)
                await participants.drain()
                await hub.handle_all(events[1:])
                await page.wait_for_selector(f'{call}[data-state="ended"]', timeout=10_000)
                assert await page.text_content(f"{call} .customer-name") == "Bob Li"
                await page.check(f'{call} input[value="follow_up"]')
                await page.fill(f'{call} textarea[name="notes"]', "Call back Monday")
                await page.click(f"{call} .disposition button[type=submit]")
                await page.wait_for_selector(f'{call} form[data-saved="yes"]', timeout=10_000)
                shots.append(tmp_path / "dial-out-ended.png")
                await page.screenshot(path=str(shots[-1]), full_page=True)
            finally:
                await browser.close()
    finally:
        await http.stop()
        await hub.stop()
        _keep(shots)

    row = await pool.fetchrow(
        "SELECT agent_id, disposition FROM call_dispositions WHERE call_id = $1", dialing.call_id
    )
    assert tuple(row) == ("1001", "follow_up")
