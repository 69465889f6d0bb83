"""Entry point of the `ferry` command.

Besides its own commands, `ferry` runs those that other installed distributions contribute under
the entry-point group `ferry.commands` (name: the command; object: a `register(subparsers)`
function like the ones here). That is how `ferry local` reaches the local environment
(ferry-local, under local/ in the repository) without the product importing it: the operator's
image installs the product alone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeAlias

from ferry import __version__
from ferry.cli import logs, model, render

COMMANDS = "ferry.commands"

Register: TypeAlias = "Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]"

# What a user types when a contributed command is missing, by command.
NOT_INSTALLED = {
    "local": (
        "ferry local: the local environment (distribution ferry-local) is not installed here; "
        "from a checkout of Ferry's repository, install it with `pip install -e ./local` "
        "(`make .venv/bin/ferry` installs it into .venv)"
    ),
}


def contributed() -> dict[str, Register]:
    """The `register` function of each command an installed distribution contributes."""
    found = sorted(entry_points(group=COMMANDS), key=lambda entry: entry.name)
    return {entry.name: entry.load() for entry in found}


def parser(extra: dict[str, Register]) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ferry", description="Serve models as autoscaling HTTP APIs."
    )
    root.add_argument("--version", action="version", version=f"ferry {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    for register in extra.values():
        register(commands)
    model.register(commands)
    logs.register(commands)
    render.register(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = contributed()
    if argv and argv[0] not in extra and argv[0] in NOT_INSTALLED:
        print(NOT_INSTALLED[argv[0]], file=sys.stderr)
        return 2
    args = parser(extra).parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
