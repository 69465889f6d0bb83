"""Pods on the node agent: what their processes are started with, and in which order."""

from __future__ import annotations

import ipaddress

import aiohttp

from ferry.adapters.kube import Kube
from tests.e2e.agent.support import (
    SHELL_IMAGE,
    AgentProcess,
    container_status,
    create_pod,
    local_spec,
    server_container,
    wait_pod,
    wait_ready,
)


async def test_a_container_gets_its_pods_env_address_and_volumes(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={"metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}},
    )
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body={"metadata": {"name": "settings"}, "data": {"mode": "fast"}},
    )
    server = server_container(
        "server",
        "--port",
        "$(PORT)",
        env=[
            {"name": "PORT", "value": "8080"},
            {"name": "GREETING", "value": "hello $(MY_NAME) on $(PORT), $$(PORT) stays"},
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "MODEL", "value": "/mnt/model/7"},
        ],
        volumeMounts=[
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "model", "mountPath": "/mnt/model"},
        ],
    )
    spec = local_spec(
        [server],
        volumes=[{"name": "tmp", "emptyDir": {}}, {"name": "model", "emptyDir": {}}],
    )
    created = await create_pod(kube, namespace, "env", spec)
    pod = await wait_ready(kube, namespace, "env")
    ip = pod["status"]["podIP"]
    assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network("127.128.0.0/10")
    assert pod["status"]["podIPs"] == [{"ip": ip}]

    async with aiohttp.ClientSession() as session, session.get(f"http://{ip}:8080/env") as reply:
        seen = await reply.json()
    env, volumes = seen["env"], agent.pod_folder(created) / "volumes"
    assert seen["argv"][1:] == ["--port", "8080"]
    assert env["GREETING"] == "hello $(MY_NAME) on 8080, $(PORT) stays"
    assert (env["MY_NAME"], env["MY_NS"], env["MY_NODE"]) == ("env", namespace, agent.node_name)
    assert env["MY_IP"] == env["POD_IP"] == env["FERRY_HOST"] == ip
    assert (env["TOKEN"], env["MODE"]) == ("s3cret", "fast")
    assert env["TMPDIR"] == env["FERRY_VOLUME_TMP"] == str(volumes / "tmp")
    assert env["FERRY_MODEL_DIR"] == env["FERRY_VOLUME_MODEL"] == str(volumes / "model")
    assert env["MODEL"] == str(volumes / "model" / "7")
    assert container_status(pod, "server")["started"] is True


async def test_init_containers_run_in_order_before_the_containers(
    agent: AgentProcess, kube: Kube, namespace: str
) -> None:
    def step(name: str, script: str) -> dict[str, object]:
        return {
            "name": name,
            "image": SHELL_IMAGE,
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        }

    spec = local_spec(
        [step("main", "echo main >> /work/order && exec sleep 600")],
        initContainers=[
            step("first", "sleep 0.5 && echo first >> /work/order"),
            step("second", "echo second >> /work/order"),
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    created = await create_pod(kube, namespace, "ordered", spec)
    pod = await wait_pod(
        kube,
        namespace,
        "ordered",
        "its container running",
        lambda p: "running" in container_status(p, "main").get("state", {}),
    )
    order = (agent.pod_folder(created) / "volumes" / "work" / "order").read_text().split()
    assert order == ["first", "second", "main"]
    for name in ("first", "second"):
        done = container_status(pod, name, init=True)["state"]["terminated"]
        assert (done["exitCode"], done["reason"]) == (0, "Completed")
    first = container_status(pod, "first", init=True)["state"]["terminated"]
    second = container_status(pod, "second", init=True)["state"]["terminated"]
    main = container_status(pod, "main")["state"]["running"]
    assert first["finishedAt"] <= second["startedAt"] <= second["finishedAt"] <= main["startedAt"]
    assert pod["status"]["phase"] == "Running"
