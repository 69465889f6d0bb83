"""`ferry local down` leaves nothing of the cluster's network: no namespace, link, route or
nftables table, whether the supervisor stopped in order or was killed outright."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ferry_local import cluster, netns, processes
from ferry_local.layout import ClusterLayout
from ferry_local.network import ClusterNetwork, read
from ferry_local.wait import wait_until


def leftovers(network: ClusterNetwork) -> list[str]:
    """What of the network is still on this machine."""
    found = [f"namespace {name}" for name in netns.named(network.netns)]
    if netns.link_exists(network.host_link):
        found.append(f"link {network.host_link}")
    block = ipaddress.IPv4Network(network.block)
    for line in netns.ip("-4", "route", "show", "table", "all").splitlines():
        words = line.split()
        target = words[1] if words[0] in {"local", "broadcast", "unreachable"} else words[0]
        if target != "default" and ipaddress.IPv4Network(target, strict=False).overlaps(block):
            found.append(f"route {line}")
    tables = netns.run(["nft", "list", "tables"])
    found += [f"table {line}" for line in tables.splitlines() if network.table in line]
    return found


def up_with_pods(layout: ClusterLayout) -> ClusterNetwork:
    info = cluster.up(layout, nodes=0, operator=True, tie_to_parent=True)
    network = read(layout.run)
    assert network is not None
    # The agent made its node's bridge: the cluster has a namespace with something in it.
    wait_until(
        lambda: "br-" in netns.ip("link", "show", netns=network.netns),
        timeout=60,
        what="the node's bridge",
    )
    assert info.state["network"]["block"] == network.block
    assert leftovers(network)
    return network


def test_down_removes_every_namespace_link_route_and_table(tmp_path: Path) -> None:
    layout = ClusterLayout(tmp_path / "tidy")
    network = up_with_pods(layout)
    cluster.down(layout)
    assert leftovers(network) == []


def test_down_after_the_supervisor_was_killed_removes_the_network_too(tmp_path: Path) -> None:
    layout = ClusterLayout(tmp_path / "killed")
    network = up_with_pods(layout)
    state = cluster.read_state(layout)
    assert state is not None
    supervisor = int(state["supervisor"])
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not processes.alive(supervisor), timeout=30, what="the supervisor gone")
    # Its components went with it (PR_SET_PDEATHSIG); its network outlives every process.
    assert leftovers(network)
    cluster.down(layout)
    assert leftovers(network) == []


def test_up_where_no_network_namespace_can_be_made_says_so_without_a_traceback(
    tmp_path: Path,
) -> None:
    # As a user that may not make namespaces (this machine runs the tests as root).
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            str(Path(sys.executable).parent / "ferry"),
            "local",
            "up",
            "--name",
            "nobody",
        ],
        env={**os.environ, "FERRY_STATE_DIR": str(tmp_path / "state"), "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(
        "ferry local up: the local environment's pod network needs root"
    ), result.stderr


def test_the_next_up_removes_a_network_whose_supervisor_died_with_its_folder(
    tmp_path: Path,
) -> None:
    layout = ClusterLayout(tmp_path / "orphan")
    network = up_with_pods(layout)
    state = cluster.read_state(layout)
    assert state is not None
    supervisor = int(state["supervisor"])
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not processes.alive(supervisor), timeout=30, what="the supervisor gone")
    # A killed test run's clusters: no `down` comes, and their temporary folders go.
    shutil.rmtree(layout.root)
    assert leftovers(network)
    other = ClusterLayout(tmp_path / "next")
    cluster.up(other, nodes=0, operator=True, tie_to_parent=True)
    try:
        assert leftovers(network) == []
    finally:
        cluster.down(other)
