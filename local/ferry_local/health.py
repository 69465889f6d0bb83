"""Health checks of the local components over real HTTP(S)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from http import HTTPStatus

from ferry_local.pki import Credentials


def client_tls(creds: Credentials, client: str = "admin") -> ssl.SSLContext:
    """Verifies the API server against the cluster CA and presents a client certificate."""
    context = ssl.create_default_context(cafile=str(creds.ca))
    context.load_cert_chain(str(creds.cert(client)), str(creds.key(client)))
    return context


def loopback_tls() -> ssl.SSLContext:
    # The controller-manager and scheduler serve /healthz with certificates they make for
    # themselves at start; on loopback, reaching the port we gave them is the identity check.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def healthy(url: str, tls: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=tls) as response:  # noqa: S310
            return bool(response.status == HTTPStatus.OK)
    except (urllib.error.URLError, OSError, ValueError):
        return False
