"""docker/prometheus/alerts.yml: valid for promtool, its unit tests pass, and every metric
it (and the Grafana dashboard) names is one the bridge exports on /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import bridge.runtime  # noqa: F401 - registers every feature's metrics

ROOT = Path(__file__).parents[1]
RULES = ROOT / "docker" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "docker" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "crm-bridge.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)"
)


def exported() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(crm_bridge_[a-z_]+)", expr))


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_unit_tests_fire_and_clear_each_alert() -> None:
    done = subprocess.run(
        [str(PROMTOOL), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_condition_of_the_bridge_has_a_prometheus_rule() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    conditions = {r["labels"].get("condition") for r in rules} - {None}
    assert conditions == {
        "ami_down",
        "ari_down",
        "record_lag",
        "sync_lag",
        "crm_change_lag",
        "data_loss",
        "routing_degraded",
        "spool_disk",
    }


def test_rules_and_dashboard_name_only_exported_metrics() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    used = set().union(*(metric_names(r["expr"]) for r in rules))
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= metric_names(target["expr"])
    assert used - exported() == set()
    assert len(used) >= 12
