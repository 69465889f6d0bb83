"""The chart's files, the dashboard and the image, read as files: nothing here needs helm or a
cluster (tests/integration/test_chart.py renders the chart)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ferry import __version__, metrics
from ferry.proxy.admission import Gate
from ferry.proxy.metrics import registry_for, render
from ferry.proxy.stats import Stats
from ferry.settings import DEFAULT_IMAGE, MAX_DRAIN_DELAY_SECONDS, Settings
from ferry.spec.schema import openapi_schema
from ferry_local.agent.images import BUILTIN_TABLE, ImageTable, split_reference

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "ferry"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
DASHBOARD = json.loads((CHART / "files" / "dashboard.json").read_text())
DOCKERFILE = REPO / "images" / "ferry" / "Dockerfile"
DOCKERIGNORE = DOCKERFILE.with_name("Dockerfile.dockerignore")
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def object_schemas(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        if "properties" in schema:
            yield where or "/", schema
        for key, value in schema.items():
            yield from object_schemas(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from object_schemas(value, f"{where}/{index}")


def test_every_object_of_the_values_refuses_keys_it_does_not_know() -> None:
    schemas = list(object_schemas(SCHEMA))
    assert len(schemas) > 20
    lax = [where for where, schema in schemas if schema.get("additionalProperties") is not False]
    assert lax == []


def test_the_default_values_meet_the_schema() -> None:
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)


@pytest.mark.parametrize(
    ("values", "wrong"),
    [
        ({"watchNamespace": ["ml"]}, "watchNamespace"),
        ({"operator": {"resource": {}}}, "resource"),
        ({"logging": {"level": "LOUD"}}, "LOUD"),
        ({"nodeGroups": [{"name": "gpu", "asg": "x"}]}, "asg"),
        ({"nodeGroups": [{"name": "gpu", "asgName": "x"}]}, "allocatable"),
        ({"serviceAccount": {"roleArn": "my-role"}}, "my-role"),
        ({"rbac": {"scope": "cluster-wide"}}, "cluster-wide"),
        ({"drainDelaySeconds": 0}, "less than the minimum of 1"),
        ({"drainDelaySeconds": 3601}, "greater than the maximum of 3600"),
        ({"drainDelaySeconds": 2.5}, "not of type 'integer'"),
    ],
)
def test_a_misspelt_or_wrong_value_is_refused(values: dict[str, Any], wrong: str) -> None:
    with pytest.raises(jsonschema.ValidationError, match=wrong):
        jsonschema.Draft7Validator(SCHEMA).validate(values)


def test_the_chart_and_the_crd_take_the_drain_delays_the_operator_takes() -> None:
    serving = openapi_schema()["properties"]["spec"]["properties"]["serving"]["properties"]
    for schema in (SCHEMA["properties"]["drainDelaySeconds"], serving["drainDelaySeconds"]):
        assert schema["type"] == "integer"
        assert (schema["minimum"], schema["maximum"]) == (1, MAX_DRAIN_DELAY_SECONDS)
    assert VALUES["drainDelaySeconds"] == Settings().drain_delay


@pytest.mark.parametrize(
    "source", sorted((REPO / "crds").glob("*.yaml")), ids=lambda path: path.name
)
def test_the_chart_carries_each_file_of_crds_unchanged(source: Path) -> None:
    copy = CHART / "files" / source.name
    assert copy.exists(), f"charts/ferry/files/ lacks {source.name}: run `make manifests`"
    assert copy.read_text() == source.read_text(), (
        f"charts/ferry/files/{source.name} differs from crds/: run `make manifests`"
    )


def test_the_chart_is_released_with_the_package_and_runs_its_image() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert VALUES["image"]["tag"] == ""  # so the tag is the appVersion
    assert f"{VALUES['image']['repository']}:{chart['appVersion']}" == DEFAULT_IMAGE


# --- the dashboard ------------------------------------------------------------------------------


def series_names(exposition: str) -> set[str]:
    """Every series name a scrape of this exposition can hold, from its TYPE lines."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def exported_series() -> set[str]:
    proxy = Stats(Gate(2, 3), windows=(60,))
    return series_names(generate_latest(metrics.REGISTRY).decode()) | series_names(
        render(registry_for(proxy)).decode()
    )


def expressions() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def test_the_dashboard_queries_only_series_ferry_exports() -> None:
    used = {name for expr in expressions() for name in re.findall(r"\bferry_[a-z_]+\b", expr)}
    assert len(used) >= 8
    assert used <= exported_series()


def test_the_dashboard_shows_demand_replicas_latency_and_rejections_per_api() -> None:
    by_title = {panel["title"]: panel for panel in DASHBOARD["panels"]}
    for title, series in [
        ("Demand per API", "ferry_autoscaler_demand"),
        ("Replicas per API", "ferry_autoscaler_desired_replicas"),
        ("Latency per API", "ferry_proxy_request_duration_seconds_bucket"),
        ("Rejections per API", "ferry_proxy_rejected_total"),
    ]:
        exprs = [target["expr"] for target in by_title[title]["targets"]]
        assert any(series in expr and 'api=~"$api"' in expr for expr in exprs), title
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


# --- the image --------------------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, spaces collapsed and comments
    left out."""
    joined = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, *rest = line.split()
            found.append((word.upper(), " ".join(rest)))
    return found


def test_the_image_is_built_from_an_exact_python_release() -> None:
    steps = instructions(DOCKERFILE)
    base = next(rest for word, rest in steps if word == "ARG" and rest.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(
        r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base
    )
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) == 2  # build, then a final stage without the build's leftovers
    assert all(stage.split()[0] == "${PYTHON_IMAGE}" for stage in stages)


def test_the_image_installs_this_package_pinned_and_runs_as_a_numeric_user() -> None:
    steps = instructions(DOCKERFILE)
    installs = [rest for word, rest in steps if word == "RUN" and "pip install" in rest]
    assert installs == [
        "python -m venv /opt/ferry && /opt/ferry/bin/pip install --constraint constraints.txt ."
    ]
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users == ["1000:1000"]
    assert (
        "ENV",
        "PATH=/opt/ferry/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
    ) in final


def test_the_image_starts_every_console_script_and_runs_the_operator_by_default() -> None:
    steps = instructions(DOCKERFILE)
    checked = " ".join(rest for word, rest in steps if word == "RUN" and "--help" in rest)
    assert sorted(re.findall(r"([\w-]+) --help", checked)) == sorted(SCRIPTS)
    (command,) = [json.loads(rest) for word, rest in steps if word == "CMD"]
    assert command == ["ferry-operator"]
    assert command[0] in SCRIPTS


def docker_copy(source: Path, target: Path, ignored: list[str]) -> None:
    """COPY as this Dockerfile uses it: a folder's contents go into the target folder (links
    kept as links), a file goes into it by its name."""
    if source.is_dir():
        shutil.copytree(
            source,
            target,
            symlinks=True,
            ignore=shutil.ignore_patterns(*ignored),
            dirs_exist_ok=True,
        )
    else:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / source.name)


def test_the_image_installs_the_product_package_and_not_the_local_environment(
    tmp_path: Path,
) -> None:
    # The wheel of the build stage's `pip install .`, built from what its COPY lines take (less
    # what the build context ignores) with this environment's setuptools, offline.
    steps = instructions(DOCKERFILE)
    build_stage = steps[: max(i for i, (word, _) in enumerate(steps) if word == "FROM")]
    (workdir,) = [rest for word, rest in build_stage if word == "WORKDIR"]
    context = tmp_path / "context" / workdir.lstrip("/")
    ignored = [
        line.removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("**/")
    ]
    copies = [rest.split() for word, rest in build_stage if word == "COPY"]
    assert copies and all(not part.startswith("--") for copy in copies for part in copy)
    for *sources, target in copies:
        for source in sources:
            docker_copy(REPO / source, context / target, ignored)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            f"--wheel-dir={wheels}",
            str(context),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    packages = {name.split("/")[0] for name in files if ".dist-info/" not in name}
    assert packages == {"ferry"}
    product = {"ferry/cli/main.py", "ferry/proxy/main.py", "ferry/spec/realtimeapis.ferry.dev.yaml"}
    assert product <= set(files)
    # Nor a folder of the local environment left inside the product.
    assert [name for name in files if "local" in Path(name).parts] == []


def test_the_local_agent_runs_the_image_from_this_packages_scripts() -> None:
    # The image's name is its folder's, under the chart's registry; the node agent's table maps
    # it to this environment's bin folder, as the image's PATH holds /opt/ferry/bin.
    repository = f"ghcr.io/ferry-dev/{DOCKERFILE.parent.name}"
    assert VALUES["image"]["repository"] == repository
    assert split_reference(DEFAULT_IMAGE)[0] == repository
    entry = ImageTable.load([BUILTIN_TABLE]).lookup(DEFAULT_IMAGE)
    assert entry.path and all((Path(folder) / "ferry-operator").exists() for folder in entry.path)
