"""What the node groups look like now: their Ferry pods the scheduler has not placed, their
nodes with the pods on them, and their Auto Scaling groups. Read by the capacity loop once a
pass, from the API server's watch cache where it can (resourceVersion 0) and with one AWS call
for all groups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ferry import metrics
from ferry.adapters.aws import Aws, AwsError
from ferry.adapters.kube import Kube
from ferry.capacity.asg import AsgState
from ferry.capacity.cluster import (
    NODE_GROUP_LABEL,
    NodeView,
    PendingPod,
    group_of_labels,
    node_view,
    pending_pod,
    pod_name,
    watched,
)
from ferry.capacity.node_group import NodeGroup
from ferry.capacity.quantity import QuantityError

log = logging.getLogger("ferry.capacity")

# Pods of this many nodes are listed at once: each is one read of the API server's watch cache.
LIST_CONCURRENCY = 16
_FERRY_PODS = "app.kubernetes.io/managed-by=ferry,ferry.dev/api"


@dataclass(frozen=True)
class AsgReading:
    states: dict[str, AsgState]
    """Each node group's Auto Scaling group, by node group."""
    unavailable: dict[str, str]
    """Why a group's Auto Scaling group could not be read, by node group."""
    failed: bool = False
    """AWS answered with an error (throttling, access denied), rather than without the group."""


@dataclass(frozen=True)
class Observation:
    nodes: list[NodeView]
    pending: list[PendingPod]
    asgs: AsgReading


async def describe(aws: Aws, groups: Sequence[NodeGroup]) -> AsgReading:
    """Each group's Auto Scaling group, or why it could not be read; one call for all."""
    by_asg = {str(group.asg_name): group.name for group in groups}
    found: dict[str, AsgState] = {}
    params: dict[str, Any] = {"AutoScalingGroupNames": sorted(by_asg), "MaxRecords": 100}
    try:
        while True:
            page = await aws.call("autoscaling", "describe_auto_scaling_groups", **params)
            for described in page.get("AutoScalingGroups") or ():
                state = AsgState.of(described)
                if state.name in by_asg:
                    found[by_asg[state.name]] = state
            if not page.get("NextToken"):
                break
            params["NextToken"] = page["NextToken"]
    except AwsError as error:
        for group in groups:
            metrics.CAPACITY_FAILURES.labels(group.name, "describe").inc()
        why = {group.name: f"Auto Scaling group {group.asg_name}: {error}" for group in groups}
        return AsgReading({}, why, failed=True)
    missing = {
        group.name: f"Auto Scaling group {group.asg_name} does not exist (asgName in "
        "FERRY_NODE_GROUPS)"
        for group in groups
        if group.name not in found
    }
    for name, state in found.items():
        metrics.CAPACITY_DESIRED.labels(name).set(state.desired)
    return AsgReading(found, missing)


def _selectors(group: NodeGroup) -> list[str]:
    by_name = f"{NODE_GROUP_LABEL}={group.name}"
    if not group.labels:
        return [by_name]
    by_labels = ",".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
    return [by_labels] if group.labels.get(NODE_GROUP_LABEL) == group.name else [by_labels, by_name]


async def pods_on(kube: Kube, node: str, *, fresh: bool = False) -> list[dict[str, Any]]:
    """The pods bound to `node`, from the watch cache (indexed by node), or `fresh` from etcd."""
    query = {"fieldSelector": f"spec.nodeName={node}"}
    if not fresh:
        query["resourceVersion"] = "0"
    found = await kube.request("GET", "/api/v1/pods", query=query)
    items: list[dict[str, Any]] = found.get("items") or []
    return items


async def node_views(kube: Kube, groups: Sequence[NodeGroup]) -> list[NodeView]:
    nodes: dict[str, tuple[dict[str, Any], NodeGroup]] = {}
    for group in groups:
        for selector in _selectors(group):
            for node in await kube.list("/api/v1/nodes", selector):
                # A node that two groups' labels both describe belongs to the first of them.
                if group_of_labels(node["metadata"].get("labels") or {}, groups) is group:
                    nodes[node["metadata"]["name"]] = (node, group)
    limit = asyncio.Semaphore(LIST_CONCURRENCY)

    async def view(node: dict[str, Any], group: NodeGroup) -> NodeView | None:
        async with limit:
            pods = await pods_on(kube, node["metadata"]["name"])
        try:
            return node_view(node, pods, group)
        except QuantityError as error:
            log.warning("node %s left out: %s", node["metadata"]["name"], error)
            return None

    views = await asyncio.gather(*(view(node, group) for node, group in nodes.values()))
    return [v for v in views if v is not None]


async def pending_pods(
    kube: Kube, groups: Sequence[NodeGroup], namespaces: Iterable[str]
) -> list[PendingPod]:
    found = await kube.request(
        "GET",
        "/api/v1/pods",
        query={
            "labelSelector": _FERRY_PODS,
            "fieldSelector": "spec.nodeName=,status.phase=Pending",
            "resourceVersion": "0",
        },
    )
    namespaces = list(namespaces)
    pending: list[PendingPod] = []
    for pod in found.get("items") or ():
        if not watched(str(pod["metadata"].get("namespace")), namespaces):
            continue
        try:
            seen = pending_pod(pod, groups)
        except QuantityError as error:
            log.warning("pod %s left out: %s", pod_name(pod), error)
            continue
        if seen is not None:
            pending.append(seen)
    return pending


async def observe(
    kube: Kube, aws: Aws, groups: Sequence[NodeGroup], namespaces: Iterable[str]
) -> Observation:
    # In this order, a race errs on the safe side. A pod bound between the two reads of
    # Kubernetes is in neither, so it asks for no node (the next pass sees it placed) rather
    # than for two; a node whose instance AWS reports gone after the nodes were read is not
    # taken for a live one.
    nodes = await node_views(kube, groups)
    pending = await pending_pods(kube, groups, namespaces)
    asgs = await describe(aws, groups)
    for group in groups:
        metrics.CAPACITY_PENDING.labels(group.name).set(
            sum(1 for pod in pending if pod.group == group.name and pod.unschedulable)
        )
    return Observation(nodes, pending, asgs)
