"""A stand-in for many proxies' admin ports: /stats in ferry-proxy's format on many addresses.

    python stats_server.py PORT DEMAND IP [IP ...]

Serves GET /stats on every IP:PORT with a document in ferry-proxy's format (ferry.wire.stats),
every window averaging DEMAND queued + in-flight requests, with requests received and served at
the rates that make the offered load DEMAND too (so the decision stays steady), and keeps each
connection open for the next request as the proxy's admin port does. One process stands for
hundreds of pods, so a thousand APIs' stats come from a few real processes rather than a
thousand proxies.
"""

from __future__ import annotations

import asyncio
import sys
import time

from ferry.wire.stats import VERSION, StatsDocument, WindowDocument, encode

# A mean service time for the rates: in-flight / served per second, by Little's law.
SERVICE_SECONDS = 0.25


def document(demand: float) -> bytes:
    in_flight = min(demand, 4.0)
    windows = [
        WindowDocument(
            seconds=seconds,
            samples=seconds,
            inFlight=in_flight,
            queued=demand - in_flight,
            # Offered load = received x in-flight / served = demand.
            received=demand / SERVICE_SECONDS,
            served=in_flight / SERVICE_SECONDS,
        )
        for seconds in (60, 6)
    ]
    return encode(
        StatsDocument(
            version=VERSION,
            startTime=round(time.time(), 3),
            uptimeSeconds=60.0,
            draining=False,
            maxConcurrency=4,
            maxQueueLength=100,
            inFlight=round(in_flight),
            queued=round(demand - in_flight),
            requestsTotal=1000,
            rejectedTotal=0,
            servedTotal=1000,
            bufferedBytes=0,
            windows=windows,
        )
    )


async def serve(port: int, demand: float, ips: list[str]) -> None:
    payload = document(demand)
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(answer, ip, port, backlog=64) for ip in ips]
    print(f"serving /stats on {len(servers)} addresses, port {port}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]))
