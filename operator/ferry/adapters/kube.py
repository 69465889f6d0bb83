"""The one Kubernetes client of the operator, and the project's own error types for its failures.

A thin layer over kubernetes_asyncio's ApiClient: plain dicts in and out, server-side apply with
an explicit field manager, and API failures sorted into what a retry can fix and what it cannot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from yarl import URL

from ferry.spec.schema import GROUP, PLURAL, VERSION

GATEWAY_API = "gateway.networking.k8s.io/v1"
# apiVersion/kind -> (path prefix, plural) for the kinds Ferry touches.
RESOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Pod"): ("/api/v1", "pods"),
    (f"{GROUP}/{VERSION}", "RealtimeAPI"): (f"/apis/{GROUP}/{VERSION}", PLURAL),
    (GATEWAY_API, "HTTPRoute"): (f"/apis/{GATEWAY_API}", "httproutes"),
    (GATEWAY_API, "Gateway"): (f"/apis/{GATEWAY_API}", "gateways"),
}
REQUEST_TIMEOUT = 30.0
APPLY_PATCH = "application/apply-patch+yaml"
# The API server reads an apply's body as YAML, which reads JSON but for some characters written
# raw: it refuses DEL, the C1 controls and U+FFFE/U+FFFF, folds NEL, U+2028 and U+2029 inside a
# quoted string as line breaks, and skips U+FEFF as a byte order mark at the start of a line.
# Escaped (\u0085), each is read as itself.
_RAW_IN_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
# Connections to the API server at most; more requests wait for one. Each TLS connection holds
# a 256 KiB read buffer in asyncio's SSL transport: kubernetes_asyncio's default of 100, opened
# by a burst of a thousand APIs' status writes, is 25 MB kept for good. Twenty carry thousands
# of small requests a second.
CONNECTIONS = 20


class KubeError(Exception):
    """The API server refused a request; `status` is its HTTP status (0: no answer), `reason`
    the API server's own words (the message also names the request)."""

    def __init__(self, message: str, status: int = 0, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = message if reason is None else reason


class TemporaryKubeError(KubeError):
    """Throttling, a server error or no answer: worth retrying with back-off."""


class RejectedError(KubeError):
    """The API server rejected the object itself (400, 403, 422): retrying the same will fail."""


class ConflictError(KubeError):
    """409: the object already exists or changed underneath."""


class NoCredentialsError(Exception):
    """Neither a kubeconfig nor the in-cluster service account to reach the API server with."""


def path_of(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    prefix, plural = RESOURCES[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def apply_body(obj: Mapping[str, Any]) -> bytes:
    """`obj` as the body of a server-side apply: JSON in UTF-8, with every character YAML reads
    differently escaped.

    Not JSON's ASCII form: it writes a character beyond the Basic Multilingual Plane (an emoji)
    as a pair of surrogate escapes, which JSON allows and YAML refuses (the API server answers
    "found invalid Unicode character escape code"). The control characters below U+0020 are
    escaped by JSON as YAML reads them.
    """
    text = json.dumps(obj, ensure_ascii=False)
    return _RAW_IN_YAML.sub(lambda raw: f"\\u{ord(raw[0]):04x}", text).encode()


def _message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or b"{}")
        return str(body.get("message") or error.reason)
    except (TypeError, ValueError):
        return str(error.reason)


def _without_environment_lookups(api: ApiClient) -> ApiClient:
    """`api` with a session that does not consult the environment at every request.

    kubernetes_asyncio's session trusts the environment, so each request looks up ~/.netrc and
    the proxy variables on worker threads: two thread hops per call, a sixth of the operator's
    event-loop time while APIs were being created. The API server takes tokens and
    certificates, never netrc; when the variables do name a proxy for it, the session is left
    as it is, for aiohttp to apply them.
    """
    with contextlib.suppress(LookupError):
        get_env_proxy_for_url(URL(str(api.configuration.host)))
        return api
    rest = api.rest_client
    connector = rest.pool_manager.connector
    rest.pool_manager.detach()  # the connector, with its TLS settings, goes on in the new one
    # The read buffer kubernetes_asyncio gives its session: a watch event can carry a big object.
    rest.pool_manager = aiohttp.ClientSession(connector=connector, read_bufsize=2**21)
    return api


class Kube:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """From the kubeconfig (KUBECONFIG or the given file), else the in-cluster account."""
        # Read here, not at import: kubernetes_asyncio fixes its default path when first imported.
        kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        configuration = Configuration()
        configuration.connection_pool_maxsize = CONNECTIONS
        try:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
        except config.ConfigException as no_file:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException as no_account:
                raise NoCredentialsError(
                    f"{no_file}; and no in-cluster account: {no_account}"
                ) from None
        return cls(_without_environment_lookups(ApiClient(configuration)))

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        result, _ = await self.exchange(
            method, path, body=body, query=query, content_type=content_type
        )
        return result

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[dict[str, Any], int]:
        """The request's answer and its HTTP status."""
        if content_type == APPLY_PATCH:
            # Serialised here, not by kubernetes_asyncio, which would send the ASCII JSON that
            # YAML cannot read (apply_body); the charset keeps its hands off the bytes, and the
            # API server drops it before it reads the patch type.
            body, content_type = apply_body(body), f"{APPLY_PATCH}; charset=utf-8"
        try:
            result, status, _ = await self.api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            status, reason = error.status or 0, _message(error)
            message = f"{method} {path}: {reason}"
            if status == 409:  # noqa: PLR2004
                raise ConflictError(message, status, reason) from None
            if status in (400, 403, 404, 422):
                raise RejectedError(message, status, reason) from None
            raise TemporaryKubeError(message, status, reason) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise TemporaryKubeError(f"{method} {path}: {error!r}") from None
        return result, status

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path)
        except RejectedError as error:
            if error.status == 404:  # noqa: PLR2004
                return None
            raise

    async def list(self, path: str, label_selector: str) -> list[dict[str, Any]]:
        """The objects under `path` with these labels, from the API server's watch cache
        (resourceVersion 0): a moment stale at most, and no read of etcd per call."""
        found = await self.request(
            "GET", path, query={"labelSelector": label_selector, "resourceVersion": "0"}
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    async def apply(
        self, obj: Mapping[str, Any], field_manager: str
    ) -> tuple[dict[str, Any], bool]:
        """Server-side apply: the object becomes exactly what `field_manager` says of it.
        Returns it, and whether this apply created it (201) rather than changed it (200)."""
        meta = obj["metadata"]
        path = path_of(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        applied, status = await self.exchange(
            "PATCH",
            path,
            body=obj,
            query={"fieldManager": field_manager, "force": "true"},
            content_type=APPLY_PATCH,
        )
        return applied, status == 201  # noqa: PLR2004

    async def patch_merge(
        self, path: str, patch: Mapping[str, Any], field_manager: str
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            path,
            body=patch,
            query={"fieldManager": field_manager},
            content_type="application/merge-patch+json",
        )
