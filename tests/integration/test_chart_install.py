"""Ferry installed with its chart into a local control plane, its operator a pod the node agent
runs with the chart's ServiceAccount: it serves the iris example, takes an upgrade, and
`helm uninstall` leaves the CRD and the RealtimeAPIs but nothing else cluster-wide.

The cluster is this module's own: the chart installs a cluster-wide operator and takes charge of
the CRD, which would fight with the session cluster's per-test operators and CRD.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.adapters.kube import Kube
from ferry_local import demo, processes
from ferry_local.agent.main import command
from ferry_local.agent.serviceaccount import KUBECONFIG_FILE
from ferry_local.agent.volumes import PodFolder
from ferry_local.aws import MotoServer
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.components import EXAMPLES_IMAGES, LOCAL_NODE_GROUP
from ferry_local.health import healthy
from ferry_local.layout import ClusterLayout
from ferry_local.loopback_service import LoopbackServiceClient
from ferry_local.wait import wait_until
from tests.support.ferry_operator import kubectl
from tests.support.helm import CHART, Helm

RELEASE = "ferry"
NAMESPACE = "ferry-system"
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
LOCAL = str(LOCAL_NODE_GROUP["name"])
OPERATOR_POD = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


async def predicted_on_loopback(info: ClusterInfo) -> list[dict[str, Any]]:
    """The demo's predictions, asked of the iris Service by spreading them client-side: this
    module's agent runs loopback pods, without the pod network a ClusterIP needs."""
    kube = await Kube.connect(str(info.kubeconfig))
    try:
        async with LoopbackServiceClient(kube, "default", "iris") as service:
            await service.wait_for_endpoints(1, timeout=60)
            body = json.dumps({"instances": demo.SAMPLES}).encode()
            reply = await service.request("POST", "/", body=body, headers=demo.JSON)
    finally:
        await kube.close()
    assert reply.status == 200, reply.body
    predictions: list[dict[str, Any]] = reply.json()["predictions"]
    return predictions


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("chart-cluster") / "ferry-chart"
    with local_cluster(ClusterLayout(root), nodes=0) as info:
        yield info


@pytest.fixture(scope="module")
def agent(
    chart_cluster: ClusterInfo, moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A node agent of the local node group (the examples' images, AWS at moto): its state
    folder, where each pod's logs and volumes are."""
    state = tmp_path_factory.mktemp("chart-agent")
    (port,) = free_ports(1)
    argv = command(
        chart_cluster.kubeconfig,
        "chart-agent",
        state,
        port,
        f"--images={EXAMPLES_IMAGES}",
        f"--node-group={LOCAL}",
        "--backoff-base=1",
        "--stop-grace=5",
        *(f"--pass-env={name}" for name in moto.env()),
    )
    log = state / "agent.log"
    process = processes.spawn(argv, log, env={**os.environ, **moto.env()})
    wait_until(
        lambda: process.poll() is None and healthy(f"http://127.0.0.1:{port}/healthz"),
        timeout=60,
        what=f"the node agent's /healthz (log: {log})",
    )
    yield state
    processes.stop_group(process, grace=30.0)


def chart_values(moto: MotoServer, directory: Path) -> Path:
    """The chart's values for this machine: the operator on the agent's node group, which is
    also the API's default, AWS at moto, and ports of its own (a pod shares the host's ports)."""
    liveness, metrics = free_ports(2)
    toleration = {"key": "ferry.dev/node-group", "operator": "Equal", "value": LOCAL}
    values = {
        "nodeGroups": [LOCAL_NODE_GROUP],
        "defaultNodeGroup": LOCAL,
        "aws": {"region": moto.env()["AWS_REGION"], "endpoint": moto.env()["AWS_ENDPOINT_URL"]},
        "logging": {"level": "INFO"},
        "operator": {
            "ports": {"liveness": liveness, "metrics": metrics},
            "nodeSelector": {"ferry.dev/node-group": LOCAL},
            "tolerations": [{**toleration, "effect": "NoSchedule"}],
        },
    }
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def get(cluster: ClusterInfo, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl(cluster, "get", *args, "-o", "json").stdout)
    return found


# The controller-manager publishes the API server's serving CA as a ClusterTrustBundle on a
# schedule of its own, unrelated to what is installed.
CONTROL_PLANE_KINDS = {"clustertrustbundles.certificates.k8s.io"}


def cluster_scoped(cluster: ClusterInfo) -> set[str]:
    """kind/name of every cluster-scoped object that can be listed (but the control plane's)."""
    kinds = kubectl(cluster, "api-resources", "--namespaced=false", "--verbs=list", "-o", "name")
    listed_kinds = [kind for kind in kinds.stdout.split() if kind not in CONTROL_PLANE_KINDS]
    listed = kubectl(cluster, "get", ",".join(listed_kinds), "-o", "name")
    return set(listed.stdout.split())


def operator_pod(cluster: ClusterInfo) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        pods = get(cluster, "pods", "-n", NAMESPACE, "-l", OPERATOR_POD)["items"]
        live = [p for p in pods if "deletionTimestamp" not in p["metadata"]]
        ready = [
            p
            for p in live
            for c in p.get("status", {}).get("conditions", ())
            if c["type"] == "Ready" and c["status"] == "True"
        ]
        return ready[0] if len(live) == len(ready) == 1 else None

    pod: dict[str, Any] = wait_until(running, timeout=120, what="one Ready operator pod")
    return pod


def operator_log(agent: Path, pod: dict[str, Any]) -> list[dict[str, Any]]:
    text = PodFolder.of(agent, pod).log("operator").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def forbidden(records: list[dict[str, Any]]) -> list[str]:
    """Log lines of requests RBAC refused: a rule the chart lacks."""
    return [r["message"] for r in records if "forbidden" in json.dumps(r).lower()]


def as_operator(cluster: ClusterInfo, agent: Path, pod: dict[str, Any], *args: str) -> str:
    """kubectl with the credentials the operator's pod was given: its ServiceAccount's token."""
    (volume,) = [
        v["name"] for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access")
    ]
    kubeconfig = PodFolder.of(agent, pod).volume(volume) / KUBECONFIG_FILE
    result = subprocess.run(
        [cluster.tool("kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.stdout.strip()


def iris_proxy_args(cluster: ClusterInfo) -> list[str]:
    deployment = get(cluster, "deployment", "iris", "-n", "default")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    args: list[str] = next(c for c in containers if c["name"] == "proxy")["args"]
    return args


async def test_the_chart_installs_upgrades_and_uninstalls_a_working_operator(
    chart_cluster: ClusterInfo, agent: Path, moto: MotoServer, tmp_path: Path
) -> None:
    cluster = chart_cluster
    helm = Helm(tmp_path / "helm", kubeconfig=cluster.kubeconfig)
    values = chart_values(moto, tmp_path)
    kubectl(cluster, "create", "namespace", NAMESPACE)
    before = cluster_scoped(cluster)
    release = [RELEASE, str(CHART), f"--namespace={NAMESPACE}", f"--values={values}"]

    # Install: the operator runs as its ServiceAccount, with exactly the chart's RBAC.
    helm.run("install", *release, "--wait", "--timeout=3m")
    pod = operator_pod(cluster)
    assert pod["spec"]["nodeName"] == "chart-agent"
    # The cluster serves MutatingAdmissionPolicy: the finalizer policy is installed too.
    get(cluster, "mutatingadmissionpolicy", "realtimeapis.ferry.dev-finalizer")
    assert ACCOUNT in as_operator(cluster, agent, pod, "auth", "whoami")
    can = [
        as_operator(cluster, agent, pod, "auth", "can-i", verb, what, "-n", "default")
        for verb, what in [("patch", "deployments.apps/scale"), ("get", "secrets")]
    ]
    assert can == ["yes", "no"]

    # It serves the iris example: model from S3, pods on the agent, predictions answered.
    info = ClusterInfo(cluster.layout, {**cluster.state, "aws": moto.env()})
    lines: list[str] = []
    demo.publish_model(info, lines.append)
    demo.deploy(info, lines.append)
    predictions = await predicted_on_loopback(info)
    assert [p["class"] for p in predictions] == ["setosa", "versicolor", "virginica"]
    assert not [r for r in operator_log(agent, pod) if r["severity"] == "debug"]
    assert not forbidden(operator_log(agent, pod))

    # Upgrade: a new log level, and RBAC narrowed to a Role in the one watched namespace. The
    # new operator logs at DEBUG and still reconciles a change of the API under the Role.
    helm.run(
        "upgrade",
        *release,
        "--set=logging.level=DEBUG",
        "--set=rbac.scope=namespaced",
        "--set=watchNamespaces={default}",
        "--wait",
        "--timeout=3m",
    )
    upgraded = operator_pod(cluster)
    assert upgraded["metadata"]["uid"] != pod["metadata"]["uid"]
    wait_until(
        lambda: any(r["severity"] == "debug" for r in operator_log(agent, upgraded)),
        timeout=60,
        what="the upgraded operator's first DEBUG line",
    )
    assert get(cluster, "role", RELEASE, "-n", "default")["rules"]
    cluster_resources = {
        resource
        for rule in get(cluster, "clusterrole", RELEASE)["rules"]
        for resource in rule["resources"]
    }
    # Gateways are read wherever they are: a shared one lives outside the watched namespaces.
    assert cluster_resources == {"customresourcedefinitions", "namespaces", "gateways"}
    kubectl(
        cluster,
        "patch",
        "rtapi",
        "iris",
        "-n",
        "default",
        "--type=merge",
        "-p",
        '{"spec": {"serving": {"maxConcurrency": 3}}}',
    )
    wait_until(
        lambda: "--max-concurrency=3" in iris_proxy_args(cluster),
        timeout=60,
        what="the upgraded operator to reconcile iris's new maxConcurrency",
    )
    kubectl(cluster, "wait", "--for=condition=Ready", "rtapi/iris", "--timeout=180s")
    assert not forbidden(operator_log(agent, upgraded))

    # Uninstall: the CRD and the RealtimeAPI stay; nothing else of the release, anywhere.
    helm.run("uninstall", RELEASE, f"--namespace={NAMESPACE}", "--wait", "--timeout=3m")
    crd = get(cluster, "crd", "realtimeapis.ferry.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert get(cluster, "rtapi", "iris", "-n", "default")["spec"]["serving"]["maxConcurrency"] == 3
    leftovers = cluster_scoped(cluster) - before
    # The iris Service's ClusterIP is an IPAddress object: the API's, which stays with it.
    addresses = {name for name in leftovers if name.startswith("ipaddress.")}
    for address in addresses:
        parent = get(cluster, address)["spec"]["parentRef"]
        assert (parent["resource"], parent["namespace"], parent["name"]) == (
            "services",
            "default",
            "iris",
        )
    assert leftovers - addresses == {
        "customresourcedefinition.apiextensions.k8s.io/realtimeapis.ferry.dev",
        # The API server's own entry for the CRD's group: it goes when the CRD goes.
        "apiservice.apiregistration.k8s.io/v1alpha1.ferry.dev",
    }
    remaining = kubectl(
        cluster,
        "get",
        "all,serviceaccounts,roles,rolebindings,secrets,configmaps",
        "--all-namespaces",
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "name",
    )
    assert remaining.stdout.split() == []
    releases = kubectl(cluster, "get", "secrets", "-n", NAMESPACE, "-l", "owner=helm", "-o", "name")
    assert releases.stdout.split() == []
    wait_until(
        lambda: not get(cluster, "pods", "-n", NAMESPACE)["items"],
        timeout=60,
        what="the operator's pod to be gone",
    )
