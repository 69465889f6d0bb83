"""ferry-proxy against the upstream called directly and against Knative's queue-proxy.

    .venv/bin/python bench/proxy/run.py [--duration 10] [--connections 32] [--rounds 5]
                                        [--baseline DIR]

Installs wrk (Debian) and builds queue-proxy (tools/knative) and fortio (its Go module) when
missing, then measures inside a private network namespace that holds only loopback: queue-proxy
binds its ports on every interface and cannot be told otherwise, and there nothing outside the
machine can reach them. Each proxy is pinned to core 0; the load generator and the upstream share
core 1. wrk finds each target's saturation; fortio offers a constant rate for the latencies. With
--baseline, the ferry-proxy of another source tree (its operator/ directory on PYTHONPATH) is
measured beside this tree's, in the same rounds. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
KNATIVE_MODULE = ROOT / "tools" / "knative"
PROXY_CORE, LOAD_CORE = "0", "1"
UPSTREAM_PORT, FERRY_PORT, FERRY_ADMIN_PORT, QUEUE_PORT, QUEUE_TLS_PORT = (
    9000,
    8000,
    8001,
    8012,
    8112,
)
BASELINE_PORT, BASELINE_ADMIN_PORT = 8100, 8101
BASELINE = "ferry-baseline"
# Both proxies enforce the same limit, well above the load's connections, so neither rejects.
CONCURRENCY = 64
# Newer fortio releases need grol.io/grol, which the module proxy here does not serve.
FORTIO_VERSION = "v1.66.5"
# Keep-alive connections of the constant-rate load; a sidecar in front of one model server sees
# few. Both proxies' limits are well above it.
PACED_CONNECTIONS = 16
PACED_SECONDS = 4


@dataclass(frozen=True)
class Result:
    rate: float
    p50_ms: float
    p99_ms: float


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk from Debian ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or sys.exit("wrk did not install")


def _cache() -> Path:
    return Path(os.environ.get("FERRY_CACHE_DIR", Path.home() / ".cache" / "ferry"))


def ensure_fortio() -> Path:
    """Build fortio (Istio's load generator, made for constant-rate latency runs), once."""
    binary = _cache() / f"fortio-{FORTIO_VERSION}" / "fortio"
    if not binary.exists():
        print(f"building fortio {FORTIO_VERSION} ...", file=sys.stderr)
        subprocess.run(
            ["go", "install", f"fortio.org/fortio@{FORTIO_VERSION}"],
            env={**os.environ, "GOBIN": str(binary.parent)},
            check=True,
        )
    return binary


def ensure_queue_proxy() -> Path:
    """Build knative.dev/serving/cmd/queue at the version tools/knative/go.mod pins, once."""
    pinned = re.search(r"knative\.dev/serving (\S+)", (KNATIVE_MODULE / "go.mod").read_text())
    assert pinned is not None, "tools/knative/go.mod pins knative.dev/serving"
    binary = _cache() / f"knative-{pinned.group(1)}" / "queue"
    if not binary.exists():
        print(f"building queue-proxy {pinned.group(1)} (a minute or two) ...", file=sys.stderr)
        binary.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-trimpath", "-o", str(binary), "knative.dev/serving/cmd/queue"],
            cwd=KNATIVE_MODULE,
            check=True,
        )
    return binary


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int, connections: int) -> tuple[Result, int]:
    """The saturated rate and latencies, and the number of requests answered."""
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--latency", url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    if rate is None or count is None or errors is not None:
        raise RuntimeError(f"wrk against {url} failed or saw errors:\n{output}")
    latency = {pct: float(value) * _UNITS_MS[unit] for pct, value, unit in _LATENCY.findall(output)}
    return Result(float(rate.group(1)), latency["50"], latency["99"]), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fortio(binary: Path, url: str, rate: float, report: Path) -> Result:
    """`rate` requests/s, evenly spaced (open loop as far as the connections allow)."""
    argv = ["taskset", "-c", LOAD_CORE, str(binary), "load", "-quiet", "-uniform"]
    argv += ["-qps", f"{rate:.0f}", "-c", str(PACED_CONNECTIONS), "-t", f"{PACED_SECONDS}s"]
    argv += ["-r", "0.00001", "-p", "50,99", "-json", str(report), url]
    # One core for the load: Go would otherwise spread it over the proxy's core too.
    env = {**os.environ, "GOMAXPROCS": "1"}
    subprocess.run(argv, capture_output=True, check=True, env=env)
    found = json.loads(report.read_text())
    codes = found["RetCodes"]
    if set(codes) != {"200"}:
        raise RuntimeError(f"fortio against {url} saw answers other than 200: {codes}")
    latency = {
        p["Percentile"]: p["Value"] * 1000 for p in found["DurationHistogram"]["Percentiles"]
    }
    return Result(found["ActualQPS"], latency[50], latency[99])


def median_result(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rate for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
    )


@contextmanager
def started(
    argv: list[str], log: Path, check_url: str, env: dict[str, str] | None = None
) -> Iterator[int]:
    """Run `argv` until the block ends; its pid (taskset execs what it runs: the same process)."""
    process = processes.spawn(argv, log, env=env)
    try:
        wait_until(
            lambda: process.poll() is None and healthy(check_url),
            timeout=30,
            what=f"{argv[3] if argv[0] == 'taskset' else argv[0]} (log: {log})",
        )
        yield process.pid
    finally:
        processes.stop_group(process, grace=5)


def queue_proxy_env() -> dict[str, str]:
    # The variables knative.dev/serving/pkg/queue/sharedmain requires (its `config` struct).
    return {
        **os.environ,
        "CONTAINER_CONCURRENCY": str(CONCURRENCY),
        "QUEUE_SERVING_PORT": str(QUEUE_PORT),
        "QUEUE_SERVING_TLS_PORT": str(QUEUE_TLS_PORT),
        "USER_PORT": str(UPSTREAM_PORT),
        "REVISION_TIMEOUT_SECONDS": "60",
        "SERVING_LOGGING_CONFIG": "",
        "SERVING_LOGGING_LEVEL": "error",
        "SERVING_NAMESPACE": "bench",
        "SERVING_CONFIGURATION": "bench",
        "SERVING_REVISION": "bench",
        "SERVING_POD": "bench",
        "SERVING_POD_IP": "127.0.0.1",
    }


def ferry_command(port: int, admin_port: int) -> list[str]:
    return [
        "taskset",
        "-c",
        PROXY_CORE,
        sys.executable,
        "-m",
        "ferry.proxy.main",
        "--listen-host=127.0.0.1",
        f"--port={port}",
        f"--admin-port={admin_port}",
        f"--upstream-port={UPSTREAM_PORT}",
        f"--max-concurrency={CONCURRENCY}",
        f"--max-queue-length={CONCURRENCY}",
    ]


def measure(args: argparse.Namespace, queue_proxy: Path, fortio_binary: Path, logs: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    targets = {
        "direct": f"http://127.0.0.1:{UPSTREAM_PORT}/",
        "ferry-proxy": f"http://127.0.0.1:{FERRY_PORT}/",
        "queue-proxy": f"http://127.0.0.1:{QUEUE_PORT}/",
    }
    if args.baseline:
        targets[BASELINE] = f"http://127.0.0.1:{BASELINE_PORT}/"
    this_tree = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    upstream = [
        *("taskset", "-c", LOAD_CORE, sys.executable),
        str(Path(__file__).with_name("upstream.py")),
    ]
    pids: dict[str, int] = {}
    with ExitStack() as stack:
        stack.enter_context(
            started([*upstream, str(UPSTREAM_PORT)], logs / "upstream.log", targets["direct"])
        )
        pids["ferry-proxy"] = stack.enter_context(
            started(
                ferry_command(FERRY_PORT, FERRY_ADMIN_PORT),
                logs / "ferry-proxy.log",
                targets["ferry-proxy"],
                env=this_tree,
            )
        )
        if args.baseline:
            pids[BASELINE] = stack.enter_context(
                started(
                    ferry_command(BASELINE_PORT, BASELINE_ADMIN_PORT),
                    logs / f"{BASELINE}.log",
                    targets[BASELINE],
                    env={**os.environ, "PYTHONPATH": str(Path(args.baseline) / "operator")},
                )
            )
        pids["queue-proxy"] = stack.enter_context(
            started(
                ["taskset", "-c", PROXY_CORE, str(queue_proxy)],
                logs / "queue-proxy.log",
                targets["queue-proxy"],
                env=queue_proxy_env(),
            )
        )
        for url in targets.values():
            wrk(url, 2, args.connections)  # warm up: pools filled, caches hot
        # Saturation in rounds too, each round starting one target further on, so that none is
        # always measured after the same one; the median of each. Besides the rate, each
        # proxy's requests per second of the CPU time it used: its throughput per core, which
        # other work on the machine moves much less than the rate.
        saturated_runs: dict[str, list[Result]] = {name: [] for name in targets}
        per_cpu_runs: dict[str, list[float]] = {name: [] for name in pids}
        names = list(targets)
        for round_index in range(args.saturated_rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                pid = pids.get(name)
                used = cpu_seconds(pid) if pid else 0.0
                result, count = wrk(targets[name], args.duration, args.connections)
                saturated_runs[name].append(result)
                if pid:
                    per_cpu_runs[name].append(count / (cpu_seconds(pid) - used))
        saturated = {name: median_result(results) for name, results in saturated_runs.items()}
        per_cpu = {name: statistics.median(runs) for name, runs in per_cpu_runs.items()}
        for name, results in saturated_runs.items():
            print(f"saturated {name}: {results} {per_cpu_runs.get(name)}", file=sys.stderr)

        # Each proxy at half of ferry-proxy's saturation (the goal's rate) and at half of its
        # own, beside the upstream called directly at the same rate; rounds in turn, so a busy
        # moment of the machine falls on every target alike, and the median of each.
        half = saturated["ferry-proxy"].rate / 2
        peer_half = saturated["queue-proxy"].rate / 2
        plan = [(name, url, half) for name, url in targets.items()]
        plan += [("direct", targets["direct"], peer_half)]
        plan += [("queue-proxy", targets["queue-proxy"], peer_half)]
        runs: dict[tuple[str, float], list[Result]] = {(name, rate): [] for name, _, rate in plan}
        for _ in range(args.rounds):
            for name, url, rate in plan:
                runs[(name, rate)].append(fortio(fortio_binary, url, rate, logs / "fortio.json"))
        for (name, rate), results in runs.items():
            print(f"paced {name} at {rate:.0f} req/s: {results}", file=sys.stderr)
    report(saturated, per_cpu, runs, half, peer_half)


def added(
    runs: dict[tuple[str, float], list[Result]], name: str, rate: float
) -> tuple[float, float]:
    """The p50 and p99 `name` adds over the direct call: the median of each round's difference,
    so that the machine's drift between rounds cancels out rather than adds up."""
    pairs = list(zip(runs[("direct", rate)], runs[(name, rate)], strict=True))
    return (
        statistics.median(proxied.p50_ms - direct.p50_ms for direct, proxied in pairs),
        statistics.median(proxied.p99_ms - direct.p99_ms for direct, proxied in pairs),
    )


def report(
    saturated: dict[str, Result],
    per_cpu: dict[str, float],
    runs: dict[tuple[str, float], list[Result]],
    half: float,
    peer_half: float,
) -> None:
    paced = {key: median_result(results) for key, results in runs.items()}
    columns = f"{'req/s':>12} {'p50 ms':>10} {'p99 ms':>10}"
    print()
    print("saturated (wrk, 1 core per proxy; req/CPU-s: requests per second of the proxy's CPU)")
    print(f"{'target':14} {columns} {'req/CPU-s':>10}")
    for name, s in saturated.items():
        cpu = f"{per_cpu[name]:10.0f}" if name in per_cpu else f"{'':10}"
        print(f"{name:14} {s.rate:12.0f} {s.p50_ms:10.3f} {s.p99_ms:10.3f} {cpu}")
    print()
    print(f"constant rate (fortio, {PACED_CONNECTIONS} connections, median of the rounds)")
    print(f"{'target':14} {'offered':>8} {columns}")
    for (name, rate), p in paced.items():
        print(f"{name:14} {rate:8.0f} {p.rate:12.0f} {p.p50_ms:10.3f} {p.p99_ms:10.3f}")
    print()
    pairs = [("ferry-proxy", "queue-proxy")]
    compared = [("ferry-proxy", half), ("queue-proxy", half), ("queue-proxy", peer_half)]
    if BASELINE in saturated:
        pairs += [(BASELINE, "queue-proxy"), ("ferry-proxy", BASELINE)]
        compared.insert(1, (BASELINE, half))
    for one, other in pairs:
        print(
            f"throughput per core, {one} / {other}: "
            f"{saturated[one].rate / saturated[other].rate:.3f}x (rate), "
            f"{per_cpu[one] / per_cpu[other]:.3f}x (requests per CPU-second)"
        )
    print("added over the direct call (median of the rounds' differences)")
    for name, rate in compared:
        p50, p99 = added(runs, name, rate)
        print(f"added at {rate:.0f} req/s, {name}: p50 {p50:+.3f} ms, p99 {p99:+.3f} ms")
    p99 = added(runs, "ferry-proxy", half)[1]
    verdict = "met" if p99 < 1.0 else "MISSED"
    print(f"ferry-proxy's added p99 at half its saturation: {p99:.3f} ms (goal < 1 ms): {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, saturated")
    parser.add_argument("--rounds", type=int, default=5, help="constant-rate rounds per target")
    parser.add_argument(
        "--saturated-rounds", type=int, default=1, help="saturated (wrk) rounds per target"
    )
    parser.add_argument("--baseline", help="a source tree whose ferry-proxy to measure beside")
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # set when re-run in the namespace
    args = parser.parse_args()
    if args.inside:
        measure(args, ensure_queue_proxy(), ensure_fortio(), Path(args.inside))
        return 0
    ensure_wrk()
    ensure_queue_proxy()
    ensure_fortio()
    logs = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    print(f"logs in {logs}", file=sys.stderr)
    argv = [sys.executable, __file__, f"--duration={args.duration}"]
    argv += [f"--connections={args.connections}", f"--rounds={args.rounds}", f"--inside={logs}"]
    argv += [f"--saturated-rounds={args.saturated_rounds}"]
    if args.baseline:
        argv += [f"--baseline={Path(args.baseline).resolve()}"]
    return subprocess.run(["unshare", "--net", *argv], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
