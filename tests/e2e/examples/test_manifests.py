"""Every Kubernetes manifest under examples/ is one the API server accepts (server-side dry-run:
the CRD's schema and CEL rules, and for built-in kinds the API server's own validation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ferry_local.cluster import ClusterInfo
from tests.e2e.examples.conftest import EXAMPLES
from tests.support.ferry_operator import kubectl


def is_manifest(path: Path) -> bool:
    """A file of Kubernetes objects, not another YAML file (the node agent's image table)."""
    documents = list(yaml.safe_load_all(path.read_text()))
    return any(isinstance(doc, dict) and "apiVersion" in doc for doc in documents)


MANIFESTS = sorted(
    path for path in [*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")] if is_manifest(path)
)


def test_the_examples_manifests_are_all_found() -> None:
    found = {str(path.relative_to(EXAMPLES)) for path in MANIFESTS}
    assert {
        "iris/realtimeapi.yaml",
        "custom-container/realtimeapi.yaml",
        "gpu/realtimeapi.yaml",
        "load/realtimeapi.yaml",
    } <= found
    assert "images.yaml" not in found


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: str(path.relative_to(EXAMPLES)))
def test_every_example_manifest_passes_a_server_side_dry_run(
    local_env: ClusterInfo, manifest: Path
) -> None:
    output = kubectl(
        local_env, "apply", "--dry-run=server", "-f", str(manifest), "-o", "json"
    ).stdout
    applied = json.loads(output)
    objects = applied["items"] if applied.get("kind") == "List" else [applied]
    expected = [
        doc["metadata"]["name"]
        for doc in yaml.safe_load_all(manifest.read_text())
        if isinstance(doc, dict) and "apiVersion" in doc
    ]
    assert [obj["metadata"]["name"] for obj in objects] == expected
