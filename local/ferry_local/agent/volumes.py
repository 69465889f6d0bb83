"""A pod's folders on this machine, and how its processes find their volumes there.

Processes share the host's filesystem, so a volume cannot appear at its mountPath. Instead:
- every volume is a folder under the pod's folder (`<state-dir>/pods/<ns>_<name>_<uid>/`):
  emptyDir (and any kind the agent cannot fill) starts empty, configMap and secret hold their
  keys as files, projected holds its sources' files (serviceaccount.py), hostPath is the host
  path itself;
- each mount is exposed as FERRY_VOLUME_<NAME> (the volume name upper-cased, other characters
  as `_`) holding the folder's path;
- a mount at /tmp sets TMPDIR, and a mount at /mnt/model sets FERRY_MODEL_DIR, to the folder;
- the rule that makes manifests work unchanged: wherever a mountPath appears as a path in the
  container's command, args, env values or workingDir (at the start of the text or after a
  character that cannot be part of a path, and followed by `/` or the end of the path), it is
  replaced with the folder. `--dest=/mnt/model/7` becomes `--dest=<pod>/volumes/model/7`;
  `http://host/tmp` and `/var/tmp` are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.names import MODEL_DIR
from ferry_local.agent.env import ContainerConfigError, Lookup

TMP_DIR = "/tmp"  # noqa: S108 - the container path the pod's own tmp folder stands for


@dataclass(frozen=True)
class Mount:
    name: str
    mount_path: str
    host_path: Path


@dataclass(frozen=True)
class PodFolder:
    root: Path

    @classmethod
    def of(cls, state_dir: Path, pod: Mapping[str, Any]) -> PodFolder:
        meta = pod["metadata"]
        return cls(state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}")

    def volume(self, name: str) -> Path:
        return self.root / "volumes" / name

    def log(self, container: str) -> Path:
        return self.root / "logs" / f"{container}.log"


def env_name(volume: str) -> str:
    return "FERRY_VOLUME_" + re.sub(r"[^A-Z0-9]", "_", volume.upper())


def mount_env(mounts: Iterable[Mount]) -> dict[str, str]:
    env: dict[str, str] = {}
    for mount in mounts:
        env[env_name(mount.name)] = str(mount.host_path)
        if mount.mount_path.rstrip("/") == TMP_DIR:
            env["TMPDIR"] = str(mount.host_path)
        if mount.mount_path.rstrip("/") == MODEL_DIR:
            env["FERRY_MODEL_DIR"] = str(mount.host_path)
    return env


def rewrite(text: str, mounts: Sequence[Mount]) -> str:
    """Container paths under a mount become host paths (the rule in this module's docstring)."""
    ordered = sorted(
        (m for m in mounts if m.mount_path.rstrip("/")),
        key=lambda m: len(m.mount_path),
        reverse=True,
    )
    if not ordered:
        return text
    alternatives = "|".join(re.escape(m.mount_path.rstrip("/")) for m in ordered)
    hosts = {m.mount_path.rstrip("/"): str(m.host_path) for m in ordered}
    pattern = re.compile(rf"(?<![\w./-])({alternatives})(?![\w.-])")
    return pattern.sub(lambda match: hosts[match[1]], text)


def container_mounts(
    folder: PodFolder, pod: Mapping[str, Any], container: Mapping[str, Any]
) -> list[Mount]:
    host_paths = {
        volume["name"]: Path(volume["hostPath"]["path"])
        if "hostPath" in volume
        else folder.volume(volume["name"])
        for volume in pod["spec"].get("volumes") or ()
    }
    mounts = []
    for mount in container.get("volumeMounts") or ():
        name = mount["name"]
        if name not in host_paths:
            raise ContainerConfigError(f'volumeMount "{name}" names no volume of the pod')
        host = host_paths[name] / mount["subPath"] if mount.get("subPath") else host_paths[name]
        mounts.append(Mount(name, mount["mountPath"], host))
    return mounts


async def prepare_volumes(folder: PodFolder, pod: Mapping[str, Any], lookup: Lookup) -> None:
    """Create every volume's folder and fill the ones whose content the API server holds."""
    namespace = pod["metadata"]["namespace"]
    files: dict[str, dict[str, str]] = {}
    for volume in pod["spec"].get("volumes") or ():
        if "hostPath" in volume:
            continue
        files[volume["name"]] = {}
        for kind, field, name_key in (
            ("ConfigMap", "configMap", "name"),
            ("Secret", "secret", "secretName"),
        ):
            if (source := volume.get(field)) is not None:
                name = source.get(name_key, "")
                data = await lookup(kind, namespace, name)
                files[volume["name"]] = source_items(kind, name, source, data)
    write_volumes(folder, files)


def source_items(
    kind: str, name: str, source: Mapping[str, Any], data: dict[str, str] | None
) -> dict[str, str]:
    """relative path -> content of one configMap or secret volume."""
    if data is None:
        if source.get("optional"):
            return {}
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    found = {}
    for item in items:
        if item["key"] in data:
            found[item["path"]] = data[item["key"]]
        elif not source.get("optional"):
            raise ContainerConfigError(f"couldn't find key {item['key']} in {kind} {name}")
    return found


def write_volumes(folder: PodFolder, files: Mapping[str, Mapping[str, str]]) -> None:
    """volume -> relative path -> content, each file kept inside its volume's folder."""
    for volume, contents in files.items():
        target = folder.volume(volume).resolve()
        target.mkdir(parents=True, exist_ok=True)
        for relative, text in contents.items():
            if "\0" in relative:
                raise ContainerConfigError(
                    f"volume {volume}: item path {relative!r} cannot be a file name"
                )
            path = (target / relative).resolve()
            if not path.is_relative_to(target):
                raise ContainerConfigError(f"volume {volume}: item path {relative} leaves it")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            except OSError as error:
                raise ContainerConfigError(
                    f"volume {volume}: cannot write {relative!r}: {error.strerror or error}"
                ) from None
