"""The AWS stand-in is a real HTTP server that boto3 talks to as to AWS."""

from __future__ import annotations

import boto3

from ferry_local.aws import MotoServer


def test_boto3_reaches_the_moto_server_over_http(moto: MotoServer, aws_env: dict[str, str]) -> None:
    s3 = boto3.client("s3")
    assert s3.meta.endpoint_url == moto.endpoint
    s3.create_bucket(Bucket="ferry-smoke")
    s3.put_object(Bucket="ferry-smoke", Key="a/b.txt", Body=b"hello")
    body = s3.get_object(Bucket="ferry-smoke", Key="a/b.txt")["Body"].read()
    assert body == b"hello"
