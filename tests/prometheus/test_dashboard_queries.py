"""Every dashboard query and rule runs on a real Prometheus scraping an exporter, and has data.

A real Prometheus (``PrometheusServer``, 1 s scrapes, the rules file loaded) scrapes the
exporter under test, the ``exporter_url`` fixture. It runs every test once per fixture named
in ``EXPORTERS``, each of which must give an object with a ``url`` (``http://host:port/metrics``):
the fake exporter of ``fake_exporter.py``, and the real replyclock daemon reading the test
Dovecot (``real_exporter.py``). Each panel query runs twice, the way Grafana sends it: with every
template variable at "All" (``.*``) and with the first source and policy selected.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator

import pytest
from servers.dovecot import DovecotServer
from servers.prometheus import PrometheusServer

from .contract import (
    METRICS,
    RULES_FILE,
    PanelQuery,
    alerting_rules,
    dashboard_files,
    grafana_regex_escape,
    load_dashboard,
    panel_queries,
    parse_label_values,
    query_variables,
    recording_rules,
    substitute,
    variable_query,
)
from .fake_exporter import FakeExporter
from .real_exporter import RealExporter, start_real_exporter, stop_real_exporter

pytestmark = pytest.mark.prometheus

# Fixtures giving an exporter (an object with .url) for every test here to run against.
EXPORTERS = ["fake_exporter", "replyclock_exporter"]
SCRAPES = 3
# Prometheus 2.42 applies new scrape targets up to 5 s after start; 3 scrapes follow in ~3 s.
SCRAPE_DEADLINE = 30.0
ALL = ".*"
TARGET_LABELS = {"job", "instance"}


@pytest.fixture(scope="module")
def fake_exporter() -> Iterator[FakeExporter]:
    """The fake replyclock exporter, serving on a free loopback port for this module."""
    with FakeExporter() as exporter:
        yield exporter


@pytest.fixture(scope="module")
def replyclock_exporter(dovecot: DovecotServer) -> Iterator[RealExporter]:
    """The real replyclock daemon reading the test Dovecot, serving its metrics."""
    exporter = start_real_exporter(dovecot)
    try:
        yield exporter
    finally:
        stop_real_exporter(exporter)


@pytest.fixture(scope="module", params=EXPORTERS)
def exporter_url(request: pytest.FixtureRequest) -> str:
    """The metrics URL of the exporter under test, one of ``EXPORTERS`` in turn."""
    return str(request.getfixturevalue(request.param).url)


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, exporter_url: str) -> Iterator[PrometheusServer]:
    """A Prometheus with the replyclock rules that has scraped the exporter a few times and
    evaluated every recording rule since."""
    url = urllib.parse.urlsplit(exporter_url)
    server = PrometheusServer(
        url.netloc,
        metrics_path=url.path or "/metrics",
        rule_files=[RULES_FILE],
        binary=prometheus_binary,
    )
    try:
        server.start()
        deadline = time.monotonic() + SCRAPE_DEADLINE
        server.wait_for_scrapes(SCRAPES, deadline)
        for rule in recording_rules():
            server.wait_for_result(rule["record"], deadline)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def first_values(prometheus: PrometheusServer) -> dict[str, str]:
    """The first value of each template variable, found with the variable's own query."""
    dashboard = load_dashboard(dashboard_files()[0])
    values = {"source": ALL, "policy": ALL}
    for variable in query_variables(dashboard):  # in order: policy's query uses $source
        selector, label = parse_label_values(variable_query(variable))
        match = substitute(selector, values) if selector else None
        found = sorted(prometheus.label_values(label, match))
        assert found, f"${variable['name']} has no values: {variable_query(variable)}"
        values[variable["name"]] = grafana_regex_escape(found[0])
    return values


def test_prometheus_scrapes_the_exporter(prometheus: PrometheusServer) -> None:
    """The exporter's only target is healthy: Prometheus parsed its exposition without error."""
    targets = prometheus.targets()
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]


def test_exporter_exposes_every_contract_metric_with_its_labels(
    prometheus: PrometheusServer,
) -> None:
    """Each contract metric is exported, with exactly the contract's labels."""
    problems = {}
    for metric in METRICS:
        series = metric.name + ("_bucket" if metric.type == "histogram" else "")
        result = prometheus.query(series)
        extra = {"le"} if metric.type == "histogram" else set()
        labels = {
            frozenset(set(sample["metric"]) - {"__name__"} - TARGET_LABELS - extra)
            for sample in result
        }
        if labels != {frozenset(metric.labels)}:
            problems[metric.name] = sorted(sorted(found) for found in labels) or "missing"
    assert problems == {}


def test_every_source_and_policy_exports_all_three_states(prometheus: PrometheusServer) -> None:
    """Each source x policy pair has an ok, a warning and a breached series, even at 0."""
    result = prometheus.query("count by (source, policy) (replyclock_awaiting_reply)")
    counts = {(s["metric"]["source"], s["metric"]["policy"]): s["value"][1] for s in result}
    assert counts
    assert {pair: n for pair, n in counts.items() if n != "3"} == {}


@pytest.mark.parametrize("mode", ["all", "first"], ids=["all-selected", "first-source-and-policy"])
@pytest.mark.parametrize("query", panel_queries(), ids=lambda query: query.id)
def test_panel_query_returns_data(
    prometheus: PrometheusServer, first_values: dict[str, str], query: PanelQuery, mode: str
) -> None:
    """The panel's query, its variables filled in as Grafana does, runs and returns samples."""
    values = {"source": ALL, "policy": ALL} if mode == "all" else first_values
    expr = substitute(query.expr, values)
    assert prometheus.query(expr), f"no data for {query.id}:\n{expr}"


@pytest.mark.parametrize("rule", recording_rules(), ids=lambda rule: rule["record"])
def test_recording_rule_expression_returns_data(
    prometheus: PrometheusServer, rule: dict[str, str]
) -> None:
    """The recording rule's expression runs without error and yields samples."""
    assert prometheus.query(rule["expr"]), f"no data for {rule['record']}:\n{rule['expr']}"


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_expression_runs(prometheus: PrometheusServer, rule: dict[str, str]) -> None:
    """The alert's expression runs without error on real data (it need not fire)."""
    prometheus.query(rule["expr"])
