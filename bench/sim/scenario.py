"""Scenario files: what to simulate, as YAML with a checked schema (docs/routing.md "Scenario schema").

    name: heterogeneous            # default: the file name without .yaml
    description: one paragraph
    duration: 240                  # s of client arrivals
    warmup: 30                     # s at the start left out of the statistics
    seed: 1                        # default seed; `--seed` overrides
    engines:                       # one BIG-IP pool member each
      - {name: a10-1, profile: a10-llama3-8b, ratio: 1, params: {kv_tokens: 30000}}
    workload: {prompt: {median: 172, sigma: 1.0}, output: {median: 139, sigma: 0.9}}
    arrivals: {process: poisson, load: 0.85}       # or bursty with on_mean, off_mean, peak;
                                                   # or {process: closed, concurrency: 40}, optionally with
                                                   # prompts: 1000 (a benchmark run, see below)
    background: [{engine: a10-1, concurrency: 50}] # closed-loop clients that bypass BIG-IP
    pipeline: {scrape_interval: 5, scrape_latency: 0.02, scoring_latency: 0.03, stale_after: null,
               pool_fetch_interval: 10, replicas: 1, dispatch_delay: 0.001, decision_latency: 0}
    bigip: {monitor_interval: 5, monitor_timeout: 16}
    failures: [{engine: a10-3, at: 120, recover: 200}]
    policies: [random, least_conn, default, oracle]   # default: every standard policy
    weights: {s1_enhanced: {w_a: 0.1, w_b: 0.9}}      # an original mode's weights (default: its suggested ones)
    sweep: {...}                                   # closed loops at several concurrencies (bench/sim/sweep.py)

`load` is the mean arrival rate as a fraction of the capacity left for balanced traffic: the sum of the
engines' saturated throughputs minus what the background clients alone take (bench/sim/calibrate.py measures
both with the simulator itself). Closed arrivals have no `load`: `concurrency` clients keep one request each in
flight, so the offered load follows the engines' latency, as in a `--max-concurrency` benchmark. With `prompts`,
they run as vLLM's serving benchmark does: all start together at the end of the warm-up (the background clients
run from 0), stop once `prompts` requests have been sent, and every one of those requests is measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from llmsched.bench.sim.policies import NO_HERD_SUFFIX, ORIGINAL_WEIGHTS
from llmsched.bench.sim.prefixes import Prefixes, Sessions
from llmsched.bench.sim.profiles import EngineProfile, profile
from llmsched.bench.sim.sweep import Sweep, parse_sweep
from llmsched.bench.sim.workload import Arrivals, LengthDist, Workload

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
ORIGINAL_STANDARD = ("s1", "s1_enhanced", "s2", "s2_enhanced", "s2_dynamic_waiting")
# A mode under its own name runs with herd control on, as any config does by default; `<mode>_no_herd` runs it
# with scheduler.herd_control off (the original had no herd control; bench/sim/policies.py).
STANDARD_POLICIES = (
    ("random", "round_robin", "least_conn")
    + ORIGINAL_STANDARD
    + tuple(m + NO_HERD_SUFFIX for m in ORIGINAL_STANDARD)
    + ("default", "default_no_prefix", "default_no_herd", "oracle")
)
# Policies run only where a scenario lists them (bench/sim/policies.py).
EXTRA_POLICIES = ("prefix_only",)


def known_policies() -> tuple[str, ...]:
    """Every policy name `--policies` and a scenario's `policies` accept: the standard ones, then every other
    original mode with its suggested weights, with and without herd control."""
    others = [m for m in ORIGINAL_WEIGHTS if m not in ORIGINAL_STANDARD]
    return STANDARD_POLICIES + EXTRA_POLICIES + tuple(others) + tuple(m + NO_HERD_SUFFIX for m in others)


class ScenarioError(ValueError):
    """A scenario file that cannot be simulated; the message names the file and the key."""


@dataclass(frozen=True)
class EngineSpec:
    name: str
    profile_name: str
    profile: EngineProfile
    ratio: int = 1


@dataclass(frozen=True)
class PipelineSpec:
    scrape_interval: float = 5.0
    scrape_latency: float = 0.02
    scoring_latency: float = 0.03
    stale_after: float | None = None
    pool_fetch_interval: float = 10.0
    replicas: int = 1
    dispatch_delay: float = 0.001
    # s: the iRule's sideband round trip to the decision API. BIG-IP holds the request until the answer is back,
    # so a request a scheduler places reaches its engine this much later (BIG-IP's own methods pay nothing)
    decision_latency: float = 0.0

    @property
    def effective_stale_after(self) -> float:
        """llmsched.shared.config_model.SchedulerConfig's default: 3 scrape intervals, at least 3 s."""
        return self.stale_after if self.stale_after is not None else max(3.0, 3 * self.scrape_interval)


@dataclass(frozen=True)
class BigipSpec:
    monitor_interval: float = 5.0  # BIG-IP http monitor defaults
    monitor_timeout: float = 16.0


@dataclass(frozen=True)
class Background:
    engine: str
    concurrency: int


@dataclass(frozen=True)
class Failure:
    engine: str
    at: float
    recover: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    warmup: float
    seed: int
    engines: tuple[EngineSpec, ...]
    workload: Workload
    arrivals: Arrivals
    load: float  # open-loop arrivals only; 0 for closed ones
    background: tuple[Background, ...] = ()
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    bigip: BigipSpec = field(default_factory=BigipSpec)
    failures: tuple[Failure, ...] = ()
    policies: tuple[str, ...] = STANDARD_POLICIES
    source: str = ""
    weights: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> weights replacing the suggested
    sweep: Sweep | None = None

    def engine_index(self, name: str) -> int:
        return [e.name for e in self.engines].index(name)

    def mode_weights(self, mode: str) -> dict[str, float]:
        """The weights a scoring mode runs with: the original's suggested ones, with the scenario's on top."""
        return {**ORIGINAL_WEIGHTS[mode], **self.weights.get(mode, {})}

    def with_concurrency(self, concurrency: int) -> Scenario:
        """The same scenario with `concurrency` closed-loop clients (`--concurrency`, sweeps)."""
        if concurrency < 1:
            raise ScenarioError(f"{self.source}: concurrency must be >= 1, not {concurrency}")
        return replace(self, arrivals=replace(self.arrivals, process="closed", concurrency=concurrency), load=0.0)


def shipped() -> list[str]:
    """Names of the scenarios shipped in bench/scenarios (package data, next to this package), sorted."""
    if not SCENARIO_DIR.is_dir():
        raise ScenarioError(
            f"the shipped scenarios are missing: no directory {SCENARIO_DIR} "
            "(reinstall llmsched; pyproject.toml ships bench/scenarios/*.yaml as package data)"
        )
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def find(name_or_path: str) -> Path:
    """A shipped scenario by name, or a YAML file by path. A bare name (no .yaml/.yml, no directory) is a
    shipped scenario first, so the working directory's contents cannot shadow one."""
    path = Path(name_or_path)
    is_path = path.suffix in (".yaml", ".yml") or "/" in name_or_path or os.sep in name_or_path
    if not is_path:
        candidate = SCENARIO_DIR / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    if is_path or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        return path
    raise ScenarioError(f"unknown scenario {name_or_path!r}; shipped: {', '.join(shipped())}")


def load(name_or_path: str) -> Scenario:
    path = find(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse(raw, str(path), default_name=path.stem)


def parse(raw: object, source: str, default_name: str = "scenario") -> Scenario:
    try:
        return _parse(raw, default_name, source)
    except (KeyError, TypeError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise ScenarioError(f"{source}: {message}") from None


def _mapping(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a mapping")
    return value


def _only(d: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})")


def _num(
    d: dict, key: str, where: str, default: float | None = None, minimum: float = 0.0, allow_none: bool = False
) -> float | None:
    value = d.get(key, default)
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{where}.{key}: required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key}: must be a number, not {value!r}")
    if value < minimum:
        raise ValueError(f"{where}.{key}: must be >= {minimum}, not {value}")
    return float(value)


def _dataclass_from(cls: type, d: dict, where: str) -> object:
    _only(d, {f.name for f in fields(cls)}, where)
    values = {}
    for f in fields(cls):
        if f.name in d:
            allow_none = f.name == "stale_after"
            values[f.name] = _num(d, f.name, where, allow_none=allow_none)
            if f.name == "replicas":
                values[f.name] = int(values[f.name] or 1)
    return cls(**values)


def _parse(raw: object, default_name: str, source: str) -> Scenario:
    top = _mapping(raw, "scenario")
    _only(
        top,
        {
            "name",
            "description",
            "duration",
            "warmup",
            "seed",
            "engines",
            "workload",
            "arrivals",
            "background",
            "pipeline",
            "bigip",
            "failures",
            "policies",
            "weights",
            "sweep",
        },
        "scenario",
    )
    duration = _num(top, "duration", "scenario", minimum=1.0)
    warmup = _num(top, "warmup", "scenario", default=0.0)
    if warmup >= duration:
        raise ValueError("scenario.warmup: must be shorter than duration")
    engines = []
    for i, e in enumerate(top.get("engines") or []):
        where = f"engines[{i}]"
        e = _mapping(e, where)
        _only(e, {"name", "profile", "ratio", "params"}, where)
        if not e.get("name") or not e.get("profile"):
            raise ValueError(f"{where}: needs a name and a profile")
        params = _mapping(e.get("params"), f"{where}.params")
        for key in params:
            _num(params, key, f"{where}.params")  # a number (YAML reads 1e-7 without a dot as a string)
        prof = profile(str(e["profile"]), params)
        engines.append(EngineSpec(str(e["name"]), str(e["profile"]), prof, int(_num(e, "ratio", where, 1, 1))))
    if not engines:
        raise ValueError("engines: at least one engine is required")
    names = [e.name for e in engines]
    if len(set(names)) != len(names):
        raise ValueError("engines: names must be unique")
    wl = _mapping(top.get("workload"), "workload")
    _only(wl, {"prompt", "output", "prefixes", "sessions"}, "workload")
    workload = Workload(
        *(
            LengthDist(
                _num(
                    _mapping(wl.get(k), f"workload.{k}"),
                    "median",
                    f"workload.{k}",
                    default=getattr(Workload(), k).median,
                    minimum=1.0,
                ),
                _num(
                    _mapping(wl.get(k), f"workload.{k}"), "sigma", f"workload.{k}", default=getattr(Workload(), k).sigma
                ),
            )
            for k in ("prompt", "output")
        ),
        prefixes=_prefixes(wl["prefixes"]) if wl.get("prefixes") is not None else None,
        sessions=_sessions(wl["sessions"]) if wl.get("sessions") is not None else None,
    )
    arr = _mapping(top.get("arrivals"), "arrivals")
    _only(arr, {"process", "load", "on_mean", "off_mean", "peak", "concurrency", "prompts"}, "arrivals")
    process = str(arr.get("process", "poisson"))
    prompts = 0
    if process == "closed":
        if "load" in arr:
            raise ValueError("arrivals.load: closed arrivals have no load; their clients set it (concurrency)")
        concurrency = int(_num(arr, "concurrency", "arrivals", minimum=1))
        if "prompts" in arr:
            prompts = int(_num(arr, "prompts", "arrivals", minimum=1))
    elif "concurrency" in arr or "prompts" in arr:
        key = "concurrency" if "concurrency" in arr else "prompts"
        raise ValueError(f"arrivals.{key}: only closed arrivals have clients, not {process}")
    else:
        concurrency = 0
    arrivals = Arrivals(
        process,
        *(_num(arr, k, "arrivals", getattr(Arrivals(), k)) for k in ("on_mean", "off_mean", "peak")),
        concurrency=concurrency,
        prompts=prompts,
    )
    arrivals.validate()
    if arrivals.closed and workload.sessions is not None:
        raise ValueError("workload.sessions: sessions need open-loop arrivals (a session paces its own turns)")
    load = 0.0 if arrivals.closed else _num(arr, "load", "arrivals", minimum=0.01)
    background = []
    for i, b in enumerate(top.get("background") or []):
        b = _mapping(b, f"background[{i}]")
        _only(b, {"engine", "concurrency"}, f"background[{i}]")
        if b.get("engine") not in names:
            raise ValueError(f"background[{i}].engine: {b.get('engine')!r} is not an engine name")
        background.append(Background(b["engine"], int(_num(b, "concurrency", f"background[{i}]", minimum=1))))
    failures = []
    for i, f in enumerate(top.get("failures") or []):
        f = _mapping(f, f"failures[{i}]")
        _only(f, {"engine", "at", "recover"}, f"failures[{i}]")
        if f.get("engine") not in names:
            raise ValueError(f"failures[{i}].engine: {f.get('engine')!r} is not an engine name")
        at = _num(f, "at", f"failures[{i}]")
        recover = _num(f, "recover", f"failures[{i}]", allow_none=True)
        if recover is not None and recover <= at:
            raise ValueError(f"failures[{i}].recover: must be after `at`")
        failures.append(Failure(f["engine"], at, recover))
    policies = tuple(top.get("policies") or STANDARD_POLICIES)
    for p in policies:
        if p not in known_policies():
            raise ValueError(f"policies: unknown policy {p!r}; known: {', '.join(known_policies())}")
    weights = _weights(_mapping(top.get("weights"), "weights"))
    sweep = parse_sweep(_mapping(top.get("sweep"), "sweep"), known_policies()) if "sweep" in top else None
    return Scenario(
        name=str(top.get("name") or default_name),
        description=str(top.get("description") or "").strip(),
        duration=duration,
        warmup=warmup,
        seed=int(_num(top, "seed", "scenario", 1)),
        engines=tuple(engines),
        workload=workload,
        arrivals=arrivals,
        load=load,
        background=tuple(background),
        pipeline=_dataclass_from(PipelineSpec, _mapping(top.get("pipeline"), "pipeline"), "pipeline"),
        bigip=_dataclass_from(BigipSpec, _mapping(top.get("bigip"), "bigip"), "bigip"),
        failures=tuple(failures),
        policies=policies,
        source=source,
        weights=weights,
        sweep=sweep,
    )


WEIGHT_KEYS = ("w_a", "w_b", "w_g", "transition_point", "steepness")  # shared.config_model.ModeConfig


def _weights(raw: dict) -> dict[str, dict[str, float]]:
    """`weights: {mode: {w_a: .., w_b: ..}}`: per original mode, weights replacing its suggested ones."""
    out = {}
    for mode, w in raw.items():
        where = f"weights.{mode}"
        if mode not in ORIGINAL_WEIGHTS:
            raise ValueError(f"{where}: not an original mode (known: {', '.join(ORIGINAL_WEIGHTS)})")
        w = _mapping(w, where)
        _only(w, set(WEIGHT_KEYS), where)
        out[str(mode)] = {k: float(_num(w, k, where) or 0.0) for k in w}
    return out


def _prefixes(raw: object) -> Prefixes:
    """`workload.prefixes: {groups, tokens: {median, sigma}, popularity: uniform|zipf, zipf_s}`."""
    where = "workload.prefixes"
    d = _mapping(raw, where)
    _only(d, {"groups", "tokens", "popularity", "zipf_s"}, where)
    tokens = _mapping(d.get("tokens"), f"{where}.tokens")
    _only(tokens, {"median", "sigma"}, f"{where}.tokens")
    popularity = str(d.get("popularity", "uniform"))
    if "zipf_s" in d and popularity != "zipf":
        raise ValueError(f"{where}.zipf_s: only for popularity: zipf")
    prefixes = Prefixes(
        groups=int(_num(d, "groups", where, minimum=1) or 1),
        median=float(_num(tokens, "median", f"{where}.tokens", minimum=1.0) or 1.0),
        sigma=float(_num(tokens, "sigma", f"{where}.tokens", default=0.0) or 0.0),
        popularity=popularity,
        zipf_s=float(_num(d, "zipf_s", where, default=1.1, minimum=0.0) or 0.0),
    )
    prefixes.validate()
    return prefixes


def _sessions(raw: object) -> Sessions:
    """`workload.sessions: {turns: {mean}, think_time: {mean}}` (think time in seconds)."""
    where = "workload.sessions"
    d = _mapping(raw, where)
    _only(d, {"turns", "think_time"}, where)
    turns = _mapping(d.get("turns"), f"{where}.turns")
    think = _mapping(d.get("think_time"), f"{where}.think_time")
    _only(turns, {"mean"}, f"{where}.turns")
    _only(think, {"mean"}, f"{where}.think_time")
    sessions = Sessions(
        turns_mean=float(_num(turns, "mean", f"{where}.turns", minimum=1.0) or 1.0),
        think_mean=float(_num(think, "mean", f"{where}.think_time", default=0.0) or 0.0),
    )
    sessions.validate()
    return sessions
