"""An HTTP proxy in front of moto that never answers requests for buckets named `stalled-*` (a
stand-in for one API's AWS endpoint hanging) and can add a round trip's worth of delay to every
other request (AWS is milliseconds away; moto on loopback is not).

    python tests/support/stall_proxy.py PORT UPSTREAM_URL [DELAY_MS]
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until

STALLED = "/stalled-"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def app(upstream: str, delay: float = 0.0) -> web.Application:
    session: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(STALLED):
            await asyncio.Event().wait()  # until the client gives up and the handler is cancelled
        body = await request.read()
        await asyncio.sleep(delay)  # the network latency this stand-in adds on purpose
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session["client"].request(
            request.method, upstream + request.path_qs, headers=headers, data=body
        ) as reply:
            payload = await reply.read()
            out = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=reply.status, body=payload, headers=out)

    async def start(_: web.Application) -> None:
        session["client"] = aiohttp.ClientSession()

    async def stop(_: web.Application) -> None:
        await session["client"].close()

    application = web.Application(client_max_size=64 * 2**20)
    application.router.add_route("*", "/{tail:.*}", forward)
    application.on_startup.append(start)
    application.on_cleanup.append(stop)
    return application


@contextmanager
def running(upstream: str, log: Path, delay_ms: float = 0.0) -> Iterator[str]:
    """This proxy as a process in front of `upstream`, for a `with` block; yields its URL."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, __file__, str(port), upstream, str(delay_ms)]
    proxy = processes.spawn(argv, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(f"{url}/moto-api/"), timeout=30, what=f"the proxy ({log})")
        yield url
    finally:
        processes.stop_group(proxy, grace=2)


if __name__ == "__main__":
    delay_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    web.run_app(
        app(sys.argv[2], delay_ms / 1000), host="127.0.0.1", port=int(sys.argv[1]), print=None
    )
