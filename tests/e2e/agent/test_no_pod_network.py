"""Without the pod network (this tier's cluster and agent), a Service's ClusterIP leads nowhere on
this machine: the ClusterIP client says so and sends nothing, which is why this tier's tests
reach Services through ferry_local.loopback_service."""

from __future__ import annotations

import pytest

from ferry.adapters.kube import Kube
from ferry_local.cluster_ip import ClusterIPClient, NoClusterIPError
from tests.e2e.agent.support import create_service


async def test_the_cluster_ip_client_refuses_a_service_no_local_network_routes(
    kube: Kube, namespace: str
) -> None:
    await create_service(kube, namespace, "unrouted", {"app": "unrouted"})
    service = await kube.get(f"/api/v1/namespaces/{namespace}/services/unrouted") or {}
    address = service["spec"]["clusterIP"]

    with pytest.raises(NoClusterIPError) as refused:
        async with ClusterIPClient(kube, namespace, "unrouted"):
            pass

    assert str(refused.value) == (
        f"service {namespace}/unrouted has ClusterIP {address}, which this machine does not "
        "route into a local cluster's pod network (a cluster started without it, or another "
        "cluster): nothing is sent there"
    )
