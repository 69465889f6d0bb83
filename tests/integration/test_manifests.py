"""The plain manifests install on the real API server and uninstall cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ferry.local.cluster import ClusterInfo
from tests.support.ferry_operator import REPO, kubectl

MANIFESTS = sorted((REPO / "manifests").glob("*.yaml"))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name for m in MANIFESTS])
def test_the_api_server_accepts_the_manifest(cluster: ClusterInfo, manifest: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    applied = kubectl(cluster, "apply", "-f", str(manifest), check=False)
    try:
        assert applied.returncode == 0, applied.stderr
        assert len(applied.stdout.splitlines()) == len(documents)
    finally:
        kubectl(cluster, "delete", "-f", str(manifest), "--ignore-not-found", "--wait=false")


def test_fluent_bit_sends_each_api_to_the_group_the_operator_creates() -> None:
    docs = list(yaml.safe_load_all((REPO / "manifests" / "fluent-bit.yaml").read_text()))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["fluent-bit.conf"]
    template = next(line for line in config.splitlines() if "log_group_template" in line)
    assert template.split()[-1] == (
        "/ferry/$kubernetes['namespace_name']/$kubernetes['labels']['ferry.dev/api']"
    )
    assert "auto_create_group    false" in config
