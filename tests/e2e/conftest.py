"""Data-plane fixtures: the proxy, the runtime and a controllable upstream as real processes.

Every process listens on 127.0.0.1 on ports free at start, logs into the test's tmp_path, and is
tied to pytest (PR_SET_PDEATHSIG), so a killed run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on now (all stay bound until every one is chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(sock.getsockname()[1])
    return ports


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def exchange(proxy: ProxyProcess, raw: bytes, *, send_eof: bool = False) -> bytes:
    """Send raw bytes; everything the proxy answers until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(raw)
    if send_eof:
        writer.write_eof()
    try:
        async with asyncio.timeout(20):
            return await reader.read()
    finally:
        writer.close()


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        return await response.json(content_type=None)


async def post(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url) as response:
        response.raise_for_status()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with no connection limit of its own, so the proxy's limits are what bites."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield client


def started(argv: list[str], log: Path, health: str, env: dict[str, str] | None = None) -> Any:
    process = processes.spawn(argv, log, env=env)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{argv[0]} exited with {process.returncode}; see {log}")
        return healthy(health)

    try:
        wait_until(up, timeout=30, what=f"{Path(argv[0]).name} answering {health} (log: {log})")
    except BaseException:
        processes.stop_group(process, grace=2)
        raise
    return process


@dataclass
class Upstream:
    port: int
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def release(self) -> None:
        """Let every request now held in /hold answer."""
        http("POST", self.url("/control/release"))

    def state(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(http("GET", self.url("/control/state"))[1])
        return result

    def set_ready(self, ready: bool) -> None:
        http("POST", self.url(f"/control/ready?ready={int(ready)}"))


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    (port,) = free_ports(1)
    argv = [sys.executable, str(HERE / "upstream.py"), str(port)]
    process = started(argv, tmp_path / "upstream.log", f"http://{LOOPBACK}:{port}/healthz")
    yield Upstream(port, process)
    processes.stop_group(process, grace=5)


@dataclass
class ProxyProcess:
    process: subprocess.Popen[bytes]
    port: int
    admin_port: int
    log: Path
    flags: dict[str, object] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def admin(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}{path}"

    def stats(self) -> dict[str, Any]:
        status, body = http("GET", self.admin("/stats"))
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def metrics(self) -> str:
        return http("GET", self.admin("/metrics"))[1].decode()


StartProxy = Callable[..., ProxyProcess]


@pytest.fixture
def start_proxy(tmp_path: Path, upstream: Upstream) -> Iterator[StartProxy]:
    """Starts ferry-proxy in front of `upstream`; keyword arguments become its flags."""
    running: list[ProxyProcess] = []

    def start(**flags: object) -> ProxyProcess:
        port, admin_port = free_ports(2)
        flags = {"upstream_port": upstream.port, **flags}
        argv = [
            str(BIN / "ferry-proxy"),
            f"--listen-host={LOOPBACK}",
            f"--port={port}",
            f"--admin-port={admin_port}",
            *(f"--{name.replace('_', '-')}={value}" for name, value in flags.items()),
        ]
        log = tmp_path / f"proxy-{len(running)}.log"
        process = started(argv, log, f"http://{LOOPBACK}:{admin_port}/healthz")
        proxy = ProxyProcess(process, port, admin_port, log, flags)
        running.append(proxy)
        return proxy

    yield start
    for proxy in running:
        processes.stop_group(proxy.process, grace=5)


def predictor_module(directory: Path, source: str) -> None:
    (directory / "predictors.py").write_text(source)


@dataclass
class RuntimeProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"


StartRuntime = Callable[..., RuntimeProcess]


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    """Starts ferry-runtime serving `spec` from tmp_path; waits until its port answers."""
    running: list[RuntimeProcess] = []

    def start(spec: str, *args: str) -> RuntimeProcess:
        (port,) = free_ports(1)
        argv = [
            str(BIN / "ferry-runtime"),
            spec,
            f"--host={LOOPBACK}",
            f"--port={port}",
            f"--path={tmp_path}",
            f"--model-dir={tmp_path}",
            *args,
        ]
        log = tmp_path / f"runtime-{len(running)}.log"
        process = processes.spawn(argv, log)
        runtime = RuntimeProcess(process, port, log)
        running.append(runtime)

        def answering() -> bool:
            if process.poll() is not None:
                return True
            with socket.socket() as sock:
                return sock.connect_ex((LOOPBACK, port)) == 0

        wait_until(answering, timeout=30, what=f"ferry-runtime on port {port} (log: {log})")
        return runtime

    yield start
    for runtime in running:
        processes.stop_group(runtime.process, grace=5)
