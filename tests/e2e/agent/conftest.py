"""Fixtures of the node agent's e2e tests: the agent as a real process on the session's cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from ferry.adapters.kube import Kube
from ferry_local.cluster import ClusterInfo
from tests.e2e.agent.support import AgentProcess
from tests.support.ferry_operator import kubectl


@pytest.fixture(scope="session")
def agent(cluster: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One node agent for the session, with a short restart back-off."""
    running = AgentProcess(cluster, "agent-e2e", tmp_path_factory.mktemp("agent"))
    running.start()
    yield running
    running.stop()
    kubectl(cluster, "delete", "node", running.node_name, "--wait=false", check=False)


@pytest.fixture
def spare_agent(cluster: ClusterInfo, tmp_path: Path) -> Iterator[AgentProcess]:
    """A second agent for one test, its Node removed afterwards."""
    running = AgentProcess(cluster, f"agent-{uuid.uuid4().hex[:6]}", tmp_path / "agent")
    running.state_dir.mkdir()
    running.start()
    yield running
    running.stop()
    kubectl(cluster, "delete", "node", running.node_name, "--wait=false", check=False)


@pytest.fixture
def watchdog_agent(cluster: ClusterInfo, tmp_path: Path) -> Iterator[AgentProcess]:
    """An agent for one test that enforces memory limits with its watchdog, as where no memory
    cgroup can be made."""
    name = f"agent-{uuid.uuid4().hex[:6]}"
    running = AgentProcess(cluster, name, tmp_path / "agent", "--memory-limits=watchdog")
    running.state_dir.mkdir()
    running.start()
    yield running
    running.stop()
    kubectl(cluster, "delete", "node", running.node_name, "--wait=false", check=False)


@pytest.fixture
def kube(api: ApiClient) -> Kube:
    return Kube(api)
