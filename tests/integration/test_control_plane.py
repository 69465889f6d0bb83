"""The local control plane is the real one: controllers, scheduler and garbage collector at work."""

from __future__ import annotations

from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry_local.nodes import NODE_KIND_LABEL
from ferry_local.wait import eventually

REPLICAS = 3


def deployment(name: str, replicas: int = REPLICAS) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="web", image="example.invalid/web:1")]
                ),
            ),
        ),
    )


def is_ready(pod: client.V1Pod) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


async def test_a_deployment_gets_a_replicaset_and_ready_pods_on_kwok_nodes(
    api: ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    created = await apps.create_namespaced_deployment(namespace, deployment("web"))

    async def owned_replicaset() -> client.V1ReplicaSet | None:
        sets = (await apps.list_namespaced_replica_set(namespace)).items
        owned = [
            rs
            for rs in sets
            if any(ref.uid == created.metadata.uid for ref in rs.metadata.owner_references or [])
        ]
        return owned[0] if owned else None

    replicaset = await eventually(owned_replicaset, timeout=30, what="the Deployment's ReplicaSet")
    kwok_nodes = {
        node.metadata.name
        for node in (await core.list_node(label_selector=f"{NODE_KIND_LABEL}=kwok")).items
    }

    async def ready_pods() -> list[client.V1Pod] | None:
        pods = (await core.list_namespaced_pod(namespace, label_selector="app=web")).items
        ready = [p for p in pods if is_ready(p)]
        return ready if len(ready) == REPLICAS else None

    pods = await eventually(ready_pods, timeout=60, what=f"{REPLICAS} ready pods")
    for pod in pods:
        assert pod.spec.node_name in kwok_nodes
        assert pod.metadata.owner_references[0].uid == replicaset.metadata.uid
        assert pod.status.pod_ip.startswith("127.")

    async def available() -> bool:
        status = (await apps.read_namespaced_deployment(created.metadata.name, namespace)).status
        return status.available_replicas == REPLICAS

    await eventually(available, timeout=30, what="the Deployment to report 3 available")


async def test_deleting_a_deployment_collects_its_replicaset_and_pods(
    api: ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    await apps.create_namespaced_deployment(namespace, deployment("doomed"))

    async def pods(count: int) -> bool:
        listed = (await core.list_namespaced_pod(namespace, label_selector="app=doomed")).items
        return len(listed) == count

    await eventually(lambda: pods(REPLICAS), timeout=60, what="the pods to exist")
    await apps.delete_namespaced_deployment(
        "doomed", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )

    async def collected() -> bool:
        sets = (await apps.list_namespaced_replica_set(namespace)).items
        return not sets and await pods(0)

    await eventually(collected, timeout=60, what="the ReplicaSet and pods to be collected")
