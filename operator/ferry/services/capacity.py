"""The capacity loop: read the node groups (services.node_groups), let capacity.plan decide,
then grow groups, cordon idle nodes and terminate their instances, and say so.

One pass every FERRY_CAPACITY_INTERVAL seconds, for the whole operator. What a pass hands to
the next (since when each node is idle, which notices were posted) lives in memory: after a
restart every node starts its cool-down again, which only ever delays a scale-in.

Events go where a person looks for them: scale-outs and the problems of pending pods on their
RealtimeAPI, scale-ins on the Node. They are posted through the operator's one Kubernetes
client, since kopf posts Events only from inside its own handlers.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ferry import metrics
from ferry.adapters.aws import Aws, AwsError
from ferry.adapters.kube import Kube, KubeError
from ferry.capacity.cluster import SCALE_IN_ANNOTATION, ApiKey, NodeView, holds_node, pod_name
from ferry.capacity.node_group import NodeGroup
from ferry.capacity.plan import (
    SCALED_OUT,
    CapacityPlan,
    Notice,
    ScaleIn,
    ScaleOut,
    news,
    pause_after,
    plan,
)
from ferry.services.node_groups import observe, pods_on
from ferry.services.status import now_iso
from ferry.services.status_writer import api_path
from ferry.settings import Settings

log = logging.getLogger("ferry.capacity")

FIELD_MANAGER = "ferry-capacity"
EVENT_SOURCE = "ferry-operator"
# Reasons of the loop's own Events (the plan's are in capacity.plan).
SCALE_OUT_FAILED = "NodeGroupScaleOutFailed"
SCALED_IN = "NodeScaledIn"
SCALE_IN_FAILED = "NodeScaleInFailed"
SCALE_IN_ABORTED = "NodeScaleInAborted"
SCALE_IN_CANCELLED = "NodeScaleInCancelled"


def managed_groups(settings: Settings) -> list[NodeGroup]:
    """The node groups the loop looks after: those with an Auto Scaling group."""
    return [group for group in settings.node_groups.values() if group.asg_name is not None]


@dataclass(frozen=True)
class Memory:
    """What one pass hands to the next."""

    idle_since: Mapping[str, float] = field(default_factory=dict)
    notices: frozenset[Notice] = frozenset()
    failures: int = 0
    """Passes in a row that met an error: the next one waits longer."""
    unavailable: Mapping[str, str] = field(default_factory=dict)
    """Why a group was left alone at the last pass: logged again only when it changes."""


# --- telling --------------------------------------------------------------------------------


async def post_event(
    kube: Kube, involved: Mapping[str, Any], kind: str, reason: str, message: str
) -> None:
    """A core/v1 Event about `involved`; cluster-scoped objects' go to "default", as the
    kubelet's do. An Event that cannot be posted is logged, never a reason to stop."""
    namespace = involved.get("namespace") or "default"
    now = now_iso()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
        "involvedObject": dict(involved),
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": EVENT_SOURCE},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event)
    except KubeError as error:
        log.warning("event %s on %s not posted: %s", reason, involved.get("name"), error)


async def post_on_api(kube: Kube, api: ApiKey, kind: str, reason: str, message: str) -> None:
    namespace, name = api
    try:
        found = await kube.get(api_path(namespace, name))
    except KubeError as error:
        log.warning("event %s on %s/%s not posted: %s", reason, namespace, name, error)
        return
    if found is None:
        return  # deleted meanwhile: nobody is left to read it
    involved = {
        "apiVersion": found["apiVersion"],
        "kind": found["kind"],
        "namespace": namespace,
        "name": name,
        "uid": found["metadata"]["uid"],
    }
    await post_event(kube, involved, kind, reason, message)


async def post_on_node(kube: Kube, node: NodeView, kind: str, reason: str, message: str) -> None:
    involved = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
    await post_event(kube, involved, kind, reason, message)


# --- acting ---------------------------------------------------------------------------------


def _node_path(name: str) -> str:
    return f"/api/v1/nodes/{name}"


async def scale_out(kube: Kube, aws: Aws, step: ScaleOut) -> list[Notice]:
    """Raise the group's desired capacity; if AWS refuses, notices for the APIs that wait."""
    try:
        await aws.call(
            "autoscaling",
            "set_desired_capacity",
            AutoScalingGroupName=step.asg,
            DesiredCapacity=step.desired,
            HonorCooldown=False,
        )
    except AwsError as error:
        metrics.CAPACITY_FAILURES.labels(step.group, "scale_out").inc()
        log.warning("node group %s: scale-out to %d failed: %s", step.group, step.desired, error)
        return [
            Notice(
                SCALE_OUT_FAILED,
                step.group,
                api,
                f"node group {step.group}: could not raise {step.asg}'s desired capacity to "
                f"{step.desired} for {count} pending pod(s): {error}",
            )
            for api, count in step.apis().items()
        ]
    metrics.CAPACITY_SCALE_OUT.labels(step.group).inc(step.added)
    metrics.CAPACITY_DESIRED.labels(step.group).set(step.desired)
    log.info(
        "node group %s: desired capacity %d -> %d for %d pending pods",
        step.group,
        step.current,
        step.desired,
        len(step.pods),
    )
    for api, count in sorted(step.apis().items()):
        await post_on_api(
            kube,
            api,
            "Normal",
            SCALED_OUT,
            f"node group {step.group}: desired capacity {step.current} → {step.desired} "
            f"({step.added} more) for {count} pending pod(s) of this API",
        )
    return []


class Outcome(enum.Enum):
    TERMINATED = "terminated"
    ABORTED = "aborted"
    """A pod arrived: the node was handed back."""
    FAILED = "failed"


async def _mark(kube: Kube, node: str, *, cordon: bool) -> None:
    patch = {
        "spec": {"unschedulable": True if cordon else None},
        "metadata": {"annotations": {SCALE_IN_ANNOTATION: now_iso() if cordon else None}},
    }
    await kube.patch_merge(_node_path(node), patch, FIELD_MANAGER)


async def scale_in(kube: Kube, aws: Aws, step: ScaleIn, node: NodeView) -> Outcome:
    """Cordon, look again, terminate the instance with the desired capacity decremented."""
    try:
        if not (node.marked and node.cordoned):
            await _mark(kube, step.node, cordon=True)
        # The scheduler may have bound a pod between the pass's read and the cordon: a fresh
        # read, after the cordon, sees every pod it will ever bind there.
        pods = await pods_on(kube, step.node, fresh=True)
    except KubeError as error:
        metrics.CAPACITY_FAILURES.labels(step.group, "cordon").inc()
        log.warning("node %s: not cordoned for scale-in: %s", step.node, error)
        return Outcome.FAILED
    arrived = [pod_name(p) for p in pods if holds_node(p)]
    if arrived:
        metrics.CAPACITY_SCALE_IN_ABORTED.labels(step.group).inc()
        await release(
            kube, node, SCALE_IN_ABORTED, f"{', '.join(arrived)} arrived as it was cordoned"
        )
        return Outcome.ABORTED
    try:
        await aws.call(
            "autoscaling",
            "terminate_instance_in_auto_scaling_group",
            InstanceId=step.instance_id,
            ShouldDecrementDesiredCapacity=True,
        )
    except AwsError as error:
        metrics.CAPACITY_FAILURES.labels(step.group, "scale_in").inc()
        log.warning("node %s: instance %s not terminated: %s", step.node, step.instance_id, error)
        await post_on_node(
            kube,
            node,
            "Warning",
            SCALE_IN_FAILED,
            f"instance {step.instance_id} of {step.asg} not terminated: {error}; the node stays "
            "cordoned and is tried again at the next pass",
        )
        return Outcome.FAILED
    metrics.CAPACITY_SCALE_IN.labels(step.group).inc()
    metrics.CAPACITY_DESIRED.labels(step.group).dec()
    log.info(
        "node %s: idle %.0fs, instance %s terminated",
        step.node,
        step.idle_seconds,
        step.instance_id,
    )
    await post_on_node(
        kube,
        node,
        "Normal",
        SCALED_IN,
        f"held no pod for {step.idle_seconds:.0f}s: cordoned, and instance {step.instance_id} "
        f"terminated with {step.asg}'s desired capacity decremented (node group {step.group})",
    )
    return Outcome.TERMINATED


async def release(kube: Kube, node: NodeView, reason: str, why: str) -> None:
    """Uncordon a node the loop cordoned to remove, and say why it stays."""
    try:
        await _mark(kube, node.name, cordon=False)
    except KubeError as error:
        metrics.CAPACITY_FAILURES.labels(node.group, "uncordon").inc()
        log.warning("node %s: not uncordoned: %s", node.name, error)
        return
    log.info("node %s: uncordoned: %s", node.name, why)
    await post_on_node(kube, node, "Normal", reason, f"uncordoned: {why}")


async def act(
    kube: Kube, aws: Aws, decided: CapacityPlan, nodes: Sequence[NodeView]
) -> tuple[list[Notice], int]:
    """Carry out the plan: the notices of refused scale-outs, and how many steps failed."""
    by_name = {node.name: node for node in nodes}
    notices: list[Notice] = []
    failures = 0
    for out in decided.scale_out:
        refused = await scale_out(kube, aws, out)
        notices += refused
        failures += bool(refused)
    for step in decided.scale_in:
        outcome = await scale_in(kube, aws, step, by_name[step.node])
        failures += outcome is Outcome.FAILED
    for name in decided.release:
        await release(
            kube,
            by_name[name],
            SCALE_IN_CANCELLED,
            "it is no longer to be removed (busy again, or its group is needed)",
        )
    return notices, failures


# --- the loop -------------------------------------------------------------------------------


async def tick(kube: Kube, aws: Aws, settings: Settings, memory: Memory, now: float) -> Memory:
    """One pass. A Kubernetes error while reading propagates (nothing was done yet); AWS
    errors are reported, and counted into the memory's failures."""
    groups = managed_groups(settings)
    seen = await observe(kube, aws, groups, settings.namespaces)
    unavailable = seen.asgs.unavailable
    for name, why in unavailable.items():
        if memory.unavailable.get(name) != why:
            log.error("node group %s left as it is: %s", name, why)
    decided = plan(
        groups,
        seen.asgs.states,
        seen.nodes,
        seen.pending,
        memory.idle_since,
        now=now,
        cooldown=settings.scale_in_cooldown,
        unavailable=unavailable,
    )
    refused, failures = await act(kube, aws, decided, seen.nodes)
    notices = decided.notices | frozenset(refused)
    for notice in news(notices, memory.notices):
        await post_on_api(kube, notice.api, "Warning", notice.reason, notice.message)
    return Memory(
        idle_since=decided.idle_since,
        notices=notices,
        # A group that does not exist is told, not retried faster or slower: only AWS's
        # errors slow the loop down.
        failures=failures + seen.asgs.failed,
        unavailable=unavailable,
    )


async def run(
    kube: Kube, aws: Aws, settings: Settings, clock: Callable[[], float] = time.monotonic
) -> None:
    """Pass after pass until cancelled. No error ends the loop: each is logged, counted, and
    the next pass waits longer (capacity.plan.pause_after)."""
    memory = Memory()
    log.info(
        "capacity loop: node groups %s, every %gs, scale-in after %gs idle",
        ", ".join(g.name for g in managed_groups(settings)),
        settings.capacity_interval,
        settings.scale_in_cooldown,
    )
    while True:
        try:
            memory = await tick(kube, aws, settings, memory, clock())
            metrics.CAPACITY_PASSES.inc()
        except KubeError as error:
            metrics.CAPACITY_FAILURES.labels("", "pass").inc()
            log.warning("capacity pass abandoned: %s", error)
            memory = replace(memory, failures=memory.failures + 1)
        except Exception:  # a bug must not end capacity management for the operator's lifetime
            metrics.CAPACITY_FAILURES.labels("", "pass").inc()
            log.exception("capacity pass failed")
            memory = replace(memory, failures=memory.failures + 1)
        await asyncio.sleep(pause_after(memory.failures, settings.capacity_interval))
