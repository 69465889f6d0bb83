"""The Helm chart rendered by the real helm: lint, values the schema refuses, what each value
becomes, and every rendering accepted by the real API server (server-side dry run).

The chart running for real (install, upgrade, uninstall) is test_chart_install.py.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.render.children import render_deployment
from ferry.settings import DEFAULT_IMAGE, Settings, SettingsError
from ferry.spec.model import GatewayRef, parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import with_defaults
from ferry_local.cluster import ClusterInfo
from tests.support.ferry_operator import REPO, kubectl
from tests.support.helm import CHART, Helm, container_env, find

IRSA_ROLE = "arn:aws:iam::123456789012:role/ferry-operator"
GPU_GROUP = {
    "name": "gpu-a10g",
    "asgName": "eks-gpu-a10g",
    "labels": {"ferry.dev/node-group": "gpu-a10g"},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    "allocatable": {"cpu": "7", "memory": "28Gi", "gpu": 1},
    "minSize": 0,
    "maxSize": 8,
}
CPU_GROUP = {"name": "cpu", "labels": {"ferry.dev/node-group": "cpu"}}
# Everything the chart can do at once, each value away from its default.
EVERYTHING: dict[str, Any] = {
    "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "ghcr"}],
    "dataPlaneImage": "registry.example.com/ferry:0.1.0-patched",
    "drainDelaySeconds": 310,
    "gateway": {"namespace": "gateways", "name": "public", "listener": "https"},
    "serviceAccount": {"roleArn": IRSA_ROLE, "annotations": {"team": "ml"}},
    "aws": {"region": "eu-west-1", "endpoint": "https://aws.example.com"},
    "nodeGroups": [GPU_GROUP, CPU_GROUP],
    "defaultNodeGroup": "cpu",
    "logging": {"format": "plain", "level": "DEBUG"},
    "logGroups": {"prefix": "/ml/apis", "onDelete": "delete"},
    "autoscaler": {"interval": 3, "scrapeTimeout": 0.5, "scrapeConcurrency": 64},
    "capacity": {"interval": 20, "scaleInCooldown": 900},
    "workerLimit": 80,
    "operator": {
        "ports": {"liveness": 18080, "metrics": 19090},
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
            {
                "name": "AWS_ACCESS_KEY_ID",
                "valueFrom": {"secretKeyRef": {"name": "aws", "key": "id", "optional": True}},
            },
        ],
        "podAnnotations": {"example.com/owner": "ml-platform"},
        "podLabels": {"team": "ml"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops"}],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "preference": {
                            "matchExpressions": [
                                {"key": "ops", "operator": "In", "values": ["true"]}
                            ]
                        },
                    }
                ]
            }
        },
    },
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "dashboard": {"enabled": True},
    },
    "fluentBit": {"enabled": True, "serviceAccount": {"roleArn": IRSA_ROLE}},
}
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor"}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tmp_path_factory.mktemp("helm"))


def values_file(directory: Path, values: dict[str, Any], name: str = "values.yaml") -> str:
    path = directory / name
    path.write_text(yaml.safe_dump(values))
    return f"--values={path}"


def dry_run(cluster: ClusterInfo, docs: list[dict[str, Any]], directory: Path) -> None:
    """Every object through the API server's validation and admission, nothing persisted."""
    manifest = directory / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    applied = kubectl(
        cluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=ferry-chart-test",
        "--dry-run=server",
        "-f",
        str(manifest),
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("(server dry run)") == len(docs), applied.stdout


# --- lint and values the schema refuses -----------------------------------------------------


def test_the_chart_lints_strictly_with_its_defaults_and_with_everything_on(
    helm: Helm, tmp_path: Path
) -> None:
    helm.run("lint", "--strict", str(CHART))
    helm.run("lint", "--strict", str(CHART), values_file(tmp_path, EVERYTHING))


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator.resource.requests.cpu=1", "additional properties 'resource' not allowed"),
        ("watchNamespace={ml}", "additional properties 'watchNamespace' not allowed"),
        ("logging.levl=DEBUG", "additional properties 'levl' not allowed"),
        ("nodeGroups[0].nme=gpu", "additional properties 'nme' not allowed"),
        ("logGroups.onDelete=drop", "value must be one of 'keep', 'delete'"),
        ("autoscaler.interval=0", "interval"),
    ],
)
def test_a_misspelt_or_wrong_value_fails_before_anything_is_applied(
    helm: Helm, setting: str, message: str
) -> None:
    result = helm.run("template", "ferry", str(CHART), f"--set={setting}", check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["--set=rbac.scope=namespaced"],
            "rbac.scope namespaced grants access per namespace: list them in watchNamespaces",
        ),
        (
            ["--set=rbac.scope=namespaced", "--set=watchNamespaces={ml,team-*}"],
            "rbac.scope namespaced needs namespaces by name, not patterns: ml, team-*",
        ),
        (
            ["--set=defaultNodeGroup=gpu", "--set=nodeGroups[0].name=cpu"],
            'defaultNodeGroup "gpu" is not one of nodeGroups (cpu)',
        ),
        (["--set=gateway.name=public"], "gateway.namespace is required with gateway.name"),
        (["--set=gateway.listener=web"], "gateway.listener needs gateway.name"),
    ],
)
def test_settings_the_operator_would_refuse_fail_at_install_with_the_reason(
    helm: Helm, settings: list[str], message: str
) -> None:
    result = helm.run("template", "ferry", str(CHART), *settings, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# Values files a new user writes that the operator refuses at start: each is refused at install,
# by the schema (in JSON Schema's words) or by the chart's checks (in the operator's), and the
# operator refuses what the chart would have given it for the same reason.
REFUSED_AT_START = [
    pytest.param(
        {"drainDelaySeconds": 0},
        {"FERRY_DRAIN_DELAY_SECONDS": "0"},
        "at '/drainDelaySeconds': minimum: got 0, want 1",
        "FERRY_DRAIN_DELAY_SECONDS must be whole seconds from 1 to 3600, not 0: without a drain"
        " delay, connections still routed to a terminating pod are refused",
        id="no-drain-delay",
    ),
    pytest.param(
        {"capacity": {"scaleInCooldown": 0}},
        {"FERRY_SCALE_IN_COOLDOWN": "0"},
        "at '/capacity/scaleInCooldown': exclusiveMinimum: got 0, want 0",
        "FERRY_SCALE_IN_COOLDOWN must be seconds above 0, not '0'",
        id="no-cooldown",
    ),
    pytest.param(
        {"nodeGroups": [{"name": "gpu", "minSize": 5, "maxSize": 2}]},
        {"FERRY_NODE_GROUPS": json.dumps([{"name": "gpu", "minSize": 5, "maxSize": 2}])},
        "nodeGroups[0] (gpu): minSize 5 is above maxSize 2",
        "FERRY_NODE_GROUPS[0] (gpu): minSize 5 is above maxSize 2",
        id="min-size-above-max-size",
    ),
    pytest.param(
        {"nodeGroups": [{"name": "gpu"}, {"name": "cpu"}, {"name": "gpu"}]},
        {"FERRY_NODE_GROUPS": json.dumps([{"name": "gpu"}, {"name": "cpu"}, {"name": "gpu"}])},
        "nodeGroups names 'gpu' twice",
        "FERRY_NODE_GROUPS names 'gpu' twice",
        id="a-group-named-twice",
    ),
    pytest.param(
        {"operator": {"ports": {"liveness": 9090, "metrics": 9090}}},
        {"FERRY_LIVENESS_PORT": "9090", "FERRY_METRICS_PORT": "9090"},
        "operator.ports.liveness and operator.ports.metrics are both 9090:"
        " the liveness probe and the metrics each need their own port",
        "FERRY_LIVENESS_PORT and FERRY_METRICS_PORT are both 9090:"
        " the liveness probe and the metrics each need their own port",
        id="one-port-for-both",
    ),
    pytest.param(
        {"nodeGroups": [{**GPU_GROUP, "asgName": ""}]},
        {"FERRY_NODE_GROUPS": json.dumps([{**GPU_GROUP, "asgName": ""}])},
        "at '/nodeGroups/0/asgName': minLength: got 0, want 1",
        "FERRY_NODE_GROUPS[0] (gpu-a10g): asgName must be the Auto Scaling group's name",
        id="an-empty-asg-name",
    ),
    pytest.param(
        {"nodeGroups": [GPU_GROUP, {**GPU_GROUP, "name": "gpu-spot"}]},
        {"FERRY_NODE_GROUPS": json.dumps([GPU_GROUP, {**GPU_GROUP, "name": "gpu-spot"}])},
        "nodeGroups: groups 'gpu-a10g' and 'gpu-spot' both name Auto Scaling group"
        " 'eks-gpu-a10g'; each needs its own",
        "FERRY_NODE_GROUPS: groups 'gpu-a10g' and 'gpu-spot' both name Auto Scaling group"
        " 'eks-gpu-a10g'; each needs its own",
        id="one-asg-for-two-groups",
    ),
    pytest.param(
        {"nodeGroups": [{**GPU_GROUP, "allocatable": {"cpu": "0", "memory": "16Gi"}}]},
        {
            "FERRY_NODE_GROUPS": json.dumps(
                [{**GPU_GROUP, "allocatable": {"cpu": "0", "memory": "16Gi"}}]
            )
        },
        "nodeGroups[0] (gpu-a10g): allocatable cpu and memory must be above 0 (cpu 0, memory 16Gi)",
        "FERRY_NODE_GROUPS[0] (gpu-a10g): allocatable cpu and memory must be above 0"
        " (cpu 0, memory 16Gi)",
        id="an-empty-node",
    ),
    pytest.param(
        {"gateway": {"namespace": "gateways", "name": "Public"}},
        {"FERRY_GATEWAY": "gateways/Public"},
        "at '/gateway/name'",
        "FERRY_GATEWAY must be <namespace>/<name> of a Gateway, not 'gateways/Public'",
        id="a-gateway-name-that-is-no-name",
    ),
]


@pytest.mark.parametrize(("values", "env", "chart_says", "operator_says"), REFUSED_AT_START)
def test_values_the_operator_refuses_at_start_fail_at_install_with_its_reason(
    helm: Helm,
    tmp_path: Path,
    values: dict[str, Any],
    env: dict[str, str],
    chart_says: str,
    operator_says: str,
) -> None:
    result = helm.run("template", "ferry", str(CHART), values_file(tmp_path, values), check=False)
    assert result.returncode != 0
    assert chart_says in result.stderr
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == operator_says


@pytest.mark.parametrize(
    "name",
    [
        # One the chart sets from its values: the second definition would win unchecked.
        "FERRY_SCALE_IN_COOLDOWN",
        # One the operator no longer reads: it would do nothing.
        "FERRY_CLUSTER_DOMAIN",
    ],
)
def test_extra_env_cannot_set_ferrys_own_variables(helm: Helm, tmp_path: Path, name: str) -> None:
    values = {
        "operator": {
            "extraEnv": [
                {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
                {"name": name, "value": "0"},
            ]
        }
    }
    result = helm.run("template", "ferry", str(CHART), values_file(tmp_path, values), check=False)
    assert result.returncode != 0
    assert (
        f"operator.extraEnv[1] {name}: variables named FERRY_* are set by the chart from its values"
    ) in result.stderr


# --- what the values become -----------------------------------------------------------------


def test_the_defaults_run_the_operator_with_its_own_defaults(helm: Helm) -> None:
    settings = Settings.from_env(container_env(helm.template()))
    # The one deliberate difference: logs of a cluster go to a log pipeline.
    assert settings == replace(Settings(), log_format="json")


def test_every_value_reaches_the_operator_as_its_setting(helm: Helm, tmp_path: Path) -> None:
    env = container_env(helm.template(values_file(tmp_path, EVERYTHING)))
    settings = Settings.from_env(env)
    assert settings.image == "registry.example.com/ferry:0.1.0-patched"
    assert settings.drain_delay == 310
    assert (settings.gateway, settings.gateway_listener) == (
        GatewayRef("gateways", "public"),
        "https",
    )
    assert settings.node_groups.keys() == {"gpu-a10g", "cpu"}
    gpu = settings.node_groups["gpu-a10g"]
    assert (gpu.asg_name, gpu.min_size, gpu.max_size) == ("eks-gpu-a10g", 0, 8)
    assert gpu.labels == {"ferry.dev/node-group": "gpu-a10g"}
    assert [(t.key, t.value, t.effect) for t in gpu.taints] == [
        ("nvidia.com/gpu", "present", "NoSchedule")
    ]
    assert settings.default_node_group == "cpu"
    assert (settings.log_format, settings.log_level) == ("plain", "DEBUG")
    assert (settings.log_group_prefix, settings.delete_log_groups) == ("/ml/apis", True)
    assert (settings.autoscale_interval, settings.scrape_timeout) == (3.0, 0.5)
    assert settings.scrape_concurrency == 64
    assert (settings.capacity_interval, settings.scale_in_cooldown) == (20.0, 900.0)
    assert settings.worker_limit == 80
    assert (settings.liveness_port, settings.metrics_port) == (18080, 19090)
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["AWS_ENDPOINT_URL"] == "https://aws.example.com"
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128"


def test_the_chart_sets_every_setting_the_operator_reads_and_no_other(helm: Helm) -> None:
    read = {variable.name for variable in Settings.variables().values()}
    assert len(read) == len(fields(Settings))
    assert {name for name in container_env(helm.template()) if name.startswith("FERRY_")} == read


def test_a_million_reaches_the_operator_as_a_whole_number(helm: Helm, tmp_path: Path) -> None:
    # A values file's numbers are floats to Helm, and a float of a million prints as 1e+06.
    values = {"workerLimit": 1_000_000, "autoscaler": {"scrapeConcurrency": 2_000_000}}
    settings = Settings.from_env(container_env(helm.template(values_file(tmp_path, values))))
    assert (settings.worker_limit, settings.scrape_concurrency) == (1_000_000, 2_000_000)


def test_watched_namespaces_and_patterns_reach_kopf(helm: Helm) -> None:
    env = container_env(helm.template("--set=watchNamespaces={ml,team-*,!team-scratch}"))
    assert Settings.from_env(env).namespaces == ("ml", "team-*", "!team-scratch")


def test_the_operator_runs_its_image_locked_down(helm: Helm) -> None:
    deployment = find(helm.template(), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == DEFAULT_IMAGE
    assert container["command"] == ["ferry-operator"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"healthz": Settings().liveness_port, "metrics": Settings().metrics_port}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_a_digest_pins_the_image_of_the_operator_and_of_the_data_plane(helm: Helm) -> None:
    digest = "sha256:" + "0f" * 32
    docs = helm.template(f"--set=image.digest={digest}")
    (container,) = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/ferry-dev/ferry@{digest}"
    assert container_env(docs)["FERRY_IMAGE"] == container["image"]


def test_the_service_account_carries_the_iam_role(helm: Helm) -> None:
    docs = helm.template(f"--set=serviceAccount.roleArn={IRSA_ROLE}")
    account = find(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert "annotations" not in find(helm.template(), "ServiceAccount")["metadata"]


def test_the_crd_is_the_one_of_crds_kept_when_the_chart_goes(helm: Helm) -> None:
    rendered = find(helm.template(), "CustomResourceDefinition")
    source = yaml.safe_load((REPO / "crds" / "realtimeapis.ferry.dev.yaml").read_text())
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert rendered["spec"] == source["spec"]
    assert rendered["metadata"]["name"] == source["metadata"]["name"]
    kinds = {doc["kind"] for doc in helm.template("--set=crd.install=false")}
    assert "CustomResourceDefinition" not in kinds


def stripped(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: stripped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stripped(item) for item in value]
    return value.strip() if isinstance(value, str) else value


def test_the_finalizer_policy_of_crds_comes_only_where_the_api_server_serves_it(
    helm: Helm,
) -> None:
    source = [
        doc
        for doc in yaml.safe_load_all(
            (REPO / "crds" / "realtimeapis.ferry.dev-finalizer.yaml").read_text()
        )
        if doc
    ]
    docs = helm.template()
    for expected in source:
        rendered = find(docs, expected["kind"], expected["metadata"]["name"])
        # The CEL expression is a folded scalar: its last line break is not part of it.
        assert stripped(rendered["spec"]) == stripped(expected["spec"])
        assert rendered["metadata"]["labels"]["app.kubernetes.io/instance"] == "ferry"
        assert "annotations" not in rendered["metadata"]  # it goes with the release
    offline = helm.run("template", "ferry", str(CHART)).stdout
    assert "kind: MutatingAdmissionPolicy" not in offline
    kinds = {doc["kind"] for doc in helm.template("--set=crd.finalizerPolicy=false")}
    assert not kinds & {doc["kind"] for doc in source}


# --- RBAC -----------------------------------------------------------------------------------


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_by_default_one_cluster_role_grants_what_the_operator_does_and_no_more(
    helm: Helm,
) -> None:
    docs = helm.template()
    granted = rules(find(docs, "ClusterRole"))
    for needed in [
        ("ferry.dev", "realtimeapis", "watch"),
        ("ferry.dev", "realtimeapis", "patch"),
        ("ferry.dev", "realtimeapis/status", "patch"),
        ("ferry.dev", "realtimeapis/finalizers", "update"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "replicasets", "list"),
        ("", "services", "patch"),
        ("", "pods", "watch"),
        ("", "events", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]:
        assert needed in granted
    assert not [rule for rule in granted if "*" in rule]
    assert not [rule for rule in granted if rule[1] in ("secrets", "configmaps")]
    # What the operator deletes: an API's own HTTPRoute, once it should have none, and its
    # canary's Deployment and Service, once the canary is off the route.
    assert sorted(rule for rule in granted if rule[2] in ("delete", "deletecollection")) == [
        ("", "services", "delete"),
        ("apps", "deployments", "delete"),
        ("gateway.networking.k8s.io", "httproutes", "delete"),
    ]
    assert ("gateway.networking.k8s.io", "httproutes", "watch") in granted
    assert ("gateway.networking.k8s.io", "gateways", "get") in granted
    # No capacity loop without an Auto Scaling group: nothing on nodes.
    assert not [rule for rule in granted if rule[1] == "nodes"]
    binding = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ferry", "namespace": "ferry-system"}
    ]
    assert not [doc for doc in docs if doc["kind"] in ("Role", "RoleBinding")]


def test_node_groups_with_an_auto_scaling_group_add_what_the_capacity_loop_needs(
    helm: Helm, tmp_path: Path
) -> None:
    granted = rules(
        find(helm.template(values_file(tmp_path, {"nodeGroups": [GPU_GROUP]})), "ClusterRole")
    )
    assert {("", "nodes", "list"), ("", "nodes", "patch"), ("", "pods", "list")} <= granted


def test_namespaced_rbac_grants_per_namespace_and_only_cluster_scoped_kinds_cluster_wide(
    helm: Helm,
) -> None:
    docs = helm.template("--set=rbac.scope=namespaced", "--set=watchNamespaces={ml,ml-staging}")
    roles = [doc for doc in docs if doc["kind"] == "Role"]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["ml", "ml-staging"]
    assert rules(roles[0]) == rules(find(helm.template(), "ClusterRole")) - {
        ("apiextensions.k8s.io", "customresourcedefinitions", verb)
        for verb in ("get", "list", "watch")
    } - {("gateway.networking.k8s.io", "gateways", "get")}
    bindings = [doc for doc in docs if doc["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["ml", "ml-staging"]
    # Gateways are read wherever they are: a shared one lives outside the watched namespaces.
    cluster_wide = {resource for _, resource, _ in rules(find(docs, "ClusterRole"))}
    assert cluster_wide == {"customresourcedefinitions", "namespaces", "gateways"}


# --- monitoring -----------------------------------------------------------------------------


def test_monitors_and_dashboard_are_off_by_default(helm: Helm) -> None:
    kinds = {doc["kind"] for doc in helm.template()}
    assert not kinds & PROMETHEUS_OPERATOR_KINDS
    assert "ConfigMap" not in kinds


def test_the_pod_monitor_finds_the_proxies_of_the_pods_the_operator_renders(
    helm: Helm, tmp_path: Path
) -> None:
    docs = helm.template(values_file(tmp_path, EVERYTHING))
    monitor = find(docs, "PodMonitor")
    spec = parse_spec(with_defaults({"predictor": {"image": "registry.example.com/iris:1"}}))
    pod = render_deployment(
        ApiRef("iris", "ml", "uid", 1), spec, Settings(), model_version=None, replicas=1
    )["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", ())}
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    assert endpoint["relabelings"][0]["sourceLabels"] == [
        "__meta_kubernetes_pod_label_ferry_dev_api"
    ]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_the_service_monitor_scrapes_the_operators_metrics_port(helm: Helm, tmp_path: Path) -> None:
    docs = helm.template(values_file(tmp_path, EVERYTHING))
    monitor = find(docs, "ServiceMonitor")
    service = find(docs, "Service")
    pod = find(docs, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["port"] == 19090
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["honorLabels"] is True


def test_the_dashboard_is_a_config_map_grafana_finds(helm: Helm, tmp_path: Path) -> None:
    docs = helm.template(values_file(tmp_path, EVERYTHING))
    dashboard = find(docs, "ConfigMap", "ferry-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ferry.json"]) == json.loads(
        (CHART / "files" / "dashboard.json").read_text()
    )


def test_fluent_bit_writes_to_the_groups_under_the_operators_prefix(
    helm: Helm, tmp_path: Path
) -> None:
    docs = helm.template(values_file(tmp_path, EVERYTHING))
    config = find(docs, "ConfigMap", "ferry-fluent-bit")["data"]["fluent-bit.conf"]
    assert (
        "log_group_template   /ml/apis/$kubernetes['namespace_name']/"
        "$kubernetes['labels']['ferry.dev/api']"
    ) in config
    daemonset = find(docs, "DaemonSet")
    assert daemonset["spec"]["template"]["spec"]["serviceAccountName"] == "ferry-fluent-bit"
    account = find(docs, "ServiceAccount", "ferry-fluent-bit")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": IRSA_ROLE}


# --- the API server accepts each rendering --------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac": {"scope": "namespaced"}},
        EVERYTHING,
        {
            "rbac": {"create": False},
            "serviceAccount": {"create": False, "name": "default"},
            "crd": {"install": False},
        },
    ],
    ids=["defaults", "namespaced-rbac", "everything", "bring-your-own"],
)
def test_the_api_server_accepts_the_rendered_chart(
    cluster: ClusterInfo, namespace: str, helm: Helm, tmp_path: Path, values: dict[str, Any]
) -> None:
    if values.get("rbac", {}).get("scope") == "namespaced":
        values = {**values, "watchNamespaces": [namespace, "default"]}
    docs = helm.template(values_file(tmp_path, values), namespace=namespace)
    # The Prometheus operator's CRDs are not in the local cluster: its kinds are checked above.
    served = [doc for doc in docs if doc["kind"] not in PROMETHEUS_OPERATOR_KINDS]
    assert find(served, "Deployment")
    dry_run(cluster, served, tmp_path)
