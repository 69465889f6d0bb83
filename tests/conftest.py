"""Fixtures shared by every tier: a real local control plane per session, a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient

from ferry_local.aws import MotoServer, moto_server
from ferry_local.cluster import ClusterInfo, local_cluster
from ferry_local.layout import ClusterLayout
from ferry_local.wait import eventually
from tests.support.ferry_operator import install_crds

# The chaos tally of every tier (`pytest -m chaos` runs only its cases).
pytest_plugins = ("tests.support.chaos",)

TEST_NODES = 3


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """One control plane for the session, tied to pytest: it goes down even if pytest is killed."""
    root: Path = tmp_path_factory.mktemp("clusters") / "ferry-test"
    with local_cluster(ClusterLayout(root), nodes=TEST_NODES) as info:
        yield info


@pytest.fixture(scope="session")
def crd(cluster: ClusterInfo) -> None:
    """The RealtimeAPI CRD and its admission policy installed from crds/, as a user would, and
    in force."""
    install_crds(cluster)


@pytest.fixture
async def api(cluster: ClusterInfo) -> AsyncIterator[ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(cluster.kubeconfig))
    async with api_client:
        yield api_client


@pytest.fixture
async def namespace(api: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists), deleted afterwards."""
    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"ferry.dev/test": "1"}))
    )

    async def service_account() -> bool:
        accounts = await core.list_namespaced_service_account(name)
        return any(sa.metadata.name == "default" for sa in accounts.items)

    await eventually(service_account, timeout=30, what=f"the default ServiceAccount in {name}")
    yield name
    await core.delete_namespace(name)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server mode on 127.0.0.1 for the session; `moto.env()` points boto3 at it."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as server:
        yield server


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Points this process's boto3 at the moto server for one test."""
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    return moto.env()
