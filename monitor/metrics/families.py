"""What replyclock exports: each family's name, type, help and labels, defined once for
prometheus-client's families (``collector``) and for the text written directly (``text``)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from monitor.model import ClockTotals
from monitor.sla.calendar import BusinessCalendar

STATES = ("ok", "warning", "breached")
TARGETS = ("first_response", "next_response")
INF = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyInfo:
    """What the metrics need to know of a policy."""

    name: str
    calendar: BusinessCalendar  # to turn the oldest wait into business seconds at scrape time
    targets: Mapping[str, int]  # first_response / next_response -> business seconds
    buckets: Sequence[int]  # histogram upper bounds in seconds


@dataclass(frozen=True, slots=True)
class Family:
    """A family's name, type, help and labels: one definition for both ways of writing it."""

    name: str
    kind: str  # gauge, counter or histogram
    help: str
    labels: tuple[str, ...] = ()

    def empty(self) -> Metric:
        """The family with no samples, for ``describe``."""
        if self.kind == "counter":
            return self.counter()
        return self.histogram() if self.kind == "histogram" else self.gauge()

    def gauge(self) -> GaugeMetricFamily:
        """An empty prometheus-client gauge family of this name."""
        return GaugeMetricFamily(self.name, self.help, labels=list(self.labels))

    def counter(self) -> CounterMetricFamily:
        """An empty prometheus-client counter family of this name."""
        return CounterMetricFamily(self.name, self.help, labels=list(self.labels))

    def histogram(self, labels: Sequence[str] | None = None) -> HistogramMetricFamily:
        """An empty prometheus-client histogram family of this name (``labels`` instead of
        the usual ones, for the per-policy histograms)."""
        names = list(self.labels if labels is None else labels)
        return HistogramMetricFamily(self.name, self.help, labels=names)

    def header(self, openmetrics: bool) -> str:
        """The HELP and TYPE lines, as prometheus-client writes them in either format."""
        return header_lines(self.name, self.kind, self.help, openmetrics)


AWAITING = Family(
    "replyclock_awaiting_reply",
    "gauge",
    "Conversations waiting for a reply now, by SLA state (ok, warning, breached).",
    ("source", "policy", "state"),
)
OLDEST = Family(
    "replyclock_oldest_awaiting_reply_seconds",
    "gauge",
    "Business seconds the longest-waiting customer has waited (0 when none waits).",
    ("source", "policy"),
)
POLICY_TARGET = Family(
    "replyclock_policy_target_seconds",
    "gauge",
    "Each policy's reply target in business seconds.",
    ("policy", "target"),
)
REPLIES = Family(
    "replyclock_replies",
    "counter",
    "Replies that stopped a reply clock, by target and whether they met it.",
    ("source", "policy", "target", "within_sla"),
)
BREACHES = Family(
    "replyclock_sla_breaches",
    "counter",
    "Reply clocks whose business time exceeded the target.",
    ("source", "policy", "target"),
)
CLOSED = Family(
    "replyclock_closed_without_reply",
    "counter",
    "Reply clocks stopped because the customer's mail left the watched folders unanswered "
    "(archived or deleted); not a breach.",
    ("source", "policy", "target"),
)
DISMISSED = Family(
    "replyclock_dismissed",
    "counter",
    "Reply clocks stopped because a person said no reply is needed (`replyclock dismiss` or "
    "Slack's button); neither a reply nor, by itself, a breach.",
    ("source", "policy", "target"),
)
RESPONSE_TIMES = {
    target: Family(
        f"replyclock_{target}_seconds",
        "histogram",
        f"{target.replace('_', ' ').capitalize()} times in business seconds.",
        ("source", "policy"),
    )
    for target in TARGETS
}
SOURCE_UP = Family(
    "replyclock_source_up", "gauge", "1 if the source's last poll succeeded.", ("source",)
)
LAST_SUCCESS = Family(
    "replyclock_source_last_success_timestamp_seconds",
    "gauge",
    "When the source was last read successfully (Unix seconds; 0 if never).",
    ("source",),
)
POLL_DURATION = Family(
    "replyclock_poll_duration_seconds",
    "gauge",
    "How long the source's last poll took.",
    ("source",),
)
ALERTS_SENT = Family(
    "replyclock_alerts_sent",
    "counter",
    "Alerts delivered, by channel and kind (warning, breach, escalation, answered, digest).",
    ("channel", "kind"),
)
DELIVERY_FAILURES = Family(
    "replyclock_alert_delivery_failures",
    "counter",
    "Alert deliveries that failed for good (bad channel, bad token, ...).",
    ("channel",),
)
STORE_UP = Family(
    "replyclock_store_up",
    "gauge",
    "1 if the store could be read for this scrape and took the daemon's last write.",
)
SCHEDULER_LAG = Family(
    "replyclock_scheduler_lag_seconds",
    "gauge",
    "How late the most overdue poll is: seconds past its due time that a source's poll has "
    "not started (0 when every source is polled on time).",
)
EVALUATION_LAG = Family(
    "replyclock_evaluation_lag_seconds",
    "gauge",
    "How long stored mail has waited to be evaluated: the oldest waiting request, or the "
    "running evaluation so far (0 when evaluation keeps up).",
)
REPLIES_MISSING = Family(
    "replyclock_replies_missing",
    "gauge",
    "1 while a mail source has customer mail from the last 7 days and no team message at "
    "all: the team's replies are saved where replyclock does not read them (see `replyclock "
    "check --connect`).",
    ("source",),
)
BUILD_INFO = Family(
    "replyclock_build_info", "gauge", "replyclock's version; always 1", ("version",)
)


def cumulative(
    bounds: Sequence[int], totals: ClockTotals | None
) -> tuple[list[tuple[str, float]], int]:
    """A histogram's cumulative buckets (the policy's bounds, plus any the store still counts
    under) and its sum."""
    per_bucket = dict(totals.buckets) if totals is not None else {}
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound in sorted(set(bounds) | {b for b in per_bucket if b != INF}):
        cumulative += per_bucket.get(bound, 0)
        buckets.append((le_label(bound), cumulative))
    cumulative += per_bucket.get(INF, 0)
    buckets.append(("+Inf", cumulative))
    return buckets, totals.response_sum if totals is not None else 0


@functools.lru_cache(maxsize=256)  # a few dozen families, written at every scrape
def header_lines(name: str, kind: str, text: str, openmetrics: bool) -> str:
    """A family's HELP and TYPE lines in the text format (a counter named with ``_total``)
    or in OpenMetrics (help text escaped like a label value)."""
    if openmetrics:
        return f"# HELP {name} {escape(text)}\n# TYPE {name} {kind}\n"
    shown = f"{name}_total" if kind == "counter" else name
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n"


def number(value: float) -> str:
    """A sample value as prometheus-client writes it (Go's float formatting)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def le_label(bound: int) -> str:
    """A bucket's upper bound as its ``le`` label."""
    return f"{float(bound)}"


def escape(value: str) -> str:
    """A label value (or OpenMetrics help text) escaped as the exposition formats want."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def write_metric(parts: list[str], metric: Metric, openmetrics: bool) -> None:
    """A small family built for prometheus-client, written as its exposition would."""
    parts.append(header_lines(metric.name, metric.type, metric.documentation, openmetrics))
    for sample in metric.samples:
        labels = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(sample.labels.items()))
        braced = f"{{{labels}}}" if labels else ""
        parts.append(f"{sample.name}{braced} {number(sample.value)}\n")


FAMILIES = (
    AWAITING,
    OLDEST,
    POLICY_TARGET,
    REPLIES,
    BREACHES,
    CLOSED,
    DISMISSED,
    *RESPONSE_TIMES.values(),
    SOURCE_UP,
    LAST_SUCCESS,
    POLL_DURATION,
    ALERTS_SENT,
    DELIVERY_FAILURES,
    STORE_UP,
    SCHEDULER_LAG,
    EVALUATION_LAG,
    REPLIES_MISSING,
    BUILD_INFO,
)  # in the order a scrape writes them
