"""The node agent as a process, and pods and Services for it, shared by the agent's e2e tests."""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

from ferry.adapters.kube import Kube
from ferry_local import processes
from ferry_local.agent.main import command
from ferry_local.cluster import ClusterInfo
from ferry_local.health import healthy
from ferry_local.wait import eventually, wait_until

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images.yaml"
SERVER_IMAGE = "test.ferry.dev/server:1"
SHELL_IMAGE = "test.ferry.dev/shell"
# Short enough that a test sees several restarts: 0, 0.5, 1, 2, 4, 4 ... seconds.
BACKOFF = ["--backoff-base=0.5", "--backoff-max=4"]


class AgentProcess:
    """`python -m ferry_local.agent` for one node, started and stopped by a test."""

    def __init__(self, cluster: ClusterInfo, node_name: str, state_dir: Path, *flags: str) -> None:
        self.cluster = cluster
        self.node_name = node_name
        self.state_dir = state_dir
        self.flags = flags
        self.log = state_dir / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        argv = command(
            self.cluster.kubeconfig,
            self.node_name,
            self.state_dir,
            port,
            f"--images={IMAGES}",
            *BACKOFF,
            *self.flags,
        )
        process = processes.spawn(argv, self.log, env=dict(os.environ))
        self.process = process
        wait_until(
            lambda: process.poll() is None and healthy(f"http://127.0.0.1:{port}/healthz"),
            timeout=60,
            what=f"the node agent's /healthz (log: {self.log})",
        )

    def stop(self) -> int | None:
        code = processes.stop_group(self.process, grace=30.0) if self.process else None
        self.process = None
        return code

    def pod_folder(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        return self.state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def local_spec(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A pod spec that asks for the agent's nodes: their node-group label and taint."""
    return {
        "nodeSelector": {"ferry.dev/node-group": "local"},
        "tolerations": [
            {
                "key": "ferry.dev/node-group",
                "operator": "Equal",
                "value": "local",
                "effect": "NoSchedule",
            }
        ],
        "terminationGracePeriodSeconds": 10,
        "containers": containers,
        **extra,
    }


def server_container(name: str = "server", *args: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": SERVER_IMAGE,
        "args": list(args),
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        **extra,
    }


async def create_pod(
    kube: Kube,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": spec,
    }
    return await kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=body)


async def read_pod(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for found in (pod.get("status") or {}).get("conditions") or ():
        if found["type"] == kind:
            return str(found["status"])
    return None


def container_status(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for status in (pod.get("status") or {}).get(key) or ():
        if status["name"] == name:
            return dict(status)
    return {}


async def wait_pod(
    kube: Kube, namespace: str, name: str, what: str, check: Any, timeout: float = 60
) -> dict[str, Any]:
    """The pod once `check(pod)` holds."""

    async def holds() -> dict[str, Any] | None:
        pod = await read_pod(kube, namespace, name)
        return pod if pod is not None and check(pod) else None

    result: dict[str, Any] = await eventually(
        holds, timeout=timeout, what=f"pod {namespace}/{name}: {what}"
    )
    return result


async def wait_ready(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return await wait_pod(
        kube, namespace, name, "Ready", lambda pod: condition(pod, "Ready") == "True"
    )


async def wait_gone(kube: Kube, namespace: str, name: str, timeout: float = 60) -> None:
    async def gone() -> bool:
        return await read_pod(kube, namespace, name) is None

    await eventually(gone, timeout=timeout, what=f"pod {namespace}/{name} to be deleted")


async def create_service(
    kube: Kube, namespace: str, name: str, selector: dict[str, str], target: str | int = "http"
) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": target}],
        },
    }
    await kube.request("POST", f"/api/v1/namespaces/{namespace}/services", body=body)
