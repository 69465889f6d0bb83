"""Network namespaces, links and nftables tables, made with iproute2 and nft.

Named namespaces (`ip netns add`) are files under /run/netns: they outlive the process that made
them, so whatever makes one records it, and `ferry local down` removes it. A process is put in
a namespace between fork and exec with setns(2), so the program it runs never sees another
network.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SLAVE = 0x80000
_TOOLS = {"ip": "iproute2", "nft": "nftables"}


class NetworkError(RuntimeError):
    """A network command failed; the message quotes it and what it said."""


class NetworkUnavailableError(NetworkError):
    """This machine cannot make the local environment's network; the message says what is
    missing."""


def run(argv: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip()
        raise NetworkError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {said}")
    return result.stdout


def ip(*args: str, netns: str | None = None) -> str:
    return run(["ip", *(["-n", netns] if netns else []), *args])


def nft(script: str, netns: str | None = None) -> str:
    """Run an nft script, in `netns` if given (`ip netns exec` enters it for nft)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return run([*prefix, "nft", "-f", "-"], stdin=script)


def sysctl(key: str, value: str, netns: str | None = None) -> None:
    """Set a sysctl of the namespace (`ip netns exec` mounts its /proc/sys/net view)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    run([*prefix, "sysctl", "-q", "-w", f"{key}={value}"])


def missing_tools() -> list[str]:
    """What this machine lacks to make the network, as Debian packages name it."""
    return [
        f"`{tool}` (Debian package {package})"
        for tool, package in _TOOLS.items()
        if shutil.which(tool) is None
    ]


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def named(prefix: str) -> list[str]:
    """The namespaces whose names start with `prefix`."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(path.name for path in NETNS_DIR.iterdir() if path.name.startswith(prefix))


def add(name: str) -> None:
    """A new, empty namespace with `lo` up; one left by an earlier run is replaced."""
    delete(name)
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete(name: str) -> None:
    if exists(name):
        ip("netns", "delete", name)


def link_exists(name: str, netns: str | None = None) -> bool:
    try:
        ip("link", "show", "dev", name, netns=netns)
    except NetworkError:
        return False
    return True


def setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWNET) failed")


def opened(name: str) -> int:
    """A descriptor of the namespace for setns; the caller closes it."""
    return os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)


def entering(
    fd: int, then: Callable[[], None] | None = None, resolv_conf: Path | None = None
) -> Callable[[], None]:
    """What a child runs between fork and exec to join the namespace `fd` holds; with
    `resolv_conf`, the child also gets a mount namespace of its own in which that file is
    /etc/resolv.conf (as `ip netns exec` does with /etc/netns/NAME/), so its resolver asks the
    cluster's DNS while the machine's own file stays as it is."""
    source = bytes(resolv_conf) if resolv_conf is not None else None

    def enter() -> None:
        setns(fd)
        if source is not None:
            _bind_resolv_conf(source)
        if then is not None:
            then()

    return enter


def _bind_resolv_conf(source: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    # Mounts made here stay here: the machine's mounts still reach in, none goes out.
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
        raise OSError(ctypes.get_errno(), "making / a slave mount failed")
    if libc.mount(source, b"/etc/resolv.conf", None, _MS_BIND, None) != 0:
        raise OSError(ctypes.get_errno(), "bind-mounting the pod's resolv.conf failed")
