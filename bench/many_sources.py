"""The daemon at scale, as an operator of a large team runs it: N IMAP mailboxes with IDLE in
one process, beside a floor measured in the same run.

Sets up one Dovecot on loopback with N users (default 1,000), each mailbox about 200 messages
(customer mail in INBOX, the team's replies in Sent, some conversations still waiting), written
straight into Maildir and indexed once, as a real server long has. Dovecot's limits are raised
for the run, and so are the host's inotify limits when they are writable (put back at the end).
Then, one after the other:

  floor  a minimal imapclient program over the same connections: per mailbox one connection
         in IDLE on INBOX and one that asks STATUS of INBOX and Sent every poll interval, all
         on one thread; it notes when each IDLE connection sees EXISTS;
  ours   `replyclock run` on an empty store (N IMAP sources, IDLE on, poll_interval 60 s):
         seconds until /readyz answers 200 (or "not ready" after --ready-timeout);

and for each a steady window of --steady seconds with the same K new mails delivered to the
same mailboxes at even intervals (each written atomically into the Maildir's new/, as a local
delivery agent does): CPU % of one core (utime + stime of the process and its children),
RSS (VmRSS at the end, peak VmHWM), threads, open fds, and Dovecot's own CPU. During ours a
Prometheus-like scrape every 15 s times /metrics. After the window, ours gets K more mails, one
at a time, and /metrics is polled until `replyclock_awaiting_reply{source=...}` of that mailbox
counts one more conversation: that is the new-mail latency (the floor's is the same mail to its
IDLE connection's EXISTS). Last, the daemon is stopped and the waiting conversations per source
are compared four ways: what the mailboxes were made with plus the mails delivered, the
daemon's last /metrics, its store (`replyclock status --json`) and `replyclock run --once` on a
fresh store over the same mailboxes. Needs root and Debian's dovecot-imapd.

    .venv/bin/python bench/many_sources.py [--sources 1000] [--messages-per-source 200]
        [--steady 120] [--mails 20] [--ready-timeout 300] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import os
import platform
import random
import re
import selectors
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# What harness.mailbox.support_mailbox makes per conversation on average (question, reply,
# follow-ups, out-of-office answers): 200 messages are about 84 conversations.
MESSAGES_PER_CONVERSATION = 2.39
SCRAPE_EVERY_S = 15.0  # Prometheus' default scrape interval, during ours' steady window
SAMPLE_EVERY_S = 2.0  # RSS, threads and fds are sampled this often in a window
LATENCY_TIMEOUT_S = 30.0  # a new mail not counted by then is reported as missed
IMAP_CLIENTS_PER_PROCESS = 20  # Dovecot imap processes each serve this many connections
INOTIFY = Path("/proc/sys/fs/inotify")
TICKS = os.sysconf("SC_CLK_TCK")
AWAITING = re.compile(r'^replyclock_awaiting_reply\{[^}]*source="([^"]*)"[^}]*\} (\S+)', re.M)


# -- the floor: a minimal imapclient IDLE + STATUS loop, run as its own process ---------------


def floor_worker(spec_path: Path) -> int:
    """Per mailbox one IDLE connection on INBOX and one STATUS connection, on one thread.

    Imports nothing but imapclient and the standard library, so that its memory is that of
    the connections. Writes JSON lines: {"ready": t} once every connection is in IDLE, then
    {"exists": index, "t": t} for each EXISTS an IDLE connection sees (t: time.monotonic,
    which is one clock for every process on Linux).
    """
    import imapclient  # noqa: PLC0415 - the floor imports only what it needs

    spec = json.loads(spec_path.read_text())
    context = ssl.create_default_context(cafile=spec["ca_file"])
    poll_s = float(spec["poll_s"])
    users: list[list[str]] = spec["users"]

    def connect(username: str, password: str) -> imapclient.IMAPClient:
        client = imapclient.IMAPClient(spec["host"], port=spec["port"], ssl=False, timeout=30)
        client.starttls(context)
        client.login(username, password)
        return client

    def open_pair(index: int) -> tuple[imapclient.IMAPClient, imapclient.IMAPClient]:
        username, password = users[index]
        idle = connect(username, password)
        idle.select_folder("INBOX", readonly=True)
        idle.idle()
        return idle, connect(username, password)

    def emit(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    def status(index: int) -> None:
        for folder in ("INBOX", "Sent"):
            pollers[index].folder_status(folder, [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"])

    with ThreadPoolExecutor(8) as pool:
        pairs = list(pool.map(open_pair, range(len(users))))
    idles = [idle for idle, _ in pairs]
    pollers = [poller for _, poller in pairs]
    started = time.monotonic()
    emit({"ready": started})
    selector = selectors.DefaultSelector()
    for index, idle in enumerate(idles):
        selector.register(idle.socket(), selectors.EVENT_READ, index)
    # STATUS of each mailbox once a poll interval, spread over the interval.
    due = [(started + poll_s * index / len(users), index) for index in range(len(users))]
    heapq.heapify(due)
    idle_since = [started] * len(users)
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic())
        for key, _ in selector.select(timeout):
            index = key.data
            responses = idles[index].idle_check(timeout=0)
            if not responses:  # readable but nothing to read: the server closed it
                selector.unregister(key.fileobj)
                emit({"lost": index})
                continue
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                emit({"exists": index, "t": time.monotonic()})
                status(index)
        now = time.monotonic()
        while due[0][0] <= now:
            _, index = heapq.heappop(due)
            status(index)
            if now - idle_since[index] > 600:  # renew IDLE well before the server's limit
                idles[index].idle_done()
                idles[index].idle()
                idle_since[index] = now
            heapq.heappush(due, (now + poll_s, index))


# -- measuring a process tree from /proc -----------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def group(pgid: int) -> list[int]:
    """Every process of the process group (Dovecot runs in its own)."""
    return [pid for pid, _, pg in _processes() if pg == pgid]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def inotify_instances(pids: list[int]) -> int:
    """How many inotify instances the processes hold (what max_user_instances counts)."""
    count = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify":
                        count += 1
    return count


@dataclass
class Window:
    """What one steady window measured of a process tree, and of Dovecot beside it."""

    seconds: float = 0.0
    cpu_pct: float = 0.0
    dovecot_cpu_pct: float = 0.0
    dovecot_processes: int = 0
    dovecot_rss_mb: float = 0.0
    rss_mb: float = 0.0  # VmRSS at the end, summed over the tree
    peak_rss_mb: float = 0.0  # VmHWM, summed over the tree
    max_rss_mb: float = 0.0  # largest VmRSS sampled
    threads: int = 0
    fds: int = 0
    delivered: list[tuple[int, float]] = field(default_factory=list)  # (mailbox, t)
    scrapes: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes)


def sample(pid: int) -> tuple[float, float, int, int]:
    """(RSS MB, peak RSS MB, threads, fds) of the process tree now."""
    pids = tree(pid)
    rss = sum(status_kb(p, "VmRSS") for p in pids) / 1024
    peak = sum(status_kb(p, "VmHWM") for p in pids) / 1024
    threads = 0
    for p in pids:
        with contextlib.suppress(OSError):
            threads += len(os.listdir(f"/proc/{p}/task"))
    return rss, peak, threads, sum(open_fds(p) for p in pids)


def steady_window(
    pid: int,
    dovecot_pgid: int,
    seconds: float,
    targets: list[int],
    deliver: Callable[[int], float],
    scrape: Callable[[], tuple[float, int]] | None = None,
) -> Window:
    """Measure ``pid``'s tree for ``seconds`` while mails go to ``targets`` at even intervals."""
    window = Window()
    started = time.monotonic()
    cpu0, dovecot0 = cpu_seconds(tree(pid)), cpu_seconds(group(dovecot_pgid))
    events: list[tuple[float, int, str, int]] = [
        (started + seconds * (n + 1) / (len(targets) + 1), 0, "mail", target)
        for n, target in enumerate(targets)
    ]
    events += [(started + t, 1, "sample", 0) for t in _steps(SAMPLE_EVERY_S, seconds)]
    if scrape is not None:
        events += [(started + t, 2, "scrape", 0) for t in _steps(SCRAPE_EVERY_S, seconds)]
    for when, _, kind, target in sorted(events):
        time.sleep(max(0.0, when - time.monotonic()))
        if kind == "mail":
            window.delivered.append((target, deliver(target)))
        elif kind == "scrape" and scrape is not None:
            window.scrapes.append(scrape())
        else:
            rss, _, _, _ = sample(pid)
            window.max_rss_mb = max(window.max_rss_mb, rss)
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    wall = time.monotonic() - started
    window.seconds = wall
    window.cpu_pct = 100 * (cpu_seconds(tree(pid)) - cpu0) / wall
    window.dovecot_cpu_pct = 100 * (cpu_seconds(group(dovecot_pgid)) - dovecot0) / wall
    window.rss_mb, window.peak_rss_mb, window.threads, window.fds = sample(pid)
    server = group(dovecot_pgid)
    window.dovecot_processes = len(server)
    window.dovecot_rss_mb = sum(status_kb(p, "VmRSS") for p in server) / 1024
    window.max_rss_mb = max(window.max_rss_mb, window.rss_mb)
    return window


def _steps(every: float, seconds: float) -> list[float]:
    return [every * n for n in range(1, int(seconds / every) + 1) if every * n < seconds]


# -- host and server limits ------------------------------------------------------------------


def raise_inotify(sources: int) -> tuple[dict[str, int], dict[str, int], bool]:
    """Raise fs.inotify.max_user_instances / max_user_watches if writable: (before, after,
    written)."""
    wanted = {"max_user_instances": max(8192, 4 * sources), "max_user_watches": 1_048_576}
    before = {name: int((INOTIFY / name).read_text()) for name in wanted}
    written = True
    for name, value in wanted.items():
        if value > before[name]:
            try:
                (INOTIFY / name).write_text(f"{value}\n")
            except OSError:
                written = False
    after = {name: int((INOTIFY / name).read_text()) for name in wanted}
    return before, after, written


def restore_inotify(before: dict[str, int]) -> None:
    for name, value in before.items():
        with contextlib.suppress(OSError):
            (INOTIFY / name).write_text(f"{value}\n")


def dovecot_limits(sources: int) -> dict[str, int]:
    """Limits for two connections per mailbox (ours or the floor's, never both at once), with
    room for `run --once` and the set-up sessions."""
    connections = 2 * sources + 200
    return {
        "default_client_limit": connections + 1000,
        "imap_client_limit": IMAP_CLIENTS_PER_PROCESS,
        # Room for one process per connection all the same: Dovecot's master starts a new
        # imap process whenever none is free that very moment, so under a burst of logins a
        # process serves only two or three (a limit of connections / 20 was reached at 200
        # mailboxes, and logins were dropped).
        "imap_process_limit": connections + 100,
        "login_process_limit": 4,
        "mail_max_userip_connections": 20,
    }


def dovecot_overrides(limits: dict[str, int]) -> str:
    """Dovecot settings appended to the test server's config (later settings win, sections of
    the same name merge)."""
    return f"""
# Raised for bench/many_sources.py: two connections per mailbox, thousands in all.
default_client_limit = {limits["default_client_limit"]}
default_vsz_limit = 1G
protocol imap {{
  mail_max_userip_connections = {limits["mail_max_userip_connections"]}
}}
# High-performance login mode: a few long-lived imap-login processes, each proxying many
# connections (with STARTTLS the login process carries the TLS for the whole session).
service imap-login {{
  service_count = 0
  process_min_avail = 2
  process_limit = {limits["login_process_limit"]}
  client_limit = {limits["default_client_limit"]}
}}
# One imap process serves many connections (all mailboxes share one system user here).
service imap {{
  process_limit = {limits["imap_process_limit"]}
  client_limit = {limits["imap_client_limit"]}
}}
"""


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Ours:
    """What the daemon's run measured."""

    ready_s: float | None = None
    not_ready: str = ""
    window: Window | None = None
    latencies: list[float] = field(default_factory=list)
    missed: int = 0
    scrapes: list[tuple[float, int]] = field(default_factory=list)
    metrics_waiting: dict[str, int] = field(default_factory=dict)
    store_waiting: dict[str, int] = field(default_factory=dict)
    once_waiting: dict[str, int] = field(default_factory=dict)
    once_s: float | None = None
    inotify: int = 0


@dataclass
class Floor:
    """What the floor's run measured."""

    ready_s: float | None = None
    window: Window | None = None
    latencies: list[float] = field(default_factory=list)
    missed: int = 0
    lost: int = 0
    inotify: int = 0


def quantiles(values: list[float]) -> tuple[float, float, float] | None:
    """Median, 90th percentile (nearest rank) and maximum, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    p90 = ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]
    return statistics.median(ordered), p90, ordered[-1]


def waiting_by_source(text: str) -> dict[str, int]:
    """Per source, the sum of replyclock_awaiting_reply over policies and states."""
    found: Counter[str] = Counter()
    for source, value in AWAITING.findall(text):
        found[source] += int(float(value))
    return dict(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=1000, help="IMAP mailboxes (default 1000)")
    parser.add_argument("--messages-per-source", type=int, default=200, help="about this many")
    parser.add_argument("--steady", type=float, default=120, help="steady window, seconds")
    parser.add_argument("--mails", type=int, default=20, help="new mails per phase")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds for /readyz")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--host-limits-as-they-are",
        action="store_true",
        help="leave fs.inotify limits unchanged (to see Dovecot fall back to polling)",
    )
    parser.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker is not None:
        return floor_worker(args.floor_worker)
    return run(args)


def run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from harness.mailbox import RULES, TEAM, message, support_mailbox  # noqa: PLC0415
    from harness.probes import free_port, http_get  # noqa: PLC0415
    from harness.service import Service, imap_source  # noqa: PLC0415
    from servers.dovecot import DovecotServer, _system_user  # noqa: PLC0415

    if os.geteuid() != 0:
        print("needs root (Dovecot's own users run the mail processes)")
        return 2
    # SIGTERM ends the run like Ctrl-C, so the clean-up below runs.
    signal.signal(signal.SIGTERM, _interrupt)
    sources = args.sources
    conversations = max(1, round(args.messages_per_source / MESSAGES_PER_CONVERSATION))
    workdir = Path(tempfile.mkdtemp(prefix="replyclock-many-"))
    os.chmod(workdir, 0o755)
    limits = dovecot_limits(sources)
    overrides = dovecot_overrides(limits)

    class ScaleDovecot(DovecotServer):
        def _config(self) -> str:
            return super()._config() + overrides

    if args.host_limits_as_they_are:
        before = {
            n: int((INOTIFY / n).read_text()) for n in ("max_user_instances", "max_user_watches")
        }
        after, written = before, True
    else:
        before, after, written = raise_inotify(sources)
    server = ScaleDovecot(workdir / "dovecot")
    floor_proc: subprocess.Popen[str] | None = None
    daemon: Service | None = None
    mail_numbers = itertools.count(1)
    owner = _system_user("dovecot")
    ours, floor = Ours(), Floor()
    try:
        server.start()
        pgid = server._proc.pid if server._proc is not None else 0
        now = datetime.now(UTC).replace(microsecond=0)
        started = time.monotonic()
        users, expected, messages = [], Counter[str](), 0
        for index in range(sources):
            user = server.create_user("box")
            box = support_mailbox(f"s{index}", conversations, now)
            server.write_maildir(user.username, "INBOX", box.inbox)
            server.write_maildir(user.username, "Sent", box.sent)
            users.append(user)
            expected[f"box{index:04d}"] = box.waiting
            messages += box.size
        wrote_s = time.monotonic() - started

        def index_mailbox(user: Any) -> None:
            with server.session(user.username, user.password) as client:
                for folder in ("INBOX", "Sent"):
                    client.select_folder(folder, readonly=True)

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(index_mailbox, users))
        indexed_s = time.monotonic() - started
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} "
            "(other work on the machine shows here)"
        )
        print(
            f"{sources:,} mailboxes, {messages:,} messages ({messages / sources:.0f} each), "
            f"{sum(expected.values()):,} conversations waiting; written in {wrote_s:.1f} s, "
            f"indexed by Dovecot in {indexed_s:.1f} s"
        )
        print(
            "Dovecot limits raised: "
            f"default_client_limit={limits['default_client_limit']}, "
            f"service imap-login {{service_count=0, process_min_avail=2, "
            f"process_limit={limits['login_process_limit']}, "
            f"client_limit={limits['default_client_limit']}}}, "
            f"service imap {{process_limit={limits['imap_process_limit']}, "
            f"client_limit={limits['imap_client_limit']}}}, "
            f"mail_max_userip_connections={limits['mail_max_userip_connections']}, "
            "default_vsz_limit=1G"
        )
        if args.host_limits_as_they_are:
            print(f"fs.inotify left as it is: {before}")
        elif written:
            print(f"fs.inotify raised for the run (put back at the end): {before} -> {after}")
        else:
            print(f"fs.inotify is not writable here, left at {before}")

        rng = random.Random(sources)
        targets_window = [rng.randrange(sources) for _ in range(args.mails)]
        targets_latency = [rng.randrange(sources) for _ in range(args.mails)]

        def deliver(index: int) -> float:
            """A new customer's question written into the mailbox's new/ (tmp/ then rename,
            as a delivery agent does); the time just before the rename."""
            number = next(mail_numbers)
            when = datetime.now(UTC).replace(microsecond=0)
            data = message(
                sender=f"Buyer {number} <buyer{number}@newcustomer{number}.example>",
                to=TEAM,
                subject=f"Where is parcel {number}?",
                message_id=f"bench-{number}@newcustomer{number}.example",
                date=when,
            )
            folder = server.maildir(users[index].username, "INBOX")
            name = f"{int(when.timestamp())}.M{number}P{os.getpid()}.many-sources"
            temporary = folder / "tmp" / name
            temporary.write_bytes(data)
            os.chown(temporary, owner.pw_uid, owner.pw_gid)
            expected[f"box{index:04d}"] += 1
            moment = time.monotonic()
            os.rename(temporary, folder / "new" / name)
            return moment

        # The floor first: the same connections, nothing read or stored.
        spec = workdir / "floor.json"
        spec.write_text(
            json.dumps(
                {
                    "host": server.host,
                    "port": server.port,
                    "ca_file": str(server.ca_file),
                    "poll_s": 60,
                    "users": [[u.username, u.password] for u in users],
                }
            )
        )
        started = time.monotonic()
        floor_proc = subprocess.Popen(
            [sys.executable, __file__, "--floor-worker", str(spec)],
            stdout=subprocess.PIPE,
            text=True,
        )
        seen: list[tuple[int, float]] = []
        lost: list[int] = []
        ready_at: list[float] = []

        def read_floor(stream: Any) -> None:
            for line in stream:
                record = json.loads(line)
                if "ready" in record:
                    ready_at.append(record["ready"])
                elif "exists" in record:
                    seen.append((record["exists"], record["t"]))
                elif "lost" in record:
                    lost.append(record["lost"])

        reader = threading.Thread(target=read_floor, args=(floor_proc.stdout,), daemon=True)
        reader.start()
        while not ready_at and floor_proc.poll() is None:
            time.sleep(0.1)
        if not ready_at:
            print(f"the floor failed to connect (exit {floor_proc.returncode})")
            print(server.log_tail())
            return 1
        floor.ready_s = ready_at[0] - started
        print(f"floor: {2 * sources:,} connections in IDLE/STATUS after {floor.ready_s:.1f} s")
        floor.window = steady_window(floor_proc.pid, pgid, args.steady, targets_window, deliver)
        time.sleep(2)  # the last mail's EXISTS
        floor.inotify = inotify_instances(group(pgid))
        for index, moment in floor.window.delivered:
            later = [t - moment for i, t in seen if i == index and t >= moment]
            if later and min(later) < LATENCY_TIMEOUT_S:
                floor.latencies.append(min(later))
            else:
                floor.missed += 1
        floor.lost = len(lost)
        floor_proc.terminate()
        floor_proc.wait(timeout=30)
        floor_proc = None
        time.sleep(3)  # Dovecot closes the floor's sessions

        # Ours: `replyclock run` on an empty store.
        names = [f"box{index:04d}" for index in range(sources)]
        config = "".join(imap_source(name, user) for name, user in zip(names, users, strict=True))
        daemon = Service(workdir=workdir / "ours", port=free_port())
        daemon.workdir.mkdir()
        daemon.write(config, rules=RULES)

        def scrape() -> tuple[float, int]:
            begun = time.perf_counter()
            status, body = http_get(daemon.port, "/metrics", timeout=60)
            took = time.perf_counter() - begun
            return took, len(body.encode()) if status == 200 else 0

        started = time.monotonic()
        daemon.start()
        deadline = started + args.ready_timeout
        while time.monotonic() < deadline and daemon.alive():
            if daemon.ready():
                ours.ready_s = time.monotonic() - started
                break
            time.sleep(0.5)
        if ours.ready_s is None:
            status, reason = daemon.readyz()
            ours.not_ready = (
                f"not ready after {args.ready_timeout:.0f} s"
                if daemon.alive()
                else "the daemon exited"
            )
            print(f"ours: {ours.not_ready}; /readyz {status}: {reason.strip()[:300]}")
        else:
            print(f"ours: /readyz 200 after {ours.ready_s:.1f} s")
        assert daemon.process is not None
        ours.window = steady_window(
            daemon.process.pid, pgid, args.steady, targets_window, deliver, scrape
        )
        ours.inotify = inotify_instances(group(pgid))
        if ours.ready_s is not None:
            for index in targets_latency:
                name = names[index]
                _, body = http_get(daemon.port, "/metrics", timeout=60)
                counted = waiting_by_source(body).get(name, 0)
                moment = deliver(index)
                while True:
                    begun = time.perf_counter()
                    status, body = http_get(daemon.port, "/metrics", timeout=60)
                    ours.scrapes.append((time.perf_counter() - begun, len(body.encode())))
                    if waiting_by_source(body).get(name, 0) > counted:
                        ours.latencies.append(time.monotonic() - moment)
                        break
                    if time.monotonic() - moment > LATENCY_TIMEOUT_S:
                        ours.missed += 1
                        break
                    time.sleep(0.1)
                time.sleep(random.uniform(0.5, 1.5))
            # Every mail delivered has had its chance; the last /metrics is the daemon's word.
            time.sleep(5)
            _, body = http_get(daemon.port, "/metrics", timeout=60)
            ours.metrics_waiting = waiting_by_source(body)
        ours.scrapes += ours.window.scrapes
        try:
            code, took = daemon.stop(timeout=120)
            print(f"ours: stopped with exit code {code} in {took:.1f} s")
        except subprocess.TimeoutExpired:
            daemon.kill()
            print("ours: not stopped 120 s after SIGTERM; killed")
        ours.store_waiting = status_counts(daemon.config)

        if ours.ready_s is not None:  # a store still in its first sync cannot match
            once = Service(workdir=workdir / "once", port=free_port())
            once.workdir.mkdir()
            once.write(config, rules=RULES)
            started = time.monotonic()
            result = once.run_once(timeout=3600)
            ours.once_s = time.monotonic() - started
            if result.returncode != 0:
                print(f"run --once failed ({result.returncode}): {result.stderr[-2000:]}")
            ours.once_waiting = status_counts(once.config)
        report(ours, floor, dict(expected), server.log_path)
        return 0
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    finally:
        if floor_proc is not None and floor_proc.poll() is None:
            floor_proc.kill()
            floor_proc.wait()
        if daemon is not None:
            daemon.kill()
        server.stop()
        if not args.host_limits_as_they_are and written:
            restore_inotify(before)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def status_counts(config: Path) -> dict[str, int]:
    """Per source, how many conversations `replyclock status --json` lists as waiting."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "status", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    if result.returncode != 0:
        print(f"status --json failed ({result.returncode}): {result.stderr[-1000:]}")
        return {}
    return dict(Counter(json.loads(line)["source"] for line in result.stdout.splitlines()))


def report(
    ours: Ours,
    floor: Floor,
    expected: dict[str, int],
    dovecot_log: Path,
) -> None:
    """The results table, then the set-up facts a reader needs to trust it."""
    rows: list[tuple[str, str, str, str, str, str]] = []

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a is not None and b else "-"

    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "NO")

    def add(
        measure: str,
        mine: float | None,
        base: float | None,
        spec: str,
        target: str = "",
        ok: bool | None = None,
        *,
        mine_text: str = "",
    ) -> None:
        def fmt(value: float | None) -> str:
            return "-" if value is None else spec.format(value)

        rows.append(
            (measure, mine_text or fmt(mine), fmt(base), ratio(mine, base), target, met(ok))
        )

    ow, fw = ours.window, floor.window
    assert ow is not None
    assert fw is not None
    add(
        "ready from an empty store (floor: all in IDLE)",
        ours.ready_s,
        floor.ready_s,
        "{:.1f} s",
        "< 120 s",
        ours.ready_s is not None and ours.ready_s < 120,
        mine_text=ours.not_ready,
    )
    steady = "steady CPU, % of one core" + ("" if ours.ready_s else " (not ready: first sync)")
    add(steady, ow.cpu_pct, fw.cpu_pct, "{:.1f}%", "< 10%", ow.cpu_pct < 10)
    rows.append(
        ("CPU against the floor", "", "", ratio(ow.cpu_pct, fw.cpu_pct), "<= 3x",
         met(fw.cpu_pct > 0 and ow.cpu_pct / fw.cpu_pct <= 3))
    )  # fmt: skip
    add("Dovecot CPU meanwhile, % of one core", ow.dovecot_cpu_pct, fw.dovecot_cpu_pct, "{:.1f}%")
    add("Dovecot processes", ow.dovecot_processes, fw.dovecot_processes, "{:.0f}")
    add("Dovecot RSS, all processes", ow.dovecot_rss_mb, fw.dovecot_rss_mb, "{:.0f} MB")
    add(
        "RSS at the end of the window",
        ow.rss_mb,
        fw.rss_mb,
        "{:.0f} MB",
        "< 500 MB",
        ow.rss_mb < 500,
    )
    add("peak RSS (VmHWM)", ow.peak_rss_mb, fw.peak_rss_mb, "{:.0f} MB", "< 500 MB",
        ow.peak_rss_mb < 500)  # fmt: skip
    add("threads", ow.threads, fw.threads, "{:.0f}")
    add("open fds", ow.fds, fw.fds, "{:.0f}")
    mine_q, base_q = quantiles(ours.latencies), quantiles(floor.latencies)
    for position, label in enumerate(("p50", "p90", "max")):
        mine_v = mine_q[position] if mine_q else None
        base_v = base_q[position] if base_q else None
        target = "< 3 s" if label == "p90" else ""
        ok = (mine_v is not None and mine_v < 3 and ours.missed == 0) if label == "p90" else None
        add(f"new mail latency {label} (ours: to /metrics; floor: EXISTS)", mine_v, base_v,
            "{:.2f} s", target, ok, mine_text="" if ours.ready_s else "not measured")  # fmt: skip
    rows.append(
        ("new mails not seen within 30 s", str(ours.missed) if ours.ready_s else "-",
         str(floor.missed), "", "0",
         met(ours.missed == 0 and bool(ours.latencies)))
    )  # fmt: skip
    scrape_q = quantiles([s for s, _ in ours.scrapes])
    if scrape_q:
        add(
            "scrape of /metrics, median",
            scrape_q[0],
            None,
            "{:.3f} s",
            "< 0.1 s",
            scrape_q[0] < 0.1,
        )
        add("scrape of /metrics, max", scrape_q[2], None, "{:.3f} s")
        rows.append(
            ("scrape size", f"{max(b for _, b in ours.scrapes) / 1024:.0f} KB", "", "", "", "")
        )
    names = sorted(expected)

    def agree(found: dict[str, int]) -> str:
        differing = [n for n in names if found.get(n, 0) != expected[n]]
        if not found:
            return "not read"
        return "all equal" if not differing else f"{len(differing)} sources differ"

    total = sum(expected.values())
    rows.append(("waiting: made + delivered", f"{total:,}", "", "", "", ""))
    for label, found in (
        ("waiting: daemon's last /metrics", ours.metrics_waiting),
        ("waiting: daemon's store (status --json)", ours.store_waiting),
        ("waiting: run --once on a fresh store", ours.once_waiting),
    ):
        rows.append(
            (label, f"{sum(found.values()):,}, {agree(found)}", "", "", "equal",
             met(bool(found) and agree(found) == "all equal"))
        )  # fmt: skip
    header = ("measure", "ours", "floor", "ratio", "target", "met?")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
    print()
    print(
        f"window {ow.seconds:.0f} s, {len(ow.delivered)} mails delivered in each window, "
        f"{len(ours.latencies) + ours.missed} more for ours' latency; "
        f"ours' largest RSS sampled {ow.max_rss_mb:.1f} MB; "
        "run --once on a fresh store: "
        + (f"{ours.once_s:.1f} s" if ours.once_s is not None else "skipped (daemon not ready)")
    )
    print(
        f"inotify instances held by Dovecot: {floor.inotify} with the floor connected, "
        f"{ours.inotify} with ours; floor IDLE connections lost: {floor.lost}"
    )
    try:
        log = dovecot_log.read_text(errors="replace")
    except OSError:
        log = ""
    warnings = [line for line in log.splitlines() if "Warning" in line or "Error" in line]
    inotify_lines = [line for line in warnings if "notify" in line]
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"Dovecot log: {len(warnings)} warnings/errors, {len(inotify_lines)} about inotify")
    for line in warnings[:5]:
        print(f"  {line[:200]}")


if __name__ == "__main__":
    sys.exit(main())
