"""The Node object the agent stands for, kept alive as a kubelet does.

The Node is applied at start (labels, the node group's NoSchedule taint, capacity), then the
agent renews its Lease in kube-node-lease every quarter of the lease duration (what the node
lifecycle controller reads as "alive") and re-posts the Ready condition now and then. At stop,
Ready turns False.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import platform
from collections.abc import Mapping, Sequence
from typing import Any

from ferry import __version__
from ferry.adapters.kube import Kube, KubeError
from ferry_local.agent.memory import CONDITION as MEMORY_CONDITION
from ferry_local.agent.memory import Enforcement
from ferry_local.agent.settings import AgentSettings
from ferry_local.agent.status import timestamp
from ferry_local.nodes import NODE_KIND_LABEL

log = logging.getLogger("ferry_local.agent")

FIELD_MANAGER = "ferry-node-agent"
NODE_GROUP_LABEL = "ferry.dev/node-group"
NODE_KIND = "agent"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
STATUS_EVERY = 60.0
# How often the Node is read until the controller-manager has given it a pod CIDR (within a
# second of its registration, on an idle control plane).
POD_CIDR_POLL = 0.2
_PRESSURES = (
    ("MemoryPressure", "KubeletHasSufficientMemory"),
    ("DiskPressure", "KubeletHasNoDiskPressure"),
    ("PIDPressure", "KubeletHasSufficientPID"),
)


def node_manifest(settings: AgentSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.node_name,
            "labels": {
                "kubernetes.io/hostname": settings.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                NODE_KIND_LABEL: NODE_KIND,
                NODE_GROUP_LABEL: settings.node_group,
            },
        },
        "spec": {
            "taints": [
                {"key": NODE_GROUP_LABEL, "value": settings.node_group, "effect": "NoSchedule"}
            ]
        },
    }


def node_status(
    settings: AgentSettings,
    ready: bool,
    now: datetime.datetime,
    previous: Sequence[Mapping[str, Any]] = (),
    memory: Enforcement | None = None,
) -> dict[str, Any]:
    """Capacity, addresses and conditions; a transition time moves only with its status.

    With `memory`, the KernelMemoryLimits condition says how containers' memory limits are
    enforced: True by the kernel (a cgroup each), False by the agent's watchdog, and why."""
    resources = {"cpu": settings.cpu, "memory": settings.memory, "pods": str(settings.pods)}
    before = {c.get("type"): c for c in previous}
    wanted = [
        (
            "Ready",
            "True" if ready else "False",
            "KubeletReady" if ready else "KubeletNotReady",
            "ferry node agent is posting ready status" if ready else "ferry node agent stopped",
        ),
        *((kind, "False", reason, "") for kind, reason in _PRESSURES),
    ]
    if memory is not None:
        status = "True" if memory.kernel else "False"
        wanted.append((MEMORY_CONDITION, status, memory.reason, memory.message))
    conditions = []
    for kind, status, reason, message in wanted:
        old = before.get(kind) or {}
        moved = old.get("status") != status or "lastTransitionTime" not in old
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": timestamp(now),
                "lastTransitionTime": timestamp(now) if moved else old["lastTransitionTime"],
            }
        )
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": settings.node_ip},
            {"type": "Hostname", "address": settings.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "kubeletVersion": f"ferry-agent-{__version__}",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": platform.platform(),
            "kernelVersion": platform.release(),
            "containerRuntimeVersion": "process://",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def lease_manifest(name: str, node_uid: str, now: datetime.datetime) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class NodeRegistration:
    def __init__(
        self, kube: Kube, settings: AgentSettings, memory: Enforcement | None = None
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.memory = memory
        self.path = f"/api/v1/nodes/{settings.node_name}"
        self.uid = ""
        self.conditions: list[dict[str, Any]] = []

    async def _apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.kube.request(
            "PATCH",
            path,
            body=body,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    async def post_status(self, ready: bool) -> None:
        status = node_status(self.settings, ready, _now(), self.conditions, self.memory)
        await self.kube.request(
            "PATCH",
            f"{self.path}/status",
            body={"status": status},
            query={"fieldManager": FIELD_MANAGER},
            content_type="application/strategic-merge-patch+json",
        )
        self.conditions = status["conditions"]

    async def register(self) -> None:
        node = await self._apply(self.path, node_manifest(self.settings))
        self.uid = node["metadata"]["uid"]
        self.conditions = (node.get("status") or {}).get("conditions") or []
        await self.post_status(ready=True)
        await self.renew_lease()

    async def pod_cidr(self) -> str:
        """The Node's pod CIDR, once the controller-manager has allocated it."""
        while True:
            try:
                node = await self.kube.get(self.path)
            except KubeError as error:
                log.warning("node %s not read yet: %s", self.settings.node_name, error)
                node = None
            if cidr := ((node or {}).get("spec") or {}).get("podCIDR"):
                return str(cidr)
            await asyncio.sleep(POD_CIDR_POLL)

    async def renew_lease(self) -> None:
        name = self.settings.node_name
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{name}"
        await self._apply(path, lease_manifest(name, self.uid, _now()))

    async def heartbeat_forever(self) -> None:
        loop = asyncio.get_running_loop()
        last_status = loop.time()
        while True:
            await asyncio.sleep(LEASE_SECONDS / 4)
            try:
                await self.renew_lease()
                if loop.time() - last_status >= STATUS_EVERY:
                    await self.post_status(ready=True)
                    last_status = loop.time()
            except KubeError as error:
                log.warning("node heartbeat failed: %s", error)

    async def mark_not_ready(self) -> None:
        try:
            await self.post_status(ready=False)
        except KubeError as error:
            log.warning("could not mark node %s NotReady: %s", self.settings.node_name, error)
