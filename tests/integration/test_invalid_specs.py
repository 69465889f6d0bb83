"""Bad input is refused by the API server with a message a person can act on, or, where only the
operator can tell, marked Ready=False with reason InvalidSpec while every other API carries on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.integration.test_operator import (
    GROUP,
    PLURAL,
    VERSION,
    condition,
    create,
    get_api,
    patch_api,
    realtime_api,
    wait_ready,
)
from tests.support.chaos import Case
from tests.support.events import event
from tests.support.ferry_operator import REPO, Operator, install_crds, kubectl

IMAGE = "registry.example.com/iris:1.0.0"


def with_predictor(**fields: Any) -> dict[str, Any]:
    return {"predictor": {"image": IMAGE, **fields}}


# (case, spec or a whole object, words the API server's refusal must contain)
CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("no predictor", {}, "spec.predictor: Required value"),
    ("no image", {"predictor": {"port": 8080}}, "spec.predictor.image: Required value"),
    ("image with spaces", {"predictor": {"image": "my image"}}, "spec.predictor.image"),
    (
        "image with uppercase repo",
        {"predictor": {"image": "Registry/Iris:1"}},
        "spec.predictor.image",
    ),
    ("port as text", with_predictor(port="eighty"), "spec.predictor.port"),
    ("port zero", with_predictor(port=0), "should be greater than or equal to 1"),
    ("port too high", with_predictor(port=70000), "should be less than or equal to 65535"),
    ("port of the proxy", with_predictor(port=8888), "ports of Ferry's proxy sidecar"),
    ("command not a list", with_predictor(command="python serve.py"), "spec.predictor.command"),
    ("env without name", with_predictor(env=[{"value": "x"}]), "spec.predictor.env[0].name"),
    (
        "env name with space",
        with_predictor(env=[{"name": "A B", "value": "x"}]),
        "spec.predictor.env[0].name",
    ),
    (
        "env name reserved",
        with_predictor(env=[{"name": "FERRY_PORT", "value": "1"}]),
        "set by Ferry itself",
    ),
    (
        "env value and valueFrom",
        with_predictor(
            env=[
                {
                    "name": "A",
                    "value": "x",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                }
            ]
        ),
        "value or valueFrom, not both",
    ),
    (
        "secret name a Pod refuses",
        with_predictor(
            env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "a..b", "key": "k"}}}]
        ),
        "spec.predictor.env[0].valueFrom.secretKeyRef.name",
    ),
    (
        "config map key a Pod refuses",
        with_predictor(
            env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": ".."}}}]
        ),
        "a key cannot be '.' or '..'",
    ),
    (
        "env injection in name",
        with_predictor(env=[{"name": "A\nkind: Secret", "value": "x"}]),
        "spec.predictor.env[0].name",
    ),
    (
        "env value with a NUL",
        with_predictor(env=[{"name": "A", "value": "a\x00b"}]),
        'spec.predictor.env[0].value: Invalid value: "a\\x00b": an env value cannot hold a NUL',
    ),
    (
        "command with a NUL",
        with_predictor(command=["/bin/serve\x00"]),
        'spec.predictor.command[0]: Invalid value: "/bin/serve\\x00": command cannot hold a NUL',
    ),
    (
        "args with a NUL",
        with_predictor(args=["--port", "80\x0080"]),
        'spec.predictor.args[1]: Invalid value: "80\\x0080": args cannot hold a NUL',
    ),
    (
        "duplicate env names",
        with_predictor(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "Duplicate value",
    ),
    ("cpu malformed", with_predictor(resources={"cpu": "lots"}), "spec.predictor.resources.cpu"),
    (
        "cpu zero",
        with_predictor(resources={"cpu": "0"}),
        'spec.predictor.resources.cpu: Invalid value: "0": resources.cpu must be at least 1m',
    ),
    (
        "cpu below a millicore",
        with_predictor(resources={"cpu": "0.0001"}),
        'spec.predictor.resources.cpu: Invalid value: "0.0001": resources.cpu must be at least 1m',
    ),
    (
        "cpu beyond any machine",
        with_predictor(resources={"cpu": 5000}),
        "spec.predictor.resources.cpu: Invalid value: 5000: resources.cpu can be at most 4096",
    ),
    (
        "memory malformed",
        with_predictor(resources={"memory": "2 gigs"}),
        "spec.predictor.resources.memory",
    ),
    (
        "memory zero",
        with_predictor(resources={"memory": 0}),
        "spec.predictor.resources.memory: Invalid value: 0: resources.memory must be more than",
    ),
    (
        "memory beyond any machine",
        with_predictor(resources={"memory": "65Ti"}),
        'spec.predictor.resources.memory: Invalid value: "65Ti": resources.memory can be at most',
    ),
    (
        "memory beyond 64 bits in binary units",
        with_predictor(resources={"memory": "8Ei"}),
        'spec.predictor.resources.memory: Invalid value: "8Ei": resources.memory can be at most',
    ),
    (
        "memory beyond 64 bits in decimal exponent",
        with_predictor(resources={"memory": "9e99"}),
        'spec.predictor.resources.memory: Invalid value: "9e99": resources.memory can be at most',
    ),
    (
        # Expanding it kept the API server's CPU busy for minutes and the create timed out.
        "memory with an exponent too long to expand",
        with_predictor(resources={"memory": "1e999999999"}),
        'spec.predictor.resources.memory: Invalid value: "1e999999999": '
        "spec.predictor.resources.memory in body should match",
    ),
    ("negative gpu", with_predictor(resources={"gpu": -1}), "spec.predictor.resources.gpu"),
    (
        "gpu beyond any machine",
        with_predictor(resources={"gpu": 17}),
        "spec.predictor.resources.gpu: Invalid value: 17: spec.predictor.resources.gpu in body "
        "should be less than or equal to 16",
    ),
    (
        "readiness path relative",
        with_predictor(readinessPath="healthz"),
        "spec.predictor.readinessPath",
    ),
    (
        "model uri not s3",
        {**with_predictor(), "model": {"uri": "https://acme/iris"}},
        "spec.model.uri",
    ),
    (
        "model bucket invalid",
        {**with_predictor(), "model": {"uri": "s3://A_B/iris"}},
        "spec.model.uri",
    ),
    (
        "model version word",
        {**with_predictor(), "model": {"uri": "s3://acme/iris", "version": "v7"}},
        "spec.model.version",
    ),
    (
        "concurrency zero",
        {**with_predictor(), "serving": {"maxConcurrency": 0}},
        "spec.serving.maxConcurrency",
    ),
    (
        "negative queue",
        {**with_predictor(), "serving": {"maxQueueLength": -1}},
        "spec.serving.maxQueueLength",
    ),
    (
        "timeout too long",
        {**with_predictor(), "serving": {"timeoutSeconds": 86400}},
        "spec.serving.timeoutSeconds",
    ),
    (
        "no drain delay",
        {**with_predictor(), "serving": {"drainDelaySeconds": 0}},
        "spec.serving.drainDelaySeconds: Invalid value: 0: spec.serving.drainDelaySeconds in body"
        " should be greater than or equal to 1",
    ),
    (
        "drain delay beyond an hour",
        {**with_predictor(), "serving": {"drainDelaySeconds": 3601}},
        "spec.serving.drainDelaySeconds in body should be less than or equal to 3600",
    ),
    (
        "drain delay as text",
        {**with_predictor(), "serving": {"drainDelaySeconds": "5m"}},
        "spec.serving.drainDelaySeconds in body must be of type integer",
    ),
    (
        "min above max",
        {**with_predictor(), "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "minReplicas cannot exceed autoscaling.maxReplicas",
    ),
    (
        "min zero",
        {**with_predictor(), "autoscaling": {"minReplicas": 0}},
        "spec.autoscaling.minReplicas",
    ),
    (
        "target above capacity",
        {
            **with_predictor(),
            "serving": {"maxConcurrency": 2, "maxQueueLength": 2},
            "autoscaling": {"targetInFlight": 10},
        },
        "cannot exceed serving.maxConcurrency",
    ),
    (
        "target zero",
        {**with_predictor(), "autoscaling": {"targetInFlight": 0}},
        "spec.autoscaling.targetInFlight: Invalid value: 0: autoscaling.targetInFlight must be 0.1",
    ),
    (
        "target below a tenth",
        {**with_predictor(), "autoscaling": {"targetInFlight": 0.05}},
        "spec.autoscaling.targetInFlight: Invalid value: 0.05: autoscaling.targetInFlight must be",
    ),
    (
        # Dividing by it overflowed at every tick.
        "target the smallest float",
        {**with_predictor(), "autoscaling": {"targetInFlight": 5e-324}},
        "spec.autoscaling.targetInFlight: Invalid value: 5e-324: autoscaling.targetInFlight must "
        "be 0.1 at least",
    ),
    (
        "window malformed",
        {**with_predictor(), "autoscaling": {"window": "a minute"}},
        "spec.autoscaling.window",
    ),
    (
        # Both zero switched the autoscaler off, and the API showed Ready.
        "windows zero",
        {**with_predictor(), "autoscaling": {"window": "0s", "panicWindow": "0s"}},
        'spec.autoscaling.window: Invalid value: "0s": autoscaling.window must be from 1s to 1h',
    ),
    (
        "panic window zero",
        {**with_predictor(), "autoscaling": {"window": "0s", "panicWindow": "0s"}},
        'spec.autoscaling.panicWindow: Invalid value: "0s": autoscaling.panicWindow must be 1s',
    ),
    (
        "window below a second",
        {**with_predictor(), "autoscaling": {"window": "999ms", "panicWindow": "500ms"}},
        'spec.autoscaling.window: Invalid value: "999ms": autoscaling.window must be from 1s',
    ),
    (
        "window above an hour",
        {**with_predictor(), "autoscaling": {"window": "1h0.001ms"}},
        'spec.autoscaling.window: Invalid value: "1h0.001ms": autoscaling.window must be from 1s',
    ),
    (
        "window beyond 64-bit nanoseconds",
        {**with_predictor(), "autoscaling": {"window": "9999999h"}},
        'spec.autoscaling.window: Invalid value: "9999999h": spec.autoscaling.window in body '
        "should match",
    ),
    (
        "upscale stabilization above an hour",
        {**with_predictor(), "autoscaling": {"upscaleStabilization": "61m"}},
        'spec.autoscaling.upscaleStabilization: Invalid value: "61m": '
        "autoscaling.upscaleStabilization can be 1h at most",
    ),
    (
        "downscale stabilization above an hour",
        {**with_predictor(), "autoscaling": {"downscaleStabilization": "1h1s"}},
        'spec.autoscaling.downscaleStabilization: Invalid value: "1h1s": '
        "autoscaling.downscaleStabilization can be 1h at most",
    ),
    (
        "panic window longer",
        {**with_predictor(), "autoscaling": {"panicWindow": "2m"}},
        "panicWindow cannot be longer",
    ),
    (
        "downscale factor above one",
        {**with_predictor(), "autoscaling": {"maxDownscaleFactor": 1.5}},
        "spec.autoscaling.maxDownscaleFactor",
    ),
    (
        "surge and unavailable zero",
        {**with_predictor(), "rollout": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "cannot both be zero",
    ),
    (
        "surge percentage malformed",
        {**with_predictor(), "rollout": {"maxSurge": "150%"}},
        "spec.rollout.maxSurge",
    ),
    (
        "deadline too short",
        {**with_predictor(), "rollout": {"progressDeadlineSeconds": 1}},
        "spec.rollout.progressDeadlineSeconds",
    ),
    (
        "retention not a CloudWatch value",
        {**with_predictor(), "logging": {"retentionDays": 10}},
        "spec.logging.retentionDays: Unsupported value: 10",
    ),
    ("node group with spaces", {**with_predictor(), "nodeGroup": "gpu a10g"}, "spec.nodeGroup"),
    (
        "replicas beyond max",
        {**with_predictor(), "autoscaling": {"maxReplicas": 3}, "replicas": 9},
        "replicas must lie within",
    ),
    ("image with a NUL", {"predictor": {"image": "iris\x00:1"}}, "spec.predictor.image"),
    (
        "image with a line of YAML",
        {"predictor": {"image": "iris:1\nkind: Secret"}},
        "spec.predictor.image",
    ),
    ("image too long", {"predictor": {"image": "r/" + "a" * 5000}}, "spec.predictor.image"),
    (
        # Sent by the proxy in its probe's request line: a line break would add headers.
        "readiness path with a line break",
        with_predictor(readinessPath="/healthz\r\nHost: elsewhere"),
        "spec.predictor.readinessPath",
    ),
    (
        "readiness path with a space",
        with_predictor(readinessPath="/health z"),
        "spec.predictor.readinessPath",
    ),
    (
        "readiness path too long",
        with_predictor(readinessPath="/" + "a" * 2000),
        "spec.predictor.readinessPath",
    ),
    ("port negative", with_predictor(port=-1), "spec.predictor.port"),
    ("port fractional", with_predictor(port=80.5), "spec.predictor.port"),
    ("command too many items", with_predictor(command=["x"] * 257), "spec.predictor.command"),
    ("args item too long", with_predictor(args=["a" * 4097]), "spec.predictor.args[0]"),
    (
        "env too many entries",
        with_predictor(env=[{"name": f"V{i}", "value": "x"} for i in range(129)]),
        "spec.predictor.env",
    ),
    (
        "env value too long",
        with_predictor(env=[{"name": "A", "value": "a" * 32769}]),
        "spec.predictor.env[0].value",
    ),
    (
        "env name too long",
        with_predictor(env=[{"name": "A" * 257, "value": "x"}]),
        "spec.predictor.env[0].name",
    ),
    ("cpu negative", with_predictor(resources={"cpu": "-1"}), "spec.predictor.resources.cpu"),
    (
        "memory negative",
        with_predictor(resources={"memory": "-1Gi"}),
        "spec.predictor.resources.memory",
    ),
    ("gpu fractional", with_predictor(resources={"gpu": 0.5}), "spec.predictor.resources.gpu"),
    ("gpu as text", with_predictor(resources={"gpu": "one"}), "spec.predictor.resources.gpu"),
    ("predictor not an object", {"predictor": "iris"}, "spec.predictor"),
    (
        "model uri with a NUL",
        {**with_predictor(), "model": {"uri": "s3://acme/ir\x00is"}},
        "spec.model.uri",
    ),
    (
        "model version negative",
        {**with_predictor(), "model": {"uri": "s3://acme/iris", "version": "-1"}},
        "spec.model.version",
    ),
    (
        "model version too long",
        {**with_predictor(), "model": {"uri": "s3://acme/iris", "version": "9" * 100}},
        "spec.model.version",
    ),
    (
        "concurrency beyond its bound",
        {**with_predictor(), "serving": {"maxConcurrency": 10**9}},
        "spec.serving.maxConcurrency",
    ),
    (
        "queue beyond its bound",
        {**with_predictor(), "serving": {"maxQueueLength": 10**9}},
        "spec.serving.maxQueueLength",
    ),
    (
        "timeout zero",
        {**with_predictor(), "serving": {"timeoutSeconds": 0}},
        "spec.serving.timeoutSeconds",
    ),
    (
        "max replicas zero",
        {**with_predictor(), "autoscaling": {"minReplicas": 1, "maxReplicas": 0}},
        "spec.autoscaling.maxReplicas",
    ),
    (
        "max replicas beyond its bound",
        {**with_predictor(), "autoscaling": {"maxReplicas": 10**7}},
        "spec.autoscaling.maxReplicas",
    ),
    (
        "tolerance negative",
        {**with_predictor(), "autoscaling": {"tolerance": -0.1}},
        "spec.autoscaling.tolerance",
    ),
    (
        "tolerance above a half",
        {**with_predictor(), "autoscaling": {"tolerance": 0.9}},
        "spec.autoscaling.tolerance",
    ),
    (
        "panic threshold below one",
        {**with_predictor(), "autoscaling": {"panicThreshold": 0.5}},
        "spec.autoscaling.panicThreshold",
    ),
    (
        "upscale factor below one",
        {**with_predictor(), "autoscaling": {"maxUpscaleFactor": 0.5}},
        "spec.autoscaling.maxUpscaleFactor",
    ),
    (
        "downscale factor zero",
        {**with_predictor(), "autoscaling": {"maxDownscaleFactor": 0}},
        "spec.autoscaling.maxDownscaleFactor",
    ),
    (
        "unavailable above a hundred percent",
        {**with_predictor(), "rollout": {"maxUnavailable": "101%"}},
        "spec.rollout.maxUnavailable",
    ),
    ("surge negative", {**with_predictor(), "rollout": {"maxSurge": -1}}, "spec.rollout.maxSurge"),
    (
        "deadline beyond a day",
        {**with_predictor(), "rollout": {"progressDeadlineSeconds": 10**10}},
        "spec.rollout.progressDeadlineSeconds",
    ),
    (
        "retention negative",
        {**with_predictor(), "logging": {"retentionDays": -1}},
        "spec.logging.retentionDays",
    ),
    (
        "canary with nothing of its own",
        {**with_predictor(), "canary": {"trafficPercent": 10}},
        "canary needs an image or a modelVersion",
    ),
    (
        "canary without a share",
        {**with_predictor(), "canary": {"image": "registry.example.com/iris:2.0.0"}},
        "spec.canary.trafficPercent: Required value",
    ),
    (
        "canary share above a hundred",
        {**with_predictor(), "canary": {"trafficPercent": 101, "image": "a.example.com/b:2"}},
        "spec.canary.trafficPercent: Invalid value: 101",
    ),
    (
        "canary share negative",
        {**with_predictor(), "canary": {"trafficPercent": -1, "image": "a.example.com/b:2"}},
        "spec.canary.trafficPercent: Invalid value: -1",
    ),
    (
        "canary image with spaces",
        {**with_predictor(), "canary": {"trafficPercent": 10, "image": "my image"}},
        "spec.canary.image",
    ),
    (
        "canary model version word",
        {
            **with_predictor(),
            "model": {"uri": "s3://acme/iris"},
            "canary": {"trafficPercent": 10, "modelVersion": "v8"},
        },
        "spec.canary.modelVersion",
    ),
    (
        "canary model version without a model",
        {**with_predictor(), "canary": {"trafficPercent": 10, "modelVersion": "8"}},
        "spec.canary.modelVersion: Invalid value: canary.modelVersion needs spec.model",
    ),
    (
        "canary of the stable image",
        {**with_predictor(), "canary": {"trafficPercent": 10, "image": IMAGE}},
        "spec.canary: Invalid value: canary is the stable version itself",
    ),
    (
        "canary of the stable model version",
        {
            **with_predictor(),
            "model": {"uri": "s3://acme/iris", "version": "7"},
            "canary": {"trafficPercent": 10, "modelVersion": "7"},
        },
        "canary is the stable version itself",
    ),
    (
        "canary of the stable image and model version",
        {
            **with_predictor(),
            "model": {"uri": "s3://acme/iris"},
            "canary": {"trafficPercent": 10, "image": IMAGE, "modelVersion": "latest"},
        },
        "canary is the stable version itself",
    ),
    ("node group too long", {**with_predictor(), "nodeGroup": "a" * 100}, "spec.nodeGroup"),
    ("replicas negative", {**with_predictor(), "replicas": -1}, "spec.replicas"),
    ("unknown field", {**with_predictor(), "replica": 3}, 'unknown field "spec.replica"'),
    ("unknown nested field", with_predictor(gpus=1), 'unknown field "spec.predictor.gpus"'),
]

NAMES: list[tuple[str, str, str]] = [
    ("name too long", "a" * 51, "at most 50 characters"),
    ("name starting with a digit", "1iris", "must start with a letter"),
    ("name in capitals", "Iris", "metadata.name"),
    ("name with a dot", "iris.v2", "metadata.name"),
]


@pytest.mark.chaos("hostile specs")
@pytest.mark.parametrize(("case", "spec", "words"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_the_api_server_refuses(
    api: ApiClient,
    namespace: str,
    crd: None,
    case: str,
    spec: dict[str, Any],
    words: str,
    chaos: Case,
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RealtimeAPI",
        "metadata": {"name": "bad"},
        "spec": spec,
    }
    await refused(api, namespace, body, words)
    chaos.refused()


@pytest.mark.chaos("hostile specs")
@pytest.mark.parametrize(("case", "name", "words"), NAMES, ids=[c[0] for c in NAMES])
async def test_the_api_server_refuses_names(
    api: ApiClient, namespace: str, crd: None, case: str, name: str, words: str, chaos: Case
) -> None:
    body = realtime_api(name)
    await refused(api, namespace, body, words)
    chaos.refused()


async def refused(api: ApiClient, namespace: str, body: dict[str, Any], words: str) -> None:
    objects = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as refusal:
        # Strict, as kubectl asks by default: unknown fields are refused, not silently pruned.
        await objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
        )
    assert refusal.value.status in (400, 422)
    message = json.loads(refusal.value.body)["message"]
    assert words in message, message
    listed = await objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    assert listed["items"] == []


@pytest.mark.chaos("hostile specs")
async def test_an_unknown_node_group_is_invalid_while_other_apis_carry_on(
    api: ApiClient, namespace: str, operator: Operator, chaos: Case
) -> None:
    await create(api, namespace, realtime_api("lost", nodeGroup="tpu-v5"))
    await create(api, namespace, realtime_api("fine"))

    async def refused_by_operator() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "lost")
        return obj if condition(obj, "Ready").get("reason") == "InvalidSpec" else None

    lost = await eventually(refused_by_operator, timeout=60, what="InvalidSpec on 'lost'")
    assert lost["status"]["phase"] == "Failed"
    assert (
        "'tpu-v5' is not a node group of this operator (gpu-a10g)"
        in condition(lost, "Ready")["message"]
    )
    await wait_ready(api, namespace, "fine")

    await event(api, namespace, "InvalidSpec", "tpu-v5")
    core = client.CoreV1Api(api)
    events = await core.list_namespaced_event(namespace, field_selector="involvedObject.name=lost")
    assert [e.type for e in events.items if e.reason == "InvalidSpec"] == ["Warning"]
    assert not (
        await client.AppsV1Api(api).list_namespaced_deployment(
            namespace, label_selector="ferry.dev/api=lost"
        )
    ).items

    # Fixing the spec is all it takes.
    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "lost",
        {"spec": {"nodeGroup": "gpu-a10g"}},
        _content_type="application/merge-patch+json",
    )

    async def scheduled_on_group() -> bool:
        deployments = (
            await client.AppsV1Api(api).list_namespaced_deployment(
                namespace, label_selector="ferry.dev/api=lost"
            )
        ).items
        return bool(deployments) and deployments[0].spec.template.spec.node_selector == {
            "ferry.dev/node-group": "gpu-a10g"
        }

    await eventually(scheduled_on_group, timeout=60, what="the fixed API's Deployment")
    chaos.handled()


@asynccontextmanager
async def crd_without_rules(
    cluster: ClusterInfo, api: ApiClient, autoscaling: dict[str, Any]
) -> AsyncIterator[None]:
    """The CRD as it was before it refused these autoscaling fields, until the block ends; then
    crds/ again, in force once the API server refuses them once more."""
    crd = yaml.safe_load((REPO / "crds" / f"{PLURAL}.{GROUP}.yaml").read_text())
    fields = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["autoscaling"]["properties"]
    for field in autoscaling:
        del fields[field]["x-kubernetes-validations"]
    kubectl(
        cluster,
        *("apply", "--server-side", "--field-manager=ferry-local", "-f", "-"),
        stdin=json.dumps(crd),
    )
    try:
        yield
    finally:
        install_crds(cluster)
        probe = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RealtimeAPI",
            "metadata": {"name": "probe"},
            "spec": {**with_predictor(), "autoscaling": autoscaling},
        }

        async def refused() -> bool:
            try:
                await client.CustomObjectsApi(api).create_namespaced_custom_object(
                    GROUP, VERSION, "default", PLURAL, probe, dry_run="All"
                )
            except ApiException as error:
                return error.status == 422
            return False

        await eventually(refused, timeout=30, what=f"the CRD to refuse {autoscaling} again")


async def stored_under_an_older_crd(
    api: ApiClient, cluster: ClusterInfo, namespace: str, autoscaling: dict[str, Any]
) -> None:
    """API 'stale' with autoscaling fields the CRD refuses now, as one created before it did:
    such an API stays stored when the CRD is upgraded, and only the operator sees it."""
    stale = realtime_api("stale", autoscaling=autoscaling)

    async def admitted() -> bool:
        try:
            await create(api, namespace, stale)
        except ApiException as error:
            if error.status != 422:  # the rules may not be gone yet
                raise
            return False
        return True

    async with crd_without_rules(cluster, api, autoscaling):
        await eventually(admitted, timeout=30, what=f"{autoscaling} admitted")


async def refused_by_the_operator(api: ApiClient, namespace: str, message: str) -> None:
    """'stale' Failed with Ready=False, reason InvalidSpec and `message`, and one Warning Event."""

    async def refused() -> dict[str, Any] | None:
        obj = await get_api(api, namespace, "stale")
        return obj if condition(obj, "Ready").get("reason") == "InvalidSpec" else None

    obj = await eventually(refused, timeout=60, what="InvalidSpec on 'stale'")
    assert obj["status"]["phase"] == "Failed"
    assert condition(obj, "Ready")["message"] == message
    await event(api, namespace, "InvalidSpec", message)
    core = client.CoreV1Api(api)
    events = await core.list_namespaced_event(namespace, field_selector="involvedObject.name=stale")
    assert [e.type for e in events.items if e.reason == "InvalidSpec"] == ["Warning"]


@pytest.mark.chaos("hostile specs")
async def test_an_api_stored_before_the_crd_refused_zero_windows_is_invalid_with_an_event(
    api: ApiClient, namespace: str, cluster: ClusterInfo, operator: Operator, chaos: Case
) -> None:
    # Its autoscaler could never scale it, which it used to log at debug level while it showed
    # Ready.
    await stored_under_an_older_crd(api, cluster, namespace, {"window": "0s", "panicWindow": "0s"})
    await refused_by_the_operator(
        api,
        namespace,
        "spec.autoscaling: window must be longer than zero; panicWindow must be longer than zero",
    )

    await patch_api(
        api, namespace, "stale", {"spec": {"autoscaling": {"window": "30s", "panicWindow": "3s"}}}
    )
    await wait_ready(api, namespace, "stale")
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_an_api_stored_before_the_crd_refused_a_zero_target_is_invalid_with_an_event(
    api: ApiClient, namespace: str, cluster: ClusterInfo, operator: Operator, chaos: Case
) -> None:
    # A target of zero in flight is no target the autoscaler can follow; read as "left out", it
    # was served with the default (70 % of maxConcurrency), a target the user never wrote.
    await stored_under_an_older_crd(api, cluster, namespace, {"targetInFlight": 0})
    await refused_by_the_operator(
        api, namespace, "spec.autoscaling: targetInFlight must be above zero"
    )

    await patch_api(api, namespace, "stale", {"spec": {"autoscaling": {"targetInFlight": 2}}})
    await wait_ready(api, namespace, "stale")
    chaos.handled()
