"""`ferry-operator`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import sys

import kopf

from ferry import allocator, handlers, metrics
from ferry.adapters.kube import NoCredentialsError
from ferry.handlers.context import OperatorContext
from ferry.handlers.lifecycle import operator_settings
from ferry.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ferry-operator",
        description="Ferry's operator. Settings come from FERRY_* variables (docs/realtimeapi.md).",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig to use (default: $KUBECONFIG, else the in-cluster account)"
    )
    args = parser.parse_args(argv)
    allocator.return_large_blocks_to_the_system()
    if args.kubeconfig:
        # kopf's login and the operator's client both read it from there.
        os.environ["KUBECONFIG"] = args.kubeconfig
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"ferry-operator: {error}", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=settings.log_level == "DEBUG",
        quiet=settings.log_level in ("WARNING", "ERROR"),
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    # kopf.run's own way to run the operator, with the clients made before it and closed after.
    try:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(operate(settings))
    except NoCredentialsError as error:
        print(f"ferry-operator: cannot reach the API server: {error}", file=sys.stderr)
        return 2
    return 0


async def operate(settings: Settings) -> None:
    """Run the operator until it is stopped: the clients first, then kopf with every handler
    registered in a written order (ferry.handlers.register), then the clients closed."""
    context = await OperatorContext.connect(settings)
    try:
        registry = kopf.OperatorRegistry()
        handlers.register(registry, context)
        metrics.serve(settings.metrics_port)
        # What is loaded by now lives as long as the process: frozen, it is no longer walked by
        # every whole-heap collection, which at 1,000 APIs ticking every second stalls the loop.
        gc.collect()
        gc.freeze()
        await kopf.operator(
            registry=registry,
            settings=operator_settings(settings),
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
        )
    finally:
        await context.close()


if __name__ == "__main__":
    sys.exit(main())
