"""The Node the agent registers: where pods may land, what it offers, how it reports."""

from __future__ import annotations

import datetime
from pathlib import Path

from ferry_local.agent.cgroups import CgroupRoot
from ferry_local.agent.memory import KernelLimits, Watchdog
from ferry_local.agent.node import lease_manifest, node_manifest, node_status
from ferry_local.agent.settings import AgentSettings

SETTINGS = AgentSettings("local-0", Path("/state"), cpu="2", memory="4Gi", pods=20)
T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
LATER = T0 + datetime.timedelta(seconds=30)


def test_only_pods_that_ask_for_the_local_node_group_land_on_the_agent() -> None:
    node = node_manifest(SETTINGS)
    assert node["metadata"]["labels"] == {
        "kubernetes.io/hostname": "local-0",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "ferry.dev/node-kind": "agent",
        "ferry.dev/node-group": "local",
    }
    assert node["spec"]["taints"] == [
        {"key": "ferry.dev/node-group", "value": "local", "effect": "NoSchedule"}
    ]


def test_the_status_offers_the_configured_capacity_on_loopback() -> None:
    status = node_status(SETTINGS, ready=True, now=T0)
    assert (
        status["capacity"] == status["allocatable"] == {"cpu": "2", "memory": "4Gi", "pods": "20"}
    )
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "KubeletReady")
    assert {c["type"]: c["status"] for c in status["conditions"][1:]} == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
    }


def test_a_heartbeat_moves_the_heartbeat_but_not_the_transition() -> None:
    first = node_status(SETTINGS, ready=True, now=T0)["conditions"]
    again = node_status(SETTINGS, ready=True, now=LATER, previous=first)["conditions"][0]
    assert again["lastHeartbeatTime"] == "2030-01-01T00:00:30Z"
    assert again["lastTransitionTime"] == "2030-01-01T00:00:00Z"
    stopped = node_status(SETTINGS, ready=False, now=LATER, previous=first)["conditions"][0]
    assert (stopped["status"], stopped["reason"]) == ("False", "KubeletNotReady")
    assert stopped["lastTransitionTime"] == "2030-01-01T00:00:30Z"


def test_the_lease_is_owned_by_the_node_and_renewed_with_microseconds() -> None:
    lease = lease_manifest("local-0", "uid-1", T0 + datetime.timedelta(microseconds=5))
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert lease["spec"]["renewTime"] == "2030-01-01T00:00:00.000005Z"
    assert lease["spec"]["holderIdentity"] == "local-0"


def test_the_node_says_how_memory_limits_are_enforced() -> None:
    watchdog = Watchdog("no cgroup here", interval=0.5)
    status = node_status(SETTINGS, ready=True, now=T0, memory=watchdog)
    memory = {c["type"]: c for c in status["conditions"]}["KernelMemoryLimits"]
    assert (memory["status"], memory["reason"]) == ("False", "Watchdog")
    assert memory["message"].startswith("no memory cgroup can be made (no cgroup here)")
    kernel = KernelLimits(CgroupRoot("v1", Path("/sys/fs/cgroup/memory/x")), Path("/state"))
    status = node_status(
        SETTINGS, ready=True, now=LATER, previous=status["conditions"], memory=kernel
    )
    memory = {c["type"]: c for c in status["conditions"]}["KernelMemoryLimits"]
    assert (memory["status"], memory["reason"]) == ("True", "CgroupV1")
    assert memory["lastTransitionTime"] == "2030-01-01T00:00:30Z"
