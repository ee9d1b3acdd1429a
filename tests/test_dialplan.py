"""dialplan/: the Asterisk configuration shipped for the bridge, checked as text.

Asterisk does not run here; these checks hold the files to what the bridge and CONTRACT
need: the FastAGI and Stasis entry points, outside values filtered before Queue() and
MixMonitor() see them, least-privilege AMI, private bind addresses.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from bridge.config import DEFAULT_DEVICE_PATTERN, AgiConfig, AriConfig, RoutingConfig

DIALPLAN = Path(__file__).parents[1] / "dialplan"
FILES = [
    "extensions.conf",
    "manager.conf",
    "ari.conf",
    "http.conf",
    "queues.conf",
    "cdr_manager.conf",
    "features.conf",
]


def sections(name: str) -> dict[str, list[tuple[str, str]]]:
    """Asterisk .conf as {section: [(key, value)]}: comments dropped, `=>` same as `=`."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (DIALPLAN / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if m:
            current = m.group(1)
            out.setdefault(current, [])
            continue
        key, _, value = line.partition("=")
        out.setdefault(current, []).append((key.strip(), value.lstrip(">").strip()))
    return out


def values(name: str, section: str, key: str) -> list[str]:
    return [v for k, v in sections(name)[section] if k == key]


def test_every_file_exists_and_parses() -> None:
    for name in FILES:
        assert sections(name), name


def test_fastagi_entry_asks_the_bridge_route_script_on_its_port() -> None:
    ext = sections("extensions.conf")
    agi_url = dict(ext["globals"])["BRIDGE_AGI"]
    assert re.fullmatch(rf"agi://[\w.-]+:{AgiConfig().port}/route", agi_url)
    apps = " ".join(v for _, v in ext["from-trunk"])
    assert "AGI(${BRIDGE_AGI})" in apps
    assert apps.index("Gosub(crm-bridge-callerid") < apps.index("AGI(")
    assert "Goto(crm-bridge-queue,s,1)" in apps


def test_stasis_entry_uses_the_configured_app_name() -> None:
    apps = " ".join(v for _, v in sections("extensions.conf")["from-trunk-ari"])
    assert f"Stasis({AriConfig().app})" in apps
    assert apps.index("Gosub(crm-bridge-callerid") < apps.index("Stasis(")


def test_outside_values_are_filtered_before_queue_and_mixmonitor() -> None:
    lines = [v for _, v in sections("extensions.conf")["crm-bridge-queue"]]
    text = "\n".join(lines)
    # the only raw uses of the bridge's values are inside FILTER()
    for var in ("BRIDGE_QUEUE", "BRIDGE_RECORDING"):
        for use in re.finditer(r"\$\{" + var + r"\}", text):
            assert text[: use.start()].endswith(","), var
            line_start = text.rfind("\n", 0, use.start()) + 1
            assert "FILTER(" in text[line_start : use.start()], var
    queue_app = next(v for v in lines if "Queue(" in v)
    mix_app = next(v for v in lines if "MixMonitor(" in v)
    assert "Queue(${QUEUE}," in queue_app and "MixMonitor(${REC},b)" in mix_app
    # fallbacks when the bridge said nothing
    assert any("${BRIDGE_FALLBACK_QUEUE}" in v for v in lines)
    assert any("${UNIQUEID}.wav" in v for v in lines)
    fallback = dict(sections("extensions.conf")["globals"])["BRIDGE_FALLBACK_QUEUE"]
    assert fallback == RoutingConfig().default_queue
    # allowed characters: no comma, quote, pipe, slash, dollar or space can survive FILTER
    for allowed in re.findall(r"FILTER\(([^,]*),", text):
        assert not set(allowed) & set(",\"'|/$ ;()"), allowed


def test_caller_number_is_filtered_before_any_application() -> None:
    lines = [v for _, v in sections("extensions.conf")["crm-bridge-callerid"]]
    assert "FILTER(+0123456789,${CALLERID(num)})" in lines[0]
    assert "anonymous" in lines[1]
    for context in ("from-trunk", "from-trunk-ari"):
        first = sections("extensions.conf")[context][0][1]
        assert first.endswith(",1,Gosub(crm-bridge-callerid,s,1)")
    # no application receives the raw caller ID anywhere
    text = (DIALPLAN / "extensions.conf").read_text()
    code = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    assert code.count("${CALLERID(num)}") == 1
    assert "CALLERID(name)" not in code and "CALLERID(all)" not in code


def test_ami_user_has_least_privilege_and_an_acl() -> None:
    manager = sections("manager.conf")
    general = dict(manager["general"])
    assert not ipaddress.ip_address(general["bindaddr"]).is_unspecified
    assert ipaddress.ip_address(general["bindaddr"]).is_private
    user = dict(manager["crm-bridge"])
    read = {c.strip() for c in user["read"].split(",")}
    assert read <= {"call", "agent", "cdr", "dialplan"} and {"call", "agent", "cdr"} <= read
    assert user["write"] == "reporting,agent,originate"  # QueuePause; click-to-call
    assert "system" not in user["write"]  # an Originate may never reach System()
    acl = [(k, v) for k, v in manager["crm-bridge"] if k in {"deny", "permit"}]
    assert acl[0] == ("deny", "0.0.0.0/0.0.0.0")
    assert [k for k, _ in acl[1:]] == ["permit"]
    permit = ipaddress.ip_network(acl[1][1].replace("/255.255.255.255", "/32"))
    assert permit.num_addresses == 1 and permit.is_private


def test_http_and_ari_bind_privately() -> None:
    http = dict(sections("http.conf")["general"])
    addr = ipaddress.ip_address(http["bindaddr"])
    assert addr.is_private and not addr.is_unspecified
    ari = dict(sections("ari.conf")["crm-bridge"])
    assert ari["type"] == "user" and ari["read_only"] == "no"
    assert dict(sections("ari.conf")["general"])["allowed_origins"] == ""


def test_queue_members_are_devices_the_bridge_recognises() -> None:
    pattern = re.compile(DEFAULT_DEVICE_PATTERN)
    queues = sections("queues.conf")
    for name in ("support", "senior"):
        settings = dict(queues[name])
        assert settings["strategy"] in {"ringall", "rrmemory"}
        members = values("queues.conf", name, "member")
        assert members
        for member in members:
            interface = member.split(",")[0]
            match = pattern.match(interface)
            assert match and match.group("ext").isdigit(), interface


def test_cdr_events_are_enabled() -> None:
    assert dict(sections("cdr_manager.conf")["general"])["enabled"] == "yes"


def test_busy_agents_are_not_rung_for_a_second_call() -> None:
    queues = sections("queues.conf")
    for name in ("support", "senior"):
        assert values("queues.conf", name, "ringinuse") == ["no"], name
    assert "ringinuse" not in dict(queues["general"])  # a per-queue option


def test_attended_transfer_has_a_feature_code_and_agents_may_transfer() -> None:
    (code,) = values("features.conf", "featuremap", "atxfer")
    assert re.fullmatch(r"[*#0-9]{1,4}", code)
    queue_call = " ".join(v for _, v in sections("extensions.conf")["crm-bridge-queue"])
    options = re.search(r"Queue\(\$\{QUEUE\},([A-Za-z]*)", queue_call)
    assert options is not None and "t" in options.group(1) and "T" not in options.group(1)


def test_trunks_delivering_to_s_are_routed_like_numbered_ones() -> None:
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    for context, app in (("from-trunk", "AGI(${BRIDGE_AGI})"), ("from-trunk-ari", "Stasis(")):
        body = text.split(f"\n[{context}]\n", 1)[1].split("\n[", 1)[0]
        assert "exten => s,1,Gosub(crm-bridge-callerid,s,1)" in body, context
        s_part = body.split("exten => s,1", 1)[1]
        assert app in s_part and "Goto(crm-bridge-queue,s,1)" in s_part, context


def test_manager_bindaddr_warns_that_it_moves_ami_for_every_client() -> None:
    text = (DIALPLAN / "manager.conf").read_text(encoding="utf-8")
    assert "every other AMI client" in " ".join(text.split()) or "for every other" in text


def test_a_second_bridge_is_asked_when_the_first_fastagi_server_fails() -> None:
    """Issue 18: after each AGI() the dialplan checks AGISTATUS (and that a route came back)
    and asks BRIDGE_AGI_2; an empty BRIDGE_AGI_2 skips it; then the queue as before."""
    ext = sections("extensions.conf")
    second = dict(ext["globals"])["BRIDGE_AGI_2"]
    assert re.fullmatch(rf"agi://[\w.-]+:{AgiConfig().port}/route", second)
    assert second != dict(ext["globals"])["BRIDGE_AGI"]
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    body = text.split("\n[from-trunk]\n", 1)[1].split("\n[", 1)[0]
    for entry in body.split("exten => ")[1:]:  # the numbered DIDs and `s`
        code = [line.split(";", 1)[0].strip() for line in entry.splitlines()]
        steps = [line.split(",", 1)[1] for line in code if line]
        first = steps.index("AGI(${BRIDGE_AGI})")
        check = steps[first + 1]
        assert check.startswith("GosubIf(")
        assert '"${AGISTATUS}" != "SUCCESS"' in check and '"${BRIDGE_QUEUE}" = ""' in check
        assert check.endswith("?crm-bridge-agi-failover,s,1)")
        assert steps[first + 2] == "Goto(crm-bridge-queue,s,1)"
    failover = [v for _, v in ext["crm-bridge-agi-failover"]]
    assert failover[0] == 's,1,GotoIf($["${BRIDGE_AGI_2}" = ""]?done)'
    assert failover[1] == "n,AGI(${BRIDGE_AGI_2})"
    assert failover[2] == "n(done),Return()"


def test_hagi_with_dns_srv_is_explained() -> None:
    text = (DIALPLAN / "extensions.conf").read_text(encoding="utf-8")
    assert "hagi://" in text and "_agi._tcp." in text
    readme = (DIALPLAN.parent / "README.md").read_text(encoding="utf-8")
    assert "hagi://" in readme and "_agi._tcp." in readme and "AGISTATUS" in readme
