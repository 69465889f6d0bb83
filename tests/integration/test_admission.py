"""The admission policy in crds/: every RealtimeAPI is created already holding the operator's
finalizer, so the operator reconciles it at the first event it sees (docs/realtimeapi.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ferry_local.cluster import ClusterInfo
from ferry_local.wait import eventually
from tests.support.ferry_operator import kubectl

FINALIZER = "ferry.dev/finalizer"


def created(cluster: ClusterInfo, folder: Path, namespace: str, finalizers: list[str]) -> Any:
    """The object the API server would store (server-side dry run: admission runs, nothing is
    stored)."""
    manifest = folder / "api.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "ferry.dev/v1alpha1",
                "kind": "RealtimeAPI",
                "metadata": {"name": "iris", "namespace": namespace, "finalizers": finalizers},
                "spec": {"predictor": {"image": "example.com/iris:1"}},
            }
        )
    )
    result = kubectl(cluster, "create", "--dry-run=server", "-o", "json", "-f", str(manifest))
    return json.loads(result.stdout)


async def test_realtimeapis_are_created_holding_the_operators_finalizer(
    cluster: ClusterInfo, crd: None, namespace: str, tmp_path: Path
) -> None:
    async def admitted() -> list[str] | None:
        finalizers: list[str] = created(cluster, tmp_path, namespace, [])["metadata"].get(
            "finalizers", []
        )
        # The API server loads a new policy asynchronously: until then, nothing is added.
        return finalizers or None

    assert await eventually(admitted, timeout=30, what="the policy to take effect") == [FINALIZER]


async def test_the_policy_keeps_the_users_finalizers(
    cluster: ClusterInfo, crd: None, namespace: str, tmp_path: Path
) -> None:
    async def admitted() -> list[str] | None:
        finalizers: list[str] = created(cluster, tmp_path, namespace, ["example.com/keep"])[
            "metadata"
        ]["finalizers"]
        return finalizers if FINALIZER in finalizers else None

    finalizers = await eventually(admitted, timeout=30, what="the policy to take effect")
    assert sorted(finalizers) == ["example.com/keep", FINALIZER]
