"""The Deployment and Service rendered from a spec: every field the issue names, and no way for a
spec value to change the structure of what is rendered."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ferry import names
from ferry.capacity.node_group import NodeGroup, Taint
from ferry.render.children import render_deployment, render_service
from ferry.settings import Settings
from ferry.spec.model import InvalidSpecError, parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import with_defaults

API = ApiRef("iris", "ml", "8d6e-uid", 3)
GPU_GROUP = NodeGroup(
    "gpu-a10g",
    labels={"ferry.dev/node-group": "gpu-a10g"},
    taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),),
)
SETTINGS = Settings(image="ghcr.io/ferry-dev/ferry:test", node_groups={"gpu-a10g": GPU_GROUP})


def deployment(replicas: int | None = None, **spec: Any) -> dict[str, Any]:
    raw = with_defaults({"predictor": {"image": "registry.example.com/iris:1.4.0"}, **spec})
    parsed = parse_spec(raw)
    version = parsed.model.version if parsed.model else None
    return render_deployment(API, parsed, SETTINGS, model_version=version, replicas=replicas)


def containers(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in rendered["spec"]["template"]["spec"]["containers"]}


def test_the_deployment_is_owned_by_the_api_and_labelled_for_the_ecosystem() -> None:
    rendered = deployment()
    meta = rendered["metadata"]
    assert (meta["name"], meta["namespace"]) == ("iris", "ml")
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "RealtimeAPI",
            "name": "iris",
            "uid": "8d6e-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "ferry"
    assert meta["labels"][names.API_LABEL] == "iris"
    assert meta["annotations"][names.GENERATION_ANNOTATION] == "3"
    assert rendered["spec"]["selector"] == {"matchLabels": {names.API_LABEL: "iris"}}


def test_replicas_are_rendered_only_when_asked_for() -> None:
    assert "replicas" not in deployment()["spec"]
    assert deployment(replicas=4)["spec"]["replicas"] == 4


def test_the_proxy_sidecar_carries_the_serving_limits_and_gates_readiness() -> None:
    rendered = deployment(
        serving={"maxConcurrency": 8, "maxQueueLength": 50, "timeoutSeconds": 30},
        predictor={"image": "a/b:1", "port": 9000, "readinessPath": "/healthz"},
    )
    proxy = containers(rendered)["proxy"]
    assert proxy["image"] == SETTINGS.image
    assert {
        "--max-concurrency=8",
        "--max-queue-length=50",
        "--timeout-seconds=30",
        "--upstream-port=9000",
        "--readiness-path=/healthz",
    } <= set(proxy["args"])
    assert proxy["readinessProbe"]["httpGet"]["port"] == "admin"
    assert "readinessProbe" not in containers(rendered)["predictor"]
    # The predictor stops only once the proxy has answered everything it accepted.
    assert containers(rendered)["predictor"]["lifecycle"]["preStop"] == {
        "httpGet": {"path": "/drained", "port": names.PROXY_ADMIN_PORT}
    }
    assert rendered["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30


def test_the_service_sends_port_80_to_the_proxy_of_the_stable_pods_only() -> None:
    service = render_service(API)
    # Not the canary's, which the stable Deployment's selector (all the API's pods) matches.
    assert service["spec"]["selector"] == {
        names.API_LABEL: "iris",
        "app.kubernetes.io/component": "predictor",
    }
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}
    ]
    proxy_ports = {
        p["name"]: p["containerPort"] for p in containers(deployment())["proxy"]["ports"]
    }
    assert proxy_ports["proxy"] == names.PROXY_PORT


def test_every_container_runs_locked_down() -> None:
    rendered = deployment(model={"uri": "s3://acme/iris", "version": "7"})
    pod = rendered["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*pod["containers"], *pod["initContainers"]]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize(
    ("resources", "requests", "limits"),
    [
        ({"cpu": "500m", "memory": "1Gi"}, {"cpu": "500m", "memory": "1Gi"}, {"memory": "1Gi"}),
        (
            {"cpu": 2, "memory": "4Gi", "gpu": 1},
            {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
            {"memory": "4Gi", "nvidia.com/gpu": "1"},
        ),
    ],
)
def test_predictor_resources(
    resources: dict[str, Any], requests: dict[str, str], limits: dict[str, str]
) -> None:
    rendered = deployment(predictor={"image": "a/b:1", "resources": resources})
    assert containers(rendered)["predictor"]["resources"] == {
        "requests": requests,
        "limits": limits,
    }


def test_a_model_is_fetched_by_an_init_container_into_a_read_only_mount() -> None:
    rendered = deployment(model={"uri": "s3://acme/iris", "version": "7"})
    pod = rendered["spec"]["template"]["spec"]
    (fetch,) = pod["initContainers"]
    assert fetch["args"] == ["s3://acme/iris", "--version", "7", "--dest", names.MODEL_DIR]
    mounts = {m["name"]: m for m in containers(rendered)["predictor"]["volumeMounts"]}
    assert mounts["model"] == {"name": "model", "mountPath": names.MODEL_DIR, "readOnly": True}
    assert (
        rendered["spec"]["template"]["metadata"]["annotations"][names.MODEL_VERSION_ANNOTATION]
        == "7"
    )


def test_without_a_model_there_is_no_init_container() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]


def test_a_node_group_brings_its_selector_and_tolerations() -> None:
    pod = deployment(nodeGroup="gpu-a10g")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"ferry.dev/node-group": "gpu-a10g"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]


def test_apis_without_a_node_group_go_to_the_default_one() -> None:
    raw = with_defaults({"predictor": {"image": "a/b:1"}})
    defaulted = Settings(node_groups={"gpu-a10g": GPU_GROUP}, default_node_group="gpu-a10g")
    rendered = render_deployment(API, parse_spec(raw), defaulted, model_version=None, replicas=1)
    assert rendered["spec"]["template"]["spec"]["nodeSelector"] == {
        "ferry.dev/node-group": "gpu-a10g"
    }


def test_an_unknown_node_group_is_an_invalid_spec_naming_the_known_ones() -> None:
    with pytest.raises(InvalidSpecError, match=r"spec\.nodeGroup: 'tpu'.*gpu-a10g"):
        deployment(nodeGroup="tpu")


def test_rollout_settings_reach_the_strategy() -> None:
    rendered = deployment(
        rollout={"maxSurge": 1, "maxUnavailable": "10%", "progressDeadlineSeconds": 120}
    )
    assert rendered["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "10%"}
    assert rendered["spec"]["progressDeadlineSeconds"] == 120


def proxy_flags(rendered: dict[str, Any]) -> dict[str, int]:
    """The proxy's --drain-delay and --grace-period, in seconds."""
    flags = dict(
        arg.removeprefix("--").split("=", 1) for arg in containers(rendered)["proxy"]["args"]
    )
    return {name: int(flags[name]) for name in ("drain-delay", "grace-period")}


def test_the_operators_drain_delay_reaches_every_proxy_that_sets_none_of_its_own() -> None:
    raw = with_defaults({"predictor": {"image": "a/b:1"}})
    lagging = Settings(drain_delay=40)
    rendered = render_deployment(API, parse_spec(raw), lagging, model_version=None, replicas=1)
    assert proxy_flags(rendered)["drain-delay"] == 40
    assert proxy_flags(deployment())["drain-delay"] == Settings().drain_delay


def test_an_apis_own_drain_delay_wins_over_the_operators() -> None:
    rendered = deployment(serving={"drainDelaySeconds": 300})
    assert proxy_flags(rendered)["drain-delay"] == 300


@settings(max_examples=200, deadline=None)
@given(
    timeout=st.integers(1, 3600),
    operators=st.integers(1, 3600),
    own=st.one_of(st.none(), st.integers(1, 3600)),
)
def test_a_pod_outlives_its_drain_delay_and_then_its_longest_request(
    timeout: int, operators: int, own: int | None
) -> None:
    serving = {"timeoutSeconds": timeout, **({} if own is None else {"drainDelaySeconds": own})}
    raw = with_defaults({"predictor": {"image": "a/b:1"}, "serving": serving})
    configured = Settings(drain_delay=operators)
    rendered = render_deployment(API, parse_spec(raw), configured, model_version=None, replicas=1)
    flags = proxy_flags(rendered)
    drain = own or operators
    assert flags["drain-delay"] == drain
    # The proxy accepts through the drain delay, and a request accepted at its end may take
    # timeoutSeconds: its own grace period covers both...
    assert flags["grace-period"] >= drain + timeout
    # ... and the kubelet kills the pod only after the proxy has answered or cut everything.
    grace = rendered["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > flags["grace-period"]


HOSTILE = [
    "value\nkind: Secret",
    "'; rm -rf /",
    '"}, {"name": "INJECTED", "value": "1',
    "{{ api.name }}",
    "- - -\n---\napiVersion: v1",
    "&anchor *alias !!python/object:os.system",
    "!v 0",
    "#not a comment",
    "ünïcødé ✓",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_come_out_exactly_as_they_went_in(hostile: str) -> None:
    rendered = deployment(
        predictor={
            "image": "a/b:1",
            "command": [hostile],
            "args": [hostile, "--flag"],
            "env": [{"name": "USER_VALUE", "value": hostile}],
        }
    )
    predictor = containers(rendered)["predictor"]
    assert predictor["command"] == [hostile]
    assert predictor["args"] == [hostile, "--flag"]
    user_env = [e for e in predictor["env"] if not e["name"].startswith("FERRY_")]
    assert user_env == [{"name": "USER_VALUE", "value": hostile}]
    assert set(rendered) == {"apiVersion", "kind", "metadata", "spec"}
    # The rendered object survives a YAML round trip unchanged: no tag, anchor or document crept in.
    assert yaml.safe_load(yaml.safe_dump(rendered)) == rendered


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.lists(st.text(max_size=50), max_size=5))
def test_any_text_in_env_and_args_round_trips(value: str, args: list[str]) -> None:
    rendered = deployment(
        predictor={"image": "a/b:1", "args": args, "env": [{"name": "V", "value": value}]}
    )
    predictor = containers(rendered)["predictor"]
    assert predictor.get("args", []) == args
    assert predictor["env"][-1] == {"name": "V", "value": value}


def test_apis_of_one_form_share_a_parse_but_no_object() -> None:
    first = deployment(predictor={"image": "a/b:1", "env": [{"name": "V", "value": "one"}]})
    containers(first)["predictor"]["env"].clear()
    first["metadata"]["labels"]["changed"] = "yes"
    second = deployment(predictor={"image": "a/b:2", "env": [{"name": "V", "value": "two"}]})
    predictor = containers(second)["predictor"]
    assert predictor["image"] == "a/b:2"
    assert predictor["env"][-1] == {"name": "V", "value": "two"}
    assert "changed" not in second["metadata"]["labels"]
