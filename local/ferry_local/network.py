"""The cluster's network: a namespace of its own, reached from the host only by routes.

Each cluster takes a /16 of 10.192.0.0/10 that nothing on this machine routes or holds (so
clusters side by side never share one), and lays it out as:

    10.S.0.0/17     pods (the controller-manager's --cluster-cidr; a /24 per node)
    10.S.128.0/18   Services (--service-cluster-ip-range)
    10.S.255.0/30   the link between the host (.1) and the cluster's namespace (.2, the node's
                    address)

The namespace `ferry-<id>` holds the node's address, each node's bridge and kube-proxy's rules;
every pod gets a namespace of its own on its node's bridge (agent/network.py). The host has one
end of a veth pair into it, and routes for the pod and Service blocks through it. The cluster's
namespace has no default route, and what in it has no route (an unused pod address, a Service
address no Service holds) is unreachable there, answered at once: nothing leaves the machine.

Pods reach two things on the host, the API server and moto, at the host's end of the link: an
nftables table on the host rewrites those two ports to 127.0.0.1, where they listen
(route_localnet on the link lets the kernel deliver them), and turns away anything else the
namespace sends the host.

Everything made is recorded in the cluster's run folder (network.json) before it is made, so
`ferry local down` removes it even after the supervisor was killed; and in /run/ferry-networks/
with the supervisor's pid, so the next cluster made on the machine removes a network whose
supervisor died and whose folder is gone (a killed test run's).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ferry_local import netns, processes
from ferry_local.netns import NetworkError, NetworkUnavailableError

BLOCKS = ipaddress.IPv4Network("10.192.0.0/10")
BLOCK_PREFIX = 16
NODE_MASK = 24
RECORD = "network.json"
LOCK = Path("/run/ferry-network.lock")
# Every network made on this machine, with the pid of the supervisor that made it.
REGISTRY = Path("/run/ferry-networks")
NODE_LINK = "host0"
# The host's end of each cluster's link is named this and the cluster's id.
HOST_LINK_PREFIX = "fr-"
# kube-proxy's ports on the node's address, as on a kubelet's node: nothing else listens in the
# cluster's namespace.
KUBE_PROXY_HEALTHZ_PORT = 10256
KUBE_PROXY_METRICS_PORT = 10249


@dataclass(frozen=True)
class ClusterNetwork:
    id: str
    block: str
    forwarded_ports: tuple[int, ...] = ()
    """Host ports on 127.0.0.1 the cluster reaches at host_address (the API server, moto)."""

    @property
    def netns(self) -> str:
        return f"ferry-{self.id}"

    @property
    def pod_netns_prefix(self) -> str:
        return f"{self.netns}-"

    @property
    def host_link(self) -> str:
        return f"{HOST_LINK_PREFIX}{self.id}"

    @property
    def table(self) -> str:
        return f"ferry-{self.id}"

    def _subnet(self, prefix: int, index: int) -> ipaddress.IPv4Network:
        return list(ipaddress.IPv4Network(self.block).subnets(new_prefix=prefix))[index]

    @property
    def pod_cidr(self) -> str:
        return str(self._subnet(17, 0))

    @property
    def service_cidr(self) -> str:
        return str(self._subnet(18, 2))

    @property
    def link_cidr(self) -> str:
        return str(self._subnet(30, -1))

    @property
    def host_address(self) -> str:
        return str(self._subnet(30, -1).network_address + 1)

    @property
    def node_address(self) -> str:
        return str(self._subnet(30, -1).network_address + 2)

    @property
    def dns_address(self) -> str:
        """The cluster DNS Service's ClusterIP: the tenth of the Service block, as kubeadm's."""
        return str(self._subnet(18, 2).network_address + 10)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterNetwork:
        raw = json.loads(text)
        return cls(str(raw["id"]), str(raw["block"]), tuple(raw.get("forwarded_ports") or ()))


def cluster_id(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:6]


def choose_block(taken: Iterable[ipaddress.IPv4Network], start: int) -> str:
    """The first /16 of BLOCKS, going round from `start`, that overlaps nothing in `taken`."""
    blocks = list(BLOCKS.subnets(new_prefix=BLOCK_PREFIX))
    used = [net for net in taken if net.prefixlen > 0]  # a default route takes no block
    for step in range(len(blocks)):
        block = blocks[(start + step) % len(blocks)]
        if not any(block.overlaps(net) for net in used):
            return str(block)
    raise NetworkError(f"every /16 of {BLOCKS} is routed on this machine already")


def host_networks() -> list[ipaddress.IPv4Network]:
    """What the host routes or holds, in every routing table."""
    found = []
    for line in netns.ip("-4", "-o", "route", "show", "table", "all").splitlines():
        words = line.split()
        if words[0] in {"local", "broadcast", "unreachable", "prohibit", "blackhole", "throw"}:
            words = words[1:]
        if words and words[0] != "default":
            found.append(ipaddress.IPv4Network(words[0], strict=False))
    return found


def read(run_dir: Path) -> ClusterNetwork | None:
    try:
        return ClusterNetwork.from_json((run_dir / RECORD).read_text())
    except (OSError, ValueError, KeyError):
        return None


def routed_into_a_cluster(address: str) -> bool:
    """Whether this machine sends `address` into a local cluster's namespace: an address of
    BLOCKS whose route is a cluster's link, so a request to it stays on the machine (a
    cluster without the network has Services addresses the default route would take out)."""
    try:
        if ipaddress.ip_address(address) not in BLOCKS:
            return False
        route = netns.ip("-o", "route", "get", address).split()
    except (ValueError, NetworkError, OSError):
        return False
    return "dev" in route and route[route.index("dev") + 1].startswith(HOST_LINK_PREFIX)


def check_supported() -> None:
    """Raise NetworkUnavailableError naming what this machine lacks."""
    if os.geteuid() != 0:
        raise NetworkUnavailableError(
            "the local environment's pod network needs root (network namespaces, veth pairs, "
            f"routes and nftables rules); this process runs as uid {os.geteuid()}"
        )
    if missing := netns.missing_tools():
        raise NetworkUnavailableError(
            f"the local environment's pod network needs {' and '.join(missing)}: "
            "apt-get install -y iproute2 nftables"
        )


@contextmanager
def _machine_lock() -> Iterator[None]:
    """One cluster at a time chooses its block and routes it."""
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def create(root: Path, run_dir: Path, forwarded_ports: Iterable[int]) -> ClusterNetwork:
    """Make the cluster's namespace, its link and routes, and the host's table; recorded first."""
    check_supported()
    ident = cluster_id(root)
    with _machine_lock():
        sweep_orphans()
        block = choose_block(host_networks(), int(ident, 16))
        network = ClusterNetwork(ident, block, tuple(forwarded_ports))
        (run_dir / RECORD).write_text(network.to_json())
        _register(network, os.getpid())
        # What a cluster of the same folder left when nothing removed it (its record was wiped).
        _delete_table(network)
        _delete_link(network)
        try:
            netns.add(network.netns)
        except NetworkError as error:
            raise NetworkUnavailableError(
                f"this machine cannot make a network namespace: {error}"
            ) from None
        _link(network)
    _seal(network)
    _host_table(network)
    return network


def _link(network: ClusterNetwork) -> None:
    ns, link = network.netns, network.host_link
    prefix = network.link_cidr.split("/")[1]
    netns.ip("link", "add", link, "type", "veth", "peer", "name", NODE_LINK, "netns", ns)
    netns.ip("addr", "add", f"{network.host_address}/{prefix}", "dev", link)
    netns.ip("link", "set", link, "up")
    netns.ip("addr", "add", f"{network.node_address}/{prefix}", "dev", NODE_LINK, netns=ns)
    netns.ip("link", "set", NODE_LINK, "up", netns=ns)
    for cidr in (network.pod_cidr, network.service_cidr):
        netns.ip("route", "add", cidr, "via", network.node_address, "dev", link)
    # The host's end delivers the forwarded ports to 127.0.0.1, where they listen.
    netns.sysctl(f"net.ipv4.conf.{link}.route_localnet", "1")


def _seal(network: ClusterNetwork) -> None:
    """The namespace forwards between the host and its pods, and nowhere else."""
    ns = network.netns
    netns.sysctl("net.ipv4.ip_forward", "1", netns=ns)
    for cidr in (network.pod_cidr, network.service_cidr):
        # Pod addresses a node's bridge does not hold and Service addresses kube-proxy did not
        # rewrite go nowhere.
        netns.ip("route", "add", "unreachable", cidr, netns=ns)
    # ... and are refused at once, after kube-proxy's rewrite: a reset for TCP, host
    # unreachable for the rest (what is for the namespace itself, the host's answers to
    # kube-proxy among them, passes). (The kernel's own answer to an unreachable route is an ICMP
    # error limited to about one a second per peer, so a second try would time out.)
    netns.nft(
        """
table ip ferry {
    chain unroutable {
        type filter hook prerouting priority dstnat + 10; policy accept;
        fib daddr type != local fib daddr oif missing meta l4proto tcp reject with tcp reset
        fib daddr type != local fib daddr oif missing reject with icmp type host-unreachable
    }
}
""",
        netns=ns,
    )


def _host_table(network: ClusterNetwork) -> None:
    ports = ", ".join(str(port) for port in network.forwarded_ports)
    link = network.host_link
    forward = (
        f'iifname "{link}" ip daddr {network.host_address} tcp dport {{ {ports} }} '
        "dnat to 127.0.0.1"
        if ports
        else ""
    )
    netns.nft(
        f"""
table ip {network.table} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        {forward}
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{link}" ct state established,related accept
        iifname "{link}" ct status dnat accept
        iifname "{link}" reject
    }}
}}
"""
    )


def remove(run_dir: Path) -> list[str]:
    """Remove what the record in `run_dir` names: pods' and the cluster's namespaces, the link
    (its routes go with it) and the host's table. What could not be removed, as messages."""
    network = read(run_dir)
    if network is None:
        return []
    failed = _remove(network)
    if not failed:
        (run_dir / RECORD).unlink(missing_ok=True)
    return failed


def _remove(network: ClusterNetwork) -> list[str]:
    steps: list[Callable[[], None]] = [
        functools.partial(_delete_table, network),
        functools.partial(_delete_link, network),
        *(functools.partial(netns.delete, name) for name in netns.named(network.pod_netns_prefix)),
        functools.partial(netns.delete, network.netns),
    ]
    failed = []
    for step in steps:
        try:
            step()
        except NetworkError as error:
            failed.append(str(error))
    if not failed:
        (REGISTRY / f"{network.id}.json").unlink(missing_ok=True)
    return failed


def _register(network: ClusterNetwork, owner: int) -> None:
    REGISTRY.mkdir(parents=True, exist_ok=True)
    entry = {"network": json.loads(network.to_json()), "owner": owner}
    (REGISTRY / f"{network.id}.json").write_text(json.dumps(entry))


def sweep_orphans() -> None:
    """Remove the networks whose supervisor is gone and that no `down` removed (a test run
    killed with its clusters, whose folders went with its temporary files)."""
    if not REGISTRY.is_dir():
        return
    for path in REGISTRY.glob("*.json"):
        try:
            entry = json.loads(path.read_text())
            network = ClusterNetwork.from_json(json.dumps(entry["network"]))
            owner = int(entry["owner"])
        except (OSError, ValueError, KeyError):
            continue
        if not processes.alive(owner):
            _remove(network)


def _delete_table(network: ClusterNetwork) -> None:
    if network.table in netns.run(["nft", "list", "tables", "ip"]).split():
        netns.run(["nft", "delete", "table", "ip", network.table])


def _delete_link(network: ClusterNetwork) -> None:
    if netns.link_exists(network.host_link):
        netns.ip("link", "delete", network.host_link)
