"""What the capacity loop reads from Pods, Nodes and Auto Scaling groups."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.capacity.asg import AsgState, bounds
from ferry.capacity.cluster import (
    SCALE_IN_ANNOTATION,
    group_of_labels,
    holds_node,
    instance_id,
    node_view,
    pending_pod,
    watched,
)
from ferry.capacity.node_group import NodeGroup
from ferry.capacity.resources import Resources

Mi = 2**20
GPU = NodeGroup("gpu", labels={"pool": "gpu"}, asg_name="gpu-asg")
CPU = NodeGroup("cpu", labels={"ferry.dev/node-group": "cpu"}, asg_name="cpu-asg")
GROUPS = [GPU, CPU]


def pod(
    name: str = "iris-1",
    *,
    node: str | None = None,
    phase: str = "Pending",
    selector: dict[str, str] | None = None,
    conditions: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"resources": {"requests": {"cpu": "600m", "memory": "256Mi"}}}],
        "nodeSelector": {"pool": "gpu"} if selector is None else selector,
    }
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {"app.kubernetes.io/managed-by": "ferry", "ferry.dev/api": "iris"}
            if labels is None
            else labels,
            **meta,
        },
        "spec": spec,
        "status": {"phase": phase, "conditions": conditions or []},
    }


UNSCHEDULABLE = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]


def test_provider_ids_name_their_instance() -> None:
    assert instance_id("aws:///us-east-1a/i-0abc123") == "i-0abc123"
    assert instance_id("aws:////i-0abc123") == "i-0abc123"
    assert instance_id("gce://project/zone/vm") is None
    assert instance_id("aws:///us-east-1a/i-0abc123/extra") is None
    assert instance_id(None) is None


def test_a_group_is_found_by_its_labels_or_by_its_name() -> None:
    assert group_of_labels({"pool": "gpu", "other": "x"}, GROUPS) is GPU
    assert group_of_labels({"ferry.dev/node-group": "gpu"}, GROUPS) is GPU
    assert group_of_labels({"ferry.dev/node-group": "cpu"}, GROUPS) is CPU
    assert group_of_labels({"pool": "cpu"}, GROUPS) is None
    # A group without labels is found by name only, never by the empty set of labels.
    bare = NodeGroup("bare")
    assert group_of_labels({"anything": "x"}, [bare]) is None


def test_an_unschedulable_ferry_pod_is_pending_for_its_group() -> None:
    seen = pending_pod(pod(conditions=UNSCHEDULABLE), GROUPS)
    assert seen is not None
    assert (seen.namespace, seen.name, seen.api, seen.group) == ("ml", "iris-1", "iris", "gpu")
    assert seen.requests == Resources(600, 256 * Mi)
    assert seen.unschedulable
    assert seen.api_key == ("ml", "iris")


@pytest.mark.parametrize(
    "other",
    [
        pod(node="n1"),
        pod(phase="Running"),
        pod(labels={"app": "x"}),
        pod(labels={"app.kubernetes.io/managed-by": "ferry"}),
        pod(selector={}),
        pod(deletionTimestamp="2026-01-01T00:00:00Z"),
    ],
)
def test_placed_leaving_foreign_or_groupless_pods_are_not_pending(other: dict[str, Any]) -> None:
    assert pending_pod(other, GROUPS) is None


def test_a_pod_the_scheduler_has_not_tried_is_pending_but_not_unschedulable() -> None:
    seen = pending_pod(pod(), GROUPS)
    assert seen is not None and not seen.unschedulable


@pytest.mark.parametrize(
    ("other", "holds"),
    [
        (pod(node="n1", phase="Running"), True),
        (pod(node="n1", phase="Pending"), True),
        (pod(node="n1", phase="Succeeded"), False),
        (pod(node="n1", phase="Failed"), False),
        (pod(node="n1", phase="Running", ownerReferences=[{"kind": "DaemonSet"}]), False),
        (pod(node="n1", phase="Running", ownerReferences=[{"kind": "ReplicaSet"}]), True),
        (pod(node="n1", phase="Running", annotations={"kubernetes.io/config.mirror": "x"}), False),
        (pod(node="n1", phase="Running", labels={"app": "not-ferry"}), True),
    ],
)
def test_what_keeps_a_node(other: dict[str, Any], holds: bool) -> None:
    assert holds_node(other) is holds


def node(name: str = "n1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": "u-1", "labels": {"pool": "gpu"}},
        "spec": {"providerID": "aws:///us-east-1a/i-1", **spec},
        "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}},
    }


def test_a_node_view_counts_running_requests_and_the_pods_that_hold_it() -> None:
    pods = [
        pod("a", node="n1", phase="Running"),
        pod("b", node="n1", phase="Succeeded"),
        pod("c", node="n1", phase="Running", ownerReferences=[{"kind": "DaemonSet"}]),
    ]
    view = node_view(node(), pods, GPU)
    assert (view.name, view.uid, view.group, view.instance_id) == ("n1", "u-1", "gpu", "i-1")
    assert view.allocatable == Resources(2000, 4096 * Mi)
    # The DaemonSet's pod uses room but does not keep the node; the finished one does neither.
    assert view.used == Resources(1200, 512 * Mi)
    assert view.free == Resources(800, 3584 * Mi)
    assert view.holders == ("ml/a",)
    assert not view.idle
    assert not view.cordoned and not view.marked


def test_a_node_the_loop_cordoned_is_marked() -> None:
    raw = node(unschedulable=True)
    raw["metadata"]["annotations"] = {SCALE_IN_ANNOTATION: "2026-01-01T00:00:00Z"}
    view = node_view(raw, [], GPU)
    assert view.cordoned and view.marked and view.idle


@pytest.mark.parametrize(
    ("namespace", "patterns", "seen"),
    [
        ("ml", [], True),
        ("ml", ["ml"], True),
        ("web", ["ml"], False),
        ("ml-prod", ["ml-*"], True),
        ("ml-test", ["ml-*", "!ml-test"], False),
        ("kube-system", ["!kube-*"], False),
        ("ml", ["!kube-*"], True),
    ],
)
def test_only_watched_namespaces_count(namespace: str, patterns: list[str], seen: bool) -> None:
    assert watched(namespace, patterns) is seen


def test_an_asg_is_read_from_describe_and_bounded_by_the_tighter_limits() -> None:
    described = {
        "AutoScalingGroupName": "gpu-asg",
        "DesiredCapacity": 2,
        "MinSize": 1,
        "MaxSize": 10,
        "Instances": [
            {"InstanceId": "i-1", "LifecycleState": "InService"},
            {"InstanceId": "i-2", "LifecycleState": "InService", "ProtectedFromScaleIn": True},
            {"InstanceId": "i-3", "LifecycleState": "Pending"},
            {"InstanceId": "i-4", "LifecycleState": "Terminating"},
        ],
    }
    asg = AsgState.of(described)
    assert asg.live == {"i-1", "i-2", "i-3"}
    assert asg.removable == {"i-1"}
    assert bounds(NodeGroup("g", min_size=0, max_size=4), asg) == bounds(
        NodeGroup("g", min_size=1, max_size=4), asg
    )
    tight = bounds(NodeGroup("g", min_size=3, max_size=4), asg)
    assert (tight.low, tight.high) == (3, 4)
    loose = bounds(NodeGroup("g"), asg)
    assert (loose.low, loose.high) == (1, 10)
