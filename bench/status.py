"""`replyclock status` on a store with 14,000 conversations awaiting a reply.

Builds a copy of the shipped example (examples/demo.yaml and rules/) whose store holds N
waiting conversations (1-4 messages each, a third of them answered once and asked again,
under the three example policies) and as many answered ones, evaluated once by the engine as
the daemon would. Then times, in one run:

- ours: ``replyclock status`` as a user runs it, in process (``main([...])`` with the output
  in a buffer, median of 5) and as a subprocess (interpreter start and imports included, CPU
  and wall time, median of 3), beside ``replyclock --version`` as a subprocess (the least any
  command costs);
- baseline: the same listing with every candidate conversation evaluated in full from its
  messages into full values, each cell rendered by ``strftime`` and ``format_duration`` (the
  listing as it was made before it reused the stored clocks); its output must equal ours
  line for line;
- floor: the plain SQL read of the same rows (id, source, policy, state, waited, target, due,
  customer, subject of every waiting conversation), which any listing must at least do.
Target: under 0.3 s for 14,000 waiting conversations.

    python bench/status.py [--n 14000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor import cli  # noqa: E402
from monitor.alerting import thread_key  # noqa: E402
from monitor.config.loader import load_config  # noqa: E402
from monitor.config.rules import RuleBook, build_rulebook  # noqa: E402
from monitor.durations import format_duration  # noqa: E402
from monitor.engine import Engine, WaitingConversation  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.store.sqlite import latest_snooze  # noqa: E402

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
SOURCE = "acme-support"
CUSTOMERS = ("ann@smallshop.example", "ops@bigcustomer.example", "kai@design.example")
SUBJECTS = ("Cannot log in", "URGENT: API is down", "Invoice question", "Logo upload fails")


def build(root: Path, waiting: int) -> Path:
    """Copy the example config to ``root`` and fill its store; returns the config path."""
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copytree(REPO / "rules", root / "rules")
    config = root / "examples" / "demo.yaml"
    loaded = load_config(config)
    rng = random.Random(11)
    now = int(NOW.timestamp())
    conversations, messages = [], []
    for cid in range(1, 2 * waiting + 1):
        customer, subject = rng.choice(CUSTOMERS), rng.choice(SUBJECTS)
        start = now - rng.randint(600, 30 * 86400)
        times = [start]
        directions = ["inbound"]
        if rng.random() < 0.35:  # answered once, then the customer asked again
            times += [start + rng.randint(60, 3600), start + rng.randint(3700, 86400)]
            directions += ["outbound", "inbound"]
        if cid % 2 == 0:  # every other conversation is answered: not in the listing
            times.append(times[-1] + rng.randint(60, 7200))
            directions.append("outbound")
        times = [min(t, now - 1) for t in times]
        for n, (at, direction) in enumerate(zip(times, directions, strict=True)):
            author = customer if direction == "inbound" else "agent@acme.example"
            messages.append(
                (SOURCE, f"m{cid}.{n}", f"m{cid}.{n}@x.example", cid, at, direction, "test",
                 author, subject, "INBOX" if direction == "inbound" else "Sent", now)
            )  # fmt: skip
        conversations.append((cid, SOURCE, subject, customer, times[0], times[-1], now))
    store = Store.open(loaded.config.store.path)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO conversations (id, source, subject, customer, first_message_at, "
            "last_message_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            conversations,
        )
        conn.executemany(
            "INSERT INTO messages (source, identity, message_id, conversation_id, timestamp, "
            "direction, reason, author, subject, folder, first_seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            messages,
        )
    Engine(store, build_rulebook(loaded)).evaluate(NOW)  # the daemon's state, as it stores it
    store.close()
    return config


def plain_read(db: Path) -> list[tuple[object, ...]]:
    """The baseline: read the listing's columns of every waiting conversation, sorted."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT id, source, policy, state, waited_seconds, target_seconds, due_at, customer, "
            "subject FROM conversations WHERE state IN ('ok', 'warning', 'breached') "
            "ORDER BY target_seconds - waited_seconds, id"
        ).fetchall()
    finally:
        conn.close()


def waiting_in_full(
    engine: Engine, now: datetime, source: str | None = None
) -> list[WaitingConversation]:
    """The baseline listing: every candidate conversation evaluated from its messages."""
    rows = []
    for conversation, messages, actions in engine._waiting_candidates(source):
        policy, verdicts = engine._measure(conversation, messages, actions, now)
        verdict = verdicts.awaiting
        if verdict is not None:
            started = int(verdict.clock.started_at.timestamp())
            snooze = latest_snooze(
                actions, thread_key(conversation.id, verdict.clock.kind, started)
            )
            rows.append(
                WaitingConversation(
                    conversation=conversation,
                    policy=policy,
                    verdict=verdict,
                    snoozed=snooze if snooze and snooze.until and snooze.until > now else None,
                )
            )
    rows.sort(key=lambda row: (row.verdict.remaining, row.conversation.id))
    return rows


def run_status_in_full(config: Path) -> str:
    """The baseline: ``status``'s table with every candidate evaluated in full, rendered cell
    by cell as the command did before."""
    loaded = load_config(config)
    rules = build_rulebook(loaded)
    store = Store.open(loaded.config.store.path, readonly=True)
    try:
        rows = waiting_in_full(Engine(store, rules), NOW)
    finally:
        store.close()
    return render_in_full(rows, rules)


def render_in_full(rows: list[WaitingConversation], rules: RuleBook) -> str:
    """The status table of full rows: ``strftime`` of each due time in its policy's zone."""
    table = [("ID", "SOURCE", "POLICY", "STATE", "WAITED", "TARGET", "DUE", "CUSTOMER", "SUBJECT")]
    for row in rows:
        v = row.verdict
        zone = rules.calendar_for(row.policy).zone
        state = v.state.value
        if row.snoozed is not None and row.snoozed.until is not None:
            state += f", snoozed until {row.snoozed.until.astimezone(zone):%a %d %b %H:%M %Z}"
        table.append(
            (
                str(row.conversation.id),
                row.conversation.source,
                row.policy.name,
                state,
                format_duration(v.business_seconds, days=False),
                format_duration(v.target),
                v.due_at.astimezone(zone).strftime("%a %d %b %H:%M %Z"),
                row.conversation.customer[:40],
                row.conversation.subject[:50],
            )
        )
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.append(
        f"{len(rows)} awaiting a reply; WAITED is business time under each policy's calendar. "
        "`replyclock explain ID` shows why."
    )
    return "\n".join(lines) + "\n"


def run_status(config: Path) -> str:
    """``replyclock status`` in process at NOW, its output captured."""
    out = io.StringIO()
    with (
        mock.patch.object(cli, "datetime", _FrozenDatetime),
        contextlib.redirect_stdout(out),
    ):
        code = cli.main(["status", "-c", str(config)])
    if code != 0:
        raise SystemExit(f"status exited {code}")
    return out.getvalue()


def subprocess_times(argv: list[str], repeat: int = 3) -> tuple[float, float]:
    """Median CPU and wall seconds of ``python -m monitor ARGV`` (output discarded)."""
    cpu, wall = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "monitor", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
    return statistics.median(cpu), statistics.median(wall)


class _FrozenDatetime(datetime):
    """``datetime`` whose ``now`` is NOW, so the listing matches the store as built."""

    @classmethod
    def now(cls, tz: object = None) -> _FrozenDatetime:  # noqa: ARG003 - the CLI asks for UTC
        return cls.fromtimestamp(NOW.timestamp(), UTC)


def timed(function: object, repeat: int) -> tuple[float, object]:
    """Median CPU seconds of ``repeat`` calls, and the last result. CPU time, not wall time:
    on a shared machine waiting for a core is not the listing's cost."""
    assert callable(function)
    times, result = [], None
    for _ in range(repeat):
        started = time.process_time()
        result = function()
        times.append(time.process_time() - started)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=14_000, help="waiting conversations")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        config = build(Path(tmp), args.n)
        built_s = time.perf_counter() - started
        db = Path(tmp) / "var" / "demo.db"
        floor_s, rows = timed(lambda: plain_read(db), args.repeat)
        ours_s, output = timed(lambda: run_status(config), args.repeat)
        baseline_s, expected = timed(lambda: run_status_in_full(config), args.repeat)
        assert isinstance(rows, list)
        assert isinstance(output, str)
        if output != expected:
            raise SystemExit("status differs from the listing evaluated in full")
        listed = [int(line.split()[0]) for line in output.splitlines()[1:-1]]
        if sorted(listed) != sorted(int(str(r[0])) for r in rows):
            raise SystemExit(f"status listed {len(listed)} rows, the store holds {len(rows)}")
        process_s, process_wall_s = subprocess_times(["status", "-c", str(config)])
        version_s, version_wall_s = subprocess_times(["--version"])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"replyclock status, {len(rows):,} waiting conversations ({machine})")
    print(f"store built and evaluated in {built_s:.1f} s")
    print(f"{'':52} {'CPU seconds':>14} {'wall':>8}")
    print(f"{'ours: status in process (median of ' + str(args.repeat) + ')':52} {ours_s:>14.3f}")
    print(
        f"{'ours: status as a subprocess (interpreter start too)':52} {process_s:>14.3f} "
        f"{process_wall_s:>8.3f}"
    )
    print(
        f"{'  of which any command: --version as a subprocess':52} {version_s:>14.3f} "
        f"{version_wall_s:>8.3f}"
    )
    print(f"{'baseline: every candidate evaluated in full':52} {baseline_s:>14.3f}")
    print(f"{'floor: plain SQL read of the same rows':52} {floor_s:>14.3f}")
    print(f"{'speed-up over the baseline (same output)':52} {baseline_s / ours_s:>13.1f}x")
    print(f"{'ours / floor':52} {ours_s / floor_s:>13.1f}x")
    verdict = "met" if ours_s < 0.3 else "NOT met"
    print(f"target: status of {len(rows):,} waiting conversations < 0.3 s -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
