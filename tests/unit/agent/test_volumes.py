"""Volumes are folders of the pod; mount paths in commands, args and env point at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry_local.agent.env import ContainerConfigError
from ferry_local.agent.volumes import (
    Mount,
    PodFolder,
    container_mounts,
    env_name,
    mount_env,
    prepare_volumes,
    rewrite,
)

POD_ROOT = Path("/state/pods/ml_iris_u1")
MOUNTS = [
    Mount("tmp", "/tmp", POD_ROOT / "volumes/tmp"),
    Mount("model", "/mnt/model", POD_ROOT / "volumes/model"),
    Mount("mnt", "/mnt", POD_ROOT / "volumes/mnt"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/tmp", "/state/pods/ml_iris_u1/volumes/tmp"),
        ("/tmp/", "/state/pods/ml_iris_u1/volumes/tmp/"),
        ("/mnt/model/7", "/state/pods/ml_iris_u1/volumes/model/7"),
        ("/mnt/other", "/state/pods/ml_iris_u1/volumes/mnt/other"),
        ("--dest=/mnt/model", "--dest=/state/pods/ml_iris_u1/volumes/model"),
        ("echo x > /tmp/out", "echo x > /state/pods/ml_iris_u1/volumes/tmp/out"),
        (
            "'/tmp/a' \"/tmp/b\"",
            "'/state/pods/ml_iris_u1/volumes/tmp/a' \"/state/pods/ml_iris_u1/volumes/tmp/b\"",
        ),
        ("/var/tmp", "/var/tmp"),
        ("/tmpfs", "/tmpfs"),
        ("/tmp.d", "/tmp.d"),
        ("http://host/tmp", "http://host/tmp"),
        ("s3://bucket/mnt/model", "s3://bucket/mnt/model"),
        ("no paths here", "no paths here"),
    ],
)
def test_mount_paths_become_the_pods_folders(text: str, expected: str) -> None:
    assert rewrite(text, MOUNTS) == expected


def test_each_mount_is_named_in_the_env_and_tmp_and_model_have_their_variables() -> None:
    env = mount_env(MOUNTS)
    assert env["FERRY_VOLUME_TMP"] == env["TMPDIR"] == str(POD_ROOT / "volumes/tmp")
    assert env["FERRY_VOLUME_MODEL"] == env["FERRY_MODEL_DIR"] == str(POD_ROOT / "volumes/model")
    assert env["FERRY_VOLUME_MNT"] == str(POD_ROOT / "volumes/mnt")
    assert env_name("kube-api-access.x1") == "FERRY_VOLUME_KUBE_API_ACCESS_X1"


def test_mounts_resolve_to_volume_folders_host_paths_and_sub_paths() -> None:
    folder = PodFolder(POD_ROOT)
    pod = {
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "host", "hostPath": {"path": "/srv/shared"}},
            ]
        }
    }
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/cache", "subPath": "cache"},
            {"name": "host", "mountPath": "/shared"},
        ]
    }
    assert container_mounts(folder, pod, container) == [
        Mount("data", "/data", POD_ROOT / "volumes/data"),
        Mount("data", "/cache", POD_ROOT / "volumes/data/cache"),
        Mount("host", "/shared", Path("/srv/shared")),
    ]
    with pytest.raises(ContainerConfigError, match="names no volume"):
        container_mounts(folder, pod, {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]})


async def test_config_map_and_secret_volumes_hold_their_keys(tmp_path: Path) -> None:
    async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return {"ConfigMap": {"a.yaml": "a: 1", "b": "2"}, "Secret": {"key": "k"}}.get(kind)

    pod = {
        "metadata": {"namespace": "ml"},
        "spec": {
            "volumes": [
                {"name": "empty", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "c"}},
                {
                    "name": "sec",
                    "secret": {"secretName": "s", "items": [{"key": "key", "path": "sub/k"}]},
                },
            ]
        },
    }
    folder = PodFolder(tmp_path)
    await prepare_volumes(folder, pod, lookup)
    assert list(folder.volume("empty").iterdir()) == []
    assert (folder.volume("cfg") / "a.yaml").read_text() == "a: 1"
    assert (folder.volume("cfg") / "b").read_text() == "2"
    assert (folder.volume("sec") / "sub" / "k").read_text() == "k"


async def test_an_item_path_may_not_leave_its_volume(tmp_path: Path) -> None:
    async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return {"k": "v"}

    pod = {
        "metadata": {"namespace": "ml"},
        "spec": {
            "volumes": [
                {
                    "name": "cfg",
                    "configMap": {"name": "c", "items": [{"key": "k", "path": "../../x"}]},
                }
            ]
        },
    }
    with pytest.raises(ContainerConfigError, match="leaves it"):
        await prepare_volumes(PodFolder(tmp_path), pod, lookup)
