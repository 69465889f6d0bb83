"""AWS on this machine: moto's server mode on 127.0.0.1, which boto3 speaks to as to AWS."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from moto.server import ThreadedMotoServer

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until

REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return env_for(self.endpoint)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_argv(port: int, state_dir: Path) -> list[str]:
    """moto's server on loopback; the folder names the owner, so `down` can find a stray."""
    return [sys.executable, "-m", "ferry_local.aws", f"--port={port}", f"--state-dir={state_dir}"]


def health_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/moto-api/"


def env_for(endpoint: str) -> dict[str, str]:
    """What a boto3 client (or a child process) needs to reach moto at `endpoint` and no other."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


@contextmanager
def moto_server(log: Path, port: int | None = None) -> Iterator[MotoServer]:
    """A moto server for the length of a `with` block, tied to this process."""
    port = port or _free_port()
    process = processes.spawn(server_argv(port, log.parent), log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and healthy(health_url(port)),
            timeout=60,
            what=f"moto server on {endpoint} (log: {log})",
        )
        yield MotoServer(endpoint, process)
    finally:
        processes.stop_group(process, grace=5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferry_local.aws")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    # moto's own server, in-process; it serves until this process is told to stop.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"moto serving on 127.0.0.1:{args.port} for {args.state_dir}", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
