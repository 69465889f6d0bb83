"""kubectl and helm, built from their modules, work against the local API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient

from ferry_local.cluster import ClusterInfo


def run(cluster: ClusterInfo, *argv: str) -> str:
    result = subprocess.run(
        [cluster.tool(argv[0]), *argv[1:]],
        env={"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.layout.root), "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_kubectl_sees_what_the_api_sees(cluster: ClusterInfo, api: ApiClient) -> None:
    listed = json.loads(run(cluster, "kubectl", "get", "nodes", "-o", "json"))
    through_kubectl = {item["metadata"]["name"] for item in listed["items"]}
    through_api = {n.metadata.name for n in (await client.CoreV1Api(api).list_node()).items}
    assert through_kubectl == through_api
    assert len(through_api) >= 3
    version = json.loads(run(cluster, "kubectl", "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == cluster.state["versions"]["kubernetes"]


async def test_helm_installs_and_uninstalls_a_chart(
    cluster: ClusterInfo, api: ApiClient, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "hello"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "hello", "version": "0.1.0"})
    )
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    core = client.CoreV1Api(api)

    run(
        cluster,
        "helm",
        "install",
        "demo",
        str(chart),
        "-n",
        namespace,
        "--set",
        "greeting=hi",
        "--wait",
    )
    configmap = await core.read_namespaced_config_map("demo-greeting", namespace)
    assert configmap.data == {"greeting": "hi"}
    releases = json.loads(run(cluster, "helm", "list", "-n", namespace, "-o", "json"))
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]

    run(cluster, "helm", "uninstall", "demo", "-n", namespace, "--wait")
    remaining = await core.list_namespaced_config_map(namespace)
    assert "demo-greeting" not in {c.metadata.name for c in remaining.items}
