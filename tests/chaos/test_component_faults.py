"""Components of the local environment killed and paused while an API serves under load.

The supervisor restarts a component that dies and leaves the rest running; a paused one (SIGSTOP,
as a hung process or a stalled node looks) holds up only what waits on it. Through all of it the
API's replicas keep answering, and once the component is back the operator still reconciles.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from ferry.adapters.kube import Kube
from ferry.names import API_LABEL
from ferry_local.cluster import ClusterInfo, read_state, status
from ferry_local.health import healthy, loopback_tls
from ferry_local.wait import eventually
from tests.e2e.rollout.support import api_manifest, apply, load, push_iris
from tests.support.chaos import Case
from tests.support.ferry_operator import kubectl

pytestmark = pytest.mark.chaos("component faults")
OPERATOR, AGENT, APISERVER, ETCD = "ferry-operator", "node-agent", "kube-apiserver", "etcd"
CONTROLLERS, SCHEDULER, MOTO = "kube-controller-manager", "kube-scheduler", "moto"
# Requests answered before a fault, and after it, before the load stops.
BEFORE, AFTER = 200, 200
# How long a paused component stays paused: longer than the operator's and the load client's
# reaction times, shorter than any timeout that would turn a pause into a failure by design.
PAUSE_SECONDS = 10.0


def echo_api(name: str, version: str, replicas: int = 2) -> dict[str, Any]:
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
            "autoscaling": {"minReplicas": replicas, "maxReplicas": replicas},
        },
    }


def deploy(info: ClusterInfo, manifest: dict[str, Any]) -> None:
    apply(info, manifest)
    name = manifest["metadata"]["name"]
    kubectl(info, "wait", "--for=condition=Ready", f"rtapi/{name}", "--timeout=180s")


def component(info: ClusterInfo, name: str) -> dict[str, Any]:
    state = read_state(info.layout) or {}
    found: dict[str, Any] = state["components"][name]
    return found


def restart_counts(info: ClusterInfo) -> dict[str, int]:
    state = read_state(info.layout) or {}
    return {name: int(c["restarts"]) for name, c in state["components"].items()}


async def restarted(info: ClusterInfo, name: str, killed: dict[str, Any]) -> dict[str, Any]:
    """The component's state once a new process of it runs and answers its health check."""

    async def back() -> dict[str, Any] | None:
        now = component(info, name)
        fresh = now["pid"] != killed["pid"] and now["state"] == "running"
        # The controllers and the scheduler serve their health over TLS with certificates of
        # their own making, as the supervisor checks them.
        return now if fresh and healthy(now["health"], loopback_tls()) else None

    found: dict[str, Any] = await eventually(back, timeout=60, what=f"{name} to be back")
    return found


async def kill(info: ClusterInfo, name: str) -> dict[str, Any]:
    """SIGKILL the component; its state once the supervisor has it running and healthy again."""
    killed = component(info, name)
    os.kill(killed["pid"], signal.SIGKILL)
    back = await restarted(info, name, killed)
    assert back["restarts"] == killed["restarts"] + 1, back
    assert (back["lastExit"]["exitCode"], back["lastExit"]["signal"]) == (137, "SIGKILL")
    return back


@contextmanager
def paused(info: ClusterInfo, name: str) -> Iterator[None]:
    """The component's process group stopped for the block, as a hung process looks."""
    pid = component(info, name)["pid"]
    os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


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
    print(f"{api}: {dict(outcomes)}")


async def answered(outcomes: Counter[str], count: int) -> None:
    async def enough() -> bool:
        return outcomes["200"] >= count

    await eventually(enough, timeout=120, what=f"{count} answered requests; so far {outcomes}")


@asynccontextmanager
async def kube_of(info: ClusterInfo) -> AsyncIterator[Kube]:
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        yield kube
    finally:
        await kube.close()


def api_path(name: str) -> str:
    return f"/apis/ferry.dev/v1alpha1/namespaces/default/realtimeapis/{name}"


async def converged(info: ClusterInfo, name: str, replicas: int) -> dict[str, Any]:
    """The API once its current generation is Ready on `replicas` updated replicas."""
    async with kube_of(info) as kube:

        async def ready() -> dict[str, Any] | None:
            api = await kube.get(api_path(name))
            assert api is not None
            state = api.get("status") or {}
            conditions = {c["type"]: c for c in state.get("conditions") or []}
            current = state.get("observedGeneration") == api["metadata"]["generation"]
            counts = (state.get("updatedReplicas"), state.get("readyReplicas"))
            if current and conditions["Ready"]["status"] == "True" and counts == (replicas,) * 2:
                return api
            return None

        found: dict[str, Any] = await eventually(
            ready, timeout=180, what=f"{name} Ready on {replicas} updated replicas"
        )
    return found


async def condition_reason(info: ClusterInfo, name: str, kind: str, reason: str) -> None:
    async with kube_of(info) as kube:

        async def shows() -> bool:
            api = await kube.get(api_path(name))
            assert api is not None
            conditions = {c["type"]: c for c in (api.get("status") or {}).get("conditions") or []}
            return conditions.get(kind, {}).get("reason") == reason

        await eventually(shows, timeout=30, what=f"{name}'s {kind} condition to say {reason}")


async def revision_in_progress(info: ClusterInfo, name: str) -> None:
    async with kube_of(info) as kube:

        async def rolling() -> bool:
            api = await kube.get(api_path(name))
            assert api is not None
            revisions = (api.get("status") or {}).get("revisions") or []
            return bool(revisions) and revisions[-1]["outcome"] == "InProgress"

        await eventually(rolling, timeout=60, what=f"{name}'s rollout under way")


async def test_an_operator_killed_under_load_is_restarted_and_no_request_fails(
    local_env: ClusterInfo, chaos: Case
) -> None:
    name = "echo-steady"
    deploy(local_env, echo_api(name, "1"))
    before = restart_counts(local_env)

    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, BEFORE)
        await kill(local_env, OPERATOR)
        await answered(outcomes, outcomes["200"] + AFTER)

    assert set(outcomes) == {"200"}, outcomes
    after = restart_counts(local_env)
    assert {n for n in after if after[n] != before[n]} == {OPERATOR}
    assert status(local_env.layout)["components"][OPERATOR]["alive"]
    # The operator that came back still reconciles: an update rolls out.
    apply(local_env, echo_api(name, "2"))
    await converged(local_env, name, 2)
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()


async def test_an_operator_killed_mid_rollout_finishes_it_once_and_no_request_fails(
    local_env: ClusterInfo, chaos: Case
) -> None:
    name = "iris-rollout"
    uri = await push_iris(local_env, "chaos-rollout", ("1", "2"))

    def iris(version: str) -> dict[str, Any]:
        manifest = api_manifest(
            name,
            uri,
            version,
            autoscaling={"minReplicas": 3, "maxReplicas": 3},
            rollout={"maxSurge": 1, "maxUnavailable": 0},
        )
        manifest["metadata"]["name"] = name
        return manifest

    deploy(local_env, iris("1"))
    async with steady_load(local_env, name, replicas=3) as outcomes:
        await answered(outcomes, BEFORE)
        apply(local_env, iris("2"))
        await revision_in_progress(local_env, name)
        await kill(local_env, OPERATOR)
        api = await converged(local_env, name, 3)
        await answered(outcomes, outcomes["200"] + AFTER)

    assert set(outcomes) == {"200"}, outcomes
    revisions = [(r["modelVersion"], r["outcome"]) for r in api["status"]["revisions"]]
    assert revisions == [("1", "Complete"), ("2", "Complete")]
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()


@pytest.mark.parametrize(
    ("component", "name"), [(APISERVER, "echo-apiserver"), (ETCD, "echo-etcd")]
)
async def test_a_paused_control_plane_component_fails_no_request_and_the_operator_carries_on_after(
    local_env: ClusterInfo, chaos: Case, component: str, name: str
) -> None:
    deploy(local_env, echo_api(name, "1"))
    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, BEFORE)
        with paused(local_env, component):
            await asyncio.sleep(PAUSE_SECONDS)  # the fault's length, not a wait for a condition
        await answered(outcomes, outcomes["200"] + AFTER)

    assert set(outcomes) == {"200"}, outcomes
    apply(local_env, echo_api(name, "2"))
    await converged(local_env, name, 2)
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()


async def test_killed_controllers_and_scheduler_come_back_and_a_scale_up_lands(
    local_env: ClusterInfo, chaos: Case
) -> None:
    # Between them they turn a replica count into running pods: the Deployment controller makes
    # the ReplicaSet's pods, the scheduler binds them to the node.
    name = "echo-scale"
    deploy(local_env, echo_api(name, "1", replicas=1))
    async with steady_load(local_env, name, replicas=1) as outcomes:
        await answered(outcomes, BEFORE)
        await kill(local_env, CONTROLLERS)
        await kill(local_env, SCHEDULER)
        apply(local_env, echo_api(name, "1", replicas=3))
        await converged(local_env, name, 3)
        await answered(outcomes, outcomes["200"] + AFTER)

    assert set(outcomes) == {"200"}, outcomes
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()


async def test_a_hung_s3_holds_a_new_model_version_back_and_the_old_one_serves(
    local_env: ClusterInfo, chaos: Case
) -> None:
    name = "iris-s3"
    uri = await push_iris(local_env, "chaos-s3", ("1", "2"))

    def iris(version: str) -> dict[str, Any]:
        manifest = api_manifest(name, uri, version, autoscaling={"minReplicas": 2})
        manifest["metadata"]["name"] = name
        return manifest

    deploy(local_env, iris("1"))
    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, BEFORE)
        with paused(local_env, MOTO):
            apply(local_env, iris("2"))
            # Said at once, not after the AWS client's attempts and timeouts have run out.
            await condition_reason(local_env, name, "ModelAvailable", "Checking")
            await answered(outcomes, outcomes["200"] + AFTER)
        api = await converged(local_env, name, 2)
        await answered(outcomes, outcomes["200"] + AFTER)

    assert set(outcomes) == {"200"}, outcomes
    assert api["status"]["modelVersion"] == "2"
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()


async def test_a_node_agent_killed_outright_is_restarted_and_runs_its_pods_again(
    local_env: ClusterInfo, chaos: Case
) -> None:
    # No container runtime outlives the agent here: its pods die with it, as on a node that
    # reboots, and the agent that comes back starts them again, each restart counted.
    name = "echo-reboot"
    deploy(local_env, echo_api(name, "1"))
    pods_path = "/api/v1/namespaces/default/pods"
    selector = {"labelSelector": f"{API_LABEL}={name}"}
    async with kube_of(local_env) as kube:
        before = (await kube.request("GET", pods_path, query=selector))["items"]
        await kill(local_env, AGENT)

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

    assert {p["metadata"]["uid"] for p in pods} == {p["metadata"]["uid"] for p in before}
    for pod in pods:
        for container in pod["status"]["containerStatuses"]:
            last = container["lastState"]["terminated"]
            assert (last["exitCode"], last["signal"]) == (137, 9), container
    async with steady_load(local_env, name, replicas=2) as outcomes:
        await answered(outcomes, AFTER)
    assert set(outcomes) == {"200"}, outcomes
    kubectl(local_env, "delete", "rtapi", name)
    chaos.handled()
