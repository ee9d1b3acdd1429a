"""The agent page in real headless Chromium: the disposition form appears only once this agent
answered, and sign-out, a rejected token and a 4003 close wipe every customer value from the
page and from the browser's JavaScript heap.

The pops side is a small scripted websocket server (welcome, then the messages the test
pushes, then a close with the code the test asks for), so these tests do not depend on how
the hub decides; the HTTP side is the real agent routes over the real database.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.records.participants import record_participant
from bridge.web import HttpServer, make_web_app
from tests.crm.fixture_crm import load_trace_crm
from tests.pops.test_agent_browser import ARGS, CHROMIUM

SCREENS = Path("/tmp/screens/authz")
SECRET_NAME = "Zebulon Quartermaine-Secret"
SECRET_ORDER = "Order-Xylophone-4711"
SECRET_NOTE = "Unsent note about Zebulon"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@dataclass
class ScriptedPops:
    """Welcomes every hello as `agent`, then sends what the test queues, or closes."""

    agent: str
    server: Server | None = None
    actions: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    hellos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def handler(self, ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        self.hellos.append(hello)
        await ws.send(json.dumps({"type": "welcome", "agent": self.agent}))
        self.welcomed.set()
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            while True:
                getter = asyncio.ensure_future(self.actions.get())
                await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():  # the page went away
                    getter.cancel()
                    return
                if await self.act(ws, *getter.result()):
                    return
        finally:
            closed.cancel()

    async def act(self, ws: ServerConnection, kind: str, value: Any) -> bool:
        """Do one queued action; True when the connection is done."""
        if kind == "close":
            await ws.close(value, "revoked")
            return True
        await ws.send(json.dumps(value))
        return False

    def send(self, **message: Any) -> None:
        self.actions.put_nowait(("send", {"at": "2026-11-23T20:00:00+00:00", **message}))

    def close(self, code: int) -> None:
        self.actions.put_nowait(("close", code))


@dataclass
class Site:
    url: str
    pops: ScriptedPops
    tokens: dict[str, str]
    pool: asyncpg.Pool[Any]


@pytest.fixture
async def site(pool: asyncpg.Pool[Any]) -> AsyncIterator[Site]:
    tokens = await load_trace_crm(pool)
    pops = ScriptedPops("1001")
    pops.server = await serve(pops.handler, "127.0.0.1", 0)
    deps = AgentDeps(pool, lambda: pops.port)
    http = HttpServer(make_web_app(setups=[lambda app: setup_agent_routes(app, deps)]), port=0)
    await http.start()
    try:
        yield Site(http.url, pops, tokens, pool)
    finally:
        await http.stop()
        pops.server.close()
        await pops.server.wait_closed()


@pytest.fixture
async def page(site: Site, tmp_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page()
            page.screens = tmp_path  # type: ignore[attr-defined]
            yield page
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> None:
    target = page.screens / f"{name}.png"
    await page.screenshot(path=str(target), full_page=True)
    await asyncio.to_thread(_keep, target)


def _keep(shot: Path) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENS / shot.name)


async def sign_in(page: Any, site: Site, token: str) -> None:
    await page.goto(site.url + "/agent")
    await page.fill("#token", token)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#status.online", timeout=10_000)
    await site.pops.welcomed.wait()


def ring(pops: ScriptedPops, call_id: str, **extra: Any) -> None:
    pops.send(
        type="call.ringing",
        call_id=call_id,
        caller="+15551230001",
        caller_name="Z. Q.",
        queue="senior",
        customer={
            "id": "c-z",
            "name": SECRET_NAME,
            "tags": ["vip"],
            "owner": "1001",
            "restricted": False,
            "attributes": {"lifetime_value": 98765},
            "orders": [{"reference": SECRET_ORDER, "product": "Solar battery"}],
            "contracts": [],
            "marketing": [],
            "history": [],
            "last_outcome": None,
        },
        **extra,
    )


def card(call_id: str) -> str:
    return f'article[data-call-id="{call_id}"]'


async def heap_holds(page: Any, *needles: str) -> set[str]:
    """Which of `needles` a fresh heap snapshot of the page (after a full GC) contains."""
    cdp = await page.context.new_cdp_session(page)
    chunks: list[str] = []
    cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda event: chunks.append(event["chunk"]))
    await cdp.send("HeapProfiler.enable")
    await cdp.send("HeapProfiler.collectGarbage")
    await cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    await cdp.detach()
    snapshot = "".join(chunks)
    return {needle for needle in needles if needle in snapshot}


async def show_three_calls(page: Any, site: Site) -> None:
    """Call a: answered by me; b: answered by a colleague; c: transferred to me."""
    pops = site.pops
    ring(pops, "a.1")
    ring(pops, "b.1")
    ring(pops, "c.1", transfer_from="2001")
    await page.wait_for_selector(f'{card("c.1")}[data-state="ringing"]', timeout=10_000)
    for call in ("a.1", "b.1", "c.1"):
        assert await page.is_hidden(f"{card(call)} form.disposition"), call
    pops.send(type="call.answered", call_id="a.1", agent="1001")
    pops.send(type="call.retracted", call_id="b.1", reason="answered_elsewhere")
    pops.send(type="call.answered", call_id="b.1", agent="1002")
    pops.send(type="call.transferred", call_id="c.1", agent="1001")
    await page.wait_for_selector(f'{card("c.1")}[data-state="transferred"]', timeout=10_000)
    await page.wait_for_selector(f'{card("b.1")}[data-state="answered"]', timeout=10_000)


async def test_the_form_appears_only_once_this_agent_answered(page: Any, site: Site) -> None:
    await record_participant(site.pool, "a.1", "1001", "answered")
    await sign_in(page, site, site.tokens["1001"])
    pops = site.pops
    ring(pops, "a.1")
    await page.wait_for_selector(f'{card("a.1")}[data-state="ringing"]', timeout=10_000)
    assert await page.is_hidden(f"{card('a.1')} form.disposition")
    await screenshot(page, "1-ringing-no-form")
    await show_three_calls(page, site)
    assert await page.is_visible(f"{card('a.1')} form.disposition")
    assert await page.is_hidden(f"{card('b.1')} form.disposition"), "a colleague answered"
    assert await page.is_visible(f"{card('c.1')} form.disposition"), "transferred to me"
    pops.send(type="call.ended", call_id="a.1", duration_s=40, talk_s=30)
    await page.wait_for_selector(f'{card("a.1")}[data-state="ended"]', timeout=10_000)
    assert await page.is_visible(f"{card('a.1')} form.disposition"), "still there after the end"
    await screenshot(page, "2-form-only-where-answered")

    await page.check(f'{card("a.1")} input[value="follow_up"]')
    await page.fill(f'{card("a.1")} textarea[name="notes"]', "call back")
    await page.click(f"{card('a.1')} .disposition button[type=submit]")
    await page.wait_for_selector(f'{card("a.1")} form[data-saved="yes"]', timeout=10_000)
    row = await site.pool.fetchrow("SELECT agent_id, disposition FROM call_dispositions")
    assert tuple(row) == ("1001", "follow_up")


async def assert_forgotten(page: Any, message: str) -> None:
    await page.wait_for_selector("#login:not([hidden])", timeout=10_000)
    assert await page.text_content("#login-error") == message
    assert await page.eval_on_selector("#calls", "c => c.children.length") == 0
    body = await page.text_content("body") or ""
    for secret in (SECRET_NAME, SECRET_ORDER, "98765", "+15551230001"):
        assert secret not in body
    assert await page.evaluate("() => sessionStorage.length") == 0
    assert await page.is_hidden("#logout")
    assert await page.text_content("#who") == ""
    assert await heap_holds(page, SECRET_NAME, SECRET_ORDER, SECRET_NOTE) == set()


async def test_sign_out_wipes_every_customer_value(page: Any, site: Site) -> None:
    await sign_in(page, site, site.tokens["1001"])
    await show_three_calls(page, site)
    await page.fill(f'{card("a.1")} textarea[name="notes"]', SECRET_NOTE)
    # the heap search works: it finds a string the page's script holds
    await page.evaluate("() => { window.probe = ['heap', 'probe', String(6 * 7)].join('-'); }")
    assert await heap_holds(page, "heap-probe-42") == {"heap-probe-42"}
    await screenshot(page, "3-before-sign-out")
    await page.click("#logout")
    await assert_forgotten(page, "Signed out.")
    await screenshot(page, "4-after-sign-out")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (4003, "Signed out: your access was revoked."),
        (4001, "Signed out: your token is wrong or expired."),
    ],
)
async def test_a_revoking_close_wipes_every_customer_value(
    page: Any, site: Site, code: int, message: str
) -> None:
    await sign_in(page, site, site.tokens["1001"])
    await show_three_calls(page, site)
    await page.fill(f'{card("a.1")} textarea[name="notes"]', SECRET_NOTE)
    site.pops.close(code)
    await assert_forgotten(page, message)
    await screenshot(page, f"5-after-close-{code}")
    # it stays signed out: no reconnect with a token it no longer has
    assert len(site.pops.hellos) == 1


async def test_a_token_the_api_rejects_wipes_every_customer_value(page: Any, site: Site) -> None:
    await sign_in(page, site, "revoked-token-revoked-token-revoked-1234")  # pops take any token
    await show_three_calls(page, site)
    await page.check(f'{card("a.1")} input[value="resolved"]')
    await page.click(f"{card('a.1')} .disposition button[type=submit]")
    await assert_forgotten(page, "Signed out: your token is wrong or expired.")
    await screenshot(page, "6-after-api-401")
    assert await site.pool.fetchval("SELECT count(*) FROM call_dispositions") == 0
