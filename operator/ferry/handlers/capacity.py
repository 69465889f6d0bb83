"""The capacity loop: one asyncio task for the whole operator, started with it, stopped with it.

Not a kopf timer or daemon: those belong to one object each, and the loop belongs to none (it
reads pods and nodes of every group and writes to AWS). kopf's startup and cleanup handlers
bracket it instead; the operator runs standalone, as one replica, so one loop runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from ferry.handlers.context import OperatorContext
from ferry.services import capacity as service


def register(registry: kopf.OperatorRegistry, context: OperatorContext) -> None:
    """The loop's start and stop, if there is a node group to look after."""
    if not service.managed_groups(context.settings):
        return
    task: asyncio.Task[None] | None = None

    async def start(**_: Any) -> None:
        nonlocal task
        task = asyncio.create_task(
            service.run(context.kube, context.aws, context.settings), name="capacity loop"
        )

    async def stop(**_: Any) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # kopf tells activities apart by id: two of the same id run as one.
    kopf.on.startup(id="start-capacity-loop", registry=registry)(start)
    kopf.on.cleanup(id="stop-capacity-loop", registry=registry)(stop)
