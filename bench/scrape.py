"""Scrape time of /metrics: a long history, and many sources.

history  100,000 conversations and 1,000,000 messages (10 per conversation, 5% waiting,
         2 sources x 3 policies): a full scrape (median of 25) beside a naive scrape that
         aggregates the clock history and the messages at scrape time, which is what the
         persisted totals avoid. Target: under 50 ms.
sources  200 and 1,000 sources with one policy (the default config), and 1,000 with three
         policies, 100 conversations per source (5% waiting) and every source polled: a GET
         /metrics over HTTP as Prometheus sends it (OpenMetrics, gzip), median of 15, beside
         the same registry written by prometheus-client's generic exposition (its own WSGI
         app, median of 3) in the same run, with the time of the store snapshot alone.
         Target: under 100 ms at 1,000 sources with the default config.

Each store is built directly in SQLite and its clock totals counted once as the engine keeps
them.

    python bench/scrape.py [--conversations 100000] [--messages-per 10] [--only history|sources]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import generate_latest, make_wsgi_app

from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.sla.calendar import BusinessCalendar, parse_hours
from monitor.sla.policy import DEFAULT_RESPONSE_BUCKETS
from monitor.snapshots import StoreSnapshots
from monitor.store import Store
from monitor.store import totals as totals_module
from monitor.web import HttpServer, make_app

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SOURCES = ("support", "billing")
POLICIES = ("vip", "standard", "urgent")
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
CASES = ((200, 1), (1000, 1), (1000, 3))  # sources, policies per source
TARGET_MS = 100.0


def build(
    path: Path,
    conversations: int,
    per: int,
    sources: Sequence[str] = SOURCES,
    policies: Sequence[str] = POLICIES,
) -> None:
    """A store of ``conversations`` spread over sources x policies, ``per`` messages each."""
    rng = random.Random(3)
    store = Store.open(path)
    now = int(NOW.timestamp())
    conn = store.conn
    conv_rows, message_rows, clock_rows = [], [], []
    for cid in range(1, conversations + 1):
        source, policy = rng.choice(sources), rng.choice(policies)
        start = now - rng.randint(3600, 180 * 86400)
        waiting = rng.random() < 0.05
        state = rng.choice(("ok", "warning", "breached")) if waiting else "answered"
        conv_rows.append(
            (
                cid,
                source,
                "Subject",
                "c@x.example",
                start,
                start + per * 600,
                policy,
                now,
                state,
                "first_response",
                start,
                600,
                3600,
                start + 3600,
                now,
            )
        )
        for n in range(per):
            direction = "inbound" if n % 2 == 0 else "outbound"
            message_rows.append(
                (source, f"m{cid}.{n}@x", cid, start + n * 600, direction, "test", now)
            )
        for seq in range(2):
            seconds = rng.randint(60, 3 * 86400)
            running = waiting and seq == 1
            clock_rows.append(
                (
                    cid,
                    seq,
                    source,
                    policy,
                    "first_response" if seq == 0 else "next_response",
                    start,
                    None if running else start + seconds,
                    None if running else "reply",
                    "",
                    3600,
                    seconds,
                    seconds,
                    state if running else "answered",
                    int(seconds > 3600),
                    start + 3600,
                )
            )
    with store.transaction():
        conn.executemany(
            "INSERT INTO conversations (id, source, subject, customer, first_message_at, "
            "last_message_at, policy, updated_at, state, clock_kind, clock_started_at, "
            "waited_seconds, target_seconds, due_at, evaluated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            conv_rows,
        )
        conn.executemany(
            "INSERT INTO messages (source, identity, conversation_id, timestamp, direction, "
            "reason, first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            message_rows,
        )
        conn.executemany(
            "INSERT INTO clocks (conversation_id, seq, source, policy, kind, started_at, "
            "stopped_at, stop_reason, responder, target_seconds, business_seconds, "
            "calendar_seconds, state, breached, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            clock_rows,
        )
        totals_module.rebuild(conn, lambda _: DEFAULT_RESPONSE_BUCKETS)
        for source in sources:
            conn.execute(
                "INSERT INTO source_status (source, up, last_attempt, last_success, "
                "last_duration) VALUES (?, 1, ?, ?, 0.2)",
                (source, now, now),
            )
    store.close()


def naive_scrape(path: Path) -> None:
    """What a scrape would cost without persisted totals: aggregate history every time."""
    store = Store.open(path, readonly=True)
    conn = store.conn
    bounds = ", ".join(f"SUM(business_seconds <= {b})" for b in DEFAULT_RESPONSE_BUCKETS)
    conn.execute(
        f"SELECT source, policy, kind, COUNT(*), SUM(business_seconds), {bounds}, "
        "SUM(breached) FROM clocks WHERE stop_reason = 'reply' GROUP BY source, policy, kind"
    ).fetchall()
    conn.execute(
        "SELECT source, COUNT(DISTINCT conversation_id) FROM messages WHERE direction = "
        "'inbound' GROUP BY source"
    ).fetchall()
    store.close()


def policy_infos(names: Sequence[str]) -> list[PolicyInfo]:
    calendar = BusinessCalendar(
        timezone="Europe/Berlin", weekly={d: [parse_hours("09:00-17:00")] for d in range(5)}
    )
    return [
        PolicyInfo(
            name=name,
            calendar=calendar,
            targets={"first_response": 3600, "next_response": 7200},
            buckets=DEFAULT_RESPONSE_BUCKETS,
        )
        for name in names
    ]


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def history(conversations: int, per: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(path, conversations, per)
        print(f"built store in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        writer = Store.open(path)
        collector = ReplyclockCollector(
            snapshot=StoreSnapshots(writer),
            sources=SOURCES,
            policies=policy_infos(POLICIES),
            clock=lambda: NOW,
        )
        registry = build_registry(collector)
        body, _ = registry.exposition(None)  # warm: opens the reader connection
        ours_ms = median_ms(lambda: registry.exposition(None), 25)
        naive_ms = median_ms(lambda: naive_scrape(path), 5)
        writer.close()
    total_messages = conversations * per
    print(f"Scrape of {conversations:,} conversations, {total_messages:,} messages")
    print(f"{'replyclock /metrics (median of 25)':52} {ours_ms:>8.1f} ms  ({len(body):,} bytes)")
    print(f"{'naive: aggregate history per scrape (median of 5)':52} {naive_ms:>8.1f} ms")
    print(f"{'ratio naive / ours':52} {naive_ms / ours_ms:>8.1f}x")
    print(f"target: under 50 ms -> {'met' if ours_ms < 50 else 'NOT met'}")


def get(port: int, path: str) -> tuple[int, int]:
    """GET as Prometheus does; (compressed bytes, text bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "GET", path, headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        )
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, response.status
    finally:
        connection.close()
    if response.getheader("Content-Encoding") == "gzip":
        return len(body), len(gzip.decompress(body))
    return len(body), len(body)


def many_sources(sources: int, policies: int) -> tuple[float, float, float, int, int, int]:
    """(ours ms, prometheus-client ms, snapshot ms, series, text bytes, gzip bytes)."""
    names = [f"support-{n:04d}" for n in range(sources)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(path, 100 * sources, 2, names, POLICIES[:policies])
        print(
            f"built {sources} x {policies} in {time.perf_counter() - started:.1f}s", file=sys.stderr
        )
        writer = Store.open(path)
        snapshots = StoreSnapshots(writer)
        collector = ReplyclockCollector(
            snapshot=snapshots,
            sources=names,
            policies=policy_infos(POLICIES[:policies]),
            clock=lambda: datetime.now(UTC),
        )
        registry = build_registry(collector)
        ours = HttpServer(make_app(registry, lambda: (True, "")), "127.0.0.1", 0)
        generic = HttpServer(make_wsgi_app(registry), "127.0.0.1", 0)
        ours.start()
        generic.start()
        try:
            zipped, size = get(ours.port, "/metrics")  # warm: the reader, the kept lines
            series = sum(
                1
                for line in generate_latest(collector).decode().splitlines()
                if line.startswith("replyclock_")
            )
            ours_ms = median_ms(lambda: get(ours.port, "/metrics"), 15)
            generic_ms = median_ms(lambda: get(generic.port, "/metrics"), 3)
            snapshot_ms = median_ms(snapshots, 15)
        finally:
            ours.stop()
            generic.stop()
            snapshots.close()
            writer.close()
    return ours_ms, generic_ms, snapshot_ms, series, size, zipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-per", type=int, default=10)
    parser.add_argument("--only", choices=("history", "sources"))
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"bench/scrape.py on {machine}")
    if args.only != "sources":
        history(args.conversations, args.messages_per)
    if args.only == "history":
        return 0
    print()
    print(
        f"{'sources x policies':>18} {'series':>8} {'text':>9} {'gzip':>8} {'ours':>9} "
        f"{'store':>9} {'generic':>10} {'ratio':>7}  target"
    )
    for sources, policies in CASES:
        ours_ms, generic_ms, snapshot_ms, series, size, zipped = many_sources(sources, policies)
        verdict = ""
        if (sources, policies) == (1000, 1):
            verdict = f"< {TARGET_MS:.0f} ms: {'met' if ours_ms < TARGET_MS else 'NOT met'}"
        print(
            f"{f'{sources} x {policies}':>18} {series:>8,} {size / 1e6:>7.2f}MB "
            f"{zipped / 1e3:>6.0f}KB {ours_ms:>7.1f}ms {snapshot_ms:>7.1f}ms "
            f"{generic_ms:>8.1f}ms {generic_ms / ours_ms:>6.1f}x  {verdict}"
        )
    print("ours: GET /metrics (OpenMetrics, gzip) median of 15; store: the snapshot alone;")
    print("generic: prometheus-client's exposition of the same registry, median of 3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
