"""The Python work ferry-proxy does per small request, in instructions counted by callgrind.

    .venv/bin/python bench/proxy/instructions.py [--baseline DIR] [--requests 100000]

On a shared machine the rate of a saturated proxy moves by several per cent between runs; the
instructions a request costs do not. This drives the proxy's client and upstream connections
in-process, with transports that swallow what is written to them, through `--requests` GET
requests answered with a small JSON body (what bench/proxy/run.py sends), under valgrind's
callgrind, and prints the instructions per request: the difference between a run of 5,000 and
one of 5,000 + `--requests`, so that start-up and imports cancel out. With `--baseline DIR` it
does the same for the proxy of another source tree (its operator/ directory on PYTHONPATH).
The kernel's and uvloop's share of a request (the socket calls) is not in it. Installs valgrind
from Debian if missing. PYTHONHASHSEED is fixed, so a run repeats to the instruction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WARM_UP = 5000
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n"
    b'{"prediction":[0.1,0.9]}'
)


class Swallow:
    """A transport that takes everything and never pushes back."""

    def write(self, data: bytes) -> None:
        """Dropped."""

    def close(self) -> None:
        """Nothing to close."""

    def abort(self) -> None:
        """Nothing to abort."""

    def write_eof(self) -> None:
        """Nothing to end."""

    def pause_reading(self) -> None:
        """Nothing to pause."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def is_closing(self) -> bool:
        return False


def drive(count: int) -> None:
    """Pass `count` requests through the proxy's connections (imports from PYTHONPATH)."""
    from ferry.proxy.config import ProxyConfig  # noqa: PLC0415 - the tree under test
    from ferry.proxy.server import ClientConnection, Proxy  # noqa: PLC0415
    from ferry.proxy.upstream import UpstreamConnection  # noqa: PLC0415

    loop = asyncio.new_event_loop()
    proxy = Proxy(ProxyConfig(max_concurrency=64, max_queue_length=64), loop)
    client = ClientConnection(proxy)
    client.connection_made(Swallow())  # type: ignore[arg-type]
    upstream = UpstreamConnection(proxy.pool)
    upstream.connection_made(Swallow())  # type: ignore[arg-type]
    proxy.pool.put(upstream)
    for _ in range(count):
        client.data_received(REQUEST)
        upstream.data_received(RESPONSE)
    assert proxy.stats.served == count, "every request went through"


def ensure_valgrind() -> str:
    found = shutil.which("valgrind")
    if found:
        return found
    print("installing valgrind from Debian ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True)
    return shutil.which("valgrind") or sys.exit("valgrind did not install")


def instructions(valgrind: str, source: Path, count: int) -> int:
    argv = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += [sys.executable, __file__, f"--drive={count}"]
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    run = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    collected = re.search(r"Collected : ([\d,]+)", run.stderr)
    if collected is None:
        raise RuntimeError(f"callgrind reported no count:\n{run.stderr}")
    return int(collected.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a source tree whose proxy to compare")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.drive is not None:
        drive(args.drive)
        return 0
    valgrind = ensure_valgrind()
    trees = {"this tree": ROOT / "operator"}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve() / "operator", **trees}
    counted = {}
    for name, source in trees.items():
        base = instructions(valgrind, source, WARM_UP)
        total = instructions(valgrind, source, WARM_UP + args.requests)
        counted[name] = (total - base) / args.requests
        print(f"{name}: {counted[name]:,.0f} instructions per request", file=sys.stderr)
    print()
    print(f"Python path of a small GET through ferry-proxy, {args.requests:,} requests (callgrind)")
    for name, per_request in counted.items():
        print(f"{name:12} {per_request:10,.0f} instructions per request")
    if "baseline" in counted:
        ratio = counted["this tree"] / counted["baseline"]
        print(f"this tree / baseline: {ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
