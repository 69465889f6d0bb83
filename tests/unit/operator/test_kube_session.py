"""The operator's Kubernetes session: the environment is read once, not at every request."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from ferry.adapters.kube import _without_environment_lookups

SERVER = "https://10.96.0.1:443"


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_without_a_proxy_requests_skip_the_environment() -> None:
    api = ApiClient(Configuration(host=SERVER))
    connector = api.rest_client.pool_manager.connector

    async with _without_environment_lookups(api) as kept:
        session = kept.rest_client.pool_manager
        assert not session.trust_env
        assert session.connector is connector  # pool size and TLS settings as configured


async def test_a_proxy_in_the_environment_is_still_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")

    async with _without_environment_lookups(ApiClient(Configuration(host=SERVER))) as kept:
        assert kept.rest_client.pool_manager.trust_env


async def test_a_server_the_proxy_variables_exempt_gets_the_lean_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "10.96.0.1")

    async with _without_environment_lookups(ApiClient(Configuration(host=SERVER))) as kept:
        assert not kept.rest_client.pool_manager.trust_env
