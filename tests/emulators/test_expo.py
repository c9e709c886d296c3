"""The hand-written exposition writer against prometheus_client's own `generate_latest`."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import Histogram as PromHistogram

from llmsched.emulators.engine_sim import TTFT_BUCKETS
from llmsched.emulators.expo import Family, Histogram, Series, render


def _mask_created(text: str) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 TS", text)


def test_matches_generate_latest_byte_for_byte():
    reg = CollectorRegistry()
    labels = ["model_name", "engine"]
    g = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels, registry=reg)
    c = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg)
    h = PromHistogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        labels,
        buckets=TTFT_BUCKETS,
        registry=reg,
    )
    ours_hist = {e: Histogram(TTFT_BUCKETS) for e in ("0", "1")}
    fams = [
        Family("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed."),
        Family("vllm:prompt_tokens", "counter", "Number of prefill tokens processed."),
        Family("vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds."),
    ]
    for e, waiting, tokens, obs in (("0", 7, 1048576, [0.03, 0.2, 3000.0]), ("1", 0, 0, [])):
        lab = {"model_name": 'my "model"\\x', "engine": e}  # escaping of quotes and backslashes too
        g.labels(**lab).set(waiting)
        c.labels(**lab).inc(tokens)
        h.labels(**lab)  # the child exists (all zero) even without observations
        for v in obs:
            h.labels(**lab).observe(v)
            ours_hist[e].observe(v)
        fams[0].series.append(Series(lab, float(waiting)))
        fams[1].series.append(Series(lab, float(tokens), created=1.0))
        fams[2].series.append(Series(lab, hist=ours_hist[e], created=1.0))
    expected = _mask_created(generate_latest(reg).decode())
    assert _mask_created(render(fams)) == expected


def test_multiprocess_order_sum_first_and_no_created():
    h = Histogram([0.1, 1.0])
    h.observe(0.5)
    text = render(
        [
            Family(
                "sglang:time_to_first_token_seconds",
                "histogram",
                "TTFT.",
                [Series({"model_name": "m"}, hist=h, created=5.0)],
            )
        ],
        multiprocess=True,
    )
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines[0].startswith("sglang:time_to_first_token_seconds_sum")
    assert lines[-1].startswith("sglang:time_to_first_token_seconds_count")
    assert "_created" not in text
