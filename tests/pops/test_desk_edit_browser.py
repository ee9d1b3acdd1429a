"""Correcting a known customer from the desk, in real headless Chromium: the agent edits the
name and tags on the card, the CRM row and the audit change, the card shows the correction;
a customer another agent owns is refused with the reason, and nothing changes."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.server import serve

from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.web import HttpServer, make_web_app
from tests.crm.fixture_crm import ALICE, BOB, load_trace_crm
from tests.pops.test_agent_browser import ARGS, CHROMIUM
from tests.pops.test_agent_page_forgets import ScriptedPops, Site, card, sign_in

SCREENS = Path("/tmp/screens/deskgaps")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
async def desk(pool: asyncpg.Pool[Any]) -> AsyncIterator[Site]:
    tokens = await load_trace_crm(pool)
    await pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2001')", BOB
    )
    pops = ScriptedPops("1001")
    pops.server = await serve(pops.handler, "127.0.0.1", 0)
    deps = AgentDeps(pool, lambda: pops.port, agents_edit="own")
    http = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await http.start()
    try:
        yield Site(http.url, pops, tokens, pool)
    finally:
        await http.stop()
        pops.server.close()
        await pops.server.wait_closed()


def ring(pops: ScriptedPops, call_id: str, customer_id: str, name: str, owner: str | None) -> None:
    pops.send(
        type="call.ringing",
        call_id=call_id,
        caller="+15551230001",
        caller_name="",
        queue="support",
        customer={
            "id": customer_id,
            "name": name,
            "tags": ["vip"],
            "owner": owner,
            "restricted": False,
            "attributes": {},
            "orders": [],
            "contracts": [],
            "marketing": [],
            "history": [],
            "last_outcome": None,
        },
    )


async def shot(page: Any, tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    await asyncio.to_thread(_keep, target)


def _keep(shot_file: Path) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot_file, SCREENS / shot_file.name)


async def test_an_agent_corrects_a_customer_it_may_edit_and_is_refused_another(
    desk: Site, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await sign_in(page, desk, desk.tokens["1001"])
            ring(desk.pops, "e.1", ALICE, "Alice Chen", None)
            await page.wait_for_selector(f"{card('e.1')} .customer-name", timeout=10_000)
            await page.click(f"{card('e.1')} button.edit-customer")
            await page.fill(f"{card('e.1')} form.edit input[name=name]", "<b>Alice</b> Chen-Okafor")
            await page.fill(f"{card('e.1')} form.edit input[name=tags]", "vip, wholesale")
            await shot(page, tmp_path, "edit-1-form")
            await page.click(f"{card('e.1')} form.edit button.save-edit")
            await page.wait_for_selector(
                f"{card('e.1')} .customer[data-edited=yes]", timeout=10_000
            )
            name = await page.text_content(f"{card('e.1')} .customer-name")
            assert name == "<b>Alice</b> Chen-Okafor"  # shown as text
            await shot(page, tmp_path, "edit-2-saved")
            row = await desk.pool.fetchrow("SELECT name FROM customers WHERE id = $1", ALICE)
            assert row["name"] == "<b>Alice</b> Chen-Okafor"
            tags = await desk.pool.fetch(
                "SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag", ALICE
            )
            assert [t["tag"] for t in tags] == ["vip", "wholesale"]
            assert (
                await desk.pool.fetchval(
                    "SELECT count(*) FROM audit_log WHERE action = 'customer.update'"
                    " AND target_id = $1 AND actor = '1001'",
                    ALICE,
                )
                == 1
            )
            # nothing from the data became markup
            assert await page.eval_on_selector_all(f"{card('e.1')} b", "n => n.length") == 0

            ring(desk.pops, "e.2", BOB, "Bob Li", "2001")
            await page.wait_for_selector(f"{card('e.2')} .customer-name", timeout=10_000)
            await page.click(f"{card('e.2')} button.edit-customer")
            await page.fill(f"{card('e.2')} form.edit input[name=name]", "Robert Li")
            await page.click(f"{card('e.2')} form.edit button.save-edit")
            await page.wait_for_selector(f"{card('e.2')} form.edit[data-saved=no]", timeout=10_000)
            result = await page.text_content(f"{card('e.2')} .edit-result") or ""
            assert result.startswith("not allowed: ")
            await shot(page, tmp_path, "edit-3-refused")
            assert (
                await desk.pool.fetchval("SELECT name FROM customers WHERE id = $1", BOB)
                == "Bob Li"
            )
        finally:
            await browser.close()
