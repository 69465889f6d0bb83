"""A component of the local environment that dies is restarted by the supervisor; nothing else
stops, so the APIs it serves keep answering."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ferry.adapters.kube import Kube
from ferry.names import API_LABEL
from ferry_local.cluster import ClusterInfo, read_state, status
from ferry_local.health import healthy
from ferry_local.wait import eventually
from tests.e2e.rollout.support import apply, load
from tests.support.ferry_operator import kubectl

OPERATOR, AGENT = "ferry-operator", "node-agent"
# Requests answered before a kill, and after the component is back, before the load stops.
BEFORE, AFTER = 200, 200


def echo_api(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "RealtimeAPI",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "predictor": {
                "image": "ghcr.io/ferry-dev/examples-echo:0.1.0",
                "port": 9000,
                "readinessPath": "/healthz",
                "env": [{"name": "VERSION", "value": version}],
                "resources": {"cpu": "100m", "memory": "64Mi"},
            },
            "autoscaling": {"minReplicas": 2, "maxReplicas": 2},
        },
    }


def deploy(info: ClusterInfo, name: str, version: str) -> None:
    apply(info, echo_api(name, version))
    kubectl(info, "wait", "--for=condition=Ready", f"rtapi/{name}", "--timeout=180s")


def component(info: ClusterInfo, name: str) -> dict[str, Any]:
    state = read_state(info.layout) or {}
    found: dict[str, Any] = state["components"][name]
    return found


async def restarted(info: ClusterInfo, name: str, killed: dict[str, Any]) -> dict[str, Any]:
    """The component's state once a new process of it runs and answers its health check."""

    async def back() -> dict[str, Any] | None:
        now = component(info, name)
        fresh = now["pid"] != killed["pid"] and now["state"] == "running"
        return now if fresh and healthy(now["health"]) else None

    found: dict[str, Any] = await eventually(back, timeout=60, what=f"{name} to be back")
    return found


@asynccontextmanager
async def steady_load(info: ClusterInfo, api: str, replicas: int) -> AsyncIterator[Counter[str]]:
    """Requests through the API's Service for the length of the block; the outcomes, counted."""
    stop = asyncio.Event()
    outcomes: Counter[str] = Counter()
    loader = asyncio.create_task(load(info, api, stop, replicas, outcomes))
    try:
        yield outcomes
    finally:
        stop.set()
        await loader


async def answered(outcomes: Counter[str], count: int) -> None:
    async def enough() -> bool:
        return outcomes["200"] >= count

    await eventually(enough, timeout=120, what=f"{count} answered requests; so far {outcomes}")


async def test_an_operator_killed_under_load_is_restarted_and_no_request_fails(
    local_env: ClusterInfo,
) -> None:
    name = "echo-steady"
    deploy(local_env, name, "1")
    killed = component(local_env, OPERATOR)

    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, BEFORE)
        os.kill(killed["pid"], signal.SIGKILL)
        back = await restarted(local_env, OPERATOR, killed)
        await answered(outcomes, outcomes["200"] + AFTER)

    print(f"{name}, operator killed under load: {dict(outcomes)}")
    assert set(outcomes) == {"200"}, outcomes
    assert back["restarts"] == 1
    assert (back["lastExit"]["exitCode"], back["lastExit"]["signal"]) == (137, "SIGKILL")
    shown = status(local_env.layout)["components"]
    assert (shown[OPERATOR]["alive"], shown[OPERATOR]["restarts"]) == (True, 1)
    assert [n for n, c in shown.items() if c["restarts"]] == [OPERATOR]

    # The operator that came back still reconciles: an update rolls out.
    apply(local_env, echo_api(name, "2"))
    kube = await Kube.connect(str(local_env.kubeconfig))
    try:

        async def rolled_out() -> bool:
            api = await kube.get(f"/apis/ferry.dev/v1alpha1/namespaces/default/realtimeapis/{name}")
            assert api is not None
            state = api.get("status") or {}
            ready = {c["type"]: c["status"] for c in state.get("conditions") or []}.get("Ready")
            return (
                state.get("observedGeneration") == api["metadata"]["generation"]
                and ready == "True"
                and state.get("updatedReplicas") == state.get("readyReplicas") == 2
            )

        await eventually(rolled_out, timeout=180, what="version 2 rolled out")
    finally:
        await kube.close()
    kubectl(local_env, "delete", "rtapi", name)


async def test_a_node_agent_killed_outright_is_restarted_and_runs_its_pods_again(
    local_env: ClusterInfo,
) -> None:
    # No container runtime outlives the agent here: its pods die with it, as on a node that
    # reboots, and the agent that comes back starts them again, each restart counted.
    name = "echo-reboot"
    deploy(local_env, name, "1")
    pods_path = "/api/v1/namespaces/default/pods"
    selector = {"labelSelector": f"{API_LABEL}={name}"}
    kube = await Kube.connect(str(local_env.kubeconfig))
    try:
        before = (await kube.request("GET", pods_path, query=selector))["items"]
        killed = component(local_env, AGENT)
        os.kill(killed["pid"], signal.SIGKILL)
        back = await restarted(local_env, AGENT, killed)

        async def running_again() -> list[dict[str, Any]] | None:
            pods: list[dict[str, Any]] = (await kube.request("GET", pods_path, query=selector))[
                "items"
            ]
            again = [
                pod
                for pod in pods
                if all(
                    c["ready"] and c["restartCount"] == 1
                    for c in pod["status"]["containerStatuses"]
                )
            ]
            return pods if len(again) == len(before) else None

        pods = await eventually(running_again, timeout=120, what="the pods restarted and ready")
    finally:
        await kube.close()

    assert back["restarts"] == 1
    assert {p["metadata"]["uid"] for p in pods} == {p["metadata"]["uid"] for p in before}
    for pod in pods:
        for container in pod["status"]["containerStatuses"]:
            last = container["lastState"]["terminated"]
            assert (last["exitCode"], last["signal"]) == (137, 9), container
    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, AFTER)
    assert set(outcomes) == {"200"}, outcomes
    kubectl(local_env, "delete", "rtapi", name)
