"""Pods on a network of their own: an address from the node's pod CIDR in a namespace each,
EndpointSlices that list them, kube-proxy serving Services at their ClusterIP, and a cluster
namespace that routes nowhere else."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry import names
from ferry.adapters.kube import Kube
from ferry_local import netns
from ferry_local.agent.network import PodNetwork
from ferry_local.cluster import ClusterInfo
from ferry_local.cluster_ip import ClusterIPClient
from ferry_local.components import AGENT_NODE
from ferry_local.netns import NetworkError
from ferry_local.network import ClusterNetwork
from ferry_local.wait import eventually, wait_until
from tests.e2e.network.conftest import (
    LOCAL_GROUP,
    answering_pod,
    apply,
    get,
    server_deployment,
    service,
)
from tests.support.ferry_operator import REPO, kubectl

# A documentation address (RFC 5737): only asked about (`ip route get`), never sent to.
OUTSIDE = "203.0.113.7"
ECHO = REPO / "examples" / "custom-container" / "realtimeapi.yaml"


@pytest.fixture
def ns(net_cluster: ClusterInfo) -> Iterator[str]:
    name = f"n-{uuid.uuid4().hex[:8]}"
    kubectl(net_cluster, "create", "namespace", name)
    wait_until(
        lambda: kubectl(net_cluster, "get", "-n", name, "sa/default", check=False).returncode == 0,
        timeout=30,
        what=f"the default ServiceAccount of {name}",
    )
    yield name
    kubectl(net_cluster, "delete", "namespace", name, "--wait=false")


def ready_pods(
    cluster: ClusterInfo, namespace: str, app: str, count: int, label: str = "app"
) -> list[dict[str, Any]]:
    def ready() -> list[dict[str, Any]] | None:
        pods = get(cluster, namespace, "pods", "-l", f"{label}={app}")["items"]
        done = [
            pod
            for pod in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod["status"].get("conditions", ())
            )
        ]
        return done if len(done) == count else None

    return wait_until(ready, timeout=60, what=f"{count} ready pods of {app}")


def cluster_ip(cluster: ClusterInfo, namespace: str, name: str) -> str:
    return str(get(cluster, namespace, "service", name)["spec"]["clusterIP"])


def serving(cluster: ClusterInfo, namespace: str, name: str, replicas: int) -> list[str]:
    """A Deployment of the test server and its Service; the pods' addresses once Ready and
    listed in the Service's EndpointSlices."""
    apply(cluster, namespace, server_deployment(name, replicas), service(name))
    pods = ready_pods(cluster, namespace, name, replicas)
    ips = sorted(pod["status"]["podIP"] for pod in pods)

    def listed() -> list[str] | None:
        found = ready_addresses(endpoint_slices(cluster, namespace, name))
        return found if found == ips else None

    wait_until(listed, timeout=30, what=f"the EndpointSlices of {name} listing {ips}")
    return ips


def endpoint_slices(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    label = f"kubernetes.io/service-name={name}"
    slices: list[dict[str, Any]] = get(cluster, namespace, "endpointslices", "-l", label)["items"]
    return slices


def ready_addresses(slices: list[dict[str, Any]]) -> list[str]:
    return sorted(
        address
        for item in slices
        for endpoint in item.get("endpoints") or ()
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    )


def refused(address: str, port: int) -> type[BaseException]:
    """What a connection to the address meets (a refusal is ConnectionRefusedError; a packet
    dropped somewhere would be a TimeoutError)."""
    try:
        socket.create_connection((address, port), timeout=10).close()
    except OSError as error:
        return type(error)
    return type(None)


def routed(network: ClusterNetwork, address: str) -> bool:
    try:
        netns.ip("route", "get", address, netns=network.netns)
    except NetworkError:
        return False
    return True


def test_pods_get_addresses_of_their_nodes_pod_cidr_that_endpoint_slices_list(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    ips = serving(net_cluster, ns, "web", 2)
    node = get(net_cluster, "", "node", AGENT_NODE)
    block = ipaddress.IPv4Network(node["spec"]["podCIDR"])
    assert block.subnet_of(ipaddress.IPv4Network(cluster_network.pod_cidr))
    assert all(ipaddress.IPv4Address(ip) in block for ip in ips), (ips, block)
    assert len(set(ips)) == 2
    pods = get(net_cluster, ns, "pods", "-l", "app=web")["items"]
    assert {pod["status"]["hostIP"] for pod in pods} == {cluster_network.node_address}
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster_network.node_address


def test_a_services_cluster_ip_answers_from_the_host_balanced_per_connection(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    serving(net_cluster, ns, "balanced", 2)
    address = cluster_ip(net_cluster, ns, "balanced")
    assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cluster_network.service_cidr)
    pods = {pod["metadata"]["name"] for pod in get(net_cluster, ns, "pods")["items"]}

    def reached_by_new_connections() -> set[str]:
        reached = set()
        for _ in range(30):
            connection = http.client.HTTPConnection(address, 80, timeout=10)
            try:
                reached.add(answering_pod(connection))
            finally:
                connection.close()
        return reached

    # kube-proxy picks a backend per connection: thirty of them reach both pods (all thirty
    # landing on one of two has odds of 2 in a billion) once its rules have both, which comes
    # a moment after the EndpointSlice lists them...
    wait_until(
        lambda: reached_by_new_connections() == pods,
        timeout=30,
        what=f"new connections to {address} reaching both pods",
    )
    # ... while one keep-alive connection stays on the pod it first reached.
    connection = http.client.HTTPConnection(address, 80, timeout=10)
    try:
        assert len({answering_pod(connection) for _ in range(20)}) == 1
    finally:
        connection.close()


async def test_the_cluster_ip_clients_connections_stay_on_one_pod_or_spread_per_request(
    net_cluster: ClusterInfo, ns: str
) -> None:
    serving(net_cluster, ns, "modes", 2)
    address = cluster_ip(net_cluster, ns, "modes")
    pods = {pod["metadata"]["name"] for pod in get(net_cluster, ns, "pods")["items"]}
    kube = await Kube.connect(str(net_cluster.kubeconfig))
    try:
        async with ClusterIPClient(kube, ns, "modes", connections="per-request") as fresh:
            assert fresh.url == f"http://{address}:80"
            await fresh.wait_until_serving(2)

            async def reached_by_new_connections() -> bool:
                return {(await fresh.get("/")).json()["pod"] for _ in range(30)} == pods

            # As above: once kube-proxy's rules have both pods, thirty connections reach both.
            await eventually(
                reached_by_new_connections, timeout=30, what=f"{fresh.url} reaching both pods"
            )
        async with ClusterIPClient(kube, ns, "modes") as kept:
            # One request at a time: the pool's one connection, on the pod it first reached.
            assert len({(await kept.get("/")).json()["pod"] for _ in range(30)}) == 1
    finally:
        await kube.close()


def processes_of_pod(name: str) -> list[dict[str, str]]:
    """The environments of the node agent's processes for the pod `name` (the agent sets each
    one's HOSTNAME to its pod's name)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            raw = environ.read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("HOSTNAME") == name and "POD_IP" in env:
            found.append(env)
    return found


def test_a_realtime_apis_cluster_ip_answers_curl_from_the_host_and_its_slices_list_its_pods(
    net_cluster: ClusterInfo, ns: str
) -> None:
    echo = yaml.safe_load(ECHO.read_text())
    echo["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 2}
    apply(net_cluster, ns, echo)
    kubectl(net_cluster, "wait", "-n", ns, "--for=condition=Ready", "rtapi/echo", "--timeout=120s")
    pods = ready_pods(net_cluster, ns, "echo", 2, label="ferry.dev/api")
    pod_names = {pod["status"]["podIP"]: pod["metadata"]["name"] for pod in pods}
    svc = get(net_cluster, ns, "service", "echo")
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/"
    ips = sorted(pod_names)

    def listed() -> list[dict[str, Any]] | None:
        slices = endpoint_slices(net_cluster, ns, "echo")
        return slices if ready_addresses(slices) == ips else None

    slices = wait_until(listed, timeout=30, what=f"the EndpointSlices of echo listing {ips}")
    # The Service sends to each pod's proxy, in front of the predictor.
    assert {port["port"] for item in slices for port in item["ports"]} == {names.PROXY_PORT}

    def curl() -> dict[str, Any]:
        answer = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "-H",
                "Content-Type: application/json",
                "-d",
                '{"text": "hello"}',
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        found: dict[str, Any] = json.loads(answer.stdout)
        return found

    # kube-proxy's rules follow the slices a moment later: until then the address refuses.
    answer = wait_until(curl, timeout=30, what=f"curl {url} answering")
    assert answer["echo"] == {"text": "hello"}
    assert answer["api"] == "echo"
    assert answer["pod"] in pod_names.values()
    # Each pod has a network of its own, so its containers get no FERRY_HOST to bind: they bind
    # every address there and the proxy finds the predictor on localhost, as in Kubernetes.
    for name in pod_names.values():
        environments = processes_of_pod(name)
        assert len(environments) >= 2, f"the proxy and the predictor of {name}"
        assert not [env for env in environments if "FERRY_HOST" in env], name


def test_an_unallocated_service_address_and_an_unused_pod_address_are_refused_at_once(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    ips = serving(net_cluster, ns, "taken", 1)
    address = cluster_ip(net_cluster, ns, "taken")
    services = ipaddress.IPv4Network(cluster_network.service_cidr)
    allocated = {
        item["spec"]["clusterIP"] for item in get(net_cluster, "", "services", "-A")["items"]
    }
    free_service = next(str(a) for a in services.hosts() if str(a) not in allocated)
    pod_block = ipaddress.IPv4Network(get(net_cluster, "", "node", AGENT_NODE)["spec"]["podCIDR"])
    used = {pod["status"].get("podIP") for pod in get(net_cluster, "", "pods", "-A")["items"]}
    # Neither a pod's nor one a pod of an earlier test is still giving back.
    free_pod = next(
        str(a)
        for a in list(pod_block.hosts())[1:]
        if str(a) not in used and not routed(cluster_network, str(a))
    )
    # Again and again: a refusal that came from a rate-limited ICMP error would turn into a
    # timeout on the second try.
    for _ in range(3):
        assert refused(free_service, 80) is ConnectionRefusedError
        assert refused(free_pod, 8080) is ConnectionRefusedError
        assert refused(address, 81) is ConnectionRefusedError  # a port the Service lacks
        assert refused(ips[0], 8081) is ConnectionRefusedError  # a port the pod lacks


def test_the_cluster_namespace_has_no_default_route_and_routes_nothing_outside(
    cluster_network: ClusterNetwork,
) -> None:
    assert netns.ip("route", "show", "default", netns=cluster_network.netns).strip() == ""
    with pytest.raises(NetworkError, match="unreachable"):
        netns.ip("route", "get", OUTSIDE, netns=cluster_network.netns)
    # The host routes the cluster's blocks into its namespace, and nothing else of 10.192/10.
    routes = netns.ip("-4", "route", "show", "dev", cluster_network.host_link)
    routed = {line.split()[0] for line in routes.splitlines()}
    assert routed == {
        cluster_network.pod_cidr,
        cluster_network.service_cidr,
        cluster_network.link_cidr,
    }


def test_the_containers_of_a_pod_share_its_namespace_and_reach_each_other_on_localhost(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    fetch = (
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=2).read()"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pair", "labels": {"app": "pair"}},
        "spec": {
            **LOCAL_GROUP,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "server",
                    "image": "test.ferry.dev/server",
                    "args": ["--port", "8080"],
                    # Loopback only: nothing outside the pod can reach it.
                    "env": [{"name": "FERRY_HOST", "value": "127.0.0.1"}],
                },
                {
                    "name": "client",
                    "image": "test.ferry.dev/shell",
                    "command": ["sleep", "600"],
                    # Ready only once it reached the server on the pod's own localhost.
                    "readinessProbe": {
                        "exec": {"command": ["python3", "-c", fetch]},
                        "periodSeconds": 1,
                    },
                },
            ],
        },
    }
    apply(net_cluster, ns, pod)
    (ready,) = ready_pods(net_cluster, ns, "pair", 1)
    # The host's own loopback has no such server: the pod's is its own.
    assert refused("127.0.0.1", 8080) in {ConnectionRefusedError}
    assert ready["status"]["podIP"] != "127.0.0.1"


def test_pods_resolve_services_by_name_through_the_clusters_dns(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    serving(net_cluster, ns, "named", 1)
    address = cluster_ip(net_cluster, ns, "named")
    dns = get(net_cluster, "kube-system", "service", "kube-dns")
    assert dns["spec"]["clusterIP"] == cluster_network.dns_address
    check = (
        "import socket, sys; "
        f"names = ['named', 'named.{ns}', 'named.{ns}.svc.cluster.local']; "
        f"sys.exit(any(socket.gethostbyname(n) != '{address}' for n in names))"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "resolver", "labels": {"app": "resolver"}},
        "spec": {
            **LOCAL_GROUP,
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {
                    "name": "resolver",
                    "image": "test.ferry.dev/shell",
                    "command": ["sleep", "600"],
                    # Ready once the short name, the namespaced one and the full one all resolve
                    # to the Service's ClusterIP, through the pod's resolv.conf.
                    "readinessProbe": {
                        "exec": {"command": ["python3", "-c", check]},
                        "periodSeconds": 1,
                    },
                }
            ],
        },
    }
    apply(net_cluster, ns, pod)
    (ready,) = ready_pods(net_cluster, ns, "resolver", 1)
    folder = net_cluster.layout.agent_state / "pods" / f"{ns}_resolver_{ready['metadata']['uid']}"
    assert (folder / "etc" / "resolv.conf").read_text() == (
        f"nameserver {cluster_network.dns_address}\n"
        f"search {ns}.svc.cluster.local svc.cluster.local cluster.local\n"
        "options ndots:5\n"
    )
    # The machine's own file is untouched.
    assert cluster_network.dns_address not in Path("/etc/resolv.conf").read_text()


def test_a_pod_whose_namespace_cannot_be_made_waits_with_a_reason_and_an_event(
    net_cluster: ClusterInfo, ns: str, cluster_network: ClusterNetwork
) -> None:
    node = get(net_cluster, "", "node", AGENT_NODE)
    bridge = PodNetwork(cluster_network, AGENT_NODE, node["spec"]["podCIDR"])
    # Without the node's bridge no pod's veth can be attached.
    netns.ip("link", "delete", bridge.bridge, netns=cluster_network.netns)
    try:
        apply(net_cluster, ns, server_deployment("stranded", 1))

        def waiting() -> dict[str, Any] | None:
            pods = get(net_cluster, ns, "pods", "-l", "app=stranded")["items"]
            for pod in pods:
                for status in pod["status"].get("containerStatuses") or ():
                    state = status.get("state", {}).get("waiting") or {}
                    if state.get("reason") == "CreatePodSandboxError":
                        return state
            return None

        state = wait_until(waiting, timeout=60, what="a container waiting for its sandbox")
        assert bridge.bridge in state["message"], state

        def event() -> dict[str, Any] | None:
            events = get(net_cluster, ns, "events")["items"]
            return next((e for e in events if e["reason"] == "FailedCreatePodSandBox"), None)

        posted = wait_until(event, timeout=30, what="a FailedCreatePodSandBox Event")
        assert posted["type"] == "Warning"
        assert posted["message"].startswith("Failed to create pod sandbox: ")
    finally:
        # The bridge back as the agent made it: the waiting pod gets its namespace and runs.
        bridge.prepare_bridge()
    ready_pods(net_cluster, ns, "stranded", 1)
