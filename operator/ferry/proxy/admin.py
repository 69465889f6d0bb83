"""The admin port: readiness, liveness, the autoscaler's /stats and Prometheus' /metrics.

Kept off the serving port so no path of the predictor's API is ever shadowed; its traffic is a
few probes and scrapes a second, so plain asyncio streams serve it.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import CONTENT_TYPE_LATEST

from ferry.proxy.http import BadRequestError, error_body, parse_request_head, simple_response
from ferry.proxy.metrics import registry_for, render
from ferry.proxy.server import Proxy
from ferry.proxy.upstream import upstream_ready
from ferry.wire.stats import encode

_PROBE_TIMEOUT = 1.0
# How long a kept-open connection may wait for its next request: longer than the operator's
# scraper keeps an idle connection (ferry.adapters.stats), so the client is the one to close and
# never sends a request into a connection this end is closing.
KEEP_ALIVE_TIMEOUT = 30.0


class Admin:
    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._registry = registry_for(proxy.stats)

    async def start(self) -> asyncio.Server:
        config = self._proxy.config
        return await asyncio.start_server(self._handle, config.listen_host, config.admin_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Connections are kept open: the operator scrapes every pod each tick, and a new TCP
        # connection per scrape costs both ends more than the answer does.
        wait = self._proxy.config.read_timeout
        try:
            keep_alive = True
            while keep_alive:
                async with asyncio.timeout(wait):
                    raw = await reader.readuntil(b"\r\n\r\n")
                head = parse_request_head(raw[:-4])
                # A request body is never read here, so it would be taken for the next request.
                keep_alive = head.keep_alive and not head.chunked and head.content_length == 0
                if head.method not in (b"GET", b"HEAD"):
                    keep_alive = False
                    response = simple_response(405, error_body("use GET"), close=True)
                else:
                    path = head.target.split(b"?", 1)[0]
                    response = await self._route(path, close=not keep_alive)
                if head.method == b"HEAD":
                    # Content-Length stays that of the GET; a body would be read as a request.
                    response = response[: response.index(b"\r\n\r\n") + 4]
                writer.write(response)
                await writer.drain()
                wait = KEEP_ALIVE_TIMEOUT
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            BadRequestError,
            ConnectionError,
            TimeoutError,
        ):
            pass
        finally:
            writer.close()

    async def _route(self, path: bytes, *, close: bool) -> bytes:
        proxy = self._proxy
        if path == b"/stats":
            body = encode(proxy.stats.snapshot(draining=proxy.draining))
            return simple_response(200, body, close=close)
        if path == b"/metrics":
            return simple_response(
                200, render(self._registry), content_type=CONTENT_TYPE_LATEST.encode(), close=close
            )
        if path == b"/ready":
            config = proxy.config
            ready = not proxy.draining and await upstream_ready(
                config.upstream_host, config.upstream_port, config.readiness_path, _PROBE_TIMEOUT
            )
            body = json.dumps({"ready": ready, "draining": proxy.draining}).encode()
            return simple_response(200 if ready else 503, body, close=close)
        if path == b"/drained":
            # The predictor container's preStop hook: it returns once the proxy has finished every
            # request it accepted, so Kubernetes stops the predictor only after that.
            await proxy.drained.wait()
            return simple_response(200, b'{"drained":true}', close=True)
        if path == b"/healthz":
            return simple_response(200, b'{"alive":true}', close=close)
        return simple_response(404, error_body("no such admin path"), close=close)
