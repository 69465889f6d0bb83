"""`ferry render FILE`: the Service and Deployment the operator would create for a RealtimeAPI (and
its canary's, when it has one).

Offline: the CRD's defaults are filled in as the API server would fill them, and the operator's
settings come from the FERRY_* variables it reads itself (FERRY_NODE_GROUPS,
FERRY_DEFAULT_NODE_GROUP, FERRY_IMAGE), so node groups, GPUs and serving limits can be checked
before anything is applied. The schema's own checks are the API server's to make:
`kubectl apply --dry-run=server` does both, and takes this command's output too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ferry import names
from ferry.render.children import render_deployment, render_service
from ferry.settings import Settings, SettingsError
from ferry.spec.model import InvalidSpecError, RealtimeAPISpec, parse_spec
from ferry.spec.resource import ApiRef
from ferry.spec.schema import GROUP, KIND, VERSION, openapi_schema, with_defaults

API_VERSION = f"{GROUP}/{VERSION}"


class RenderError(ValueError):
    """The input cannot be rendered; the message says what to change."""


@dataclass(frozen=True)
class Rendered:
    api: str
    """namespace/name of the RealtimeAPI."""
    objects: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()
    """What the output cannot show exactly, offline."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    render = subparsers.add_parser(
        "render",
        help="print the Service and Deployment the operator would create for a RealtimeAPI",
        description=(
            "Print the Service and Deployment the operator would create for each RealtimeAPI in "
            "FILE, with the CRD's defaults and the operator's FERRY_* settings. "
            "Pipe it to `kubectl apply --dry-run=server -f -` for the API server's verdict."
        ),
    )
    render.add_argument("file", help="a YAML file of RealtimeAPIs (other kinds are skipped), or -")
    render.add_argument(
        "-n", "--namespace", help="for APIs that name none (default: default)", default=None
    )
    render.add_argument(
        "--node-groups",
        metavar="JSON|@FILE",
        help="the operator's node groups, in place of FERRY_NODE_GROUPS",
    )
    render.add_argument(
        "--model-version",
        help='the version "latest" stands for (the operator asks S3; default: left as latest)',
    )
    render.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    render.set_defaults(run=_render)


def missing_field(value: Any, schema: Mapping[str, Any], path: str) -> str | None:
    """The first field the schema requires that `value` lacks, as a dotted path."""
    if not isinstance(value, dict):
        return None
    for name in schema.get("required", ()):
        if name not in value:
            return f"{path}.{name}"
    for name, prop in schema.get("properties", {}).items():
        if name in value and (found := missing_field(value[name], prop, f"{path}.{name}")):
            return found
    return None


def api_of(document: Mapping[str, Any], namespace: str | None) -> ApiRef:
    """Who a RealtimeAPI document is; no uid for one that was never created."""
    meta = document.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise RenderError("a RealtimeAPI needs metadata.name")
    name = meta["name"]
    own_namespace = meta.get("namespace")
    if own_namespace and namespace and own_namespace != namespace:
        raise RenderError(
            f"RealtimeAPI {name} is in namespace {own_namespace}, not {namespace} (--namespace)"
        )
    api_namespace = str(own_namespace or namespace or "default")
    where = f"{api_namespace}/{name}"
    if document.get("apiVersion") != API_VERSION:
        raise RenderError(f"RealtimeAPI {where}: apiVersion must be {API_VERSION}")
    generation = meta.get("generation", 1)
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise RenderError(f"RealtimeAPI {where}: metadata.generation must be a number")
    return ApiRef(name, api_namespace, str(meta.get("uid") or ""), generation)


def render_api(
    document: Mapping[str, Any],
    settings: Settings,
    *,
    namespace: str | None = None,
    model_version: str | None = None,
) -> Rendered:
    """The children of one RealtimeAPI document, as the operator renders them at creation."""
    if model_version is not None and not (model_version.isdigit() or model_version == "latest"):
        raise RenderError(f"--model-version must be a number or latest, not {model_version!r}")
    api = api_of(document, namespace)
    where = f"{api.namespace}/{api.name}"
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise RenderError(f"RealtimeAPI {where}: spec must be a mapping")
    defaulted = with_defaults(spec)
    if absent := missing_field(defaulted, openapi_schema()["properties"]["spec"], "spec"):
        raise RenderError(f"RealtimeAPI {where}: {absent} is required")
    notes: list[str] = []
    try:
        parsed = parse_spec(defaulted)
        version = None
        if parsed.model is not None:
            version = model_version or parsed.model.version
            if version == "latest":
                notes.append(
                    "model version left as latest: the operator renders the highest complete "
                    "version in S3 (--model-version shows a given one)"
                )
        deployment = render_deployment(
            api, parsed, settings, model_version=version, replicas=parsed.initial_replicas
        )
        canary = _canary(api, parsed, settings, version)
    except InvalidSpecError as error:
        raise RenderError(f"RealtimeAPI {where}: {error}") from None
    except TypeError as error:
        # A value YAML read as a date, say, where the schema wants a string: the API server
        # would refuse it too, and its dry-run names the field.
        raise RenderError(
            f"RealtimeAPI {where}: {error} (a value not of its field's type; "
            "`kubectl apply --dry-run=server` names the field)"
        ) from None
    objects = (render_service(api), deployment, *canary)
    if not api.uid:
        # Without the API's uid no owner can be named; a made-up one would have the garbage
        # collector delete whatever this output is applied as.
        for obj in objects:
            obj["metadata"].pop("ownerReferences", None)
        notes.append("no ownerReferences: the file has no metadata.uid (the API is not created)")
    return Rendered(where, objects, tuple(notes))


def _canary(
    api: ApiRef, spec: RealtimeAPISpec, settings: Settings, stable_version: str | None
) -> tuple[dict[str, Any], ...]:
    """The canary's Service and Deployment, when the spec has one (it also needs a Gateway,
    which the operator checks against its own settings)."""
    if spec.canary is None:
        return ()
    version = stable_version
    if spec.model is not None and spec.canary.model_version is not None:
        version = spec.canary.model_version
    deployment = render_deployment(
        api,
        spec.canary_spec(),
        settings,
        model_version=version,
        replicas=spec.autoscaling.min_replicas,
        component=names.CANARY,
    )
    return render_service(api, names.CANARY), deployment


def render_documents(
    text: str,
    settings: Settings,
    *,
    namespace: str | None = None,
    model_version: str | None = None,
) -> list[Rendered]:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise RenderError(f"not YAML: {error}") from None
    rendered = [
        render_api(doc, settings, namespace=namespace, model_version=model_version)
        for doc in documents
        if isinstance(doc, dict) and doc.get("kind") == KIND
    ]
    if not rendered:
        raise RenderError(f"no {KIND} in it")
    return rendered


def settings_from(environ: Mapping[str, str], node_groups: str | None) -> Settings:
    """The operator's settings from `environ`, with --node-groups (JSON or @FILE) over it."""
    env = dict(environ)
    if node_groups is not None:
        if node_groups.startswith("@"):
            try:
                node_groups = Path(node_groups[1:]).read_text()
            except OSError as error:
                raise SettingsError(
                    f"--node-groups: cannot read {node_groups[1:]}: {error.strerror or error}"
                ) from None
        env["FERRY_NODE_GROUPS"] = node_groups
    return Settings.from_env(env)


def as_text(rendered: list[Rendered], output: str) -> str:
    if output == "json":
        items = [obj for api in rendered for obj in api.objects]
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2)
    documents = []
    for api in rendered:
        for obj in api.objects:
            head = f"# {obj['kind']} of RealtimeAPI {api.api}\n"
            documents.append(head + yaml.safe_dump(obj, sort_keys=False))
    return "---\n".join(documents)


def _render(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as error:
        print(f"ferry render: cannot read {args.file}: {error.strerror or error}", file=sys.stderr)
        return 1
    try:
        settings = settings_from(os.environ, args.node_groups)
        rendered = render_documents(
            text, settings, namespace=args.namespace, model_version=args.model_version
        )
    except (RenderError, SettingsError) as error:
        print(f"ferry render: {args.file}: {error}", file=sys.stderr)
        return 1
    print(as_text(rendered, args.output))
    for api in rendered:
        for note in api.notes:
            print(f"ferry render: {api.api}: {note}", file=sys.stderr)
    return 0
