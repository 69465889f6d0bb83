"""AWS on this machine: moto's server mode on 127.0.0.1, which boto3 speaks to as to AWS."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferry.local import processes
from ferry.local.health import healthy
from ferry.local.wait import wait_until

REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """What a boto3 client (or a child process) needs to reach this server and no other."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def moto_server(log: Path, port: int | None = None) -> Iterator[MotoServer]:
    """A moto server for the length of a `with` block, tied to this process."""
    port = port or _free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = processes.spawn(argv, log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is None and healthy(f"{endpoint}/moto-api/"),
            timeout=60,
            what=f"moto server on {endpoint} (log: {log})",
        )
        yield MotoServer(endpoint, process)
    finally:
        processes.stop_group(process, grace=5.0)
