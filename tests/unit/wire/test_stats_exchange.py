"""The /stats exchange between the scraper and a proxy's admin port: what the scraper asks, and
which answers it takes, however their bytes arrive."""

from __future__ import annotations

import json

import pytest

from ferry.proxy.http import simple_response
from ferry.wire.stats import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    AnswerReader,
    StatsHttpError,
    encode,
    request,
)

BODY = b'{"version":1,"inFlight":2,"queued":1,"windows":[]}'


def read(*chunks: bytes) -> tuple[bytes | None, bool]:
    """The body the reader gives once it has every chunk, and whether the connection stays."""
    reader = AnswerReader()
    body = None
    for chunk in chunks:
        assert body is None, "a body before the last chunk"
        body = reader.feed(chunk)
    return body, reader.keep_alive


def test_the_scraper_asks_for_stats_by_the_pods_address() -> None:
    assert request("10.0.0.7", 8889) == b"GET /stats HTTP/1.1\r\nHost: 10.0.0.7:8889\r\n\r\n"
    assert request("fd00::7", 8889) == b"GET /stats HTTP/1.1\r\nHost: [fd00::7]:8889\r\n\r\n"


def test_the_admin_ports_answer_is_read_whole_however_its_bytes_arrive() -> None:
    answer = simple_response(200, BODY)
    for cut in range(1, len(answer)):
        assert read(answer[:cut], answer[cut:]) == (BODY, True)
    assert read(*(answer[i : i + 1] for i in range(len(answer)))) == (BODY, True)


def test_the_document_is_sent_as_compact_json() -> None:
    document = json.loads(BODY)
    assert encode(document) == BODY


@pytest.mark.parametrize(
    "answer",
    [
        simple_response(200, BODY, close=True),
        b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
        b"HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    ],
)
def test_an_answer_that_closes_its_connection_says_so(answer: bytes) -> None:
    assert read(answer) == (BODY, False)


def test_an_http_1_0_answer_that_keeps_alive_says_so() -> None:
    answer = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"
    assert read(answer) == (b"{}", True)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (simple_response(503, b"draining"), "HTTP 503"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "not a body"),
        (b"HTTP/1.1 200 OK\r\n\r\n{}", "not a body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), "not a body"),
        # Without its colon a line is no Content-Length field, whatever it starts with.
        (b"HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\n{}", "not a body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}", "malformed Content-Length"),
        (b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\n{}", "malformed status line"),
        (b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\n{}", "malformed status line"),
        (simple_response(200, b"{}") + b"HTTP/1.1 200 OK\r\n", "more bytes than"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"x" * MAX_HEAD_BYTES, "response head too long"),
    ],
)
def test_anything_but_a_200_with_a_content_length_body_is_refused(
    answer: bytes, error: str
) -> None:
    with pytest.raises(StatsHttpError, match=error):
        read(answer)
