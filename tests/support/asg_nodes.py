"""The cloud's part for one EC2 Auto Scaling group in moto: its instances become kwok Nodes.

moto launches an instance for each unit of desired capacity but no machine joins a cluster.
`AsgNodes` does what the instances' kubelets and the cloud's node controller would: every live
instance of the group gets a Node with the group's labels, taints and allocatable, and the
providerID aws:///<zone>/<instance-id>, which kwok then keeps Ready and whose pods it runs; a
Node whose instance has left the group is deleted. It also records every desired capacity it
saw, so a test can say what the group went through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from ferry_local.nodes import NodeShape, kwok_node

ASG_LABEL = "test.ferry.dev/asg"
LIVE_STATES = ("Pending", "InService")


@dataclass
class AsgNodes:
    api: ApiClient
    group: Mapping[str, Any]
    """The node group as FERRY_NODE_GROUPS holds it (asgName, labels, taints, allocatable)."""
    autoscaling: Any
    """A boto3 autoscaling client pointed at moto."""
    desired_seen: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """What went wrong while following the group (shown by a test that times out)."""

    @property
    def asg(self) -> str:
        return str(self.group["asgName"])

    def node_name(self, instance_id: str) -> str:
        return f"{self.asg}-{instance_id}".lower()

    def node(self, instance_id: str, zone: str) -> dict[str, Any]:
        allocatable = self.group["allocatable"]
        shape = NodeShape(
            cpu=str(allocatable["cpu"]),
            memory=str(allocatable["memory"]),
            gpu=int(allocatable.get("gpu", 0)),
        )
        labels = {**self.group.get("labels", {}), ASG_LABEL: self.asg}
        body = kwok_node(self.node_name(instance_id), shape, labels)
        body["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone
        body["spec"] = {
            "providerID": f"aws:///{zone}/{instance_id}",
            "taints": [
                {
                    "key": t["key"],
                    "value": t.get("value", ""),
                    "effect": t.get("effect", "NoSchedule"),
                }
                for t in self.group.get("taints", [])
            ],
        }
        return body

    async def describe(self) -> dict[str, Any]:
        found = await asyncio.to_thread(
            self.autoscaling.describe_auto_scaling_groups, AutoScalingGroupNames=[self.asg]
        )
        described: dict[str, Any] = found["AutoScalingGroups"][0]
        return described

    async def nodes(self) -> list[Any]:
        listed = await client.CoreV1Api(self.api).list_node(
            label_selector=f"{ASG_LABEL}={self.asg}"
        )
        return list(listed.items)

    async def sync(self) -> None:
        described = await self.describe()
        desired = int(described["DesiredCapacity"])
        if not self.desired_seen or self.desired_seen[-1] != desired:
            self.desired_seen.append(desired)
        live = {
            self.node_name(i["InstanceId"]): (i["InstanceId"], i["AvailabilityZone"])
            for i in described.get("Instances", [])
            if i["LifecycleState"] in LIVE_STATES
        }
        core = client.CoreV1Api(self.api)
        present = {node.metadata.name for node in await self.nodes()}
        for name in sorted(set(live) - present):
            await core.create_node(self.node(*live[name]))
        for name in sorted(present - set(live)):
            with contextlib.suppress(ApiException):
                await core.delete_node(name)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.sync()
            except Exception as error:  # noqa: BLE001 - kept for the test to show; next round
                self.errors.append(repr(error))
            # The pace of following moto, as instances boot; nothing waits on it.
            await asyncio.sleep(interval)

    async def remove_all(self) -> None:
        core = client.CoreV1Api(self.api)
        for node in await self.nodes():
            with contextlib.suppress(ApiException):
                await core.delete_node(node.metadata.name)


@contextlib.asynccontextmanager
async def joining(
    api: ApiClient, group: Mapping[str, Any], autoscaling: Any, interval: float = 0.25
) -> AsyncIterator[AsgNodes]:
    """Nodes follow the group's instances for the length of an `async with` block."""
    harness = AsgNodes(api, group, autoscaling)
    await harness.sync()
    task = asyncio.create_task(harness.run(interval), name=f"nodes of {harness.asg}")
    try:
        yield harness
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await harness.remove_all()
