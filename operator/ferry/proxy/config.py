"""The proxy's settings: command-line flags, each falling back to a FERRY_* environment variable.

The sidecar is configured through its container's env, so every flag has a variable; a flag given
on the command line wins.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ferry.proxy.http import MAX_HEAD_BYTES


@dataclass(frozen=True)
class ProxyConfig:
    listen_host: str = "0.0.0.0"  # noqa: S104 - a sidecar serves the pod's IP
    port: int = 8000
    admin_port: int = 8001
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 8080
    max_concurrency: int = 4
    max_queue_length: int = 100
    timeout_seconds: float = 60.0
    readiness_path: str | None = None
    max_body_bytes: int = 10 * 2**20
    max_buffered_bytes: int = 128 * 2**20
    """Request bytes the proxy holds at once, over every connection: heads and bodies being
    received (a body counts whole from its head on, as its Content-Length announces it),
    queued and in flight. Half the proxy container's 256 MiB memory limit, which leaves room
    for the interpreter (about 30 MiB), the responses on their way out, and the allocator's
    slack."""
    read_timeout: float = 15.0
    """Seconds a client has to send a whole request once it has started one."""
    idle_timeout: float = 75.0
    """Seconds a kept-alive client connection may sit unused; above common load balancers' 60 s,
    so the client side closes first and never races a request into a closing socket."""
    upstream_idle_timeout: float = 4.0
    """Seconds a pooled upstream connection may sit unused; below the 5 s keep-alive of common
    Python servers (uvicorn, gunicorn), so the proxy closes first."""
    grace_period: float = 30.0
    drain_delay: float = 0.0
    """Seconds to keep accepting new connections after SIGTERM, while endpoints catch up."""
    retry_after: int = 1
    windows: tuple[int, ...] = (60, 6)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def _windows(text: str) -> tuple[int, ...]:
    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 60,6, got {text!r}") from None


def parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    defaults = ProxyConfig()
    parser = argparse.ArgumentParser(
        prog="ferry-proxy",
        description="Ferry's sidecar: limits, queues and counts requests to the predictor.",
    )

    def option(
        flag: str, variable: str, kind: Callable[[str], object], help_text: str, default: object
    ) -> None:
        # argparse runs a string default through `type`, so a bad variable is reported like a
        # bad flag.
        parser.add_argument(
            flag,
            type=kind,
            default=env.get(variable) or default,
            help=f"{help_text} (env {variable}; default %(default)s)",
        )

    # FERRY_HOST is the pod's own address where pods share one network (the local node agent):
    # serve on it and find the predictor there. In Kubernetes it is unset.
    pod_host = env.get("FERRY_HOST")
    option(
        "--listen-host",
        "FERRY_LISTEN_HOST",
        str,
        "address to serve",
        pod_host or defaults.listen_host,
    )
    option("--port", "FERRY_PORT", int, "port clients call", defaults.port)
    option(
        "--admin-port",
        "FERRY_ADMIN_PORT",
        int,
        "port of /ready, /healthz, /stats and /metrics",
        defaults.admin_port,
    )
    option(
        "--upstream-host",
        "FERRY_UPSTREAM_HOST",
        str,
        "predictor address",
        pod_host or defaults.upstream_host,
    )
    option("--upstream-port", "FERRY_UPSTREAM_PORT", int, "predictor port", defaults.upstream_port)
    option(
        "--max-concurrency",
        "FERRY_MAX_CONCURRENCY",
        _positive_int,
        "requests the predictor serves at once",
        defaults.max_concurrency,
    )
    option(
        "--max-queue-length",
        "FERRY_MAX_QUEUE_LENGTH",
        _non_negative_int,
        "requests waiting beyond those; more get 503",
        defaults.max_queue_length,
    )
    option(
        "--timeout-seconds",
        "FERRY_TIMEOUT_SECONDS",
        _positive_float,
        "seconds from a request's arrival to 504",
        defaults.timeout_seconds,
    )
    option(
        "--readiness-path",
        "FERRY_READINESS_PATH",
        str,
        "predictor path that answers 2xx when ready; unset: a TCP connect",
        defaults.readiness_path,
    )
    option(
        "--max-body-bytes",
        "FERRY_MAX_BODY_BYTES",
        _non_negative_int,
        "largest request body; larger get 413",
        defaults.max_body_bytes,
    )
    option(
        "--max-buffered-bytes",
        "FERRY_MAX_BUFFERED_BYTES",
        _positive_int,
        "request bytes held at once over all connections; beyond them 503",
        defaults.max_buffered_bytes,
    )
    option(
        "--read-timeout",
        "FERRY_READ_TIMEOUT",
        _positive_float,
        "seconds a client has to send a whole request",
        defaults.read_timeout,
    )
    option(
        "--idle-timeout",
        "FERRY_IDLE_TIMEOUT",
        _positive_float,
        "seconds a kept-alive client connection may sit idle",
        defaults.idle_timeout,
    )
    option(
        "--upstream-idle-timeout",
        "FERRY_UPSTREAM_IDLE_TIMEOUT",
        _positive_float,
        "seconds a pooled predictor connection may sit idle",
        defaults.upstream_idle_timeout,
    )
    option(
        "--grace-period",
        "FERRY_GRACE_PERIOD",
        _non_negative_float,
        "seconds after SIGTERM to finish accepted requests",
        defaults.grace_period,
    )
    option(
        "--drain-delay",
        "FERRY_DRAIN_DELAY",
        _non_negative_float,
        "seconds after SIGTERM to keep accepting connections",
        defaults.drain_delay,
    )
    option(
        "--retry-after",
        "FERRY_RETRY_AFTER",
        _non_negative_int,
        "Retry-After seconds on 503",
        defaults.retry_after,
    )
    option(
        "--windows",
        "FERRY_STATS_WINDOWS",
        _windows,
        "averaging windows of /stats, in seconds",
        defaults.windows,
    )
    return parser


def load(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ProxyConfig:
    options = parser(environ)
    args = options.parse_args(argv)
    largest_request = args.max_body_bytes + MAX_HEAD_BYTES
    if args.max_buffered_bytes < largest_request:
        options.error(
            f"--max-buffered-bytes ({args.max_buffered_bytes}) must hold the largest request,"
            f" --max-body-bytes + {MAX_HEAD_BYTES} of head ({largest_request})"
        )
    return ProxyConfig(**vars(args))
