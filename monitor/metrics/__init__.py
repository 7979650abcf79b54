"""Prometheus metrics, computed at scrape time from the store's persisted state.

A custom collector builds fresh metric families on every scrape (the client_python pattern):
gauges from the current conversations, counters and histograms from the running totals the
engine keeps with the clock history, so a restart neither resets them nor counts twice. Every
series the config knows of (each source x policy x state) is exported, at 0 when quiet, so
panels never say "No data" on a quiet morning. No label carries an address, a subject or a
conversation id: labels are source, policy, state, target, within_sla, channel and kind.

A thousand sources make tens of thousands of series, more than prometheus-client's generic
exposition writes in a scrape's budget. So /metrics writes the replyclock_* text itself (the
same series and values, in the text format or OpenMetrics): each source x policy keeps its
lines with the numbers they were written from, and a source whose numbers did not change
costs a comparison. The families are still there for prometheus-client (``collect``), which
serves filtered scrapes (``name[]``) and writes the process and platform metrics.

Sample exposition::

    replyclock_awaiting_reply{policy="vip",source="support",state="warning"} 2.0
    replyclock_oldest_awaiting_reply_seconds{policy="vip",source="support"} 2700.0
    replyclock_sla_breaches_total{policy="vip",source="support",target="first_response"} 3.0
    replyclock_dismissed_total{policy="vip",source="support",target="first_response"} 1.0
"""

from monitor.metrics.collector import MetricsRegistry, ReplyclockCollector, build_registry
from monitor.metrics.families import STATES, TARGETS, PolicyInfo

__all__ = [
    "STATES",
    "TARGETS",
    "MetricsRegistry",
    "PolicyInfo",
    "ReplyclockCollector",
    "build_registry",
]
