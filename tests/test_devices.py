"""`[pbx] device_pattern` as one regex or a list tried in order (bridge/devices.py)."""

from __future__ import annotations

import pytest

from bridge.config import build_config
from bridge.devices import DevicePatterns, device_of, explain
from bridge.errors import ConfigError

# A FreePBX with chan_sip phones named by extension and PJSIP trunks named by provider.
FREEPBX = [r"^(?:PJSIP|SIP)/(?P<ext>\d{3,5})-[0-9a-f]{8}$", r"^Local/(?P<ext>\d{3,5})@from-queue"]


@pytest.mark.parametrize(
    ("channel", "ext", "index"),
    [
        ("PJSIP/1001-0000000a", "1001", 0),
        ("SIP/1002-00000001", "1002", 0),
        ("Local/1001@from-queue-0000001f;1", "1001", 1),
        ("Local/1001@from-queue/n", "1001", 1),
    ],
)
def test_the_first_pattern_that_matches_names_the_extension(
    channel: str, ext: str, index: int
) -> None:
    patterns = DevicePatterns.parse(FREEPBX)
    assert device_of(patterns, channel) == ext
    assert explain(patterns, channel) == (ext, index)


@pytest.mark.parametrize(
    "channel",
    ["PJSIP/voipms-0000000b", "Local/600@ext-group-00000002;1", "", "PJSIP/1001\r\n-x"],
)
def test_a_trunk_a_hop_or_garbage_maps_to_no_extension(channel: str) -> None:
    patterns = DevicePatterns.parse(FREEPBX)
    assert device_of(patterns, channel) is None
    assert explain(patterns, channel) is None


def test_a_list_comes_from_toml_and_from_the_environment_as_json() -> None:
    from_file = build_config({"pbx": {"device_pattern": FREEPBX}}, {}, runtime=False)
    assert [p.pattern for p in from_file.device_regex.patterns] == FREEPBX
    env = {"CRM_BRIDGE_PBX_DEVICE_PATTERN": '["^SIP/(?P<ext>\\\\d+)-", "^IAX2/(?P<ext>\\\\d+)"]'}
    from_env = build_config({}, env, runtime=False)
    assert device_of(from_env.device_regex, "IAX2/42") == "42"
    single = build_config({}, {"CRM_BRIDGE_PBX_DEVICE_PATTERN": "^X/(?P<ext>\\d+)"}, runtime=False)
    assert device_of(single.device_regex, "X/7") == "7"


@pytest.mark.parametrize(
    "value",
    [[], ["^SIP/(?P<ext>\\d+)", "(no-group)"], ["("], [1], 5, ["ok(?P<ext>x)", None]],
)
def test_a_bad_list_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"pbx": {"device_pattern": value}}, {})
    assert info.value.key == "pbx.device_pattern"


def test_a_bad_json_list_in_the_environment_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, {"CRM_BRIDGE_PBX_DEVICE_PATTERN": '["unclosed'})
    assert info.value.key == "pbx.device_pattern"
