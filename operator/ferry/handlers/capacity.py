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

from ferry.services import capacity as service
from ferry.settings import Settings


async def start(memo: kopf.Memo, **_: Any) -> None:
    memo.capacity = asyncio.create_task(
        service.run(memo.kube, memo.aws, memo.settings), name="capacity loop"
    )


# At import, so that it runs before the cleanup that closes the clients the loop uses.
@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("capacity")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def register(settings: Settings) -> None:
    # Registered after the startup handler that connects the clients (kopf runs them in
    # order), and only if there is a group to look after.
    if service.managed_groups(settings):
        kopf.on.startup()(start)
