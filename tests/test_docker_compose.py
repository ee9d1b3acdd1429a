"""docker/compose.yaml and docker/Dockerfile, checked without Docker: services, mounts,
ports, health checks, and that every environment key is a real configuration key."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import ENV_PREFIX, Config, build_config, section_fields

ROOT = Path(__file__).parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_services_with_images_or_builds(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"asterisk", "postgres", "bridge", "prometheus", "grafana"}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["asterisk"]["image"] == "andrius/asterisk:22"
    build = services["bridge"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    start = " ".join(services["bridge"]["entrypoint"])
    assert "crm-bridge db migrate && exec crm-bridge run" in start


def test_every_service_has_a_health_check_and_the_bridge_waits_for_healthy_ones(
    compose: dict[str, Any],
) -> None:
    for name, service in compose["services"].items():
        test = service["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
    depends = compose["services"]["bridge"]["depends_on"]
    assert {k: v["condition"] for k, v in depends.items()} == {
        "postgres": "service_healthy",
        "asterisk": "service_healthy",
    }
    assert "/healthz" in " ".join(compose["services"]["bridge"]["healthcheck"]["test"])


def test_mounted_files_exist_in_the_repository(compose: dict[str, Any]) -> None:
    mounted = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source, target, *_ = volume.split(":")
            if source.startswith("./"):  # monitoring: files and folders under docker/
                assert (COMPOSE.parent / source).exists(), source
            elif source.startswith("."):
                path = (COMPOSE.parent / source).resolve()
                assert path.is_file(), source
                assert path.parent == ROOT / "dialplan"
                assert target == f"/etc/asterisk/{path.name}"
                mounted.append(path.name)
            else:
                assert source in compose["volumes"], source
    assert {"extensions.conf", "manager.conf", "queues.conf", "http.conf", "ari.conf"} <= set(
        mounted
    )


def test_environment_keys_are_real_config_keys_and_build_a_valid_config(
    compose: dict[str, Any],
) -> None:
    env = compose["services"]["bridge"]["environment"]
    known = {
        f"{ENV_PREFIX}{s.name.upper()}_{k.name.upper()}"
        for s in section_fields()
        for k in dataclasses.fields(getattr(Config(), s.name))
    }
    unknown = set(env) - known
    assert not unknown, f"not configuration keys: {sorted(unknown)}"
    config = build_config({}, {k: str(v) for k, v in env.items()})
    assert config.ami.host == "asterisk" and config.database.url.startswith("postgresql://")


def test_published_ports_are_loopback_only_except_sip(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if name == "asterisk":
                assert port.startswith("5060:5060/udp")
            else:
                assert port.startswith("127.0.0.1:"), (name, port)


def test_fixed_addresses_match_the_asterisk_acl_and_bind_addresses(compose: dict[str, Any]) -> None:
    subnet = ipaddress.ip_network(compose["networks"]["pbx"]["ipam"]["config"][0]["subnet"])
    addresses = {
        name: ipaddress.ip_address(service["networks"]["pbx"]["ipv4_address"])
        for name, service in compose["services"].items()
    }
    assert all(a in subnet and a.is_private for a in addresses.values())
    manager = (ROOT / "dialplan" / "manager.conf").read_text()
    assert f"permit = {addresses['bridge']}/255.255.255.255" in manager
    assert f"bindaddr = {addresses['asterisk']}" in manager
    assert f"bindaddr = {addresses['asterisk']}" in (ROOT / "dialplan" / "http.conf").read_text()
    env = compose["services"]["bridge"]["environment"]
    assert env["CRM_BRIDGE_AMI_SECRET"] in manager
    assert env["CRM_BRIDGE_ARI_PASSWORD"] in (ROOT / "dialplan" / "ari.conf").read_text()


def test_dockerfile_is_slim_non_root_exposes_ports_and_checks_health() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))
    ]
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r"^USER nonroot$", text, re.M)
    assert instructions.index("USER") > instructions.index("RUN")
    assert re.search(r"^EXPOSE 4573 8080 8765$", text, re.M)
    health = text[text.index("HEALTHCHECK") :]
    assert "/healthz" in health.split("ENTRYPOINT")[0]
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), source


def test_prometheus_loads_the_alert_rules_and_scrapes_the_bridge(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prom["volumes"] if v.startswith("./"))
    config = yaml.safe_load((COMPOSE.parent / "prometheus" / "prometheus.yml").read_text())
    assert mounts["./prometheus/alerts.yml"] in config["rule_files"]
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "crm-bridge" and job["metrics_path"] == "/metrics"
    bridge_port = compose["services"]["bridge"]["environment"]["CRM_BRIDGE_HTTP_PORT"]
    assert job["static_configs"][0]["targets"] == [f"bridge:{bridge_port}"]


def test_grafana_provisions_prometheus_and_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    provisioning = COMPOSE.parent / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "crm-bridge.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
