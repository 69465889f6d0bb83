"""A deliberately controllable predictor for the data-plane tests, run as its own process.

    python upstream.py PORT

/hold answers only once /control/release is called, so a test decides exactly how long requests
stay in flight; /control/state reports what the upstream itself saw (its own concurrency), so a
test can check the proxy's limits from the other side.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


class Upstream:
    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.total = 0
        self.ready = True
        self.release = asyncio.Event()

    async def hold(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.total += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        return web.json_response({"held": True, "bytes": len(body)})

    async def sleep(self, request: web.Request) -> web.Response:
        self.total += 1
        await asyncio.sleep(float(request.query.get("s", "0.1")))
        return web.json_response({"slept": float(request.query.get("s", "0.1"))})

    async def echo(self, request: web.Request) -> web.Response:
        self.total += 1
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"status": True}, status=int(request.match_info["code"]))

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(int(request.query.get("n", "5"))):
            await response.write(b"chunk-%d;" % index)
        await response.write_eof()
        return response

    async def drop(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def set_ready(self, request: web.Request) -> web.Response:
        self.ready = request.query["ready"] == "1"
        return web.Response()

    async def do_release(self, _request: web.Request) -> web.Response:
        self.release.set()
        self.release = asyncio.Event()
        return web.Response()

    async def state(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"active": self.active, "maxActive": self.max_active, "total": self.total}
        )

    async def reset(self, _request: web.Request) -> web.Response:
        self.max_active = self.active
        self.total = 0
        return web.Response()


def app() -> web.Application:
    upstream = Upstream()
    application = web.Application(client_max_size=64 * 2**20)
    application.add_routes(
        [
            web.route("*", "/hold", upstream.hold),
            web.route("*", "/sleep", upstream.sleep),
            web.post("/echo", upstream.echo),
            web.get("/status/{code}", upstream.status),
            web.get("/chunked", upstream.chunked),
            web.get("/drop", upstream.drop),
            web.get("/healthz", upstream.healthz),
            web.post("/control/ready", upstream.set_ready),
            web.post("/control/release", upstream.do_release),
            web.get("/control/state", upstream.state),
            web.post("/control/reset", upstream.reset),
        ]
    )
    return application


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)
