"""The runtime's HTTP server: POST / or /predict with JSON, GET /healthz; errors are JSON too."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ferry.runtime.errors import PredictorError
from ferry.runtime.predictor import Predictor

log = logging.getLogger("ferry.runtime")

PREDICTOR: web.AppKey[Predictor | None] = web.AppKey("predictor", Predictor)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **details: Any) -> web.Response:
    return web.json_response({"error": message, **details}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON with its status; none takes the server down."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 - redirects and the like pass through
            raise
        return error(exc.status, exc.reason)


async def predict(request: web.Request) -> web.Response:
    predictor = request.app[PREDICTOR]
    if predictor is None:
        return error(503, "the model is still loading")
    try:
        payload = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"the body is not valid JSON: {exc}")
    try:
        result = await predictor.predict(payload)
    except PredictorError as exc:
        return error(exc.status, str(exc))
    except Exception as exc:  # a failing prediction must not end the server
        log.exception("predict failed")
        return error(500, "predict failed", type=type(exc).__name__, detail=str(exc))
    try:
        body = json.dumps(result)
    except (TypeError, ValueError) as exc:
        return error(500, f"the prediction is not JSON-serialisable: {exc}")
    return web.Response(text=body, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    if request.app[PREDICTOR] is None:
        return web.json_response({"ready": False}, status=503)
    return web.json_response({"ready": True})


def make_app(max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes, middlewares=[json_errors])
    app[PREDICTOR] = None
    app.add_routes(
        [web.post("/", predict), web.post("/predict", predict), web.get("/healthz", healthz)]
    )
    return app
