"""Pins and the build cache: a changed pin builds anew, an unchanged one is reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry_local.toolchain import (
    COMMANDS,
    ToolchainError,
    cache_key,
    ldflags,
    module_dir,
    module_versions,
)


def test_the_repository_pins_every_component() -> None:
    versions = module_versions((module_dir() / "go.mod").read_text())
    assert set(versions) == {"kubernetes", "etcd", "helm", "kwok"}
    assert all(v.startswith("v") for v in versions.values())


def test_every_staging_module_is_replaced_with_its_published_release() -> None:
    go_mod = (module_dir() / "go.mod").read_text()
    kube = module_versions(go_mod)["kubernetes"]
    staging = f"v0.{kube.split('.', 1)[1]}"
    replaced = [line for line in go_mod.splitlines() if "=>" in line]
    assert len(replaced) >= 30
    assert all(line.split()[-1] == staging for line in replaced), replaced


def test_a_missing_pin_is_an_error() -> None:
    with pytest.raises(ToolchainError, match=r"does not pin go\.etcd\.io/etcd/server/v3"):
        module_versions("module x\n\nrequire (\n\tk8s.io/kubernetes v1.2.3\n)\n")


def test_the_cache_key_follows_the_pins_and_the_go_version(tmp_path: Path) -> None:
    module = tmp_path / "module"
    shutil.copytree(module_dir(), module)
    first = cache_key(module, "go1.26.8 linux amd64")
    assert cache_key(module, "go1.26.8 linux amd64") == first
    assert cache_key(module, "go1.27.0 linux amd64") != first
    (module / "go.sum").write_text((module / "go.sum").read_text() + "\n")
    assert cache_key(module, "go1.26.8 linux amd64") != first


def test_binaries_are_stamped_with_their_release_versions() -> None:
    flags = ldflags({"kubernetes": "v1.37.2", "etcd": "v3.7.0", "helm": "v4.3.1", "kwok": "v0.8.0"})
    assert "k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "k8s.io/component-base/version.gitMinor=37" in flags
    assert "helm.sh/helm/v4/internal/version.version=v4.3.1" in flags


def test_the_binaries_needed_by_the_local_environment_are_all_built() -> None:
    assert {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "helm",
        "kwok",
    } <= set(COMMANDS)
    for name, package in COMMANDS.items():
        assert package.rsplit("/", 1)[-1] == name  # `go build -o DIR/` names binaries so
