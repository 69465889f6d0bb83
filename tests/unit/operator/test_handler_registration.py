"""The operator's handlers as kopf holds them: each put into the registry once, under an id of
its own, in the order ferry.handlers.register writes down (kopf runs handlers of one kind in
that order, and keeps a handler's progress under its id)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import kopf
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from ferry import handlers
from ferry.adapters.aws import Aws, AwsSettings
from ferry.adapters.kube import Kube
from ferry.adapters.stats import StatsScraper
from ferry.handlers.context import OperatorContext
from ferry.services.status_writer import StatusWriter
from ferry.settings import Settings

ASG_GROUP = {
    "name": "gpu-a10g",
    "asgName": "eks-gpu-a10g",
    "labels": {"ferry.dev/node-group": "gpu-a10g"},
    "allocatable": {"cpu": "4", "memory": "16Gi", "gpu": 1},
    "minSize": 1,
    "maxSize": 5,
}


async def context_of(settings: Settings) -> OperatorContext:
    """A context whose clients are made but never used: registering calls nothing."""
    kube = Kube(ApiClient(Configuration(host="https://127.0.0.1:1")))
    scraper = StatsScraper(concurrency=1, timeout=1.0)
    return OperatorContext(
        settings, kube, Aws(AwsSettings.from_env({})), scraper, StatusWriter(kube)
    )


@pytest.fixture
async def registry() -> AsyncIterator[kopf.OperatorRegistry]:
    settings = Settings.from_env({"FERRY_NODE_GROUPS": json.dumps([ASG_GROUP])})
    context = await context_of(settings)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, context)
    yield registry
    await context.close()


def test_the_api_handlers_are_registered_in_the_written_order(
    registry: kopf.OperatorRegistry,
) -> None:
    changing = [
        (h.id, "resume" if h.initial else h.reason) for h in registry._changing.get_all_handlers()
    ]
    assert changing == [
        ("reconcile", "resume"),
        ("reconcile", "create"),
        ("reconcile/spec", "update"),  # kopf adds the field it watches to the id
        # On deletion, the log group goes before the API's metrics are forgotten.
        ("cleanup", "delete"),
        ("forget", "delete"),
    ]
    # Create, resume and update are one handler: an API created while no operator ran is
    # reconciled once at start, not twice.
    assert len({id(h.fn) for h in registry._changing.get_all_handlers()[:3]}) == 1
    assert [h.id for h in registry._indexing.get_all_handlers()] == [
        "api_pods",
        "api_replicas",
        "route_claims",
        "route_conflicts",
        "canary_pods",
        "canary_replicas",
    ]
    assert [h.id for h in registry._watching.get_all_handlers()] == [
        "deployment_changed",
        "pod_unschedulable",
        "route_changed",
        "canary_changed",
    ]
    assert [h.id for h in registry._spawning.get_all_handlers()] == ["remove_canary", "autoscale"]


def test_startup_and_cleanup_handlers_each_run_under_an_id_of_their_own(
    registry: kopf.OperatorRegistry,
) -> None:
    # kopf keeps one outcome per id: two handlers of one id would run as one, the failure of
    # one hidden by the success of the other.
    activities = [(h.activity.value, h.id) for h in registry._activities.get_all_handlers()]
    assert activities == [
        ("authentication", "login"),
        ("startup", "start-capacity-loop"),
        ("cleanup", "stop-capacity-loop"),
    ]


async def test_without_a_node_group_to_look_after_there_is_no_capacity_loop() -> None:
    context = await context_of(Settings.from_env({}))
    try:
        registry = kopf.OperatorRegistry()
        handlers.register(registry, context)
        assert [h.id for h in registry._activities.get_all_handlers()] == ["login"]
    finally:
        await context.close()
