"""The Prometheus rules, example config and Grafana dashboards are valid and use only the contract.

promtool checks and unit-tests the rules; the rest reads the files: every dashboard panel has a
query, every series name a query or rule uses is one replyclock exports (or a recording rule),
and the variables, datasource and provisioning agree with each other.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from typing import Any

import pytest
import yaml

from .contract import (
    DASHBOARDS_DIR,
    DATASOURCE_UID,
    DATASOURCE_VARIABLE,
    GRAFANA_BUILTINS,
    PROMETHEUS_CONFIG,
    PROVISIONING_DIR,
    REPO,
    RULES_FILE,
    RULES_TEST_FILE,
    alerting_rules,
    dashboard_files,
    dashboard_name,
    exported_series_names,
    is_row,
    iter_panels,
    load_dashboard,
    metric_names,
    panel_queries,
    parse_label_values,
    query_variables,
    recording_rules,
    variable_query,
    variables_used,
)

DASHBOARDS = {dashboard_name(path): path for path in dashboard_files()}
GRAFANA_MOUNT = "/var/lib/grafana/dashboards"  # where the compose file mounts grafana/dashboards
SEVERITIES = {"warning", "critical"}


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool from the repository root and return its result (never raises on failure)."""
    return subprocess.run(
        [promtool, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def assert_promtool_ok(result: subprocess.CompletedProcess[str]) -> None:
    """Fail with promtool's own report unless it exited with 0."""
    report = f"{' '.join(result.args)} exited with {result.returncode}:\n"
    assert result.returncode == 0, report + result.stdout + result.stderr


def rule_tests() -> dict[str, Any]:
    """The parsed promtool unit-test file."""
    return dict(yaml.safe_load(RULES_TEST_FILE.read_text(encoding="utf-8")))


# -- promtool ---------------------------------------------------------------------------------


@pytest.mark.prometheus
def test_promtool_accepts_the_rules(promtool: str) -> None:
    """`promtool check rules` finds the rules file valid (syntax, PromQL, templates)."""
    assert_promtool_ok(run_promtool(promtool, "check", "rules", str(RULES_FILE)))


@pytest.mark.prometheus
def test_rule_unit_tests_pass(promtool: str) -> None:
    """`promtool test rules` passes every alert and recording-rule test case."""
    assert_promtool_ok(run_promtool(promtool, "test", "rules", str(RULES_TEST_FILE)))


@pytest.mark.prometheus
def test_promtool_accepts_the_example_config(promtool: str) -> None:
    """`promtool check config` accepts deploy/prometheus/prometheus.yml and the rules it loads."""
    assert_promtool_ok(run_promtool(promtool, "check", "config", str(PROMETHEUS_CONFIG)))


# -- rules ------------------------------------------------------------------------------------


def test_every_alert_has_severity_and_annotations() -> None:
    """Each alert carries a severity of warning or critical and a summary and description."""
    problems = []
    for rule in alerting_rules():
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{rule['alert']}: severity must be one of {sorted(SEVERITIES)}")
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key, "").strip():
                problems.append(f"{rule['alert']}: no {key} annotation")
    assert problems == []


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """The promtool tests check every alert at a time it fires and at a time it does not."""
    firing: set[str] = set()
    silent: set[str] = set()
    for group in rule_tests()["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in alerting_rules()}
    assert {"untested firing": alerts - firing, "untested silent": alerts - silent} == {
        "untested firing": set(),
        "untested silent": set(),
    }


def test_every_recording_rule_has_exact_expected_values() -> None:
    """The promtool tests query every recorded series and expect exact samples for it."""
    tested = set()
    for group in rule_tests()["tests"]:
        for case in group.get("promql_expr_test", []):
            if case.get("exp_samples"):
                tested |= metric_names(case["expr"])
    assert {rule["record"] for rule in recording_rules()} - tested == set()


def test_recording_rule_names_follow_level_metric_operations() -> None:
    """Recorded series are named replyclock:<metric>:<operations> in snake case."""
    names = [rule["record"] for rule in recording_rules()]
    pattern = r"replyclock:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*"
    assert [name for name in names if not re.fullmatch(pattern, name)] == []
    assert len(names) == len(set(names))


def test_rules_use_only_contract_metrics() -> None:
    """Every series a rule reads is a contract metric or a rule recorded in the same file."""
    allowed = exported_series_names() | {rule["record"] for rule in recording_rules()}
    unknown = {
        rule.get("record") or rule["alert"]: sorted(metric_names(rule["expr"]) - allowed)
        for rule in recording_rules() + alerting_rules()
    }
    assert {name: names for name, names in unknown.items() if names} == {}


# -- dashboards -------------------------------------------------------------------------------


def test_dashboard_files_exist() -> None:
    """Both dashboards, the wall screen and the support leads' one, are provisioned."""
    assert set(DASHBOARDS) >= {"wallscreen", "leads"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_settings(name: str) -> None:
    """A dashboard is current-schema JSON with a fixed uid, dark style and a refresh interval."""
    dashboard = load_dashboard(DASHBOARDS[name])
    assert dashboard["uid"] == f"replyclock-{name}"
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["style"] == "dark"
    assert dashboard["refresh"]
    assert dashboard["id"] is None  # Grafana assigns ids; a fixed one clashes across instances


def test_wallscreen_refreshes_every_30s_over_the_last_24h() -> None:
    """The wall screen auto-refreshes every 30 s and shows the last 24 hours."""
    dashboard = load_dashboard(DASHBOARDS["wallscreen"])
    assert (dashboard["refresh"], dashboard["time"]) == ("30s", {"from": "now-24h", "to": "now"})


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_query(name: str) -> None:
    """Every panel but a row has at least one target with a PromQL expression."""
    empty = [
        panel.get("title")
        for panel in iter_panels(load_dashboard(DASHBOARDS[name]))
        if not is_row(panel) and not any(t.get("expr") for t in panel.get("targets", []))
    ]
    assert empty == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    """Panel ids are unique and no two panels share a grid cell of the 24-column layout."""
    panels = list(iter_panels(load_dashboard(DASHBOARDS[name])))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    overlaps = []
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                if (x, y) in taken:
                    overlaps.append((taken[x, y], panel["title"]))
                taken[x, y] = panel["title"]
    assert sorted(set(overlaps)) == []


def test_dashboards_use_only_contract_metrics() -> None:
    """Every series a panel or a variable query selects is exported or recorded by the rules."""
    allowed = exported_series_names() | {rule["record"] for rule in recording_rules()}
    unknown = {query.id: sorted(metric_names(query.expr) - allowed) for query in panel_queries()}
    for name, path in DASHBOARDS.items():
        for variable in query_variables(load_dashboard(path)):
            selector, _ = parse_label_values(variable_query(variable))
            used = metric_names(selector) if selector else set()
            unknown[f"{name}/${variable['name']}"] = sorted(used - allowed)
    assert {where: names for where, names in unknown.items() if names} == {}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_variables(name: str) -> None:
    """Source and policy are multi-select label_values variables with All, and every variable a
    query uses is defined."""
    dashboard = load_dashboard(DASHBOARDS[name])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables[DATASOURCE_VARIABLE]["type"] == "datasource"
    assert variables[DATASOURCE_VARIABLE]["query"] == "prometheus"
    for label in ("source", "policy"):
        variable = variables[label]
        assert (variable["type"], variable["multi"], variable["includeAll"]) == (
            "query",
            True,
            True,
        )
        assert variable["allValue"] == ".*"
        selector, query_label = parse_label_values(variable_query(variable))
        # Grafana runs query.query; its variable editor shows the structured fields instead.
        structured = (variable["query"]["label"], variable["query"]["metric"])
        assert (query_label, variable["definition"]) == (label, variable_query(variable))
        assert selector is not None
        assert structured == (label, selector.split("{")[0])
    used: set[str] = set()
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            used |= variables_used(target.get("expr", ""))
    for variable in query_variables(dashboard):
        used |= variables_used(variable_query(variable))
    assert used - set(variables) - set(GRAFANA_BUILTINS) == set()


def _datasources(dashboard: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for panel in iter_panels(dashboard):
        if not is_row(panel):
            yield panel.get("title", "?"), panel.get("datasource")
            for target in panel.get("targets", []):
                yield f"{panel.get('title')}/{target.get('refId')}", target.get("datasource")
    for variable in query_variables(dashboard):
        yield f"${variable['name']}", variable.get("datasource")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_uses_the_datasource_variable(name: str) -> None:
    """Panels, targets and variables all query ${DS_PROMETHEUS}, which defaults to the
    provisioned datasource's uid."""
    dashboard = load_dashboard(DASHBOARDS[name])
    expected = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
    wrong = {where: ds for where, ds in _datasources(dashboard) if ds != expected}
    assert wrong == {}
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == DATASOURCE_UID


def test_provisioning_matches_the_compose_mounts() -> None:
    """The datasource is Prometheus at http://prometheus:9090 with uid "prometheus", and the
    dashboard provider reads the folder the compose file mounts the dashboards at."""
    datasources = yaml.safe_load(
        (PROVISIONING_DIR / "datasources" / "prometheus.yaml").read_text(encoding="utf-8")
    )["datasources"]
    assert [(d["type"], d["uid"], d["url"]) for d in datasources] == [
        ("prometheus", DATASOURCE_UID, "http://prometheus:9090")
    ]
    providers = yaml.safe_load(
        (PROVISIONING_DIR / "dashboards" / "replyclock.yaml").read_text(encoding="utf-8")
    )["providers"]
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", GRAFANA_MOUNT)]
    assert DASHBOARDS_DIR.name == GRAFANA_MOUNT.rsplit("/", 1)[1]


# -- the PromQL reader the checks above rely on -----------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        pytest.param('sum(a{state="ok"})', {"a"}, id="selector"),
        pytest.param(
            'histogram_quantile(0.9, sum by (policy, le) (rate(a_bucket{x=~"$s"}[$__range])))',
            {"a_bucket"},
            id="quantile",
        ),
        pytest.param(
            "a > on (policy) group_left () max by (policy) (b{target=\"first_response\"})",
            {"a", "b"},
            id="group-left",
        ),
        pytest.param("count(a == 0) or vector(0)", {"a"}, id="or-vector"),
        pytest.param("(time() - a > 15 * 60 and a > 0) or a == 0", {"a"}, id="time-and-or"),
        pytest.param("sum(rate(x[5m] offset 1d)) by (le) / 1e9", {"x"}, id="offset-exponent"),
        pytest.param('replyclock:replies:rate1h{a="}"}', {"replyclock:replies:rate1h"}, id="colon"),
    ],
)  # fmt: skip
def test_metric_names_reads_series_names(expr: str, names: set[str]) -> None:
    """The PromQL reader returns the selected series and skips functions, labels and keywords."""
    assert metric_names(expr) == names
