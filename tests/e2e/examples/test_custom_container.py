"""examples/custom-container: a predictor that is a plain HTTP server, no Ferry inside, served
for real — the node agent runs the image's entrypoint from examples/images.yaml, Ferry's proxy
sidecar sits in front of it on the port the spec names, and requests go to the Service's ClusterIP
through kube-proxy."""

from __future__ import annotations

import json

import aiohttp

from ferry import names
from ferry.adapters.kube import Kube
from ferry_local.cluster import ClusterInfo
from ferry_local.cluster_ip import ClusterIPClient
from ferry_local.wait import wait_until
from tests.e2e.examples.conftest import EXAMPLES
from tests.support.ferry_operator import kubectl

MANIFEST = EXAMPLES / "custom-container" / "realtimeapi.yaml"
JSON = {"Content-Type": "application/json"}


async def test_the_echo_server_answers_through_the_proxy_and_stops_cleanly(
    local_env: ClusterInfo,
) -> None:
    kubectl(local_env, "apply", "-f", str(MANIFEST))
    kubectl(local_env, "wait", "--for=condition=Ready", "rtapi/echo", "--timeout=120s")

    (pod,) = json.loads(
        kubectl(local_env, "get", "pods", "-l", "ferry.dev/api=echo", "-o", "json").stdout
    )["items"]
    kube = await Kube.connect(str(local_env.kubeconfig))
    try:
        async with ClusterIPClient(kube, "default", "echo") as service:
            await service.wait_until_serving(1, timeout=60)
            payload = {"text": "hello", "delayMs": 5}
            reply = await service.request(
                "POST", "/predict", body=json.dumps(payload).encode(), headers=JSON
            )
            malformed = await service.request("POST", "/", body=b"{not json", headers=JSON)
        async with aiohttp.ClientSession() as session:
            admin = f"http://{pod['status']['podIP']}:{names.PROXY_ADMIN_PORT}/stats"
            async with session.get(admin) as response:
                stats = await response.json()
    finally:
        await kube.close()
    slices = json.loads(
        kubectl(
            local_env,
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=echo",
            "-o",
            "json",
        ).stdout
    )["items"]

    # The Service reaches the pod's proxy, not the server.
    listed = [address for item in slices for e in item["endpoints"] for address in e["addresses"]]
    assert listed == [pod["status"]["podIP"]]
    assert {port["port"] for item in slices for port in item["ports"]} == {names.PROXY_PORT}
    assert reply.status == 200, reply.body
    name = pod["metadata"]["name"]
    assert reply.json() == {"echo": payload, "api": "echo", "pod": name, "delayMs": 5}
    assert malformed.status == 400
    assert "not JSON" in malformed.json()["error"]
    assert stats["requestsTotal"] >= 2
    assert stats["maxConcurrency"] == 8  # spec.serving of the example

    # Deleting the API stops the pod: the server exits on SIGTERM once the proxy has drained.
    kubectl(local_env, "delete", "rtapi", "echo", "--wait=true")
    pods = local_env.layout.run / "agent" / "pods"
    log = next(pods.glob(f"default_{name}_*/logs/predictor.log"))
    wait_until(
        lambda: "echo: stopped" in log.read_text(),
        timeout=60,
        what=f"the echo server to stop cleanly (log: {log})",
    )
    assert "Traceback" not in log.read_text()
