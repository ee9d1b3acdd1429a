"""Several PBXs in the configuration: `[[pbx]]` entries, and the legacy single PBX kept."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from bridge.config import build_config
from bridge.errors import ConfigError

TWO_PBXS = """
[ami]
username = "bridge"

[[pbx]]
name = "east"
default_region = "US"
cdr_source = "csv:/var/log/asterisk/east/Master.csv"
[pbx.ami]
host = "10.0.1.5"
secret = "east-secret"

[[pbx]]
name = "west-2"
default_region = "GB"
device_pattern = '^PJSIP/(?P<ext>[0-9]+)-'
[pbx.ami]
host = "10.0.2.5"
port = 5039
secret = "west-secret"
[pbx.ari]
enabled = true
username = "ari"
password = "ari-secret"
"""


def two_pbxs() -> dict[str, Any]:
    return tomllib.loads(TWO_PBXS)


def test_a_legacy_single_pbx_is_one_site_with_bare_call_ids() -> None:
    config = build_config(
        {"pbx": {"default_region": "DE"}, "ami": {"username": "u", "secret": "s"}}, {}
    )
    (site,) = config.pbxs
    assert site.name == "default" and not site.namespaced
    assert site.pbx.default_region == "DE" and site.ami.username == "u"
    assert site.qualify("1700000000.42") == "1700000000.42"
    assert config.pbx_sites == ()


def test_pbx_entries_each_get_their_own_keys_and_a_namespace() -> None:
    config = build_config(two_pbxs(), {})
    east, west = config.pbxs
    assert (east.name, west.name) == ("east", "west-2")
    assert east.ami.host == "10.0.1.5" and east.ami.port == 5038
    assert west.ami.host == "10.0.2.5" and west.ami.port == 5039
    assert east.ami.username == west.ami.username == "bridge"  # the shared [ami] value
    assert east.ari.enabled is False and west.ari.enabled is True
    assert west.pbx.default_region == "GB" and east.pbx.cdr_source.startswith("csv:")
    assert east.qualify("1700000000.42") == "east:1700000000.42"
    assert west.qualify("1001") == "west-2:1001"
    # The first entry stands for the legacy sections, which single-PBX code still reads.
    assert config.ami.host == "10.0.1.5" and config.pbx.cdr_source == east.pbx.cdr_source
    assert config.for_pbx(west).ami.port == 5039 and config.for_pbx(west).pbx_sites == ()


def test_environment_overrides_an_entry_and_its_ami() -> None:
    env = {
        "CRM_BRIDGE_PBX_WEST_2_DEFAULT_REGION": "FR",
        "CRM_BRIDGE_PBX_EAST_AMI_PORT": "6038",
        "CRM_BRIDGE_PBX_MAX_CALL_S": "600",  # shared by every entry
    }
    east, west = build_config(two_pbxs(), env).pbxs
    assert west.pbx.default_region == "FR" and east.pbx.default_region == "US"
    assert east.ami.port == 6038 and west.ami.port == 5039
    assert east.pbx.max_call_s == west.pbx.max_call_s == 600


def test_secrets_of_every_entry_are_redacted() -> None:
    text = repr(build_config(two_pbxs(), {}).redacted())
    assert "east-secret" not in text and "west-secret" not in text and "ari-secret" not in text
    assert "10.0.2.5" in text


def entry(**keys: Any) -> dict[str, Any]:
    return {"name": "east", "ami": {"username": "u", "secret": "s"}, **keys}


@pytest.mark.parametrize(
    ("entries", "env", "key"),
    [
        ([], {}, "pbx"),
        (["east"], {}, "pbx[0]"),
        ([{"ami": {"username": "u", "secret": "s"}}], {}, "pbx[0].name"),
        ([entry(name="East")], {}, "pbx[0].name"),
        ([entry(name="east:1")], {}, "pbx[0].name"),
        ([entry(name="a" * 17)], {}, "pbx[0].name"),
        ([entry(name="-east")], {}, "pbx[0].name"),
        ([entry(), entry()], {}, "pbx.east.name"),
        ([entry(nosuch=1)], {}, "pbx.east.nosuch"),
        ([entry(ami={"nosuch": 1})], {}, "pbx.east.ami.nosuch"),
        ([entry(ami="10.0.0.1")], {}, "pbx.east.ami"),
        ([entry(default_region="XX")], {}, "pbx.east.default_region"),
        ([entry(cdr_source="ftp://x")], {}, "pbx.east.cdr_source"),
        ([entry(agent_channel="PJSIP/1001")], {}, "pbx.east.agent_channel"),
        ([entry(ami={"username": "u"})], {}, "pbx.east.ami.secret"),
        ([entry(ami={"username": "u", "secret": "s", "port": 70000})], {}, "pbx.east.ami.port"),
        ([entry(ari={"enabled": True, "username": "a"})], {}, "pbx.east.ari.password"),
        ([entry()], {"CRM_BRIDGE_PBX_EAST_MAX_CALL_S": "forever"}, "pbx.east.max_call_s"),
        ([entry()], {"CRM_BRIDGE_PBX_EAST_AMI_PORT": "x"}, "pbx.east.ami.port"),
    ],
)
def test_a_bad_entry_names_its_key(entries: list[Any], env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"pbx": entries}, env)
    assert info.value.key == key
