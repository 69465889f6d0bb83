"""A predictor that answers what a test scripts, byte for byte, HTTP or not: for the proxy's
handling of predictors that misbehave, and for checking what the proxy forwarded at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

Script = Callable[[int], tuple[bytes, bool]]
"""For the nth request head (from 1): the raw bytes to answer, and whether to close after."""


def always(response: bytes) -> Script:
    return lambda _n: (response, False)


def first_then(first: bytes, then: bytes, *, close_first: bool = True) -> Script:
    """`first` for the first request (closing after it unless told not to), `then` for the rest."""
    return lambda n: (first, close_first) if n == 1 else (then, False)


@dataclass
class ScriptedPredictor:
    """Reads request heads (bodies are not read) and answers each as its script says."""

    script: Script
    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    """Every head received, as it came."""
    requests: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.received += head
                self.requests += 1
                answer, close = self.script(self.requests)
                writer.write(answer)
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        writer.close()


@asynccontextmanager
async def scripted_predictor(script: Script) -> AsyncIterator[ScriptedPredictor]:
    """The predictor on a free loopback port, for the length of the block."""
    predictor = ScriptedPredictor(script)
    server = await asyncio.start_server(predictor.serve, "127.0.0.1", 0, limit=2**20)
    predictor.port = server.sockets[0].getsockname()[1]
    async with server:
        yield predictor
