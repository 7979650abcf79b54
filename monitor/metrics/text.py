"""The replyclock_* families written straight to the exposition text, a source at a time.

Each source x policy (and each source) keeps the lines it wrote with the numbers they were
written from; at the next scrape a pair whose numbers are the same objects, or equal ones,
gives its kept lines again, so a thousand quiet sources cost a thousand comparisons. The
lines are those prometheus-client writes for the same families: labels in name order, values
through its ``floatToGoString``; the sample lines are the same in the text format and in
OpenMetrics, only the HELP and TYPE lines differ (``Family.header``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from monitor.metrics.families import (
    AWAITING,
    BREACHES,
    CLOSED,
    DISMISSED,
    LAST_SUCCESS,
    OLDEST,
    POLL_DURATION,
    REPLIES,
    RESPONSE_TIMES,
    SOURCE_UP,
    STATES,
    TARGETS,
    PolicyInfo,
    cumulative,
    escape,
    number,
)
from monitor.model import ClockTotals, MetricsSnapshot, SourceHealth


class PairLines:
    """One source x policy's lines in the big families, with the numbers they show."""

    __slots__ = (
        "awaiting",
        "awaiting_key",
        "counters",
        "counters_key",
        "histograms",
        "histograms_key",
        "labels",
        "oldest",
        "oldest_at",
        "oldest_info",
        "oldest_since",
        "oldest_value",
    )

    def __init__(self, source: str, policy: str) -> None:
        self.labels = f'policy="{escape(policy)}",source="{escape(source)}"'
        self.awaiting_key: tuple[int, ...] | None = None
        self.awaiting = ""
        self.oldest_since: datetime | None = None  # the clock measured at ``oldest_at``
        self.oldest_info: PolicyInfo | None = None
        self.oldest_at: datetime | None = None
        self.oldest_value = -1
        self.oldest = ""
        self.counters_key: tuple[ClockTotals | None, ...] | None = None
        self.counters = ("", "", "", "")
        self.histograms_key: list[tuple[ClockTotals | None, Sequence[int]] | None] = [None, None]
        self.histograms = ["", ""]


class SourceLines:
    """One source's lines in the per-source families, with the numbers they show."""

    __slots__ = ("key", "labels", "lines")

    def __init__(self, source: str) -> None:
        self.labels = f'source="{escape(source)}"'
        self.key: SourceHealth | bool | None = False  # nothing written yet
        self.lines = ("", "", "")


class TextCache:
    """The lines of every source x policy and every source, kept between scrapes; an entry
    whose source (or policy) is no longer exported is dropped at the next scrape."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], PairLines] = {}
        self.sources: dict[str, SourceLines] = {}

    def entries(self, pairs: list[tuple[str, str]]) -> list[PairLines]:
        """The kept lines of each pair, in order (new pairs get empty ones)."""
        kept = self.pairs
        self.pairs = {pair: kept.get(pair) or PairLines(*pair) for pair in pairs}
        return list(self.pairs.values())

    def source_entries(self, names: list[str]) -> list[SourceLines]:
        """The kept lines of each source, in order (new sources get empty ones)."""
        kept = self.sources
        self.sources = {name: kept.get(name) or SourceLines(name) for name in names}
        return list(self.sources.values())


def write_gauges(
    parts: list[str],
    *,
    data: MetricsSnapshot,
    pairs: list[tuple[str, str]],
    entries: list[PairLines],
    policies: Mapping[str, PolicyInfo],
    now: datetime,
    openmetrics: bool,
) -> None:
    """The awaiting and oldest-wait families, every pair's lines kept or rewritten."""
    counts: dict[tuple[str, str], list[int]] = {}
    for source, policy, state, n in data.awaiting:
        if state in STATES:
            counts.setdefault((source, policy), [0, 0, 0])[STATES.index(state)] = n
    parts.append(AWAITING.header(openmetrics))
    none = (0, 0, 0)
    for pair, entry in zip(pairs, entries, strict=True):
        found = counts.get(pair)
        key = tuple(found) if found is not None else none
        if key != entry.awaiting_key:
            entry.awaiting_key = key
            entry.awaiting = "".join(
                f'{AWAITING.name}{{{entry.labels},state="{state}"}} {number(n)}\n'
                for state, n in zip(STATES, key, strict=True)
            )
        parts.append(entry.awaiting)
    parts.append(OLDEST.header(openmetrics))
    started = {(s, p): t for s, p, t in data.oldest}
    steps: dict[tuple[int, datetime], int] = {}  # business seconds since the last scrape
    for pair, entry in zip(pairs, entries, strict=True):
        waited = _waited(entry, started.get(pair), policies.get(pair[1]), now, steps)
        if waited != entry.oldest_value:
            entry.oldest_value = waited
            entry.oldest = f"{OLDEST.name}{{{entry.labels}}} {number(waited)}\n"
        parts.append(entry.oldest)


def write_counters(
    parts: list[str],
    *,
    data: MetricsSnapshot,
    pairs: list[tuple[str, str]],
    entries: list[PairLines],
    openmetrics: bool,
) -> None:
    """The four counter families, both targets of every pair."""
    totals = {(t.source, t.policy, t.kind): t for t in data.totals}
    for (source, policy), entry in zip(pairs, entries, strict=True):
        key = (totals.get((source, policy, TARGETS[0])), totals.get((source, policy, TARGETS[1])))
        if key != entry.counters_key:
            entry.counters_key = key
            entry.counters = _counter_lines(entry.labels, key)
    for index, family in enumerate((REPLIES, BREACHES, CLOSED, DISMISSED)):
        parts.append(family.header(openmetrics))
        parts.extend(entry.counters[index] for entry in entries)


def write_histograms(
    parts: list[str],
    *,
    data: MetricsSnapshot,
    pairs: list[tuple[str, str]],
    entries: list[PairLines],
    bounds: Callable[[str], Sequence[int]],
    openmetrics: bool,
) -> None:
    """The two response-time histograms by source and policy."""
    totals = {(t.source, t.policy, t.kind): t for t in data.totals}
    for index, target in enumerate(TARGETS):
        family = RESPONSE_TIMES[target]
        parts.append(family.header(openmetrics))
        for (source, policy), entry in zip(pairs, entries, strict=True):
            key = (totals.get((source, policy, target)), bounds(policy))
            if key != entry.histograms_key[index]:
                entry.histograms_key[index] = key
                entry.histograms[index] = _histogram_lines(family.name, entry.labels, *key)
            parts.append(entry.histograms[index])


def write_sources(
    parts: list[str],
    *,
    names: list[str],
    entries: list[SourceLines],
    data: MetricsSnapshot,
    openmetrics: bool,
) -> None:
    """The three per-source families."""
    health = {h.source: h for h in data.sources}
    for name, entry in zip(names, entries, strict=True):
        h = health.get(name)
        if h is not entry.key and h != entry.key:
            entry.key = h
            entry.lines = _source_lines(entry.labels, h)
    for index, family in enumerate((SOURCE_UP, LAST_SUCCESS, POLL_DURATION)):
        parts.append(family.header(openmetrics))
        parts.extend(entry.lines[index] for entry in entries)


def _waited(
    entry: PairLines,
    since: datetime | None,
    info: PolicyInfo | None,
    now: datetime,
    steps: dict[tuple[int, datetime], int],
) -> int:
    """Business seconds the pair's oldest clock has run at ``now``. Business seconds add up
    (whole seconds in [a, c) = in [a, b) + in [b, c)), so a clock already measured at the last
    scrape only adds the seconds since, counted once per calendar for every pair."""
    if since is None or info is None:
        entry.oldest_at = None
        return int((now - since).total_seconds()) if since is not None else 0
    at = entry.oldest_at
    if at is not None and at <= now and entry.oldest_info is info and entry.oldest_since == since:
        step_key = (id(info.calendar), at)
        step = steps.get(step_key)
        if step is None:
            step = steps[step_key] = info.calendar.business_seconds_between(at, now)
        waited = entry.oldest_value + step
    else:
        waited = info.calendar.business_seconds_between(since, now)
    entry.oldest_since, entry.oldest_info, entry.oldest_at = since, info, now
    return waited


def _counter_lines(
    labels: str, totals: tuple[ClockTotals | None, ...]
) -> tuple[str, str, str, str]:
    """The pair's lines of the four counter families, both targets each."""
    replies, breaches, closed, dismissed = [], [], [], []
    for target, t in zip(TARGETS, totals, strict=True):
        within, late, breached, gone, dropped = (
            (t.replies_within, t.replies_late, t.breaches, t.closed, t.dismissed)
            if t is not None
            else (0, 0, 0, 0, 0)
        )
        own = f'{labels},target="{target}"'
        replies.append(
            f'{REPLIES.name}_total{{{own},within_sla="true"}} {number(within)}\n'
            f'{REPLIES.name}_total{{{own},within_sla="false"}} {number(late)}\n'
        )
        breaches.append(f"{BREACHES.name}_total{{{own}}} {number(breached)}\n")
        closed.append(f"{CLOSED.name}_total{{{own}}} {number(gone)}\n")
        dismissed.append(f"{DISMISSED.name}_total{{{own}}} {number(dropped)}\n")
    return "".join(replies), "".join(breaches), "".join(closed), "".join(dismissed)


def _histogram_lines(
    name: str, labels: str, totals: ClockTotals | None, bounds: Sequence[int]
) -> str:
    buckets, total = cumulative(bounds, totals)
    lines = [f'{name}_bucket{{le="{le}",{labels}}} {number(count)}\n' for le, count in buckets]
    lines.append(f"{name}_count{{{labels}}} {number(buckets[-1][1])}\n")
    lines.append(f"{name}_sum{{{labels}}} {number(total)}\n")
    return "".join(lines)


def _source_lines(labels: str, h: SourceHealth | None) -> tuple[str, str, str]:
    up = 1 if h is not None and h.up else 0
    last = h.last_success.timestamp() if h is not None and h.last_success else 0
    duration = h.last_duration if h is not None else 0
    return (
        f"{SOURCE_UP.name}{{{labels}}} {number(up)}\n",
        f"{LAST_SUCCESS.name}{{{labels}}} {number(last)}\n",
        f"{POLL_DURATION.name}{{{labels}}} {number(duration)}\n",
    )
