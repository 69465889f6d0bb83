"""HTTP/1.1 framing: just enough parsing to forward messages whole and safely.

The proxy forwards a request's head unchanged and a response's bytes as they arrive, so parsing
only has to find where each message ends. It refuses anything two parsers could frame differently
(the root of request smuggling): bare LF line ends, Content-Length together with Transfer-Encoding,
conflicting lengths, whitespace before a colon, codings other than plain chunked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

MAX_HEAD_BYTES = 64 * 1024
_MAX_CHUNK_LINE = 4096
"""The longest chunk-size or trailer line, without its CRLF."""
# Where a chunked request body's decoder stands.
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _CHUNK_TRAILER = range(4)

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TARGET = rb"[\x21-\x7e\x80-\xff]+"
_VALUE_CHARS = rb"[\t\x20-\x7e\x80-\xff]"
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# A request head in one pass: the request line, then every field line well formed. Only a head
# this refuses goes through the line-by-line checks, to say what is wrong with it.
_REQUEST_LINE = re.compile(_TOKEN + rb" " + _TARGET + rb" HTTP/1\.[01]")
_FIELD_LINES = re.compile(rb"(?:\r\n" + _TOKEN + rb":" + _VALUE_CHARS + rb"*)*")
# In a head whose lines are well formed every CRLF starts a field, so these are whole fields.
_FRAMING_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|expect):(" + _VALUE_CHARS + rb"*)",
    re.IGNORECASE,
)
_RESPONSE_FRAMING_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection):((?:[^\r]|\r(?!\n))*)", re.IGNORECASE
)
_VERSIONS = {b"HTTP/1.1": True, b"HTTP/1.0": False}


class BadRequestError(Exception):
    """A request the proxy will not forward; `status` is what the client gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class BadResponseError(Exception):
    """An upstream response the proxy cannot frame."""


@dataclass(slots=True)
class RequestHead:
    method: bytes
    target: bytes
    content_length: int
    chunked: bool
    keep_alive: bool
    expect_continue: bool


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a request head, given without its closing blank line."""
    if head.count(b"\n") != head.count(b"\r\n"):
        raise BadRequestError(400, "bare LF in request head")
    line_end = head.find(b"\r\n")
    if line_end < 0:
        line_end = len(head)
    if not _REQUEST_LINE.fullmatch(head, 0, line_end):
        _refuse_request_line(head[:line_end])
    method, target, version = head[:line_end].split(b" ")
    if not _FIELD_LINES.fullmatch(head, line_end):
        raise BadRequestError(400, "malformed header field")
    length, coding, keep_alive, expect = _framing(head, line_end, _VERSIONS[version])
    if coding is not None:
        if length is not None:
            raise BadRequestError(400, "both Content-Length and Transfer-Encoding")
        if coding != b"chunked":
            raise BadRequestError(501, "unsupported Transfer-Encoding")
        return RequestHead(method, target, -1, True, keep_alive, expect)
    content_length = 0
    if length is not None:
        if not length.isdigit() or len(length) > 15:  # noqa: PLR2004 - far past any limit
            raise BadRequestError(400, "malformed Content-Length")
        content_length = int(length)
    return RequestHead(method, target, content_length, False, keep_alive, expect)


def _refuse_request_line(line: bytes) -> NoReturn:
    parts = line.split(b" ")
    if len(parts) == 3 and parts[2] not in _VERSIONS:  # noqa: PLR2004 - method, target, version
        raise BadRequestError(505 if parts[2].startswith(b"HTTP/") else 400, "unsupported version")
    raise BadRequestError(400, "malformed request line")


def _framing(
    head: bytes, start: int, keep_alive: bool
) -> tuple[bytes | None, bytes | None, bool, bool]:
    """Content-Length, Transfer-Encoding, keep-alive and Expect, from well-formed fields."""
    length: bytes | None = None
    coding: bytes | None = None
    expect = False
    for field in _FRAMING_FIELDS.finditer(head, start):
        key, value = field[1].lower(), field[2]
        if key == b"content-length":
            value = value.strip()
            if length is not None and value != length:
                raise BadRequestError(400, "conflicting Content-Length")
            length = value
        elif key == b"transfer-encoding":
            if coding is not None:
                raise BadRequestError(400, "repeated Transfer-Encoding")
            coding = value.strip().lower()
        elif key == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        elif value.strip().lower() != b"100-continue":
            raise BadRequestError(417, "unsupported Expect")
        else:
            expect = True
    return length, coding, keep_alive, expect


class ChunkedRequestBody:
    """Decodes a chunked request body as it arrives; the proxy forwards it with a Content-Length.

    Each `feed` takes what it decoded out of the connection's buffer, so the encoded and the
    decoded body are never both held: a request costs its own size once.
    """

    __slots__ = ("_head", "_left", "_limit", "_state", "body", "done")

    def __init__(self, head: bytes, limit: int) -> None:
        self._head = head
        self._limit = limit
        self._state = _CHUNK_SIZE
        self._left = 0  # bytes of the current chunk still to come
        self.body = bytearray()
        self.done = False

    @property
    def size(self) -> int:
        """Bytes held: the head and the body decoded so far."""
        return len(self._head) + len(self.body)

    def feed(self, buf: bytearray) -> None:
        """Decode what it can from the start of `buf`, and delete that from `buf`."""
        pos, end = 0, len(buf)
        while not self.done:
            state = self._state
            if state == _CHUNK_DATA:
                taken = min(self._left, end - pos)
                with memoryview(buf) as view:
                    self.body += view[pos : pos + taken]
                pos += taken
                self._left -= taken
                if self._left:
                    break
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if end - pos < 2:  # noqa: PLR2004 - the CRLF after a chunk's data
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise BadRequestError(400, "malformed chunk")
                pos += 2
                self._state = _CHUNK_SIZE
            else:
                # A chunk-size line or a trailer line: its CRLF must come within the limit,
                # whether the line arrives in pieces or in one read.
                eol = buf.find(b"\r\n", pos, pos + _MAX_CHUNK_LINE + 2)
                if eol < 0:
                    if end - pos >= _MAX_CHUNK_LINE + 2:
                        raise BadRequestError(400, "chunk line too long")
                    break
                line = bytes(buf[pos:eol])
                pos = eol + 2
                if state == _CHUNK_TRAILER:
                    self.done = not line
                else:
                    self._chunk_size(line)
        del buf[:pos]

    def _chunk_size(self, line: bytes) -> None:
        size_field = line.split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_field):
            raise BadRequestError(400, "malformed chunk size")
        size = int(size_field, 16)
        if size == 0:
            self._state = _CHUNK_TRAILER
            return
        if len(self.body) + size > self._limit:
            raise BadRequestError(413, "body too large")
        self._left = size
        self._state = _CHUNK_DATA

    def request(self) -> bytearray:
        """The whole request, its chunking replaced by a Content-Length. The head goes in front
        of the body in place: the body is not copied into a second buffer."""
        body = self.body
        self.body = bytearray()
        body[:0] = reframed_head(self._head, len(body))
        return body


def reframed_head(head: bytes, length: int) -> bytes:
    """A chunked request's head (given without its blank line) re-framed with a length."""
    lines = [
        line
        for line in head.split(b"\r\n")
        if line.partition(b":")[0].lower() != b"transfer-encoding"
    ]
    lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def oversized_head(head: bytes | bytearray) -> BadRequestError:
    """Why a request head over MAX_HEAD_BYTES is refused: 414 when its request line alone does
    not end within the limit (the target is what is too long), else 431."""
    if head.find(b"\r\n", 0, MAX_HEAD_BYTES) < 0:
        return BadRequestError(414, "request line too long")
    return BadRequestError(431, "request head too large")


# How an upstream response's body ends.
BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE = range(4)


@dataclass(slots=True)
class ResponseHead:
    status: int
    framing: int
    length: int
    keep_alive: bool


def parse_response_head(head: bytes, request_method: bytes) -> ResponseHead:
    """Parse a response head, given without its closing blank line."""
    status_line = head.partition(b"\r\n")[0]
    version = status_line[:9]
    if version not in (b"HTTP/1.1 ", b"HTTP/1.0 ") or not status_line[9:12].isdigit():
        raise BadResponseError(f"malformed status line {status_line[:40]!r}")
    status = int(status_line[9:12])
    keep_alive = version == b"HTTP/1.1 "
    length = -1
    chunked = False
    for field in _RESPONSE_FRAMING_FIELDS.finditer(head, len(status_line)):
        key, value = field[1].lower(), field[2]
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise BadResponseError("malformed Content-Length") from None
        elif key == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
        else:
            tokens = value.lower()
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
    if request_method == b"HEAD" or status in (204, 304) or status < 200:  # noqa: PLR2004
        return ResponseHead(status, BODY_NONE, 0, keep_alive)
    if chunked:
        return ResponseHead(status, BODY_CHUNKED, -1, keep_alive)
    if length >= 0:
        return ResponseHead(status, BODY_LENGTH, length, keep_alive)
    return ResponseHead(status, BODY_CLOSE, -1, False)


class ChunkedScanner:
    """Finds where a chunked response body ends without decoding it: the proxy relays it as is."""

    __slots__ = ("_line", "_pending", "_trailer")

    def __init__(self) -> None:
        self._pending = 0
        self._line = b""
        self._trailer = False

    def feed(self, data: bytes, pos: int) -> int:
        """Scan `data` from `pos`: the index just past the body's end, or -1 if it goes on."""
        size = len(data)
        while True:
            if self._pending:
                taken = min(self._pending, size - pos)
                pos += taken
                self._pending -= taken
                if self._pending:
                    return -1
            eol = data.find(b"\n", pos)
            if eol < 0:
                self._line += data[pos:]
                if len(self._line) > _MAX_CHUNK_LINE + 1:  # + 1: the CR of its CRLF
                    raise BadResponseError("chunk line too long")
                return -1
            line = self._line + data[pos:eol]
            self._line = b""
            # Checked whole as well: a line that came in one read never waited in `_line`.
            if len(line) > _MAX_CHUNK_LINE + 1:
                raise BadResponseError("chunk line too long")
            pos = eol + 1
            if self._trailer:
                if not line.strip():
                    return pos
                continue
            try:
                chunk = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise BadResponseError("malformed chunk size") from None
            if chunk == 0:
                self._trailer = True
            else:
                self._pending = chunk + 2


def with_connection_close(head: bytes) -> bytes:
    """A response head (with its blank line) that tells the client the connection closes."""
    lines = [
        line
        for line in head[:-4].split(b"\r\n")
        if line.partition(b":")[0].strip().lower() != b"connection"
    ]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


_REASONS = {
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    417: b"Expectation Failed",
    431: b"Request Header Fields Too Large",
    499: b"Client Closed Request",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/json",
    close: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A complete response the proxy answers itself; `extra` holds whole header lines."""
    reason = _REASONS.get(status, b"OK" if status == 200 else b"Error")  # noqa: PLR2004
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        status,
        reason,
        content_type,
        len(body),
        extra,
        b"Connection: close\r\n" if close else b"",
        body,
    )


def error_body(reason: str) -> bytes:
    return b'{"error":"%s"}\n' % reason.replace('"', "'").encode()
