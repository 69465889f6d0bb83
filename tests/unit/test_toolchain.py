"""Pins and the build cache: a changed pin builds anew, an unchanged one is reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry_local.toolchain import (
    COMMANDS,
    COREDNS,
    KUBERNETES,
    MODULES,
    GoModule,
    ToolchainError,
    all_versions,
    cache_key,
    ldflags,
    module_versions,
    tools_dir,
)


def test_the_repository_pins_every_component() -> None:
    versions = all_versions(tools_dir())
    assert set(versions) == {
        "kubernetes",
        "etcd",
        "helm",
        "kwok",
        "coredns",
        "envoy-gateway",
        "gateway-api",
    }
    assert all(v.startswith("v") for v in versions.values())


def test_coredns_is_pinned_to_a_1_15_release() -> None:
    assert all_versions(tools_dir())["coredns"].startswith("v1.15.")


def test_envoy_gateway_and_gateway_api_are_pinned_to_the_releases_that_pair() -> None:
    versions = all_versions(tools_dir())
    assert versions["envoy-gateway"].startswith("v1.9.")
    assert versions["gateway-api"].startswith("v1.6.")


def test_every_staging_module_is_replaced_with_its_published_release() -> None:
    go_mod = (tools_dir() / "kubernetes" / "go.mod").read_text()
    kube = module_versions(KUBERNETES, go_mod)["kubernetes"]
    staging = f"v0.{kube.split('.', 1)[1]}"
    replaced = [line for line in go_mod.splitlines() if "=>" in line]
    assert len(replaced) >= 30
    assert all(line.split()[-1] == staging for line in replaced), replaced


def test_a_missing_pin_is_an_error() -> None:
    with pytest.raises(
        ToolchainError, match=r"tools/kubernetes/go\.mod does not pin go\.etcd\.io/etcd/server/v3"
    ):
        module_versions(KUBERNETES, "module x\n\nrequire (\n\tk8s.io/kubernetes v1.2.3\n)\n")


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.folder)
def test_the_cache_key_follows_each_modules_pins_and_the_go_version(
    tmp_path: Path, module: GoModule
) -> None:
    tools = tmp_path / "tools"
    for each in MODULES:
        shutil.copytree(tools_dir() / each.folder, tools / each.folder)
    first = cache_key(tools, "go1.26.8 linux amd64")
    assert cache_key(tools, "go1.26.8 linux amd64") == first
    assert cache_key(tools, "go1.27.0 linux amd64") != first
    go_sum = tools / module.folder / "go.sum"
    go_sum.write_text(go_sum.read_text() + "\n")
    assert cache_key(tools, "go1.26.8 linux amd64") != first


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
        "kube-proxy",
        "kubectl",
        "helm",
        "kwok",
        "coredns",
    } <= set(COMMANDS)
    for name, package in COMMANDS.items():
        assert package.rsplit("/", 1)[-1] == name  # `go build -o DIR/` names binaries so


def test_each_command_is_imported_by_its_modules_tools_file_so_go_sum_covers_it() -> None:
    for module in MODULES:
        imports = (tools_dir() / module.folder / "tools.go").read_text()
        for package in module.commands.values():
            assert package.startswith("./") or f'"{package}"' in imports, package


def test_coredns_is_built_from_a_module_of_its_own_without_the_kubernetes_stamps() -> None:
    assert COREDNS.folder != KUBERNETES.folder
    assert KUBERNETES.stamped
    assert not COREDNS.stamped
