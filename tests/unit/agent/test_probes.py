"""Probes: parsed with the kubelet's defaults, thresholds turn attempts into results."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import closing
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ferry_local.agent.env import ContainerConfigError
from ferry_local.agent.probes import (
    Exec,
    HttpGet,
    Probe,
    Prober,
    TcpSocket,
    Threshold,
    parse_action,
    parse_probe,
    resolve_port,
)

CONTAINER = {"name": "proxy", "ports": [{"name": "admin", "containerPort": 8889}]}


def test_a_probe_takes_the_kubelets_defaults() -> None:
    assert parse_probe({"tcpSocket": {"port": 80}}, CONTAINER) == Probe(
        TcpSocket(80),
        initial_delay=0,
        period=10,
        timeout=1,
        success_threshold=1,
        failure_threshold=3,
    )


def test_named_ports_resolve_against_the_containers_ports() -> None:
    probe = parse_probe(
        {
            "httpGet": {
                "path": "/ready",
                "port": "admin",
                "httpHeaders": [{"name": "X", "value": "1"}],
            },
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
        CONTAINER,
    )
    assert probe.action == HttpGet(8889, "/ready", headers=(("X", "1"),))
    assert (probe.period, probe.failure_threshold) == (2, 1)
    assert resolve_port("8080", CONTAINER) == 8080
    with pytest.raises(ContainerConfigError, match='no port named "web"'):
        resolve_port("web", CONTAINER)


def test_exec_and_unsupported_actions() -> None:
    assert parse_action({"exec": {"command": ["cat", "/ok"]}}, CONTAINER) == Exec(("cat", "/ok"))
    with pytest.raises(ContainerConfigError, match="grpc"):
        parse_action({"grpc": {"port": 9000}}, CONTAINER)


def attempts(threshold: Threshold, results: list[bool]) -> list[bool]:
    return [threshold.observe(ok) for ok in results]


def test_readiness_needs_success_threshold_successes_in_a_row() -> None:
    probe = Probe(TcpSocket(1), success_threshold=2, failure_threshold=2)
    readiness = Threshold(probe, initial=False)
    assert attempts(readiness, [True, False, True, True, False, True, False, False]) == [
        False, False, False, True, True, True, True, False,
    ]  # fmt: skip


def test_liveness_fails_after_failure_threshold_failures_in_a_row() -> None:
    liveness = Threshold(Probe(TcpSocket(1), failure_threshold=3), initial=True)
    assert attempts(liveness, [False, False, True, False, False, False]) == [
        True, True, True, True, True, False,
    ]  # fmt: skip


def test_a_startup_probe_that_gave_up_is_failed_not_just_pending() -> None:
    startup = Threshold(Probe(TcpSocket(1), failure_threshold=2), initial=False)
    startup.observe(False)
    assert not startup.failed
    startup.observe(False)
    assert startup.failed


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def server() -> AsyncIterator[int]:
    async def answer(request: web.Request) -> web.Response:
        status = int(request.match_info["status"])
        headers = {"Location": "/elsewhere"} if status == 302 else {}
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_get("/{status}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.mark.parametrize(("status", "ok"), [(200, True), (302, True), (404, False), (503, False)])
async def test_an_http_probe_succeeds_on_2xx_and_3xx(server: int, status: int, ok: bool) -> None:
    async def no_exec(command: tuple[str, ...], timeout: float) -> bool:
        raise AssertionError("not an exec probe")

    async with aiohttp.ClientSession() as session:
        prober = Prober(session, "127.0.0.1", no_exec)
        assert await prober.attempt(HttpGet(server, f"/{status}"), timeout=2) is ok


async def test_tcp_probes_need_a_listener_and_exec_probes_are_delegated(server: int) -> None:
    ran: list[Any] = []

    async def run_exec(command: tuple[str, ...], timeout: float) -> bool:
        ran.append((command, timeout))
        return True

    async with aiohttp.ClientSession() as session:
        prober = Prober(session, "127.0.0.1", run_exec)
        assert await prober.attempt(TcpSocket(server), timeout=2)
        assert not await prober.attempt(TcpSocket(free_port()), timeout=2)
        assert await prober.attempt(Exec(("true",)), timeout=3)
    assert ran == [(("true",), 3)]


@pytest.mark.parametrize(
    "action",
    [
        HttpGet(0, "/200", headers=(("X-Bad", "line\r\nbreak"),)),
        HttpGet(0, "/200", headers=(("X-Nul", "nul\x00byte"),)),
        HttpGet(0, "/200", host="not a host"),
    ],
    ids=["line-break", "nul", "host"],
)
async def test_a_probe_that_cannot_be_sent_fails_instead_of_raising(
    server: int, action: HttpGet
) -> None:
    async def no_exec(command: tuple[str, ...], timeout: float) -> bool:
        raise AssertionError("not an exec probe")

    async with aiohttp.ClientSession() as session:
        prober = Prober(session, "127.0.0.1", no_exec)
        assert await prober.attempt(dataclasses.replace(action, port=server), timeout=2) is False
