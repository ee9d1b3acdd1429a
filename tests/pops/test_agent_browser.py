"""The agent page in real headless Chromium, against a real hub, HTTP server and database."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.config import build_config
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.models import CallRinging
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.origins import default_origins
from bridge.pops.sources import build_pop_hub
from bridge.records.participants import ParticipantRecorder
from bridge.web import HttpServer, make_web_app
from tests.crm.fixture_crm import ALICE, load_trace_crm
from tests.pops.conftest import trace_events

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EVIL_CALLER = "<script>alert(1)</script>"
EVIL_CUSTOMER = '<img src=x onerror="window.__pwned=1;alert(2)">Alice'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


async def test_agent_sees_the_pop_as_text_and_files_a_disposition(
    pool: asyncpg.Pool[Any], roster: AgentRoster
) -> None:
    from playwright.async_api import async_playwright

    tokens = await load_trace_crm(pool)
    await pool.execute("UPDATE customers SET name = $2 WHERE id = $1", ALICE, EVIL_CUSTOMER)
    await pool.execute(
        "INSERT INTO orders (customer_id, reference, product, amount) VALUES ($1, 'o-7', $2, 5)",
        ALICE,
        "<b>Phone</b>",
    )
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
    dialogs: list[str] = []
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                await page.goto(http.url + "/agent")
                await page.fill("#token", tokens["2001"])
                await page.click("#login button[type=submit]")
                await page.wait_for_selector("#status.online", timeout=10_000)
                assert await page.text_content("#who") == "agent 2001"
                assert not await page.is_visible("#login"), "sign-in form still shown"
                assert await page.is_visible("#logout")
                await hub.wait_until(lambda: hub.connected_agents == 1)

                events = trace_events("vip-answered")
                first = events[0]
                assert isinstance(first, CallRinging) and first.device == "2001"
                events[0] = dataclasses.replace(first, caller_name=EVIL_CALLER)
                await hub.handle_all(events)
                participants = ParticipantRecorder(pool, roster.agent_id_of)
                for event in events:  # who talked may file the disposition
                    participants.note(event)
                await participants.drain()

                call = f'article[data-call-id="{first.call_id}"]'
                await page.wait_for_selector(f'{call}[data-state="ended"]', timeout=10_000)
                assert await page.text_content(f"{call} .caller-name") == EVIL_CALLER
                assert await page.text_content(f"{call} .caller") == "+15551230001"
                assert await page.text_content(f"{call} .customer-name") == EVIL_CUSTOMER
                assert await page.text_content(f"{call} .tags") == "vip"
                assert "<b>Phone</b>" in (await page.text_content(f"{call} table") or "")
                # nothing from the data became markup, and nothing ran
                assert await page.eval_on_selector_all("script", "s => s.length") == 1
                assert (
                    await page.eval_on_selector_all(f"{call} img, {call} b", "n => n.length") == 0
                )
                assert await page.evaluate("window.__pwned") is None
                assert dialogs == []

                await page.check(f'{call} input[value="complaint"]')
                await page.fill(f'{call} textarea[name="notes"]', "Wants a refund\nby Friday")
                await page.click(f"{call} .disposition button[type=submit]")
                await page.wait_for_selector(f'{call} form[data-saved="yes"]', timeout=10_000)
                assert await page.text_content(f"{call} .saved") == "saved"
            finally:
                await browser.close()
    finally:
        await http.stop()
        await hub.stop()

    row = await pool.fetchrow(
        "SELECT agent_id, disposition, notes FROM call_dispositions WHERE call_id = $1",
        first.call_id,
    )
    assert tuple(row) == ("2001", "complaint", "Wants a refund\nby Friday")
