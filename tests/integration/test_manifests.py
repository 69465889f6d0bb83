"""The plain manifests are the chart's (`make manifests`), and the real API server takes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.services.logs import log_group_name
from ferry_local.cluster import ClusterInfo
from ferry_local.toolchain import locate
from tests.support.ferry_operator import REPO, kubectl
from tools import manifests

MANIFESTS = REPO / "manifests"


def documents(manifest: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]


def test_the_manifests_and_the_charts_crd_are_what_the_chart_makes_now() -> None:
    rendered = manifests.rendered(str(locate().binary("helm")))
    copies = manifests.chart_copies()
    assert len(copies) == len(list((REPO / "crds").glob("*.yaml")))
    assert set(rendered) == {*copies, manifests.INSTALL, manifests.FLUENT_BIT}
    assert set(MANIFESTS.glob("*.yaml")) <= set(rendered)
    stale = [str(path.relative_to(REPO)) for path in manifests.stale(rendered)]
    assert stale == [], "the chart changed: run `make manifests`"


def test_install_yaml_is_the_charts_defaults_in_a_namespace_of_its_own() -> None:
    docs = documents(manifests.INSTALL)
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ferry-system", "labels": {"app.kubernetes.io/part-of": "ferry"}},
    }
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "Namespace",
        "ServiceAccount",
    ]


def test_the_api_server_accepts_install_yaml(cluster: ClusterInfo) -> None:
    # A dry run: install.yaml holds the CRD the session's other tests use, and deleting it for
    # real would delete their RealtimeAPIs. Its namespace is made for real, as the dry run of
    # the objects in it needs it to exist.
    kubectl(cluster, "create", "namespace", "ferry-system")
    try:
        applied = kubectl(
            cluster,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            str(manifests.INSTALL),
            check=False,
        )
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.count("(server dry run)") == len(documents(manifests.INSTALL))
    finally:
        kubectl(cluster, "delete", "namespace", "ferry-system", "--wait=false")


def test_fluent_bit_yaml_applies_and_deletes_cleanly(cluster: ClusterInfo) -> None:
    manifest = manifests.FLUENT_BIT
    applied = kubectl(cluster, "apply", "-f", str(manifest), check=False)
    try:
        assert applied.returncode == 0, applied.stderr
        assert len(applied.stdout.splitlines()) == len(documents(manifest))
    finally:
        deleted = kubectl(cluster, "delete", "-f", str(manifest), "--ignore-not-found")
    assert len(deleted.stdout.splitlines()) == len(documents(manifest))


@pytest.mark.parametrize(("namespace", "api"), [("ml", "iris"), ("team-a", "resnet-50")])
def test_fluent_bit_sends_each_api_to_the_group_the_operator_creates(
    namespace: str, api: str
) -> None:
    docs = documents(manifests.FLUENT_BIT)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["fluent-bit.conf"]
    template = next(line for line in config.splitlines() if "log_group_template" in line)
    group = (
        template.split()[-1]
        .replace("$kubernetes['namespace_name']", namespace)
        .replace("$kubernetes['labels']['ferry.dev/api']", api)
    )
    assert group == log_group_name(namespace, api, "/ferry")
    assert "auto_create_group    false" in config
