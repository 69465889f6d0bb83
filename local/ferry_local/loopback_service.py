"""A client-side emulation of a Service, for the node agent's loopback pods: requests spread
over the Service's ready pods as kube-proxy would spread them.

Only the node agent's e2e tier needs it: there the agent runs without the pod network
(`--pod-cidr` in 127.0.0.0/8), and the API server refuses loopback addresses in EndpointSlices
(`endpoints[0].addresses[0]: Invalid value: "127.128.0.5": may not be in the loopback range
(127.0.0.0/8, ::1/128)`), so the slices of its pods can never list them and no kube-proxy could
serve the Service. A cluster with the network (`ferry local up`) serves Services at their
ClusterIP through a real kube-proxy: clients there use ferry_local.cluster_ip.

Where the endpoints come from: the same facts the EndpointSlice controller reads, and by its
rules: the pods the Service's selector matches, with an address, Ready, and not terminating;
the port is the Service port's targetPort, a number or a container port name looked up per pod.
It watches those pods, so readiness changes, new pods and deletions reach it as they happen,
and it sends each request to the next ready endpoint in turn (round robin). The Service's
selector and ports are read once, at start.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from ferry.adapters.kube import Kube
from ferry_local.agent import watch
from ferry_local.cluster_ip import (
    DEFAULT_TIMEOUT,
    Reply,
    ServiceNotFoundError,
    send,
    service_port,
)
from ferry_local.wait import eventually


class NoEndpointsError(ConnectionError):
    """The Service has no ready endpoint: a request to it would be refused."""


@dataclass(frozen=True, order=True)
class Endpoint:
    address: str
    port: int
    pod: str


@dataclass(frozen=True)
class LoopbackReply(Reply):
    endpoint: Endpoint


def _target(pod: Mapping[str, Any], target: int | str) -> int | None:
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    for container in pod.get("spec", {}).get("containers") or ():
        for declared in container.get("ports") or ():
            if declared.get("name") == target:
                return int(declared["containerPort"])
    return None


def _ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def ready_endpoints(port: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """The ready endpoints of one Service port, in a stable order."""
    target = port.get("targetPort", port.get("port"))
    found = []
    for pod in pods:
        if not _ready(pod) or (number := _target(pod, target)) is None:
            continue
        found.append(Endpoint(pod["status"]["podIP"], number, pod["metadata"]["name"]))
    return sorted(found)


def selector_query(service: Mapping[str, Any]) -> str:
    selector = service.get("spec", {}).get("selector") or {}
    if not selector:
        name = service.get("metadata", {}).get("name")
        raise ValueError(f"service {name} has no selector")
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


class LoopbackServiceClient:
    """`async with LoopbackServiceClient(kube, ns, name) as client: await client.get("/")`."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        port: str | int | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.port = port
        self._session: aiohttp.ClientSession | None = None
        self._pods: dict[str, dict[str, Any]] = {}
        self._endpoints: list[Endpoint] = []
        self._turn = itertools.count()
        self._synced = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._service_port: Mapping[str, Any] = {}

    async def __aenter__(self) -> LoopbackServiceClient:
        path = f"/api/v1/namespaces/{self.namespace}/services/{self.name}"
        service = await self.kube.get(path)
        if service is None:
            raise ServiceNotFoundError(f"service {self.namespace}/{self.name} not found")
        self._service_port = service_port(service, self.port)
        query = {"labelSelector": selector_query(service)}
        self._watcher = asyncio.create_task(self._follow(query))
        self._session = aiohttp.ClientSession()
        synced = asyncio.ensure_future(self._synced.wait())
        await asyncio.wait(
            {synced, self._watcher}, timeout=DEFAULT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if not synced.done():
            synced.cancel()
            await self.__aexit__(None, None, None)
            raise TimeoutError(f"could not list the pods of service {self.namespace}/{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._session is not None:
            await self._session.close()

    async def _follow(self, query: Mapping[str, str]) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        async for event in watch.watch(self.kube, path, query):
            if event.type == watch.LIST:
                self._pods = {p["metadata"]["uid"]: p for p in event.object["items"]}
            elif event.type == "DELETED":
                self._pods.pop(event.object["metadata"]["uid"], None)
            else:
                self._pods[event.object["metadata"]["uid"]] = event.object
            self._endpoints = ready_endpoints(self._service_port, self._pods.values())
            self._synced.set()

    def endpoints(self) -> list[Endpoint]:
        """The ready endpoints now."""
        return list(self._endpoints)

    async def wait_for_endpoints(self, count: int = 1, timeout: float = 60.0) -> list[Endpoint]:
        async def enough() -> list[Endpoint] | None:
            return self.endpoints() if len(self._endpoints) >= count else None

        return await eventually(
            enough,
            timeout=timeout,
            what=f"{count} ready endpoints of service {self.namespace}/{self.name}",
        )

    def next_endpoint(self) -> Endpoint:
        endpoints = self._endpoints
        if not endpoints:
            raise NoEndpointsError(f"service {self.namespace}/{self.name} has no ready endpoint")
        return endpoints[next(self._turn) % len(endpoints)]

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> LoopbackReply:
        """One request to the next ready endpoint; connection errors are the caller's to see."""
        assert self._session is not None, "use the client in `async with`"
        endpoint = self.next_endpoint()
        url = f"http://{endpoint.address}:{endpoint.port}{path}"
        reply = await send(self._session, method, url, body=body, headers=headers, timeout=timeout)
        return LoopbackReply(reply.status, reply.body, endpoint)

    async def get(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> LoopbackReply:
        return await self.request("GET", path, timeout=timeout)
