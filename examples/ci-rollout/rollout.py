#!/usr/bin/env python3
"""Roll a new version of a RealtimeAPI out from a CI pipeline, and fail the job if it does not.

Sets the model version or the image (in a manifest file, or on the API in the cluster), applies
it, then follows the API's status until Ready is True for the new generation, the operator gives
the rollout up (rolled back, past its progress deadline, an invalid spec), or the timeout passes.
Prints the outcome and the revision history; exits 0 only when the new generation is rolled out.

With --canary PERCENT the new version runs first as the API's canary, sent PERCENT of the
requests through its Gateway; once it takes them, its error rate and latency are read from its
pods' proxies (their /metrics, through the API server's pod proxy) over --observe seconds, then
it is promoted (the stable version rolls it out) or aborted (the job fails).

Needs only Python 3.10+ and kubectl (with the pipeline's kubeconfig). Exit codes: 0 rolled out
(promoted), 1 failed, rolled back or aborted, 2 timed out, 3 could not apply.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ROLLED_OUT, FAILED, TIMED_OUT, NOT_APPLIED = 0, 1, 2, 3
# Progressing=False with one of these reasons for the new generation: the operator has stopped
# trying, so waiting longer cannot help.
GIVEN_UP = {"RolledBack", "ProgressDeadlineExceeded", "InvalidSpec"}
# Canary=False with a reason but these: the canary cannot run (its model version is not there,
# its names are taken, it made no progress), so waiting longer cannot help either.
CANARY_GOING = {"CanaryPromoted", "CanaryAborted", "CanaryRemoving"}
POLL_SECONDS = 2.0
# The proxy's admin port, whose /metrics holds its request counts and latency histogram.
PROXY_ADMIN_PORT = 8889


class KubectlError(RuntimeError):
    pass


def kubectl(args: argparse.Namespace, *command: str, stdin: str | None = None) -> Any:
    """Run kubectl; its JSON output, parsed."""
    argv = [args.kubectl, *command, "-o", "json"]
    if args.namespace:
        argv[1:1] = ["--namespace", args.namespace]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(command)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def raw(args: argparse.Namespace, path: str) -> str:
    """`kubectl get --raw PATH`: the API server's answer as text."""
    argv = [args.kubectl, "get", "--raw", path]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KubectlError(f"kubectl get --raw {path}: {done.stderr.strip()}")
    return done.stdout


def bump(args: argparse.Namespace) -> dict[str, Any]:
    """The merge patch that sets the new version (and, after a canary, takes it out)."""
    if args.image:
        spec: dict[str, Any] = {"predictor": {"image": args.image}}
    else:
        spec = {"model": {"version": args.model_version}}
    if args.canary is not None:
        spec["canary"] = None
    return {"spec": spec}


def canary(args: argparse.Namespace) -> dict[str, Any]:
    """The merge patch that runs the new version as the canary."""
    candidate: dict[str, Any] = {"trafficPercent": args.canary}
    if args.image:
        candidate["image"] = args.image
    else:
        candidate["modelVersion"] = args.model_version
    return {"spec": {"canary": candidate}}


ABORT: dict[str, Any] = {"spec": {"canary": None}}


def apply(args: argparse.Namespace, change: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply `change` (by default, the new version); the API as the server stored it."""
    patch = json.dumps(bump(args) if change is None else change)
    if args.filename:
        local = kubectl(args, "patch", "--local", "-f", args.filename, "--type=merge", "-p", patch)
        applied: dict[str, Any] = kubectl(args, "apply", "-f", "-", stdin=json.dumps(local))
        return applied
    patched: dict[str, Any] = kubectl(
        args, "patch", "realtimeapi", args.name, "--type=merge", "-p", patch
    )
    return patched


def condition(api: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in api.get("status", {}).get("conditions", []):
        if found.get("type") == kind:
            return dict(found)
    return {}


def verdict(api: dict[str, Any], generation: int) -> tuple[int, str] | None:
    """(exit code, reason) once the rollout of `generation` is decided; None while it is not."""
    ready, progressing = condition(api, "Ready"), condition(api, "Progressing")
    told = condition(api, "Canary")
    if ready.get("observedGeneration") == generation and ready.get("status") == "True":
        return ROLLED_OUT, f"rolled out: {ready.get('message', '')}"
    if (
        progressing.get("observedGeneration") == generation
        and progressing.get("status") == "False"
        and progressing.get("reason") in GIVEN_UP
    ):
        return FAILED, f"{progressing['reason']}: {progressing.get('message', '')}"
    if (
        told.get("observedGeneration") == generation
        and told.get("status") == "False"
        and told.get("reason") not in CANARY_GOING
    ):
        return FAILED, f"canary {told['reason']}: {told.get('message', '')}"
    return None


def follow(args: argparse.Namespace, name: str, generation: int) -> tuple[int, str, dict[str, Any]]:
    deadline = time.monotonic() + args.timeout
    while True:
        api: dict[str, Any] = kubectl(args, "get", "realtimeapi", name)
        decided = verdict(api, generation)
        if decided is not None:
            return (*decided, api)
        if time.monotonic() >= deadline:
            ready = condition(api, "Ready")
            why = f"{ready.get('reason', 'no status yet')}: {ready.get('message', '')}"
            return TIMED_OUT, f"not rolled out after {args.timeout:g}s; last {why}", api
        time.sleep(POLL_SECONDS)


def history(api: dict[str, Any]) -> str:
    header = ("REVISION", "GENERATION", "MODEL", "IMAGE", "STARTED", "FINISHED", "OUTCOME")
    rows = [header]
    for revision in api.get("status", {}).get("revisions", []):
        outcome = revision.get("outcome", "")
        if revision.get("rollbackOf"):
            outcome += f" (rollback of {revision['rollbackOf']})"
        if revision.get("canary"):
            outcome += " (canary)"
        rows.append(
            (
                str(revision.get("revision", "")),
                str(revision.get("generation", "")),
                revision.get("modelVersion", "-"),
                revision.get("image", ""),
                revision.get("started", ""),
                revision.get("finished", "-"),
                outcome,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


@dataclass
class Figures:
    """What the proxies of one side (the canary's pods, or the stable version's) answered."""

    requests: int = 0
    errors: int = 0
    """Answers with a 5xx code: the proxy's own (503 when full, 504 past the timeout) and the
    predictor's."""
    buckets: dict[float, int] = field(default_factory=dict)
    """The latency histogram: answers within each bound, in seconds (cumulative)."""

    def __sub__(self, before: Figures) -> Figures:
        if self.requests < before.requests:  # the proxy restarted: all of it is new
            return self
        return Figures(
            self.requests - before.requests,
            self.errors - before.errors,
            {bound: n - before.buckets.get(bound, 0) for bound, n in self.buckets.items()},
        )

    def __add__(self, other: Figures) -> Figures:
        bounds = self.buckets.keys() | other.buckets.keys()
        return Figures(
            self.requests + other.requests,
            self.errors + other.errors,
            {b: self.buckets.get(b, 0) + other.buckets.get(b, 0) for b in bounds},
        )

    def p99(self) -> float | None:
        """The bound of the histogram's bucket that holds the 99th percentile: p99 is at most
        that (None without requests)."""
        for bound in sorted(self.buckets):
            if self.requests and self.buckets[bound] >= 0.99 * self.requests:
                return bound
        return None

    def describe(self) -> str:
        if not self.requests:
            return "no requests"
        p99 = self.p99()
        latency = "" if p99 is None else f", p99 <= {p99:g}s"
        return f"{self.requests} requests, {self.errors / self.requests:.2%} 5xx{latency}"


_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)$")


def figures_of(text: str) -> Figures:
    """A proxy's /metrics (Prometheus text) as Figures."""
    found = Figures()
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        metric, value = sample.group(1), float(sample.group(3))
        labels = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(2) or ""))
        if metric == "ferry_proxy_requests_total":
            found.requests += int(value)
            if labels.get("code", "").startswith("5"):
                found.errors += int(value)
        elif metric == "ferry_proxy_request_duration_seconds_bucket":
            found.buckets[float(labels["le"])] = int(value)
    return found


def scrape(
    args: argparse.Namespace, namespace: str, name: str, component: str
) -> dict[str, Figures]:
    """The Figures of each running pod of one side of the API, read from its proxy through the
    API server's pod proxy (the pipeline needs `get` on pods/proxy); a pod that does not answer
    is left out."""
    selector = f"ferry.dev/api={name},app.kubernetes.io/component={component}"
    pods = kubectl(args, "get", "pods", "-l", selector)["items"]
    found = {}
    for pod in pods:
        meta = pod["metadata"]
        if pod.get("status", {}).get("phase") != "Running" or meta.get("deletionTimestamp"):
            continue
        where = f"{meta['name']}:{PROXY_ADMIN_PORT}"
        try:
            text = raw(args, f"/api/v1/namespaces/{namespace}/pods/{where}/proxy/metrics")
        except KubectlError:
            continue
        found[meta["name"]] = figures_of(text)
    return found


def over(before: dict[str, Figures], after: dict[str, Figures]) -> Figures:
    """What the pods answered between two scrapes (a pod new since the first, all of it)."""
    total = Figures()
    for pod, figures in after.items():
        total += figures - before.get(pod, Figures())
    return total


def judge(args: argparse.Namespace, candidate: Figures) -> str | None:
    """Why the canary must not be promoted; None when it may."""
    if candidate.requests < args.min_requests:
        return (
            f"the canary answered {candidate.requests} requests in {args.observe:g}s, fewer than "
            f"--min-requests {args.min_requests}: too few to judge it"
        )
    rate = candidate.errors / candidate.requests
    if rate > args.max_error_rate:
        return f"its 5xx rate is {rate:.2%}, above --max-error-rate {args.max_error_rate:.2%}"
    p99 = candidate.p99()
    if args.max_p99 is not None and (p99 is None or p99 > args.max_p99):
        shown = "beyond the histogram" if p99 is None else f"up to {p99:g}s"
        return f"its p99 latency is {shown}, above --max-p99 {args.max_p99:g}s"
    return None


def observe(args: argparse.Namespace, namespace: str, name: str) -> str | None:
    """Watch both sides for --observe seconds; why the canary must not be promoted, or None."""
    before = {side: scrape(args, namespace, name, side) for side in ("canary", "predictor")}
    print(f"observing the canary for {args.observe:g}s", flush=True)
    time.sleep(args.observe)
    after = {side: scrape(args, namespace, name, side) for side in ("canary", "predictor")}
    candidate = over(before["canary"], after["canary"])
    stable = over(before["predictor"], after["predictor"])
    print(f"canary: {candidate.describe()}; stable: {stable.describe()}", flush=True)
    return judge(args, candidate)


def run_canary(args: argparse.Namespace) -> int:
    """Canary, observe, then promote or abort."""
    applied = apply(args, canary(args))
    name, namespace = applied["metadata"]["name"], applied["metadata"]["namespace"]
    generation = int(applied["metadata"]["generation"])
    print(
        f"applied realtimeapi/{name}: generation {generation}, canary at {args.canary}%", flush=True
    )
    code, reason, api = follow(args, name, generation)
    why = reason if code != ROLLED_OUT else observe(args, namespace, name)
    if why is not None:
        aborted = apply(args, ABORT)
        print(f"aborting the canary: generation {aborted['metadata']['generation']}", flush=True)
        _, _, api = follow(args, name, int(aborted["metadata"]["generation"]))
        print(history(api))
        print(f"FAILED: canary aborted: {why}", file=sys.stderr)
        return TIMED_OUT if code == TIMED_OUT else FAILED
    promoted = apply(args)
    generation = int(promoted["metadata"]["generation"])
    print(f"promoting the canary: generation {generation}", flush=True)
    code, reason, api = follow(args, name, generation)
    print(history(api))
    if code == ROLLED_OUT:
        print(f"promoted; {reason}")
    else:
        print(f"FAILED: {reason}", file=sys.stderr)
    return code


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-f", "--filename", help="the RealtimeAPI manifest to set and apply")
    target.add_argument("--name", help="the RealtimeAPI in the cluster to set")
    version = parser.add_mutually_exclusive_group(required=True)
    version.add_argument("--model-version", help="the new spec.model.version")
    version.add_argument("--image", help="the new spec.predictor.image")
    parser.add_argument("-n", "--namespace", help="default: the kubeconfig's")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait (default 900)"
    )
    parser.add_argument("--kubectl", default="kubectl", help="the kubectl to run")
    checks = parser.add_argument_group("canary")
    checks.add_argument(
        "--canary",
        type=percent,
        metavar="PERCENT",
        help="run the new version as a canary taking PERCENT of the requests first",
    )
    checks.add_argument(
        "--observe",
        type=float,
        default=60.0,
        help="seconds the canary's answers are watched (default 60)",
    )
    checks.add_argument(
        "--max-error-rate",
        type=float,
        default=0.01,
        help="largest share of 5xx answers the canary may give (default 0.01)",
    )
    checks.add_argument(
        "--max-p99", type=float, help="slowest p99 latency, in seconds, the canary may have"
    )
    checks.add_argument(
        "--min-requests",
        type=int,
        default=20,
        help="fewest answers the canary must give to be judged (default 20)",
    )
    return parser.parse_args(argv)


def percent(text: str) -> int:
    value = int(text)
    if not 0 < value <= 100:  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"a share from 1 to 100, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.canary is not None:
        try:
            return run_canary(args)
        except KubectlError as error:
            print(f"error: {error}", file=sys.stderr)
            return NOT_APPLIED
    try:
        applied = apply(args)
        name, generation = applied["metadata"]["name"], int(applied["metadata"]["generation"])
        print(f"applied realtimeapi/{name}: generation {generation}", flush=True)
        code, reason, api = follow(args, name, generation)
    except KubectlError as error:
        print(f"error: {error}", file=sys.stderr)
        return NOT_APPLIED
    print(history(api))
    if code == ROLLED_OUT:
        print(reason)
    else:
        print(f"FAILED: {reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
