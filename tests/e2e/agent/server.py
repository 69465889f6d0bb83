"""A tiny HTTP server that pods run on the node agent, as the test image `test.ferry.dev/server`.

    server.py [--port N] [--not-ready] [--fail]

It binds $FERRY_HOST (the pod's own address) where the agent sets it (pods sharing its network),
every address of the pod's own network otherwise. /ready answers 503 with --not-ready, or after
`POST /control/ready?ready=0` (as tests/e2e/upstream.py; `ready=1` turns it back); /slow?s=N
answers after N seconds; /env shows what the process was started with; /stats counts requests.
With --fail, a POST to / or /predict (a prediction) answers 500.
At SIGTERM it stops accepting, lets every request in flight finish, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class State:
    def __init__(self, ready: bool) -> None:
        self.in_flight = 0
        self.total = 0
        self.ready = ready


def app(state: State, fail: bool = False) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/stats":
            return await handler(request)
        state.in_flight += 1
        state.total += 1
        try:
            return await handler(request)
        finally:
            state.in_flight -= 1

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response(
            {"pod": os.environ.get("HOSTNAME"), "version": os.environ.get("VERSION")}
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "1")))
        return web.json_response({"pod": os.environ.get("HOSTNAME"), "slept": True})

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(status=200 if state.ready else 503, text="ready?")

    async def turn(request: web.Request) -> web.Response:
        state.ready = request.query["ready"] == "1"
        return web.Response()

    async def env(_request: web.Request) -> web.Response:
        return web.json_response(
            {"env": dict(os.environ), "argv": sys.argv, "cwd": str(Path.cwd())}
        )

    async def predict(_request: web.Request) -> web.Response:
        if fail:
            return web.json_response({"error": "this predictor fails"}, status=500)
        return web.json_response({"pod": os.environ.get("HOSTNAME")})

    async def show_stats(_request: web.Request) -> web.Response:
        return web.json_response({"in_flight": state.in_flight, "total": state.total})

    application = web.Application(middlewares=[count])
    application.router.add_get("/", hello)
    application.router.add_get("/slow", slow)
    application.router.add_get("/healthz", hello)
    application.router.add_get("/ready", ready)
    application.router.add_post("/control/ready", turn)
    application.router.add_get("/env", env)
    application.router.add_get("/stats", show_stats)
    application.router.add_post("/", predict)
    application.router.add_post("/predict", predict)
    return application


async def serve(port: int, not_ready: bool, fail: bool) -> None:
    state = State(ready=not not_ready)
    runner = web.AppRunner(app(state, fail), access_log=None, shutdown_timeout=60.0)
    await runner.setup()
    # Every address of the pod's own network, or the pod's address where pods share one.
    host = os.environ.get("FERRY_HOST", "0.0.0.0")  # noqa: S104 - a server in a pod serves the pod
    await web.TCPSite(runner, host, port).start()
    print(f"serving on {host}:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(f"SIGTERM with {state.in_flight} requests in flight; draining", flush=True)
    await runner.cleanup()
    print(f"drained; served {state.total}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--not-ready", action="store_true")
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.not_ready, args.fail))


if __name__ == "__main__":
    main()
