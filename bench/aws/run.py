"""AWS work of many APIs through the operator's bounded pools versus one call at a time.

For N APIs (default 200) against moto's server on 127.0.0.1: check each API's model version in
S3 and create its CloudWatch Logs group with retention — the AWS part of a reconcile — first all
at once through ferry.adapters.aws (a pool per service), then one API after another with the same
adapter. moto answers in well under a millisecond and shares the machine's two cores with the
client, where AWS is tens of milliseconds away; a proxy in front of it adds --latency-ms to every
request (0 measures moto alone). Prints both wall times and the speed-up.

    PYTHONPATH=. .venv/bin/python bench/aws/run.py [--apis 200] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from ferry.adapters.aws import Aws, AwsSettings
from ferry.services.logs import ensure_log_group, log_group_name
from ferry.services.model import check_model
from ferry.spec.model import ModelSource
from ferry_local.aws import moto_server
from tests.support import stall_proxy

BUCKET = "bench-models"


@contextmanager
def latency(upstream: str, delay_ms: float, tmp: Path) -> Iterator[str]:
    """An endpoint `delay_ms` farther away than `upstream`."""
    if delay_ms <= 0:
        yield upstream
        return
    with stall_proxy.running(upstream, tmp / "proxy.log", delay_ms) as url:
        yield url


async def one_api(aws: Aws, run: str, index: int) -> None:
    name = f"api-{index}"
    check, _ = await asyncio.gather(
        check_model(aws, ModelSource(f"s3://{BUCKET}/{name}", "latest")),
        ensure_log_group(aws, log_group_name(run, name), 14, name),
    )
    if not check.available:
        raise RuntimeError(f"{name}: {check.message}")


async def measure(aws: Aws, apis: int) -> tuple[float, float]:
    started = time.perf_counter()
    await asyncio.gather(*(one_api(aws, "together", i) for i in range(apis)))
    together = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(apis):
        await one_api(aws, "one-by-one", i)
    return together, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--apis", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp) / "moto.log") as moto:
        env = moto.env()
        s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_REGION"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
        s3.create_bucket(Bucket=BUCKET)
        for i in range(args.apis):
            s3.put_object(Bucket=BUCKET, Key=f"api-{i}/1/model.bin", Body=b"w")
        os.environ.update(env)  # boto3's credentials for the adapter below
        with latency(moto.endpoint, args.latency_ms, Path(tmp)) as endpoint:
            aws = Aws(AwsSettings(region=env["AWS_REGION"], endpoint_url=endpoint))
            try:
                together, sequential = asyncio.run(measure(aws, args.apis))
            finally:
                aws.close()
    print(
        f"{args.apis} APIs: model check + log group, against moto on 127.0.0.1 "
        f"with {args.latency_ms:g} ms added per request"
    )
    print(f"  through the bounded pools at once: {together:6.2f} s")
    print(f"  one API after another:            {sequential:6.2f} s")
    print(f"  speed-up: {sequential / together:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
