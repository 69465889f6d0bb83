"""A container's environment: the kubelet's order, $(VAR) expansion and the downward API."""

from __future__ import annotations

from typing import Any

import pytest

from ferry_local.agent.env import ContainerConfigError, container_env, expand, object_data

POD: dict[str, Any] = {
    "metadata": {
        "name": "iris-0",
        "namespace": "ml",
        "uid": "u-1",
        "labels": {"app": "iris"},
        "annotations": {"note": "hi"},
    },
    "spec": {"nodeName": "local-0", "serviceAccountName": "default"},
}
OBJECTS = {
    ("Secret", "ml", "creds"): {"token": "s3cret"},
    ("ConfigMap", "ml", "settings"): {"mode": "fast", "bad-name!": "x", "level": "3"},
}


async def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
    return OBJECTS.get((kind, namespace, name))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(B)z", "x1y2z"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$A", "$A"),
        ("$(A", "$(A"),
        ("cost: 5$", "cost: 5$"),
        ("", ""),
    ],
)
def test_expansion_replaces_only_defined_variables(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


async def test_env_from_comes_first_and_env_expands_against_what_came_before() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "LATER", "value": "$(FIRST)-$(CFG_MODE)"},
            {"name": "FIRST", "value": "one"},
            {"name": "AGAIN", "value": "$(FIRST)"},
            {"name": "CFG_LEVEL", "value": "override"},
        ],
    }
    env = await container_env(POD, container, "127.128.0.7", "127.0.0.1", lookup)
    assert env == {
        "CFG_mode": "fast",
        "CFG_level": "3",
        "LATER": "$(FIRST)-$(CFG_MODE)",
        "FIRST": "one",
        "AGAIN": "one",
        "CFG_LEVEL": "override",
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("metadata.name", "iris-0"),
        ("metadata.namespace", "ml"),
        ("metadata.uid", "u-1"),
        ("spec.nodeName", "local-0"),
        ("spec.serviceAccountName", "default"),
        ("status.podIP", "127.128.0.7"),
        ("status.hostIP", "127.0.0.1"),
        ("metadata.labels['app']", "iris"),
        ("metadata.annotations['note']", "hi"),
    ],
)
async def test_the_downward_api(path: str, expected: str) -> None:
    container = {"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}]}
    env = await container_env(POD, container, "127.128.0.7", "127.0.0.1", lookup)
    assert env == {"V": expected}


async def test_secret_and_config_map_keys_are_read() -> None:
    container = {
        "env": [
            {"name": "T", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "M", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {
                "name": "O",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
        ]
    }
    env = await container_env(POD, container, "ip", "host", lookup)
    assert env == {"T": "s3cret", "M": "fast"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        ({"configMapKeyRef": {"name": "settings", "key": "k"}}, "couldn't find key k"),
        ({"resourceFieldRef": {"resource": "limits.cpu"}}, "not supported"),
        ({"fieldRef": {"fieldPath": "status.phase"}}, "not supported"),
    ],
)
async def test_what_cannot_be_resolved_is_a_config_error(
    source: dict[str, Any], message: str
) -> None:
    container = {"env": [{"name": "X", "valueFrom": source}]}
    with pytest.raises(ContainerConfigError, match=message):
        await container_env(POD, container, "ip", "host", lookup)


def test_secret_data_is_decoded() -> None:
    assert object_data({"kind": "Secret", "data": {"k": "aGVsbG8="}}) == {"k": "hello"}
    assert object_data({"kind": "ConfigMap", "data": {"k": "v"}}) == {"k": "v"}
