"""Latency of a new mail, from its APPEND to the store and to /metrics, with and without IDLE.

Loads a support mailbox of about 20,000 messages (INBOX and Sent) into a test Dovecot for
each case, starts `replyclock run` on a fresh store with the default settings and waits for
/readyz (first sync done). Then it APPENDs new customer questions at a steady rate, each with
its own Message-ID, and a watcher thread notes when each is first seen

  - in the store: rows newer than the last one seen, read through a read-only connection;
  - on /metrics: the sum of `replyclock_awaiting_reply` grown by one more conversation
    (scraped only while a stored mail is not yet counted, so the probe adds no load between).

Latency is the time first seen minus the time just before the APPEND (one monotonic clock;
resolution: the watcher's step). Cases: IDLE on (the default; target p90 < 3 s) and IDLE off
with a shorter poll_interval (target p90 < poll_interval + 1 s). Baselines from the same
Dovecot: the IMAP round trip (NOOP) and a bare IDLE wakeup (APPEND on one connection until
EXISTS on another), the floor for the IDLE case. It exits 0 and says when a target is missed.
Needs root and Debian's dovecot-imapd, like the IMAP tests.

    python bench/new_mail_latency.py [--mails 100] [--rate 0.6] [--poll 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.mailbox import RULES, message, support_mailbox  # noqa: E402
from harness.probes import free_port, http_get, metric_samples, wait_for  # noqa: E402
from harness.service import Service, imap_source  # noqa: E402
from servers.dovecot import DovecotServer, ImapUser  # noqa: E402

from monitor.store import Store  # noqa: E402

TEAM = "Acme Support <support@acme.example>"
POLL_LINE = re.compile(r'msg="source polled" .*? new=(\d+) .*? duration_ms=([\d.]+)')


@dataclass
class Case:
    """One daemon configuration to measure."""

    name: str
    poll_s: int
    extra: str  # more YAML for the source
    target_s: float


@dataclass
class Observed:
    """What the watcher saw of one case: per mail, seconds from APPEND to each sighting."""

    stored: list[float] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    append_rtt: list[float] = field(default_factory=list)
    polls: list[tuple[int, float]] = field(default_factory=list)  # (new, ms) from the log


def summary(values: list[float]) -> tuple[float, float, float]:
    """Median, 90th percentile (nearest rank) and maximum."""
    ordered = sorted(values)
    p90 = ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]
    return statistics.median(ordered), p90, ordered[-1]


def load_user(server: DovecotServer, conversations: int, now: datetime) -> tuple[ImapUser, int]:
    """A new user whose INBOX and Sent hold the generated support mailbox."""
    user = server.create_user("latency")
    box = support_mailbox("bench", conversations, now)  # the same mail for every user
    server.write_maildir(user.username, "INBOX", box.inbox)
    server.write_maildir(user.username, "Sent", box.sent)
    # Let Dovecot index the folders once, as it would have long done for a real mailbox. A
    # fresh Maildir opened by two sessions at once (the daemon's poll and IDLE connections)
    # can answer STATUS with UIDVALIDITY 0, which the daemon stores; see bench/README.md.
    client = server.client(user.username, user.password, timeout=300)
    for folder in ("INBOX", "Sent"):
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        for start in range(0, len(uids), 1000):
            client.fetch(uids[start : start + 1000], ["FLAGS"])
    client.logout()
    return user, box.size


def new_question(tag: str, index: int) -> tuple[str, bytes]:
    """(identity, message): a new customer's first question, threaded with nothing stored."""
    now = datetime.now(UTC)
    mid = f"lat-{tag}-{index}@newcustomer{index}.example"
    data = message(
        sender=f"New Customer {index} <buyer{index}@newcustomer{index}.example>",
        to=TEAM,
        subject=f"Latency probe {tag}-{index}: where is my parcel?",
        message_id=mid,
        date=now,
    )
    return mid, data


def awaiting(port: int) -> float | None:
    """The sum of replyclock_awaiting_reply over every source, policy and state."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    found = metric_samples(body).items()
    return sum(v for (name, _), v in found if name == "replyclock_awaiting_reply")


class Watcher(threading.Thread):
    """Notes when each appended mail first shows in the store and in /metrics."""

    def __init__(self, db: Path, port: int, baseline: float, step: float) -> None:
        super().__init__(daemon=True)
        self.store = Store.open(db, readonly=True)
        self.port = port
        self.baseline = baseline
        self.step = step
        self.appended: list[tuple[str, float]] = []  # (identity, time before APPEND)
        self.stored: dict[str, float] = {}
        self.counted: list[float] = []  # when /metrics counted the k-th new conversation
        self.stop = threading.Event()
        self.last_id = self.store.conn.execute("SELECT MAX(id) FROM messages").fetchone()[0]

    def run(self) -> None:
        wanted: set[str] = set()
        while not self.stop.is_set():
            rows = self.store.conn.execute(
                "SELECT id, identity FROM messages WHERE id > ? ORDER BY id", (self.last_id,)
            ).fetchall()
            seen = time.perf_counter()
            # Mails are listed before their APPEND, so any row read is in this list by now.
            wanted.update(identity for identity, _ in self.appended)
            for row_id, identity in rows:
                self.last_id = row_id
                if identity in wanted:
                    self.stored.setdefault(identity, seen)
            if len(self.stored) > len(self.counted):
                total = awaiting(self.port)
                seen = time.perf_counter()
                new = int(total - self.baseline) if total is not None else 0
                while len(self.counted) < min(new, len(self.appended)):
                    self.counted.append(seen)
            self.stop.wait(self.step)
        self.store.close()

    def done(self) -> bool:
        return len(self.counted) >= len(self.appended) and len(self.stored) >= len(self.appended)


def run_case(
    server: DovecotServer, user: ImapUser, case: Case, args: argparse.Namespace
) -> Observed:
    """Start the daemon on a fresh store, append at a steady rate, and watch."""
    observed = Observed()
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Path(tmp), free_port())
        source = imap_source("support", user, poll=f"{case.poll_s}s", extra=case.extra)
        service.write(source, rules=RULES)
        started = time.perf_counter()
        service.start()
        try:
            if not wait_for(service.ready, timeout=600, step=0.2):
                print(f"{case.name}: daemon never ready:\n{service.log_text()}", file=sys.stderr)
                return observed
            print(f"{case.name}: ready after {time.perf_counter() - started:.1f}s", file=sys.stderr)
            time.sleep(2)  # let the alerts for history go out and the IDLE session settle
            baseline = awaiting(service.port)
            assert baseline is not None
            watcher = Watcher(service.db, service.port, baseline, args.step)
            watcher.start()
            appender = server.client(user.username, user.password)
            tag = secrets.token_hex(3)
            begin = time.perf_counter()
            for index in range(args.mails):
                delay = begin + index * args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                identity, data = new_question(tag, index)
                before = time.perf_counter()
                watcher.appended.append((identity, before))
                appender.append("INBOX", data, msg_time=datetime.now(UTC))
                observed.append_rtt.append(time.perf_counter() - before)
            appender.logout()
            wait_for(watcher.done, timeout=case.poll_s + 30, step=0.1)
            watcher.stop.set()
            watcher.join()
            for index, (identity, before) in enumerate(watcher.appended):
                if identity in watcher.stored:
                    observed.stored.append(watcher.stored[identity] - before)
                if index < len(watcher.counted):
                    observed.metrics.append(watcher.counted[index] - before)
        finally:
            service.stop()
            text = service.log_text()
            if args.keep_logs:
                (Path(args.keep_logs) / f"{case.name.split()[0]}-replyclock.log").write_text(text)
    # The daemon's own account of each poll after the first sync: mails read, milliseconds.
    found = POLL_LINE.findall(text)[1:]
    observed.polls = [(int(new), float(took)) for new, took in found]
    return observed


def imap_round_trip(server: DovecotServer, user: ImapUser, count: int = 50) -> list[float]:
    """NOOP round trips on a connection with INBOX selected."""
    client = server.client(user.username, user.password)
    client.select_folder("INBOX", readonly=True)
    times = []
    for _ in range(count):
        before = time.perf_counter()
        client.noop()
        times.append(time.perf_counter() - before)
    client.logout()
    return times


def idle_wakeup(server: DovecotServer, user: ImapUser, count: int = 20) -> list[float]:
    """Seconds from just before an APPEND on one connection to EXISTS in IDLE on another."""
    watcher = server.client(user.username, user.password)
    watcher.select_folder("INBOX", readonly=True)
    appender = server.client(user.username, user.password)
    times = []
    for index in range(count):
        watcher.idle()  # returns once the server has said "+ idling"
        _, data = new_question("idle", index)
        before = time.perf_counter()
        appender.append("INBOX", data, msg_time=datetime.now(UTC))
        deadline = before + 10
        while time.perf_counter() < deadline:
            responses = watcher.idle_check(timeout=1)
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                times.append(time.perf_counter() - before)
                break
        watcher.idle_done()
        time.sleep(0.1)
    watcher.logout()
    appender.logout()
    return times


def ms(value: float) -> str:
    """Milliseconds below a second, seconds above."""
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"


def row(label: str, values: list[float], width: int = 44) -> str:
    """A label and the median, p90 and max of ``values``."""
    if not values:
        return f"{label:{width}} nothing seen"
    return f"{label:{width}}" + "".join(f" {ms(v):>9}" for v in summary(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=100, help="mails to append (default 100)")
    parser.add_argument("--rate", type=float, default=0.6, help="seconds between (default 0.6)")
    parser.add_argument("--poll", type=int, default=10, help="poll_interval without IDLE (10)")
    parser.add_argument("--conversations", type=int, default=8500, help="~2.4 msgs each (8500)")
    parser.add_argument("--step", type=float, default=0.025, help="watcher step, s (0.025)")
    parser.add_argument("--cases", default="idle,poll", help="which cases (idle,poll)")
    parser.add_argument("--keep-logs", metavar="DIR", help="write the daemons' logs here")
    args = parser.parse_args()
    cases = [
        Case("IDLE (default)", 60, "", 3.0),
        Case(f"no IDLE, poll {args.poll}s", args.poll, "idle: false", args.poll + 1.0),
    ]
    cases = [c for c, key in zip(cases, ("idle", "poll"), strict=True) if key in args.cases]
    now = datetime.now(UTC).replace(microsecond=0)
    server = DovecotServer()
    server.start()
    try:
        # One mailbox per case and one for the baselines, all with the same mail.
        loaded = [load_user(server, args.conversations, now) for _ in range(len(cases) + 1)]
        size = loaded[0][1]
        rtt = imap_round_trip(server, loaded[-1][0])
        wakeup = idle_wakeup(server, loaded[-1][0])
        results = [
            (case, run_case(server, user, case, args))
            for case, (user, _) in zip(cases, loaded, strict=False)
        ]
    finally:
        server.stop()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"New-mail latency: {args.mails} mails, one every {args.rate} s, into a {size:,}-message")
    print(f"mailbox; daemon defaults otherwise ({machine})")
    print(f"{'baseline':44} {'median':>9} {'p90':>9} {'max':>9}")
    print(row("IMAP round trip (NOOP, n=50)", rtt))
    print(row(f"bare IDLE wakeup (APPEND→EXISTS, n={len(wakeup)})", wakeup))
    print(
        row("APPEND round trip (all appends below)", [t for _, o in results for t in o.append_rtt])
    )
    print(f"\n{'case':22} {'measure':21} {'median':>9} {'p90':>9} {'max':>9}  target")
    missed = []
    for case, observed in results:
        for measure, values in (
            ("APPEND→stored", observed.stored),
            ("APPEND→/metrics", observed.metrics),
        ):
            unseen = args.mails - len(values)
            met = bool(values) and not unseen and summary(values)[1] < case.target_s
            verdict = f"p90 < {case.target_s:g} s: {'met' if met else 'NOT MET'}"
            print(
                row(f"{case.name:22} {measure}", values)
                + f"  {verdict}"
                + (f" ({unseen} never seen)" if unseen else "")
            )
            if not met:
                missed.append(f"{case.name}, {measure}: {verdict}")
        # Where the daemon's time went: its polls, and how many mails each one read.
        news = [new for new, _ in observed.polls]
        label = f"{'':22} poll ({len(news)}; <= {max(news, default=0)} mails)"
        print(row(label, [took / 1000 for _, took in observed.polls]) + "  daemon's log")
    for line in missed:
        print(f"TARGET MISSED: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
