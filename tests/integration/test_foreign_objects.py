"""A RealtimeAPI never adopts an object Ferry did not create for it: a Deployment or Service of its
name that belongs to someone else is named in the API's status and an Event, and is left exactly
as it was, also when the API is deleted (docs/realtimeapi.md, "What Ferry owns")."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.kube import Kube, path_of
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create,
    get_api,
    realtime_api,
    wait_ready,
)
from tests.support.chaos import Case
from tests.support.ferry_operator import Operator

TEAM = "billing-team"
TEAM_LABELS = {"app": "billing", "app.kubernetes.io/managed-by": TEAM}


def service_path(namespace: str, name: str | None = None) -> str:
    return path_of("v1", "Service", namespace, name)


def deployment_path(namespace: str, name: str | None = None) -> str:
    return path_of("apps/v1", "Deployment", namespace, name)


async def create_foreign_service(kube: Kube, namespace: str) -> dict[str, Any]:
    """Another team's Service `billing`, written by their own tool."""
    return await kube.request(
        "POST",
        service_path(namespace),
        body={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "billing", "labels": TEAM_LABELS},
            "spec": {"selector": {"app": "billing"}, "ports": [{"port": 8080}]},
        },
        query={"fieldManager": TEAM},
    )


async def create_foreign_deployment(kube: Kube, namespace: str) -> dict[str, Any]:
    """Another team's Deployment `billing`, once its controller is done with it (a status its
    controller writes later would change its resourceVersion)."""
    await kube.request(
        "POST",
        deployment_path(namespace),
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "billing", "labels": TEAM_LABELS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "billing"}},
                "template": {
                    "metadata": {"labels": {"app": "billing"}},
                    "spec": {"containers": [{"name": "app", "image": "example.com/billing:1"}]},
                },
            },
        },
        query={"fieldManager": TEAM},
    )

    async def settled() -> dict[str, Any] | None:
        found = await kube.get(deployment_path(namespace, "billing"))
        status = (found or {}).get("status", {})
        progressing = next(
            (c for c in status.get("conditions", []) if c["type"] == "Progressing"), {}
        )
        done = (
            found is not None
            and status.get("observedGeneration") == found["metadata"]["generation"]
            and status.get("availableReplicas") == 1
            and progressing.get("reason") == "NewReplicaSetAvailable"
        )
        return found if done else None

    return await eventually(settled, timeout=60, what="the other team's Deployment available")


def unchanged(before: dict[str, Any], after: dict[str, Any] | None) -> None:
    assert after is not None, f"{before['kind']} {before['metadata']['name']} was deleted"
    for field in ("resourceVersion", "uid", "labels", "ownerReferences", "managedFields"):
        assert after["metadata"].get(field) == before["metadata"].get(field), field
    assert after["spec"] == before["spec"]


async def name_in_use(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    async def refused() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, name)
        ready = condition(obj, "Ready")
        current = ready.get("observedGeneration") == obj["metadata"]["generation"]
        if current and ready.get("reason") == "NameInUse":
            return obj
        raise AssertionError(f"Ready is {ready or None}")  # what a timeout reports

    return await eventually(refused, timeout=60, what=f"{name}: Ready=False, reason NameInUse")


async def events(api: ApiClient, namespace: str, name: str) -> list[Any]:
    found = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=RealtimeAPI"
    )
    return list(found.items)


async def delete_api_and_wait_for_its_dependents(api: ApiClient, namespace: str) -> None:
    """Delete the API in the foreground: the API server removes it only after the garbage
    collector has deleted every dependent whose owner reference blocks that (Ferry's children
    carry blockOwnerDeletion), so once it is gone, the collector has had its chance."""
    objects = client.CustomObjectsApi(api)
    await objects.delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "billing", propagation_policy="Foreground"
    )

    async def gone() -> bool:
        listed = await objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return not listed["items"]

    await eventually(gone, timeout=60, what="the API to be deleted")


@pytest.mark.chaos("hostile specs")
async def test_another_teams_service_of_the_apis_name_is_named_in_the_status_and_left_alone(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    kube = Kube(api)
    before = await create_foreign_service(kube, namespace)
    await create(api, namespace, realtime_api("billing"))

    obj = await name_in_use(api, namespace, "billing")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert "Service billing" in ready["message"], ready["message"]
    assert TEAM in ready["message"], ready["message"]
    assert obj["status"]["phase"] == "Failed"
    warned = [e for e in await events(api, namespace, "billing") if e.reason == "NameInUse"]
    assert [e.type for e in warned] == ["Warning"]
    assert "Service billing" in warned[0].message
    # Nothing of the API's was made beside another team's Service.
    assert await kube.get(deployment_path(namespace, "billing")) is None
    unchanged(before, await kube.get(service_path(namespace, "billing")))

    await delete_api_and_wait_for_its_dependents(api, namespace)
    unchanged(before, await kube.get(service_path(namespace, "billing")))
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_another_teams_deployment_of_the_apis_name_is_named_in_the_status_and_left_alone(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    kube = Kube(api)
    before = await create_foreign_deployment(kube, namespace)
    await create(api, namespace, realtime_api("billing"))

    obj = await name_in_use(api, namespace, "billing")
    message = condition(obj, "Ready")["message"]
    assert "Deployment billing" in message, message
    assert TEAM in message, message
    assert "NameInUse" in {e.reason for e in await events(api, namespace, "billing")}
    assert await kube.get(service_path(namespace, "billing")) is None
    unchanged(before, await kube.get(deployment_path(namespace, "billing")))

    await delete_api_and_wait_for_its_dependents(api, namespace)
    unchanged(before, await kube.get(deployment_path(namespace, "billing")))
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_an_api_whose_names_are_taken_turns_ready_on_its_own_once_they_are_freed(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    kube = Kube(api)
    deployment = await create_foreign_deployment(kube, namespace)
    service = await create_foreign_service(kube, namespace)
    await create(api, namespace, realtime_api("billing"))

    obj = await name_in_use(api, namespace, "billing")
    message = condition(obj, "Ready")["message"]
    assert "Deployment billing" in message and "Service billing" in message, message
    unchanged(deployment, await kube.get(deployment_path(namespace, "billing")))
    unchanged(service, await kube.get(service_path(namespace, "billing")))

    # Nothing tells the operator that the names were freed: it looks again by itself.
    await kube.request("DELETE", deployment_path(namespace, "billing"))
    await kube.request("DELETE", service_path(namespace, "billing"))
    ready = await wait_ready(api, namespace, "billing", timeout=120)
    owned = await kube.get(deployment_path(namespace, "billing"))
    assert owned is not None
    assert [ref["uid"] for ref in owned["metadata"]["ownerReferences"]] == [
        ready["metadata"]["uid"]
    ]
    assert condition(ready, "Progressing")["reason"] == "RolloutComplete"
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_a_deployment_taken_over_from_its_api_is_told_and_left_to_whoever_took_it(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    kube = Kube(api)
    await create(api, namespace, realtime_api("billing"))
    await wait_ready(api, namespace, "billing")
    # Someone takes the Deployment over: without its owner reference it is no longer the API's.
    taken = await kube.patch_merge(
        deployment_path(namespace, "billing"), {"metadata": {"ownerReferences": None}}, TEAM
    )

    obj = await name_in_use(api, namespace, "billing")
    message = condition(obj, "Ready")["message"]
    assert "Deployment billing is not this API's" in message, message
    assert "app.kubernetes.io/managed-by=ferry" in message, message
    now = await kube.get(deployment_path(namespace, "billing"))
    assert now is not None
    assert "ownerReferences" not in now["metadata"]
    assert (now["metadata"]["generation"], now["spec"]) == (
        taken["metadata"]["generation"],
        taken["spec"],
    )

    # Once it is gone, the API makes its own again, by itself.
    await kube.request("DELETE", deployment_path(namespace, "billing"))
    ready = await wait_ready(api, namespace, "billing", timeout=120)
    owned = await kube.get(deployment_path(namespace, "billing"))
    assert owned is not None
    assert owned["metadata"]["uid"] != taken["metadata"]["uid"]
    assert [ref["uid"] for ref in owned["metadata"]["ownerReferences"]] == [
        ready["metadata"]["uid"]
    ]
    chaos.handled()
