"""Entry point of `ferry-runtime`: answer on the port at once, load the model, then serve it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from ferry.runtime.errors import LoadError
from ferry.runtime.predictor import Predictor
from ferry.runtime.server import PREDICTOR, make_app

log = logging.getLogger("ferry.runtime")


def parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry-runtime", description="Serve a Python predictor class over HTTP with JSON."
    )
    parser.add_argument(
        "predictor",
        nargs="?",
        default=environ.get("FERRY_PREDICTOR"),
        help="module:Class to serve (env FERRY_PREDICTOR)",
    )
    parser.add_argument(
        "--host",
        # FERRY_HOST: the pod's own address where pods share one network (the local node agent).
        default=environ.get("FERRY_RUNTIME_HOST") or environ.get("FERRY_HOST") or "0.0.0.0",  # noqa: S104
    )
    parser.add_argument(
        "--port",
        type=int,
        # FERRY_PORT is what the operator sets on the predictor container: spec.predictor.port.
        default=int(environ.get("FERRY_RUNTIME_PORT") or environ.get("FERRY_PORT") or "8080"),
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(environ.get("FERRY_MODEL_DIR", "/mnt/model")),
        help="passed to the class as model_dir (env FERRY_MODEL_DIR)",
    )
    parser.add_argument(
        "--config",
        default=environ.get("FERRY_PREDICTOR_CONFIG", "{}"),
        help="JSON object passed to the class as config, or @file (env FERRY_PREDICTOR_CONFIG)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(environ.get("FERRY_PREDICTOR_THREADS", "1")),
        help="threads running a synchronous predict (env FERRY_PREDICTOR_THREADS)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=int(environ.get("FERRY_MAX_BODY_BYTES", str(10 * 2**20))),
    )
    parser.add_argument(
        "--path",
        default=environ.get("FERRY_PREDICTOR_PATH", "."),
        help="directory to import the predictor's module from (env FERRY_PREDICTOR_PATH)",
    )
    return parser


def _config(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    config = json.loads(text)
    if not isinstance(config, dict):
        raise TypeError("the predictor's config must be a JSON object")
    return config


async def serve(args: argparse.Namespace, config: dict[str, Any]) -> int:
    app = make_app(args.max_body_bytes)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    log.info("ferry-runtime on %s:%d, loading %s", args.host, args.port, args.predictor)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(args.threads, thread_name_prefix="predict") as pool:
        try:
            loading = asyncio.ensure_future(
                Predictor.load(args.predictor, config, args.model_dir, pool)
            )
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if loading.done():
                app[PREDICTOR] = loading.result()
                log.info("model loaded; ready")
                await stopping
            else:
                loading.cancel()
        except LoadError as error:
            log.error("cannot load the predictor: %s", error)  # noqa: TRY400 - the message is all
            return 1
        except Exception:
            log.exception("the predictor's __init__ failed")
            return 1
        finally:
            await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(os.environ).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.predictor:
        print("ferry-runtime: name the predictor as module:Class", file=sys.stderr)
        return 2
    try:
        config = _config(args.config)
    except (OSError, ValueError, TypeError) as error:
        print(f"ferry-runtime: bad --config: {error}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(args.path).resolve()))
    return asyncio.run(serve(args, config))


if __name__ == "__main__":
    sys.exit(main())
