"""Pod addresses: one loopback address per pod, from a block of 127.0.0.0/8.

On Linux every address of 127.0.0.0/8 is local with no setup, so each pod's processes bind their
own address and two pods can both serve port 8080. The default block sits beside kwok's
(127.64.0.0/10), so a simulated pod's address never answers with a real pod's process.

Several agents (of one cluster or of clusters side by side) share the machine's loopback, so an
address is handed out only if nothing on the machine has a socket bound to it (read from
/proc/net), and each agent starts its round of the block at a place derived from its node name.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

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
    ) -> None:
        self.network = ipaddress.IPv4Network(cidr)
        if not self.network.subnet_of(_LOOPBACK):
            raise ValueError(f"pod addresses must come from 127.0.0.0/8, not {cidr}")
        if self.network.num_addresses < 4:  # noqa: PLR2004 - network, broadcast, one host, one pod
            raise ValueError(f"{cidr} is too small for pods")
        self.in_use: set[str] = set()
        self._usable = self.network.num_addresses - 2  # not the network or broadcast address
        self._next = 1 + zlib.crc32(owner.encode()) % self._usable
        self._bound = bound

    def _address(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def allocate(self) -> str:
        taken = self.in_use | self._bound() | {HOST_IP}
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
        if address in self.in_use | self._bound() | {HOST_IP}:
            return False
        self.in_use.add(address)
        return True

    def release(self, address: str) -> None:
        self.in_use.discard(address)
