"""The capacity loop against moto's Auto Scaling and the real control plane: pending pods get
nodes, idle nodes go after the cool-down, never below the minimum, and AWS refusing is told.

tests.support.asg_nodes turns the group's instances in moto into kwok Nodes, as instances
joining a real cluster would; the real operator sees only Pods, Nodes and the AWS API.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import boto3
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo
from ferry_local.health import healthy
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    create,
    realtime_api,
)
from tests.support import fault_proxy
from tests.support.asg_nodes import AsgNodes, joining
from tests.support.ferry_operator import Operator

COOLDOWN = 3
# 600m for the predictor and 100m for the proxy: one replica per 1-core node.
REPLICA = {"cpu": "600m", "memory": "256Mi"}


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def node_group(namespace: str) -> dict[str, Any]:
    """A group of its own per test, as FERRY_NODE_GROUPS holds it."""
    name = f"cap-{namespace.removeprefix('t-')}"
    return {
        "name": name,
        "asgName": name,
        "labels": {"ferry.dev/node-group": name},
        "taints": [{"key": "ferry.dev/node-group", "value": name, "effect": "NoSchedule"}],
        "allocatable": {"cpu": "1", "memory": "2Gi", "gpu": 0},
        "minSize": 1,
        "maxSize": 3,
    }


@pytest.fixture
def autoscaling(node_group: dict[str, Any], aws_env: dict[str, str]) -> Iterator[Any]:
    """The group's Auto Scaling group in moto, one instance running; its own MaxSize is above
    the operator's maxSize, which is the one that binds."""
    asg = boto3.client("autoscaling")
    name = node_group["asgName"]
    asg.create_launch_configuration(
        LaunchConfigurationName=name, ImageId="ami-12c6146b", InstanceType="m5.large"
    )
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchConfigurationName=name,
        MinSize=1,
        MaxSize=5,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )
    yield asg
    asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    asg.delete_launch_configuration(LaunchConfigurationName=name)


@pytest.fixture
async def nodes(
    api: ApiClient, node_group: dict[str, Any], autoscaling: Any
) -> AsyncIterator[AsgNodes]:
    async with joining(api, node_group, autoscaling) as harness:
        yield harness


class CapacityOperator(Operator):
    metrics_port: int

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as reply:
            text = reply.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


def start_operator(
    cluster: ClusterInfo, namespace: str, log: Path, group: dict[str, Any], env: dict[str, str]
) -> CapacityOperator:
    metrics_port = free_port()
    running = CapacityOperator(
        cluster,
        namespace,
        log,
        env={
            **env,
            "FERRY_NODE_GROUPS": json.dumps([group]),
            "FERRY_CAPACITY_INTERVAL": "1",
            "FERRY_SCALE_IN_COOLDOWN": str(COOLDOWN),
            "FERRY_METRICS_PORT": str(metrics_port),
        },
    )
    running.metrics_port = metrics_port
    running.start()
    return running


@pytest.fixture
def capacity_operator(
    cluster: ClusterInfo,
    crd: None,
    namespace: str,
    tmp_path: Path,
    moto: MotoServer,
    node_group: dict[str, Any],
) -> Iterator[CapacityOperator]:
    running = start_operator(cluster, namespace, tmp_path / "operator.log", node_group, moto.env())
    yield running
    running.stop()


def desired(autoscaling: Any, name: str) -> int:
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return int(found["AutoScalingGroups"][0]["DesiredCapacity"])


async def running_on(api: ApiClient, namespace: str, count: int) -> list[str] | None:
    """The nodes of the namespace's running pods, once there are `count` of them."""
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    nodes = [pod.spec.node_name for pod in pods.items if pod.status.phase == "Running"]
    return nodes if len(nodes) == count else None


async def events(api: ApiClient, namespace: str, **selected: str) -> list[Any]:
    selector = ",".join(f"{k}={v}" for k, v in selected.items())
    found = await client.CoreV1Api(api).list_namespaced_event(namespace, field_selector=selector)
    return list(found.items)


async def test_pending_pods_get_nodes_and_idle_nodes_go_after_the_cooldown(
    api: ApiClient,
    namespace: str,
    node_group: dict[str, Any],
    autoscaling: Any,
    nodes: AsgNodes,
    capacity_operator: CapacityOperator,
) -> None:
    group = node_group["name"]
    assert len(await nodes.nodes()) == 1
    # Three replicas, room for one: two pods are unschedulable until two nodes join.
    wide = realtime_api(
        "wide",
        predictor={"image": "registry.example.com/wide:1", "resources": REPLICA},
        autoscaling={"enabled": False},
        replicas=3,
        nodeGroup=group,
    )
    await create(api, namespace, wide)
    placed = await eventually(
        lambda: running_on(api, namespace, 3), timeout=120, what="three pods running"
    )

    assert desired(autoscaling, group) == 3, nodes.errors
    ours = {node.metadata.name for node in await nodes.nodes()}
    # One pod per node: each on a node of its own, and every node of the group used.
    assert sorted(placed) == sorted(ours), (placed, ours)
    scaled = await events(api, namespace, **{"involvedObject.name": "wide"})
    messages = [e.message for e in scaled if e.reason == "NodeGroupScaledOut"]
    assert messages and all(f"node group {group}: desired capacity" in m for m in messages)
    assert capacity_operator.metric("ferry_capacity_scale_out_total", group=group) == 2
    assert capacity_operator.metric("ferry_capacity_desired", group=group) == 3
    assert max(nodes.desired_seen) == 3

    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "wide"
    )

    async def shrunk() -> bool:
        return desired(autoscaling, group) == 1 and len(await nodes.nodes()) == 1

    await eventually(shrunk, timeout=90, what="the group back at its minimum of one node")
    removed = ours - {node.metadata.name for node in await nodes.nodes()}
    node_events = await events(api, "default", **{"involvedObject.kind": "Node"})
    scaled_in = {
        e.involved_object.name
        for e in node_events
        if e.reason == "NodeScaledIn" and e.involved_object.name.startswith(group)
    }
    assert scaled_in == removed
    assert capacity_operator.metric("ferry_capacity_scale_in_total", group=group) == 2

    # The last node has been idle past the cool-down too; passes go by and it stays.
    passes = capacity_operator.metric("ferry_capacity_passes_total")

    async def three_more_passes() -> bool:
        return capacity_operator.metric("ferry_capacity_passes_total") >= passes + 3

    await eventually(three_more_passes, timeout=30, what="three more capacity passes")
    (last,) = await nodes.nodes()
    assert not last.spec.unschedulable
    assert desired(autoscaling, group) == 1
    assert min(nodes.desired_seen) == 1, nodes.desired_seen
    assert healthy(capacity_operator.liveness_url)


async def test_a_refused_scale_out_is_told_to_the_api_and_tried_again(
    api: ApiClient,
    namespace: str,
    cluster: ClusterInfo,
    crd: None,
    moto: MotoServer,
    tmp_path: Path,
    node_group: dict[str, Any],
    autoscaling: Any,
    nodes: AsgNodes,
) -> None:
    group = node_group["name"]
    with fault_proxy.running(moto.endpoint, tmp_path / "faults.log") as faults:
        faults.inject(
            {
                "service": "autoscaling",
                "action": "DescribeAutoScalingGroups",
                "status": 400,
                "code": "Throttling",
                "message": "Rate exceeded",
                "times": 3,
            },
            {
                "service": "autoscaling",
                "action": "SetDesiredCapacity",
                "status": 403,
                "code": "AccessDenied",
                "message": "not authorized to perform: autoscaling:SetDesiredCapacity",
            },
        )
        env = {**moto.env(), "AWS_ENDPOINT_URL": faults.url}
        operator = start_operator(cluster, namespace, tmp_path / "operator.log", node_group, env)
        try:
            two = realtime_api(
                "two",
                predictor={"image": "registry.example.com/two:1", "resources": REPLICA},
                autoscaling={"enabled": False},
                replicas=2,
                nodeGroup=group,
            )
            await create(api, namespace, two)

            async def refused() -> list[str]:
                found = await events(api, namespace, **{"involvedObject.name": "two"})
                return [e.message for e in found if e.reason == "NodeGroupScaleOutFailed"]

            (message,) = await eventually(refused, timeout=60, what="NodeGroupScaleOutFailed")
            assert "AccessDenied" in message and "autoscaling:SetDesiredCapacity" in message
            assert desired(autoscaling, group) == 1
            throttled, denied = faults.rules()
            # Each throttled describe was retried within its call; the pass went on to scale.
            assert throttled["hits"] == 3 and denied["hits"] >= 1
            failures = operator.metric(
                "ferry_capacity_failures_total", group=group, action="scale_out"
            )
            assert failures >= 1
            assert operator.process is not None and operator.process.poll() is None
            assert healthy(operator.liveness_url)

            faults.inject()  # the role is granted the permission
            await eventually(
                lambda: running_on(api, namespace, 2), timeout=90, what="two pods running"
            )
            assert desired(autoscaling, group) == 2
            # Posted once while it lasted, not at every pass.
            assert len(await refused()) == 1
        finally:
            operator.stop()
