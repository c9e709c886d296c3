"""The scraper's choice of event loop: uvloop when installed, asyncio's own when asked or when uvloop is absent."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from llmsched.cli.scraper import GC_YOUNG_THRESHOLD, tune_gc, use_uvloop


@pytest.fixture(autouse=True)
def default_policy() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def loop_module() -> str:
    loop = asyncio.new_event_loop()
    try:
        return type(loop).__module__.split(".")[0]
    finally:
        loop.close()


def test_the_scraper_runs_on_uvloop_when_it_is_installed(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.delenv("LLMSCHED_SCRAPER_LOOP", raising=False)
    assert use_uvloop(logger) is True
    assert loop_module() == "uvloop"


def test_llmsched_scraper_loop_asyncio_keeps_the_standard_loop(monkeypatch):
    monkeypatch.setenv("LLMSCHED_SCRAPER_LOOP", "asyncio")
    assert use_uvloop(logger) is False
    assert loop_module() == "asyncio"


def test_without_uvloop_the_scraper_falls_back_to_asyncio_and_says_so(monkeypatch):
    monkeypatch.delenv("LLMSCHED_SCRAPER_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        assert use_uvloop(logger) is False
    finally:
        logger.remove(sink)
    assert loop_module() == "asyncio"
    assert any("uvloop is not installed" in line for line in lines)


def test_the_scraper_leaves_its_start_up_objects_out_of_garbage_collections_and_collects_less_often():
    import gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
