"""Entry point of `ferry-proxy`: serve until SIGTERM, drain, exit."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from ferry import allocator
from ferry.proxy.admin import Admin
from ferry.proxy.config import ProxyConfig, load
from ferry.proxy.server import ClientConnection, Proxy

log = logging.getLogger("ferry.proxy")


async def serve(config: ProxyConfig) -> int:
    loop = asyncio.get_running_loop()
    proxy = Proxy(config, loop)
    server = await loop.create_server(
        lambda: ClientConnection(proxy), config.listen_host, config.port, backlog=4096
    )
    admin = await Admin(proxy).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ticker = loop.create_task(proxy.tick_forever())
    # Everything built so far lives as long as the process: keep the collector from walking it
    # again and again, so its pauses do not show in the latency tail.
    gc.freeze()
    log.info(
        "ferry-proxy on %s:%d (admin %d) -> %s:%d; concurrency %d, queue %d, timeout %gs",
        config.listen_host,
        config.port,
        config.admin_port,
        config.upstream_host,
        config.upstream_port,
        config.max_concurrency,
        config.max_queue_length,
        config.timeout_seconds,
    )
    try:
        await stop.wait()
        return await proxy.drain(server)
    finally:
        ticker.cancel()
        admin.close()
        proxy.pool.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional: the proxy runs on the default loop without it
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    config = load(argv)
    # Request bodies come in reads of up to 256 KiB and sit in buffers of up to the body limit:
    # once freed they must go back to the system, or a burst's peak would stay resident.
    allocator.return_large_blocks_to_the_system()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
