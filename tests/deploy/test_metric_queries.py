"""Every metric the Grafana dashboard and the alert rules query is one the daemon exports.

The exported names come from the daemon's own registry (`create_metrics().registry`), and
the names are checked against a real exposition, so a renamed metric breaks this test
rather than a dashboard panel, silently, months later.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import DEPLOY
from totpd.metrics import Metrics, create_metrics

DASHBOARD = DEPLOY / "grafana" / "totpd.json"
RULES = DEPLOY / "prometheus" / "totpd-rules.yml"
PROMETHEUS_OWN = {"up"}  # written by Prometheus itself for every target

# The sample names each metric type produces in the exposition format.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def exported_names(metrics: Metrics) -> set[str]:
    """Every series name the registry can expose, labelled children or not."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's label_values()) selects."""
    if found := _LABEL_VALUES.match(expr):
        expr = found.group(1)
    stripped = _STRING.sub('""', expr)
    for pattern in (_MATCHERS, _RANGE, _GROUPING, _VARIABLE):
        stripped = pattern.sub(" ", stripped)
    return {name for name in _IDENTIFIER.findall(stripped) if name.lower() not in _KEYWORDS}


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def dashboard_queries() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and template variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [value for key, value in walk(dashboard) if key == "expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def rule_queries() -> list[str]:
    """Every `expr` in the alert rules file."""
    document = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """The names the daemon's registry exports, plus Prometheus's own `up`."""
    return exported_names(create_metrics()) | PROMETHEUS_OWN


def test_the_extractor_reads_what_a_query_selects() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, route) (rate(totpd_webhook_seconds_bucket{"
        'job=~"$job", route!="by (x)"}[$__rate_interval]))) > 1'
        " or time() - process_start_time_seconds offset 5m and on (instance) up == bool 1e3"
    )
    assert metric_names(expr) == {
        "totpd_webhook_seconds_bucket",
        "process_start_time_seconds",
        "up",
    }
    assert metric_names('label_values(totpd_build_info{job=~"$job"}, instance)') == {
        "totpd_build_info"
    }


def test_an_unknown_metric_in_a_query_is_caught(exported: set[str]) -> None:
    # The check below is only worth something if a typo would fail it.
    assert metric_names("sum(rate(totpd_call_total[5m]))") - exported == {"totpd_call_total"}


def test_every_dashboard_query_names_an_exported_metric(exported: set[str]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    for query in queries:
        names = metric_names(query)
        assert names, f"no metric in {query!r}"
        assert names <= exported, f"{query!r} queries {sorted(names - exported)}"


def test_every_alert_rule_names_an_exported_metric(exported: set[str]) -> None:
    queries = rule_queries()
    assert len(queries) >= 6
    for query in queries:
        names = metric_names(query)
        assert names, f"no metric in {query!r}"
        assert names <= exported, f"{query!r} queries {sorted(names - exported)}"


def test_the_dashboard_shows_every_view_an_operator_needs() -> None:
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    for series in (
        "totpd_calls_total",  # calls by outcome
        "totpd_pin_failures_total",  # PIN failures by layer
        "totpd_lockouts_active",  # lockouts active
        "totpd_webhook_seconds_bucket",  # latency percentiles
        "totpd_webhook_rejected_total",  # rejections by reason
        "totpd_codes_read_total",  # codes read by account
        "totpd_build_info",  # build info
        "up",
    ):
        assert series in used, f"the dashboard does not show {series}"
    quantiles = [q for q in dashboard_queries() if "histogram_quantile" in q]
    assert {re.search(r"histogram_quantile\(([\d.]+)", q).group(1) for q in quantiles} == {  # type: ignore[union-attr]
        "0.5",
        "0.95",
        "0.99",
    }
    assert all(re.search(r"by \([^)]*\ble\b", q) for q in quantiles), "quantiles need `le`"


def test_the_registry_names_match_a_real_exposition() -> None:
    """Touch every labelled metric, scrape, and find each sample name among the exported."""
    metrics = create_metrics()
    metrics.calls.labels("done").inc()
    metrics.pin_failures.labels("pin").inc()
    metrics.lockouts_active.labels("global").set(1)
    metrics.webhook_seconds.labels("answer").observe(0.003)
    metrics.webhook_rejected.labels("bad_signature").inc()
    metrics.codes_read.labels("github").inc()
    metrics.calls_active.set(1)
    metrics.notifications.labels("code_read", "sent").inc()
    text = generate_latest(metrics.registry).decode()
    scraped = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    assert scraped <= exported_names(metrics)
    used = set().union(*(metric_names(q) for q in dashboard_queries() + rule_queries()))
    missing = {name for name in used - PROMETHEUS_OWN if name not in scraped}
    assert not missing, f"queried but absent from a real scrape: {sorted(missing)}"


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["uid"]
    assert dashboard["title"] == "totpd"
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
