"""The collector: replyclock's families from one store snapshot per scrape, for
prometheus-client (``collect``) and written straight as text (``exposition``), and the
registry that serves both beside the process and platform metrics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.errors import StoreError
from monitor.metrics.families import (
    ALERTS_SENT,
    AWAITING,
    BREACHES,
    BUILD_INFO,
    CLOSED,
    DELIVERY_FAILURES,
    DISMISSED,
    EVALUATION_LAG,
    FAMILIES,
    LAST_SUCCESS,
    OLDEST,
    POLICY_TARGET,
    POLL_DURATION,
    REPLIES,
    REPLIES_MISSING,
    RESPONSE_TIMES,
    SCHEDULER_LAG,
    SOURCE_UP,
    STATES,
    STORE_UP,
    TARGETS,
    PolicyInfo,
    cumulative,
    write_metric,
)
from monitor.metrics.text import (
    TextCache,
    write_counters,
    write_gauges,
    write_histograms,
    write_sources,
)
from monitor.model import ClockTotals, MetricsSnapshot, ServiceStatus


class ReplyclockCollector(Collector):
    """Builds every replyclock_* family from one store snapshot per scrape.

    With ``histograms_by_source`` false the two response-time histograms are exported per
    policy only (summed over the sources), to keep the series count down.
    """

    def __init__(
        self,
        *,
        snapshot: Callable[[], MetricsSnapshot],
        sources: Sequence[str],
        policies: Sequence[PolicyInfo],
        channels: Sequence[str] = (),
        clock: Callable[[], datetime],
        service: Callable[[], ServiceStatus] = ServiceStatus,
        histograms_by_source: bool = True,
    ) -> None:
        self.snapshot = snapshot
        self.sources = list(sources)
        self.policies = {policy.name: policy for policy in policies}
        self.channels = list(channels)
        self.clock = clock
        self.service = service
        self.histograms_by_source = histograms_by_source
        self._text = TextCache()
        self._text_lock = threading.Lock()  # scrapes run on their own threads

    def describe(self) -> Iterator[Metric]:
        """Every family, without samples: the registry learns the names (for ``name[]``
        filters) without reading the store at registration."""
        return (family.empty() for family in FAMILIES)

    def _read(self) -> tuple[MetricsSnapshot | None, ServiceStatus]:
        """This scrape's store snapshot (None if the store cannot be read) and service status.
        A store that cannot be read leaves out the series read from it, and says so in
        ``replyclock_store_up``, rather than failing the scrape."""
        try:
            data: MetricsSnapshot | None = self.snapshot()
        except StoreError:
            data = None
        return data, self.service()

    def collect(self) -> Iterator[Metric]:
        """Fresh families for this scrape, for prometheus-client's own exposition."""
        data, status = self._read()
        if data is not None:
            now = self.clock()
            pairs = self._pairs(data)
            yield from self._gauges(data, pairs, now)
            yield self._targets()
            yield from self._counters(data, pairs)
            yield from self._histograms(data, pairs)
            yield from self._sources(data)
            yield from self._alerts(data)
        yield from self._service(data, status)

    def exposition(self, openmetrics: bool = False) -> str:
        """The text of every replyclock_* family for this scrape, as prometheus-client would
        write what ``collect`` yields (the text format, or OpenMetrics without its ``# EOF``),
        from the lines kept for each source x policy whose numbers did not change."""
        data, status = self._read()
        parts: list[str] = []
        with self._text_lock:
            if data is not None:
                now = self.clock()
                pairs = self._pairs(data)
                entries = self._text.entries(pairs)
                write_gauges(
                    parts,
                    data=data,
                    pairs=pairs,
                    entries=entries,
                    policies=self.policies,
                    now=now,
                    openmetrics=openmetrics,
                )
                write_metric(parts, self._targets(), openmetrics)
                write_counters(
                    parts, data=data, pairs=pairs, entries=entries, openmetrics=openmetrics
                )
                if self.histograms_by_source:
                    write_histograms(
                        parts,
                        data=data,
                        pairs=pairs,
                        entries=entries,
                        bounds=self.bounds,
                        openmetrics=openmetrics,
                    )
                else:
                    for metric in self._histograms(data, pairs):
                        write_metric(parts, metric, openmetrics)
                names = self._source_names(data)
                write_sources(
                    parts,
                    names=names,
                    entries=self._text.source_entries(names),
                    data=data,
                    openmetrics=openmetrics,
                )
                for metric in self._alerts(data):
                    write_metric(parts, metric, openmetrics)
            for metric in self._service(data, status):
                write_metric(parts, metric, openmetrics)
        return "".join(parts)

    def _pairs(self, data: MetricsSnapshot) -> list[tuple[str, str]]:
        """Every (source, policy) to export: configured ones, plus any the store still holds."""
        found = {(s, p) for s in self.sources for p in self.policies}
        found |= {(s, p) for s, p, _, _ in data.awaiting}
        found |= {(t.source, t.policy) for t in data.totals}
        return sorted(found)

    def _source_names(self, data: MetricsSnapshot) -> list[str]:
        return sorted(set(self.sources) | {h.source for h in data.sources})

    def _gauges(
        self, data: MetricsSnapshot, pairs: list[tuple[str, str]], now: datetime
    ) -> Iterator[Metric]:
        awaiting = AWAITING.gauge()
        counts = {(s, p, st): n for s, p, st, n in data.awaiting}
        for source, policy in pairs:
            for state in STATES:
                awaiting.add_metric([source, policy, state], counts.get((source, policy, state), 0))
        yield awaiting
        oldest = OLDEST.gauge()
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

    def _targets(self) -> Metric:
        targets = POLICY_TARGET.gauge()
        for info in self.policies.values():
            for target in TARGETS:
                targets.add_metric([info.name, target], info.targets[target])
        return targets

    def _counters(self, data: MetricsSnapshot, pairs: list[tuple[str, str]]) -> Iterator[Metric]:
        totals = {(t.source, t.policy, t.kind): t for t in data.totals}
        replies, breaches = REPLIES.counter(), BREACHES.counter()
        closed, dismissed = CLOSED.counter(), DISMISSED.counter()
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
            if self.histograms_by_source:
                family = RESPONSE_TIMES[target].histogram()
                for source, policy in pairs:
                    t = totals.get((source, policy, target))
                    buckets, total = cumulative(self.bounds(policy), t)
                    family.add_metric([source, policy], buckets, sum_value=total)
            else:
                family = RESPONSE_TIMES[target].histogram(["policy"])
                for policy, merged in sorted(self._by_policy(data, target).items()):
                    buckets, total = cumulative(self.bounds(policy), merged)
                    family.add_metric([policy], buckets, sum_value=total)
            yield family

    def bounds(self, policy: str) -> Sequence[int]:
        """The histogram bounds of ``policy`` (none for a policy no longer configured)."""
        info = self.policies.get(policy)
        return info.buckets if info is not None else ()

    def _by_policy(self, data: MetricsSnapshot, target: str) -> dict[str, ClockTotals]:
        """Each policy's totals of ``target``, summed over the sources."""
        policies = {*self.policies, *(p for _, p, _, _ in data.awaiting)}
        counts: dict[str, dict[int, int]] = {policy: {} for policy in policies}
        sums = dict.fromkeys(policies, 0)
        for t in data.totals:
            if t.kind != target:
                continue
            per_bucket = counts.setdefault(t.policy, {})
            for bound, count in t.buckets:
                per_bucket[bound] = per_bucket.get(bound, 0) + count
            sums[t.policy] = sums.get(t.policy, 0) + t.response_sum
        return {
            policy: ClockTotals(
                source="",
                policy=policy,
                kind=target,
                response_sum=sums[policy],
                buckets=tuple(per_bucket.items()),
            )
            for policy, per_bucket in counts.items()
        }

    def _sources(self, data: MetricsSnapshot) -> Iterator[Metric]:
        health = {h.source: h for h in data.sources}
        up, success, duration = SOURCE_UP.gauge(), LAST_SUCCESS.gauge(), POLL_DURATION.gauge()
        for source in self._source_names(data):
            h = health.get(source)
            up.add_metric([source], 1 if h is not None and h.up else 0)
            last = h.last_success.timestamp() if h is not None and h.last_success else 0
            success.add_metric([source], last)
            duration.add_metric([source], h.last_duration if h is not None else 0)
        yield up
        yield success
        yield duration

    def _alerts(self, data: MetricsSnapshot) -> Iterator[Metric]:
        sent = ALERTS_SENT.counter()
        for channel, kind, count in data.alerts_sent:
            sent.add_metric([channel, kind], count)
        yield sent
        failures = DELIVERY_FAILURES.counter()
        failed = dict(data.delivery_failures)
        for channel in sorted(set(self.channels) | set(failed)):
            failures.add_metric([channel], failed.get(channel, 0))
        yield failures

    def _service(self, data: MetricsSnapshot | None, status: ServiceStatus) -> Iterator[Metric]:
        """The families that do not come from the store: how the daemon itself is doing."""
        store_up = STORE_UP.gauge()
        store_up.add_metric([], 1 if data is not None and status.store_ok else 0)
        yield store_up
        lag = SCHEDULER_LAG.gauge()
        lag.add_metric([], status.scheduler_lag_seconds)
        yield lag
        evaluation = EVALUATION_LAG.gauge()
        evaluation.add_metric([], status.evaluation_lag_seconds)
        yield evaluation
        missing = REPLIES_MISSING.gauge()
        for source, flag in status.replies_missing:
            missing.add_metric([source], 1 if flag else 0)
        yield missing
        info = BUILD_INFO.gauge()
        info.add_metric([__version__], 1)
        yield info


class MetricsRegistry(CollectorRegistry):
    """A registry of replyclock's collector and prometheus-client's process and platform
    collectors, which also writes a whole scrape the fast way (``exposition``)."""

    def __init__(self, collector: ReplyclockCollector) -> None:
        super().__init__(auto_describe=True)  # names for name[] filters, and no duplicates
        self.collector = collector
        self.register(collector)
        self.others = CollectorRegistry(auto_describe=False)  # what prometheus-client writes
        for other in (ProcessCollector(registry=None), PlatformCollector(registry=None)):
            self.register(other)
            self.others.register(other)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """A scrape's body and content type for the request's Accept header (the text format,
        or OpenMetrics when asked for, negotiated as prometheus-client does)."""
        encoder, content_type = choose_encoder(accept or "")
        openmetrics = content_type.startswith("application/openmetrics-text")
        ours = self.collector.exposition(openmetrics).encode()
        return ours + encoder(self.others), content_type


def build_registry(collector: ReplyclockCollector) -> MetricsRegistry:
    """A fresh registry with replyclock's collector and the process and platform metrics."""
    return MetricsRegistry(collector)
