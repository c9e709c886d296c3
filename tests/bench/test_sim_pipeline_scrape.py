"""The simulator's scrape documents: the fields the real scraper writes, so the scoring step reads them alike."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from llmsched.bench.sim import runner, scenario
from llmsched.bench.sim.profiles import PRESETS
from llmsched.bench.sim.runner import Simulation
from llmsched.collectors.engines import PrefixCacheReading

MIXED = textwrap.dedent("""
    description: a small and a big engine
    duration: 20
    warmup: 2
    engines:
      - {name: small, profile: a10-llama3-8b}
      - {name: big, profile: published-4gpu-tp4}
    arrivals: {process: poisson, load: 0.3}
""")


def test_a_scrape_document_reports_the_engines_kv_size_where_the_real_scraper_puts_vllms_cache_config() -> None:
    sc = scenario.parse(yaml.safe_load(MIXED), "mixed.yaml", default_name="mixed")
    pipe = Simulation(runner.prepare(sc, 1), "default").pipeline
    docs = pipe.scrape(0.0, 0.0)
    for mid, name in zip(pipe.ids, ("a10-llama3-8b", "published-4gpu-tp4")):
        prefix = docs[mid]["prefix_cache"]
        assert set(prefix) == set(PrefixCacheReading().doc())
        assert prefix["capacity_tokens"] == PRESETS[name].kv_tokens


def test_an_idle_engine_is_sized_by_its_own_kv_at_the_busy_engines_footprint() -> None:
    sc = scenario.parse(yaml.safe_load(MIXED), "mixed.yaml", default_name="mixed")
    sim = Simulation(runner.prepare(sc, 1), "default")
    pipe = sim.pipeline
    pipe.poll(0.0, sim.view.up)
    docs = pipe.scrape(0.0, 0.0)
    # the big engine as a scrape would find it busy: 40 requests in 10 % of its KV
    docs[pipe.ids[1]]["metrics"] = {"waiting_queue": 0.0, "cache_usage": 0.1, "running_req": 40.0}
    pipe.write_metrics(0.0, docs)
    pipe.score(0.0)
    assert pipe.snapshot is not None
    small = pipe.snapshot["members"][0]
    per_request = 0.1 * PRESETS["published-4gpu-tp4"].kv_tokens / 40
    assert small["slack"] == pytest.approx(PRESETS["a10-llama3-8b"].kv_tokens * 0.9 / per_request)
