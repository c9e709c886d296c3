"""Log lines cannot be forged or leak a secret: request-derived text with line feeds, carriage
returns or other control characters stays on its own line, escaped, in the text and the JSON format; the value of a
secret-bearing URL parameter (`?token=`) is masked. In-process for both formats, and through a real `llmsched
api` (gunicorn) at DEBUG with its access log on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from llmsched.shared.logging import escape, redact, setup_logging

from tests.api.live_api import live_api
from tests.helpers import make_store, seed

FORGED = "2026-01-01 00:00:00.000 | CRITICAL | api | llmsched:forged:1 - disk on fire"
HOSTILE_POOL = f"p1\n{FORGED}\r\x1b[2J\u2028x"


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    yield
    setup_logging("test", "WARNING")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_line_feed_in_a_logged_value_cannot_start_a_new_log_line(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    setup_logging("api", "DEBUG", fmt, intercept_stdlib=False)
    logger.debug("select {} -> none (unknown pool)", HOSTILE_POOL)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    message = json.loads(lines[0])["record"]["message"] if fmt == "json" else lines[0]
    assert "p1\\n2026-01-01 00:00:00.000 | CRITICAL" in message
    assert "\\r\\x1b[2J\\u2028x" in message
    if fmt == "json":
        assert "\\n2026-01-01" in json.loads(lines[0])["text"]


def test_a_secret_query_parameter_is_masked_in_every_line(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    setup_logging("api", "INFO", "text", intercept_stdlib=False)
    logger.info('127.0.0.1 "GET /ui?token=s3cret-tok&x=1 HTTP/1.1" 200 "http://h/ui?TOKEN=s3cret-tok"')
    err = capsys.readouterr().err
    assert "s3cret-tok" not in err and "/ui?token=********&x=1" in err and "?TOKEN=********" in err


def test_escape_and_redact_leave_ordinary_text_alone() -> None:
    text = "scored p1:Common (scrape): 3 members, 1.2 ms; GET /pools/status?x=1"
    assert escape(text) == text and redact(text) == text


def test_a_real_api_at_debug_writes_a_hostile_pool_name_on_one_line_and_no_token(
    redis_url: str, tmp_path: Path
) -> None:
    seed(make_store(redis_url), {"10.0.0.1:8000": {"waiting_queue": 0.0, "cache_usage": 0.1}})
    log = tmp_path / "api.log"
    env = {"LLMSCHED_LOG_LEVEL": "DEBUG", "LLMSCHED_ACCESS_LOG": "1", "LLMSCHED_ADMIN_TOKEN": "adm-tok-7f1e"}
    with live_api(redis_url, workers=1, env=env, log=log) as (base, _proc):
        host, port = base.removeprefix("http://").split(":")
        body = json.dumps({"pool_name": HOSTILE_POOL, "partition": "Common", "members": ["10.0.0.1:8000"]})
        for method, path, payload in (
            ("POST", "/scheduler/select", body),
            ("GET", "/ui?token=adm-tok-7f1e", None),
            ("GET", f"/pools/status?token=adm-tok-7f1e&n={FORGED}".replace(" ", "%20"), None),
        ):
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()
    text = log.read_text()
    assert "select p1\\n2026-01-01 00:00:00.000 | CRITICAL" in text  # the DEBUG line is there, escaped
    assert not any(line.startswith("2026-01-01") for line in text.splitlines())
    assert "adm-tok-7f1e" not in text
