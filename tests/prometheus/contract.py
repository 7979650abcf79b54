"""The metric contract the dashboards and rules rely on, and helpers to read them.

``METRICS`` is the list of series replyclock exports (name, type, labels, help). The rest reads
the Grafana dashboards, the Prometheus rules and their PromQL: every query of every panel,
the metric names an expression uses, and Grafana's template variables substituted the way
Grafana would before it sends a query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "replyclock.rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "replyclock.rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DATASOURCE_VARIABLE = "DS_PROMETHEUS"
DATASOURCE_UID = "prometheus"


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One exported metric family as the contract names it."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


METRICS: tuple[Metric, ...] = (
    Metric(
        name="replyclock_awaiting_reply",
        type="gauge",
        labels=("source", "policy", "state"),
        help="Conversations waiting for a reply now, by SLA state (ok, warning, breached).",
    ),
    Metric(
        name="replyclock_oldest_awaiting_reply_seconds",
        type="gauge",
        labels=("source", "policy"),
        help="Business seconds the longest-waiting customer has waited (0 when none waits).",
    ),
    Metric(
        name="replyclock_first_response_seconds",
        type="histogram",
        labels=("source", "policy"),
        help="First-response times in business seconds.",
    ),
    Metric(
        name="replyclock_next_response_seconds",
        type="histogram",
        labels=("source", "policy"),
        help="Times to answer a customer's follow-up, in business seconds.",
    ),
    Metric(
        name="replyclock_replies_total",
        type="counter",
        labels=("source", "policy", "target", "within_sla"),
        help="Replies that stopped a clock.",
    ),
    Metric(
        name="replyclock_sla_breaches_total",
        type="counter",
        labels=("source", "policy", "target"),
        help="Clocks that ran past their policy's target.",
    ),
    Metric(
        name="replyclock_closed_without_reply_total",
        type="counter",
        labels=("source", "policy", "target"),
        help="Clocks stopped because the customer's mail was archived or deleted unanswered.",
    ),
    Metric(
        name="replyclock_dismissed_total",
        type="counter",
        labels=("source", "policy", "target"),
        help="Clocks a person stopped as no reply needed (dismiss); not a reply, not a breach.",
    ),
    Metric(
        name="replyclock_policy_target_seconds",
        type="gauge",
        labels=("policy", "target"),
        help="Each policy's reply target in business seconds.",
    ),
    Metric(
        name="replyclock_source_up",
        type="gauge",
        labels=("source",),
        help="1 if the source's last poll succeeded, else 0.",
    ),
    Metric(
        name="replyclock_source_last_success_timestamp_seconds",
        type="gauge",
        labels=("source",),
        help="Unix time of the source's last successful poll (0 = never).",
    ),
    Metric(
        name="replyclock_poll_duration_seconds",
        type="gauge",
        labels=("source",),
        help="Duration of the source's last poll.",
    ),
    Metric(
        name="replyclock_alerts_sent_total",
        type="counter",
        labels=("channel", "kind"),
        help="Alerts delivered, by channel and kind.",
    ),
    Metric(
        name="replyclock_alert_delivery_failures_total",
        type="counter",
        labels=("channel",),
        help="Failed alert deliveries (retried from the outbox).",
    ),
    Metric(
        name="replyclock_scheduler_lag_seconds",
        type="gauge",
        labels=(),
        help="How late the most overdue poll is, in seconds (0 when all are on time).",
    ),
    Metric(
        name="replyclock_replies_missing",
        type="gauge",
        labels=("source",),
        help="1 while a mail source has customer mail this week and no team message at all.",
    ),
    Metric(
        name="replyclock_store_up",
        type="gauge",
        labels=(),
        help="1 if the store was read for the scrape and took the daemon's last write.",
    ),
    Metric(
        name="replyclock_build_info",
        type="gauge",
        labels=("version",),
        help="Always 1; the version label says which replyclock runs.",
    ),
)
# prometheus_client's process collector (Linux); the dashboards may use any of them.
PROCESS_METRICS = (
    "process_cpu_seconds_total",
    "process_max_fds",
    "process_open_fds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
)
# Series Prometheus writes itself for every scrape target.
SCRAPE_METRICS = ("up",)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
DEFAULT_BUCKETS = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200, 604800)

# Grafana's built-in variables and the values the query tests give them.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__range": "5m", "__interval": "15s"}


def exported_series_names() -> set[str]:
    """Every series name the contract lets a query use (histograms by their three series)."""
    names: set[str] = set(PROCESS_METRICS) | set(SCRAPE_METRICS)
    for metric in METRICS:
        if metric.type == "histogram":
            names.update(metric.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        else:
            names.add(metric.name)
    return names


# -- dashboards -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PanelQuery:
    """One query (target) of one dashboard panel."""

    dashboard: str
    panel_id: int
    title: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        """A readable test id: ``wallscreen/3-breaches-today/A``."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")
        return f"{self.dashboard}/{self.panel_id}-{slug}/{self.ref_id}"


def dashboard_files() -> list[Path]:
    """The dashboard JSON files Grafana provisions, sorted by name."""
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    """The parsed dashboard JSON."""
    return dict(json.loads(path.read_text(encoding="utf-8")))


def dashboard_name(path: Path) -> str:
    """``replyclock-wallscreen.json`` -> ``wallscreen``."""
    return path.stem.removeprefix("replyclock-")


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def is_row(panel: Mapping[str, Any]) -> bool:
    """Rows only group panels; they have no queries."""
    return panel.get("type") == "row"


def panel_queries() -> list[PanelQuery]:
    """Every PromQL expression of every panel of every dashboard."""
    queries = []
    for path in dashboard_files():
        for panel in iter_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append(
                        PanelQuery(
                            dashboard=dashboard_name(path),
                            panel_id=panel["id"],
                            title=panel.get("title", ""),
                            ref_id=target.get("refId", "?"),
                            expr=target["expr"],
                        )
                    )
    return queries


def query_variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's ``query`` template variables (source, policy)."""
    variables = dashboard.get("templating", {}).get("list", [])
    return [variable for variable in variables if variable.get("type") == "query"]


def variable_query(variable: Mapping[str, Any]) -> str:
    """The variable's query text (the query object of Grafana 10+, or a plain string)."""
    query = variable.get("query")
    if isinstance(query, Mapping):
        return str(query.get("query", ""))
    return str(query or variable.get("definition", ""))


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


def parse_label_values(query: str) -> tuple[str | None, str]:
    """``label_values(metric{...}, label)`` -> (selector or None, label); ValueError if not."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values(...) query: {query!r}")
    return match.group("selector"), match.group("label")


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def variables_used(text: str) -> set[str]:
    """Names of the Grafana variables ``$name`` / ``${name}`` / ``${name:fmt}`` in ``text``."""
    return {braced or bare for braced, bare in _VARIABLE.findall(text)}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables with ``values`` (builtins included); KeyError if one is
    missing, naming it."""
    merged = {**GRAFANA_BUILTINS, **values}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in merged:
            raise KeyError(f"no value for Grafana variable ${name} in: {text}")
        return merged[name]

    return _VARIABLE.sub(replace, text)


_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


def grafana_regex_escape(value: str) -> str:
    """Escape a variable value as Grafana does for a Prometheus ``=~`` matcher.

    Each regex metacharacter gets a backslash, itself escaped for the PromQL string:
    ``a.b`` becomes ``a\\\\.b`` in the query text.
    """
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


# -- rules ------------------------------------------------------------------------------------


def load_rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of the rules file, in file order."""
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def recording_rules() -> list[dict[str, Any]]:
    """The recording rules (``record:``)."""
    return [rule for rule in load_rules() if "record" in rule]


def alerting_rules() -> list[dict[str, Any]]:
    """The alerting rules (``alert:``)."""
    return [rule for rule in load_rules() if "alert" in rule]


# -- PromQL -----------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_TOKEN = re.compile(
    r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z]*)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?"
    r"|(?P<other>\S)"
)
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions and keywords excluded).

    A lexical reading, not a parser: strings, label matchers, range selectors and grouping
    label lists are dropped first, then every remaining identifier not followed by ``(`` is a
    series name. ``{__name__=...}`` selectors are not resolved.
    """
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name and not match.group("call") and name.lower() not in _KEYWORDS:
            names.add(name)
    return names
