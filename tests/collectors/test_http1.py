"""The lean HTTP/1.1 client of plain-HTTP engines against raw servers on 127.0.0.1 that frame responses on purpose:
Content-Length, chunked, close-delimited, cut short, kept alive or not."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from llmsched.collectors import http1
from llmsched.collectors.scrape_http import Fetcher
from llmsched.shared.config_model import MetricsConfig
from llmsched.shared.errors import ScrapeError
from llmsched.shared.secrets import Secret

BODY = b'vllm:num_requests_running{model_name="m"} 7.0\n' * 2000  # ~92 KB: arrives in several reads
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"


def length_framed(body: bytes = BODY, extra: bytes = b"") -> bytes:
    return HEAD + b"Content-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def chunked(body: bytes = BODY, pieces: int = 7, end: bool = True) -> bytes:
    step = len(body) // pieces + 1
    out = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), step):
        part = body[i : i + step]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    return out + (b"0\r\nX-Trailer: yes\r\n\r\n" if end else b"")


# (request number on this connection, request head) -> bytes to send (a list: pieces sent apart), or None to close
# without answering
Answer = Callable[[int, bytes], Awaitable[bytes | list[bytes] | None]]


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(answer: Answer, close_after: bool = False, trickle: int = 0) -> AsyncIterator[Server]:
    """A server answering each request on a connection with `answer(n, head)`; `trickle` > 0 sends the response
    in pieces of that size with a pause between them; `close_after` closes once the answer is sent."""
    state = Server(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                state.requests.append(head)
                n += 1
                out = await answer(n, head)
                if out is None:
                    break
                pieces = out if isinstance(out, list) else [out]
                if trickle:
                    pieces = [p[i : i + trickle] for p in pieces for i in range(0, len(p), trickle)]
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    if len(pieces) > 1:
                        await asyncio.sleep(0.001)  # apart, so the client reads them apart
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


def always(response: bytes | list[bytes]) -> Answer:
    async def answer(n: int, head: bytes) -> bytes | list[bytes] | None:
        return response

    return answer


REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture()
async def client() -> AsyncIterator[http1.Client]:
    c = http1.Client(max_body=1 << 20)
    yield c
    c.close()


async def get(client: http1.Client, server: Server, timeout: float = 5.0) -> http1.Response:
    return await client.get("127.0.0.1", server.port, REQUEST, timeout)


@pytest.mark.parametrize("trickle", [0, 1000])
async def test_a_content_length_body_is_read_whole_and_the_connection_kept_for_the_next_get(client, trickle):
    async with raw_server(always(length_framed()), trickle=trickle) as server:
        for _ in range(3):
            resp = await get(client, server)
            assert (resp.status, bytes(resp.body)) == (200, BODY)
    assert server.connections == 1 and len(server.requests) == 3


@pytest.mark.parametrize("trickle", [0, 333])
async def test_a_chunked_body_is_read_to_its_last_chunk_and_trailers_and_the_connection_kept(client, trickle):
    async with raw_server(always(chunked()), trickle=trickle) as server:
        for _ in range(2):
            resp = await get(client, server)
            assert bytes(resp.body) == BODY
    assert server.connections == 1


async def test_chunked_trailers_arriving_apart_are_read_before_the_connection_is_reused(client):
    whole = chunked()
    last_chunk = whole.index(b"0\r\nX-Trailer")
    async with raw_server(always([whole[: last_chunk + 3], whole[last_chunk + 3 :]])) as server:
        for _ in range(2):
            assert bytes((await get(client, server)).body) == BODY
    assert server.connections == 1


async def test_a_response_head_split_across_reads_is_parsed(client):
    small = BODY[:200]
    async with raw_server(always(length_framed(small)), trickle=7) as server:
        assert bytes((await get(client, server)).body) == small


async def test_a_body_without_framing_ends_at_the_close_and_the_connection_is_not_reused(client):
    async with raw_server(always(HEAD + b"\r\n" + BODY), close_after=True) as server:
        for _ in range(2):
            assert bytes((await get(client, server)).body) == BODY
    assert server.connections == 2


async def test_connection_close_in_the_response_means_a_new_connection_for_the_next_get(client):
    async with raw_server(always(length_framed(extra=b"Connection: close\r\n"))) as server:
        for _ in range(2):
            assert bytes((await get(client, server)).body) == BODY
    assert server.connections == 2


async def test_a_content_length_body_cut_short_is_an_incomplete_body_naming_the_bytes(client):
    cut = length_framed()[: -len(BODY) + 100]
    async with raw_server(always(cut), close_after=True) as server:
        with pytest.raises(http1.IncompleteBody, match=f"after 100 of {len(BODY)} bytes"):
            await get(client, server)


async def test_a_chunked_body_that_never_ends_is_an_incomplete_body(client):
    async with raw_server(always(chunked(end=False)), close_after=True) as server:
        with pytest.raises(http1.IncompleteBody, match="last chunk"):
            await get(client, server)


async def test_bytes_past_the_content_length_are_dropped_with_the_connection(client):
    async with raw_server(always(length_framed() + b"junk")) as server:
        for _ in range(2):
            assert bytes((await get(client, server)).body) == BODY
    assert server.connections == 2


async def test_a_reused_connection_the_server_closed_unanswered_is_retried_once_on_a_new_one(client):
    async def first_only(n: int, head: bytes) -> bytes | list[bytes] | None:
        return length_framed() if n == 1 else None  # keep-alive promised, then closed at the next request

    async with raw_server(first_only) as server:
        for _ in range(3):
            assert bytes((await get(client, server)).body) == BODY
    assert server.connections == 3


async def test_a_new_connection_closed_unanswered_is_an_error_not_a_retry(client):
    async def never(n: int, head: bytes) -> bytes | list[bytes] | None:
        return None

    async with raw_server(never) as server:
        with pytest.raises(http1.HttpError, match="without answering"):
            await get(client, server)
    assert server.connections == 1


async def test_a_server_that_never_answers_times_out_and_its_connection_is_dropped(client):
    hung: list[bool] = []

    async def hang(n: int, head: bytes) -> bytes | list[bytes] | None:
        if not hung:  # the first request of all
            hung.append(True)
            await asyncio.sleep(3600)
        return length_framed()

    async with raw_server(hang) as server:
        with pytest.raises(TimeoutError):
            await get(client, server, timeout=0.2)
        assert client.connections == 0
        assert bytes((await get(client, server)).body) == BODY  # a new connection, answered
    assert server.connections == 2


async def test_a_refused_connection_is_a_connect_error_with_the_os_reason(client):
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(http1.ConnectFailed, match="Connection refused"):
        await client.get("127.0.0.1", port, REQUEST, 2.0)


@pytest.mark.parametrize("response", [length_framed(), chunked()], ids=["content-length", "chunked"])
async def test_a_body_larger_than_the_limit_is_refused(response):
    small = http1.Client(max_body=len(BODY) - 1)
    try:
        async with raw_server(always(response)) as server:
            with pytest.raises(http1.BodyTooLarge):
                await get(small, server)
    finally:
        small.close()


@pytest.mark.parametrize(
    "response,error",
    [
        (b"SPAM/1.0 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (HEAD + b"Content-Length: 12, 13\r\n\r\n", "invalid Content-Length"),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (HEAD + b"No colon here\r\n\r\n", "malformed header line"),
    ],
)
async def test_malformed_responses_are_bad_responses(client, response, error):
    async with raw_server(always(response), close_after=True) as server:
        with pytest.raises(http1.BadResponse, match=error):
            await get(client, server)


async def test_a_non_200_answer_is_returned_with_its_reason_and_the_connection_closed(client):
    async with raw_server(always(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n")) as server:
        for _ in range(2):
            resp = await get(client, server)
            assert (resp.status, resp.reason) == (404, "Not Found")
    assert server.connections == 2


# --- the fetcher over the lean client ------------------------------------------------------------------------
async def test_the_fetcher_sends_accept_gzip_and_the_auth_header_and_inflates_a_gzip_body():
    zipped = gzip.compress(BODY)
    response = HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(zipped) + zipped
    async with raw_server(always(response)) as server:
        fetcher = Fetcher(session=None)  # type: ignore[arg-type]  # plain HTTP never touches the aiohttp session
        try:
            metrics = MetricsConfig(api_key=Secret("s3cret"))
            text = await fetcher.fetch(f"http://127.0.0.1:{server.port}/metrics", metrics)
        finally:
            fetcher.close()
    assert text == BODY.decode()
    head = server.requests[0].decode()
    assert head.startswith("GET /metrics HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head and "Accept-Encoding: gzip\r\n" in head
    assert "Authorization: Bearer s3cret\r\n" in head


async def test_the_fetcher_reports_a_gzip_stream_cut_inside_a_complete_http_body_as_incomplete():
    zipped = gzip.compress(BODY)[:-20]
    response = HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(zipped) + zipped
    async with raw_server(always(response)) as server:
        fetcher = Fetcher(session=None)  # type: ignore[arg-type]
        try:
            with pytest.raises(ScrapeError, match="^incomplete body"):
                await fetcher.fetch(f"http://127.0.0.1:{server.port}/metrics", MetricsConfig())
        finally:
            fetcher.close()


async def test_the_fetcher_decodes_with_the_charset_the_content_type_names():
    body = 'vllm:num_requests_running{model_name="caf\xe9"} 1\n'.encode("latin-1")
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=ISO-8859-1\r\nContent-Length: %d\r\n\r\n" % len(
        body
    )
    async with raw_server(always(response + body)) as server:
        fetcher = Fetcher(session=None)  # type: ignore[arg-type]
        try:
            text = await fetcher.fetch(f"http://127.0.0.1:{server.port}/metrics", MetricsConfig())
        finally:
            fetcher.close()
    assert 'model_name="caf\xe9"' in text


@pytest.mark.parametrize("module", ["zlib", "zlib_ng"])
def test_gzip_and_deflate_bodies_inflate_alike_with_zlib_and_zlib_ng(module, monkeypatch):
    import zlib

    from llmsched.collectors import scrape_http

    inflate = zlib if module == "zlib" else pytest.importorskip("zlib_ng.zlib_ng")
    monkeypatch.setattr(scrape_http, "INFLATE", inflate)
    zipped = gzip.compress(BODY)
    assert bytes(scrape_http._inflate(memoryview(zipped), "gzip")) == BODY
    assert scrape_http._inflate(zlib.compress(BODY), "deflate") == BODY
    with pytest.raises(ScrapeError, match="^incomplete body: the gzip stream ends early"):
        scrape_http._inflate(zipped[:-20], "gzip")
    with pytest.raises(ScrapeError, match="^bad gzip body: "):
        scrape_http._inflate(b"not gzip at all", "gzip")


def test_the_scraper_inflates_with_zlib_ng_when_it_is_installed():
    from llmsched.collectors import scrape_http

    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    assert scrape_http.INFLATE is zlib_ng
