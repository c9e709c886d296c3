"""One HTTP GET of an engine's `/metrics`: plain-HTTP engines over the lean keep-alive client (http1.py), https
engines over the scraper's long-lived aiohttp session.

Each pool's `metrics` settings give the per-request timeout (float seconds), the auth (Bearer `APIkey`, else
Basic `metric_user` + password) and TLS verification (`verify`, `ca_bundle`; verification is on by default,
unlike the original). Both paths send the same request (Accept, `Accept-Encoding: gzip`, auth) and inflate a
gzip body. Every failure becomes a `ScrapeError` with a short text that never holds a credential:
the URL carries none, and headers are never quoted.
"""

from __future__ import annotations

import base64
import functools
import ssl
import zlib
from types import ModuleType
from urllib.parse import urlsplit

import aiohttp

from llmsched.collectors import http1
from llmsched.shared.config_model import MetricsConfig
from llmsched.shared.errors import ScrapeError

MAX_BODY = 16 * 1024 * 1024  # a /metrics body is tens of KiB; a runaway one must not eat the scraper's memory
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"  # the classic text format, not OpenMetrics
MAX_ERROR = 200
USER_AGENT = "llmsched-scraper"
# The lean client's failures as the texts aiohttp's path gives the same failures (docs/scraper.md); first match wins.
_PLAIN_ERRORS: tuple[tuple[type[http1.HttpError], str], ...] = (
    (http1.ConnectFailed, "cannot connect: "),
    (http1.IncompleteBody, "incomplete body: "),
    (http1.BodyTooLarge, ""),
    (http1.HttpError, "bad response: "),
)
try:  # zlib-ng inflates the same streams in about half of zlib's CPU time (docs/benchmarks.md)
    from zlib_ng import zlib_ng as _fast_zlib
except ImportError:  # pragma: no cover (a platform without its wheels: the standard zlib)
    _fast_zlib = None
INFLATE: ModuleType = _fast_zlib or zlib  # what inflates gzip and deflate bodies
PLANS_MAX = 65536  # plain-HTTP request plans kept (one per URL); cleared past this (members replaced over time)


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def auth_header(metrics: MetricsConfig) -> str | None:
    if metrics.api_key:
        return f"Bearer {metrics.api_key.reveal()}"
    if metrics.metric_user and metrics.metric_pwd:
        pair = f"{metrics.metric_user}:{metrics.metric_pwd.reveal()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


class Fetcher:
    """GETs metrics bodies; TLS contexts are built once per (verify, ca_bundle) and reused."""

    def __init__(self, session: aiohttp.ClientSession, plain: http1.Client | None = None) -> None:
        self.session = session
        self.plain = plain if plain is not None else http1.Client(MAX_BODY)
        # url -> (its metrics config, host, port, request bytes); checked by identity of the config, which a reload
        # replaces, so a changed path, key or password builds a new request.
        self._plans: dict[str, tuple[MetricsConfig, str, int, bytes]] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._options: dict[MetricsConfig, tuple[dict[str, str], ssl.SSLContext | bool, aiohttp.ClientTimeout]] = {}

    def options(self, metrics: MetricsConfig) -> tuple[dict[str, str], ssl.SSLContext | bool, aiohttp.ClientTimeout]:
        """(headers, TLS, timeout) of a pool's requests, built once per metrics config rather than per scrape."""
        found = self._options.get(metrics)
        if found is None:
            headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip", "User-Agent": USER_AGENT}  # docs/scraper.md
            auth = auth_header(metrics)
            if auth:
                headers["Authorization"] = auth
            if len(self._options) > 256:  # configs replaced by reloads
                self._options.clear()
            found = self._options[metrics] = (
                headers,
                self.ssl_for(metrics),
                aiohttp.ClientTimeout(total=metrics.timeout),
            )
        return found

    def ssl_for(self, metrics: MetricsConfig) -> ssl.SSLContext | bool:
        if metrics.schema != "https":
            return True  # aiohttp's default; unused for http
        if not metrics.verify:
            return False
        ctx = self._contexts.get(metrics.ca_bundle)
        if ctx is None:
            try:
                ctx = ssl.create_default_context(cafile=metrics.ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ScrapeError(short(f"cannot load ca_bundle {metrics.ca_bundle}: {exc}")) from None
            self._contexts[metrics.ca_bundle] = ctx
        return ctx

    async def fetch(self, url: str, metrics: MetricsConfig) -> str:
        """The body of `url` as text; raises ScrapeError on any failure (timeout, refused, non-200, too big)."""
        if metrics.schema == "http":
            return await self._fetch_plain(url, metrics)
        return await self._fetch_aiohttp(url, metrics)

    def close(self) -> None:
        """Close the plain-HTTP connections (the aiohttp session is its owner's to close)."""
        self.plain.close()

    def _plan(self, url: str, metrics: MetricsConfig) -> tuple[MetricsConfig, str, int, bytes]:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = auth_header(metrics)
        if any(c in path for c in " \r\n") or (auth and ("\r" in auth or "\n" in auth)):
            raise ScrapeError("the metrics path or credentials hold a space or line break")
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", f"User-Agent: {USER_AGENT}", f"Accept: {ACCEPT}",
                 "Accept-Encoding: gzip"] + ([f"Authorization: {auth}"] if auth else [])  # fmt: skip
        if len(self._plans) >= PLANS_MAX:
            self._plans.clear()
        plan = self._plans[url] = (
            metrics,
            parts.hostname or "",
            parts.port or 80,
            "\r\n".join(lines).encode() + b"\r\n\r\n",
        )
        return plan

    async def _fetch_plain(self, url: str, metrics: MetricsConfig) -> str:
        plan = self._plans.get(url)
        if plan is None or plan[0] is not metrics:
            plan = self._plan(url, metrics)
        try:
            resp = await self.plain.get(plan[1], plan[2], plan[3], metrics.timeout)
        except TimeoutError:
            raise ScrapeError(f"timeout after {metrics.timeout:g} s") from None
        except http1.HttpError as exc:
            prefix = next(text for kind, text in _PLAIN_ERRORS if isinstance(exc, kind))
            raise ScrapeError(short(prefix + str(exc))) from None
        if resp.status != 200:
            raise ScrapeError(_status_text(resp.status, resp.reason))
        body = _inflate(resp.body, resp.headers.get("content-encoding"))
        try:
            return str(body, _charset(resp.headers.get("content-type")), "replace")
        except LookupError:
            raise ScrapeError("unknown charset in Content-Type") from None

    async def _fetch_aiohttp(self, url: str, metrics: MetricsConfig) -> str:
        try:
            headers, tls, timeout = self.options(metrics)
            async with self.session.get(url, headers=headers, ssl=tls, allow_redirects=False, timeout=timeout) as resp:
                if resp.status != 200:
                    raise ScrapeError(_status_text(resp.status, resp.reason))
                if resp.content_length is not None and resp.content_length > MAX_BODY:
                    raise ScrapeError(f"body of {resp.content_length} bytes is larger than {MAX_BODY}")
                body = await _read_all(resp.content)
                return body.decode(resp.charset or "utf-8", errors="replace")
        except TimeoutError:
            raise ScrapeError(f"timeout after {metrics.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise ScrapeError(short(f"TLS certificate not trusted: {exc.certificate_error}")) from None
        except aiohttp.ClientSSLError as exc:
            raise ScrapeError(short(f"TLS error: {exc}")) from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else str(exc)
            raise ScrapeError(short(f"cannot connect: {reason}")) from None
        except aiohttp.ClientPayloadError as exc:
            raise ScrapeError(short(f"incomplete body: {exc}")) from None
        except aiohttp.ClientError as exc:
            raise ScrapeError(short(f"{type(exc).__name__}: {exc}")) from None
        except LookupError:  # unknown charset in Content-Type
            raise ScrapeError("unknown charset in Content-Type") from None


async def _read_all(content: aiohttp.StreamReader) -> bytes:
    """The whole body, to its end as HTTP framing defines it (Content-Length, the last chunk, or the close).

    A body the transport cut short raises aiohttp's ClientPayloadError here: that, not a missing final line feed,
    is what makes a body truncated (docs/scraper.md). `StreamReader.read(n)` would return the first chunk only."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > MAX_BODY:
            raise ScrapeError(f"body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _inflate(body: bytes | memoryview, encoding: str | None) -> bytes | memoryview:
    """`body` without its Content-Encoding (gzip, or deflate from a server that ignores Accept-Encoding)."""
    if not encoding or (name := encoding.strip().lower()) == "identity":
        return body
    if name not in ("gzip", "x-gzip", "deflate"):
        raise ScrapeError(short(f"unsupported Content-Encoding {encoding}"))
    inflater = INFLATE.decompressobj(15 if name == "deflate" else 31)  # deflate is zlib-wrapped (RFC 9110 8.4.1.2)
    try:
        out = inflater.decompress(body, MAX_BODY + 1)
    except INFLATE.error as exc:
        raise ScrapeError(short(f"bad {name} body: {exc}")) from None
    if len(out) > MAX_BODY:
        raise ScrapeError(f"body is larger than {MAX_BODY} bytes")
    if not inflater.eof:
        raise ScrapeError(f"incomplete body: the {name} stream ends early")
    return out


@functools.lru_cache(maxsize=64)  # an engine sends the same Content-Type every time
def _charset(content_type: str | None) -> str:
    """The charset parameter of a Content-Type (utf-8 when absent, as prometheus_client writes)."""
    if content_type:
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
    return "utf-8"


def _status_text(status: int, reason: str | None) -> str:
    text = f"HTTP {status}" + (f" {reason}" if reason else "")
    if status in (401, 403):
        text += " (check the pool's metrics.APIkey or metric_user/metric_pwd_env)"
    elif 300 <= status < 400:
        text += " (redirects are not followed)"
    return short(text)
