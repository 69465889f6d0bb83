"""The control plane's binaries, built from their official Go modules and cached by version.

Three Go modules under tools/ pin every component: tools/kubernetes the control plane,
kube-proxy, etcd, helm and kwok (one dependency graph), tools/coredns the cluster's DNS server and
tools/gateway Envoy Gateway with the Gateway API CRDs (graphs of their own). Files a module's
source holds besides its commands (the CRDs) are copied from Go's module cache next to the
binaries. Their go.mod and go.sum, the sources of their own small commands and the Go toolchain's
version make the cache key, so a second start reuses the binaries and a changed pin builds a new
set beside the old one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ferry_local.layout import cache_root


@dataclass(frozen=True)
class GoModule:
    """A folder of tools/: the commands built from it and the components it pins."""

    folder: str
    # Binary name -> Go package; `go build -o DIR/` names each binary after its package's last
    # element.
    commands: dict[str, str]
    # Component -> the module whose require line pins it.
    pins: dict[str, str]
    # Whether ldflags() stamps the release versions in (CoreDNS carries its own in its source).
    stamped: bool = False
    # Folder of the toolchain -> (module, glob in the module's source): files copied there.
    files: dict[str, tuple[str, str]] = field(default_factory=dict)


KUBERNETES = GoModule(
    "kubernetes",
    {
        "etcd": "./cmd/etcd",
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        "helm": "helm.sh/helm/v4/cmd/helm",
        "kwok": "sigs.k8s.io/kwok/cmd/kwok",
        "kwok-stages": "./cmd/kwok-stages",
    },
    {
        "kubernetes": "k8s.io/kubernetes",
        "etcd": "go.etcd.io/etcd/server/v3",
        "helm": "helm.sh/helm/v4",
        "kwok": "sigs.k8s.io/kwok",
    },
    stamped=True,
)
COREDNS = GoModule(
    "coredns",
    {"coredns": "github.com/coredns/coredns"},
    {"coredns": "github.com/coredns/coredns"},
)
GATEWAY_API_CRDS = "crds/gateway-api"
ENVOY_GATEWAY_CRDS = "crds/envoy-gateway"
GATEWAY = GoModule(
    "gateway",
    {"envoy-gateway": "github.com/envoyproxy/gateway/cmd/envoy-gateway"},
    {"envoy-gateway": "github.com/envoyproxy/gateway", "gateway-api": "sigs.k8s.io/gateway-api"},
    files={
        GATEWAY_API_CRDS: ("sigs.k8s.io/gateway-api", "config/crd/standard/*.yaml"),
        ENVOY_GATEWAY_CRDS: (
            "github.com/envoyproxy/gateway",
            "charts/gateway-helm/charts/crds/crds/generated/*.yaml",
        ),
    },
)
MODULES = (KUBERNETES, COREDNS, GATEWAY)
COMMANDS = {name: package for module in MODULES for name, package in module.commands.items()}

KWOK_STAGES = "kwok-stages.yaml"
_COMPLETE = ".complete"

Progress = Callable[[int, int], None]


class ToolchainError(RuntimeError):
    """The binaries could not be built; the message carries the tail of the Go build's output."""


@dataclass(frozen=True)
class Toolchain:
    root: Path
    versions: dict[str, str]

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def binary(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def kwok_stages(self) -> Path:
        return self.root / KWOK_STAGES

    @property
    def gateway_crds(self) -> list[Path]:
        """Gateway API's standard CRDs, then Envoy Gateway's own."""
        return [
            *sorted((self.root / GATEWAY_API_CRDS).glob("*.yaml")),
            *sorted((self.root / ENVOY_GATEWAY_CRDS).glob("*.yaml")),
        ]


def tools_dir() -> Path:
    if explicit := os.environ.get("FERRY_TOOLS_DIR"):
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "tools"


def module_versions(module: GoModule, go_mod: str) -> dict[str, str]:
    """The pinned version of each of the module's components, read from go.mod's require lines."""
    versions: dict[str, str] = {}
    for label, path in module.pins.items():
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)", go_mod, re.M)
        if match is None:
            raise ToolchainError(f"tools/{module.folder}/go.mod does not pin {path}")
        versions[label] = match.group(1)
    return versions


def all_versions(tools: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    for module in MODULES:
        versions |= module_versions(module, (tools / module.folder / "go.mod").read_text())
    return versions


def cache_key(tools: Path, go_version: str) -> str:
    digest = hashlib.sha256(go_version.encode())
    for module in MODULES:
        folder = tools / module.folder
        for path in [folder / "go.mod", folder / "go.sum", *sorted(folder.glob("cmd/**/*.go"))]:
            digest.update(path.relative_to(tools).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def ldflags(versions: dict[str, str]) -> str:
    """Stamp the real versions into the binaries, as the projects' own release builds do."""
    kube = versions["kubernetes"]
    major, minor = kube.lstrip("v").split(".")[:2]
    stamps = {
        "k8s.io/component-base/version.gitVersion": kube,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": kube,
        "k8s.io/client-go/pkg/version.gitMajor": major,
        "k8s.io/client-go/pkg/version.gitMinor": minor,
        "helm.sh/helm/v4/internal/version.version": versions["helm"],
        "sigs.k8s.io/kwok/pkg/consts.Version": versions["kwok"].lstrip("v"),
    }
    return " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in stamps.items())])


def _go_version() -> str:
    if shutil.which("go") is None:
        raise ToolchainError(
            "the Go toolchain is needed to build the control plane: `go` is not on PATH"
        )
    return (
        subprocess.run(
            ["go", "env", "GOVERSION", "GOOS", "GOARCH"], check=True, capture_output=True, text=True
        )
        .stdout.replace("\n", " ")
        .strip()
    )


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def locate() -> Toolchain:
    """Where this checkout's binaries are (or will be) cached, without building anything."""
    tools = tools_dir()
    versions = all_versions(tools)
    key = cache_key(tools, _go_version())
    return Toolchain(cache_root() / "toolchain" / f"k8s-{versions['kubernetes']}-{key}", versions)


def is_built(toolchain: Toolchain) -> bool:
    return (toolchain.root / _COMPLETE).exists()


def ensure_built(progress: Progress | None = None) -> Toolchain:
    toolchain = locate()
    if is_built(toolchain):
        return toolchain
    with _build_lock(toolchain.root.parent):
        if not is_built(toolchain):  # another process may have built it while we waited
            _build(toolchain, tools_dir(), progress)
    return toolchain


def _build(toolchain: Toolchain, tools: Path, progress: Progress | None) -> None:
    staging = toolchain.root.with_name(toolchain.root.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    total = sum(_count_packages(tools / m.folder, list(m.commands.values())) for m in MODULES)
    done = 0

    def built_one() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total)

    for module in MODULES:
        flags = ldflags(toolchain.versions) if module.stamped else "-s -w"
        _go_build(tools / module.folder, module, flags, staging / "bin", built_one)
        _copy_files(tools / module.folder, module, staging)
    stages = subprocess.run(
        [staging / "bin" / "kwok-stages"], check=True, capture_output=True, text=True
    ).stdout
    (staging / KWOK_STAGES).write_text(stages)
    (staging / _COMPLETE).write_text(" ".join(f"{k}={v}" for k, v in toolchain.versions.items()))
    shutil.rmtree(toolchain.root, ignore_errors=True)
    staging.rename(toolchain.root)
    if progress is not None:
        progress(total, total)


def _go_build(
    folder: Path, module: GoModule, flags: str, bin_dir: Path, built_one: Callable[[], None]
) -> None:
    command = ["go", "build", "-v", f"-ldflags={flags}", "-o", f"{bin_dir}/"]
    output: list[str] = []
    with subprocess.Popen(
        [*command, *module.commands.values()],
        cwd=folder,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as build:
        assert build.stderr is not None
        for line in build.stderr:
            output.append(line.rstrip())
            if not line.startswith(("#", " ", "\t")) and " " not in line.strip():
                built_one()
    if build.returncode != 0:
        tail = "\n".join(output[-40:])
        raise ToolchainError(f"go build failed in {folder} (exit {build.returncode}):\n{tail}")


def _copy_files(folder: Path, module: GoModule, staging: Path) -> None:
    for target, (path, pattern) in module.files.items():
        source = Path(
            subprocess.run(
                ["go", "list", "-m", "-f", "{{.Dir}}", path],
                cwd=folder,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        found = sorted(source.glob(pattern))
        if not found:
            raise ToolchainError(f"{path} holds no {pattern} (in {source})")
        (staging / target).mkdir(parents=True)
        for file in found:
            shutil.copyfile(file, staging / target / file.name)


def _count_packages(module: Path, packages: list[str]) -> int:
    listed = subprocess.run(
        ["go", "list", "-deps", *packages], cwd=module, check=True, capture_output=True, text=True
    ).stdout
    return max(1, len(listed.split()))
