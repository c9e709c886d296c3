"""A lean HTTP/1.1 GET client for plain-HTTP engines: an asyncio Protocol per connection, kept alive per host.

The scraper spends most of its CPU per scrape in the HTTP client once parsing is cheap (docs/benchmarks.md), and a
/metrics GET needs little of a general client: one method, no redirects, no cookies, no proxies. This client does
what such a GET needs and nothing else; https engines stay on aiohttp (scrape_http.py).

* Framing decides where a body ends (RFC 9112 section 6.3): `Transfer-Encoding: chunked` up to its last chunk, else
  `Content-Length`, else the close of the connection. A connection that closes before that end is an
  `IncompleteBody`, never a short body taken as whole.
* Keep-alive: a connection whose response was read to its end, with no `Connection: close`, goes back to its
  host's idle list; one the server closed is dropped the moment it closes. A request on a reused connection that
  the server closed before answering (the idle-close race every keep-alive client has) is sent once more on a new
  connection; a GET is safe to repeat.
* One deadline per request, covering connect, send and the whole body.
* The body is returned as sent (`Content-Encoding` is the caller's business), at most `max_body` bytes, as a
  memoryview of the received data when it came in one piece (no copy of a 56 KB body per scrape).
"""

from __future__ import annotations

import asyncio
import os
import time

MAX_HEAD = 64 * 1024  # a response head larger than this is not a /metrics server's
IDLE_PER_HOST = 2  # one scrape per host per cycle: one connection, a spare for an overlapping cycle
IDLE_TIMEOUT_S = 30.0  # idle connections older than this are closed (members that left the pool)
SWEEP_EVERY_S = 10.0


class HttpError(Exception):
    """A failed GET; the text names what went wrong, never a header value."""


class ConnectFailed(HttpError):
    pass


class IncompleteBody(HttpError):
    pass


class BadResponse(HttpError):
    pass


class BodyTooLarge(HttpError):
    pass


class _NoAnswer(HttpError):
    """The server closed the connection before a byte of the response: a reused connection may retry."""


class Response:
    __slots__ = ("status", "reason", "headers", "body")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes | memoryview) -> None:
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


_HEAD, _LENGTH, _CHUNKED, _CLOSE = range(4)
_CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(3)


class _Connection(asyncio.Protocol):
    """One TCP connection; at most one request in flight (no pipelining)."""

    def __init__(self, client: Client, key: tuple[str, int]) -> None:
        self.client, self.key = client, key
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.lost = False
        self.idle_since = 0.0
        self._begin(None)

    def _begin(self, waiter: asyncio.Future[Response] | None) -> None:
        self.waiter = waiter
        self.mode = _HEAD
        self.buf = bytearray()
        self.parts: list[bytes | memoryview] = []
        self.size = 0  # body bytes received (chunked: of data)
        self.need = 0  # Content-Length, or bytes left of the current chunk
        self.chunk_state = _CHUNK_SIZE
        self.answered = False
        self.keep_alive = False
        self.status, self.reason = 0, ""
        self.headers: dict[str, str] = {}

    # --- asyncio.Protocol --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.client._forget(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.mode == _CLOSE and exc is None:
            self._finish(b"".join(self.parts))
        elif not self.answered:
            self._fail(_NoAnswer("the server closed the connection without answering"))
        elif self.mode == _HEAD:
            self._fail(IncompleteBody("connection closed inside the response head"))
        elif self.mode == _LENGTH:
            self._fail(IncompleteBody(f"connection closed after {self.size} of {self.need} bytes (Content-Length)"))
        elif self.mode == _CHUNKED:
            self._fail(IncompleteBody("connection closed before the last chunk (chunked transfer encoding)"))
        else:
            self._fail(IncompleteBody(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.transport.close()  # type: ignore[union-attr]  # bytes nobody asked for (or after a timeout)
            return
        self.answered = True
        try:
            mode = self.mode
            if mode == _LENGTH:
                self.parts.append(data)
                self.size += len(data)
                if self.size >= self.need:
                    self._length_done()
            elif mode == _HEAD:
                self._head(data)
            elif mode == _CHUNKED:
                self.buf += data
                self._chunks()
            else:
                self.parts.append(data)
                self.size += len(data)
                if self.size > self.client.max_body:
                    raise BodyTooLarge(f"body is larger than {self.client.max_body} bytes")
        except HttpError as exc:
            self._fail(exc)

    # --- parsing -----------------------------------------------------------------------------------------
    def _head(self, data: bytes) -> None:
        if self.buf:  # the head came in pieces (rare: it is one small segment)
            self.buf += data
            data = bytes(self.buf)
            self.buf = bytearray()
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD:
                raise BadResponse(f"response head longer than {MAX_HEAD} bytes")
            self.buf = bytearray(data)
            return
        lines = data[:end].decode("latin-1").split("\r\n")
        rest = memoryview(data)[end + 4 :]  # the body's first bytes, not copied (often all of it)
        version, _, status_reason = lines[0].partition(" ")
        status_text, _, self.reason = status_reason.partition(" ")
        if not version.startswith("HTTP/1.") or not status_text.isdigit() or len(status_text) != 3:
            raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        self.status = int(status_text)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise BadResponse(f"malformed header line: {line[:60]!r}")
            name = name.lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        if self.status < 200 or self.status in (204, 304):
            # No body (1xx would be followed by the real answer; a GET never asks for one): not reusable either.
            self.keep_alive = False
            self._finish(b"")
        elif self.status != 200:
            self.keep_alive = False  # its body is of no use: close rather than read it
            self._finish(b"")
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self.mode = _CHUNKED
            self.buf += rest
            self._chunks()
        elif (length := headers.get("content-length")) is not None:
            # Repeated fields must agree (RFC 9110 8.6); the usual single value skips the set.
            values = {v.strip() for v in length.split(",")} if "," in length else {length}
            if len(values) != 1 or not (value := values.pop()).isdigit():
                raise BadResponse(f"invalid Content-Length {length[:40]!r}")
            self.need = int(value)
            if self.need > self.client.max_body:
                raise BodyTooLarge(f"body of {self.need} bytes is larger than {self.client.max_body}")
            self.mode = _LENGTH
            self.parts.append(rest)
            self.size = len(rest)
            if self.size >= self.need:
                self._length_done()
        else:
            self.mode = _CLOSE  # the body ends when the server closes the connection
            self.keep_alive = False
            self.parts.append(rest)
            self.size = len(rest)

    def _length_done(self) -> None:
        body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        if len(body) > self.need:  # bytes past the body: the connection's framing is off, do not reuse it
            self.keep_alive = False
            body = body[: self.need]
        self._finish(body)

    def _chunks(self) -> None:
        buf, pos = self.buf, 0
        while True:
            if self.chunk_state == _CHUNK_SIZE:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    if len(buf) - pos > 1024:
                        raise BadResponse("chunk size line too long")
                    break
                size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
                try:
                    self.need = int(size_text, 16)
                except ValueError:
                    raise BadResponse(f"invalid chunk size {size_text[:20]!r}") from None
                pos = eol + 2
                self.chunk_state = _CHUNK_DATA if self.need else _TRAILER
            elif self.chunk_state == _CHUNK_DATA:
                if len(buf) - pos < self.need + 2:
                    break
                end = pos + self.need
                if buf[end : end + 2] != b"\r\n":
                    raise BadResponse("chunk not followed by CRLF")
                self.parts.append(bytes(buf[pos:end]))
                self.size += self.need
                if self.size > self.client.max_body:
                    raise BodyTooLarge(f"body is larger than {self.client.max_body} bytes")
                pos = end + 2
                self.chunk_state = _CHUNK_SIZE
            else:  # trailer fields, up to an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                if eol == pos:
                    if eol + 2 < len(buf):
                        self.keep_alive = False  # bytes past the message
                    self._finish(b"".join(self.parts))
                    return
                pos = eol + 2
        del buf[:pos]

    # --- completion --------------------------------------------------------------------------------------
    def _finish(self, body: bytes | memoryview) -> None:
        waiter, response = self.waiter, Response(self.status, self.reason, self.headers, body)
        keep = self.keep_alive and not self.lost
        self._begin(None)
        if keep:
            self.client._release(self)
        elif not self.lost:
            self.transport.close()  # type: ignore[union-attr]
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: HttpError) -> None:
        waiter = self.waiter
        self._begin(None)
        if not self.lost:
            self.transport.abort()  # type: ignore[union-attr]
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def abort(self) -> None:
        self.waiter = None
        self.client._forget(self)  # now, not when the loop reports the close
        if not self.lost and self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Client:
    """Keep-alive GETs to many hosts over plain HTTP/1.1; one per event loop."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._swept = time.monotonic()
        self.closed = False

    async def get(self, host: str, port: int, request: bytes, timeout: float) -> Response:
        """Send `request` (a whole GET message) to host:port and read the response; raises HttpError or
        TimeoutError (after `timeout` seconds in all)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = (host, port)
        if time.monotonic() - self._swept > SWEEP_EVERY_S:
            self._sweep()
        for attempt in range(2):
            conn = self._take(key) if attempt == 0 else None  # the retry always on a new connection
            reused = conn is not None
            if conn is None:
                conn = await self._connect(loop, key, deadline)
            waiter: asyncio.Future[Response] = loop.create_future()
            conn._begin(waiter)
            conn.transport.write(request)  # type: ignore[union-attr]
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                return await waiter
            except _NoAnswer:
                if not reused:
                    raise
            except BaseException:  # timeout, cancellation: the response may still arrive; do not reuse
                conn.abort()
                raise
            finally:
                timer.cancel()
        raise _NoAnswer("the server closed the connection without answering")  # pragma: no cover (loop returns)

    async def _connect(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int], deadline: float) -> _Connection:
        if self.closed:
            raise ConnectFailed("client closed")
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(lambda: _Connection(self, key), key[0], key[1])
        except OSError as exc:  # asyncio's text is "Connect call failed (address)": name the reason instead
            reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc) or type(exc).__name__)
            raise ConnectFailed(reason) from None
        self._open.add(conn)
        return conn

    def _take(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.lost:
                return conn
        return None

    def _release(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= IDLE_PER_HOST or self.closed:
            conn.transport.close()  # type: ignore[union-attr]
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle is not None:
            if conn in idle:
                idle.remove(conn)
            if not idle:
                del self._idle[conn.key]

    def _sweep(self) -> None:
        """Close connections idle for longer than IDLE_TIMEOUT_S (their members left, or scrape less often)."""
        self._swept = now = time.monotonic()
        for idle in list(self._idle.values()):
            for conn in [c for c in idle if now - c.idle_since > IDLE_TIMEOUT_S]:
                idle.remove(conn)
                conn.transport.close()  # type: ignore[union-attr]

    def close(self) -> None:
        """Close every connection (requests in flight fail)."""
        self.closed = True
        for conn in list(self._open):
            if conn.waiter is not None and not conn.waiter.done():
                conn._fail(ConnectFailed("client closed"))
            else:
                conn.abort()
        self._open.clear()
        self._idle.clear()

    @property
    def connections(self) -> int:
        return len(self._open)
