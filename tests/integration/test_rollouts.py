"""Rollouts through the real operator on kwok's nodes: revisions recorded per pod template, a
rollout short of capacity reported as such, then rolled back at its deadline (or left Degraded
without autoRollback) while the old replicas stay ready.

kwok's nodes have 32 CPUs each: a predictor asking for 64 fits none of them, so its pods stay
Pending with the scheduler's "Insufficient cpu", and the rollout makes no progress.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    condition,
    create,
    get_api,
    patch_api,
    realtime_api,
    wait_ready,
)
from tests.support.events import event
from tests.support.ferry_operator import Operator, kubectl

FITS = {"cpu": "100m", "memory": "128Mi"}
TOO_BIG = {"cpu": "64", "memory": "128Mi"}
# The smallest deadline the CRD allows: a stalled rollout fails within seconds.
SHORT_DEADLINE = 10


async def wait_reason(
    api: ApiClient, namespace: str, kind: str, reason: str, timeout: float = 90
) -> dict[str, Any]:
    """The API once its condition `kind` has `reason` for its current generation."""

    async def reached() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        found = condition(obj, kind)
        current = found.get("observedGeneration") == obj["metadata"]["generation"]
        return obj if current and found.get("reason") == reason else None

    return await eventually(reached, timeout=timeout, what=f"{kind} reason {reason}")


def revisions(obj: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (r["revision"], r["image"].rsplit(":", 1)[-1], r["outcome"], r.get("rollbackOf"))
        for r in obj["status"].get("revisions", [])
    ]


async def test_each_new_pod_template_is_a_revision_and_nothing_else_is(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris", image="registry.example.com/iris:1"))
    await wait_ready(api, namespace, "iris")
    await patch_api(api, namespace, "iris", {"spec": {"predictor": {"image": "x.io/iris:2"}}})
    second = await wait_ready(api, namespace, "iris")
    # A new generation that leaves the pods as they are rolls nothing out.
    await patch_api(api, namespace, "iris", {"spec": {"autoscaling": {"maxReplicas": 7}}})
    third = await wait_ready(api, namespace, "iris")

    assert third["metadata"]["generation"] == second["metadata"]["generation"] + 1
    assert revisions(third) == [(1, "1", "Complete", None), (2, "2", "Complete", None)]
    latest = third["status"]["revisions"][-1]
    assert latest["generation"] == second["metadata"]["generation"]
    assert latest["started"] <= latest["finished"]
    deployment = await client.AppsV1Api(api).read_namespaced_deployment("iris", namespace)
    annotations = deployment.spec.template.metadata.annotations
    assert annotations["ferry.dev/image"] == "x.io/iris:2"
    assert annotations["ferry.dev/template-hash"] == latest["templateHash"]
    await event(api, namespace, "RolloutComplete", "revision 2 (image x.io/iris:2) is rolled out")


async def test_a_rollout_short_of_capacity_says_so_then_is_rolled_back_at_its_deadline(
    api: ApiClient, namespace: str, operator: Operator, cluster: ClusterInfo
) -> None:
    await create(
        api,
        namespace,
        realtime_api(
            "iris",
            autoscaling={"minReplicas": 2},
            rollout={"maxSurge": 1, "maxUnavailable": 0, "progressDeadlineSeconds": 600},
        ),
    )
    await wait_ready(api, namespace, "iris")
    await patch_api(api, namespace, "iris", {"spec": {"predictor": {"resources": TOO_BIG}}})

    short = await wait_reason(api, namespace, "Progressing", "InsufficientCapacity")
    assert condition(short, "Progressing")["status"] == "False"
    assert condition(short, "Ready")["reason"] == "InsufficientCapacity"
    assert "Insufficient cpu" in condition(short, "Ready")["message"]
    assert short["status"]["phase"] == "Degraded"
    assert short["status"]["readyReplicas"] == 2, "the old replicas keep serving"
    await event(api, namespace, "InsufficientCapacity", "Insufficient cpu")

    # Now with a deadline it has long outlived: the rollout fails and the last good revision is
    # put back, while the spec still asks for the pods that do not fit.
    await patch_api(
        api, namespace, "iris", {"spec": {"rollout": {"progressDeadlineSeconds": SHORT_DEADLINE}}}
    )
    undone = await wait_reason(api, namespace, "Ready", "RolledBack")
    ready = condition(undone, "Ready")
    assert ready["status"] == "False"
    assert "Insufficient cpu" in ready["message"]
    assert condition(undone, "Progressing")["reason"] == "RolledBack"
    assert undone["status"]["phase"] == "Degraded"
    assert [(r[0], r[2], r[3]) for r in revisions(undone)][:2] == [
        (1, "Complete", None),
        (2, "RolledBack", None),
    ]
    assert revisions(undone)[2][3] == 2, "revision 3 puts back what revision 2 replaced"
    await event(api, namespace, "RolledBack", "rolled back to revision 3")

    async def restored() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        done = [r for r in obj["status"]["revisions"] if r["revision"] == 3]
        return obj if done and done[0]["outcome"] == "Complete" else None

    settled = await eventually(restored, timeout=60, what="the restored revision rolled out")
    assert settled["status"]["readyReplicas"] == 2
    assert condition(settled, "Ready")["reason"] == "RolledBack", "it stays rolled back"
    deployment = await client.AppsV1Api(api).read_namespaced_deployment("iris", namespace)
    assert deployment.spec.template.spec.containers[0].resources.requests["cpu"] == "100m"
    gate = kubectl(
        cluster,
        "wait",
        "--for=condition=Ready",
        "rtapi/iris",
        "-n",
        namespace,
        "--timeout=3s",
        check=False,
    )
    assert gate.returncode != 0, "a CI gate on Ready fails for a rolled-back generation"

    # A new generation rolls out again.
    await patch_api(api, namespace, "iris", {"spec": {"predictor": {"resources": FITS}}})
    fixed = await wait_ready(api, namespace, "iris")
    assert condition(fixed, "Progressing")["reason"] == "RolloutComplete"


async def test_without_auto_rollback_a_stalled_rollout_degrades_and_the_old_replicas_serve(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    rollout = {"maxSurge": 1, "maxUnavailable": 0, "progressDeadlineSeconds": SHORT_DEADLINE}
    await create(
        api,
        namespace,
        realtime_api(
            "iris",
            autoscaling={"minReplicas": 2},
            rollout={**rollout, "autoRollback": False},
        ),
    )
    await wait_ready(api, namespace, "iris")
    await patch_api(api, namespace, "iris", {"spec": {"predictor": {"resources": TOO_BIG}}})

    stalled = await wait_reason(api, namespace, "Progressing", "ProgressDeadlineExceeded")
    assert stalled["status"]["phase"] == "Degraded"
    assert condition(stalled, "Ready")["reason"] == "ProgressDeadlineExceeded"
    assert "Insufficient cpu" in condition(stalled, "Ready")["message"]
    assert revisions(stalled)[-1][2] == "Failed"
    assert stalled["status"]["readyReplicas"] == 2, "the old replicas keep serving"
    deployment = await client.AppsV1Api(api).read_namespaced_deployment("iris", namespace)
    assert deployment.spec.template.spec.containers[0].resources.requests["cpu"] == "64"
    await event(api, namespace, "ProgressDeadlineExceeded", "Insufficient cpu")
