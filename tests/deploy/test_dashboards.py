"""deploy/grafana and deploy/prometheus: a valid Grafana dashboard whose PromQL names only metrics llmsched exports
(shared/telemetry.py), and a scrape config with a job per process kind."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from llmsched.shared import telemetry

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "llmsched-dashboard.json"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]


def test_the_dashboard_only_uses_metric_names_llmsched_exports() -> None:
    exported = telemetry.exported_names()
    used = {
        name
        for expr in expressions(json.loads(DASHBOARD.read_text()))
        for name in re.findall(r"\bllmsched_[a-z_]+", expr)
    }
    assert used - exported == set(), f"not exported by any llmsched process: {sorted(used - exported)}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    titles = " | ".join(p["title"].lower() for p in panels(json.loads(DASHBOARD.read_text())))
    for topic in (
        "decisions/s by result",
        "decision latency",
        "share per member",
        "scores",
        "scrape errors",
        "staleness",
        "big-ip poll errors",
        "queue depth",
        "scoring latency",
        "config reloads",
    ):
        assert topic in titles, topic


def test_the_scrape_config_has_a_job_for_every_kind_of_process() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"llmsched-api", "llmsched-poller", "llmsched-scraper", "llmsched-scorer"}
    ports = {
        name: {t.rsplit(":", 1)[1] for sc in job["static_configs"] for t in sc["targets"]} for name, job in jobs.items()
    }
    assert ports["llmsched-poller"] == {"9101"} and ports["llmsched-scraper"] == {"9102"}
    assert ports["llmsched-scorer"] == {"9103"} and "8080" in ports["llmsched-api"]
