"""Logging set-up for every llmsched process: loguru to stderr, as text or one JSON object per line.

Call `setup_logging` once at process start (and again after a config reload changes the level). Secrets never
reach a log: config values that hold them are `Secret` objects, which format as a mask.

Every record passes `sanitize` before any sink sees it, in both formats. Log lines carry request-derived text (a
`pool_name`, a member string, gunicorn's access line with its path and Referer), and a line feed or carriage
return in such text would let a client forge whole log lines (a fake CRITICAL, say). So control characters
(C0, DEL, C1, and the Unicode line and paragraph separators) are written as visible escapes, and the value of a
URL parameter that can carry a secret (`token=`, `password=`, ...) is masked wherever it appears in a line.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

from llmsched.shared.secrets import MASK

if TYPE_CHECKING:
    from loguru import Record

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {extra[process]} | {name}:{function}:{line} - {message}"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({ord(ch): text for ch, text in _NAMED.items()})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
# A query parameter whose value is a credential: `?token=...` (the status page's admin token), `password=`, ...
SECRET_PARAMS = ("token", "access_token", "password", "api_key", "apikey")
_SECRET_QUERY = re.compile(r"([?&;](?:%s)=)[^&;\s\"']*" % "|".join(SECRET_PARAMS), re.IGNORECASE)


def escape(text: str) -> str:
    """`text` on one line: control characters as `\\n`, `\\r`, `\\t`, `\\xNN`, `\\u2028`."""
    return text.translate(_ESCAPES)


def redact(text: str) -> str:
    """`text` with the value of every secret-bearing URL parameter masked."""
    return _SECRET_QUERY.sub(rf"\g<1>{MASK}", text)


def sanitize(record: Record) -> None:
    """loguru patcher: the message and every string in `extra` escaped and redacted, for text and JSON alike."""
    record["message"] = escape(redact(record["message"]))
    extra: dict[str, Any] = record["extra"]
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = escape(redact(value))


class _InterceptHandler(logging.Handler):
    """Routes the standard library's logging (gunicorn, rq, aiohttp) into loguru, so all lines look alike."""

    def emit(self, record: logging.LogRecord) -> None:
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(process: str, level: str = "INFO", fmt: str = "text", intercept_stdlib: bool = True) -> None:
    level = level.upper()
    if level not in LEVELS:
        level = "INFO"
    logger.remove()
    logger.configure(extra={"process": process}, patcher=sanitize)
    if fmt == "json":
        logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=TEXT_FORMAT, backtrace=False, diagnose=False)
    if intercept_stdlib:
        logging.basicConfig(
            handlers=[_InterceptHandler()],
            level=logging.getLevelName(level)
            if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            else logging.INFO,
            force=True,
        )
