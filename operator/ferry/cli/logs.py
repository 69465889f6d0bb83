"""`ferry logs NAME`: an API's container logs, read back from its CloudWatch Logs group."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from ferry.autoscaling.policy import DurationError, parse_duration
from ferry.services.logs import log_group_name

FOLLOW_INTERVAL = 2.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser("logs", help="print an API's logs from CloudWatch Logs")
    logs.add_argument("name", help="the RealtimeAPI")
    logs.add_argument("-n", "--namespace", default="default")
    logs.add_argument(
        "--since", default="10m", help="how far back, e.g. 30s, 10m, 2h (default %(default)s)"
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--prefix", default="/ferry", help="the operator's log group prefix")
    logs.set_defaults(run=_logs)


def _events(client: Any, group: str, start_ms: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"logGroupName": group, "startTime": start_ms}
    while True:
        page = client.filter_log_events(**params)
        events += page.get("events", [])
        token = page.get("nextToken")
        if not token or token == params.get("nextToken"):
            return events
        params["nextToken"] = token


def _logs(args: argparse.Namespace) -> int:
    try:
        since = parse_duration(args.since)
    except DurationError as error:
        print(f"ferry logs: --since: {error}", file=sys.stderr)
        return 2
    group = log_group_name(args.namespace, args.name, args.prefix)
    client = boto3.client("logs")
    start_ms = int((time.time() - since) * 1000)
    seen: set[str] = set()
    try:
        while True:
            for event in sorted(_events(client, group, start_ms), key=lambda e: e["timestamp"]):
                if event["eventId"] in seen:
                    continue
                seen.add(event["eventId"])
                start_ms = max(start_ms, int(event["timestamp"]))
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["timestamp"] / 1000))
                print(
                    f"{stamp} {event.get('logStreamName', '')}: {event['message'].rstrip()}",
                    flush=True,
                )
            if not args.follow:
                return 0
            time.sleep(FOLLOW_INTERVAL)  # CloudWatch Logs has no push; poll like `aws logs tail`
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            print(
                f"ferry logs: no log group {group} (is the API {args.namespace}/{args.name}?)",
                file=sys.stderr,
            )
        else:
            print(f"ferry logs: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"ferry logs: cannot reach CloudWatch Logs: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
