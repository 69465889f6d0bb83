"""A container over its memory limit is killed, reported OOMKilled and restarted, as a kubelet
does it; nothing else on the node notices."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from ferry.adapters.kube import Kube
from ferry_local.wait import eventually
from tests.e2e.agent.support import (
    SHELL_IMAGE,
    AgentProcess,
    container_status,
    create_pod,
    local_spec,
    read_pod,
    server_container,
    wait_pod,
    wait_ready,
)
from tests.support.chaos import Case

# Prints its cgroups, then takes 2 MiB every 10 ms up to 512 MiB and holds it: far past the
# limit, never past what the machine can spare if nothing stops it.
LEAK = """
import sys, time
print(open("/proc/self/cgroup").read(), flush=True)
chunks = []
while len(chunks) < 256:
    chunks.append(b"x" * (2 << 20))
    time.sleep(0.01)
time.sleep(600)
"""
LIMIT = "64Mi"


def leaker() -> dict[str, Any]:
    return {
        "name": "leaker",
        "image": SHELL_IMAGE,
        "command": [sys.executable, "-c", LEAK],
        "resources": {"limits": {"memory": LIMIT}},
    }


async def oom_killed_twice(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    def restarted(pod: dict[str, Any]) -> bool:
        status = container_status(pod, "leaker")
        last = status.get("lastState", {}).get("terminated", {})
        return bool(status.get("restartCount", 0) >= 2 and last.get("reason") == "OOMKilled")

    pod = await wait_pod(kube, namespace, name, "OOMKilled and restarted twice", restarted)
    last = container_status(pod, "leaker")["lastState"]["terminated"]
    assert last["exitCode"] == 137
    return pod


async def oom_event(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        listed = await kube.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query={"fieldSelector": f"involvedObject.name={name},reason=OOMKilled"},
        )
        items = listed.get("items") or []
        return items[0] if items else None

    event: dict[str, Any] = await eventually(
        found, timeout=30, what=f"an OOMKilled Event on {name}"
    )
    assert event["type"] == "Warning"
    assert f"over its memory limit of {LIMIT}" in event["message"]
    return event


async def memory_condition(kube: Kube, node: str) -> dict[str, Any]:
    found = await kube.get(f"/api/v1/nodes/{node}") or {}
    conditions = {c["type"]: c for c in found["status"]["conditions"]}
    condition: dict[str, Any] = conditions["KernelMemoryLimits"]
    return condition


@pytest.mark.chaos("misbehaving predictors")
async def test_a_container_over_its_memory_limit_is_oom_killed_and_restarted(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    await create_pod(kube, namespace, "steady", local_spec([server_container()]))
    await wait_ready(kube, namespace, "steady")
    created = await create_pod(kube, namespace, "leaky", local_spec([leaker()]))

    await oom_killed_twice(kube, namespace, "leaky")
    event = await oom_event(kube, namespace, "leaky")
    condition = await memory_condition(kube, agent.node_name)
    if condition["status"] == "True":
        # The kernel's limit: the process was in its container's cgroup from its first line.
        assert "killed by the kernel (memory cgroup" in event["message"]
        cgroup = f"{created['metadata']['uid']}_leaker"
        assert cgroup in (agent.pod_folder(created) / "logs" / "leaker.log").read_text()
    else:
        assert "killed by the node agent's watchdog" in event["message"]

    assert agent.process is not None and agent.process.poll() is None
    neighbour = await read_pod(kube, namespace, "steady") or {}
    assert container_status(neighbour, "server")["restartCount"] == 0
    assert container_status(neighbour, "server")["ready"]
    chaos.handled()


@pytest.mark.chaos("misbehaving predictors")
async def test_where_no_cgroup_can_be_made_a_watchdog_kills_it_and_the_node_says_so(
    watchdog_agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    condition = await memory_condition(kube, watchdog_agent.node_name)
    assert (condition["status"], condition["reason"]) == ("False", "Watchdog")
    assert "a watchdog kills a container" in condition["message"]

    async def node_warning() -> list[dict[str, Any]] | None:
        listed = await kube.request(
            "GET",
            "/api/v1/namespaces/default/events",
            query={"fieldSelector": f"involvedObject.name={watchdog_agent.node_name}"},
        )
        found = [e for e in listed["items"] if e["reason"] == "Watchdog"]
        return found or None

    warnings = await eventually(node_warning, timeout=30, what="the Node's Watchdog Event")
    assert [e["type"] for e in warnings] == ["Warning"]

    spec = local_spec([leaker()], nodeName=watchdog_agent.node_name)
    await create_pod(kube, namespace, "leaky", spec)
    await oom_killed_twice(kube, namespace, "leaky")
    event = await oom_event(kube, namespace, "leaky")
    print(f"watchdog: {event['message']}")
    assert "killed by the node agent's watchdog (resident memory" in event["message"]
    assert watchdog_agent.process is not None and watchdog_agent.process.poll() is None
    chaos.handled()
