"""Kubeconfigs the clients load, and the simulated nodes the scheduler sees."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from ferry_local.kubeconfig import kubeconfig, write_kubeconfig
from ferry_local.nodes import NODE_KIND_LABEL, NodeShape, kwok_nodes
from ferry_local.pki import ensure_credentials


def test_a_kubeconfig_embeds_the_ca_and_the_clients_credentials(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path / "pki")
    path = write_kubeconfig(
        tmp_path / "kubeconfig", kubeconfig("https://127.0.0.1:6443", "demo", creds, "admin")
    )
    loaded = yaml.safe_load(path.read_text())
    cluster = loaded["clusters"][0]["cluster"]
    user = loaded["users"][0]["user"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == creds.ca.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == creds.key("admin").read_bytes()
    assert loaded["current-context"] == "demo"
    assert path.stat().st_mode & 0o077 == 0


def test_kwok_nodes_are_marked_for_kwok_and_sized_as_asked() -> None:
    nodes = kwok_nodes(2, NodeShape(cpu="8", memory="32Gi", pods=50, gpu=1))
    assert [n["metadata"]["name"] for n in nodes] == ["kwok-node-0", "kwok-node-1"]
    for node in nodes:
        assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
        assert node["metadata"]["labels"][NODE_KIND_LABEL] == "kwok"
        assert node["status"]["allocatable"] == {
            "cpu": "8",
            "memory": "32Gi",
            "pods": "50",
            "nvidia.com/gpu": "1",
        }


def test_nodes_without_gpus_advertise_none() -> None:
    (node,) = kwok_nodes(1)
    assert "nvidia.com/gpu" not in node["status"]["allocatable"]
