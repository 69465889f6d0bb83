"""The operator's AWS adapter: one boto3 session, shared clients, a bounded thread pool per service.

boto3 blocks, so every call runs on a thread; each service has a pool of its own, sized on
purpose, so a stalled S3 endpoint can use up S3's threads and nothing else — never the event
loop's default executor, which kopf and the Kubernetes client also lean on.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Error codes that no retry will fix: the user (or the operator's IAM role) must act.
PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "NoSuchBucket",
        "NoSuchKey",
        "InvalidBucketName",
        "InvalidParameterException",
        "ValidationError",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ResourceNotFoundException",
        "ResourceAlreadyExistsException",
        "404",
        "403",
    }
)


ADAPTIVE_RETRIES = frozenset({"s3", "autoscaling"})


class AwsError(Exception):
    """An AWS call failed; `code` is AWS's error code (or the exception's name)."""

    def __init__(self, service: str, operation: str, code: str, message: str) -> None:
        super().__init__(f"{service}.{operation}: {code}: {message}")
        self.service, self.operation, self.code = service, operation, code


class AwsPermanentError(AwsError):
    """Retrying will not help (missing bucket, access denied, invalid input)."""


class AwsTemporaryError(AwsError):
    """Throttling, a timeout or a server error that survived botocore's own retries."""


@dataclass(frozen=True)
class AwsSettings:
    region: str = "us-east-1"
    endpoint_url: str | None = None
    """Set in the local environment (moto's server); unset, boto3 uses AWS's own endpoints."""
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_attempts: int = 5
    """botocore's `max_attempts`: retries after the first attempt."""
    workers: Mapping[str, int] = field(
        default_factory=lambda: {"s3": 16, "logs": 4, "autoscaling": 4, "ec2": 4}
    )
    """Threads per service: S3 carries model checks for every API; the others are rarer."""
    read_timeouts: Mapping[str, float] = field(default_factory=lambda: {"s3": 5.0})
    """In place of read_timeout for these services."""
    retries: Mapping[str, int] = field(default_factory=lambda: {"s3": 3})
    """In place of max_attempts for these services. S3 only lists a model's keys, small answers
    that come in well under a second: a hung endpoint ends a model check within half a minute
    (4 attempts of 5 s, and botocore's back-off between them) instead of two, and the
    reconciler says so and tries again with back-off of its own (docs/aws.md)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AwsSettings:
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )


class Aws:
    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        self._session = boto3.session.Session(region_name=settings.region)
        self._clients: dict[str, Any] = {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The shared client of `service`; botocore clients are safe to use from many threads."""
        with self._lock:
            if service not in self._clients:
                settings = self.settings
                workers = settings.workers.get(service, 4)
                config = Config(
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.read_timeouts.get(service, settings.read_timeout),
                    # Adaptive adds client-side rate limiting on top of standard's retries:
                    # for S3, whose calls scale with the number of APIs, and Auto Scaling,
                    # whose API throttles an account's callers together.
                    retries={
                        "mode": "adaptive" if service in ADAPTIVE_RETRIES else "standard",
                        "max_attempts": settings.retries.get(service, settings.max_attempts),
                    },
                    max_pool_connections=workers,
                )
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.settings.endpoint_url, config=config
                )
            return self._clients[service]

    def _pool(self, service: str) -> ThreadPoolExecutor:
        with self._lock:
            if service not in self._pools:
                self._pools[service] = ThreadPoolExecutor(
                    max_workers=self.settings.workers.get(service, 4),
                    thread_name_prefix=f"aws-{service}",
                )
            return self._pools[service]

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        """Run one API call on the service's pool, with AWS errors sorted into our two kinds."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._pool(service), functools.partial(self._invoke, service, operation, params)
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            code = str(details.get("Code") or "Unknown")
            message = str(details.get("Message") or error)
            kind = AwsPermanentError if code in PERMANENT_CODES else AwsTemporaryError
            raise kind(service, operation, code, message) from None
        except BotoCoreError as error:
            raise AwsTemporaryError(service, operation, type(error).__name__, str(error)) from None

    def _invoke(self, service: str, operation: str, params: Mapping[str, Any]) -> Any:
        # On the pool's thread: the first call of a service builds its client, a good fraction
        # of a second of CPU that would otherwise stall the event loop and every handler on it.
        return getattr(self.client(service), operation)(**params)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)
