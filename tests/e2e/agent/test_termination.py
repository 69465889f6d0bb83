"""Deletion drains a pod: preStop, SIGTERM, its grace period; an agent that stops leaves nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from ferry.adapters.kube import Kube
from ferry_local import processes
from ferry_local.loopback_service import LoopbackServiceClient
from ferry_local.wait import eventually
from tests.e2e.agent.support import (
    SHELL_IMAGE,
    AgentProcess,
    container_status,
    create_pod,
    create_service,
    local_spec,
    server_container,
    wait_gone,
    wait_pod,
    wait_ready,
)

IN_FLIGHT = 8


async def test_a_deleted_pod_finishes_every_request_it_accepted(
    agent: AgentProcess, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    labels = {"app": "slow"}
    hook = "echo preStop ran >> /hooks/log"
    server = server_container(
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", hook]}}},
        volumeMounts=[{"name": "hooks", "mountPath": "/hooks"}],
    )
    spec = local_spec(
        [server],
        terminationGracePeriodSeconds=30,
        volumes=[{"name": "hooks", "hostPath": {"path": str(tmp_path)}}],
    )
    await create_service(kube, namespace, "slow", labels)
    created = await create_pod(kube, namespace, "slow", spec, labels)
    pod = await wait_ready(kube, namespace, "slow")
    ip = pod["status"]["podIP"]

    async with (
        LoopbackServiceClient(kube, namespace, "slow") as client,
        aiohttp.ClientSession() as stats,
    ):
        requests = [asyncio.create_task(client.get("/slow?s=3")) for _ in range(IN_FLIGHT)]

        async def all_in_flight() -> bool:
            async with stats.get(f"http://{ip}:8080/stats") as reply:
                return bool((await reply.json())["in_flight"] == IN_FLIGHT)

        await eventually(all_in_flight, timeout=10, what=f"{IN_FLIGHT} requests in flight")
        deleted_at = asyncio.get_running_loop().time()
        await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/slow")
        replies = await asyncio.gather(*requests)

    assert [reply.status for reply in replies] == [200] * IN_FLIGHT
    await wait_gone(kube, namespace, "slow")
    # Gone once the server drained, well before the 30 s grace period ran out.
    assert asyncio.get_running_loop().time() - deleted_at < 20
    assert (tmp_path / "log").read_text() == "preStop ran\n"
    log = (agent.pod_folder(created) / "logs" / "server.log").read_text()
    assert f"SIGTERM with {IN_FLIGHT} requests in flight" in log


async def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    stubborn = {
        "name": "stubborn",
        "image": SHELL_IMAGE,
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"],
    }
    await create_pod(
        kube, namespace, "stubborn", local_spec([stubborn], terminationGracePeriodSeconds=2)
    )
    pod = await wait_ready(kube, namespace, "stubborn")
    leader = int(container_status(pod, "stubborn")["containerID"].removeprefix("process://"))
    started = asyncio.get_running_loop().time()
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/stubborn")
    await wait_gone(kube, namespace, "stubborn")
    took = asyncio.get_running_loop().time() - started
    assert 2 <= took < 10, took
    assert not processes.alive(leader)


def _group_members(pgids: set[int]) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) in pgids and processes.alive(int(entry.name)):
            members.append(int(entry.name))
    return members


async def test_an_agent_that_stops_leaves_no_process_behind(
    spare_agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    forks = {
        "name": "forks",
        "image": SHELL_IMAGE,
        "command": ["sh", "-c", "sleep 600 & sleep 600 & wait"],
    }
    spec = local_spec([forks, server_container()], nodeName=spare_agent.node_name)
    await create_pod(kube, namespace, "busy", spec)
    pod = await wait_ready(kube, namespace, "busy")
    pgids = {
        int(status["containerID"].removeprefix("process://"))
        for status in pod["status"]["containerStatuses"]
    }
    assert len(_group_members(pgids)) >= 4  # sh, two sleeps, the server

    assert spare_agent.stop() == 0
    assert _group_members(pgids) == []
    node = await kube.get(f"/api/v1/nodes/{spare_agent.node_name}") or {}
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    stopped = await wait_pod(
        kube,
        namespace,
        "busy",
        "not ready",
        lambda p: all(not s["ready"] for s in p["status"]["containerStatuses"]),
        timeout=5,
    )
    assert stopped["status"]["phase"] == "Running"  # to be run again by the next agent
