"""Several bridge instances on one database: identity, heartbeat, and the jobs' lease."""

from bridge.cluster.identity import Instance, InstanceLogFilter, this_instance
from bridge.cluster.leader_only import LeaderOnly
from bridge.cluster.lease import LEASE_LOCK, Lease
from bridge.cluster.metrics import instance_labelled

__all__ = [
    "LEASE_LOCK",
    "Instance",
    "InstanceLogFilter",
    "LeaderOnly",
    "Lease",
    "instance_labelled",
    "this_instance",
]
