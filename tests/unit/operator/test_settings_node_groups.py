"""FERRY_NODE_GROUPS with Auto Scaling groups, and the capacity loop's settings: what the Helm
chart writes is read, and every mistake is refused with the group and the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ferry.capacity.node_group import NodeGroup, Taint
from ferry.capacity.resources import Resources
from ferry.settings import Settings, SettingsError, parse_node_groups

Gi = 2**30
GPU_GROUP = {
    "name": "gpu-a10g",
    "asgName": "eks-gpu-a10g",
    "labels": {"ferry.dev/node-group": "gpu-a10g"},
    "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    "allocatable": {"cpu": "4", "memory": "16Gi", "gpu": 1},
    "minSize": 1,
    "maxSize": 5,
}


def groups(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def test_the_charts_node_group_is_read_whole() -> None:
    group = parse_node_groups(groups(GPU_GROUP))["gpu-a10g"]
    assert group == NodeGroup(
        name="gpu-a10g",
        labels={"ferry.dev/node-group": "gpu-a10g"},
        taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),),
        asg_name="eks-gpu-a10g",
        allocatable=Resources(4000, 16 * Gi, 1),
        min_size=1,
        max_size=5,
    )


def test_a_group_without_an_asg_is_only_a_place_to_schedule() -> None:
    group = parse_node_groups(groups({"name": "local", "labels": {"a": "b"}}))["local"]
    assert (group.asg_name, group.allocatable, group.min_size, group.max_size) == (
        None,
        None,
        0,
        None,
    )


@pytest.mark.parametrize(
    ("allocatable", "expected"),
    [
        ({"cpu": 2, "memory": 8589934592}, Resources(2000, 8 * Gi)),
        ({"cpu": "3500m", "memory": "7.5Gi", "gpu": "2"}, Resources(3500, 7 * Gi + Gi // 2, 2)),
        ({"cpu": 0.5, "memory": "512Mi"}, Resources(500, Gi // 2)),
    ],
)
def test_allocatable_takes_numbers_and_quantities(
    allocatable: dict[str, Any], expected: Resources
) -> None:
    entry = {"name": "g", "asgName": "a", "allocatable": allocatable}
    assert parse_node_groups(groups(entry))["g"].allocatable == expected


def test_capacity_loop_defaults_and_overrides() -> None:
    assert (Settings().capacity_interval, Settings().scale_in_cooldown) == (10.0, 600.0)
    tuned = Settings.from_env({"FERRY_CAPACITY_INTERVAL": "2", "FERRY_SCALE_IN_COOLDOWN": "30"})
    assert (tuned.capacity_interval, tuned.scale_in_cooldown) == (2.0, 30.0)


def _with(**changes: Any) -> dict[str, Any]:
    entry = {**GPU_GROUP, **changes}
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"name": "g"}', "not a list of node groups"),
        ('["g"]', r"FERRY_NODE_GROUPS\[0\] is not a node group"),
        (groups(_with(name="GPU")), "name 'GPU' must be a lower-case DNS label"),
        (groups(_with(minSize=6)), r"\(gpu-a10g\): minSize 6 is above maxSize 5"),
        (groups(_with(minSize=-1)), "minSize must be a whole number of nodes, not -1"),
        (groups(_with(maxSize="5")), "maxSize must be a whole number of nodes, not '5'"),
        (groups(_with(maxSize=True)), "maxSize must be a whole number"),
        (groups(_with(allocatable=None)), "allocatable .* is required with asgName"),
        (groups(_with(allocatable={"cpu": "4"})), "allocatable needs cpu and memory"),
        (
            groups(_with(allocatable={"cpu": "four", "memory": "16Gi"})),
            "'four' is not a quantity",
        ),
        (groups(_with(allocatable={"cpu": "4", "memory": "16GB"})), "'16GB' is not a quantity"),
        (groups(_with(allocatable={"cpu": "0", "memory": "1Gi"})), "must be above 0"),
        (
            groups(_with(allocatable={"cpu": "4", "memory": "1Gi", "gpu": 1.5})),
            "gpu must be a whole number, not 1.5",
        ),
        (
            groups(_with(allocatable={"cpu": "4", "memory": "1Gi", "gpus": 1})),
            "unknown field.* gpus",
        ),
        (groups(_with(asgName="")), "asgName must be the Auto Scaling group's name"),
        (groups(_with(asgname="x")), r"unknown field\(s\) asgname; known: allocatable, asgName"),
        (groups(_with(labels={"a": 1})), "labels must map strings to strings"),
        (groups(_with(taints=[{"value": "x"}])), "taint 0: a taint is .* with a key"),
        (groups(_with(taints=[{"key": "k", "effect": "Never"}])), "effect must be one of"),
        (groups(GPU_GROUP, GPU_GROUP), "names 'gpu-a10g' twice"),
        (
            groups(GPU_GROUP, _with(name="other")),
            "'gpu-a10g' and 'other' both name Auto Scaling group 'eks-gpu-a10g'",
        ),
    ],
)
def test_a_bad_node_group_is_refused_with_its_place_named(text: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env({"FERRY_NODE_GROUPS": text})


@pytest.mark.parametrize("name", ["FERRY_CAPACITY_INTERVAL", "FERRY_SCALE_IN_COOLDOWN"])
@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_capacity_loop_times_must_be_seconds_above_zero(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be seconds above 0"):
        Settings.from_env({name: value})
