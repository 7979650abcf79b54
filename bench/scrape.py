"""Scrape time of /metrics on a large store: 100,000 conversations and 1,000,000 messages.

Builds the store directly in SQLite (10 messages per conversation, 5% of conversations
waiting, 2 sources x 3 policies), counts the clock totals once as the engine keeps them, then
times a full scrape (collector + text exposition, median of 25) and, in the same run, a naive
scrape that aggregates the clock history and the messages at scrape time, which is what
persisted totals avoid. Target: under 50 ms.

    python bench/scrape.py [--conversations 100000] [--messages-per 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import generate_latest

from monitor.daemon import StoreSnapshots
from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.sla.calendar import BusinessCalendar, parse_hours
from monitor.sla.policy import DEFAULT_RESPONSE_BUCKETS
from monitor.store import Store
from monitor.store import totals as totals_module

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SOURCES = ("support", "billing")
POLICIES = ("vip", "standard", "urgent")


def build(path: Path, conversations: int, per: int) -> None:
    rng = random.Random(3)
    store = Store.open(path)
    now = int(NOW.timestamp())
    conn = store.conn
    conv_rows, message_rows, clock_rows = [], [], []
    for cid in range(1, conversations + 1):
        source, policy = rng.choice(SOURCES), rng.choice(POLICIES)
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
        for source in SOURCES:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-per", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(path, args.conversations, args.messages_per)
        print(f"built store in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        calendar = BusinessCalendar(
            timezone="Europe/Berlin", weekly={d: [parse_hours("09:00-17:00")] for d in range(5)}
        )
        policies = [
            PolicyInfo(
                name=name,
                calendar=calendar,
                targets={"first_response": 3600, "next_response": 7200},
                buckets=DEFAULT_RESPONSE_BUCKETS,
            )
            for name in POLICIES
        ]
        writer = Store.open(path)
        collector = ReplyclockCollector(
            snapshot=StoreSnapshots(writer), sources=SOURCES, policies=policies, clock=lambda: NOW
        )
        registry = build_registry(collector)
        generate_latest(registry)  # warm: opens the reader connection
        ours = []
        for _ in range(25):
            t0 = time.perf_counter()
            body = generate_latest(registry)
            ours.append(time.perf_counter() - t0)
        naive = []
        for _ in range(5):
            t0 = time.perf_counter()
            naive_scrape(path)
            naive.append(time.perf_counter() - t0)
        writer.close()
    ours_ms, naive_ms = statistics.median(ours) * 1000, statistics.median(naive) * 1000
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    total_messages = args.conversations * args.messages_per
    print(
        f"Scrape of {args.conversations:,} conversations, {total_messages:,} messages ({machine})"
    )
    print(f"{'replyclock /metrics (median of 25)':44} {ours_ms:>8.1f} ms  ({len(body):,} bytes)")
    print(f"{'naive: aggregate history per scrape (median of 5)':44} {naive_ms:>8.1f} ms")
    print(f"{'ratio naive / ours':44} {naive_ms / ours_ms:>8.1f}x")
    print(f"target: under 50 ms -> {'met' if ours_ms < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
