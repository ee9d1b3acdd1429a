"""The cluster's own metrics, and the `instance` label every exposed sample carries."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["LEADER", "PEERS", "TAKEOVERS", "instance_labelled"]

LEADER = Gauge("crm_bridge_cluster_leader", "1 while this instance holds the jobs' lease")
PEERS = Gauge("crm_bridge_cluster_peers", "Other instances seen on the database lately")
TAKEOVERS = Counter(
    "crm_bridge_cluster_takeovers", "Times this instance took the lease (start included)"
)


class _Labelled(Collector):
    """Every sample of `source` with `instance="<id>"` added (a label it already has wins)."""

    def __init__(self, source: CollectorRegistry, instance_id: str) -> None:
        self._source = source
        self._instance = instance_id

    def collect(self) -> Iterator[Metric]:
        for family in self._source.collect():
            family.samples = [
                sample._replace(labels={"instance": self._instance, **sample.labels})
                for sample in family.samples
            ]
            yield family


def instance_labelled(source: CollectorRegistry, instance_id: str) -> CollectorRegistry:
    """A registry exposing `source`'s metrics labelled by instance, for `GET /metrics`:
    behind a load balancer the instances' series stay apart (see the README's "Running
    several bridges": Prometheus keeps the label with `honor_labels: true`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Labelled(source, instance_id))
    return registry
