"""The AWS adapter's clients: S3, which the model check waits on, gives up sooner than the rest."""

from __future__ import annotations

from ferry.adapters.aws import Aws, AwsSettings


def test_the_model_checks_s3_client_gives_up_sooner_than_the_others() -> None:
    aws = Aws(AwsSettings(endpoint_url="http://127.0.0.1:9"))
    try:
        s3, logs = aws.client("s3").meta.config, aws.client("logs").meta.config
    finally:
        aws.close()
    # botocore counts the first attempt in its total: 3 retries are 4 attempts.
    assert (s3.read_timeout, s3.retries) == (5.0, {"mode": "adaptive", "total_max_attempts": 4})
    assert (logs.read_timeout, logs.retries) == (
        20.0,
        {"mode": "standard", "total_max_attempts": 6},
    )
    assert s3.connect_timeout == logs.connect_timeout == 5.0
