"""Entry point of the `ferry` command."""

from __future__ import annotations

import argparse
import sys

from ferry import __version__
from ferry.cli import local, logs, model, render


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ferry", description="Serve models as autoscaling HTTP APIs."
    )
    root.add_argument("--version", action="version", version=f"ferry {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    local.register(commands)
    model.register(commands)
    logs.register(commands)
    render.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
