"""Requests to a Service of the local cluster at its ClusterIP, as a client in the cluster sends
them.

The host routes the cluster's Service block into its namespace, where kube-proxy picks an
endpoint per connection (ferry_local.network). So which pod answers is kube-proxy's choice, made
when a connection opens: a keep-alive client (one pooled session, what clients in a cluster
do) stays on the pods its connections first reached, while one connection per request spreads
every request anew. Both are here because they meet rollouts and scale-ups differently.

Only a Service whose ClusterIP this machine routes into a local cluster's network is sent to: a
cluster without the network (`ferry local up --no-operator`, the node agent's loopback pods)
gives its Services addresses the default route would take off the machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, get_args

import aiohttp

from ferry.adapters.kube import Kube
from ferry_local.network import routed_into_a_cluster
from ferry_local.wait import eventually

DEFAULT_TIMEOUT = 30.0
Connections = Literal["keep-alive", "per-request"]
CONNECTIONS: tuple[Connections, ...] = get_args(Connections)


class ServiceNotFoundError(LookupError):
    pass


class NoClusterIPError(LookupError):
    """The Service has no ClusterIP this machine can reach: it is headless, or its cluster has
    no pod network."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str] | None,
    timeout: float,
) -> Reply:
    """One request and its whole answer; connection errors are the caller's to see."""
    async with session.request(
        method,
        url,
        data=body,
        headers=dict(headers or {}),
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as response:
        return Reply(response.status, await response.read())


def service_port(service: Mapping[str, Any], port: str | int | None) -> Mapping[str, Any]:
    """The Service port named or numbered `port`; its only port when `port` is None."""
    ports = service.get("spec", {}).get("ports") or []
    name = service.get("metadata", {}).get("name")
    if port is None:
        if len(ports) != 1:
            raise ValueError(f"service {name} has {len(ports)} ports: say which one")
        return dict(ports[0])
    for candidate in ports:
        if port in (candidate.get("name"), candidate.get("port")):
            return dict(candidate)
    raise ValueError(f"service {name} has no port {port!r}")


def cluster_address(service: Mapping[str, Any], port: str | int | None = None) -> tuple[str, int]:
    """The Service's ClusterIP and port, if this machine routes it into a cluster."""
    meta = service.get("metadata", {})
    name = f"{meta.get('namespace')}/{meta.get('name')}"
    address = service.get("spec", {}).get("clusterIP")
    if not address or address == "None":
        raise NoClusterIPError(f"service {name} is headless: it has no ClusterIP to send to")
    if not routed_into_a_cluster(address):
        raise NoClusterIPError(
            f"service {name} has ClusterIP {address}, which this machine does not route into a "
            "local cluster's pod network (a cluster started without it, or another cluster): "
            "nothing is sent there"
        )
    return address, int(service_port(service, port)["port"])


def ready_endpoint_count(slices: list[dict[str, Any]]) -> int:
    """The ready endpoints of a Service's EndpointSlices, as kube-proxy counts them."""
    return sum(
        1
        for item in slices
        for endpoint in item.get("endpoints") or ()
        if (endpoint.get("conditions") or {}).get("ready")
    )


class ClusterIPClient:
    """`async with ClusterIPClient(kube, namespace, name) as service: await service.get("/")`.

    The Service is read once, at start; `connections` is "keep-alive" (one pooled session, the
    default) or "per-request" (a connection of its own for each request)."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        port: str | int | None = None,
        *,
        connections: Connections = "keep-alive",
    ) -> None:
        if connections not in CONNECTIONS:
            raise ValueError(f"connections is one of {', '.join(CONNECTIONS)}, not {connections!r}")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.port = port
        self.connections = connections
        self.address: tuple[str, int] = ("", 0)
        self.url = ""
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ClusterIPClient:
        service = await self.kube.get(f"/api/v1/namespaces/{self.namespace}/services/{self.name}")
        if service is None:
            raise ServiceNotFoundError(f"service {self.namespace}/{self.name} not found")
        self.address = cluster_address(service, self.port)
        self.url = "http://{}:{}".format(*self.address)
        # No bound of the client's own (aiohttp's is 100 connections): its callers bound how
        # many requests they have out.
        connector = aiohttp.TCPConnector(limit=0, force_close=self.connections == "per-request")
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def ready_endpoints(self) -> int:
        slices = await self.kube.list(
            f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices",
            f"kubernetes.io/service-name={self.name}",
        )
        return ready_endpoint_count(slices)

    async def wait_until_serving(self, endpoints: int = 1, timeout: float = 60.0) -> None:
        """Until the EndpointSlices list `endpoints` ready endpoints and the ClusterIP takes a
        connection: kube-proxy's rules follow the slices a moment later, and until they have an
        endpoint a connection is refused. (A connection, not a request: the API counts none.)"""

        async def listed() -> bool:
            return await self.ready_endpoints() >= endpoints

        async def connects() -> bool:
            async with asyncio.timeout(5):
                _, writer = await asyncio.open_connection(*self.address)
            writer.close()
            await writer.wait_closed()
            return True

        what = f"service {self.namespace}/{self.name}"
        await eventually(listed, timeout=timeout, what=f"{endpoints} ready endpoints of {what}")
        await eventually(
            connects, timeout=timeout, what=f"{what} to take connections at {self.url}"
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """One request to the ClusterIP; connection errors are the caller's to see."""
        assert self._session is not None, "use the client in `async with`"
        return await send(
            self._session, method, self.url + path, body=body, headers=headers, timeout=timeout
        )

    async def get(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> Reply:
        return await self.request("GET", path, timeout=timeout)
