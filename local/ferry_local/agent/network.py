"""Pod addresses, and the pods' own network namespaces where the cluster has a network.

With a cluster network (ferry_local.network, `--network`), every pod gets a namespace of its own
with `lo` up and one address from its node's pod CIDR, on the node's bridge in the cluster's
namespace (a veth pair each): all containers of the pod join it, as in Kubernetes, so they reach
each other on localhost and the pod's address is one EndpointSlices can list (PodNetwork).

Without one, each pod gets one loopback address, from a block of 127.0.0.0/8. On Linux every
address of 127.0.0.0/8 is local with no setup, so each pod's processes bind their own address
and two pods can both serve port 8080. The default block sits beside kwok's
(127.64.0.0/10), so a simulated pod's address never answers with a real pod's process.

Several agents (of one cluster or of clusters side by side) share the machine's loopback, so an
address is handed out only if nothing on the machine has a socket bound to it (read from
/proc/net), and each agent starts its round of the block at a place derived from its node name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from ferry_local import netns
from ferry_local.network import ClusterNetwork

DEFAULT_POD_CIDR = "127.128.0.0/10"
HOST_IP = "127.0.0.1"
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_SOCKET_TABLES = ("tcp", "udp")


def bound_addresses(proc_net: Path = Path("/proc/net")) -> set[str]:
    """IPv4 addresses some socket on this machine is bound to."""
    found = set()
    for table in _SOCKET_TABLES:
        try:
            lines = (proc_net / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1].split(":")[0]
            # The kernel prints the address as a host-order 32-bit number in hex.
            found.add(socket.inet_ntoa(struct.pack("=I", int(local, 16))))
    return found


class AddressPool:
    """Hands addresses out round the block, so a released one is the last to come back."""

    def __init__(
        self,
        cidr: str = DEFAULT_POD_CIDR,
        owner: str = "",
        bound: Callable[[], set[str]] = bound_addresses,
        *,
        reserved: frozenset[str] = frozenset({HOST_IP}),
        loopback: bool = True,
    ) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        if loopback and not self.network.subnet_of(_LOOPBACK):
            raise ValueError(f"pod addresses must come from 127.0.0.0/8, not {cidr}")
        if self.network.num_addresses < 4:  # noqa: PLR2004 - network, broadcast, one host, one pod
            raise ValueError(f"{cidr} is too small for pods")
        self.in_use: set[str] = set()
        self._usable = self.network.num_addresses - 2  # not the network or broadcast address
        self._next = 1 + zlib.crc32(owner.encode()) % self._usable
        self._bound = bound
        self._reserved = reserved

    @classmethod
    def on_bridge(cls, cidr: str, gateway: str) -> AddressPool:
        """A node's pod CIDR: no socket of the machine can hold a pod's address (each pod has a
        namespace of its own), and the gateway is the bridge's."""
        return cls(cidr, bound=set, reserved=frozenset({gateway}), loopback=False)

    def _address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def allocate(self) -> str:
        taken = self.in_use | self._bound() | self._reserved
        for step in range(self._usable):
            offset = 1 + (self._next - 1 + step) % self._usable
            address = self._address(offset)
            if address not in taken:
                self.in_use.add(address)
                self._next = offset % self._usable + 1
                return address
        raise RuntimeError(f"no free pod address left in {self.network}")

    def reserve(self, address: str) -> bool:
        """Take a given address (a pod's from before a restart) if it is free and in the block."""
        try:
            parsed = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        ends = (self.network.network_address, self.network.broadcast_address)
        if parsed not in self.network or parsed in ends:
            return False
        if address in self.in_use | self._bound() | self._reserved:
            return False
        self.in_use.add(address)
        return True

    def release(self, address: str) -> None:
        self.in_use.discard(address)


class PodNetwork:
    """A node's bridge in the cluster's namespace, and a namespace per pod on it.

    Blocking (it runs `ip`): the agent calls it from a thread.
    """

    def __init__(self, cluster: ClusterNetwork, node_name: str, pod_cidr: str) -> None:
        self.cluster = cluster
        self.block = ipaddress.IPv4Network(pod_cidr)
        self.gateway = str(self.block.network_address + 1)
        # Interface names have 15 characters at most: the node and the pod go in as hashes.
        self._tag = hashlib.sha256(node_name.encode()).hexdigest()[:4]
        self.bridge = f"br-{self._tag}"
        self.prefix = f"{cluster.pod_netns_prefix}{self._tag}-"

    def pool(self) -> AddressPool:
        return AddressPool.on_bridge(str(self.block), self.gateway)

    def prepare(self) -> None:
        """The node's bridge, made anew: an earlier agent's pods, namespaces and all, are gone
        (the pods bound to the node run again from the start)."""
        for name in netns.named(self.prefix):
            netns.delete(name)
        self.prepare_bridge()

    def prepare_bridge(self) -> None:
        ns = self.cluster.netns
        if netns.link_exists(self.bridge, ns):
            netns.ip("link", "delete", self.bridge, netns=ns)
        netns.ip("link", "add", self.bridge, "type", "bridge", netns=ns)
        # Only the gateway's own address: each pod's address is routed to the bridge on its
        # own, so an address no pod holds stays unreachable (refused at once) instead of
        # waiting on ARP.
        netns.ip("addr", "add", f"{self.gateway}/32", "dev", self.bridge, netns=ns)
        netns.ip("link", "set", self.bridge, "up", netns=ns)

    def namespace(self, uid: str) -> str:
        return f"{self.prefix}{uid[:8]}"

    def attach(self, uid: str, address: str) -> str:
        """The pod's namespace with `lo` up and `address` on a veth into the bridge; its name."""
        name, ns = self.namespace(uid), self.cluster.netns
        veth = f"v{self._tag}{uid[:8]}"
        netns.add(name)
        if netns.link_exists(veth, ns):
            netns.ip("link", "delete", veth, netns=ns)
        netns.ip(
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name, netns=ns
        )
        netns.ip("link", "set", veth, "master", self.bridge, "up", netns=ns)
        netns.ip("addr", "add", f"{address}/{self.block.prefixlen}", "dev", "eth0", netns=name)
        netns.ip("link", "set", "eth0", "up", netns=name)
        netns.ip("route", "add", "default", "via", self.gateway, "dev", "eth0", netns=name)
        netns.ip("route", "add", f"{address}/32", "dev", self.bridge, netns=ns)
        return name

    def detach(self, uid: str) -> None:
        """Remove the pod's namespace; its veth pair and route go with it."""
        netns.delete(self.namespace(uid))
