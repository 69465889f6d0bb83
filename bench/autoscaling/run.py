"""Run every autoscaler over every trace and print the comparison.

.venv/bin/python -m bench.autoscaling                    # the full report
.venv/bin/python -m bench.autoscaling --trace spike      # one trace
.venv/bin/python -m bench.autoscaling --replay my.csv    # your own request log too
.venv/bin/python -m bench.autoscaling --set window=30s --set tolerance=0.1
.venv/bin/python -m bench.autoscaling --seed 1           # other draws of the same traces
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.autoscaling import report, traces
from bench.autoscaling.cluster import Autoscaler, Result, Serving, simulate
from bench.autoscaling.scalers.cortex import CortexAutoscaler
from bench.autoscaling.scalers.ferry import TICK, FerryAutoscaler
from bench.autoscaling.scalers.hpa import HorizontalPodAutoscaler
from bench.autoscaling.scalers.kpa import KnativePodAutoscaler
from bench.autoscaling.scalers.oracle import Oracle
from ferry.autoscaling import AutoscalingPolicy, default_target_in_flight, parse_duration

AUTOSCALERS = ("ferry", "hpa", "kpa", "cortex", "oracle")
SERVING = Serving()

_DURATION_FIELDS = {"window", "panic_window", "upscale_stabilization", "downscale_stabilization"}


@dataclasses.dataclass(frozen=True)
class Job:
    trace: str
    autoscaler: str
    overrides: tuple[tuple[str, str], ...] = ()
    replay: Path | None = None
    ferry_interval: int = TICK
    seed: int | None = None


def ferry_policy(serving: Serving, overrides: Mapping[str, str]) -> AutoscalingPolicy:
    """Ferry's defaults for this serving, then the overrides (in the spec's units)."""
    fields = {f.name: f for f in dataclasses.fields(AutoscalingPolicy)}
    values: dict[str, float | int] = {
        "target_in_flight": default_target_in_flight(serving.max_concurrency),
        "min_replicas": serving.min_replicas,
        "max_replicas": serving.max_replicas,
        "max_concurrency": serving.max_concurrency,
        "max_queue_length": serving.max_queue_length,
    }
    for name, text in overrides.items():
        if name not in fields:
            raise SystemExit(f"--set {name}: not a policy field; one of {', '.join(fields)}")
        values[name] = (
            parse_duration(text)
            if name in _DURATION_FIELDS
            else int(text)
            if fields[name].type == "int"
            else float(text)
        )
    return AutoscalingPolicy(**values)  # type: ignore[arg-type]


@functools.cache
def _trace(name: str, replay: Path | None, seed: int | None) -> traces.Trace:
    if replay is not None and name == replay.stem:
        return traces.replay(replay)
    return next(t for t in traces.standard(seed) if t.name == name)


def build(job: Job, trace: traces.Trace, oracle: Oracle) -> Autoscaler:
    if job.autoscaler == "ferry":
        policy = ferry_policy(SERVING, dict(job.overrides))
        return FerryAutoscaler(policy, interval=job.ferry_interval)
    if job.autoscaler == "hpa":
        return HorizontalPodAutoscaler(target=SERVING.max_concurrency)
    if job.autoscaler == "kpa":
        return KnativePodAutoscaler(container_concurrency=SERVING.max_concurrency)
    if job.autoscaler == "cortex":
        return CortexAutoscaler(target=SERVING.max_concurrency)
    return oracle


def run_job(job: Job) -> Result:
    trace = _trace(job.trace, job.replay, job.seed)
    oracle = Oracle(trace, SERVING)
    # Every autoscaler starts where the oracle would: the first minute is not a cold start.
    return simulate(trace, build(job, trace, oracle), SERVING, initial=oracle.initial)


def run(jobs: Sequence[Job], workers: int) -> list[Result]:
    if workers <= 1:
        return [run_job(job) for job in jobs]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return pool.map(run_job, jobs, chunksize=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscaling", description=__doc__)
    names = [t.name for t in traces.standard()]
    parser.add_argument("--trace", action="append", choices=names, help="repeatable")
    parser.add_argument("--replay", type=Path, help="a CSV request log to add as a trace")
    parser.add_argument("--autoscaler", action="append", choices=AUTOSCALERS)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field of Ferry's policy, e.g. window=30s",
    )
    parser.add_argument(
        "--ferry-interval", type=int, default=TICK, help="seconds between Ferry's ticks"
    )
    parser.add_argument(
        "--seed", type=int, help="draw the synthetic traces from other random numbers"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    if any("=" not in item for item in args.set):
        parser.error("--set takes FIELD=VALUE")
    overrides = tuple((name, value) for name, _, value in (s.partition("=") for s in args.set))
    try:
        # Here rather than in a worker, whose exit would leave the pool waiting for ever.
        ferry_policy(SERVING, dict(overrides))
    except ValueError as error:
        parser.error(f"--set: {error}")
    chosen = list(args.trace or ([] if args.replay else names))
    if args.replay:
        chosen.append(args.replay.stem)
    # The oracle always runs: every replica-seconds figure is relative to it.
    scalers = dict.fromkeys([*(args.autoscaler or AUTOSCALERS), "oracle"])
    jobs = [
        Job(trace, scaler, overrides, args.replay, args.ferry_interval, args.seed)
        for trace in chosen
        for scaler in scalers
    ]
    started = time.perf_counter()
    results = run(jobs, args.workers)
    print(report.table(results))
    print()
    for line in report.verdicts(results):
        print(line)
    print(f"\n{len(jobs)} runs in {time.perf_counter() - started:.1f} s")
    return 0
