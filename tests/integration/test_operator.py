"""The real operator against the real control plane: create, update, restart, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.names import SCALER_FIELD_MANAGER
from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.support.events import event
from tests.support.ferry_operator import Operator, kubectl

GROUP, VERSION, PLURAL = "ferry.dev", "v1alpha1", "realtimeapis"


def realtime_api(
    name: str, image: str = "registry.example.com/iris:1.0.0", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RealtimeAPI",
        "metadata": {"name": name},
        "spec": {
            "predictor": {"image": image, "resources": {"cpu": "100m", "memory": "128Mi"}},
            **spec,
        },
    }


async def get_api(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    got: dict[str, Any] = await objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return got


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


async def wait_ready(
    api: ApiClient, namespace: str, name: str, timeout: float = 90
) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, name)
        gen = obj["metadata"]["generation"]
        cond = condition(obj, "Ready")
        if cond.get("status") == "True" and cond.get("observedGeneration") == gen:
            return obj
        return None

    return await eventually(ready, timeout=timeout, what=f"{name} Ready for its generation")


async def patch_api(api: ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        patch,
        _content_type="application/merge-patch+json",
    )


async def create(api: ApiClient, namespace: str, body: dict[str, Any]) -> None:
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


async def test_an_api_gets_its_deployment_and_service_and_turns_ready(
    api: ApiClient, namespace: str, operator: Operator, cluster: ClusterInfo
) -> None:
    await create(api, namespace, realtime_api("iris", autoscaling={"minReplicas": 2}))
    obj = await wait_ready(api, namespace, "iris")

    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployment = await apps.read_namespaced_deployment("iris", namespace)
    service = await core.read_namespaced_service("iris", namespace)
    owner = deployment.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("RealtimeAPI", "iris", obj["metadata"]["uid"])
    assert service.metadata.owner_references[0].uid == obj["metadata"]["uid"]
    assert deployment.spec.replicas == 2
    assert [c.name for c in deployment.spec.template.spec.containers] == ["predictor", "proxy"]
    assert service.spec.ports[0].port == 80

    status = obj["status"]
    assert status["phase"] == "Ready"
    assert (status["readyReplicas"], status["replicaCounts"]) == (2, "2/2")
    assert status["endpoint"] == f"http://iris.{namespace}.svc:80/"
    assert condition(obj, "Progressing")["reason"] == "RolloutComplete"

    # kubectl's view: printer columns, `kubectl wait`, and the Event of what was done.
    table = kubectl(cluster, "get", "rtapi", "-n", namespace).stdout
    assert table.split("\n")[0].split() == [
        "NAME",
        "READY",
        "REPLICAS",
        "IN-FLIGHT",
        "VERSION",
        "ENDPOINT",
        "AGE",
    ]
    assert "iris   True    2/2" in table
    kubectl(cluster, "wait", "--for=condition=Ready", "rtapi/iris", "-n", namespace, "--timeout=5s")
    await event(api, namespace, "Created", "created Deployment and Service iris")


async def test_the_operators_drain_delay_reaches_every_api_that_sets_none_of_its_own(
    api: ApiClient,
    namespace: str,
    crd: None,
    cluster: ClusterInfo,
    moto: MotoServer,
    tmp_path: Path,
) -> None:
    env = {**moto.env(), "FERRY_DRAIN_DELAY_SECONDS": "45"}
    running = Operator(cluster, namespace, tmp_path / "operator.log", env=env)
    running.start()
    try:
        await create(api, namespace, realtime_api("inside", serving={"timeoutSeconds": 30}))
        fronted = realtime_api("fronted", serving={"timeoutSeconds": 30, "drainDelaySeconds": 300})
        await create(api, namespace, fronted)
        apps = client.AppsV1Api(api)
        for name, drain in (("inside", 45), ("fronted", 300)):

            async def rendered(name: str = name) -> Any:
                found = await apps.list_namespaced_deployment(
                    namespace, field_selector=f"metadata.name={name}"
                )
                return found.items[0] if found.items else None

            pod = (await eventually(rendered, timeout=60, what=name)).spec.template.spec
            (proxy,) = [c for c in pod.containers if c.name == "proxy"]
            assert f"--drain-delay={drain}" in proxy.args
            assert f"--grace-period={drain + 30}" in proxy.args
            assert pod.termination_grace_period_seconds == drain + 30 + 12
    finally:
        running.stop()


async def test_an_image_change_rolls_out_and_the_status_follows(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris"))
    first = await wait_ready(api, namespace, "iris")
    apps = client.AppsV1Api(api)
    old_sets = {
        rs.metadata.name for rs in (await apps.list_namespaced_replica_set(namespace)).items
    }

    await patch_api(
        api,
        namespace,
        "iris",
        {"spec": {"predictor": {"image": "registry.example.com/iris:2.0.0"}}},
    )
    second = await wait_ready(api, namespace, "iris")
    assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert second["status"]["observedGeneration"] == second["metadata"]["generation"]

    deployment = await apps.read_namespaced_deployment("iris", namespace)
    assert deployment.spec.template.spec.containers[0].image == "registry.example.com/iris:2.0.0"
    new_sets = {
        rs.metadata.name for rs in (await apps.list_namespaced_replica_set(namespace)).items
    }
    assert new_sets - old_sets, "a new ReplicaSet rolled the new image out"


async def test_the_reconciler_never_takes_replicas_back_from_the_autoscaler(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris"))
    await wait_ready(api, namespace, "iris")
    apps = client.AppsV1Api(api)
    # As the autoscaler does: the scale subresource, under its own field manager.
    await apps.patch_namespaced_deployment_scale(
        "iris", namespace, {"spec": {"replicas": 3}}, field_manager=SCALER_FIELD_MANAGER
    )
    await patch_api(
        api,
        namespace,
        "iris",
        {"spec": {"predictor": {"env": [{"name": "MODE", "value": "fast"}]}}},
    )
    obj = await wait_ready(api, namespace, "iris")
    deployment = await apps.read_namespaced_deployment("iris", namespace)
    assert deployment.spec.replicas == 3
    assert obj["status"]["replicaCounts"] == "3/3"
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["MODE"] == "fast"


async def test_a_restarted_operator_duplicates_nothing_and_keeps_the_status(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris"))
    before = await wait_ready(api, namespace, "iris")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployment = await apps.read_namespaced_deployment("iris", namespace)

    assert operator.stop() == 0, operator.logs()
    # Changed while no operator runs: the restarted one must pick it up, on the same objects.
    await patch_api(
        api, namespace, "iris", {"spec": {"predictor": {"image": "example.com/iris:3"}}}
    )
    operator.start()
    after = await wait_ready(api, namespace, "iris")

    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    deployments = (await apps.list_namespaced_deployment(namespace)).items
    services = (await core.list_namespaced_service(namespace)).items
    assert [d.metadata.uid for d in deployments] == [deployment.metadata.uid]
    assert [s.metadata.name for s in services] == ["iris"]
    assert deployments[0].spec.template.spec.containers[0].image == "example.com/iris:3"
    assert {c["type"] for c in after["status"]["conditions"]} == {"Ready", "Progressing"}


async def test_deleting_an_api_removes_its_children_without_hanging(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris"))
    await wait_ready(api, namespace, "iris")
    objects, apps, core = client.CustomObjectsApi(api), client.AppsV1Api(api), client.CoreV1Api(api)
    await objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "iris")

    async def gone() -> bool:
        apis = (await objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL))[
            "items"
        ]
        deployments = (await apps.list_namespaced_deployment(namespace)).items
        services = (await core.list_namespaced_service(namespace)).items
        pods = (await core.list_namespaced_pod(namespace)).items
        return not (apis or deployments or services or pods)

    await eventually(gone, timeout=60, what="the API, its Deployment, Service and pods to be gone")


async def test_a_deleted_deployment_is_put_back(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    await create(api, namespace, realtime_api("iris"))
    await wait_ready(api, namespace, "iris")
    apps = client.AppsV1Api(api)
    old = await apps.read_namespaced_deployment("iris", namespace)
    await apps.delete_namespaced_deployment("iris", namespace)

    async def replaced() -> bool:
        deployments = (await apps.list_namespaced_deployment(namespace)).items
        return any(d.metadata.uid != old.metadata.uid for d in deployments)

    await eventually(replaced, timeout=60, what="a new Deployment in place of the deleted one")
    await wait_ready(api, namespace, "iris")
