"""One whole local environment with its pod network, the node agent running the agent tests'
images (tests/e2e/agent/images.yaml) besides the examples'."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout
from ferry_local.network import ClusterNetwork, read
from tests.support.ferry_operator import kubectl

TEST_IMAGES = Path(__file__).parents[1] / "agent" / "images.yaml"
LOCAL_GROUP = {
    "nodeSelector": {"ferry.dev/node-group": "local"},
    "tolerations": [
        {
            "key": "ferry.dev/node-group",
            "operator": "Equal",
            "value": "local",
            "effect": "NoSchedule",
        }
    ],
}


@pytest.fixture(scope="package")
def net_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    root: Path = tmp_path_factory.mktemp("network") / "ferry-net"
    before = os.environ.get("FERRY_AGENT_IMAGES")
    # The supervisor hands its environment to the node agent, which reads extra tables here.
    os.environ["FERRY_AGENT_IMAGES"] = str(TEST_IMAGES)
    try:
        with local_cluster(ClusterLayout(root), nodes=0, operator=True) as info:
            yield info
    finally:
        if before is None:
            os.environ.pop("FERRY_AGENT_IMAGES", None)
        else:
            os.environ["FERRY_AGENT_IMAGES"] = before


@pytest.fixture(scope="package")
def cluster_network(net_cluster: ClusterInfo) -> ClusterNetwork:
    network = read(net_cluster.layout.run)
    assert network is not None, "the cluster recorded no network"
    return network


def apply(cluster: ClusterInfo, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = "\n---\n".join(json.dumps(obj) for obj in objects)
    kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=manifest)


def get(cluster: ClusterInfo, namespace: str, *what: str) -> Any:
    return json.loads(kubectl(cluster, "get", "-n", namespace, *what, "-o", "json").stdout)


def server_deployment(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    **LOCAL_GROUP,
                    "terminationGracePeriodSeconds": 2,
                    "containers": [
                        {
                            "name": "server",
                            "image": "test.ferry.dev/server",
                            "args": ["--port", "8080"],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }


def answering_pod(connection: http.client.HTTPConnection) -> str:
    connection.request("GET", "/")
    response = connection.getresponse()
    body = response.read()
    assert response.status == 200, body
    return str(json.loads(body)["pod"])
