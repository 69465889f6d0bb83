"""A predictor that is any HTTP server: this one is Python's standard library and nothing else.

What Ferry asks of a predictor container, all of which this file does:
- serve HTTP on the port in FERRY_PORT (the operator sets it from spec.predictor.port), on every
  address, or on FERRY_HOST when that is set: the local environment's pods share this machine's
  network, each on an address of its own;
- answer spec.predictor.readinessPath (here GET /healthz) with 200 once it can serve: the proxy
  sidecar is ready only while it does;
- exit on SIGTERM; by then the pod's preStop hook has waited until the proxy answered every
  request it forwarded.

The "model" echoes: POST a JSON body to / (or /predict) and get it back with the API and pod
that answered. `delayMs` in a JSON object body, or ECHO_DELAY_MS, makes each answer take that
long, standing in for a model's work (the load example uses it to make replicas busy).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 1 << 20
MAX_DELAY_MS = 10_000
USAGE = 'POST a JSON body, e.g. {"text": "hello", "delayMs": 50}'


class BadRequestError(ValueError):
    pass


def delay_ms(payload: Any, default: int) -> int:
    """How long this answer takes: the body's `delayMs`, else the default, within bounds."""
    value = payload.get("delayMs", default) if isinstance(payload, dict) else default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY_MS:
        raise BadRequestError(f"delayMs must be a whole number from 0 to {MAX_DELAY_MS}")
    return value


class EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the proxy's upstream connections alive between requests.
    protocol_version = "HTTP/1.1"
    # Seconds a kept-alive connection may sit idle before its thread lets it go.
    timeout = 120
    # Each answer is written as its head, then its body: with Nagle's algorithm on, the body
    # would wait for the proxy's delayed ACK of the head, 40 ms on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "echo/0.1"
    default_delay_ms = 0

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.reply(HTTPStatus.OK, {"ready": True})
        else:
            self.reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; {USAGE}"})

    def do_POST(self) -> None:
        if self.path not in ("/", "/predict"):
            self.reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; {USAGE}"})
            return
        try:
            payload = json.loads(self.body())
            pause = delay_ms(payload, self.default_delay_ms)
        except BadRequestError as error:
            self.reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            return
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            self.reply(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON; {USAGE}"})
            return
        time.sleep(pause / 1000)
        self.reply(
            HTTPStatus.OK,
            {
                "echo": payload,
                "api": os.environ.get("FERRY_API", ""),
                "pod": os.environ.get("HOSTNAME", ""),
                "delayMs": pause,
            },
        )

    def body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequestError("send the body with a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            # The body stays unread, so the connection cannot carry another request.
            self.close_connection = True
            raise BadRequestError(f"the body is over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(int(length))

    def reply(self, status: HTTPStatus, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request would drown the pod's log under load; errors still get logged.
        return


def settings(env: dict[str, str]) -> tuple[str, int, int]:
    """(host, port, default delay) from the environment, or SystemExit naming the bad one."""
    host = env.get("FERRY_HOST") or "0.0.0.0"  # noqa: S104 - a server in a pod serves the pod
    try:
        port = int(env.get("FERRY_PORT") or "8080")
        default_delay = delay_ms({}, int(env.get("ECHO_DELAY_MS") or "0"))
    except ValueError as error:
        raise SystemExit(f"echo: FERRY_PORT and ECHO_DELAY_MS must be numbers ({error})") from None
    return host, port, default_delay


def main() -> int:
    host, port, default_delay = settings(dict(os.environ))
    EchoHandler.default_delay_ms = default_delay
    server = ThreadingHTTPServer((host, port), EchoHandler)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # serve_forever runs in a thread so the main thread is free to call shutdown(), which
    # waits for the serving loop to return.
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"echo: serving on {host}:{port} (default delay {default_delay} ms)", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    print("echo: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
