"""What makes a container's process impossible to start, found before anything is forked.

The API server accepts strings no process can be given: a NUL byte ends a C string, so exec
takes none in an argument or a variable, and a string that is not valid Unicode cannot be
encoded for it. A container runtime refuses such a container when it creates it, and the
kubelet shows `CreateContainerError`; the agent does the same, instead of letting the failure
surface in the middle of a fork. A working directory inside the pod's folder (under one of its
volumes) is made if missing, as runc makes a container's; anywhere else on this machine it has
to exist already: the agent does not make folders on the host for a pod.

What only exec itself can tell (a program that is not there, an environment too big for the
kernel) is left to exec, and shows as a `StartError` exit, as on a real node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path


class CreateContainerError(ValueError):
    """The container's process cannot be made from its spec; the message says which field."""


def _encodable(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


def check_startable(argv: Sequence[str], env: Mapping[str, str], cwd: Path, pod_root: Path) -> None:
    """Raise CreateContainerError for what exec would refuse; make a missing working directory
    that lies inside the pod's folder."""
    if any("\0" in arg for arg in argv):
        raise CreateContainerError("command and args hold a NUL byte, which no process can take")
    if not all(_encodable(arg) for arg in argv):
        raise CreateContainerError("command and args are not valid text")
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or not _encodable(name):
            raise CreateContainerError(f"env name {name!r} cannot be given to a process")
        if "\0" in value:
            raise CreateContainerError(
                f"env {name} holds a NUL byte, which no process can take in its environment"
            )
        if not _encodable(value):
            raise CreateContainerError(f"env {name} is not valid text")
    if "\0" in str(cwd) or not _encodable(str(cwd)):
        raise CreateContainerError("the working directory is not a path")
    if cwd.is_dir():
        return
    if cwd.resolve().is_relative_to(pod_root.resolve()):
        try:
            cwd.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CreateContainerError(
                f'working directory "{cwd}" cannot be made: {error.strerror or error}'
            ) from None
        return
    raise CreateContainerError(f'working directory "{cwd}" does not exist on this machine')
