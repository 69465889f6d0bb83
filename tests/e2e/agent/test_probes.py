"""Probes run for real: readiness decides Ready and the Service's endpoints; liveness restarts."""

from __future__ import annotations

from typing import Any

import aiohttp

from ferry.adapters.kube import Kube
from ferry_local.loopback_service import LoopbackServiceClient
from ferry_local.wait import eventually
from tests.e2e.agent.support import (
    AgentProcess,
    condition,
    container_status,
    create_pod,
    create_service,
    local_spec,
    server_container,
    wait_pod,
    wait_ready,
)


async def _requests_seen(ip: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{ip}:8080/stats") as reply,
    ):
        stats: dict[str, Any] = await reply.json()
    return int(stats["total"])


async def test_a_pod_whose_readiness_probe_fails_stays_out_of_the_endpoints(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    labels = {"app": "web"}
    await create_service(kube, namespace, "web", labels)
    await create_pod(kube, namespace, "good", local_spec([server_container()]), labels)
    await create_pod(
        kube, namespace, "bad", local_spec([server_container("server", "--not-ready")]), labels
    )
    good = await wait_ready(kube, namespace, "good")
    bad = await wait_pod(
        kube,
        namespace,
        "bad",
        "running",
        lambda pod: "running" in container_status(pod, "server").get("state", {}),
    )
    bad_ip = bad["status"]["podIP"]

    async def probed_three_times() -> bool:
        return await _requests_seen(bad_ip) >= 3

    await eventually(probed_three_times, timeout=30, what="three readiness probes of pod bad")
    bad = await kube.get(f"/api/v1/namespaces/{namespace}/pods/bad") or {}
    assert bad["status"]["phase"] == "Running"
    assert condition(bad, "Ready") == condition(bad, "ContainersReady") == "False"
    assert container_status(bad, "server")["ready"] is False

    async with LoopbackServiceClient(kube, namespace, "web") as client:
        assert [e.pod for e in client.endpoints()] == ["good"]
        replies = [await client.get("/") for _ in range(4)]
    assert {reply.json()["pod"] for reply in replies} == {"good"}

    slices = await kube.request(
        "GET",
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        query={"labelSelector": "kubernetes.io/service-name=web"},
    )
    listed = {
        address
        for item in slices["items"]
        for endpoint in item.get("endpoints") or ()
        for address in endpoint["addresses"]
    }
    # Loopback addresses never make it into an EndpointSlice (the API server refuses them).
    assert bad_ip not in listed
    assert good["status"]["podIP"] not in listed


async def test_a_failing_liveness_probe_restarts_the_container(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    liveness = {
        "exec": {"command": ["sh", "-c", "exit 1"]},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    startup = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    server = server_container(livenessProbe=liveness, startupProbe=startup)
    await create_pod(kube, namespace, "sick", local_spec([server]))
    pod = await wait_pod(
        kube,
        namespace,
        "sick",
        "restarted after failing its liveness probe",
        lambda p: container_status(p, "server").get("restartCount", 0) >= 1,
    )
    last = container_status(pod, "server")["lastState"]["terminated"]
    # The server exits 0 at SIGTERM: the kill was graceful.
    assert (last["exitCode"], last["reason"]) == (0, "Completed")
