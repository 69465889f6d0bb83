"""Pods the API server accepts but no process can be started for: the container waits with the
kubelet's reason, an Event says why, other pods keep running, and deleting the pod completes."""

from __future__ import annotations

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
    server_container,
    wait_gone,
    wait_pod,
    wait_ready,
)
from tests.support.chaos import Case


def shell(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": SHELL_IMAGE, "command": ["sh", "-c", "sleep 600"], **extra}


async def pod_events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = await kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/events",
        query={"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={name}"},
    )
    return list(listed.get("items") or [])


async def refused_with(
    kube: Kube, namespace: str, name: str, reason: str, words: str
) -> dict[str, Any]:
    """The container's waiting state once it shows `reason`, and the Event that says why."""

    def waiting(pod: dict[str, Any]) -> bool:
        state = container_status(pod, "app").get("state", {}).get("waiting", {})
        return bool(state.get("reason") == reason)

    pod = await wait_pod(kube, namespace, name, reason, waiting)
    state = container_status(pod, "app")["state"]["waiting"]
    assert words in state["message"]

    async def failed_event() -> dict[str, Any] | None:
        events = await pod_events(kube, namespace, name)
        found = [e for e in events if e["reason"] == "Failed" and words in e["message"]]
        # Each retry fails the same way: one Event, counted, as the kubelet's correlator does.
        assert len(found) <= 1, found
        return found[0] if found and found[0]["count"] >= 2 else None

    event = await eventually(failed_event, timeout=30, what=f"a repeated Failed Event on {name}")
    assert event["type"] == "Warning"
    assert event["message"].startswith("Error: ")
    assert event["involvedObject"]["fieldPath"] == "spec.containers{app}"
    return pod


@pytest.mark.chaos("hostile specs")
@pytest.mark.parametrize(
    ("container", "words"),
    [
        (shell(env=[{"name": "BAD", "value": "nul\x00byte"}]), "env BAD holds a NUL byte"),
        (shell(command=["sh", "-c", "echo nul\x00byte"]), "command and args hold a NUL byte"),
        (shell(args=["nul\x00byte"]), "command and args hold a NUL byte"),
        (
            shell(workingDir="/nonexistent-ferry-test/work"),
            'working directory "/nonexistent-ferry-test/work" does not exist',
        ),
    ],
    ids=["env", "command", "args", "working-dir"],
)
async def test_a_container_that_cannot_be_created_waits_and_its_pod_can_be_deleted(
    agent: AgentProcess,
    kube: Kube,
    namespace: str,
    container: dict[str, Any],
    words: str,
    chaos: Case,
) -> None:
    await create_pod(kube, namespace, "hostile", local_spec([container]))
    pod = await refused_with(kube, namespace, "hostile", "CreateContainerError", words)
    assert pod["status"]["phase"] == "Pending"

    await create_pod(kube, namespace, "neighbour", local_spec([server_container()]))
    await wait_ready(kube, namespace, "neighbour")

    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/hostile")
    await wait_gone(kube, namespace, "hostile", timeout=30)
    assert agent.process is not None and agent.process.poll() is None
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_a_nul_byte_from_a_config_map_is_refused_as_well(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body={"metadata": {"name": "settings"}, "data": {"MODE": "nul\x00byte"}},
    )
    container = shell(envFrom=[{"configMapRef": {"name": "settings"}}])
    await create_pod(kube, namespace, "from-map", local_spec([container]))
    await refused_with(kube, namespace, "from-map", "CreateContainerError", "env MODE holds")
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/from-map")
    await wait_gone(kube, namespace, "from-map", timeout=30)
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_an_environment_too_big_to_exec_fails_to_start_and_is_retried(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    # Linux takes at most 128 KiB in one argument or variable.
    container = shell(env=[{"name": "BIG", "value": "x" * 200_000}])
    await create_pod(kube, namespace, "huge", local_spec([container]))

    def failed_twice(pod: dict[str, Any]) -> bool:
        return bool(container_status(pod, "app").get("restartCount", 0) >= 2)

    pod = await wait_pod(kube, namespace, "huge", "two failed starts", failed_twice)
    last = container_status(pod, "app")["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("StartError", 128)
    assert "Argument list too long" in last["message"]
    events = await pod_events(kube, namespace, "huge")
    assert any(
        e["reason"] == "Failed" and "Argument list too long" in e["message"] for e in events
    ), events
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/huge")
    await wait_gone(kube, namespace, "huge", timeout=30)
    chaos.handled()


@pytest.mark.chaos("hostile specs")
async def test_a_volume_item_no_file_can_be_named_after_waits_with_a_failed_mount(
    agent: AgentProcess, kube: Kube, namespace: str, chaos: Case
) -> None:
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body={"metadata": {"name": "files"}, "data": {"k": "v"}},
    )
    container = shell(volumeMounts=[{"name": "files", "mountPath": "/etc/files"}])
    volume = {
        "name": "files",
        "configMap": {"name": "files", "items": [{"key": "k", "path": "a\x00b"}]},
    }
    await create_pod(kube, namespace, "badfile", local_spec([container], volumes=[volume]))

    def waiting(pod: dict[str, Any]) -> bool:
        state = container_status(pod, "app").get("state", {}).get("waiting", {})
        return bool(state.get("reason") == "CreateContainerConfigError")

    pod = await wait_pod(kube, namespace, "badfile", "CreateContainerConfigError", waiting)
    message = container_status(pod, "app")["state"]["waiting"]["message"]
    assert "volume files: item path 'a\\x00b' cannot be a file name" in message

    async def failed_mount() -> list[dict[str, Any]] | None:
        events = await pod_events(kube, namespace, "badfile")
        return [e for e in events if e["reason"] == "FailedMount"] or None

    events = await eventually(failed_mount, timeout=30, what="a FailedMount Event")
    assert events[0]["type"] == "Warning"
    await kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/badfile")
    await wait_gone(kube, namespace, "badfile", timeout=30)
    chaos.handled()
