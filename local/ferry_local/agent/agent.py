"""The agent: one Node, and a worker for each pod bound to it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ferry.adapters.kube import Kube, KubeError
from ferry_local.agent import watch
from ferry_local.agent.env import ContainerConfigError, object_data
from ferry_local.agent.events import WARNING, EventRecorder, involved_node
from ferry_local.agent.images import ImageTable, tables_from_env
from ferry_local.agent.memory import choose
from ferry_local.agent.network import AddressPool, PodNetwork
from ferry_local.agent.node import NodeRegistration
from ferry_local.agent.pods import NodeServices, PodWorker
from ferry_local.agent.serviceaccount import ApiAccess
from ferry_local.agent.settings import AgentSettings

log = logging.getLogger("ferry_local.agent")

# What a container inherits from the agent besides --pass-env: enough to find programs and a home.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_PLURALS = {"Secret": "secrets", "ConfigMap": "configmaps"}


def base_env(settings: AgentSettings, environ: Mapping[str, str]) -> dict[str, str]:
    names = (*_INHERITED, *settings.pass_env)
    return {name: environ[name] for name in names if name in environ}


def _name(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


class Agent:
    def __init__(self, kube: Kube, settings: AgentSettings, session: aiohttp.ClientSession) -> None:
        self.kube = kube
        self.settings = settings
        self.memory = choose(
            settings.memory_limits,
            settings.node_name,
            settings.state_dir,
            settings.watchdog_interval,
        )
        self.node = NodeRegistration(kube, settings, self.memory)
        self.services = NodeServices(
            kube=kube,
            state_dir=settings.state_dir,
            table=ImageTable.load([*settings.image_tables, *tables_from_env()]),
            pool=AddressPool(settings.pod_cidr, owner=settings.node_name),
            session=session,
            base_env=base_env(settings, os.environ),
            lookup=self.lookup,
            backoff=settings.backoff,
            access=ApiAccess(self._api_server_for_pods(), self.issue_token),
            events=EventRecorder(kube, settings.node_name),
            memory=self.memory,
            host_ip=settings.node_ip,
        )
        self.workers: dict[str, PodWorker] = {}
        self.ready = asyncio.Event()

    def _api_server_for_pods(self) -> str:
        """The API server as pods reach it: with a cluster network, at the host's end of the
        link, which forwards its port to the API server on 127.0.0.1."""
        server = str(self.kube.api.configuration.host)
        if self.settings.network is None:
            return server
        parts = urlsplit(server)
        netloc = f"{self.settings.network.host_address}:{parts.port or 443}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def _network(self) -> None:
        """With a cluster network: the node's bridge, and pod addresses from its pod CIDR."""
        if self.settings.network is None:
            return
        cidr = await self.node.pod_cidr()
        network = PodNetwork(self.settings.network, self.settings.node_name, cidr)
        await asyncio.to_thread(network.prepare)
        log.info("pods of node %s get addresses of %s", self.settings.node_name, cidr)
        self.services = dataclasses.replace(self.services, pool=network.pool(), network=network)

    async def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        obj = await self.kube.get(f"/api/v1/namespaces/{namespace}/{_PLURALS[kind]}/{name}")
        return None if obj is None else object_data({**obj, "kind": kind})

    async def issue_token(self, pod: Mapping[str, Any], audience: str | None, seconds: int) -> str:
        """A token of the pod's ServiceAccount bound to the pod, as the kubelet requests one."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
        try:
            issued = await self.kube.request("POST", path, body=body)
        except KubeError as error:
            raise ContainerConfigError(f"no token for service account {account}: {error}") from None
        return str(issued["status"]["token"])

    async def run(self) -> None:
        """Register, then run what is bound to the node until cancelled."""
        await self.node.register()
        await self._network()
        if not self.memory.kernel:
            involved = involved_node(self.settings.node_name, self.node.uid)
            self.services.events.record(involved, WARNING, self.memory.reason, self.memory.message)
        heartbeat = asyncio.create_task(self.node.heartbeat_forever())
        watchdog = asyncio.create_task(self.memory.run())
        try:
            selector = {"fieldSelector": f"spec.nodeName={self.settings.node_name}"}
            async for event in watch.watch(self.kube, "/api/v1/pods", selector):
                self._handle(event)
                self.ready.set()
        finally:
            heartbeat.cancel()
            watchdog.cancel()

    def _handle(self, event: watch.Event) -> None:
        if event.type == watch.LIST:
            listed = {pod["metadata"]["uid"]: pod for pod in event.object["items"]}
            for uid, running in list(self.workers.items()):
                if uid not in listed:
                    running.vanish()
            for pod in listed.values():
                self._pod(pod)
        elif event.type == "DELETED":
            if (worker := self.workers.get(event.object["metadata"]["uid"])) is not None:
                worker.vanish()
        else:
            self._pod(event.object)

    def _pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        try:
            if (worker := self.workers.get(uid)) is not None:
                worker.update(pod)
            else:
                self.workers[uid] = PodWorker(self.services, pod, self._forget)
        except Exception:
            # One pod the agent cannot take on must not stop it from running the others.
            log.exception("pod %s/%s not taken on", *_name(pod))

    def _forget(self, uid: str) -> None:
        self.workers.pop(uid, None)

    async def stop(self) -> None:
        """Stop every pod's processes, then tell the control plane the node is not ready."""
        workers = list(self.workers.values())
        await asyncio.gather(*(w.shutdown(self.settings.stop_grace) for w in workers))
        self.memory.close()
        await self.node.mark_not_ready()
