"""HTTP framing: what is forwarded, what is refused, and where bodies end."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferry.proxy.http import (
    MAX_HEAD_BYTES,
    BadRequestError,
    BadResponseError,
    ChunkedRequestBody,
    ChunkedScanner,
    oversized_head,
    parse_request_head,
    parse_response_head,
    reframed_head,
    with_connection_close,
)


def test_a_plain_request_head() -> None:
    head = parse_request_head(b"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12")
    assert (head.method, head.target, head.content_length) == (b"POST", b"/p?q=1", 12)
    assert head.keep_alive and not head.chunked and not head.expect_continue


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"GET / HTTP/1.1", True),
        (b"GET / HTTP/1.1\r\nConnection: close", False),
        (b"GET / HTTP/1.0", False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive", True),
    ],
)
def test_keep_alive_follows_version_and_connection(raw: bytes, keep_alive: bool) -> None:
    assert parse_request_head(raw).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /", 400),
        (b"GET  / HTTP/1.1", 400),
        (b"GET / HTTP/1.1\nHost: a", 400),
        (b"GET / HTTP/3", 505),
        (b"G(T / HTTP/1.1", 400),
        (b"GET / HTTP/1.1\r\nHost : a", 400),
        (b"GET / HTTP/1.1\r\nHost: a\x00", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 0x1", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked", 501),
        (b"GET / HTTP/1.1\r\nExpect: something", 417),
    ],
)
def test_ambiguous_or_malformed_heads_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(BadRequestError) as refused:
        parse_request_head(raw)
    assert refused.value.status == status


def test_repeating_the_same_length_is_not_a_conflict() -> None:
    assert parse_request_head(b"GET / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3")


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused_cleanly(raw: bytes) -> None:
    try:
        parse_request_head(raw)
    except BadRequestError as error:
        assert 400 <= error.status < 600


_CHUNKED_HEAD = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked"


def test_a_chunked_body_decodes_across_any_split_and_leaves_only_what_follows_it() -> None:
    wire = b"5\r\nhello\r\n6;ext=y\r\n world\r\n0\r\nTrailer: t\r\n\r\nNEXT"
    for split in range(len(wire)):
        body = ChunkedRequestBody(_CHUNKED_HEAD, limit=100)
        buf = bytearray(wire[:split])
        body.feed(buf)
        assert b"\r\n" not in buf, "only an unfinished line may wait in the buffer"
        buf += wire[split:]
        body.feed(buf)
        assert body.done and buf == b"NEXT"
        assert body.size == len(_CHUNKED_HEAD) + len(b"hello world")
        assert body.request() == b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world"


def test_a_chunked_body_over_the_limit_is_413() -> None:
    with pytest.raises(BadRequestError) as refused:
        ChunkedRequestBody(_CHUNKED_HEAD, limit=4).feed(bytearray(b"5\r\nhello\r\n"))
    assert refused.value.status == 413


@pytest.mark.parametrize(
    "wire",
    [
        b"1;" + b"e" * 5000 + b"\r\nx\r\n0\r\n\r\n",  # the whole line in one read
        b"1;" + b"e" * 5000,  # the line still arriving
        b"1\r\nx\r\n0\r\nX-Trailer: " + b"t" * 5000 + b"\r\n\r\n",
        b"1\r\nx\r\n0\r\nX-Trailer: " + b"t" * 5000,
    ],
)
def test_a_chunk_or_trailer_line_over_4_kib_is_400_however_it_arrives(wire: bytes) -> None:
    with pytest.raises(BadRequestError) as refused:
        ChunkedRequestBody(_CHUNKED_HEAD, limit=100).feed(bytearray(wire))
    assert refused.value.status == 400


def test_a_chunk_line_of_exactly_4_kib_is_taken() -> None:
    body = ChunkedRequestBody(_CHUNKED_HEAD, limit=100)
    line = b"1;" + b"e" * (4096 - 2)
    body.feed(bytearray(line + b"\r\nx\r\n0\r\n\r\n"))
    assert body.done


def test_reframing_replaces_chunking_with_a_length() -> None:
    assert reframed_head(_CHUNKED_HEAD, 3) == b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"x" * MAX_HEAD_BYTES + b" HTTP/1.1\r\nHost: x\r\n", 414),
        (b"GET /" + b"x" * MAX_HEAD_BYTES, 414),
        (b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * MAX_HEAD_BYTES, 431),
    ],
)
def test_a_head_too_large_is_414_for_its_request_line_and_431_for_its_fields(
    head: bytes, status: int
) -> None:
    assert oversized_head(head).status == status


@pytest.mark.parametrize(
    ("head", "method", "framing"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", b"GET", (1, 5, True)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", b"GET", (2, -1, True)),
        (b"HTTP/1.1 200 OK", b"GET", (3, -1, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", b"HEAD", (0, 0, True)),
        (b"HTTP/1.1 204 No Content", b"GET", (0, 0, True)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1", b"GET", (1, 1, False)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close", b"GET", (1, 1, False)),
    ],
)
def test_response_framing(head: bytes, method: bytes, framing: tuple[int, int, bool]) -> None:
    parsed = parse_response_head(head, method)
    assert (parsed.framing, parsed.length, parsed.keep_alive) == framing


@pytest.mark.parametrize("head", [b"HTTP/2 200", b"ICY 200 OK", b"HTTP/1.1 2x0 OK"])
def test_malformed_status_lines(head: bytes) -> None:
    with pytest.raises(BadResponseError):
        parse_response_head(head, b"GET")


def test_the_chunk_scanner_finds_the_end_across_any_split() -> None:
    wire = b"3\r\nabc\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for split in range(1, len(wire)):
        scanner = ChunkedScanner()
        assert scanner.feed(wire[:split], 0) == -1
        assert scanner.feed(wire[split:] + b"extra", 0) == len(wire) - split


@pytest.mark.parametrize(
    "wire",
    [
        b"3;" + b"e" * 5000 + b"\r\nabc\r\n0\r\n\r\n",  # the whole line in one read
        b"3\r\nabc\r\n0\r\nX-Trailer: " + b"t" * 5000 + b"\r\n\r\n",
    ],
)
def test_the_chunk_scanner_refuses_a_line_over_4_kib_that_arrives_whole(wire: bytes) -> None:
    with pytest.raises(BadResponseError):
        ChunkedScanner().feed(wire, 0)


def test_connection_close_replaces_any_connection_header() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    assert with_connection_close(head) == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
