"""The real operator scaling RealtimeAPIs whose pods are served by real ferry-proxy processes.

kwok runs the pods in simulation and gives them loopback addresses (127.64.0.0/10) where nothing
listens. `pod_proxies` starts a real `ferry-proxy` on each ready pod's address, on the ports the
Deployment declares (8888 traffic, 8889 admin), in front of the test's controllable upstream, so
the autoscaler scrapes real /stats of real requests; it stops a proxy when its pod goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry import names
from ferry_local import processes
from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo
from tests.e2e.conftest import BIN, Upstream, free_ports
from tests.support.ferry_operator import Operator

TICK_SECONDS = 1.0


class ScalingOperator(Operator):
    def __init__(self, *args: Any, metrics_port: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_port = metrics_port

    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


@pytest.fixture
def operator(
    cluster: ClusterInfo, crd: None, namespace: str, tmp_path: Path, moto: MotoServer
) -> Iterator[ScalingOperator]:
    """ferry-operator ticking every second, its metrics on a port of its own."""
    (metrics_port,) = free_ports(1)
    env = {
        **moto.env(),
        "FERRY_AUTOSCALE_INTERVAL": str(TICK_SECONDS),
        "FERRY_SCRAPE_TIMEOUT": "0.5",
        "FERRY_METRICS_PORT": str(metrics_port),
    }
    running = ScalingOperator(
        cluster, namespace, tmp_path / "operator.log", env=env, metrics_port=metrics_port
    )
    running.start()
    yield running
    running.stop()


class PodProxies:
    """A real ferry-proxy per ready pod of one API (its stable version's, or with `component`
    canary its canary's), on the pod's own address."""

    def __init__(
        self,
        api: ApiClient,
        namespace: str,
        upstream: Upstream,
        logs: Path,
        component: str = names.PREDICTOR,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.upstream, self.logs = namespace, upstream, logs
        self.component = component
        self.running: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        self.silenced: set[str] = set()

    async def ready_pods(self, api_name: str) -> dict[str, str]:
        labels = names.component_labels(api_name, self.component)
        pods = await self.core.list_namespaced_pod(
            self.namespace, label_selector=",".join(f"{k}={v}" for k, v in labels.items())
        )
        return {
            pod.metadata.name: pod.status.pod_ip
            for pod in pods.items
            if pod.status.pod_ip
            and pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
        }

    async def follow(self, api_name: str) -> None:
        """Keep one proxy per ready pod, until cancelled; bounded by the test's deadline."""
        while True:
            ready = await self.ready_pods(api_name)
            for pod, ip in ready.items():
                if pod not in self.running and pod not in self.silenced:
                    self.start(pod, ip)
            for pod in set(self.running) - set(ready):
                await self.stop(pod)
            await asyncio.sleep(0.2)

    def start(self, pod: str, ip: str) -> None:
        # kwok gives a deleted pod's address to a later pod: a proxy still on it from an
        # earlier test would answer for this one (as a CI run once saw, its own failing to bind).
        processes.kill_all(processes.processes_mentioning(f"--listen-host={ip} "), grace=2)
        argv = [
            str(BIN / "ferry-proxy"),
            f"--listen-host={ip}",
            f"--port={names.PROXY_PORT}",
            f"--admin-port={names.PROXY_ADMIN_PORT}",
            f"--upstream-port={self.upstream.port}",
            "--max-concurrency=2",
            "--max-queue-length=50",
            "--grace-period=1",
            # The autoscaler reads the shortest window: one second is what it missed since
            # its last tick.
            "--windows=1,60",
        ]
        self.running[pod] = (ip, processes.spawn(argv, self.logs / f"proxy-{pod}.log"))

    async def stop(self, pod: str) -> None:
        _, process = self.running.pop(pod)
        await asyncio.to_thread(processes.stop_group, process, 5)

    async def silence(self, pod: str) -> None:
        """The pod stays Ready, but its proxy no longer answers."""
        self.silenced.add(pod)
        await self.stop(pod)

    def speak(self, pod: str) -> None:
        self.silenced.discard(pod)

    def ip(self, pod: str) -> str:
        return self.running[pod][0]

    async def close(self) -> None:
        for pod in list(self.running):
            await self.stop(pod)


API = "iris"


@pytest.fixture
async def pod_proxies(
    api: ApiClient, namespace: str, upstream: Upstream, tmp_path: Path
) -> AsyncIterator[PodProxies]:
    """Proxies following the pods of the API named API for the length of the test."""
    async with following(PodProxies(api, namespace, upstream, tmp_path)) as proxies:
        yield proxies


@pytest.fixture
async def canary_proxies(
    api: ApiClient, namespace: str, upstream: Upstream, tmp_path: Path
) -> AsyncIterator[PodProxies]:
    """Proxies following the pods of the canary of the API named API."""
    proxies = PodProxies(api, namespace, upstream, tmp_path, names.CANARY)
    async with following(proxies) as followed:
        yield followed


@contextlib.asynccontextmanager
async def following(proxies: PodProxies) -> AsyncIterator[PodProxies]:
    task = asyncio.create_task(proxies.follow(API))
    try:
        yield proxies
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await proxies.close()
