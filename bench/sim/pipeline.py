"""What the API replicas see, built by llmsched's real code: poller membership -> scraper documents -> scoring
step snapshot, plus the shared dispatch counters of herd control. Redis is replaced by plain dicts holding the
same documents; nothing of the scoring or picking is re-implemented.

Timing follows the real processes:
* the poller rewrites the membership (BIG-IP's member states) every `pool_fetch_interval`;
* the scraper starts a cycle every `scrape_interval` (plus its start jitter, up to 10 % of the interval and at
  most 1 s), reads every engine `scrape_latency` later, then writes all documents at once; that write resets
  the dispatch counters of the members it measured (shared/store.py `set_metrics`);
* the scoring job runs `scoring_latency` after the write and replaces the snapshot (scorer/step.py);
* a decision's dispatch increment lands in Redis `dispatch_delay` after the answer (the API writes it after
  sending the answer), so decisions closer together than that do not see each other, on any replica.
"""

from __future__ import annotations

from collections import deque

from llmsched.bench.sim.engine import BLOCK, Engine
from llmsched.scorer.step import build_snapshot
from llmsched.shared.members import Member

SCRAPER_JITTER_FRACTION = 0.1  # collectors/scraper.py JITTER_FRACTION / JITTER_MAX_S
SCRAPER_JITTER_MAX = 1.0


def member_address(index: int) -> tuple[str, int]:
    """The simulated engines' addresses: 10.0.<i / 250>.<i % 250 + 1>:8000."""
    return f"10.0.{index // 250}.{index % 250 + 1}", 8000


class Pipeline:
    def __init__(self, config: dict, engines: list[Engine], ratios: list[int], dispatch_delay: float) -> None:
        self.config = config
        self.engines = engines
        self.ratios = ratios
        self.ids = ["%s:%d" % member_address(e.index) for e in engines]
        self.candidates = list(self.ids)
        self.membership: dict | None = None
        self.metrics: dict[str, dict] = {}
        self.snapshot: dict | None = None
        self.dispatch: dict[str, int] = {}
        self.pending: deque[tuple[float, str]] = deque()
        self.dispatch_delay = dispatch_delay
        self.snapshots = 0

    # --- poller ------------------------------------------------------------------------------------------
    def poll(self, now: float, monitor_up: list[bool]) -> None:
        members = []
        for engine, ratio, up in zip(self.engines, self.ratios, monitor_up):
            address, port = member_address(engine.index)
            members.append(
                Member(
                    address=address, port=port, name=f"{address}:{port}", state="up" if up else "down", ratio=ratio
                ).to_dict()
            )
        self.membership = {"fetched_at": now, "members": members, "error": None, "error_at": None}

    # --- scraper -----------------------------------------------------------------------------------------
    def scrape(self, now: float, latency: float) -> dict[str, dict]:
        """One scrape cycle's documents, read now (the caller writes them `latency` later)."""
        docs = {}
        for mid, engine in zip(self.ids, self.engines):
            if not engine.up:
                docs[mid] = {
                    "scraped_at": now,
                    "status": "error",
                    "error": "connection refused",
                    "metrics": {},
                    "kv_cache_max": None,
                    "engine": None,
                    "detected_variant": None,
                    "detection_status": "failed",
                    "duration": latency,
                }
                continue
            waiting, running, kv = engine.sample()
            docs[mid] = {
                "scraped_at": now,
                "status": "ok",
                "error": None,
                "metrics": {"waiting_queue": waiting, "cache_usage": kv, "running_req": running},
                "kv_cache_max": kv,
                "engine": "vllm",
                "detected_variant": "vllm",
                "detection_status": "ok",
                "duration": latency,
                # what vLLM's cache_config_info gives the scraper (num_gpu_blocks x block_size); its prefix-cache
                # counters are not simulated
                "prefix_cache": {
                    "hits_total": None,
                    "queries_total": None,
                    "hit_rate": None,
                    "capacity_tokens": float(engine.p.kv_tokens),
                    "block_size": BLOCK,
                },
            }
        return docs

    def write_metrics(self, now: float, docs: dict[str, dict]) -> None:
        self._land(now)
        self.metrics.update(docs)
        for mid in docs:
            self.dispatch.pop(mid, None)

    # --- scoring step ------------------------------------------------------------------------------------
    def score(self, now: float) -> None:
        self.snapshot = build_snapshot(self.config, self.membership, self.metrics, now)
        self.snapshots += 1

    # --- herd control counters ---------------------------------------------------------------------------
    def record_dispatch(self, now: float, member_id: str) -> None:
        self.pending.append((now + self.dispatch_delay, member_id))

    def dispatch_counts(self, now: float) -> dict[str, int]:
        self._land(now)
        return self.dispatch

    def _land(self, now: float) -> None:
        pending = self.pending
        while pending and pending[0][0] <= now:
            _, mid = pending.popleft()
            self.dispatch[mid] = self.dispatch.get(mid, 0) + 1
