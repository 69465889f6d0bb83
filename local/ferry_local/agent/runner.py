"""One container as local processes: start, probe, restart with back-off, stop with a grace period.

Each start is a `ferry_local.processes.spawn`: a process group of its own (so a stop reaches
everything the container started) tied to the agent by PR_SET_PDEATHSIG (so an agent that dies
takes its containers with it). Exits are awaited through a pidfd, without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ferry.capacity.quantity import format_bytes
from ferry_local import netns, processes
from ferry_local.agent import images, probes, volumes
from ferry_local.agent.backoff import BackOff, BackOffPolicy
from ferry_local.agent.cgroups import CgroupError
from ferry_local.agent.env import ContainerConfigError, Lookup, container_env, expand
from ferry_local.agent.memory import Enforcement, Guard, memory_limit
from ferry_local.agent.serviceaccount import in_cluster_env
from ferry_local.agent.startable import CreateContainerError, check_startable
from ferry_local.agent.status import (
    ALWAYS,
    NEVER,
    ContainerRecord,
    Running,
    Terminated,
    Waiting,
)

log = logging.getLogger("ferry_local.agent")

# What an exec'd program that cannot start reports, as container runtimes do.
START_ERROR_EXIT_CODE = 128

# (field path of the container, reason, message): a Warning Event about a pod's container.
Warn = Callable[[str, str, str], None]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def wait_exit(process: subprocess.Popen[bytes]) -> int:
    """The exit code, once the process ends; the pidfd turns readable at its exit."""
    if (code := process.poll()) is not None:
        return code
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    fd = os.pidfd_open(process.pid)

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return process.wait()


async def stop_process(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM the process group, SIGKILL it after `grace` seconds; the leader's exit code."""
    if process.poll() is None:
        processes.signal_group(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(max(grace, 0.0)):
                await wait_exit(process)
        except TimeoutError:
            processes.signal_group(process.pid, signal.SIGKILL)
    code = await wait_exit(process)
    # Whatever the leader left behind in its group goes with it, as a container's cgroup would.
    processes.signal_group(process.pid, signal.SIGKILL)
    return code


def exit_state(code: int, started_at: datetime.datetime, oom_killed: bool = False) -> Terminated:
    """A Popen return code as a container's terminated state (signals as 128 + n); OOMKilled,
    with whatever exit that brought, when the run was killed for its memory."""
    signal_number = -code if code < 0 else None
    exit_code = 128 - code if code < 0 else code
    if oom_killed:
        return Terminated(exit_code, "OOMKilled", now(), started_at, signal=signal_number)
    reason = "Completed" if code == 0 else "Error"
    return Terminated(exit_code, reason, now(), started_at, signal=signal_number)


def should_restart(policy: str, code: int, init: bool) -> bool:
    if policy == NEVER:
        return False
    if init or policy != ALWAYS:
        return code != 0
    return True


@dataclass(frozen=True)
class Prepared:
    """A container ready to start: its argv and environment with mounts rewritten."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: Path
    mounts: tuple[volumes.Mount, ...]
    memory_limit: int | None = None

    def command(self, argv: tuple[str, ...]) -> Prepared:
        """Another command in this container's environment (exec probes and hooks)."""
        expanded = tuple(volumes.rewrite(expand(arg, self.env), self.mounts) for arg in argv)
        return Prepared(expanded, self.env, self.cwd, self.mounts, self.memory_limit)


@dataclass
class PodContext:
    """What every container of one pod shares."""

    pod: dict[str, Any]
    pod_ip: str
    host_ip: str
    folder: volumes.PodFolder
    table: images.ImageTable
    base_env: Mapping[str, str]
    lookup: Lookup
    session: aiohttp.ClientSession
    backoff: BackOffPolicy
    memory: Enforcement
    api_server: str
    """Where a container that mounts its service account reaches the API server."""
    changed: Callable[[], None]
    warn: Warn
    stopping: asyncio.Event
    netns: str | None = None
    """The network namespace every process of the pod joins; None: the agent's own."""
    own_network: bool = False
    """The pod's namespace is its own (not the agent's, nor the node's for hostNetwork): its
    containers reach each other on localhost, as in Kubernetes."""
    resolv_conf: Path | None = None
    """The pod's resolv.conf, seen by its processes as /etc/resolv.conf (with a netns only)."""

    @property
    def label(self) -> str:
        meta = self.pod["metadata"]
        return f"{meta['name']}_{meta['namespace']}({meta['uid']})"

    @property
    def grace(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    async def pause(self, seconds: float) -> None:
        """Sleep, cut short when the pod starts stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()


class ContainerRunner:
    def __init__(self, pod: PodContext, spec: dict[str, Any], init: bool) -> None:
        self.pod = pod
        self.spec = spec
        self.init = init
        self.name: str = spec["name"]
        self.field_path = f"spec.{'initContainers' if init else 'containers'}{{{self.name}}}"
        self.record = ContainerRecord(self.name, spec.get("image", ""))
        self.process: subprocess.Popen[bytes] | None = None
        self.prepared: Prepared | None = None
        self.guard: Guard | None = None
        """The memory limit's guard of the run under way: exec probes and hooks run in it."""
        self._crashes = BackOff(pod.backoff)
        self._pulls = BackOff(pod.backoff)
        self._kill = asyncio.Event()

    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.record, key, value)
        self.pod.changed()

    def _failed(self, reason: str, message: str) -> None:
        """Waiting with `reason`, and the kubelet's Failed Event saying why."""
        self._set(state=Waiting(reason, message))
        self.pod.warn(self.field_path, "Failed", f"Error: {message}")

    async def _prepare(self) -> Prepared:
        entry = self.pod.table.lookup(self.record.image)
        mounts = volumes.container_mounts(self.pod.folder, self.pod.pod, self.spec)
        pod_env = await container_env(
            self.pod.pod, self.spec, self.pod.pod_ip, self.pod.host_ip, self.pod.lookup
        )
        env = {
            **self.pod.base_env,
            "PATH": os.pathsep.join([*entry.path, self.pod.base_env.get("PATH", os.defpath)]),
            "HOSTNAME": self.pod.pod["metadata"]["name"],
            "POD_IP": self.pod.pod_ip,
            # Pods that share a network with others bind to their own address, and find each
            # other there; a pod with its own namespace binds every address and uses localhost.
            **({} if self.pod.own_network else {"FERRY_HOST": self.pod.pod_ip}),
            **volumes.mount_env(mounts),
            **in_cluster_env(self.pod.api_server, mounts),
            **{key: volumes.rewrite(value, mounts) for key, value in pod_env.items()},
        }
        launch = images.launch(
            entry, self.spec, lambda text: volumes.rewrite(expand(text, env), mounts)
        )
        cwd = Path(launch.working_dir) if launch.working_dir else self.pod.folder.root
        check_startable(launch.argv, env, cwd, self.pod.folder.root)
        return Prepared(launch.argv, env, cwd, tuple(mounts), memory_limit(self.spec))

    async def _prepared(self) -> Prepared | None:
        """Prepare until it works, showing why it waits; None when the pod stops first."""
        while not self.pod.stopping.is_set():
            try:
                prepared = await self._prepare()
            except images.UnmappedImageError as error:
                # As on a kubelet: the failed pull shows until the pod's next sync, then the
                # back-off before the next attempt.
                self._set(state=Waiting("ErrImagePull", str(error)))
                await self.pod.pause(self.pod.backoff.base)
                delay = max(self._pulls.next_delay(0.0), self.pod.backoff.base)
                message = f'Back-off pulling image "{self.record.image}": {error}'
                self._set(state=Waiting("ImagePullBackOff", message))
                await self.pod.pause(delay)
            except (ContainerConfigError, images.NoCommandError) as error:
                self._failed("CreateContainerConfigError", str(error))
                await self.pod.pause(self.pod.backoff.base)
            except CreateContainerError as error:
                self._failed("CreateContainerError", str(error))
                await self.pod.pause(self.pod.backoff.base)
            else:
                # Checked after the last await: a stop that came meanwhile finds no process to
                # signal, so none may start after it.
                return None if self.pod.stopping.is_set() else prepared
        return None

    def _spawn(self, prepared: Prepared) -> subprocess.Popen[bytes] | Terminated:
        log_file = self.pod.folder.log(self.name)
        namespace: int | None = None
        before_exec = self.guard.enter if self.guard is not None else None
        try:
            if self.pod.netns is not None:
                namespace = netns.opened(self.pod.netns)
                before_exec = netns.entering(namespace, before_exec, self.pod.resolv_conf)
            return processes.spawn(
                prepared.argv,
                log_file,
                env=prepared.env,
                cwd=prepared.cwd,
                before_exec=before_exec,
            )
        # OSError: exec's own refusal. ValueError: what Popen refuses before it forks, which
        # check_startable keeps from a container but an exec probe or hook may still hold.
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            reason = error.strerror if isinstance(error, OSError) else None
            message = f"failed to start {prepared.argv[0]!r}: {reason or error}"
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with log_file.open("a") as out:
                out.write(message + "\n")
            return Terminated(START_ERROR_EXIT_CODE, "StartError", now(), now(), message=message)
        finally:
            if namespace is not None:
                os.close(namespace)

    async def run(self) -> bool:
        """Run, restarting per the pod's policy, until done or the pod stops; True on exit 0."""
        while True:
            try:
                return await self._run()
            except Exception as error:  # one pod's spec never stops the agent
                # A bug the spec found in the agent: as a kubelet's sync loop does, say so on the
                # pod and try again after the back-off rather than leave it stuck.
                log.exception("%s/%s: the node agent failed", self.pod.label, self.name)
                self._failed("RunContainerError", f"the node agent failed: {error!r}")
                await self.pod.pause(self.pod.backoff.base)
                if self.pod.stopping.is_set():
                    return False

    async def _run(self) -> bool:
        policy = self.pod.pod["spec"].get("restartPolicy", ALWAYS)
        while (prepared := await self._prepared()) is not None:
            self.prepared = prepared
            started = time.monotonic()
            ended = await self._run_process(prepared)
            if (ended.succeeded and self.init) or self.pod.stopping.is_set():
                return ended.succeeded
            if not should_restart(policy, ended.exit_code, self.init):
                return ended.succeeded
            delay = self._crashes.next_delay(time.monotonic() - started)
            if delay:
                message = (
                    f"back-off {delay:g}s restarting failed container={self.name} "
                    f"pod={self.pod.label}"
                )
                self._set(state=Waiting("CrashLoopBackOff", message), last_terminated=ended)
                self.pod.warn(
                    self.field_path,
                    "BackOff",
                    f"Back-off restarting failed container {self.name} in pod {self.pod.label}",
                )
                await self.pod.pause(delay)
            else:
                self._set(last_terminated=ended)
            if self.pod.stopping.is_set():
                return False
            self._set(restart_count=self.record.restart_count + 1)
        return False

    def _guard(self, prepared: Prepared) -> Guard | Terminated | None:
        """The memory guard of the next run; a StartError when its cgroup cannot be made."""
        name = f"{self.pod.pod['metadata']['uid']}_{self.name}"
        try:
            return self.pod.memory.guard(name, prepared.memory_limit)
        except CgroupError as error:
            message = f"cannot make the container's memory cgroup: {error}"
            return Terminated(START_ERROR_EXIT_CODE, "StartError", now(), now(), message=message)

    async def _run_process(self, prepared: Prepared) -> Terminated:
        guard = self._guard(prepared)
        if isinstance(guard, Terminated):
            spawned: subprocess.Popen[bytes] | Terminated = guard
        else:
            self.guard = guard
            spawned = self._spawn(prepared)
        if isinstance(spawned, Terminated):
            await self._release()
            self._set(state=spawned, ready=False, started=False)
            self.pod.warn(self.field_path, "Failed", f"Error: {spawned.message}")
            return spawned
        self.process = spawned
        if self.guard is not None:
            self.guard.started(spawned.pid)
        started_at = now()
        startup = None if self.init else self.spec.get("startupProbe")
        self._kill.clear()
        self._set(
            state=Running(started_at),
            container_id=f"process://{spawned.pid}",
            ready=False,
            started=startup is None,
        )
        watchers: list[asyncio.Task[None]] = []
        killed = asyncio.ensure_future(self._kill.wait())
        try:
            watchers = [] if self.init else self._start_probes(prepared)
            exited = asyncio.ensure_future(wait_exit(spawned))
            await asyncio.wait({exited, killed}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self.terminate(self.pod.grace)
            code = await exited
        finally:
            killed.cancel()
            for watcher in watchers:
                watcher.cancel()
            # Whatever happened, nothing of this run outlives it.
            processes.signal_group(spawned.pid, signal.SIGKILL)
            self.process = None
            oom = self.guard is not None and self.guard.oom_killed()
            how = self.guard.how() if self.guard is not None else ""
            await self._release()
        ended = exit_state(code, started_at, oom_killed=oom)
        self._set(state=ended, ready=False, started=False)
        if oom:
            limit = format_bytes(prepared.memory_limit or 0)
            self.pod.warn(
                self.field_path,
                "OOMKilled",
                f"container {self.name} went over its memory limit of {limit} and was "
                f"killed by {how}",
            )
        return ended

    async def _release(self) -> None:
        guard, self.guard = self.guard, None
        if guard is not None:
            await guard.close()

    def _start_probes(self, prepared: Prepared) -> list[asyncio.Task[None]]:
        prober = probes.Prober(self.pod.session, self.pod.pod_ip, self._exec_runner(prepared))
        parsed = {}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if (raw := self.spec.get(kind)) is not None:
                try:
                    parsed[kind] = probes.parse_probe(raw, self.spec)
                except ContainerConfigError as error:
                    log.warning("%s/%s: %s; probe not run", self.pod.label, self.name, error)
        tasks: list[asyncio.Task[None]] = []

        def after_startup() -> None:
            if "livenessProbe" in parsed:
                liveness = probes.Threshold(parsed["livenessProbe"], initial=True)
                tasks.append(
                    asyncio.create_task(prober.watch(liveness.probe, liveness, self._liveness))
                )
            if "readinessProbe" in parsed:
                readiness = probes.Threshold(parsed["readinessProbe"], initial=False)
                tasks.append(
                    asyncio.create_task(prober.watch(readiness.probe, readiness, self._readiness))
                )
            else:
                self._set(ready=True)

        if "startupProbe" in parsed:
            startup = probes.Threshold(parsed["startupProbe"], initial=False)

            def on_startup(ok: bool) -> None:
                if ok and not self.record.started:
                    self._set(started=True)
                    tasks[0].cancel()
                    after_startup()
                elif startup.failed:
                    log.info("%s/%s failed its startup probe", self.pod.label, self.name)
                    self._kill.set()

            tasks.append(asyncio.create_task(prober.watch(startup.probe, startup, on_startup)))
        else:
            after_startup()
        return tasks

    def _readiness(self, ok: bool) -> None:
        if ok != self.record.ready:
            self._set(ready=ok)

    def _liveness(self, ok: bool) -> None:
        if not ok and not self._kill.is_set():
            log.info("%s/%s failed its liveness probe", self.pod.label, self.name)
            self._kill.set()

    def _exec_runner(self, prepared: Prepared) -> probes.ExecRunner:
        async def run_exec(command: tuple[str, ...], timeout: float) -> bool:
            spawned = self._spawn(prepared.command(command))
            if isinstance(spawned, Terminated):
                return False
            try:
                async with asyncio.timeout(timeout):
                    return await wait_exit(spawned) == 0
            except TimeoutError:
                await stop_process(spawned, 0.0)
                return False

        return run_exec

    async def terminate(self, grace: float) -> None:
        """preStop, SIGTERM, `grace` seconds in all (as the kubelet counts it), then SIGKILL."""
        process, prepared = self.process, self.prepared
        if process is None or process.poll() is not None or prepared is None:
            return
        deadline = time.monotonic() + grace
        hook = (self.spec.get("lifecycle") or {}).get("preStop")
        if hook is not None:
            await self._pre_stop(hook, prepared, grace)
        await stop_process(process, deadline - time.monotonic())

    async def _pre_stop(self, hook: Mapping[str, Any], prepared: Prepared, grace: float) -> None:
        try:
            action = probes.parse_action(hook, self.spec)
        except ContainerConfigError as error:
            log.warning("%s/%s: preStop not run: %s", self.pod.label, self.name, error)
            return
        prober = probes.Prober(self.pod.session, self.pod.pod_ip, self._exec_runner(prepared))
        if not await prober.attempt(action, grace):
            log.info("%s/%s: preStop hook failed or timed out", self.pod.label, self.name)
