"""deploy/prometheus and deploy/grafana: YAML and JSON parse, every PromQL expression parses (promql-parser,
the Rust PromQL parser), and every metric they use is one the workers export. With `promtool` on PATH (Debian's
prometheus package), the rules also go through `promtool check rules`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
METRIC = re.compile(r"\b(newsflow_[a-z_]+)\b")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((GRAFANA / "dashboards" / "newsflow.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _exported_names() -> set[str]:
    """Metric names as declared in the code (prometheus_client adds _total/_bucket/... itself)."""
    names: set[str] = set()
    for path in (ROOT / "shared").rglob("*.py"):
        names.update(re.findall(r"[\"'](newsflow_[a-z_]+)[\"']", path.read_text()))
    return names


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_alert_rules_are_complete_and_parse():
    rules = _rules()
    names = {r["alert"] for r in rules}
    # the list: lag growing, DLQ growing, no consumers, high error rate
    assert {"NewsflowLagGrowing", "NewsflowDeadLettersGrowing", "NewsflowNoConsumers", "NewsflowHighErrorRate"} <= names
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_dashboard_is_valid_and_its_queries_parse():
    dash = json.loads((GRAFANA / "dashboards" / "newsflow.json").read_text())
    assert dash["uid"] and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for expr in _dashboard_exprs():
        promql_parser.parse(expr)
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    assert all(p["datasource"]["uid"] in uids for p in dash["panels"])


def test_every_metric_used_is_exported_by_the_workers():
    exported = {_base(n) for n in _exported_names()}
    used = {_base(m) for expr in [r["expr"] for r in _rules()] + _dashboard_exprs() for m in METRIC.findall(expr)}
    assert used, "no newsflow metrics used?"
    missing = sorted(used - exported)
    assert not missing, f"used in deploy/ but not exported by shared/: {missing}"


def test_scrape_config_points_at_the_rules_and_the_stages():
    conf = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert conf["rule_files"] == ["alerts.yml"]
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    names = jobs["newsflow"]["dns_sd_configs"][0]["names"]
    assert set(names) == {"fetcher", "cleaner", "classifier", "storage"}


def test_kubernetes_scrape_config_keeps_only_annotated_pods():
    conf = yaml.safe_load((PROM / "prometheus-kubernetes.yml").read_text())
    job = conf["scrape_configs"][0]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep and keep[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_checks_the_rules_and_the_compose_config():
    for args in (["check", "rules", str(PROM / "alerts.yml")], ["check", "config", str(PROM / "prometheus.yml")]):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
