"""Command lines of the control plane: wired to each other, and each findable by its folder."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest

from ferry_local import components
from ferry_local.layout import ClusterLayout
from ferry_local.pki import Credentials
from ferry_local.toolchain import Toolchain


@pytest.fixture
def plan(tmp_path: Path) -> components.Plan:
    layout = ClusterLayout(tmp_path / "demo")
    toolchain = Toolchain(tmp_path / "cache", {"kubernetes": "v1.37.2"})
    return components.Plan(layout, toolchain, Credentials(layout.pki), components.Ports.free())


def test_free_ports_are_distinct() -> None:
    ports = astuple(components.Ports.free())
    assert len(set(ports)) == len(ports)


def test_the_api_server_talks_to_this_clusters_etcd(plan: components.Plan) -> None:
    argv = components.kube_apiserver(plan).argv
    assert f"--etcd-servers=http://127.0.0.1:{plan.ports.etcd_client}" in argv
    assert f"--secure-port={plan.ports.apiserver}" in argv


def test_every_component_listens_on_loopback_only(plan: components.Plan) -> None:
    for component in components.control_plane(plan):
        addresses = [a for a in component.argv if "url" in a or "address" in a]
        assert addresses, component.name
        assert all("127.0.0.1" in a for a in addresses), (component.name, addresses)


def test_every_component_names_the_cluster_folder(plan: components.Plan) -> None:
    # `down` finds strays by this; a component that did not name the folder could be left behind.
    marker = f"{plan.layout.root}/"
    for component in components.control_plane(plan):
        assert any(marker in arg for arg in component.argv), component.name


def test_controllers_and_scheduler_use_their_own_identities(plan: components.Plan) -> None:
    manager = components.kube_controller_manager(plan).argv
    scheduler = components.kube_scheduler(plan).argv
    assert f"--kubeconfig={plan.kubeconfig_for('kube-controller-manager')}" in manager
    assert f"--kubeconfig={plan.kubeconfig_for('kube-scheduler')}" in scheduler
    assert "--leader-elect=false" in manager
    assert "--leader-elect=false" in scheduler


def test_simulated_pods_get_loopback_addresses(plan: components.Plan) -> None:
    assert f"--cidr={components.KWOK_POD_CIDR}" in components.kwok(plan).argv
    assert components.KWOK_POD_CIDR.startswith("127.")
