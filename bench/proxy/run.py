"""ferry-proxy against the upstream called directly and against Knative's queue-proxy.

    .venv/bin/python bench/proxy/run.py [--duration 10] [--connections 32]

Installs wrk (Debian) and builds queue-proxy (tools/knative) when missing, then measures inside a
private network namespace that holds only loopback: queue-proxy binds its ports on every
interface and cannot be told otherwise, and there nothing outside the machine can reach them.
Each proxy is pinned to core 0; wrk and the upstream share core 1. See README.md beside this file.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferry.local import processes
from ferry.local.health import healthy
from ferry.local.wait import wait_until

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
# Both proxies enforce the same limit, well above the load's connections, so neither rejects.
CONCURRENCY = 64
# wrk has no constant-rate mode; each connection waits this long between its requests, and the
# number of connections sets the rate (see README.md).
PACING_MS = 2


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


def ensure_queue_proxy() -> Path:
    """Build knative.dev/serving/cmd/queue at the version tools/knative/go.mod pins, once."""
    pinned = re.search(r"knative\.dev/serving (\S+)", (KNATIVE_MODULE / "go.mod").read_text())
    assert pinned is not None, "tools/knative/go.mod pins knative.dev/serving"
    cache = Path(os.environ.get("FERRY_CACHE_DIR", Path.home() / ".cache" / "ferry"))
    binary = cache / f"knative-{pinned.group(1)}" / "queue"
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


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> Result:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--latency", *(["-s", str(script)] if script else []), url]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", output)
    if rate is None or errors is not None:
        raise RuntimeError(f"wrk against {url} failed or saw errors:\n{output}")
    latency = {pct: float(value) * _UNITS_MS[unit] for pct, value, unit in _LATENCY.findall(output)}
    return Result(float(rate.group(1)), latency["50"], latency["99"])


@contextmanager
def started(
    argv: list[str], log: Path, check_url: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    process = processes.spawn(argv, log, env=env)
    try:
        wait_until(
            lambda: process.poll() is None and healthy(check_url),
            timeout=30,
            what=f"{argv[3] if argv[0] == 'taskset' else argv[0]} (log: {log})",
        )
        yield
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


def measure(args: argparse.Namespace, queue_proxy: Path, logs: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    python = sys.executable
    bin_dir = Path(python).parent
    targets = {
        "direct": f"http://127.0.0.1:{UPSTREAM_PORT}/",
        "ferry-proxy": f"http://127.0.0.1:{FERRY_PORT}/",
        "queue-proxy": f"http://127.0.0.1:{QUEUE_PORT}/",
    }
    pin = ["taskset", "-c", PROXY_CORE]
    ferry = [
        *pin,
        str(bin_dir / "ferry-proxy"),
        "--listen-host=127.0.0.1",
        f"--port={FERRY_PORT}",
        f"--admin-port={FERRY_ADMIN_PORT}",
        f"--upstream-port={UPSTREAM_PORT}",
        f"--max-concurrency={CONCURRENCY}",
        f"--max-queue-length={CONCURRENCY}",
    ]
    upstream = ["taskset", "-c", LOAD_CORE, python, str(Path(__file__).with_name("upstream.py"))]
    with ExitStack() as stack:
        stack.enter_context(
            started([*upstream, str(UPSTREAM_PORT)], logs / "upstream.log", targets["direct"])
        )
        stack.enter_context(started(ferry, logs / "ferry-proxy.log", targets["ferry-proxy"]))
        stack.enter_context(
            started(
                [*pin, str(queue_proxy)],
                logs / "queue-proxy.log",
                targets["queue-proxy"],
                env=queue_proxy_env(),
            )
        )
        saturated = {}
        for name, url in targets.items():
            wrk(url, 2, args.connections)  # warm up: pools filled, caches hot
            saturated[name] = wrk(url, args.duration, args.connections)
            print(f"saturated {name}: {saturated[name]}", file=sys.stderr)

        half = saturated["ferry-proxy"].rate / 2
        script = logs / "pace.lua"
        script.write_text(f"function delay()\n  return {PACING_MS}\nend\n")
        connections = max(1, round(half * PACING_MS / 1000))
        probe = wrk(targets["ferry-proxy"], 3, connections, script)
        connections = max(1, round(connections * half / probe.rate))
        paced = {}
        for name, url in targets.items():
            paced[name] = wrk(url, args.duration, connections, script)
            print(f"paced {name}: {paced[name]}", file=sys.stderr)
    report(saturated, paced, half, connections)


def report(
    saturated: dict[str, Result], paced: dict[str, Result], half: float, connections: int
) -> None:
    columns = f"{'req/s':>12} {'p50 ms':>10} {'p99 ms':>10}"
    print()
    print(f"{'':14} {'saturated (1 core per proxy)':>34}   {f'paced at ~{half:.0f} req/s':>34}")
    print(f"{'target':14} {columns}   {columns}")
    for name, s in saturated.items():
        p = paced[name]
        print(
            f"{name:14} {s.rate:12.0f} {s.p50_ms:10.3f} {s.p99_ms:10.3f}   "
            f"{p.rate:12.0f} {p.p50_ms:10.3f} {p.p99_ms:10.3f}"
        )
    ferry, queue, direct = saturated["ferry-proxy"], saturated["queue-proxy"], paced["direct"]
    print()
    print(f"throughput per core, ferry-proxy / queue-proxy: {ferry.rate / queue.rate:.2f}x")
    for name in ("ferry-proxy", "queue-proxy"):
        print(
            f"added at ~{half:.0f} req/s ({connections} paced connections), {name}: "
            f"p50 +{paced[name].p50_ms - direct.p50_ms:.3f} ms, "
            f"p99 +{paced[name].p99_ms - direct.p99_ms:.3f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, saturated")
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # set when re-run in the namespace
    args = parser.parse_args()
    if args.inside:
        measure(args, ensure_queue_proxy(), Path(args.inside))
        return 0
    ensure_wrk()
    ensure_queue_proxy()
    logs = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    print(f"logs in {logs}", file=sys.stderr)
    argv = [sys.executable, __file__, f"--duration={args.duration}"]
    argv += [f"--connections={args.connections}", f"--inside={logs}"]
    return subprocess.run(["unshare", "--net", *argv], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
