"""The comparison table, and whether Ferry met its goal on each trace: no more rejections than
the best peer at no more than 1.15x the oracle's replica-seconds."""

from __future__ import annotations

from collections.abc import Sequence

from bench.autoscaling.cluster import Result

COST_GOAL = 1.15
PEERS = ("hpa", "kpa", "cortex")


def table(results: Sequence[Result]) -> str:
    oracle = {r.trace: r.replica_seconds for r in results if r.autoscaler == "oracle"}
    lines = [
        "| trace | autoscaler | requests | rejected (503) | p99 queueing | replica-s / oracle"
        " | scaling actions |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        share = 100 * r.rejected / r.requests if r.requests else 0.0
        lines.append(
            f"| {r.trace} | {r.autoscaler} | {r.requests} | {r.rejected} ({share:.2f} %)"
            f" | {r.p99_queueing:.2f} s | {r.replica_seconds / oracle[r.trace]:.2f}"
            f" | {r.scaling_actions} |"
        )
    return "\n".join(lines)


def verdicts(results: Sequence[Result]) -> list[str]:
    lines = []
    for trace in dict.fromkeys(r.trace for r in results):
        runs = {r.autoscaler: r for r in results if r.trace == trace}
        if "ferry" not in runs or "oracle" not in runs:
            continue
        ferry = runs["ferry"]
        peers = [runs[name] for name in PEERS if name in runs]
        best = min(peers, key=lambda r: (r.rejected, r.replica_seconds), default=None)
        cost = ferry.replica_seconds / runs["oracle"].replica_seconds
        rejections_ok = best is None or ferry.rejected <= best.rejected
        met = rejections_ok and cost <= COST_GOAL
        against = f" vs {best.rejected} for {best.autoscaler}" if best else ""
        lines.append(
            f"{trace}: {'met' if met else 'MISSED'}: ferry rejected {ferry.rejected}{against},"
            f" {cost:.2f}x the oracle's replica-seconds (goal <= {COST_GOAL}x)"
        )
    return lines
