"""A stand-in for replyclock's /metrics: every contract metric, for 2 sources x 2 policies.

``FakeExporter`` serves ``exposition(scrape)`` over HTTP on a free loopback port, in a thread.
Each request is one more scrape: counters and histograms grow with the scrape number, so
``rate()`` and ``increase()`` see traffic after two scrapes, while the gauges hold a
realistic support-room moment (a few customers waiting, one of them past the VIP target).
"""

from __future__ import annotations

import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from .contract import DEFAULT_BUCKETS, METRICS

HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A dot in a source name (allowed by the config) makes Grafana's regex escaping matter.
SOURCES = ("support-inbox", "helpdesk.eu")
POLICIES = ("standard", "vip")
STATES = ("ok", "warning", "breached")
TARGETS = ("first_response", "next_response")
# Reply targets in business seconds: standard 4 h / 8 h, vip 1 h / 2 h.
POLICY_TARGETS = {
    ("standard", "first_response"): 14400,
    ("standard", "next_response"): 28800,
    ("vip", "first_response"): 3600,
    ("vip", "next_response"): 7200,
}
# Customers waiting now and the longest wait (business seconds), per source and policy.
AWAITING = {
    ("support-inbox", "standard"): ({"ok": 9, "warning": 2, "breached": 0}, 9240),
    ("support-inbox", "vip"): ({"ok": 2, "warning": 1, "breached": 1}, 4020),
    ("helpdesk.eu", "standard"): ({"ok": 5, "warning": 0, "breached": 0}, 2710),
    ("helpdesk.eu", "vip"): ({"ok": 0, "warning": 0, "breached": 0}, 0),
}
# Observations added per scrape to each bucket of the response-time histograms (first bucket
# <= 300 s, ..., last finite <= 604800 s); a few late ones reach the 8 h and 1 d buckets.
FIRST_RESPONSE_PER_SCRAPE = (2, 3, 2, 1, 1, 0, 1, 0, 0, 0, 0, 0)
NEXT_RESPONSE_PER_SCRAPE = (1, 2, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0)
ALERT_KINDS = ("warning", "breach", "escalation", "answered")
STARTED = time.time()


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{value}"' for name, value in labels.items()) + "}"


def _histogram(name: str, per_scrape: tuple[int, ...], scrape: int) -> list[str]:
    lines = []
    bounds = [*DEFAULT_BUCKETS, float("inf")]
    for source, policy in itertools.product(SOURCES, POLICIES):
        cumulative = 0
        total_seconds = 0.0
        for bound, added in zip(bounds, per_scrape, strict=True):
            cumulative += added * scrape
            le = "+Inf" if bound == float("inf") else f"{bound:.1f}"
            series = _labels(source=source, policy=policy, le=le)
            lines.append(f"{name}_bucket{series} {cumulative}")
            # For the _sum, each observation counts as 60 % of its bucket's upper bound.
            if bound != float("inf"):
                total_seconds += added * scrape * bound * 0.6
        series = _labels(source=source, policy=policy)
        lines.append(f"{name}_sum{series} {total_seconds}")
        lines.append(f"{name}_count{series} {cumulative}")
    return lines


def _samples(name: str, scrape: int, now: float) -> list[str]:
    """The sample lines of one contract metric at the given scrape number."""
    pairs = list(itertools.product(SOURCES, POLICIES))
    if name == "replyclock_awaiting_reply":
        return [
            f"{name}{_labels(source=s, policy=p, state=state)} {AWAITING[s, p][0][state]}"
            for s, p in pairs
            for state in STATES
        ]
    if name == "replyclock_oldest_awaiting_reply_seconds":
        return [f"{name}{_labels(source=s, policy=p)} {AWAITING[s, p][1]}" for s, p in pairs]
    if name == "replyclock_first_response_seconds":
        return _histogram(name, FIRST_RESPONSE_PER_SCRAPE, scrape)
    if name == "replyclock_next_response_seconds":
        return _histogram(name, NEXT_RESPONSE_PER_SCRAPE, scrape)
    if name == "replyclock_replies_total":
        per_scrape = {("first_response", "true"): 8, ("first_response", "false"): 1}
        per_scrape |= {("next_response", "true"): 6, ("next_response", "false"): 1}
        return [
            f"{name}{_labels(source=s, policy=p, target=t, within_sla=w)} {n * scrape}.0"
            for s, p in pairs
            for (t, w), n in per_scrape.items()
        ]
    if name in (
        "replyclock_sla_breaches_total",
        "replyclock_closed_without_reply_total",
        "replyclock_dismissed_total",
    ):
        return [
            f"{name}{_labels(source=s, policy=p, target=t)} {float(scrape)}"
            for s, p in pairs
            for t in TARGETS
        ]
    if name == "replyclock_policy_target_seconds":
        return [
            f"{name}{_labels(policy=p, target=t)} {seconds}"
            for (p, t), seconds in POLICY_TARGETS.items()
        ]
    if name == "replyclock_source_up":
        return [f"{name}{_labels(source=s)} 1.0" for s in SOURCES]
    if name == "replyclock_source_last_success_timestamp_seconds":
        return [f"{name}{_labels(source=s)} {now - 1.5:.3f}" for s in SOURCES]
    if name == "replyclock_poll_duration_seconds":
        return [f"{name}{_labels(source=s)} {d}" for s, d in zip(SOURCES, (0.42, 1.3), strict=True)]
    if name == "replyclock_alerts_sent_total":
        return [f"{name}{_labels(channel='slack', kind=k)} {float(scrape)}" for k in ALERT_KINDS]
    if name == "replyclock_alert_delivery_failures_total":
        return [f"{name}{_labels(channel='slack')} {float(scrape // 3)}"]
    if name == "replyclock_scheduler_lag_seconds":
        return [f"{name} 0.0"]
    if name == "replyclock_replies_missing":
        return [f"{name}{_labels(source=s)} 0.0" for s in SOURCES]
    if name == "replyclock_store_up":
        return [f"{name} 1.0"]
    if name == "replyclock_build_info":
        return [f'{name}{{version="0.1.0"}} 1.0']
    raise KeyError(f"the fake exporter has no samples for contract metric {name}")


def exposition(scrape: int, now: float | None = None) -> str:
    """The text exposition (format 0.0.4) for scrape number ``scrape`` (1 for the first)."""
    now = time.time() if now is None else now
    lines = []
    for metric in METRICS:
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.type}")
        lines.extend(_samples(metric.name, scrape, now))
    lines += [
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total {0.8 + 0.01 * scrape:.2f}",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds {STARTED:.2f}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
        "process_resident_memory_bytes 5.4407168e+07",
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.",
        "# TYPE process_virtual_memory_bytes gauge",
        "process_virtual_memory_bytes 2.87346688e+08",
        "# HELP process_open_fds Number of open file descriptors.",
        "# TYPE process_open_fds gauge",
        "process_open_fds 14.0",
        "# HELP process_max_fds Maximum number of open file descriptors.",
        "# TYPE process_max_fds gauge",
        "process_max_fds 1024.0",
    ]
    return "\n".join(lines) + "\n"


class FakeExporter:
    """Serves ``/metrics`` from ``exposition()``; each GET counts as the next scrape."""

    def __init__(self) -> None:
        """Prepare (but do not start) the server; ``start()`` binds a free loopback port."""
        self.scrapes = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeExporter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The metrics URL, e.g. ``http://127.0.0.1:40123/metrics``."""
        if self._server is None:
            raise RuntimeError("the fake exporter is not started")
        return f"http://{HOST}:{self._server.server_address[1]}/metrics"

    def next_scrape(self) -> int:
        """Count one more scrape and return its number (1 for the first)."""
        with self._lock:
            self.scrapes += 1
            return self.scrapes

    def start(self) -> None:
        """Bind a free port and serve in a daemon thread."""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = exposition(exporter.next_scrape()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet: one line per scrape would bury pytest's output."""

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-exporter", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
