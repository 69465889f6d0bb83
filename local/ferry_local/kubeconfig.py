"""Kubeconfig files for the local cluster's clients, with the credentials embedded."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from ferry_local.pki import Credentials


def kubeconfig(server: str, cluster: str, creds: Credentials, client: str) -> dict[str, Any]:
    """A kubeconfig that authenticates as `client` (one of pki.CLIENTS) to `server`."""

    def data(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    user = f"{cluster}-{client}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": data(creds.ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": data(creds.cert(client)),
                    "client-key-data": data(creds.key(client)),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
