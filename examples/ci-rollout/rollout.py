#!/usr/bin/env python3
"""Roll a new version of a RealtimeAPI out from a CI pipeline, and fail the job if it does not.

Sets the model version or the image (in a manifest file, or on the API in the cluster), applies
it, then follows the API's status until Ready is True for the new generation, the operator gives
the rollout up (rolled back, past its progress deadline, an invalid spec), or the timeout passes.
Prints the outcome and the revision history; exits 0 only when the new generation is rolled out.

Needs only Python 3.10+ and kubectl (with the pipeline's kubeconfig). Exit codes: 0 rolled out,
1 failed or rolled back, 2 timed out, 3 could not apply.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

ROLLED_OUT, FAILED, TIMED_OUT, NOT_APPLIED = 0, 1, 2, 3
# Progressing=False with one of these reasons for the new generation: the operator has stopped
# trying, so waiting longer cannot help.
GIVEN_UP = {"RolledBack", "ProgressDeadlineExceeded", "InvalidSpec"}
POLL_SECONDS = 2.0


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


def bump(args: argparse.Namespace) -> dict[str, Any]:
    """The merge patch that sets the new version."""
    if args.image:
        return {"spec": {"predictor": {"image": args.image}}}
    return {"spec": {"model": {"version": args.model_version}}}


def apply(args: argparse.Namespace) -> dict[str, Any]:
    """Set the version and apply; the API as the server stored it."""
    patch = json.dumps(bump(args))
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
    if ready.get("observedGeneration") == generation and ready.get("status") == "True":
        return ROLLED_OUT, f"rolled out: {ready.get('message', '')}"
    if (
        progressing.get("observedGeneration") == generation
        and progressing.get("status") == "False"
        and progressing.get("reason") in GIVEN_UP
    ):
        return FAILED, f"{progressing['reason']}: {progressing.get('message', '')}"
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
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
