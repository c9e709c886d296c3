"""An iControl REST client for the poller: token or Basic auth, verified TLS, pool members as `Member`s.

Token life cycle (docs/poller.md): log in with `f5.login_provider`, PATCH the token's timeout to 36000 s,
reuse it until a margin before its local expiry, then log in again (deleting the old token). A 401 on a call
means the token was revoked or expired on the box: log in again and retry that call once. `close()` deletes the
token, so restarts do not pile up 10-hour tokens (BIG-IP allows 100 per user).

The token is a credential (its name *is* its value), so it is never logged, put in an exception or written
anywhere; logs show at most `fingerprint(token)` ("Q7XH…/26"). The password leaves this process only in the
login body or the Basic header.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from loguru import logger

from llmsched.collectors.f5_errors import F5AuthError, F5ProtocolError, F5TLSError, F5Unreachable, classify
from llmsched.collectors.f5_members import ParsedMembers, members_path, parse_members, pool_full_path
from llmsched.shared import telemetry
from llmsched.shared.config_model import F5Config
from llmsched.shared.errors import F5Error

LOGIN_PATH = "/mgmt/shared/authn/login"
TOKENS_PATH = "/mgmt/shared/authz/tokens/"
TOKEN_TIMEOUT = "36000"  # the maximum BIG-IP allows; sent as the string the F5 lab uses
DEFAULT_TOKEN_LIFE = 1200.0  # what BIG-IP gives a fresh token when the login answer does not say
CLOSE_TIMEOUT = 2.0  # s for the logout DELETE: shutdown must stay quick even if BIG-IP is slow


def fingerprint(token: str | None) -> str:
    """Enough of a token to tell two apart in a log, not enough to use it."""
    return "none" if not token else f"{token[:4]}…/{len(token)}"


def relogin_margin(lifetime: float) -> float:
    """Renew this long before local expiry: a minute for real tokens, a tenth of the life for short ones."""
    return min(60.0, lifetime / 10.0)


def ssl_context(cfg: F5Config) -> ssl.SSLContext | bool:
    """Verified TLS by default; `ca_bundle` trusts a private CA; `verify: false` turns checking off."""
    if not cfg.verify:
        return False
    return ssl.create_default_context(cafile=cfg.ca_bundle) if cfg.ca_bundle else ssl.create_default_context()


def base_url(cfg: F5Config) -> str:
    host = f"[{cfg.host}]" if ":" in cfg.host and not cfg.host.startswith("[") else cfg.host
    return f"https://{host}:{cfg.port}"


class F5Client:
    """One BIG-IP; one long-lived `aiohttp.ClientSession`, opened on first use, closed by `close()`.

    `clock` is the monotonic clock used for the local token expiry (tests pass one they can advance).
    """

    def __init__(self, cfg: F5Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.base = base_url(cfg)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._margin = 0.0
        self._auth_failure: F5AuthError | None = None  # credentials refused: no more tries until authenticate()
        self._basic_checked = False
        self.login_attempts = 0  # for tests and status: a wrong password must not cost one per pool
        self.logins = 0
        self.relogins_after_401 = 0
        self.closed = False
        if not cfg.verify:
            logger.warning(
                "f5.verify is false: the BIG-IP certificate at {} is NOT checked (anyone on the path "
                "can read the credentials); set f5.ca_bundle instead",
                self.base,
            )

    # --- public -------------------------------------------------------------------------------------------
    async def authenticate(self) -> None:
        """Make sure the credentials work: the one login attempt of a poll cycle.

        Calls made after a refusal fail at once with the same `F5AuthError` until the next `authenticate()`,
        so a wrong password costs one failed login per cycle, not one per pool (BIG-IP may lock the account).
        """
        self._auth_failure = None
        if self.cfg.auth == "basic":
            if not self._basic_checked:
                await self._call("GET", "/mgmt/tm/sys/version", "BIG-IP Basic-auth check")
                self._basic_checked = True
            return
        await self._valid_token()

    async def pool_members(self, name: str, partition: str = "Common") -> ParsedMembers:
        """The members of `/partition/name` (a sub-folder pool is "app.app/pool"), or an `F5Error`."""
        what = f"pool {pool_full_path(name, partition)}"
        body = await self._call("GET", members_path(name, partition), what)
        if not isinstance(body, dict):
            raise F5ProtocolError(what, 200, "answer is not a JSON object")
        return parse_members(body)

    async def close(self) -> None:
        """Delete the token on BIG-IP (best effort, quickly) and close the HTTP session."""
        if self.closed:
            return
        self.closed = True
        token, self._token = self._token, None
        try:
            if token is not None:
                await self._logout(token, timeout=CLOSE_TIMEOUT)
        finally:
            if self._session is not None:
                await self._session.close()

    # --- transport ----------------------------------------------------------------------------------------
    def _http(self, what: str) -> aiohttp.ClientSession:
        if self._session is None:
            try:
                ctx = ssl_context(self.cfg)
            except (OSError, ssl.SSLError) as exc:  # the file may have gone since the config was checked
                raise F5TLSError(what, f"f5.ca_bundle {self.cfg.ca_bundle} cannot be used: {exc}") from None
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=16),
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout),
                headers={"Accept": "application/json"},
            )
        return self._session

    def _scrub(self, text: str) -> str:
        """Remove anything secret from text that came from elsewhere (an aiohttp error, a BIG-IP message)."""
        for secret in (self._token, self.cfg.password.reveal() if self.cfg.password else None):
            if secret:
                text = text.replace(secret, "********")
        return text

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> tuple[int, Any, str]:
        """(status, JSON body or None, reason); transport failures become `F5Unreachable`/`F5TLSError`."""
        if self.closed and method != "DELETE":
            raise F5Unreachable(what, "client is closed")
        kwargs: dict[str, Any] = {"headers": headers}
        if json is not None:
            kwargs["json"] = json  # aiohttp sets Content-Type: application/json
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._http(what).request(method, self.base + path, **kwargs) as resp:
                text = await resp.text()
                try:
                    body = await resp.json(content_type=None) if text else None
                except ValueError:
                    body = None
                return resp.status, body, resp.reason or ""
        except aiohttp.ClientConnectorCertificateError as exc:
            raise F5TLSError(
                what,
                f"TLS certificate of {self.cfg.host}:{self.cfg.port} is not trusted "
                f"({self._scrub(str(exc.certificate_error))}); set f5.ca_bundle to the CA that "
                "signed it",
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise F5TLSError(
                what, f"TLS handshake with {self.cfg.host}:{self.cfg.port} failed: {self._scrub(str(exc))}"
            ) from None
        except TimeoutError:
            raise F5Unreachable(
                what, f"no answer from {self.cfg.host}:{self.cfg.port} within {timeout or self.cfg.timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            # str() of aiohttp connection errors names host:port only; _scrub guards against anything else.
            raise F5Unreachable(what, f"{type(exc).__name__}: {self._scrub(str(exc))}") from None

    async def _call(self, method: str, path: str, what: str) -> Any:
        """One authenticated call; with token auth, a 401 triggers one fresh login and one retry."""
        if self._auth_failure is not None:
            raise self._auth_failure
        if self.cfg.auth == "basic":
            status, body, reason = await self._request(method, path, what, headers=self._basic())
            if status == 401:
                self._basic_checked = False
                self._auth_failure = F5AuthError(
                    f"BIG-IP Basic auth of user {self.cfg.username!r}",
                    status,
                    classify(what, status, body, reason, self._scrub).message,
                )
                raise self._auth_failure
            return self._checked(what, status, body, reason)
        token = await self._valid_token()
        status, body, reason = await self._request(method, path, what, headers={"X-F5-Auth-Token": token})
        if status == 401:
            logger.info(
                "BIG-IP refused token {} for {} (expired or revoked): logging in again", fingerprint(token), what
            )
            self.relogins_after_401 += 1
            token = await self._valid_token(refused=token)
            status, body, reason = await self._request(method, path, what, headers={"X-F5-Auth-Token": token})
        return self._checked(what, status, body, reason)

    def _checked(self, what: str, status: int, body: Any, reason: str) -> Any:
        # Some BIG-IP answers carry the real status only in the body's `code` (f5-ansible checks it too).
        code = body.get("code") if isinstance(body, dict) else None
        if status < 300 and isinstance(code, int) and code >= 400 and "message" in body:
            status = code
        if status >= 300:
            raise classify(what, status, body, reason, self._scrub)
        return body

    def _basic(self) -> dict[str, str]:
        password = self.cfg.password.reveal() if self.cfg.password else ""
        pair = base64.b64encode(f"{self.cfg.username}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}

    # --- token life cycle ---------------------------------------------------------------------------------
    async def _valid_token(self, refused: str | None = None) -> str:
        """The current token, or a new one if it is missing, near expiry, or is the one BIG-IP just refused."""
        async with self._lock:
            if self._auth_failure is not None:
                raise self._auth_failure
            now = self._clock()
            # Another call may already have replaced the refused token while this one waited for the lock.
            if self._token is not None and self._token != refused and now < self._expires_at - self._margin:
                return self._token
            old = self._token if self._token != refused else None
            self._token = None
            if old is not None:
                logger.info("BIG-IP token {} is near its expiry: logging in again", fingerprint(old))
                await self._logout(old, timeout=CLOSE_TIMEOUT)
            try:
                token = await self._login()
            except F5Error as exc:
                telemetry.login(ok=False)
                if isinstance(exc, F5AuthError):
                    self._auth_failure = exc
                raise
            telemetry.login(ok=True)
            return token

    async def _login(self) -> str:
        cfg = self.cfg
        what = f"BIG-IP login of user {cfg.username!r} (provider {cfg.login_provider!r})"
        password = cfg.password.reveal() if cfg.password else ""
        started = self._clock()
        self.login_attempts += 1
        status, body, reason = await self._request(
            "POST",
            LOGIN_PATH,
            what,
            json={"username": cfg.username, "password": password, "loginProviderName": cfg.login_provider},
        )
        if status >= 300:
            error = classify(what, status, body, reason, self._scrub)
            if status == 400:  # e.g. the 100-tokens-per-user limit: the credentials cannot be used either
                raise F5AuthError(what, status, error.message, error.api_error)
            raise error
        item = body.get("token") if isinstance(body, dict) else None
        token = (item.get("token") or item.get("name")) if isinstance(item, dict) else None
        if not isinstance(token, str) or not token:
            raise F5ProtocolError(what, status, "login answer has no token.token")
        lifetime = _seconds(item.get("timeout"), DEFAULT_TOKEN_LIFE)
        lifetime = await self._extend(token, lifetime)
        # BIG-IP anchors expiry to the login time (a PATCH sets an absolute lifetime), so count from there.
        self._token, self._expires_at, self._margin = token, started + lifetime, relogin_margin(lifetime)
        self.logins += 1
        logger.info(
            "logged in to BIG-IP {} as {!r}: token {} valid for {:g} s",
            self.base,
            cfg.username,
            fingerprint(token),
            lifetime,
        )
        return token

    async def _extend(self, token: str, lifetime: float) -> float:
        """PATCH the token to the longest lifetime; on failure keep the login's (a warning, not an error)."""
        what = "extending the BIG-IP token timeout"
        try:
            status, body, reason = await self._request(
                "PATCH", TOKENS_PATH + token, what, headers={"X-F5-Auth-Token": token}, json={"timeout": TOKEN_TIMEOUT}
            )
        except F5Error as exc:
            logger.warning("{}; keeping {:g} s", exc, lifetime)
            return lifetime
        if status >= 300:
            message = classify(what, status, body, reason, self._scrub).message
            logger.warning("{} failed: HTTP {} {}; the token lives {:g} s", what, status, message, lifetime)
            return lifetime
        return _seconds(body.get("timeout") if isinstance(body, dict) else None, lifetime)

    async def _logout(self, token: str, timeout: float) -> None:
        try:
            status, _, _ = await self._request(
                "DELETE", TOKENS_PATH + token, "BIG-IP logout", headers={"X-F5-Auth-Token": token}, timeout=timeout
            )
        except F5Error as exc:
            logger.warning("could not delete BIG-IP token {}: {}", fingerprint(token), exc)
            return
        if status in (200, 204):
            logger.info("deleted BIG-IP token {}", fingerprint(token))
        elif status not in (401, 404):  # already expired or revoked: nothing left to delete
            logger.warning("could not delete BIG-IP token {}: HTTP {}", fingerprint(token), status)


def _seconds(value: Any, default: float) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return default
    return seconds if seconds > 0 else default
