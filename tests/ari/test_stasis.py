"""The Stasis app against a fake ARI on loopback: every parked caller is continued."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest

from bridge.ari import build_ari_app
from bridge.ari.stasis import AriApp
from bridge.config import build_config
from bridge.errors import CrmUnavailable
from tests.ari.conftest import RunApp, TableRouter, ari_config
from tests.ari.fake_ari import PASSWORD, USERNAME, FakeAri, RestCall, channel_json, stasis_start


def trace_lines(traces: Path) -> list[str]:
    return (traces / "ari-vip" / "ari.jsonl").read_text(encoding="utf-8").splitlines()


def linkedid_in_ami_log(traces: Path, uniqueid: str) -> str:
    """The Linkedid Asterisk reported for a channel in the same scenario's AMI stream."""
    text = (traces / "ari-vip" / "ami.log").read_bytes().decode("utf-8")
    for block in text.split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
        if fields.get("Uniqueid") == uniqueid and "Linkedid" in fields:
            return fields["Linkedid"]
    raise AssertionError(f"no Linkedid for {uniqueid}")


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_ari_vip_trace_makes_the_recorded_rest_calls_then_continue_last(
    fake: FakeAri, run_app: RunApp, traces: Path
) -> None:
    lines = trace_lines(traces)
    start = json.loads(lines[0])
    recorded = json.loads(lines[1])["_rest"]
    expected = list(zip(recorded[::2], recorded[1::2], strict=True))
    channel_id = start["channel"]["id"]
    fake.park(start["channel"], linkedid=linkedid_in_ami_log(traces, channel_id))
    fake.echo_varset = fake.send_stasis_end = False  # the trace's own events are replayed
    router = TableRouter()
    async with run_app(router) as app:
        await fake.send(lines[0])  # byte for byte as Asterisk sent it
        await fake.wait_for(lambda: channel_id in fake.continued())
        for line in lines[2:]:
            await fake.send(line)
        await app.idle()

        ours = [
            (c.line, c.status) for c in fake.calls_for(channel_id) if c.action != "get_variable"
        ]
        positions = [ours.index(step) for step in expected]  # each recorded call appears ...
        assert positions == sorted(positions)  # ... in the recorded order
        assert ours[-1] == expected[-1] == ("POST /channels/1795464289.67/continue", 204)
        assert fake.variables_of(channel_id) == {
            "BRIDGE_QUEUE": "senior",
            "BRIDGE_PRIORITY": "5",
            "BRIDGE_RULE": "vip",
            "BRIDGE_CUSTOMER_ID": "cust-alice",
            "BRIDGE_CUSTOMER_NAME": "Alice Chen",
            "BRIDGE_TAGS": "vip",
            "BRIDGE_DEGRADED": "0",
            "BRIDGE_RECORDING": "1795464289.66.wav",
        }
        (call,) = router.calls
        assert (call.raw_caller, call.caller, call.caller_name, call.did) == (
            "+15551230001",
            "+15551230001",
            "Alice VIP",
            "18005550100",
        )
        assert call.channel == "Local/18005550100@inbound-ari-00000021;2"
        assert call.uniqueid == channel_id
        ((recorded_call, decision, recording),) = router.records
        assert recorded_call.linkedid == "1795464289.66"
        assert decision.queue == "senior"
        assert recording == "1795464289.66.wav"
        assert app.health().state == "up"
        assert app.in_flight == 0


async def test_credentials_travel_only_in_the_header_and_never_in_logs(
    fake: FakeAri, run_app: RunApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.park(channel_json("1.1"))
    async with run_app(TableRouter()):
        await fake.send(stasis_start(fake.channels["1.1"]))
        await fake.wait_for(lambda: "1.1" in fake.continued())
    assert fake.ws_queries == [{"app": "crm-bridge", "subscribeAll": "false"}]
    assert fake.ws_auth[0].startswith("Basic ")
    assert PASSWORD not in caplog.text
    assert fake.ws_auth[0].split()[1] not in caplog.text


async def test_wrong_password_shows_in_health_without_the_password(
    fake: FakeAri, run_app: RunApp, caplog: pytest.LogCaptureFixture
) -> None:
    config = ari_config(fake.url, password="wrong-Pa55word")
    async with run_app(TableRouter(), connect=False, config=config) as app:
        health = await app.wait_health(lambda h: "last_error" in h.detail)
    assert health.state == "down"
    assert USERNAME in health.detail["last_error"]
    assert "wrong-Pa55word" not in health.detail["last_error"]
    assert "wrong-Pa55word" not in caplog.text
    assert fake.connections == 0


async def test_calls_parked_while_the_link_was_cut_are_continued_on_return(
    fake: FakeAri, run_app: RunApp
) -> None:
    router = TableRouter()
    async with run_app(router) as app:
        fake.refuse_websocket = 503
        await fake.cut()
        await app.wait_health(lambda h: not h.detail["connected"])
        assert fake.lists() == 1
        ours = [f"cut.{n}" for n in range(5)]
        for channel_id in ours:
            fake.park(channel_json(channel_id, number="+15551230002"))
        fake.park(channel_json("other-app", app="someone-else"))
        fake.park(channel_json("with-args", app="crm-bridge,outbound"))
        fake.park(channel_json("in-queue", app_name="Queue", app="support"))
        first = fake.channels["cut.0"]
        fake.refuse_websocket = None
        async with asyncio.timeout(10):
            await app.wait_connected()
        # A StasisStart for one of them arrives as well: it is still continued only once.
        await fake.send(stasis_start(first))
        await fake.wait_for(lambda: set(ours) <= set(fake.continued()))
        await app.idle()

        assert sorted(fake.continued()) == sorted(ours)  # once each, nobody else touched
        for name in ("other-app", "with-args", "in-queue"):
            assert fake.calls_for(name) == []
        for channel_id in ours:
            assert fake.variables_of(channel_id)["BRIDGE_QUEUE"] == "support"
        assert sorted(c.uniqueid for c in router.calls) == sorted(ours)
        assert fake.lists() == 2  # found by the resync after the reconnect
        assert app.health().state == "up"


async def test_two_hundred_concurrent_calls_are_all_decided_and_continued(
    fake: FakeAri, run_app: RunApp
) -> None:
    router = TableRouter()
    ids = [f"1795464289.{n}" for n in range(1000, 1200)]
    for n, channel_id in enumerate(ids):
        fake.park(channel_json(channel_id, number="+15551230001" if n % 2 else "+15551230002"))
    async with run_app(router, budget_ms=5000) as app:
        await asyncio.gather(*(fake.send(stasis_start(fake.channels[i])) for i in ids))
        await fake.wait_for(lambda: len(fake.continued()) == len(ids), within=30)
        await app.idle()
        assert sorted(fake.continued()) == sorted(ids)
        assert fake.channels == {}  # nobody left parked
        for n, channel_id in enumerate(ids):
            calls = fake.calls_for(channel_id)
            assert calls[-1].action == "continue"
            variables = fake.variables_of(channel_id)
            assert variables["BRIDGE_QUEUE"] == ("senior" if n % 2 else "support")
            assert variables["BRIDGE_DEGRADED"] == "0"
        assert len(router.calls) == len(ids)
        assert app.in_flight == 0


async def test_garbage_events_and_a_hung_up_caller_do_not_stop_the_next_call(
    fake: FakeAri, run_app: RunApp
) -> None:
    bad_before = sample("crm_bridge_ari_bad_events_total")
    hostile_id = "evil/../id?x=1#frag %2F"
    fake.park(channel_json(hostile_id, name="Eve\r\nAction: Originate\x00", number="'; DROP--"))
    fake.park(channel_json("gone-at-continue"))
    fake.failures[("continue", "gone-at-continue")] = [404]
    fake.park(channel_json("next"))
    async with run_app(TableRouter()) as app:
        await fake.send("this is not json")
        await fake.send('{"type": "StasisStart", "channel": {"id": "1.1"')  # truncated
        await fake.send(b"\xff\xfe\x00binary")
        await fake.send("[1, 2, 3]")
        await fake.send('{"type": "StasisStart", "args": [], "channel": {"id": 5}}')
        await fake.send({"type": "ChannelTalkingStarted", "channel": {"id": "x"}})
        await fake.send({"type": "Dial", "peer": "nothing we know"})
        await fake.send(stasis_start(channel_json("never-parked")))  # hung up already: 404s
        await fake.send(stasis_start(fake.channels[hostile_id]))
        await fake.send(stasis_start(fake.channels["gone-at-continue"]))
        await fake.send(stasis_start(fake.channels["next"]))
        await fake.wait_for(lambda: "next" in fake.continued())
        await fake.wait_for(lambda: hostile_id in fake.continued())
        await app.idle()

        # the linkedid lookup already says 404: nothing more is tried for it
        assert [(c.action, c.status) for c in fake.calls_for("never-parked")] == [
            ("get_variable", 404)
        ]
        assert fake.calls_for("gone-at-continue")[-1] == RestCall(
            "POST /channels/gone-at-continue/continue", 404, "gone-at-continue", "continue"
        )
        assert fake.variables_of(hostile_id)["BRIDGE_QUEUE"] == "support"
        assert sample("crm_bridge_ari_bad_events_total") - bad_before == 5
        assert app.connected and app.health().state == "up"


async def test_hostile_caller_text_reaches_the_router_sanitised(
    fake: FakeAri, run_app: RunApp
) -> None:
    router = TableRouter()
    fake.park(
        channel_json("h.1", name="Eve\r\nX: y\x00" + "n" * 5000, number="+15551230001\r\nX: 1")
    )
    async with run_app(router) as app:
        await fake.send(stasis_start(fake.channels["h.1"]))
        await fake.wait_for(lambda: "h.1" in fake.continued())
        await app.idle()
    (call,) = router.calls
    assert "\n" not in call.caller_name and "\x00" not in call.caller_name
    assert len(call.caller_name) <= 256
    assert call.raw_caller == "+15551230001  X: 1"
    assert call.caller is None  # not a phone number


async def test_slow_crm_gives_the_default_route_degraded_within_the_budget(
    fake: FakeAri, run_app: RunApp
) -> None:
    degraded_before = sample("crm_bridge_ari_degraded_total")
    gate = asyncio.Event()  # never set: the CRM never answers
    loop = asyncio.get_running_loop()
    times: dict[str, float] = {}
    fake.on_rest = lambda call: times.setdefault(call.action, loop.time())
    fake.park(channel_json("slow.1"))
    async with run_app(TableRouter(gate=gate), budget_ms=200) as app:
        sent = loop.time()
        await fake.send(stasis_start(fake.channels["slow.1"]))
        await fake.wait_for(lambda: "slow.1" in fake.continued(), within=5)
        waited = times["continue"] - sent
        variables = fake.variables_of("slow.1")
        assert variables["BRIDGE_QUEUE"] == "support"
        assert variables["BRIDGE_RULE"] == "default"
        assert variables["BRIDGE_DEGRADED"] == "1"
        assert variables["BRIDGE_CUSTOMER_ID"] == ""
        assert waited < 0.2 + 1.5  # budget + a generous margin: it did not wait for the CRM
        assert sample("crm_bridge_ari_degraded_total") - degraded_before == 1
        await app.idle()


async def test_failing_crm_gives_the_default_route_degraded(fake: FakeAri, run_app: RunApp) -> None:
    fake.park(channel_json("err.1"))
    async with run_app(TableRouter(error=CrmUnavailable("db down"))):
        await fake.send(stasis_start(fake.channels["err.1"]))
        await fake.wait_for(lambda: "err.1" in fake.continued())
    assert fake.variables_of("err.1")["BRIDGE_DEGRADED"] == "1"


async def test_server_errors_on_set_and_continue_still_end_in_a_continue(
    fake: FakeAri, run_app: RunApp
) -> None:
    fake.park(channel_json("flaky.1"))
    fake.failures[("variable", "flaky.1")] = [500]
    fake.failures[("continue", "flaky.1")] = [503, 500]
    async with run_app(TableRouter(), continue_attempts=3) as app:
        await fake.send(stasis_start(fake.channels["flaky.1"]))
        await fake.wait_for(lambda: "flaky.1" in fake.continued())
        await app.idle()
    statuses = [
        (c.action, c.status) for c in fake.calls_for("flaky.1") if c.action != "get_variable"
    ]
    assert statuses == [("variable", 500), ("continue", 503), ("continue", 500), ("continue", 204)]


async def test_a_call_whose_continue_keeps_failing_is_picked_up_by_a_later_resync(
    fake: FakeAri, run_app: RunApp
) -> None:
    fake.park(channel_json("stuck.1"))
    fake.failures[("continue", "stuck.1")] = [502]
    async with run_app(TableRouter(), continue_attempts=1, retry_parked_s=0.1) as app:
        fake.failures[("list", "")] = [500]  # and the resync's first GET /channels fails
        lists = fake.lists()
        await fake.send(stasis_start(fake.channels["stuck.1"]))
        await fake.wait_for(lambda: "stuck.1" in fake.continued())
        await app.idle()
        assert fake.channels == {}
        assert fake.lists() - lists == 2  # the websocket never dropped: no reconnect needed
        assert fake.connections == 1


async def test_application_replaced_is_shown_as_degraded_until_the_app_is_ours_again(
    fake: FakeAri, run_app: RunApp, caplog: pytest.LogCaptureFixture
) -> None:
    async with run_app(TableRouter()) as app:
        await fake.send({"type": "ApplicationReplaced", "application": "crm-bridge"})
        health = await app.wait_health(lambda h: h.state == "degraded")
        assert "ONE bridge" in health.detail["reason"]
        assert "replaced_at" in health.detail
        assert "ApplicationReplaced" in caplog.text
        assert fake.connections == 1  # it does not fight the other instance for the app
        await fake.cut()
        await fake.wait_connected(2)
        await app.wait_health(lambda h: h.state == "up")


async def test_reconnects_with_backoff_after_refused_upgrades(
    fake: FakeAri, run_app: RunApp
) -> None:
    fake.refuse_websocket = 503
    async with run_app(TableRouter(), connect=False) as app:
        health = await app.wait_health(lambda h: "last_error" in h.detail)
        assert health.state == "down"
        assert "503" in health.detail["last_error"]
        fake.refuse_websocket = None
        await fake.wait_connected(1)
        await app.wait_health(lambda h: h.state == "up")


async def test_stop_still_continues_calls_in_hand(fake: FakeAri, run_app: RunApp) -> None:
    gate = asyncio.Event()
    router = TableRouter(gate=gate)
    fake.park(channel_json("late.1"))
    async with run_app(router, budget_ms=2000) as app:
        await fake.send(stasis_start(fake.channels["late.1"]))
        await router.entered.wait()
        assert app.in_flight == 1
    # stop() returned: the call was continued (default route, the CRM never answered)
    assert fake.continued() == ["late.1"]
    assert fake.variables_of("late.1")["BRIDGE_DEGRADED"] == "1"


async def test_uniqueid_template_needs_no_linkedid_lookup(fake: FakeAri, run_app: RunApp) -> None:
    config = ari_config(fake.url)
    config = type(config)(
        **{**config.__dict__, "pbx": type(config.pbx)(recording_template="${uniqueid}.wav")}
    )
    fake.park(channel_json("u.1"), linkedid="l.1")
    async with run_app(TableRouter(), config=config):
        await fake.send(stasis_start(fake.channels["u.1"]))
        await fake.wait_for(lambda: "u.1" in fake.continued())
    assert not [c for c in fake.calls_for("u.1") if c.action == "get_variable"]
    assert fake.variables_of("u.1")["BRIDGE_RECORDING"] == "u.1.wav"


async def test_entries_with_arguments_or_for_another_app_are_not_ours(
    fake: FakeAri, run_app: RunApp
) -> None:
    fake.park(channel_json("args.1", app="crm-bridge,dialout"))
    fake.park(channel_json("other.1", app="another-app"))
    fake.park(channel_json("mine.1"))
    router = TableRouter()
    async with run_app(router) as app:
        with_args = stasis_start(fake.channels["args.1"])
        with_args["args"] = ["dialout"]
        await fake.send(with_args)
        await fake.send(stasis_start(fake.channels["other.1"], app="another-app"))
        await fake.send(stasis_start(fake.channels["mine.1"]))
        await fake.wait_for(lambda: "mine.1" in fake.continued())
        await app.idle()
    assert fake.calls_for("args.1") == [] and fake.calls_for("other.1") == []
    assert [c.uniqueid for c in router.calls] == ["mine.1"]


async def test_decisions_in_progress_are_bounded_and_waiting_ones_fall_back_in_budget(
    fake: FakeAri, run_app: RunApp
) -> None:
    router = TableRouter(gate=asyncio.Event())  # a hung CRM holds every slot it gets
    ids = [f"b.{n}" for n in range(6)]
    for channel_id in ids:
        fake.park(channel_json(channel_id))
    async with run_app(router, budget_ms=300, max_concurrent=2) as app:
        for channel_id in ids:
            await fake.send(stasis_start(fake.channels[channel_id]))
        await fake.wait_for(lambda: len(fake.continued()) == len(ids), within=5)
        await app.idle()
    assert router.peak == 2  # never more decisions at once than slots
    assert all(fake.variables_of(i)["BRIDGE_DEGRADED"] == "1" for i in ids)


async def test_health_starts_as_starting_and_metrics_carry_the_ari_prefix(
    fake: FakeAri, run_app: RunApp
) -> None:
    fake.refuse_websocket = 503
    app = AriApp(ari_config(fake.url), TableRouter())
    assert app.health().state == "down"  # not started
    await app.start()
    try:
        assert app.health().state == "starting"
        await app.wait_health(lambda h: h.state == "down")
    finally:
        await app.stop()
    text = generate_latest().decode()
    for name in (
        "crm_bridge_ari_events_total",
        "crm_bridge_ari_calls_total",
        "crm_bridge_ari_connected",
        "crm_bridge_ari_in_flight",
        "crm_bridge_ari_reconnects_total",
        "crm_bridge_ari_handle_seconds_bucket",
    ):
        assert name in text


async def test_an_oversized_event_costs_a_reconnect_not_the_calls(
    fake: FakeAri, run_app: RunApp
) -> None:
    async with run_app(TableRouter()) as app:
        await fake.send('{"type": "x", "pad": "' + "a" * (2 * 1024 * 1024) + '"}')
        fake.park(channel_json("big.1"))  # parked meanwhile; its StasisStart went nowhere
        await fake.wait_connected(2)  # the client refused the frame and came back
        await app.wait_connected()
        await fake.wait_for(lambda: "big.1" in fake.continued())  # found by the resync
        await app.idle()
        assert fake.connections == 2, "one reconnect"
        assert fake.continued().count("big.1") == 1, "the parked call continued once"


def test_the_composition_root_gets_a_component_only_when_enabled(fake: FakeAri) -> None:
    router = TableRouter()
    assert build_ari_app(build_config({"ami": {"enabled": False}}, environ={}), router) is None
    assert isinstance(build_ari_app(ari_config(fake.url), router), AriApp)
