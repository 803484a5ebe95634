"""deploy/prometheus/alerts.yml and deploy/grafana/cdcsync-dashboard.json use only metrics and labels
the code defines (read from the metric constructors in the source, wherever they are)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.consistency import (ROOT, metric_definitions, promql_grouping_labels, promql_metric_names,
    promql_selector_labels, series_index)

ALERTS = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
RULES = [rule for group in ALERTS["groups"] for rule in group["rules"]]
DASHBOARD = json.loads((ROOT / "deploy" / "grafana" / "cdcsync-dashboard.json").read_text())

DEFINITIONS = metric_definitions()
SERIES = series_index(DEFINITIONS)
# Prometheus' own series, and the labels a scrape adds (`component` is set by our scrape configs).
BUILTIN = {"up"}
TARGET_LABELS = {"job", "instance", "component"}


def labels_of(series: str) -> set[str]:
    if series in BUILTIN:
        return set()
    definition = SERIES[series]
    return set(definition.labels) | ({"le"} if series.endswith("_bucket") else set())


def check_expr(expr: str, where: str) -> set[str]:
    names = promql_metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - set(SERIES) - BUILTIN
    assert not unknown, f"{where}: {sorted(unknown)} is not a metric the code defines"
    available = TARGET_LABELS | {label for n in names for label in labels_of(n)}
    for name, labels in promql_selector_labels(expr).items():
        assert labels <= labels_of(name) | TARGET_LABELS, f"{where}: {name} has no label {labels - labels_of(name)}"
    grouping = promql_grouping_labels(expr)
    assert grouping <= available, f"{where}: groups by unknown labels {sorted(grouping - available)}"
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    found = []
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r}", target["expr"]))
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r["alert"] for r in RULES])
def test_alert_rule_uses_defined_metrics_and_labels(rule) -> None:
    check_expr(rule["expr"], f"alert {rule['alert']}")
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    # An annotation can only show labels the alert's series keep.
    kept = promql_grouping_labels(rule["expr"]) | {label for ls in promql_selector_labels(rule["expr"]).values()
                                                   for label in ls} | {"instance", "job"}
    for text in rule["annotations"].values():
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in kept, f"alert {rule['alert']}: annotation shows {label}, which its expression drops"


def test_alerts_cover_what_an_operator_must_be_woken_for() -> None:
    by_metric: dict[str, list[str]] = {}
    for rule in RULES:
        for name in promql_metric_names(rule["expr"]):
            by_metric.setdefault(name, []).append(rule["alert"])
    assert any('component="producer"' in r["expr"] and "up" in promql_metric_names(r["expr"]) for r in RULES), \
        "no alert for a producer down"
    for metric, what in [("cdcsync_producer_lag_seconds", "producer lag"),
                         ("cdcsync_sink_consumer_lag_messages", "sink lag"),
                         ("cdcsync_sink_dead_letters_total", "a growing DLQ"),
                         ("cdcsync_conflicts_total", "a conflict-rate spike"),
                         ("cdcsync_producer_checkpoint_timestamp_seconds", "a stalled checkpoint"),
                         ("cdcsync_sink_waiting_for_schema", "a table waiting for its schema"),
                         ("cdcsync_sink_broker_unreachable_seconds", "a sink cut off from the broker")]:
        assert metric in by_metric, f"no alert for {what} ({metric})"


@pytest.mark.parametrize("where, expr", dashboard_exprs())
def test_dashboard_query_uses_defined_metrics_and_labels(where, expr) -> None:
    check_expr(expr, where)


def test_dashboard_shows_producers_sinks_and_conflicts() -> None:
    shown = {name for _, expr in dashboard_exprs() for name in promql_metric_names(expr)}
    for metric in ("cdcsync_producer_events_total", "cdcsync_producer_lag_seconds",
                   "cdcsync_producer_checkpoint_timestamp_seconds", "cdcsync_sink_events_applied_total",
                   "cdcsync_sink_consumer_lag_messages", "cdcsync_sink_dead_letters_total",
                   "cdcsync_sink_apply_seconds_bucket", "cdcsync_conflicts_total"):
        assert metric in shown, f"the dashboard does not show {metric}"


def test_dashboard_variables_and_layout_are_valid() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
            assert match and match.group(2) in labels_of(match.group(1))
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} is wider than the grid"
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
