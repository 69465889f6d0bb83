"""Each API's CloudWatch Logs group: created with the spec's retention, kept or deleted with the
API as the operator's settings say."""

from __future__ import annotations

from ferry.adapters.aws import Aws, AwsPermanentError

DEFAULT_PREFIX = "/ferry"


def log_group_name(namespace: str, name: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix.rstrip('/')}/{namespace}/{name}"


async def _retention(aws: Aws, group: str) -> int | bool | None:
    """The group's retention in days (None: never expires), or False if there is no group."""
    pages = await aws.call("logs", "describe_log_groups", logGroupNamePrefix=group)
    for found in pages.get("logGroups", []):
        if found["logGroupName"] == group:
            retention: int | None = found.get("retentionInDays")
            return retention
    return False


async def ensure_log_group(aws: Aws, group: str, retention_days: int, api: str) -> str | None:
    """Create or update the group; return what was done ("Created", "RetentionChanged") or None."""
    current = await _retention(aws, group)
    done = None
    if current is False:
        try:
            await aws.call(
                "logs",
                "create_log_group",
                logGroupName=group,
                tags={"ferry.dev/api": api, "app.kubernetes.io/managed-by": "ferry"},
            )
        except AwsPermanentError as error:
            if error.code != "ResourceAlreadyExistsException":
                raise
        done = "Created"
    if current != retention_days:
        await aws.call(
            "logs", "put_retention_policy", logGroupName=group, retentionInDays=retention_days
        )
        done = done or "RetentionChanged"
    return done


async def delete_log_group(aws: Aws, group: str) -> bool:
    try:
        await aws.call("logs", "delete_log_group", logGroupName=group)
    except AwsPermanentError as error:
        if error.code == "ResourceNotFoundException":
            return False
        raise
    return True
