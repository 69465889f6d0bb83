"""`ferry fetch-model`: the init container's command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ferry.cli.progress import ProgressBar
from ferry.model.fetch import FetchError, ModelFetcher, s3_client
from ferry.model.push import PushError, push


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = subparsers.add_parser(
        "fetch-model", help="download one version of a model from S3 into a directory"
    )
    fetch.add_argument(
        "uri",
        nargs="?",
        default=os.environ.get("FERRY_MODEL_URI"),
        help="s3://bucket/prefix holding numbered versions (env FERRY_MODEL_URI)",
    )
    fetch.add_argument(
        "--version",
        default=os.environ.get("FERRY_MODEL_VERSION", "latest"),
        help="version sub-prefix, or latest (env FERRY_MODEL_VERSION; default %(default)s)",
    )
    fetch.add_argument(
        "--dest",
        type=Path,
        default=Path(os.environ.get("FERRY_MODEL_DIR", "/mnt/model")),
        help="model directory (env FERRY_MODEL_DIR; default %(default)s)",
    )
    fetch.add_argument(
        "--parallel", type=int, default=8, help="concurrent transfers (default %(default)s)"
    )
    fetch.set_defaults(run=_fetch)

    model = subparsers.add_parser("model", help="model versions in S3")
    commands = model.add_subparsers(dest="model_command", required=True)
    push_cmd = commands.add_parser(
        "push", help="upload a directory as a new model version (markers keep half-uploads unseen)"
    )
    push_cmd.add_argument("directory", type=Path)
    push_cmd.add_argument("uri", help="s3://bucket/prefix")
    which = push_cmd.add_mutually_exclusive_group()
    which.add_argument("--version", help="the version number to create")
    which.add_argument(
        "--next", action="store_true", help="one above the highest version (the default)"
    )
    push_cmd.set_defaults(run=_push)


def _fetch(args: argparse.Namespace) -> int:
    if not args.uri:
        print("ferry fetch-model: name the model's s3:// URI", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        fetched = ModelFetcher(s3_client(args.parallel), args.parallel).fetch(
            args.uri, args.version, args.dest
        )
    except FetchError as error:
        print(f"ferry fetch-model: {error}", file=sys.stderr)
        return 1
    if fetched.skipped:
        print(f"{args.dest} already holds {fetched.uri} version {fetched.version}", file=sys.stderr)
    else:
        print(
            f"fetched {fetched.uri} version {fetched.version} into {args.dest}: "
            f"{fetched.files} files, {fetched.bytes} bytes in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
    return 0


def _push(args: argparse.Namespace) -> int:
    bar = ProgressBar(f"pushing {args.directory}")
    try:
        pushed = push(s3_client(8), args.directory, args.uri, version=args.version, progress=bar)
    except PushError as error:
        print(f"ferry model push: {error}", file=sys.stderr)
        return 1
    print(
        f"pushed {pushed.files} files ({pushed.bytes} bytes) as version {pushed.version}: "
        f"{pushed.uri}"
    )
    return 0
