from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import build_config, load_config
from bridge.errors import ConfigError


def test_defaults_match_the_contract() -> None:
    config = build_config({}, {}, runtime=False)
    assert (config.ami.host, config.ami.port, config.ami.enabled) == ("127.0.0.1", 5038, True)
    assert (config.agi.port, config.agi.budget_ms) == (4573, 300)
    assert (config.http.port, config.pops.port) == (8080, 8765)
    assert config.ari.enabled is False and config.ari.app == "crm-bridge"
    assert config.ari.url == "http://127.0.0.1:8088/ari"
    assert config.routing.default_queue == "support"
    assert config.pbx.default_region == "US"
    assert config.pbx.recording_template == "${linkedid}.wav"
    assert config.pbx.max_call_s == 14400


def test_max_call_s_comes_from_file_or_environment() -> None:
    assert build_config({"pbx": {"max_call_s": 60}}, {}, runtime=False).pbx.max_call_s == 60
    env = {"CRM_BRIDGE_PBX_MAX_CALL_S": "7200"}
    assert build_config({}, env, runtime=False).pbx.max_call_s == 7200


@pytest.mark.parametrize(
    ("channel", "ext"),
    [
        ("PJSIP/1001-0000000a", "1001"),
        ("SIP/1001-00000001", "1001"),
        ("Local/1001@phones/n", "1001"),
        ("Local/2001@phones-00000003;1", "2001"),
    ],
)
def test_default_device_pattern_extracts_the_extension(channel: str, ext: str) -> None:
    match = build_config({}, {}, runtime=False).device_regex.match(channel)
    assert match is not None and match["ext"] == ext


def test_environment_wins_over_the_file() -> None:
    config = build_config(
        {"agi": {"port": 1111}, "ami": {"username": "u", "secret": "file"}},
        {"CRM_BRIDGE_AGI_PORT": "2222", "CRM_BRIDGE_AMI_SECRET": "env"},
    )
    assert config.agi.port == 2222
    assert config.ami.secret == "env"


@pytest.mark.parametrize(
    ("values", "env", "key"),
    [
        ({"agi": {"port": "x"}}, {}, "agi.port"),
        ({}, {"CRM_BRIDGE_AGI_BUDGET_MS": "soon"}, "agi.budget_ms"),
        ({"agi": {"budget_ms": 0}}, {}, "agi.budget_ms"),
        ({"pbx": {"device_pattern": "(no-group)"}}, {}, "pbx.device_pattern"),
        ({"pbx": {"default_region": "XX"}}, {}, "pbx.default_region"),
        ({"pbx": {"max_call_s": 0}}, {}, "pbx.max_call_s"),
        ({}, {"CRM_BRIDGE_PBX_MAX_CALL_S": "forever"}, "pbx.max_call_s"),
        ({"routing": {"timezone": "Mars/Olympus"}}, {}, "routing.timezone"),
        ({"nosuch": {}}, {}, "nosuch"),
        ({"agi": {"nosuch": 1}}, {}, "agi.nosuch"),
        ({"ami": {"enabled": True}}, {}, "ami.username"),
    ],
)
def test_a_bad_value_names_its_key(values: dict, env: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(values, env)
    assert info.value.key == key


def test_secrets_are_redacted() -> None:
    config = build_config({"ami": {"username": "u", "secret": "hunter2"}}, {})
    assert "hunter2" not in repr(config.redacted())


def test_config_file_is_found_through_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text('[routing]\ndefault_queue = "general"\n', encoding="utf-8")
    config = load_config(None, {"CRM_BRIDGE_CONFIG": str(path)}, runtime=False)
    assert config.routing.default_queue == "general"


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b"[agi\nport = \xff")
    with pytest.raises(ConfigError):
        load_config(str(path), {})
