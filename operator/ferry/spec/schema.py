"""The CRD as the one source of the resource's schema and defaults.

The API server applies the schema's defaults before the operator sees an object; tools and tests
that build specs offline apply the same defaults from the same file, so the two never drift.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml

GROUP = "ferry.dev"
VERSION = "v1alpha1"
KIND = "RealtimeAPI"
PLURAL = "realtimeapis"
CRD_FILE = "realtimeapis.ferry.dev.yaml"
ADMISSION_FILE = "realtimeapis.ferry.dev-finalizer.yaml"
"""The admission policy that creates every RealtimeAPI with the operator's finalizer."""


@cache
def crd() -> dict[str, Any]:
    text = resources.files("ferry.spec").joinpath(CRD_FILE).read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def openapi_schema() -> dict[str, Any]:
    (version,) = [v for v in crd()["spec"]["versions"] if v["name"] == VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of `spec` with the CRD's defaults filled in, as the API server would."""
    defaulted: dict[str, Any] = _default(
        copy.deepcopy(spec), openapi_schema()["properties"]["spec"]
    )
    return defaulted


def _default(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = _default(value[name], prop)
    elif isinstance(value, list) and "items" in schema:
        return [_default(item, schema["items"]) for item in value]
    return value
