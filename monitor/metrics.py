"""Prometheus metrics, computed at scrape time from the store's persisted state.

A custom collector builds fresh metric families on every scrape (the client_python pattern):
gauges from the current conversations, counters and histograms from the running totals the
engine keeps with the clock history, so a restart neither resets them nor counts twice. Every
series the config knows of (each source x policy x state) is exported, at 0 when quiet, so
panels never say "No data" on a quiet morning. No label carries an address, a subject or a
conversation id: labels are source, policy, state, target, within_sla, channel and kind.

Sample exposition::

    replyclock_awaiting_reply{source="support",policy="vip",state="warning"} 2.0
    replyclock_oldest_awaiting_reply_seconds{source="support",policy="vip"} 2700.0
    replyclock_sla_breaches_total{source="support",policy="vip",target="first_response"} 3.0
    replyclock_dismissed_total{source="support",policy="vip",target="first_response"} 1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.errors import StoreError
from monitor.model import ClockTotals, MetricsSnapshot, ServiceStatus
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


class ReplyclockCollector(Collector):
    """Builds every replyclock_* family from one store snapshot per scrape."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], MetricsSnapshot],
        sources: Sequence[str],
        policies: Sequence[PolicyInfo],
        channels: Sequence[str] = (),
        clock: Callable[[], datetime],
        service: Callable[[], ServiceStatus] = ServiceStatus,
    ) -> None:
        self.snapshot = snapshot
        self.sources = list(sources)
        self.policies = {policy.name: policy for policy in policies}
        self.channels = list(channels)
        self.clock = clock
        self.service = service

    def describe(self) -> Iterator[Metric]:
        """No families up front: the registry must not call ``collect`` at registration."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families for this scrape. A store that cannot be read leaves out the series
        read from it, and says so in ``replyclock_store_up``, rather than failing the scrape."""
        try:
            data: MetricsSnapshot | None = self.snapshot()
        except StoreError:
            data = None
        status = self.service()
        if data is not None:
            now = self.clock()
            pairs = self._pairs(data)
            yield from self._gauges(data, pairs, now)
            yield from self._counters(data, pairs)
            yield from self._histograms(data, pairs)
            yield from self._sources(data)
            yield from self._alerts(data)
        store_up = GaugeMetricFamily(
            "replyclock_store_up",
            "1 if the store could be read for this scrape and took the daemon's last write.",
        )
        store_up.add_metric([], 1 if data is not None and status.store_ok else 0)
        yield store_up
        lag = GaugeMetricFamily(
            "replyclock_scheduler_lag_seconds",
            "How late the most overdue poll is: seconds past its due time that a source's poll "
            "has not started (0 when every source is polled on time).",
        )
        lag.add_metric([], status.scheduler_lag_seconds)
        yield lag
        missing = GaugeMetricFamily(
            "replyclock_replies_missing",
            "1 while a mail source has customer mail from the last 7 days and no team message "
            "at all: the team's replies are saved where replyclock does not read them (see "
            "`replyclock check --connect`).",
            labels=["source"],
        )
        for source, flag in status.replies_missing:
            missing.add_metric([source], 1 if flag else 0)
        yield missing
        info = GaugeMetricFamily(
            "replyclock_build_info", "replyclock's version; always 1", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

    def _pairs(self, data: MetricsSnapshot) -> list[tuple[str, str]]:
        """Every (source, policy) to export: configured ones, plus any the store still holds."""
        found = {(s, p) for s in self.sources for p in self.policies}
        found |= {(s, p) for s, p, _, _ in data.awaiting}
        found |= {(t.source, t.policy) for t in data.totals}
        return sorted(found)

    def _gauges(
        self, data: MetricsSnapshot, pairs: list[tuple[str, str]], now: datetime
    ) -> Iterator[Metric]:
        awaiting = GaugeMetricFamily(
            "replyclock_awaiting_reply",
            "Conversations waiting for a reply now, by SLA state (ok, warning, breached).",
            labels=["source", "policy", "state"],
        )
        counts = {(s, p, st): n for s, p, st, n in data.awaiting}
        for source, policy in pairs:
            for state in STATES:
                awaiting.add_metric([source, policy, state], counts.get((source, policy, state), 0))
        yield awaiting
        oldest = GaugeMetricFamily(
            "replyclock_oldest_awaiting_reply_seconds",
            "Business seconds the longest-waiting customer has waited (0 when none waits).",
            labels=["source", "policy"],
        )
        started = {(s, p): t for s, p, t in data.oldest}
        for source, policy in pairs:
            since = started.get((source, policy))
            info = self.policies.get(policy)
            waited = 0
            if since is not None:
                waited = (
                    info.calendar.business_seconds_between(since, now)
                    if info is not None
                    else int((now - since).total_seconds())
                )
            oldest.add_metric([source, policy], waited)
        yield oldest
        targets = GaugeMetricFamily(
            "replyclock_policy_target_seconds",
            "Each policy's reply target in business seconds.",
            labels=["policy", "target"],
        )
        for info in self.policies.values():
            for target in TARGETS:
                targets.add_metric([info.name, target], info.targets[target])
        yield targets

    def _counters(self, data: MetricsSnapshot, pairs: list[tuple[str, str]]) -> Iterator[Metric]:
        totals = {(t.source, t.policy, t.kind): t for t in data.totals}
        replies = CounterMetricFamily(
            "replyclock_replies",
            "Replies that stopped a reply clock, by target and whether they met it.",
            labels=["source", "policy", "target", "within_sla"],
        )
        breaches = CounterMetricFamily(
            "replyclock_sla_breaches",
            "Reply clocks whose business time exceeded the target.",
            labels=["source", "policy", "target"],
        )
        closed = CounterMetricFamily(
            "replyclock_closed_without_reply",
            "Reply clocks stopped because the customer's mail left the watched folders "
            "unanswered (archived or deleted); not a breach.",
            labels=["source", "policy", "target"],
        )
        dismissed = CounterMetricFamily(
            "replyclock_dismissed",
            "Reply clocks stopped because a person said no reply is needed (`replyclock "
            "dismiss` or Slack's button); neither a reply nor, by itself, a breach.",
            labels=["source", "policy", "target"],
        )
        for source, policy in pairs:
            for target in TARGETS:
                t = totals.get((source, policy, target)) or ClockTotals(
                    source=source, policy=policy, kind=target
                )
                replies.add_metric([source, policy, target, "true"], t.replies_within)
                replies.add_metric([source, policy, target, "false"], t.replies_late)
                breaches.add_metric([source, policy, target], t.breaches)
                closed.add_metric([source, policy, target], t.closed)
                dismissed.add_metric([source, policy, target], t.dismissed)
        yield replies
        yield breaches
        yield closed
        yield dismissed

    def _histograms(self, data: MetricsSnapshot, pairs: list[tuple[str, str]]) -> Iterator[Metric]:
        totals = {(t.source, t.policy, t.kind): t for t in data.totals}
        for target in TARGETS:
            family = HistogramMetricFamily(
                f"replyclock_{target}_seconds",
                f"{target.replace('_', ' ').capitalize()} times in business seconds.",
                labels=["source", "policy"],
            )
            for source, policy in pairs:
                info = self.policies.get(policy)
                bounds = list(info.buckets) if info is not None else []
                t = totals.get((source, policy, target))
                per_bucket = dict(t.buckets) if t is not None else {}
                bounds = sorted(set(bounds) | {b for b in per_bucket if b != INF})
                cumulative = 0
                buckets: list[tuple[str, float]] = []
                for bound in bounds:
                    cumulative += per_bucket.get(bound, 0)
                    buckets.append((_le(bound), cumulative))
                cumulative += per_bucket.get(INF, 0)
                buckets.append(("+Inf", cumulative))
                family.add_metric(
                    [source, policy], buckets, sum_value=t.response_sum if t is not None else 0
                )
            yield family

    def _sources(self, data: MetricsSnapshot) -> Iterator[Metric]:
        health = {h.source: h for h in data.sources}
        up = GaugeMetricFamily(
            "replyclock_source_up", "1 if the source's last poll succeeded.", labels=["source"]
        )
        success = GaugeMetricFamily(
            "replyclock_source_last_success_timestamp_seconds",
            "When the source was last read successfully (Unix seconds; 0 if never).",
            labels=["source"],
        )
        duration = GaugeMetricFamily(
            "replyclock_poll_duration_seconds",
            "How long the source's last poll took.",
            labels=["source"],
        )
        for source in sorted(set(self.sources) | set(health)):
            h = health.get(source)
            up.add_metric([source], 1 if h is not None and h.up else 0)
            last = h.last_success.timestamp() if h is not None and h.last_success else 0
            success.add_metric([source], last)
            duration.add_metric([source], h.last_duration if h is not None else 0)
        yield up
        yield success
        yield duration

    def _alerts(self, data: MetricsSnapshot) -> Iterator[Metric]:
        sent = CounterMetricFamily(
            "replyclock_alerts_sent",
            "Alerts delivered, by channel and kind (warning, breach, escalation, answered, "
            "digest).",
            labels=["channel", "kind"],
        )
        for channel, kind, count in data.alerts_sent:
            sent.add_metric([channel, kind], count)
        yield sent
        failures = CounterMetricFamily(
            "replyclock_alert_delivery_failures",
            "Alert deliveries that failed for good (bad channel, bad token, ...).",
            labels=["channel"],
        )
        failed = dict(data.delivery_failures)
        for channel in sorted(set(self.channels) | set(failed)):
            failures.add_metric([channel], failed.get(channel, 0))
        yield failures


def _le(bound: int) -> str:
    return f"{float(bound)}"


def build_registry(collector: ReplyclockCollector) -> CollectorRegistry:
    """A fresh registry with replyclock's collector and the process and platform metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
