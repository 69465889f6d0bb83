"""Containers that exit are restarted with the kubelet's back-off; images that cannot run wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ferry.adapters.kube import Kube
from ferry_local.wait import eventually
from tests.e2e.agent.support import (
    SHELL_IMAGE,
    AgentProcess,
    container_status,
    create_pod,
    local_spec,
    read_pod,
    wait_pod,
)
from tests.support.chaos import Case


@pytest.mark.chaos("misbehaving predictors")
async def test_a_crashing_container_restarts_with_growing_back_off(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    crasher = {"name": "crasher", "image": SHELL_IMAGE, "command": ["sh", "-c", "exit 3"]}
    await create_pod(kube, namespace, "crashy", local_spec([crasher]))
    loop = asyncio.get_running_loop()
    first_seen: dict[int, float] = {}
    reasons: set[str] = set()

    async def fourth_restart() -> bool:
        pod = await read_pod(kube, namespace, "crashy") or {}
        status = container_status(pod, "crasher")
        first_seen.setdefault(status.get("restartCount", 0), loop.time())
        reasons.add(status.get("state", {}).get("waiting", {}).get("reason", ""))
        return status.get("restartCount", 0) >= 4

    await eventually(fourth_restart, timeout=60, what="four restarts", interval=0.05)
    pod = await read_pod(kube, namespace, "crashy") or {}
    status = container_status(pod, "crasher")
    last = status["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert "CrashLoopBackOff" in reasons
    assert pod["status"]["phase"] == "Running"
    # Back-off of 0.5 s doubling: the gaps between restarts 2, 3 and 4 grow.
    gaps = [first_seen[n] - first_seen[n - 1] for n in (2, 3, 4)]
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[2] >= 1.5
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_an_image_with_no_local_command_waits_as_an_unpullable_image(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    missing = {"name": "app", "image": "registry.example.com/not-here:1.0"}
    await create_pod(kube, namespace, "unpullable", local_spec([missing]))
    seen: set[str] = set()

    def reached(reason: str) -> Callable[[dict[str, Any]], bool]:
        def check(pod: dict[str, Any]) -> bool:
            state = container_status(pod, "app").get("state", {})
            seen.add(state.get("waiting", {}).get("reason", ""))
            return reason in seen

        return check

    await wait_pod(kube, namespace, "unpullable", "ErrImagePull", reached("ErrImagePull"))
    pod = await wait_pod(
        kube, namespace, "unpullable", "ImagePullBackOff", reached("ImagePullBackOff")
    )
    message = container_status(pod, "app")["state"]["waiting"]["message"]
    assert "registry.example.com/not-here:1.0" in message
    assert "no local command" in message
    assert pod["status"]["phase"] == "Pending"
    chaos.handled()
