"""One pod's life on this node: address, volumes, init containers, containers, and its end.

A pod ends one of three ways:
- deleted (deletionTimestamp set): preStop hooks, SIGTERM, the pod's grace period, SIGKILL, the
  final status, then the object is deleted for good (grace 0), as the kubelet does, so the
  ReplicaSet controller and Services see it gone;
- vanished (someone force-deleted it): its processes are stopped at once, nothing is written;
- the agent stops: its processes are stopped within the agent's stop grace and the pod's status
  says so (not ready), but the object stays for the next agent to run again.
Status writes go through one `StatusPublisher` per pod, which coalesces bursts of changes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ferry.adapters.kube import ConflictError, Kube, KubeError, RejectedError
from ferry_local.agent import volumes
from ferry_local.agent.backoff import BackOffPolicy
from ferry_local.agent.dns import resolv_conf
from ferry_local.agent.env import ContainerConfigError, Lookup
from ferry_local.agent.events import WARNING, EventRecorder, involved_pod
from ferry_local.agent.images import ImageTable
from ferry_local.agent.memory import Enforcement
from ferry_local.agent.network import HOST_IP, AddressPool, PodNetwork
from ferry_local.agent.runner import ContainerRunner, PodContext, now
from ferry_local.agent.serviceaccount import ApiAccess, fill_projected
from ferry_local.agent.status import (
    FAILED,
    SUCCEEDED,
    PodView,
    Waiting,
    carried_over,
    pod_status,
)
from ferry_local.netns import NetworkError

log = logging.getLogger("ferry_local.agent")

DELETED, VANISHED, SHUTDOWN = "deleted", "vanished", "shutdown"
# A force-deleted pod's processes still get a moment to exit cleanly, as on a real node.
VANISHED_GRACE = 2.0
_RETRY = 1.0
_NOT_FOUND = 404


@dataclass(frozen=True)
class NodeServices:
    """What every pod of the agent shares."""

    kube: Kube
    state_dir: Path
    table: ImageTable
    pool: AddressPool
    session: aiohttp.ClientSession
    base_env: Mapping[str, str]
    lookup: Lookup
    backoff: BackOffPolicy
    access: ApiAccess
    events: EventRecorder
    memory: Enforcement
    host_ip: str = HOST_IP
    """The node's address: its pods' hostIP, and the podIP of a hostNetwork pod."""
    network: PodNetwork | None = None
    """With a cluster network: the node's bridge, where each pod gets a namespace of its own."""


def pod_path(pod: Mapping[str, Any]) -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"


def _replacing_ips(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status with its podIPs replacing the pod's, not merged into them: a pod run again by
    a restarted agent may get another address, and a pod has one per family."""
    if "podIPs" not in status:
        return dict(status)
    return {**status, "podIPs": [{"$patch": "replace"}, *status["podIPs"]]}


class StatusPublisher:
    """Writes the pod's status when it changed, one write at a time."""

    def __init__(self, kube: Kube, pod: Mapping[str, Any], view: Callable[[], PodView]) -> None:
        self.kube = kube
        self.path = pod_path(pod) + "/status"
        self.uid = pod["metadata"]["uid"]
        self.view = view
        self.previous: list[dict[str, Any]] = list(
            (pod.get("status") or {}).get("conditions") or []
        )
        self.sent: dict[str, Any] | None = None
        self.dirty = asyncio.Event()
        self.lock = asyncio.Lock()
        self.gone = False

    def changed(self) -> None:
        self.dirty.set()

    async def run(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            if not await self.flush():
                await asyncio.sleep(_RETRY)
                self.dirty.set()

    async def flush(self) -> bool:
        """Write the status now if it changed; False when it should be tried again."""
        async with self.lock:
            if self.gone:
                return True
            status = pod_status(self.view(), self.previous, now())
            if status == self.sent:
                return True
            try:
                await self.kube.request(
                    "PATCH",
                    self.path,
                    # The uid makes the write fail rather than land on a namesake pod.
                    body={"metadata": {"uid": self.uid}, "status": _replacing_ips(status)},
                    content_type="application/strategic-merge-patch+json",
                )
            except RejectedError as error:
                if error.status == _NOT_FOUND:
                    self.gone = True
                    return True
                log.exception("status of %s refused", self.path)
                return True
            except KubeError as error:
                log.warning("status of %s not written yet: %s", self.path, error)
                return False
            self.sent = status
            self.previous = status["conditions"]
            return True


class PodWorker:
    def __init__(
        self, services: NodeServices, pod: dict[str, Any], on_done: Callable[[str], None]
    ) -> None:
        self.services = services
        self.uid: str = pod["metadata"]["uid"]
        self.on_done = on_done
        status = pod.get("status") or {}
        # A pod that already ended under an earlier agent is not run again, only cleaned up.
        self.dormant = status.get("phase") in (SUCCEEDED, FAILED)
        self.final = False
        self.host_network = bool(pod["spec"].get("hostNetwork"))
        self.pod_ip = services.host_ip if self.host_network else self._address(status)
        self.start_time = now()
        self.publisher = StatusPublisher(services.kube, pod, self.view)
        self.context = PodContext(
            pod=pod,
            pod_ip=self.pod_ip,
            host_ip=services.host_ip,
            folder=volumes.PodFolder.of(services.state_dir, pod),
            table=services.table,
            base_env=services.base_env,
            lookup=services.lookup,
            session=services.session,
            backoff=services.backoff,
            memory=services.memory,
            api_server=services.access.server,
            changed=self.publisher.changed,
            warn=self._warn,
            stopping=asyncio.Event(),
        )
        spec = pod["spec"]
        self.init_runners = [
            ContainerRunner(self.context, c, init=True) for c in spec.get("initContainers") or ()
        ]
        self.runners = [
            ContainerRunner(self.context, c, init=False) for c in spec.get("containers") or ()
        ]
        if not self.dormant:
            self._carry_over(status)
        self._ending: asyncio.Future[tuple[str, float]] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self.run(), name=f"pod {self.context.label}")
        self.update(pod)

    def _carry_over(self, status: Mapping[str, Any]) -> None:
        """Restart counts and last exits from the status an earlier agent wrote for the pod."""
        for key, runners in (
            ("initContainerStatuses", self.init_runners),
            ("containerStatuses", self.runners),
        ):
            previous = {c.get("name"): c for c in status.get(key) or ()}
            for runner in runners:
                record = runner.record
                record.restart_count, record.last_terminated = carried_over(
                    previous.get(runner.name), now()
                )

    def _address(self, status: Mapping[str, Any]) -> str:
        # After an agent restart a pod keeps its address if nothing else took it meanwhile.
        previous = status.get("podIP")
        if previous and self.services.pool.reserve(previous):
            return str(previous)
        return self.services.pool.allocate()

    def _warn(self, field_path: str, reason: str, message: str) -> None:
        involved = involved_pod(self.context.pod, field_path)
        self.services.events.record(involved, WARNING, reason, message)

    def view(self) -> PodView:
        return PodView(
            init_containers=[r.record for r in self.init_runners],
            containers=[r.record for r in self.runners],
            restart_policy=self.context.pod["spec"].get("restartPolicy", "Always"),
            pod_ip=self.pod_ip,
            host_ip=self.services.host_ip,
            start_time=self.start_time,
            final=self.final,
        )

    def update(self, pod: dict[str, Any]) -> None:
        self.context.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds", self.context.grace)
            self._end(DELETED, float(grace))

    def vanish(self) -> None:
        self._end(VANISHED, min(VANISHED_GRACE, self.context.grace))

    async def shutdown(self, grace: float) -> None:
        self._end(SHUTDOWN, min(grace, self.context.grace))
        await self.task

    def _end(self, how: str, grace: float) -> None:
        if not self._ending.done():
            self._ending.set_result((how, grace))

    async def run(self) -> None:
        publisher = asyncio.create_task(self.publisher.run())
        live = asyncio.create_task(self._live())
        try:
            how, grace = await self._ending
            log.info("%s: stopping (%s, grace %gs)", self.context.label, how, grace)
            self.context.stopping.set()
            await asyncio.gather(
                *(runner.terminate(grace) for runner in [*self.init_runners, *self.runners])
            )
            try:
                async with asyncio.timeout(grace + 10.0):
                    await live
            except TimeoutError:
                log.warning("%s: containers did not stop in time", self.context.label)
            except Exception:
                # The pod's end is still written and its object deleted: nothing may leave a
                # pod Terminating for ever.
                log.exception("%s: its containers failed in the agent", self.context.label)
            if how != VANISHED and not self.dormant:
                # After a deletion nothing runs again; after an agent stop the next agent may.
                self.final = how == DELETED
                await self.publisher.flush()
            if how == DELETED:
                await self._delete()
            if how != SHUTDOWN:
                shutil.rmtree(self.context.folder.root / "volumes", ignore_errors=True)
        finally:
            live.cancel()
            publisher.cancel()
            if not self.host_network:
                await self._leave_network()
                self.services.pool.release(self.pod_ip)
            self.on_done(self.uid)

    async def _live(self) -> None:
        if self.dormant:
            return
        log.info("%s: starting on %s", self.context.label, self.pod_ip)
        self.publisher.changed()
        if not await self._sandbox_ready() or not await self._volumes_ready():
            return
        for runner in self.init_runners:
            runner.record.state = Waiting("PodInitializing")
        for runner in self.init_runners:
            if not await runner.run():
                return
        for runner in self.runners:
            runner.record.state = Waiting("ContainerCreating")
        self.publisher.changed()
        await asyncio.gather(*(runner.run() for runner in self.runners))

    async def _sandbox_ready(self) -> bool:
        """With a cluster network, the pod's network namespace, which every container joins;
        until it can be made the pod waits, saying why, and it is tried again after the
        back-off base. False when the pod stops first."""
        network, context = self.services.network, self.context
        if network is None:
            return True
        if (text := resolv_conf(context.pod, network.cluster.dns_address)) is not None:
            context.resolv_conf = context.folder.root / "etc" / "resolv.conf"
            context.resolv_conf.parent.mkdir(parents=True, exist_ok=True)
            context.resolv_conf.write_text(text)
        if self.host_network:
            context.netns = network.cluster.netns
            return True
        while not context.stopping.is_set():
            try:
                context.netns = await asyncio.to_thread(network.attach, self.uid, self.pod_ip)
            except NetworkError as error:
                self._failed_sandbox(str(error))
                await context.pause(context.backoff.base)
            else:
                context.own_network = True
                return True
        return False

    def _failed_sandbox(self, message: str) -> None:
        log.warning("%s: no network namespace: %s", self.context.label, message)
        for runner in [*self.init_runners, *self.runners]:
            runner.record.state = Waiting("CreatePodSandboxError", message)
        self.publisher.changed()
        self.services.events.record(
            involved_pod(self.context.pod),
            WARNING,
            "FailedCreatePodSandBox",
            f"Failed to create pod sandbox: {message}",
        )

    async def _leave_network(self) -> None:
        if (network := self.services.network) is None:
            return
        try:
            await asyncio.to_thread(network.detach, self.uid)
        except NetworkError:
            log.exception("%s: its network namespace was not removed", self.context.label)

    async def _volumes_ready(self) -> bool:
        context = self.context
        while not context.stopping.is_set():
            try:
                await volumes.prepare_volumes(context.folder, context.pod, context.lookup)
                await fill_projected(
                    context.folder, context.pod, context.lookup, self.services.access
                )
            except KubeError as error:
                # The API server did not answer (a Secret or ConfigMap read): try again.
                log.warning("%s: volumes not ready yet: %s", context.label, error)
            except Exception as error:
                if not isinstance(error, ContainerConfigError):
                    log.exception("%s: volumes failed in the agent", context.label)
                self._failed_mount(str(error))
            else:
                return True
            await context.pause(context.backoff.base)
        return False

    def _failed_mount(self, message: str) -> None:
        for runner in [*self.init_runners, *self.runners]:
            runner.record.state = Waiting("CreateContainerConfigError", message)
        self.publisher.changed()
        involved = involved_pod(self.context.pod)
        self.services.events.record(
            involved, WARNING, "FailedMount", f"MountVolume.SetUp failed: {message}"
        )

    async def _delete(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        for _attempt in range(30):
            try:
                await self.services.kube.request("DELETE", pod_path(self.context.pod), body=body)
            except (RejectedError, ConflictError):
                return  # gone already, or a namesake pod took its place
            except KubeError as error:
                log.warning("%s: delete failed, retrying: %s", self.context.label, error)
                await asyncio.sleep(_RETRY)
            else:
                return
        log.error("%s: could not delete the pod object", self.context.label)
