"""Logging set-up for every llmsched process: loguru to stderr, as text or one JSON object per line.

Call `setup_logging` once at process start (and again after a config reload changes the level). Secrets never
reach a log: config values that hold them are `Secret` objects, which format as a mask.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {extra[process]} | {name}:{function}:{line} - {message}"


class _InterceptHandler(logging.Handler):
    """Routes the standard library's logging (gunicorn, rq, aiohttp) into loguru, so all lines look alike."""

    def emit(self, record: logging.LogRecord) -> None:
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
    logger.configure(extra={"process": process})
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
