"""deploy/k8s/components/monitoring: alert rules (promtool), the Grafana dashboard, the monitors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.deploy.support import (
    K8S,
    ROOT,
    mpr_workload,
    one,
    pod_spec,
    pod_template,
    render,
)

MONITORING = K8S / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "mpr-dashboard.json"
RULES_SCHEMA = Path(__file__).with_name("rules.schema.json")
# RabbitMQ's Prometheus plugin, /metrics/detailed (components/rabbitmq-cluster).
RABBITMQ = {
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_consumers",
}
ALERTS = {
    "MPRQueueGrowingWithoutConsumers",
    "MPROutboxLagging",
    "MPRJobFailureRateHigh",
    "MPRDeadLetterQueueGrowing",
}
_METRIC = re.compile(r"\b((?:mpr|rabbitmq)_[a-z0-9_]+)\b")
_DECLARED = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(mpr_[a-z0-9_]+)\"", re.S)
_SERIES = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}
_SERIES["Summary"] = ("", "_sum", "_count")


@cache
def rules_file() -> dict[str, Any]:
    """The PrometheusRule's spec: a plain Prometheus rules file."""
    return yaml.safe_load(RULES.read_text())["spec"]


@cache
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def series_names(metrics: dict[str, str]) -> set[str]:
    """Family name and type -> the series names prometheus-client exposes."""
    return {name + suffix for name, kind in metrics.items() for suffix in _SERIES[kind]}


@cache
def exported() -> set[str]:
    """Every mpr_* metric the services declare today (found in their source, wherever it is)."""
    declared: dict[str, str] = {}
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        for kind, name in _DECLARED.findall(path.read_text()):
            declared[name] = kind
    return series_names(declared)


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard target."""
    found = [(r["alert"], r["expr"]) for g in rules_file()["groups"] for r in g["rules"]]
    for panel in dashboard()["panels"]:
        found += [(panel["title"], t["expr"]) for t in panel.get("targets", ())]
    return found


# ---------------------------------------------------------------- alert rules


def test_rules_file_has_the_structure_of_a_prometheus_rules_file() -> None:
    schema = json.loads(RULES_SCHEMA.read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(rules_file()))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_alerts_cover_queues_outbox_failures_and_dead_letters() -> None:
    rules = {r["alert"]: r for g in rules_file()["groups"] for r in g["rules"]}
    assert set(rules) == ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_metric_used_is_exported_or_rabbitmqs() -> None:
    known = exported() | RABBITMQ
    assert exported(), "no mpr_* metric found in the services' source"
    for where, expr in expressions():
        unknown = set(_METRIC.findall(expr)) - known
        assert not unknown, f"{where}: unknown metrics {sorted(unknown)}"


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.skip(
            "promtool is not installed (Debian: apt-get install prometheus); the rules were "
            "checked against the rules-file schema only"
        )
    return found


def run_promtool(*argv: str, cwd: Path) -> None:
    result = subprocess.run(
        [promtool(), *argv], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules(tmp_path) -> None:
    (tmp_path / "mpr.rules.yml").write_text(yaml.safe_dump(rules_file()))
    run_promtool("check", "rules", "mpr.rules.yml", cwd=tmp_path)


def _alert_tests() -> dict[str, Any]:
    """promtool unit tests: each alert fires on the situation it is for, and not otherwise."""
    jobs_q = 'rabbitmq_detailed_queue_messages_ready{vhost="/",queue="mpr.transcoder.jobs"}'
    consumers = 'rabbitmq_detailed_queue_consumers{vhost="/",queue="mpr.transcoder.jobs"}'
    events_q = 'rabbitmq_detailed_queue_messages_ready{vhost="/",queue="mpr.gateway.events"}'
    events_c = 'rabbitmq_detailed_queue_consumers{vhost="/",queue="mpr.gateway.events"}'
    dlq = 'rabbitmq_detailed_queue_messages{vhost="/",queue="mpr.transcoder.jobs.dlq"}'
    jobs = 'mpr_transcoder_jobs_total{namespace="mpr",outcome="%s"}'
    return {
        "rule_files": ["mpr.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # Jobs pile up with no consumer; events pile up but are being consumed.
                    {"series": jobs_q, "values": "0+5x30"},
                    {"series": consumers, "values": "0x30"},
                    {"series": events_q, "values": "0+5x30"},
                    {"series": events_c, "values": "2x30"},
                    {"series": dlq, "values": "0x10 3x20"},
                    {
                        "series": 'mpr_gateway_outbox_lag_seconds{job="mpr-gateway"}',
                        "values": "0x5 120+60x25",
                    },
                    {"series": jobs % "completed", "values": "0+6x30"},
                    {"series": jobs % "failed", "values": "0+4x30"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "MPRQueueGrowingWithoutConsumers",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "vhost": "/",
                                    "queue": "mpr.transcoder.jobs",
                                }
                            }
                        ],
                    },
                    {
                        "eval_time": "3m",
                        "alertname": "MPRQueueGrowingWithoutConsumers",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "15m",
                        "alertname": "MPRDeadLetterQueueGrowing",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "vhost": "/",
                                    "queue": "mpr.transcoder.jobs.dlq",
                                }
                            }
                        ],
                    },
                    {"eval_time": "5m", "alertname": "MPRDeadLetterQueueGrowing", "exp_alerts": []},
                    {
                        "eval_time": "20m",
                        "alertname": "MPROutboxLagging",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "job": "mpr-gateway"}}
                        ],
                    },
                    {
                        "eval_time": "30m",
                        "alertname": "MPRJobFailureRateHigh",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "namespace": "mpr"}}],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": jobs % "completed", "values": "0+20x30"},
                    {"series": jobs % "failed", "values": "0+1x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "MPRJobFailureRateHigh", "exp_alerts": []},
                ],
            },
        ],
    }


def test_each_alert_fires_on_its_situation_and_only_then(tmp_path) -> None:
    # promtool compares annotations exactly; these tests are about when alerts fire.
    groups = [
        {**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
        for g in rules_file()["groups"]
    ]
    (tmp_path / "mpr.rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(_alert_tests()))
    run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)


# ---------------------------------------------------------------- the dashboard


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] == "mpr-overview" and board["title"]
    assert board["schemaVersion"] >= 36
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_queries_the_chosen_datasource() -> None:
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == datasource and target["expr"].strip(), panel["title"]


def test_panels_tile_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_dashboard_shows_what_operators_asked_for() -> None:
    used = {m for _, expr in expressions() for m in _METRIC.findall(expr)}
    wanted = {
        "queue depth": "rabbitmq_detailed_queue_messages_ready",
        "job rates by kind and preset": "mpr_gateway_jobs_finished_total",
        "job durations by kind and preset": "mpr_gateway_job_duration_seconds_bucket",
        "failure reasons": "mpr_gateway_job_failures_total",
        "FFmpeg speed": "mpr_transcoder_ffmpeg_speed_bucket",
        "outbox lag": "mpr_gateway_outbox_lag_seconds",
        "SSE clients": "mpr_notifier_sse_clients",
        "webhook results": "mpr_notifier_webhooks_failed_total",
    }
    missing = {topic for topic, metric in wanted.items() if metric not in used}
    assert not missing, f"no panel for {sorted(missing)}"


def test_the_dashboard_ships_as_a_configmap_grafana_loads() -> None:
    config = one(render("prod"), "ConfigMap", "mpr-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"][DASHBOARD.name]) == dashboard()


# ---------------------------------------------------------------- the monitors


def test_service_monitors_scrape_metrics_from_the_services_ports() -> None:
    docs = render("prod")
    for name in ("mpr-gateway", "mpr-catalog", "mpr-notifier"):
        monitor = one(docs, "ServiceMonitor", name)
        service = one(docs, "Service", name)
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items(), name
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports and endpoint["path"] == "/metrics", name


def test_pod_monitor_scrapes_every_transcoder_pod() -> None:
    docs = render("prod")
    monitor = one(docs, "PodMonitor", "mpr-transcoder")
    workload = mpr_workload(docs, "mpr-transcoder")
    labels = pod_template(workload)["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod_spec(workload)["containers"]
    ports = {p["name"] for p in container["ports"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
