"""Startup, liveness and readiness probes, run for real against the pod's address.

The probe spec is parsed once (named ports resolved against the container's ports); a
`Threshold` turns single attempts into the probe's result as the kubelet does: it flips to
success after successThreshold successes in a row and to failure after failureThreshold
failures in a row. The kubelet's defaults apply to every field left out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from ferry_local.agent.env import ContainerConfigError

_HTTP_OK_LOW, _HTTP_OK_HIGH = 200, 400


@dataclass(frozen=True)
class HttpGet:
    port: int
    path: str = "/"
    scheme: str = "HTTP"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TcpSocket:
    port: int
    host: str | None = None


@dataclass(frozen=True)
class Exec:
    command: tuple[str, ...]


Action = HttpGet | TcpSocket | Exec


@dataclass(frozen=True)
class Probe:
    action: Action
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def resolve_port(port: int | str, container: Mapping[str, Any]) -> int:
    """A probe's or hook's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.get("ports") or ():
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ContainerConfigError(f'container "{container.get("name")}" has no port named "{port}"')


def parse_action(raw: Mapping[str, Any], container: Mapping[str, Any]) -> Action:
    """The action of a probe or lifecycle hook."""
    if (http := raw.get("httpGet")) is not None:
        return HttpGet(
            port=resolve_port(http["port"], container),
            path=http.get("path") or "/",
            scheme=http.get("scheme", "HTTP"),
            host=http.get("host") or None,
            headers=tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or ()),
        )
    if (tcp := raw.get("tcpSocket")) is not None:
        return TcpSocket(resolve_port(tcp["port"], container), tcp.get("host") or None)
    if (command := raw.get("exec")) is not None:
        return Exec(tuple(command.get("command") or ()))
    raise ContainerConfigError(
        f'container "{container.get("name")}": only httpGet, tcpSocket and exec actions run '
        f"locally, not {sorted(raw)}"
    )


def parse_probe(raw: Mapping[str, Any], container: Mapping[str, Any]) -> Probe:
    return Probe(
        action=parse_action(raw, container),
        initial_delay=float(raw.get("initialDelaySeconds", 0)),
        period=float(raw.get("periodSeconds", 10)),
        timeout=float(raw.get("timeoutSeconds", 1)),
        success_threshold=int(raw.get("successThreshold", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
    )


class Threshold:
    """The probe's result from its attempts so far."""

    def __init__(self, probe: Probe, initial: bool) -> None:
        self.probe = probe
        self.result = initial
        self._streak = 0
        self._streak_ok = initial

    @property
    def failed(self) -> bool:
        """failureThreshold attempts in a row failed (a startup probe that gave up)."""
        return not self._streak_ok and self._streak >= self.probe.failure_threshold

    def observe(self, ok: bool) -> bool:
        if ok == self._streak_ok:
            self._streak += 1
        else:
            self._streak_ok, self._streak = ok, 1
        needed = self.probe.success_threshold if ok else self.probe.failure_threshold
        if self._streak >= needed:
            self.result = ok
        return self.result


# Runs an exec action in the container's environment; True when it exits 0 within the timeout.
ExecRunner = Callable[[tuple[str, ...], float], Awaitable[bool]]


class Prober:
    """Attempts of one container's probes and hooks: HTTP and TCP to the pod's address."""

    def __init__(self, session: aiohttp.ClientSession, pod_ip: str, run_exec: ExecRunner) -> None:
        self.session = session
        self.pod_ip = pod_ip
        self.run_exec = run_exec

    async def attempt(self, action: Action, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await self._attempt(action, timeout)
        # ValueError: what aiohttp refuses to send (a header value with a line break, a path that
        # is no URL); the kubelet's probe fails on those too.
        except (TimeoutError, OSError, ValueError, aiohttp.ClientError):
            return False

    async def _attempt(self, action: Action, timeout: float) -> bool:
        if isinstance(action, HttpGet):
            url = f"{action.scheme.lower()}://{action.host or self.pod_ip}:{action.port}"
            async with self.session.get(
                url + (action.path if action.path.startswith("/") else "/" + action.path),
                headers=dict(action.headers),
                allow_redirects=False,
                ssl=False,  # the kubelet does not verify a probe's certificate either
            ) as response:
                return _HTTP_OK_LOW <= response.status < _HTTP_OK_HIGH
        if isinstance(action, TcpSocket):
            _reader, writer = await asyncio.open_connection(action.host or self.pod_ip, action.port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return await self.run_exec(action.command, timeout)

    async def watch(
        self, probe: Probe, threshold: Threshold, report: Callable[[bool], None]
    ) -> None:
        """Probe every period until cancelled, reporting the result after each attempt."""
        await asyncio.sleep(probe.initial_delay)
        while True:
            report(threshold.observe(await self.attempt(probe.action, probe.timeout)))
            await asyncio.sleep(probe.period)
