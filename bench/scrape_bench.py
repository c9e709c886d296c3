"""`make bench-scrape`: how many engines one scraper keeps fresh, and how sharding across scrapers scales.

For each (members N, scrapers S): a private Redis, one fake-engines process serving a realistic 56 KB vLLM 0.10 body
on N ports (bench/fake_engines.py), N members in pools of 100, S `llmsched scraper` processes at a 1 s
`metrics_fetch_interval` (stale_after 3 s, other settings default). After the scrapers settle, a window of
`--duration` seconds is measured:

* members per scraper CPU-second: scrapes the engines answered in the window / CPU seconds the scrapers used;
* cycle duration (mean, from the scrapers' own histograms) and skipped ticks (their counter) in the window;
* data age p50/p99: now - scraped_at of every member's document in Redis, sampled every 0.5 s;
* fresh: the share of members scraped in at least duration - 2 of the window's whole seconds (the window starts 5 %
  of an interval before a tick, so those seconds are the ticks' intervals).

`--kill` also kills -9 one of two scrapers at N = 1000 and measures until every member is fresh again. Printed
first, measured in the same run: the parse cost of the body through the former line loop and through the selection
(the reference). The machine is shared: compare figures of one run with each other, not across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmsched.bench.processes import free_port, private_redis, stopping
from llmsched.bench.scrape_body import vllm_010_body
from llmsched.collectors.engines import build_engine_maps
from llmsched.collectors.prom import line_name, parse_exposition
from llmsched.shared.members import Member
from llmsched.shared.store import Store, connect

POOL_SIZE = 100
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def scraper_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    wanted = ("llmsched_scrape_cycle_duration_seconds_sum", "llmsched_scrape_cycle_duration_seconds_count",
              "llmsched_scrape_skipped_ticks_total")  # fmt: skip
    out = dict.fromkeys(wanted, 0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in out:
                out[s.name] += s.value
    return out


def reference(repeat: int = 200) -> str:
    """Parse cost of the benchmark body, former line loop vs the compiled selection, measured now."""
    body = vllm_010_body()
    names = build_engine_maps()["vllm"].names | build_engine_maps()["sglang"].names

    def former() -> None:
        lines = [raw.strip() for raw in body.split("\n")]
        picked = [ln for ln in lines if ln and not ln.startswith("#") and line_name(ln) in names]
        parse_exposition("\n".join(picked) + "\n")

    def now() -> None:
        parse_exposition(body, names)

    out = []
    for label, fn in (("former line loop", former), ("compiled selection", now)):
        fn()
        started = time.process_time()
        for _ in range(repeat):
            fn()
        out.append(f"{label} {(time.process_time() - started) / repeat * 1e6:.0f} us")
    return f"reference, parse of the {len(body.encode())}-byte body (engine_type auto): " + ", ".join(out)


def write_setup(workdir: Path, redis_url: str, ports: list[int], interval_ms: int) -> Path:
    store = Store(connect(redis_url, socket_timeout=5.0))
    pools = []
    for i in range(0, len(ports), POOL_SIZE):
        name = f"bench{i // POOL_SIZE:03d}"
        members = [Member(address="127.0.0.1", port=p).to_dict() for p in ports[i : i + POOL_SIZE]]
        store.set_members(f"{name}:Common", {"fetched_at": time.time(), "members": members, "error": None})
        pools.append({"name": name, "engine_type": "vllm"})
    config = workdir / "scheduler-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "f5": {"host": "127.0.0.1", "password_env": "BENCH_F5_PW"},
                "global": {"log_level": "WARNING"},
                "scheduler": {"metrics_fetch_interval": interval_ms, "stale_after": 3},
                "telemetry": {"poller_port": 0, "scraper_port": 0, "scorer_port": 0},
                "pools": pools,
            }
        )
    )
    return config


def ages(store: Store, pool_keys: list[str]) -> list[float]:
    pipe = store.client.pipeline(transaction=False)
    for key in pool_keys:
        pipe.hvals(store.keys.pool_metrics(key))
    now = time.time()
    return [now - orjson.loads(raw)["scraped_at"] for docs in pipe.execute() for raw in docs]


def settle(store: Store, scrapers: int, members: int, timeout: float = 30.0) -> None:
    """Until every scraper has finished a cycle and together they own every member."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = store.client.hgetall(store.keys.collector_stats("scraper"))
        docs = [json.loads(v) for v in raw.values() if time.time() - json.loads(v)["at"] < 3]
        if len(docs) == scrapers and sum(d["members"] for d in docs) == members:
            return
        time.sleep(0.25)
    print(f"  (not settled after {timeout:.0f} s)", file=sys.stderr)


def run(
    members: int,
    scrapers: int,
    duration: float,
    use_gzip: bool,
    interval_ms: int,
    kill: bool,
    baseline: str | None,
    loop: str = "uvloop",
) -> dict:
    with private_redis() as (redis_url, _), stopping() as register, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stats_file = workdir / "engines.json"
        fake = register(
            subprocess.Popen(
                [sys.executable, "-m", "llmsched.bench.fake_engines", "--count", str(members), "--stats",
                 str(stats_file)] + (["--gzip"] if use_gzip else []),
                stdout=subprocess.PIPE,
            )
        )  # fmt: skip
        ports = json.loads(fake.stdout.readline())["ports"]  # type: ignore[union-attr]
        config = write_setup(workdir, redis_url, ports, interval_ms)
        store = Store(connect(redis_url, socket_timeout=5.0))
        pool_keys = [f"bench{i:03d}:Common" for i in range((members + POOL_SIZE - 1) // POOL_SIZE)]
        procs, metrics_ports = [], []
        for i in range(scrapers):
            metrics_ports.append(free_port())
            env = {**os.environ, "REDIS_URL": redis_url, "BENCH_F5_PW": "x",
                   "LLMSCHED_METRICS_PORT": str(metrics_ports[-1])}  # fmt: skip
            env["LLMSCHED_SCRAPER_LOOP"] = loop
            if baseline:  # the scraper of another tree: PYTHONPATH is searched before the editable install
                env["PYTHONPATH"] = baseline
            log = (workdir / f"scraper-{i}.log").open("wb")
            cmd = [sys.executable, "-m", "llmsched.cli.main", "scraper", "--config", str(config)]
            procs.append(register(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)))
        if baseline:
            time.sleep(5.0)  # an older scraper writes no stats to wait for
        else:
            settle(store, scrapers, members)
        time.sleep(2.0)
        align_to_ticks(interval_ms / 1000.0)
        fake.send_signal(signal.SIGUSR1)
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        fake_cpu0 = cpu_seconds(fake.pid)
        before = [scraper_metrics(p) for p in metrics_ports]
        samples: list[float] = []
        started = time.monotonic()
        takeover = None
        while time.monotonic() - started < duration:
            samples += ages(store, pool_keys)
            if kill and takeover is None and time.monotonic() - started > duration / 3:
                takeover = kill_and_time(store, pool_keys, procs[0], members)
            time.sleep(0.5)
        fake.send_signal(signal.SIGUSR2)
        cpu = sum(cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0) if p.poll() is None)
        fake_cpu = cpu_seconds(fake.pid) - fake_cpu0
        after = [scraper_metrics(p) if proc.poll() is None else b for p, proc, b in zip(metrics_ports, procs, before)]
        time.sleep(0.3)
        engines = json.loads(stats_file.read_text())
    window = engines["window_s"]
    scrapes = sum(h for h, _ in engines["ports"].values())
    fresh = sum(1 for _, secs in engines["ports"].values() if secs >= int(window) - 2) / members
    cycles = sum(a["llmsched_scrape_cycle_duration_seconds_count"] - b["llmsched_scrape_cycle_duration_seconds_count"]
                 for a, b in zip(after, before))  # fmt: skip
    cycle_s = sum(a["llmsched_scrape_cycle_duration_seconds_sum"] - b["llmsched_scrape_cycle_duration_seconds_sum"]
                  for a, b in zip(after, before))  # fmt: skip
    skipped = sum(a["llmsched_scrape_skipped_ticks_total"] - b["llmsched_scrape_skipped_ticks_total"]
                  for a, b in zip(after, before))  # fmt: skip
    build = "baseline" if baseline else "this" if loop == "uvloop" else f"this/{loop}"
    q = statistics.quantiles(samples, n=100) if len(samples) > 1 else [float("nan")] * 99
    return {
        "build": build, "members": members, "scrapers": scrapers, "gzip": use_gzip,
        "window_s": round(window, 1),
        "scrapes_per_s": round(scrapes / window), "per_cpu_s": round(scrapes / cpu) if cpu else None,
        "scraper_cpu": round(cpu / window, 2), "engines_cpu": round(fake_cpu / window, 2),
        "cycle_s": round(cycle_s / cycles, 3) if cycles else None, "skipped": int(skipped),
        "age_p50": round(q[49], 2), "age_p99": round(q[98], 2), "fresh": round(fresh, 3), "takeover_s": takeover,
    }  # fmt: skip


def align_to_ticks(period: float) -> None:
    """Wait until 5 % of an interval before the next tick (ticks are at k x interval of the clock), so that the
    window's seconds counted by the fake engines are the ticks' intervals: a member scraped once per tick then counts
    in every one of them, wherever the jittered cycle put it (counted from an arbitrary instant, two scrapes of a
    member near a second's boundary could fall into one second and leave the next empty)."""
    now = time.time()
    start = (math.floor(now / period) + 1) * period - 0.05 * period
    time.sleep(max(0.0, start - now))


def kill_and_time(store: Store, pool_keys: list[str], victim: subprocess.Popen, members: int) -> float:
    """kill -9 `victim`; seconds until every member's document is newer than the kill."""
    victim.send_signal(signal.SIGKILL)
    killed, wall = time.monotonic(), time.time()
    while time.monotonic() - killed < 15:
        pipe = store.client.pipeline(transaction=False)
        for key in pool_keys:
            pipe.hvals(store.keys.pool_metrics(key))
        docs = [orjson.loads(raw) for chunk in pipe.execute() for raw in chunk]
        if len(docs) == members and all(d["scraped_at"] > wall for d in docs):
            return round(time.monotonic() - killed, 2)
        time.sleep(0.05)
    return float("inf")


COLUMNS = ("build", "members", "scrapers", "gzip", "scrapes_per_s", "per_cpu_s", "scraper_cpu", "engines_cpu",
           "cycle_s", "skipped", "age_p50", "age_p99", "fresh", "takeover_s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[100, 1000, 2000, 5000])
    parser.add_argument("--scrapers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--duration", type=float, default=10.0, help="measured window per run, s (default 10)")
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true", help="engines offer gzip (the scraper accepts it)")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio", "both"),
        default="uvloop",
        help="this build's scraper event loop (default uvloop; both: each size with each loop)",
    )
    parser.add_argument("--kill", action="store_true", help="also: kill -9 one of 2 scrapers at 1000 members")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run one scraper of another build at each size: DIR holds its `llmsched` package "
        "(e.g. `git archive <commit>` unpacked into DIR/llmsched), the reference in the same run",
    )
    args = parser.parse_args(argv)
    print(reference(), flush=True)
    print(
        f"cpus: {os.cpu_count()}; window {args.duration:g} s; interval {args.interval_ms} ms; columns: scraper_cpu and "
        "engines_cpu are cores busy; cycle_s the mean cycle; fresh the share of members scraped in >= window-2 s"
    )
    print(" | ".join(COLUMNS), flush=True)
    loops = ("uvloop", "asyncio") if args.loop == "both" else (args.loop,)
    runs = [(n, s, False, None, lp) for n in args.members for s in args.scrapers for lp in loops]
    if args.baseline:  # the baseline (an older build) first at each size, on the standard loop it knew
        runs = [
            r for n in args.members for r in [(n, 1, False, args.baseline, "asyncio")] + [x for x in runs if x[0] == n]
        ]
    if args.kill:
        runs.append((1000, 2, True, None, loops[0]))
    for members, scrapers, kill, baseline, loop in runs:
        row = run(members, scrapers, args.duration, args.gzip, args.interval_ms, kill, baseline, loop)
        print(" | ".join(str(row[c]) for c in COLUMNS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
