"""An HTTP proxy in front of moto that answers chosen AWS requests with AWS's own error
responses: Throttling, SlowDown, AccessDenied, whatever a rule says, for the first N matching
requests or for all of them. Everything else goes through to moto (by way of the stall proxy,
so buckets named `stalled-*` still hang).

Rules are set while it runs, with PUT /_faults (a JSON list) and read back, each with the
number of requests it answered, with GET /_faults. A rule matches on any of: `service` (from
the request's SigV4 credential scope), `action` (Action=… of query-protocol services such as
autoscaling, or the X-Amz-Target of JSON ones), `bucket` (a prefix of the S3 bucket name). A rule
with `stall` never answers what it matches (a hung endpoint) instead of answering an error.

    python -m tests.support.fault_proxy PORT UPSTREAM_URL    (from the repository's root)
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until
from tests.support import stall_proxy
from tests.support.ferry_operator import REPO

CONTROL = "/_faults"
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_JSON_PROTOCOL = "application/x-amz-json"


def _service(request: web.Request) -> str:
    match = _SCOPE.search(request.headers.get("Authorization", ""))
    return match.group(1) if match else ""


def _action(request: web.Request, body: bytes) -> str:
    target = request.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if request.method == "POST" and body:
        return (parse_qs(body.decode(errors="replace")).get("Action") or [""])[0]
    return (parse_qs(request.query_string).get("Action") or [""])[0]


def _bucket(request: web.Request) -> str:
    return request.path.lstrip("/").split("/", 1)[0]


def error_response(
    service: str, status: int, code: str, message: str, json_protocol: bool
) -> web.Response:
    """The error as the service would write it: S3's XML, a JSON protocol's __type, or the
    query protocol's ErrorResponse."""
    if json_protocol:
        body = json.dumps({"__type": code, "message": message})
        return web.Response(status=status, text=body, content_type="application/x-amz-json-1.1")
    if service == "s3":
        xml = (
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>fault</RequestId></Error>"
        )
    else:
        xml = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
    return web.Response(
        status=status, text=f'<?xml version="1.0" encoding="UTF-8"?>{xml}', content_type="text/xml"
    )


@dataclass
class Rule:
    status: int = 0
    code: str = ""
    message: str = "injected by the fault proxy"
    stall: bool = False
    """Never answer: the client waits until its read timeout."""
    service: str | None = None
    action: str | None = None
    bucket: str | None = None
    times: int | None = None
    """Answer this many matching requests, then let them through; None: all of them."""
    hits: int = 0

    def matches(self, service: str, action: str, bucket: str) -> bool:
        return (
            (self.times is None or self.hits < self.times)
            and self.service in (None, service)
            and self.action in (None, action)
            and (self.bucket is None or (service == "s3" and bucket.startswith(self.bucket)))
        )


def app(upstream: str) -> web.Application:
    rules: list[Rule] = []

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == CONTROL:
            if request.method == "PUT":
                rules[:] = [Rule(**raw) for raw in await request.json()]
            return web.json_response([vars(rule) for rule in rules])
        body = await request.read()  # aiohttp keeps it for the forwarding handler
        service = _service(request)
        action, bucket = _action(request, body), _bucket(request)
        for rule in rules:
            if rule.matches(service, action, bucket):
                rule.hits += 1
                if rule.stall:
                    await asyncio.Event().wait()  # until the client gives up and hangs up
                json_protocol = request.headers.get("Content-Type", "").startswith(_JSON_PROTOCOL)
                return error_response(service, rule.status, rule.code, rule.message, json_protocol)
        response: web.StreamResponse = await handler(request)
        return response

    application = stall_proxy.app(upstream)
    application.middlewares.append(faults)
    return application


@dataclass(frozen=True)
class FaultProxy:
    url: str

    def _call(self, method: str, rules: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        data = json.dumps(rules).encode() if rules is not None else None
        request = urllib.request.Request(f"{self.url}{CONTROL}", data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310 - loopback
            answered: list[dict[str, Any]] = json.loads(reply.read())
            return answered

    def inject(self, *rules: dict[str, Any]) -> None:
        """Replace the rules (none: every request goes through)."""
        self._call("PUT", list(rules))

    def rules(self) -> list[dict[str, Any]]:
        """The rules, each with `hits`: how many requests it answered."""
        return self._call("GET")


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running(upstream: str, log: Path, port: int | None = None) -> Iterator[FaultProxy]:
    """This proxy as a process in front of `upstream`, for a `with` block; on `port`, or a free
    one."""
    port = port or free_port()
    argv = [sys.executable, "-m", "tests.support.fault_proxy", str(port), upstream]
    proxy = processes.spawn(argv, log, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(f"{url}{CONTROL}"), timeout=30, what=f"the fault proxy ({log})")
        yield FaultProxy(url)
    finally:
        processes.stop_group(proxy, grace=2)


if __name__ == "__main__":
    web.run_app(app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None)
