"""Run a program whose root directory is the machine's, plus folders bound at paths of its own.

Some programs read files at fixed absolute paths that a container image would hold: Envoy
Gateway, in any Kubernetes mode, loads its xDS server's certificate from /certs. Here there is
no image, and making /certs on the machine would change it for everyone. So this launcher gives
the program a mount namespace of its own, whose root is a tmpfs holding every top-level entry of
the machine's root (directories bound recursively, symlinks copied) and the given folders at
their paths; it then changes root into it and execs the program. The machine sees none of it,
and it all goes when the last process in the namespace exits.

    python -m ferry_local.rootfs --bind /certs=/path/to/certs [--bind ...] -- program args...
"""

from __future__ import annotations

import argparse
import ctypes
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

_CLONE_NEWNS = 0x00020000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 0x40000


def _mount(
    source: str, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if (
        libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        )
        != 0
    ):
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target} failed: {os.strerror(error)}")


def enter(binds: Mapping[str, Path], scratch: Path) -> None:
    """Make this process's root the machine's plus `binds` (absolute path -> folder), building
    it on a tmpfs mounted at `scratch` (an empty folder)."""
    for path in binds:
        if not path.startswith("/") or path.count("/") != 1 or path == "/":
            raise ValueError(f"{path}: only a new top-level path (/name) can be bound")
        if os.path.lexists(path):
            raise ValueError(f"{path} exists on this machine; bind a path it does not have")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    # Nothing mounted here reaches the machine.
    _mount("none", "/", None, _MS_REC | _MS_PRIVATE)
    _mount("tmpfs", str(scratch), "tmpfs", 0, "mode=0755")
    for entry in os.scandir("/"):
        target = scratch / entry.name
        if entry.is_symlink():
            target.symlink_to(Path(entry.path).readlink())
        elif entry.is_dir():
            target.mkdir()
            _mount(entry.path, str(target), None, _MS_BIND | _MS_REC)
        else:
            target.touch()
            _mount(entry.path, str(target), None, _MS_BIND)
    for path, folder in binds.items():
        target = scratch / path.lstrip("/")
        target.mkdir()
        _mount(str(folder), str(target), None, _MS_BIND)
    cwd = Path.cwd()
    os.chroot(scratch)
    os.chdir(cwd)


def _bind(text: str) -> tuple[str, Path]:
    path, sep, folder = text.partition("=")
    if not sep or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not PATH=FOLDER")
    return path, Path(folder).resolve()


def main(argv: Sequence[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="python -m ferry_local.rootfs", description=__doc__)
    parser.add_argument("--bind", type=_bind, action="append", default=[], metavar="PATH=FOLDER")
    parser.add_argument("--scratch", type=Path, required=True, help="an empty folder for the root")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no program to run")
    try:
        args.scratch.mkdir(parents=True, exist_ok=True)
        enter(dict(args.bind), args.scratch.resolve())
    except (ValueError, OSError) as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    os.execvp(command[0], command)  # noqa: S606 - the program and arguments as given


if __name__ == "__main__":
    main()
