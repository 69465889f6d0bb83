"""Request traces: when each request arrives and how long its predictor works on it.

Synthetic traces draw Poisson arrivals from a rate curve and log-normal service times from a
seeded RNG, so every run of a trace is the same requests. Real logs come in through replay():
a CSV of `timestamp_seconds,service_seconds` (docs/autoscaling.md describes the format).
"""

from __future__ import annotations

import bisect
import csv
import math
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

EXAMPLE_REPLAY = Path(__file__).parent / "replays" / "example.csv"

Rate = Callable[[float], float]
"""Requests per second at a time in seconds."""


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    duration: float
    arrivals: Sequence[float]
    """Arrival times in seconds from the start, ascending."""
    services: Sequence[float]
    """Seconds of predictor work per request, aligned with `arrivals`."""


def piecewise(*points: tuple[float, float]) -> Rate:
    """A rate through (seconds, rps) points, linear in between; a repeated time is a step."""

    def rate(t: float) -> float:
        index = bisect.bisect_right(points, t, key=lambda point: point[0])
        if index == 0:
            return points[0][1]
        if index == len(points):
            return points[-1][1]
        (t0, r0), (t1, r1) = points[index - 1], points[index]
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    return rate


def poisson(
    name: str,
    description: str,
    duration: float,
    rate: Rate,
    *,
    peak_rate: float,
    mean_service: float = 0.25,
    service_spread: float = 0.4,
    seed: int | None = None,
) -> Trace:
    """Arrivals of a non-homogeneous Poisson process (thinning against `peak_rate`), each with
    a log-normal service time of the given mean and log-space standard deviation; seeded by the
    trace's name so that traces do not share random numbers, and by `seed` when given, for
    other draws of the same shape."""
    key = name if seed is None else f"{name}-{seed}"
    rng = random.Random(zlib.crc32(key.encode()))  # noqa: S311 - reproducible, not secret
    mu = math.log(mean_service) - service_spread**2 / 2
    arrivals: list[float] = []
    services: list[float] = []
    now = 0.0
    while True:
        now += rng.expovariate(peak_rate)
        if now >= duration:
            break
        if rng.random() * peak_rate < rate(now):
            arrivals.append(now)
            services.append(rng.lognormvariate(mu, service_spread))
    return Trace(name, description, duration, arrivals, services)


def step(low: float = 30.0, high: float = 300.0, seed: int | None = None) -> Trace:
    return poisson(
        "step",
        f"{low:g} rps, {high:g} rps from 300 s to 900 s, then {low:g} rps until 1500 s",
        1500.0,
        piecewise((300.0, low), (300.0, high), (900.0, high), (900.0, low)),
        peak_rate=high,
        seed=seed,
    )


def ramp(low: float = 20.0, high: float = 250.0, seed: int | None = None) -> Trace:
    return poisson(
        "ramp",
        f"{low:g} to {high:g} rps over 10 min, 5 min flat, down over 10 min",
        1800.0,
        piecewise((0.0, low), (600.0, high), (900.0, high), (1500.0, low)),
        peak_rate=high,
        seed=seed,
    )


def spike(base: float = 40.0, peak: float = 400.0, seed: int | None = None) -> Trace:
    return poisson(
        "spike",
        f"{base:g} rps with a 30 s spike to {peak:g} rps at 400 s",
        1200.0,
        piecewise((400.0, base), (400.0, peak), (430.0, peak), (430.0, base)),
        peak_rate=peak,
        seed=seed,
    )


def diurnal(
    low: float = 20.0, high: float = 200.0, day: float = 1200.0, seed: int | None = None
) -> Trace:
    return poisson(
        "diurnal",
        f"sine between {low:g} and {high:g} rps, a {day:g} s day, two days",
        2 * day,
        lambda t: low + (high - low) * (1 - math.cos(2 * math.pi * t / day)) / 2,
        peak_rate=high,
        seed=seed,
    )


def bursts(
    on: float = 200.0,
    off: float = 20.0,
    on_for: float = 60.0,
    off_for: float = 120.0,
    seed: int | None = None,
) -> Trace:
    return poisson(
        "bursts",
        f"on/off: {on_for:g} s at {on:g} rps, {off_for:g} s at {off:g} rps, repeated",
        1800.0,
        lambda t: on if t % (on_for + off_for) < on_for else off,
        peak_rate=on,
        seed=seed,
    )


def replay(path: Path, name: str | None = None) -> Trace:
    """A trace from a request log: a CSV with a header row and the columns
    timestamp_seconds,service_seconds; timestamps are shifted to start at zero and sorted."""
    with path.open(newline="") as file:
        rows = sorted(
            (float(row["timestamp_seconds"]), float(row["service_seconds"]))
            for row in csv.DictReader(file)
        )
    if not rows:
        raise ValueError(f"{path} holds no requests")
    start = rows[0][0]
    arrivals = [t - start for t, _ in rows]
    return Trace(
        name or path.stem,
        f"replay of {path.name}: {len(rows)} requests",
        math.ceil(arrivals[-1]) + 1.0,
        arrivals,
        [service for _, service in rows],
    )


def standard(seed: int | None = None) -> list[Trace]:
    """Every trace of the report, in its order; `seed` redraws the synthetic ones."""
    return [
        step(seed=seed),
        ramp(seed=seed),
        spike(seed=seed),
        diurnal(seed=seed),
        bursts(seed=seed),
        replay(EXAMPLE_REPLAY, "replay"),
    ]
