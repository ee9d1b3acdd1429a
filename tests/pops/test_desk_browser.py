"""The agent's desk and the supervisor's wallboard in real headless Chromium, driven by a
replayed call (the `vip-answered` and `abandoned` traces through the real tracker), with
the real hub, HTTP server, database and the simulator's AMI for pauses.

Screenshots of each state (1280×800) go to the test's tmp dir and /tmp/screens/desk/.
The browser's Notification API is replaced by a recorder (a headless browser shows no
desktop notifications); everything else is the browser's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.ami.decode import decode_event
from bridge.ami.link import AmiLink
from bridge.ami.protocol import AmiParser
from bridge.ami_replay import ReplayClock
from bridge.config import AmiConfig, build_config
from bridge.crm.agents import create_agent
from bridge.crm.directory import PostgresDirectory
from bridge.crm.roster import AgentRoster
from bridge.models import CallEnded, CallEvent, CallRetracted, CallRinging
from bridge.pops.agent_routes import AgentDeps, setup_agent_routes
from bridge.pops.hub import PopHub
from bridge.pops.origins import default_origins
from bridge.pops.sources import build_pop_hub
from bridge.records.participants import ParticipantRecorder
from bridge.sim import AmiServer, AmiUser, SimConfig, SimPbx
from bridge.tracker.tracker import CallTracker
from bridge.wallboard.ami import AmiQueues
from bridge.wallboard.board import WallBoard
from bridge.web import HttpServer, make_web_app
from tests.admin.api import mount_admin_api
from tests.conftest import TRACES
from tests.crm.fixture_crm import ALICE, load_trace_crm
from tests.pops.test_agent_browser import ARGS, CHROMIUM

SCREENS = Path("/tmp/screens/desk")
VIP_GOLD = "rgb(184, 134, 11)"  # #b8860b
STRANGER = "+15559870001"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]

# A recorder in place of the desktop-notification API (headless Chromium shows none); the
# permission starts "default" and is granted when the page asks.
NOTIFICATIONS = """
window.__notes = []; window.__asked = 0; window.__perm = 'default';
function FakeNotification(title, options) {
  window.__notes.push(title);
  this.close = () => {};
}
Object.defineProperty(FakeNotification, 'permission', { get: () => window.__perm });
FakeNotification.requestPermission = () => {
  window.__asked += 1; window.__perm = 'granted'; return Promise.resolve('granted');
};
window.Notification = FakeNotification;
Object.defineProperty(Document.prototype, 'visibilityState', {
  configurable: true, get: () => (window.__hide ? 'hidden' : 'visible'),
});
"""


async def enrich_alice(pool: asyncpg.Pool[Any], call_id: str) -> None:
    """Alice as a real CRM knows her: owner, orders, a contract, contacts, the route taken."""
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO customer_owners (customer_id, agent_id) VALUES ($1, '2001')", ALICE
    )
    await pool.execute(
        "UPDATE customers SET attributes = $2 WHERE id = $1",
        ALICE,
        {"lifetime_value": 18250, "segment": "business", "language": "en"},
    )
    orders = [
        ("SO-1001", "Phone X", 899.5, "delivered", 40),
        ("SO-1002", "Case", 25, "shipped", 3),
        ("SO-1003", "Headset", 129, "placed", 1),
    ]
    for ref, product, amount, status, days in orders:
        await pool.execute(
            "INSERT INTO orders (customer_id, reference, product, amount, currency, status,"
            " ordered_at) VALUES ($1, $2, $3, $4, 'EUR', $5, $6)",
            ALICE,
            ref,
            product,
            amount,
            status,
            now - timedelta(days=days),
        )
    await pool.execute(
        "INSERT INTO contracts (customer_id, kind, reference, stage, progress_pct, total_amount,"
        " paid_amount, started_at, due_at) VALUES ($1, 'loan', 'CT-7', '15 of 24 instalments"
        " paid', 62.5, 2400, 1500, $2, $3)",
        ALICE,
        now - timedelta(days=450),
        now + timedelta(days=270),
    )
    contacts = [
        (2, "follow_up", "Asked about the headset delivery", "call back Friday"),
        (9, "resolved", "Changed the billing address", ""),
        (30, "complaint", "Phone arrived scratched", "replacement sent"),
        (90, "resolved", "Oldest: must not show", ""),
    ]
    for days, disposition, summary, notes in contacts:
        await pool.execute(
            "INSERT INTO service_history (customer_id, kind, occurred_at, agent_id, summary,"
            " outcome, disposition, notes) VALUES ($1, 'call', $2, '2001', $3, 'answered', $4, $5)",
            ALICE,
            now - timedelta(days=days),
            summary,
            disposition,
            notes,
        )
    await pool.execute(
        "INSERT INTO route_decisions (uniqueid, linkedid, caller, queue, priority, rule)"
        " VALUES ($1, $1, '+15551230001', 'senior', 10, 'vip')",
        call_id,
    )


class Feed:
    """Replays trace frames through the one tracker, handing each batch to hub and board."""

    def __init__(self, tracker: CallTracker, hub: PopHub, board: WallBoard) -> None:
        self.tracker = tracker
        self.hub = hub
        self.board = board
        self.events: list[CallEvent] = []
        self.clock = ReplayClock(start=datetime.now(UTC) - timedelta(seconds=8))

    def frames(self, name: str) -> list[Any]:
        return list(AmiParser().feed((TRACES / name / "ami.log").read_bytes()))

    def batch(self, events: list[CallEvent]) -> None:
        self.events.extend(events)
        self.hub.dispatch(events)
        self.board.dispatch(events)

    def until(self, frames: list[Any], stop: type | None) -> None:
        """Feed frames until (and including) the one whose batch holds a `stop` event."""
        while frames:
            event = decode_event(frames.pop(0), self.clock())
            if event is None:
                continue
            out = self.tracker.feed(event)
            if out:
                self.batch(out)
            if stop is not None and any(isinstance(e, stop) for e in out):
                return
        self.batch(self.tracker.flush())


async def shot(page: Any, tmp: Path, name: str, *, full: bool = False) -> None:
    target = tmp / f"{name}.png"
    await page.screenshot(path=str(target), full_page=full)
    await asyncio.to_thread(_keep, target)


def _keep(shot: Path) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENS / shot.name)


async def fig(page: Any, queue: str, cls: str) -> str:
    return (await page.text_content(f'.queue[data-queue="{queue}"] .fig.{cls} .value')) or ""


async def wait_fig(page: Any, queue: str, cls: str, value: str) -> None:
    await page.wait_for_function(
        "([q, c, v]) => { const n = document.querySelector("
        '`.queue[data-queue="${q}"] .fig.${c} .value`); return n && n.textContent === v; }',
        arg=[queue, cls, value],
        timeout=10_000,
    )


async def test_desk_and_wallboard_follow_a_replayed_call(
    pool: asyncpg.Pool[Any], roster: AgentRoster, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    tokens = await load_trace_crm(pool)
    tokens["boss"] = await create_agent(pool, "boss", "Sam Supervisor", "supervisor", "9001")
    vip = [f for f in AmiParser().feed((TRACES / "vip-answered" / "ami.log").read_bytes())]
    probe = CallTracker(build_config({}, {}, runtime=False).device_regex)
    first = next(
        e
        for f in vip
        if (ev := decode_event(f, datetime.now(UTC))) is not None
        for e in probe.feed(ev)
        if isinstance(e, CallRinging)
    )
    await enrich_alice(pool, first.call_id)

    config = build_config(
        {
            "pops": {"port": 0, "tag_colors": {"vip": "#b8860b", "new": "#2a6f97"}},
            "http": {"port": 0},
            "crm": {"customer_url": "https://crm.example/customers/{id}"},
        },
        {},
        runtime=False,
    )
    tracker = CallTracker(config.device_regex)
    http: HttpServer | None = None
    hub = build_pop_hub(
        pool,
        config,
        PostgresDirectory(pool),
        roster,
        live=tracker,
        origins=lambda: default_origins("127.0.0.1", http.port if http else 0),
    )
    pbx = SimPbx(SimConfig(ami_users=(AmiUser("bridge", "s3cret"),)))
    ami = AmiServer(pbx)
    await ami.start()
    # Actions only (pauses): the simulator places no calls here, nothing consumes its events.
    link = AmiLink(AmiConfig(port=ami.port, username="bridge", secret="s3cret"))
    board = WallBoard(
        tracker,
        control=AmiQueues(link, config.device_regex),
        agent_of=roster.agent_id_of,
        pool=pool,
        queues=["support", "senior"],
    )
    hub.use_board(board)
    board.on_stats(hub.publish_queue)
    board.use_names(hub.customer_name)
    await hub.start()
    await link.start()
    deps = AgentDeps(
        pool,
        lambda: hub.port,
        tag_colors=config.pops.tag_colors,
        customer_url=config.crm.customer_url,
    )
    app = make_web_app(
        setups=[
            lambda app: setup_agent_routes(app, deps),
            lambda app: mount_admin_api(app, pool, config, board),
        ]
    )
    http = HttpServer(app, port=0)
    await http.start()
    feed = Feed(tracker, hub, board)
    try:
        await link.connected()
        await board.refresh()
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=str(CHROMIUM),
                args=[*ARGS, "--autoplay-policy=no-user-gesture-required"],
            )
            try:
                size = {"width": 1280, "height": 800}
                desk_ctx = await browser.new_context(viewport=size, locale="en-GB")
                await desk_ctx.add_init_script(NOTIFICATIONS)
                desk = await desk_ctx.new_page()
                wall = await (await browser.new_context(viewport=size)).new_page()

                # --- sign in: the agent's desk and the supervisor's wallboard --------------
                await desk.goto(http.url + "/agent")
                await desk.fill("#token", tokens["2001"])
                await desk.click("#login button[type=submit]")
                await desk.wait_for_selector("#status.online", timeout=10_000)
                assert await desk.evaluate("window.__asked") == 1, "permission asked once"
                await wall.goto(http.url + "/wallboard")
                await wall.fill("#token", tokens["boss"])
                await wall.click("#login button[type=submit]")
                await wall.wait_for_selector("#status.online", timeout=10_000)
                await hub.wait_until(lambda: hub.connected_clients == 2)
                await wall.wait_for_selector('.queue[data-queue="senior"]', timeout=10_000)
                await wait_fig(wall, "senior", "available", "2")
                await shot(desk, tmp_path, "01-desk-idle")
                await shot(wall, tmp_path, "02-wallboard-idle")

                # --- the phone rings: the card, the alerts, the wallboard ------------------
                await desk.evaluate("window.__hide = true")  # the agent is in another tab
                frames = list(vip)
                feed.until(frames, CallRinging)
                call = f'article[data-call-id="{first.call_id}"]'
                await desk.wait_for_selector(f'{call}[data-state="ringing"]', timeout=10_000)
                await desk.wait_for_selector(f"{call} .customer-name", timeout=10_000)
                assert await desk.text_content(f"{call} .customer-name") == "Alice Chen"
                badge = f"{call} .tags .badge"
                assert await desk.text_content(badge) == "vip"
                color = await desk.eval_on_selector(
                    badge, "b => getComputedStyle(b).backgroundColor"
                )
                assert color == VIP_GOLD
                assert await desk.text_content(f"{call} .route") == "vip rule → senior"
                assert await desk.text_content(f"{call} .owner") == "Owner: agent 2001"
                link_href = await desk.get_attribute(f"{call} .crm-link", "href")
                assert link_href == f"https://crm.example/customers/{ALICE}"
                # open orders first, money in the order's currency, enum labels readable
                rows = await desk.eval_on_selector_all(
                    f"{call} table.orders tbody tr", "rs => rs.map(r => r.innerText)"
                )
                assert [r.split("\t")[1] for r in rows] == ["SO-1003", "SO-1002", "SO-1001"]
                assert "€899.50" in rows[2] and "Delivered" in rows[2]
                assert await desk.text_content(f"{call} .contract .stage") == (
                    "15 of 24 instalments"
                )
                width = await desk.eval_on_selector(f"{call} .contract .fill", "f => f.style.width")
                assert width == "62.5%"
                contacts = await desk.eval_on_selector_all(
                    f"{call} .contacts li", "ls => ls.map(l => l.innerText)"
                )
                assert len(contacts) == 3 and "Follow-up" in contacts[0]
                assert not any("Oldest" in c for c in contacts)
                assert "follow_up" not in (await desk.text_content(call) or "")
                # the alerts: the ring started, a notification while hidden, the title
                await desk.wait_for_selector("html[data-ring='on']", timeout=10_000)
                assert await desk.evaluate("document.documentElement.dataset.rings") == "1"
                assert await desk.evaluate("window.__notes.length") == 1
                assert "☎" in await desk.title() or await desk.wait_for_function(
                    "() => document.title.includes('☎')", timeout=5_000
                )
                timer = await desk.text_content(f"{call} .timer")
                await desk.wait_for_function(
                    "([sel, t]) => document.querySelector(sel).textContent !== t",
                    arg=[f"{call} .timer", timer],
                    timeout=10_000,
                )
                await wait_fig(wall, "senior", "ringing", "1")
                assert await fig(wall, "senior", "w") == "1"
                await desk.evaluate("window.__hide = false")
                await shot(desk, tmp_path, "03-desk-ringing")
                await shot(wall, tmp_path, "04-wallboard-ringing")

                # --- answered: talking, the ring stops --------------------------------------
                from bridge.models import CallAnswered

                feed.until(frames, CallAnswered)
                await desk.wait_for_selector(f'{call}[data-state="answered"]', timeout=10_000)
                await desk.wait_for_selector("html[data-ring='off']", timeout=10_000)
                await desk.wait_for_function(
                    "sel => /^talk /.test(document.querySelector(sel).textContent)",
                    arg=f"{call} .timer",
                    timeout=10_000,
                )
                await wait_fig(wall, "senior", "talking", "1")
                assert await fig(wall, "senior", "w") == "0"
                await wall.wait_for_selector("#calls tbody tr", timeout=10_000)
                in_progress = await wall.text_content("#calls tbody tr") or ""
                assert "2001" in in_progress and "Alice Chen" in in_progress
                await shot(desk, tmp_path, "05-desk-talking")
                await shot(wall, tmp_path, "06-wallboard-talking")

                # --- the end, and an abandoned call: today's counts equal the replay -----------
                feed.until(frames, None)
                participants = ParticipantRecorder(pool, roster.agent_id_of)
                for event in feed.events:
                    participants.note(event)
                await participants.drain()
                feed.until(feed.frames("abandoned"), None)
                ended = [e.summary for e in feed.events if isinstance(e, CallEnded)]
                for queue in {s.queue for s in ended if s.queue}:
                    answered = sum(s.queue == queue and s.outcome == "answered" for s in ended)
                    abandoned = sum(s.queue == queue and s.outcome == "abandoned" for s in ended)
                    # each figure is pushed when its call ends: wait for each, not one then read
                    await wait_fig(wall, queue, "answered", str(answered))
                    await wait_fig(wall, queue, "abandoned", str(abandoned))
                assert await fig(wall, "senior", "answered") == "1"
                assert await fig(wall, "senior", "sla") == "100%"
                await desk.wait_for_selector(f'{call}[data-state="ended"]', timeout=10_000)
                assert await desk.is_visible(f"{call} form.disposition")
                await desk.wait_for_selector("#wrapup:not([hidden])", timeout=10_000)
                await shot(desk, tmp_path, "07-desk-ended-wrapup")
                # supervisors see the agent wrapping up until the disposition is filed
                await wait_fig(wall, "senior", "wrapup", "1")
                row = await wall.text_content('#agents tr[data-device="2001"]') or ""
                assert "wrap-up" in row
                await shot(wall, tmp_path, "08-wallboard-counts")

                # --- a stranger calls: create the customer, the next call knows them ---------
                now = datetime.now(UTC)
                ring = CallRinging(
                    "u.1", "2001", now, STRANGER, "WIRELESS CALLER", "support", "PJSIP/2001-99"
                )
                hub.dispatch([ring])
                unknown = 'article[data-call-id="u.1"]'
                await desk.wait_for_selector(f"{unknown} .unknown form.create", timeout=10_000)
                await shot(desk, tmp_path, "09-desk-unknown-caller")
                await desk.fill(f'{unknown} input[name="name"]', "Dana Stranger")
                await desk.fill(f'{unknown} input[name="tags"]', "vip, new")
                await desk.click(f"{unknown} form.create button")
                await desk.wait_for_selector(
                    f'{unknown} .customer[data-created="yes"]', timeout=10_000
                )
                created = await pool.fetchrow(
                    "SELECT c.id, c.name FROM customers c JOIN customer_phones p"
                    " ON p.customer_id = c.id WHERE p.e164 = $1",
                    STRANGER,
                )
                assert created["name"] == "Dana Stranger"
                actor = await pool.fetchval(
                    "SELECT actor FROM audit_log"
                    " WHERE action = 'customer.create' AND target_id = $1",
                    created["id"],
                )
                assert actor == "2001"
                hub.dispatch([CallRetracted("u.1", "2001", now, "caller_gone")])
                hub.dispatch([dataclasses.replace(ring, call_id="u.2")])
                again = 'article[data-call-id="u.2"]'
                await desk.wait_for_selector(f"{again} .customer-name", timeout=10_000)
                assert await desk.text_content(f"{again} .customer-name") == "Dana Stranger"
                assert await desk.eval_on_selector_all(
                    f"{again} .badge", "bs => bs.map(b => b.textContent)"
                ) == ["new", "vip"]
                await shot(desk, tmp_path, "10-desk-known-now")
                hub.dispatch([CallRetracted("u.2", "2001", now, "caller_gone")])

                # --- pause: QueuePause reaches the PBX; the wallboard shows it -----------------
                await desk.select_option("#pause-reason", "lunch")
                await desk.click("#pause")
                await desk.wait_for_selector('#presence-state[data-paused="true"]', timeout=10_000)
                assert pbx.paused == {"2001": "lunch"}
                sent = [a for a in ami.actions_seen if a.get("action", "").lower() == "queuepause"]
                assert [(a["interface"], a["paused"], a.get("reason")) for a in sent] == [
                    ("PJSIP/2001", "true", "lunch")
                ]
                await wait_fig(wall, "senior", "paused", "1")
                row = await wall.text_content('#agents tr[data-device="2001"]') or ""
                assert "paused · lunch" in row
                await shot(desk, tmp_path, "11-desk-paused")
                await shot(wall, tmp_path, "12-wallboard-paused")
                await desk.click("#resume")
                await desk.wait_for_selector('#presence-state[data-paused="false"]', timeout=10_000)
                assert pbx.paused == {}
                await wait_fig(wall, "senior", "paused", "0")

                # --- a busy session: at most 20 calls, earlier ones folded -------------------
                flood: list[CallEvent] = []
                for i in range(25):
                    cid = f"h.{i:02d}"
                    flood.append(
                        CallRinging(
                            cid, "2001", now, f"+1555000{i:04d}", "", "support", f"PJSIP/2001-{i}"
                        )
                    )
                    flood.append(CallRetracted(cid, "2001", now, "answered_elsewhere"))
                hub.dispatch(flood)
                await desk.wait_for_selector(
                    'article[data-call-id="h.24"][data-state="retracted"]', timeout=10_000
                )
                cards = await desk.eval_on_selector_all(
                    "#calls > article", "as => as.map(a => [a.dataset.callId, a.dataset.collapsed])"
                )
                assert len(cards) == 20
                assert cards[0] == ["h.24", "no"]
                assert all(state == "yes" for cid, state in cards[1:] if cid != first.call_id)
                assert first.call_id in [cid for cid, _ in cards], "a disposition still owed"
                await shot(desk, tmp_path, "13-desk-history-bounded")
                await desk.check(f'{call} input[value="resolved"]')
                await desk.click(f"{call} .disposition button[type=submit]")
                await desk.wait_for_selector(f'{call} form[data-saved="yes"]', timeout=10_000)
                await desk.wait_for_selector("#wrapup[hidden]", state="attached", timeout=10_000)

                # --- an agent's token does not open the wallboard --------------------------
                nosy = await (await browser.new_context(viewport=size)).new_page()
                await nosy.goto(http.url + "/wallboard")
                await nosy.fill("#token", tokens["1001"])
                await nosy.click("#login button[type=submit]")
                await nosy.wait_for_function(
                    "() => document.querySelector('#login-error')"
                    ".textContent.includes('supervisors')",
                    timeout=10_000,
                )
                assert await nosy.eval_on_selector("#queues", "q => q.children.length") == 0
                await shot(nosy, tmp_path, "14-wallboard-refused-for-an-agent")
                assert await desk.eval_on_selector_all("script", "s => s.length") == 1
            finally:
                await browser.close()
    finally:
        await http.stop()
        await link.stop()
        await hub.stop()
        await ami.stop()
