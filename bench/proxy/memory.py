"""ferry-proxy's memory under a burst of large request bodies queued in front of a slow predictor.

    .venv/bin/python bench/proxy/memory.py [--baseline DIR] [--rounds 3] [--requests 60]
                                           [--body-mib 9] [--seconds 0.25]

Runs this tree's proxy and, with --baseline, the proxy of another source tree (its operator/
directory on PYTHONPATH, e.g. an export of an older commit), in turns, `--rounds` times each.
Every run starts a fresh slow predictor (bench/proxy/slow_upstream.py: it reads each body and
answers after --seconds) and a fresh proxy with 4 slots and a queue of 200, as the issue's
reproduction had, then opens `--requests` connections at once, each sending one POST with a
--body-mib body and reading the whole answer. It prints, per run and as the median per proxy:

- the proxy's RSS before the burst (after a few small requests), its peak during it (VmHWM,
  reset just before), half a second after the last answer with the clients' connections still
  open (kept alive, as a pooling client leaves them), and a second after they close;
- how the clients' requests ended: 200, 503 with Retry-After, another status, or an error
  (a reset or a connection closed without a complete answer).

Everything listens on 127.0.0.1; nothing is asserted (tests/e2e/test_proxy_memory.py does that).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ferry_local import processes
from ferry_local.health import healthy
from ferry_local.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
MIB = 2**20
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class Run:
    before_mib: float
    peak_mib: float
    after_open_mib: float
    after_closed_mib: float
    outcomes: Counter[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


@contextmanager
def running(argv: list[str], log: Path, ready: str, env: dict[str, str]) -> Iterator[int]:
    process = processes.spawn(argv, log, env=env)
    try:
        wait_until(
            lambda: process.poll() is None and healthy(ready) if ready else _listening(argv),
            timeout=30,
            what=f"{argv[1:3]} (log: {log})",
        )
        yield process.pid
    finally:
        processes.stop_group(process, grace=5)


def _listening(argv: list[str]) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(argv[2]))) == 0


@dataclass
class Tally:
    """How the burst's requests ended; `complete` is set once every one has."""

    expected: int
    outcomes: Counter[str] = field(default_factory=Counter)
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if self.outcomes.total() == self.expected:
            self.complete.set()


async def one_request(port: int, body: bytes, tally: Tally, hold: asyncio.Event) -> None:
    """POST `body` and note how it ended; a kept-alive connection stays open until `hold` is
    set."""
    head = b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % len(body)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        tally.note(f"connect failed: {type(error).__name__}")
        return
    try:
        writer.write(head)
        view = memoryview(body)
        for start in range(0, len(body), MIB):
            writer.write(view[start : start + MIB])
            await writer.drain()
        answer = await reader.readuntil(b"\r\n\r\n")
        status = answer.split(b" ", 2)[1].decode()
        fields = answer.lower()
        length = int(fields.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        if status == "503":
            retry = b"\r\nretry-after:" in fields
            tally.note("503 with Retry-After" if retry else "503 without Retry-After")
        else:
            tally.note(status)
        if b"\r\nconnection: close" not in fields:
            await hold.wait()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        tally.note(f"error: {type(error).__name__}")
    finally:
        writer.close()


async def burst(port: int, count: int, body: bytes, pid: int) -> tuple[float, Counter[str]]:
    """Send the burst; the proxy's RSS once every answer is in, and how the requests ended."""
    tally = Tally(count)
    hold = asyncio.Event()
    tasks = [asyncio.create_task(one_request(port, body, tally, hold)) for _ in range(count)]
    await tally.complete.wait()
    # The proxy frees a request just after it has written the answer: give it that moment.
    await asyncio.sleep(SETTLE_SECONDS)
    after_open = memory_mib(pid, "VmRSS")
    hold.set()
    await asyncio.gather(*tasks)
    return after_open, tally.outcomes


def measure(argv: list[str], env: dict[str, str], args: argparse.Namespace, logs: Path) -> Run:
    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    upstream = [sys.executable, str(HERE / "slow_upstream.py"), str(upstream_port)]
    proxy = [
        *argv,
        "--listen-host=127.0.0.1",
        f"--port={port}",
        f"--admin-port={admin_port}",
        f"--upstream-port={upstream_port}",
        "--max-concurrency=4",
        "--max-queue-length=200",
        "--timeout-seconds=300",
    ]
    body = b"x" * int(args.body_mib * MIB)
    with (
        running([*upstream, str(args.seconds)], logs / "upstream.log", "", os.environ.copy()),
        running(proxy, logs / "proxy.log", f"http://127.0.0.1:{admin_port}/healthz", env) as pid,
    ):
        for _ in range(20):  # warm: the pool and the code paths of a small request
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                while sock.recv(65536):
                    pass
        before = memory_mib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        after_open, outcomes = asyncio.run(burst(port, args.requests, body, pid))
        peak = memory_mib(pid, "VmHWM")
        time.sleep(1.0)
        after_closed = memory_mib(pid, "VmRSS")
    return Run(before, peak, after_open, after_closed, outcomes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a source tree whose proxy to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--body-mib", type=float, default=9.0)
    parser.add_argument("--seconds", type=float, default=0.25, help="predictor time per request")
    args = parser.parse_args()
    command = [sys.executable, "-m", "ferry.proxy.main"]
    candidates = {"this tree": ROOT / "operator"}
    if args.baseline is not None:
        candidates = {"baseline": args.baseline.resolve() / "operator", **candidates}
    logs = Path(tempfile.mkdtemp(prefix="ferry-bench-memory-"))
    print(f"logs in {logs}", file=sys.stderr)
    runs: dict[str, list[Run]] = {name: [] for name in candidates}
    for round_index in range(args.rounds):
        for name, source in candidates.items():
            env = {**os.environ, "PYTHONPATH": str(source)}
            run = measure(command, env, args, logs / f"{name.replace(' ', '-')}-{round_index}")
            runs[name].append(run)
            print(f"round {round_index + 1}, {name}: {run}", file=sys.stderr)
    print()
    print(
        f"{args.requests} concurrent POSTs of {args.body_mib:g} MiB, 4 slots, queue of 200, "
        f"predictor {args.seconds:g} s per request; RSS in MiB, median of {args.rounds} runs"
    )
    print(f"{'proxy':12} {'before':>8} {'peak':>8} {'after':>8} {'closed':>8}  outcomes")
    for name, results in runs.items():
        outcomes: Counter[str] = Counter()
        for run in results:
            outcomes.update(run.outcomes)
        figures = [
            statistics.median(getattr(run, field) for run in results)
            for field in ("before_mib", "peak_mib", "after_open_mib", "after_closed_mib")
        ]
        shown = ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
        print(f"{name:12} " + " ".join(f"{value:8.1f}" for value in figures) + f"  {shown}")
    print(
        f"(after: {SETTLE_SECONDS:g} s after the last answer, the clients' connections open;"
        " closed: 1 s after they close)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
