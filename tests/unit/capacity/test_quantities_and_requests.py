"""Kubernetes quantities read exactly, and a pod's request by the scheduler's own rule."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from ferry.capacity.quantity import (
    QuantityError,
    format_bytes,
    format_millicores,
    millicores,
    parse_quantity,
    whole,
)
from ferry.capacity.resources import GPU, Resources, pod_requests

Mi, Gi = 2**20, 2**30


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("100m", Fraction(1, 10)),
        ("0.1", Fraction(1, 10)),
        (".5", Fraction(1, 2)),
        ("2.", Fraction(2)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("512Mi", Fraction(512 * Mi)),
        ("16Gi", Fraction(16 * Gi)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1E", Fraction(10**18)),
        ("1e3", Fraction(1000)),
        ("1E-2", Fraction(1, 100)),
        ("250u", Fraction(1, 4000)),
        ("+3", Fraction(3)),
        (" 4 ", Fraction(4)),
        (4, Fraction(4)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_quantities_are_read_exactly(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text", ["", "m", "1.2.3", "1Mb", "1 Gi", "1e", "Gi", "1e999", "abc", True, None, [1]]
)
def test_what_is_not_a_quantity_says_so(text: Any) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_cpu_and_counts_round_up_as_the_scheduler_counts_them() -> None:
    assert millicores("0.1m") == 1
    assert millicores("1.5") == 1500
    assert millicores(2) == 2000
    assert whole("1.5Ki") == 1536
    assert whole("0.5") == 1


def test_quantities_print_in_their_natural_unit() -> None:
    assert format_millicores(700) == "700m"
    assert format_millicores(4000) == "4"
    assert format_bytes(320 * Mi) == "320Mi"
    assert format_bytes(16 * Gi) == "16Gi"
    assert format_bytes(1000) == "1000"
    assert str(Resources(700, 320 * Mi)) == "cpu 700m, memory 320Mi"
    assert str(Resources(4000, 16 * Gi, 1)) == "cpu 4, memory 16Gi, gpu 1"


def container(cpu: str, memory: str, **extra: Any) -> dict[str, Any]:
    return {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_a_ferry_pod_asks_for_its_predictor_and_its_proxy_together() -> None:
    spec = {
        "initContainers": [container("100m", "128Mi")],
        "containers": [container("600m", "256Mi"), container("100m", "64Mi")],
    }
    assert pod_requests(spec) == Resources(700, 320 * Mi)


def test_an_init_container_larger_than_the_containers_sets_the_request() -> None:
    spec = {
        "initContainers": [container("2", "64Mi")],
        "containers": [container("500m", "1Gi")],
    }
    assert pod_requests(spec) == Resources(2000, Gi)


def test_sidecars_run_beside_everything_started_after_them() -> None:
    sidecar = container("200m", "100Mi", restartPolicy="Always")
    spec = {
        "initContainers": [container("1", "10Mi"), sidecar, container("900m", "10Mi")],
        "containers": [container("300m", "50Mi")],
    }
    # max(1000 alone, 200 + 900 after the sidecar, 300 + 200 running) = 1100m
    assert pod_requests(spec) == Resources(1100, 150 * Mi)


def test_overhead_gpus_and_pod_level_requests_count() -> None:
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "1", "memory": "1Gi", GPU: "1"}}},
            {"resources": {}},
        ],
        "overhead": {"cpu": "250m", "memory": "120Mi"},
    }
    assert pod_requests(spec) == Resources(1250, Gi + 120 * Mi, 1)
    spec["resources"] = {"requests": {"cpu": "3"}}
    assert pod_requests(spec) == Resources(3250, Gi + 120 * Mi, 1)


def test_a_pod_without_requests_asks_for_nothing() -> None:
    assert pod_requests({"containers": [{"name": "c"}]}) == Resources()


def test_resources_add_subtract_and_compare() -> None:
    node = Resources(4000, 16 * Gi, 1)
    pod = Resources(1500, 2 * Gi)
    assert node - pod == Resources(2500, 14 * Gi, 1)
    assert pod.fits_in(node)
    assert not Resources(gpu=2).fits_in(node)
    assert pod.share_of(node) == pytest.approx(0.375)
    assert Resources(100, 10).largest(Resources(50, 20)) == Resources(100, 20)
