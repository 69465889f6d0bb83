"""A canary against the real control plane: its Deployment and Service beside the stable
version's, the ReplicaSets and pods the controllers keep apart, its removal, and a canary refused
without a Gateway.

This cluster serves no Gateway API, so an API that names a Gateway gets no route (Routed=False,
RouteRejected): the canary never has a weight here, and nothing routes to it when it is removed.
Traffic through a real Gateway is tests/e2e/network/test_canary.py's.
"""

from __future__ import annotations

from typing import Any

import boto3
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.kube import Kube
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
from tests.support.ferry_operator import Operator

STABLE, CANDIDATE = "registry.example.com/iris:1.0.0", "registry.example.com/iris:2.0.0"
GATEWAY = {"gateway": {"name": "public"}}


def with_canary(**fields: Any) -> dict[str, Any]:
    return realtime_api(
        "iris",
        STABLE,
        route=GATEWAY,
        autoscaling={"minReplicas": 2, "maxReplicas": 4},
        canary={"trafficPercent": 20, "image": CANDIDATE},
        **fields,
    )


async def canary_status(api: ApiClient, namespace: str, replicas: int) -> dict[str, Any]:
    async def told() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        canary = obj.get("status", {}).get("canary") or {}
        return obj if canary.get("readyReplicas") == replicas else None

    return await eventually(told, timeout=90, what=f"iris: {replicas} canary replicas ready")


def owner_uid(obj: Any) -> str:
    (owner,) = [ref for ref in obj.metadata.owner_references if ref.controller]
    return str(owner.uid)


async def test_a_canary_gets_a_deployment_and_service_of_its_own_beside_the_stable_one(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, with_canary())
    obj = await canary_status(api, namespace, 2)
    uid = obj["metadata"]["uid"]
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)

    canary = await apps.read_namespaced_deployment("iris-canary", namespace)
    stable = await apps.read_namespaced_deployment("iris", namespace)
    assert owner_uid(canary) == owner_uid(stable) == uid
    assert canary.spec.selector.match_labels == {
        "ferry.dev/api": "iris",
        "app.kubernetes.io/component": "canary",
    }
    assert stable.spec.selector.match_labels == {"ferry.dev/api": "iris"}
    assert canary.spec.template.spec.containers[0].image == CANDIDATE
    assert stable.spec.template.spec.containers[0].image == STABLE
    assert canary.spec.replicas == 2  # autoscaling.minReplicas

    services = {
        name: (await core.read_namespaced_service(name, namespace)).spec.selector
        for name in ("iris", "iris-canary")
    }
    assert services == {
        "iris": {"ferry.dev/api": "iris", "app.kubernetes.io/component": "predictor"},
        "iris-canary": {"ferry.dev/api": "iris", "app.kubernetes.io/component": "canary"},
    }

    # The stable Deployment's selector matches the canary's pods too: the controller
    # references keep each Deployment to its own ReplicaSets, and each ReplicaSet to its pods.
    async def settled() -> tuple[list[Any], list[Any]] | None:
        sets = await apps.list_namespaced_replica_set(
            namespace, label_selector="ferry.dev/api=iris"
        )
        pods = await core.list_namespaced_pod(namespace, label_selector="ferry.dev/api=iris")
        ready = [p for p in pods.items if p.status.phase == "Running"]
        return (sets.items, pods.items) if len(ready) == 4 else None

    sets, pods = await eventually(settled, timeout=60, what="four running pods of iris")
    owners = {owner_uid(s): s for s in sets}
    assert set(owners) == {stable.metadata.uid, canary.metadata.uid}
    for pod in pods:
        component = pod.metadata.labels["app.kubernetes.io/component"]
        replica_set = next(s for s in sets if s.metadata.uid == owner_uid(pod))
        expected = canary if component == "canary" else stable
        assert owner_uid(replica_set) == expected.metadata.uid, pod.metadata.name
    counts = {
        name: (await apps.read_namespaced_deployment(name, namespace)).status.replicas
        for name in ("iris", "iris-canary")
    }
    assert counts == {"iris": 2, "iris-canary": 2}

    # The canary can be ready before the stable rollout is told Complete: each side's
    # Deployment events reach the status on their own.
    async def both_rolled_out() -> dict[str, Any] | None:
        read = await get_api(api, namespace, "iris")
        outcomes = [r["outcome"] for r in read.get("status", {}).get("revisions", ())]
        return read["status"] if outcomes[:1] == ["Complete"] else None

    status = await eventually(both_rolled_out, timeout=60, what="iris: the stable rollout told")
    assert status["canary"] == {
        "image": CANDIDATE,
        "trafficPercent": 0,  # no Gateway API here: no route to weigh it on
        "replicas": 2,
        "readyReplicas": 2,
    }
    assert status["selector"] == "ferry.dev/api=iris,app.kubernetes.io/component=predictor"
    assert [(r["image"], r["outcome"], r.get("canary")) for r in status["revisions"]] == [
        (STABLE, "Complete", None),
        (CANDIDATE, "InProgress", True),
    ]
    assert condition(obj, "Canary")["reason"] == "ShiftingTraffic"
    await event(api, namespace, "CanaryStarted", f"image {CANDIDATE}")


async def test_an_aborted_canary_is_deleted_after_the_drain_and_told_as_aborted(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, with_canary())
    await canary_status(api, namespace, 2)
    await patch_api(api, namespace, "iris", {"spec": {"canary": None}})
    await _gone(api, namespace)
    obj = await history_becomes(
        api, namespace, [(STABLE, "Complete", None), (CANDIDATE, "Aborted", True)]
    )
    assert "canary" not in obj["status"]
    assert condition(obj, "Canary") == {}
    await event(api, namespace, "CanaryAborted", "the stable version runs what it ran before")
    await event(api, namespace, "CanaryRemoved", "deleted Deployment and Service iris-canary")


async def test_a_promoted_canary_is_deleted_once_the_stable_version_runs_it(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, with_canary())
    await canary_status(api, namespace, 2)
    promote = {"spec": {"predictor": {"image": CANDIDATE}, "canary": None}}
    await patch_api(api, namespace, "iris", promote)
    await _gone(api, namespace)
    await history_becomes(
        api,
        namespace,
        [(STABLE, "Complete", None), (CANDIDATE, "Promoted", True), (CANDIDATE, "Complete", None)],
    )
    await event(api, namespace, "CanaryPromoted", "the stable version now runs it")


async def history_becomes(
    api: ApiClient, namespace: str, expected: list[tuple[str, str, bool | None]]
) -> dict[str, Any]:
    """The API once its revisions are `expected` (image, outcome, canary): the stable rollout
    is told by its own Deployment's events, which may come after the canary is gone."""
    seen: list[Any] = []

    async def told() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        revisions = obj.get("status", {}).get("revisions", ())
        seen[:] = [(r["image"], r["outcome"], r.get("canary")) for r in revisions]
        return obj if seen == expected else None

    try:
        return await eventually(told, timeout=60, what=f"iris: revisions {expected}")
    except TimeoutError:
        raise AssertionError(f"revisions are {seen}") from None


async def _gone(api: ApiClient, namespace: str) -> None:
    kube = Kube(api)

    async def deleted() -> bool:
        paths = [
            f"/apis/apps/v1/namespaces/{namespace}/deployments/iris-canary",
            f"/api/v1/namespaces/{namespace}/services/iris-canary",
        ]
        found = [await kube.get(path) for path in paths]
        obj = await get_api(api, namespace, "iris")
        return found == [None, None] and "canary" not in obj["status"]

    await eventually(deleted, timeout=60, what="the canary's Deployment and Service deleted")


async def test_a_canary_without_a_gateway_is_refused_and_the_stable_version_serves_on(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris", STABLE))
    await wait_ready(api, namespace, "iris")
    await patch_api(
        api, namespace, "iris", {"spec": {"canary": {"trafficPercent": 10, "image": CANDIDATE}}}
    )

    async def refused() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        return obj if condition(obj, "Ready").get("reason") == "InvalidSpec" else None

    obj = await eventually(refused, timeout=60, what="iris: Ready=False, InvalidSpec")
    message = (
        "spec.canary: needs a Gateway: name one in spec.route.gateway or configure the "
        "operator's FERRY_GATEWAY"
    )
    assert condition(obj, "Ready")["message"] == message
    assert obj["status"]["phase"] == "Failed"
    await event(api, namespace, "InvalidSpec", message)
    apps = client.AppsV1Api(api)
    deployments = await apps.list_namespaced_deployment(namespace)
    assert [d.metadata.name for d in deployments.items] == ["iris"]
    assert deployments.items[0].status.available_replicas == 1


async def test_a_canary_whose_name_is_taken_waits_saying_so_and_the_stable_version_serves(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    core = client.CoreV1Api(api)
    theirs = client.V1Service(
        metadata=client.V1ObjectMeta(name="iris-canary"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
    )
    await core.create_namespaced_service(namespace, theirs)
    await create(api, namespace, with_canary())

    async def told() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        return obj if condition(obj, "Canary").get("reason") == "NameInUse" else None

    obj = await eventually(told, timeout=60, what="iris: Canary=False, NameInUse")
    canary = condition(obj, "Canary")
    assert canary["status"] == "False"
    assert "Service iris-canary is not this API's" in canary["message"]
    await event(api, namespace, "NameInUse", "Service iris-canary is not this API's")
    apps = client.AppsV1Api(api)
    deployments = await apps.list_namespaced_deployment(namespace)
    assert [d.metadata.name for d in deployments.items] == ["iris"]
    service = await core.read_namespaced_service("iris-canary", namespace)
    assert service.metadata.owner_references is None

    # Once the name is free, the canary comes by itself: the operator looks again.
    await core.delete_namespaced_service("iris-canary", namespace)
    await canary_status(api, namespace, 2)


async def test_a_canary_of_a_model_version_not_in_s3_waits_saying_so_then_starts(
    api: ApiClient, namespace: str, operator: Operator, aws_env: dict[str, str]
) -> None:
    s3 = boto3.client("s3")
    bucket = f"canary-{namespace}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="iris/1/model.pkl", Body=b"weights")
    model = {"uri": f"s3://{bucket}/iris", "version": "1"}
    body = realtime_api(
        "iris",
        STABLE,
        route=GATEWAY,
        model=model,
        canary={"trafficPercent": 10, "modelVersion": "2"},
    )
    await create(api, namespace, body)

    async def told() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "iris")
        return obj if condition(obj, "Canary").get("reason") == "VersionNotFound" else None

    obj = await eventually(told, timeout=60, what="iris: Canary=False, VersionNotFound")
    message = f"its model: no objects under s3://{bucket}/iris/2/"
    assert condition(obj, "Canary")["message"] == message
    await event(api, namespace, "VersionNotFound", message)
    apps = client.AppsV1Api(api)
    assert [d.metadata.name for d in (await apps.list_namespaced_deployment(namespace)).items] == [
        "iris"
    ]

    s3.put_object(Bucket=bucket, Key="iris/2/model.pkl", Body=b"weights")
    started = await canary_status(api, namespace, 1)
    assert started["status"]["canary"]["modelVersion"] == "2"
    assert started["status"]["modelVersion"] == "1"
    canary = await apps.read_namespaced_deployment("iris-canary", namespace)
    assert canary.spec.template.metadata.annotations["ferry.dev/model-version"] == "2"
    assert canary.spec.template.spec.containers[0].image == STABLE
