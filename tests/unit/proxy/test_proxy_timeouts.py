"""Request timeouts on one timer: each request times out at its own deadline, ended ones never."""

from __future__ import annotations

import asyncio

from ferry.proxy.timeouts import Timeouts

SECONDS = 0.05


class Request:
    def __init__(self, name: str, log: list[tuple[str, float]], done: asyncio.Event) -> None:
        self.name = name
        self.log = log
        self.done = done
        self.then: Request | None = None
        self.timeouts: Timeouts | None = None

    def timed_out(self) -> None:
        loop = asyncio.get_running_loop()
        self.log.append((self.name, loop.time()))
        if self.then is not None and self.timeouts is not None:
            self.timeouts.start(self.then, loop.time())  # the connection's next request
        if self.name == "last":
            self.done.set()


async def test_each_pending_request_times_out_at_its_deadline_in_order() -> None:
    loop = asyncio.get_running_loop()
    timeouts = Timeouts(loop, SECONDS)
    log: list[tuple[str, float]] = []
    done = asyncio.Event()
    first, ended, second = (Request(name, log, done) for name in ("first", "ended", "second"))
    last = Request("last", log, done)
    second.then, second.timeouts = last, timeouts

    now = loop.time()
    started = {"first": now, "ended": now + 0.01, "second": now + 0.02}
    for request in (first, ended, second):
        timeouts.start(request, started[request.name])
    timeouts.end(ended)
    await asyncio.wait_for(done.wait(), timeout=5)

    assert [name for name, _ in log] == ["first", "second", "last"]
    for name, at in log[:2]:
        assert at >= started[name] + SECONDS
    assert log[2][1] >= log[1][1] + SECONDS, "a request started while others expire gets its own"
