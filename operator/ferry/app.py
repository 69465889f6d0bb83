"""`ferry-operator`: the operator process."""

from __future__ import annotations

import argparse
import gc
import os
import sys

import kopf

from ferry import allocator
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
    # Importing the handler modules registers them with kopf.
    import ferry.handlers.autoscaler  # noqa: PLC0415
    import ferry.handlers.capacity  # noqa: PLC0415
    import ferry.handlers.indexes  # noqa: PLC0415
    import ferry.handlers.lifecycle  # noqa: PLC0415
    import ferry.handlers.realtimeapi  # noqa: PLC0415

    # The timer's interval is a setting, so it is registered once the settings are read.
    ferry.handlers.autoscaler.register(settings)
    ferry.handlers.capacity.register(settings)

    # What is loaded by now lives as long as the process: frozen, it is no longer walked by
    # every whole-heap collection, which at 1,000 APIs ticking every second stalls the loop.
    gc.collect()
    gc.freeze()
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=f"http://0.0.0.0:{settings.liveness_port}/healthz",
        memo=kopf.Memo(settings=settings),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
