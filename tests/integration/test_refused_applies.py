"""A Deployment the API server refuses (here: a cluster's admission policy on images) is a
`Ready=False, reason Rejected` status with the API server's message and an Event; the running
Deployment is left serving, and the API converges by itself once the refusal is lifted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.kube import Kube, KubeError, path_of
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    condition,
    create,
    get_api,
    patch_api,
    realtime_api,
    wait_ready,
)
from tests.support.chaos import Case
from tests.support.events import event
from tests.support.ferry_operator import Operator

POLICIES = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
FORBIDDEN = "forbidden.example.com/"
REFUSAL = "images from forbidden.example.com are not allowed here"


def deployment_path(namespace: str, name: str | None = None) -> str:
    return path_of("apps/v1", "Deployment", namespace, name)


def probe_deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "policy-probe"},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@pytest.fixture
async def image_policy(api: ApiClient, namespace: str) -> AsyncIterator[str]:
    """A cluster's admission policy, bound to this test's namespace, that refuses Deployments
    running images of forbidden.example.com; yields the binding's path, to lift it."""
    kube = Kube(api)
    name = f"no-forbidden-images-{namespace}"
    await kube.request(
        "POST",
        POLICIES,
        body={
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "object.spec.template.spec.containers.all(c, "
                        f"!c.image.startsWith('{FORBIDDEN}'))",
                        "message": REFUSAL,
                    }
                ],
            },
        },
    )
    await kube.request(
        "POST",
        BINDINGS,
        body={
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )

    async def in_force() -> bool:
        # The API server loads a new policy asynchronously; a dry run shows when it refuses.
        try:
            await kube.request(
                "POST",
                deployment_path(namespace),
                body=probe_deployment(f"{FORBIDDEN}probe:1"),
                query={"dryRun": "All"},
            )
        except KubeError as error:
            return REFUSAL in str(error)
        return False

    await eventually(in_force, timeout=30, what="the image policy to be in force")
    yield f"{BINDINGS}/{name}"
    for path in (f"{BINDINGS}/{name}", f"{POLICIES}/{name}"):
        if await kube.get(path) is not None:
            await kube.request("DELETE", path)


async def rejected(api: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    async def refused() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, name)
        ready = condition(obj, "Ready")
        current = ready.get("observedGeneration") == obj["metadata"]["generation"]
        if current and ready.get("reason") == "Rejected":
            return obj
        raise AssertionError(f"Ready is {ready or None}")  # what a timeout reports

    return await eventually(refused, timeout=60, what=f"{name}: Ready=False, reason Rejected")


@pytest.mark.chaos("hostile specs")
async def test_a_refused_deployment_is_told_in_the_status_while_the_old_one_serves_on(
    api: ApiClient, namespace: str, operator: Operator, image_policy: str, chaos: Case
) -> None:
    kube = Kube(api)
    await create(api, namespace, realtime_api("iris"))
    await wait_ready(api, namespace, "iris")
    serving = await kube.get(deployment_path(namespace, "iris"))
    assert serving is not None

    await patch_api(
        api, namespace, "iris", {"spec": {"predictor": {"image": f"{FORBIDDEN}iris:2"}}}
    )
    obj = await rejected(api, namespace, "iris")
    ready = condition(obj, "Ready")
    assert ready["status"] == "False"
    assert REFUSAL in ready["message"], ready["message"]
    # The API server's words, not the client's request line.
    assert ready["message"].startswith("the API server refused Deployment iris: "), ready
    await event(api, namespace, "Rejected", ready["message"])
    found = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector="involvedObject.name=iris,involvedObject.kind=RealtimeAPI"
    )
    assert [e.message for e in found.items if e.reason == "Rejected"] == [ready["message"]]

    # The Deployment of the last generation applied is as it was, and serves.
    after = await kube.get(deployment_path(namespace, "iris"))
    assert after is not None
    assert after["metadata"]["generation"] == serving["metadata"]["generation"]
    assert after["spec"]["template"] == serving["spec"]["template"]
    assert after["status"]["availableReplicas"] == serving["status"]["availableReplicas"] == 1
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_a_new_api_whose_deployment_is_refused_turns_ready_on_its_own_once_allowed(
    api: ApiClient, namespace: str, operator: Operator, image_policy: str, chaos: Case
) -> None:
    kube = Kube(api)
    await create(api, namespace, realtime_api("iris", image=f"{FORBIDDEN}iris:1"))
    obj = await rejected(api, namespace, "iris")
    assert REFUSAL in condition(obj, "Ready")["message"]
    assert obj["status"]["phase"] == "Failed"
    assert await kube.get(deployment_path(namespace, "iris")) is None

    # Nothing tells the operator that the policy was lifted: it tries again by itself.
    await kube.request("DELETE", image_policy)
    ready = await wait_ready(api, namespace, "iris", timeout=120)
    deployment = await kube.get(deployment_path(namespace, "iris"))
    assert deployment is not None
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{FORBIDDEN}iris:1"
    assert ready["status"]["phase"] == "Ready"
    chaos.handled()


async def test_a_route_where_no_gateway_api_is_served_is_told_in_the_status_and_the_api_serves(
    api: ApiClient, namespace: str, operator: Operator
) -> None:
    # This cluster has no Gateway API CRDs: the HTTPRoute cannot be applied.
    await create(api, namespace, realtime_api("iris", route={"gateway": {"name": "public"}}))

    async def told() -> dict[str, Any]:
        obj = await get_api(api, namespace, "iris")
        routed = condition(obj, "Routed")
        if routed.get("reason") != "RouteRejected":
            raise AssertionError(f"Routed is {routed or None}")
        return obj

    obj = await eventually(told, timeout=60, what="iris: Routed=False, reason RouteRejected")
    routed = condition(obj, "Routed")
    assert routed["status"] == "False"
    assert "does not serve Gateway API (gateway.networking.k8s.io/v1)" in routed["message"]
    await event(api, namespace, "RouteRejected", routed["message"])
    # What serves inside the cluster is unaffected: the Deployment and Service are there.
    kube = Kube(api)
    assert await kube.get(deployment_path(namespace, "iris")) is not None
    assert obj["status"]["endpoint"] == f"http://iris.{namespace}.svc:80/"
