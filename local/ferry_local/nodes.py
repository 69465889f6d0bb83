"""Simulated nodes: Node objects that kwok keeps Ready and whose pods it runs in simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NODE_KIND_LABEL = "ferry.dev/node-kind"
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}


@dataclass(frozen=True)
class NodeShape:
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    gpu: int = 0


def kwok_node(name: str, shape: NodeShape, labels: dict[str, str] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": shape.cpu, "memory": shape.memory, "pods": str(shape.pods)}
    if shape.gpu:
        resources["nvidia.com/gpu"] = str(shape.gpu)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                NODE_KIND_LABEL: "kwok",
                **(labels or {}),
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def kwok_nodes(
    count: int, shape: NodeShape = NodeShape(), prefix: str = "kwok-node"
) -> list[dict[str, Any]]:
    return [kwok_node(f"{prefix}-{index}", shape) for index in range(count)]
