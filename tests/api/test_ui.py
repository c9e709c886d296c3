"""The status page: served by the API, self-contained, and rendered by a real headless Chromium against a running
API (gunicorn) over a Redis holding what the collectors and the scorer write."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmsched.shared import scrape_stats

from tests.api.live_api import live_api
from tests.helpers import make_store
from tests.status_data import BIGIP_ERROR, DISABLED, FAILING, HEALTHY, SCRAPE_ERROR, seed_status

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary: `make test` installs Debian's chromium package (make browser-deps);"
    " it could not be installed on this machine",
)


class Rendered(HTMLParser):
    """The parts of the rendered DOM the tests look at: member rows (cells by class), errors, the state badge."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.errors: list[str] = []
        self.state = ""
        self._row: dict[str, str] | None = None
        self._capture: list[tuple[str, str]] = []  # (tag, what) being captured, innermost last
        self._text: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "tr" and "member" in classes:
            self._row = {
                "member": a.get("data-member", ""),
                "pool": a.get("data-pool", ""),
                "row_class": a.get("class", ""),
            }
        elif tag == "td" and self._row is not None:
            named = [c for c in classes if c not in ("num", "stale")]  # "num waiting" -> waiting
            self._start(tag, named[0] if named else "td")
        elif tag == "li" and "error" in classes:
            self._start(tag, "error")
        elif tag == "span" and "state" in classes:
            self._start(tag, "state")

    def _start(self, tag: str, what: str) -> None:
        self._capture.append((tag, what))
        self._text[what] = []

    def handle_data(self, data: str) -> None:
        if self._capture:
            self._text[self._capture[-1][1]].append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._capture and self._capture[-1][0] == tag:
            _, what = self._capture.pop()
            text = " ".join("".join(self._text.pop(what)).split())
            if what == "error":
                self.errors.append(text)
            elif what == "state":
                self.state = text
            elif self._row is not None:
                self._row[what] = text
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- without a browser ---------------------------------------------------------------------------------------------
def test_the_page_loads_nothing_from_elsewhere(client) -> None:
    page = client.get("/ui")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    for ref in (r for r in refs if r.startswith("/ui/static/")):
        body = client.get(ref)
        assert body.status_code == 200, ref
        assert not re.search(r"https?:|@import|url\(", body.get_data(as_text=True)), ref
    assert client.get("/ui/").status_code == 200


def test_the_page_data_lists_pools_members_shares_and_errors(client, store) -> None:
    seed_status(store)
    data = client.get("/ui/data.json").get_json()
    assert [p["key"] for p in data["pools"]] == ["llm_pool:Common", "other_pool:Common"]
    llm = data["pools"][0]
    members = {m["id"]: m for m in llm["members"]}
    assert set(members) == {*HEALTHY, FAILING, DISABLED}
    assert abs(sum(m["share"] for m in members.values()) - 1.0) < 1e-6
    assert members[DISABLED]["share"] == 0 and members[DISABLED]["bigip_status"] == "disabled"
    assert members[FAILING]["scrape_error"] == SCRAPE_ERROR
    assert {e["source"] for e in llm["errors"]} == {"BIG-IP", f"scrape {FAILING}"}
    assert data["config"]["version"] == store.config_version()


# --- in a real browser -------------------------------------------------------------------------------------------
@needs_chromium
def test_chromium_renders_every_member_row_with_its_state_share_and_the_errors(redis_url: str, tmp_path: Path) -> None:
    seed_status(make_store(redis_url))
    with live_api(redis_url, workers=1) as (base, _proc):
        done = chromium(f"{base}/ui", tmp_path / "profile", "--dump-dom")
        shot = tmp_path / "status.png"
        chromium(f"{base}/ui", tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1400,800")
    assert done.returncode == 0, done.stderr[-2000:]
    page = Rendered()
    page.feed(done.stdout)
    assert page.state == "live", done.stdout[-2000:]
    rows = {(r["pool"], r["member"]): r for r in page.rows}
    assert set(rows) == {("llm_pool:Common", m) for m in (*HEALTHY, FAILING, DISABLED)} | {
        ("other_pool:Common", "10.1.0.1:30000")
    }
    healthy = rows[("llm_pool:Common", HEALTHY[0])]
    assert healthy["bigip"] == "enabled" and healthy["engine"] == "vllm" and healthy["why"] == "eligible"
    assert healthy["waiting"] == "2" and healthy["running"] == "12" and healthy["kv"] == "31.0 %"
    assert re.fullmatch(r"0\.\d{4}", healthy["score"]) and healthy["age"].endswith(" s")
    shares = [float(rows[("llm_pool:Common", m)]["share"].rstrip(" %")) for m in HEALTHY]
    assert abs(sum(shares) - 100.0) < 0.2 and all(s > 0 for s in shares)
    disabled = rows[("llm_pool:Common", DISABLED)]
    assert disabled["bigip"] == "disabled" and disabled["share"] == "0.0 %"
    assert disabled["why"] == "not enabled on BIG-IP" and "ineligible" in disabled["row_class"]
    assert rows[("llm_pool:Common", FAILING)]["why"] == "no usable metrics (failed, stale or missing)"
    assert rows[("other_pool:Common", "10.1.0.1:30000")]["share"] == "100.0 %"
    assert any(BIGIP_ERROR in e and e.startswith("BIG-IP") for e in page.errors), page.errors
    assert any(SCRAPE_ERROR in e and e.startswith(f"scrape {FAILING}") for e in page.errors), page.errors
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@needs_chromium
def test_the_page_refreshes_itself_from_the_data_endpoint(redis_url: str, tmp_path: Path) -> None:
    seed_status(make_store(redis_url))
    log = tmp_path / "api.log"
    with live_api(redis_url, workers=1, env={"LLMSCHED_ACCESS_LOG": "1", "LLMSCHED_LOG_LEVEL": "info"}, log=log) as (
        base,
        _proc,
    ):
        done = chromium(f"{base}/ui", tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    fetches = [line for line in log.read_text().splitlines() if "GET /ui/data.json" in line]
    assert len(fetches) >= 3, fetches  # the first load, then every 2 s of the page's (virtual) time


@needs_chromium
def test_chromium_shows_each_live_scraper_with_its_cycle_lateness_throughput_and_skipped_ticks(
    redis_url: str, tmp_path: Path
) -> None:
    store = make_store(redis_url)
    seed_status(store)
    last = {"cycle_duration": 0.4213, "lateness": 0.0321, "skipped_ticks": 3, "members": 1000, "targets": 1000,
            "members_per_second": 2373.5, "scrapers": 1, "interval": 1.0, "at": time.time() + 30}  # fmt: skip
    scrape_stats.save(store, "scraper", "host-a:11:aa", last)
    with live_api(redis_url, workers=1) as (base, _proc):
        done = chromium(f"{base}/ui", tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    row = re.search(r'<tr class="scraper">(.*?)</tr>', done.stdout)
    assert row, done.stdout[-2000:]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    assert cells[:7] == ["host-a:11:aa", "1000", "0.421 s", "0.032 s", "2374", "3", "1.0 s"], cells
