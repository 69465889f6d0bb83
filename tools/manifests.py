"""`python -m tools.manifests [--check]` (`make manifests`): the files derived from the chart.

The Helm chart in charts/ferry is the one source of Ferry's installation. From it come:
- charts/ferry/files/<each file of crds/>: the chart's copies of the CRD and its admission
  policy, which its templates read (a chart cannot read files outside its folder);
- manifests/install.yaml: `helm template` of the chart's defaults, for `kubectl apply`, as Helm
  would install it on the Kubernetes the project is tested on (which serves
  MutatingAdmissionPolicy, so the finalizer policy is in);
- manifests/fluent-bit.yaml: the chart's optional Fluent Bit part alone, in a namespace of its
  own so it can be applied and deleted without touching the operator.
--check writes nothing and exits 1 if a file differs from what the chart makes of it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "ferry"
CRDS = REPO / "crds"
CHART_FILES = CHART / "files"
INSTALL = REPO / "manifests" / "install.yaml"
FLUENT_BIT = REPO / "manifests" / "fluent-bit.yaml"

RELEASE = "ferry"
NAMESPACE = "ferry-system"
LOGGING_NAMESPACE = "ferry-logging"
FLUENT_BIT_TEMPLATES = ("serviceaccount.yaml", "rbac.yaml", "configmap.yaml", "daemonset.yaml")
# What a Kubernetes 1.37 API server serves beyond Helm's offline defaults.
SERVED = ("--api-versions=admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",)


def find_helm() -> str:
    """The helm the local toolchain built (`make tools`), else one on PATH."""
    try:
        from ferry_local.toolchain import locate  # noqa: PLC0415 - only for the default

        built = locate().binary("helm")
        if built.exists():
            return str(built)
    except ImportError:
        pass
    found = shutil.which("helm")
    if found is None:
        raise SystemExit("helm not found: run `make tools`, or put helm on PATH")
    return found


def namespace_document(name: str) -> str:
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {name}\n  labels:\n    app.kubernetes.io/part-of: ferry\n"
    )


def helm_template(helm: str, namespace: str, *args: str) -> str:
    # Helm's own folders go to a scratch place: rendering reads no repository and no plugin.
    with tempfile.TemporaryDirectory(prefix="ferry-helm-") as home:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": f"{home}/cache",
            "HELM_CONFIG_HOME": f"{home}/config",
            "HELM_DATA_HOME": f"{home}/data",
        }
        result = subprocess.run(
            [helm, "template", RELEASE, str(CHART), f"--namespace={namespace}", *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    if result.returncode != 0:
        raise SystemExit(f"helm template failed: {result.stderr.strip()}")
    return result.stdout


def chart_copies() -> dict[Path, str]:
    """The chart's copy of each file of crds/, and its content."""
    return {CHART_FILES / source.name: source.read_text() for source in sorted(CRDS.glob("*.yaml"))}


def rendered(helm: str) -> dict[Path, str]:
    """Each derived file and the content the chart (and crds/) make of it now."""
    install = helm_template(helm, NAMESPACE, *SERVED)
    fluent_bit = helm_template(
        helm,
        LOGGING_NAMESPACE,
        "--set=fluentBit.enabled=true",
        *(f"--show-only=templates/fluent-bit/{name}" for name in FLUENT_BIT_TEMPLATES),
    )
    return {
        **chart_copies(),
        INSTALL: (
            "# Ferry's operator, its CRD and admission policy, and RBAC: the Helm chart's "
            f"defaults (release\n# {RELEASE!r}, namespace {NAMESPACE}), made by `make manifests` "
            "from charts/ferry. Edit the chart,\n# not this file. The MutatingAdmissionPolicy "
            "and its binding need a\n# cluster that serves that kind (1.37 does).\n"
            "#   kubectl apply --server-side -f manifests/install.yaml\n---\n"
            f"{namespace_document(NAMESPACE)}{install}"
        ),
        FLUENT_BIT: (
            "# Fluent Bit shipping each RealtimeAPI pod's logs to the API's CloudWatch Logs "
            "group: the Helm\n# chart's fluentBit part alone, made by `make manifests` from "
            "charts/ferry. Edit the chart,\n# not this file. Its ServiceAccount needs "
            "logs:CreateLogStream, logs:PutLogEvents and\n# logs:DescribeLogStreams on "
            "/ferry/* (IRSA: annotate it with eks.amazonaws.com/role-arn).\n"
            "#   kubectl apply -f manifests/fluent-bit.yaml\n---\n"
            f"{namespace_document(LOGGING_NAMESPACE)}{fluent_bit}"
        ),
    }


def stale(files: dict[Path, str]) -> list[Path]:
    return [path for path, text in files.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.manifests", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    parser.add_argument("--helm", help="helm binary (default: the toolchain's, else PATH)")
    args = parser.parse_args(argv)
    helm = args.helm or find_helm()
    if not args.check:
        # The copies first: the chart renders from them.
        for path, text in chart_copies().items():
            path.write_text(text)
    files = rendered(helm)
    differing = stale(files)
    if args.check:
        for path in differing:
            print(f"{path.relative_to(REPO)} differs from the chart: run `make manifests`")
        return 1 if differing else 0
    for path in differing:
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
