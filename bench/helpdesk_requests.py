"""API requests per 1,000 changed tickets for each helpdesk source, beside its baseline.

Each source polls a local fake of its vendor's API (the fakes of tests/, which speak the
vendors' documented wire formats) holding N changed tickets of a few comments each, into a real
SQLite store, and the fake counts the requests. Printed per source: requests per 1,000 changed
tickets for N = 1,000 and 5,000, the requests of a poll with nothing new (the floor every poll
pays), and the share of the vendor's documented rate limit used at 10,000 changed tickets a
day with a poll every 60 s.

* Zendesk: the ticket-event export (ours) beside the per-ticket audits it replaces (the
  baseline, the same source on a plan that refuses the export), on the same tickets, each
  ticket created inside the first sync's window.
* Freshdesk, Help Scout, GitHub: unchanged sources; the figure is the one to compare against.
  Freshdesk and Help Scout are measured on N copies of a recorded ticket / conversation; GitHub
  on its recorded 2012 repository (the fake cannot be copied N times), scaled per 1,000.

    python bench/helpdesk_requests.py [--sizes 1000 5000]
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "sources")]

from monitor.store import SourceSink, Store  # noqa: E402

POLLS_PER_DAY = 1440  # one poll a minute
TICKETS_PER_DAY = 10_000
COMMENTS = 4  # per ticket: the customer's request, a reply, a follow-up, a reply

# Documented rate limits assumed (requests per minute).
LIMITS = {
    "zendesk": [("Team", 200.0), ("Enterprise", 700.0), ("incremental exports", 10.0)],
    "freshdesk": [("Growth", 200.0), ("Enterprise", 700.0)],
    "helpscout": [("Mailbox API", 400.0)],
    "github": [("REST, per token", 5000 / 60)],
}


@dataclass
class Figure:
    source: str
    variant: str
    per_1000: dict[int, float]
    idle: int  # requests of a poll with nothing new
    limits: list[tuple[str, float]]
    incremental: bool = False  # which requests count against an export-only limit

    def per_day(self) -> float:
        """Requests a day at TICKETS_PER_DAY changed tickets and a poll a minute: the tickets'
        own requests (at the larger batch's rate) plus the floor of every poll."""
        largest = self.per_1000[max(self.per_1000)]
        return TICKETS_PER_DAY / 1000 * largest + POLLS_PER_DAY * self.idle


def in_store(run: Callable[[SourceSink], int], name: str) -> int:
    """Run a poll into a fresh SQLite store and return its request count."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench.db")
        try:
            return run(SourceSink(store, name))
        finally:
            store.close()


# --- Zendesk -------------------------------------------------------------------------------------


def zendesk(n: int, *, refuse: bool) -> tuple[int, int]:
    """(requests of the first sync of n tickets, requests of the next poll with nothing new)."""
    import test_zendesk as tz  # noqa: PLC0415 - the fake lives with its tests
    from servers.fake_api import FakeApi  # noqa: PLC0415

    api = FakeApi().start()
    try:
        fake = tz.FakeZendesk(api)
        if refuse:
            fake.events.refuse = 403
        agents = [{**tz.ADMIN, "id": 900 + i, "email": f"agent{i}@example.com"} for i in range(20)]
        tickets, users = [], [tz.ADMIN, *agents]
        opened = tz.NOW - timedelta(days=2)
        for t in range(1, n + 1):
            customer = {"id": 100_000 + t, "name": f"C{t}", "email": f"c{t}@example.com"}
            customer["role"] = "end-user"
            users.append(customer)
            agent = agents[t % len(agents)]["id"]
            base, when = t * 100, opened + timedelta(seconds=t)
            audits = [
                tz.audit(
                    t,
                    base + 1,
                    when,
                    customer["id"],
                    tz.comment(base + 2, customer["id"], "The export fails again."),
                    tz.status(base + 3, "Create", "new"),
                )
            ]
            for k in range(1, COMMENTS):
                author = agent if k % 2 else customer["id"]
                audits.append(
                    tz.audit(
                        t,
                        base + 10 * k + 1,
                        when + timedelta(hours=k),
                        author,
                        tz.comment(base + 10 * k + 2, author, f"Message {k} on ticket {t}."),
                        tz.status(base + 10 * k + 3, "Change", "pending" if k % 2 else "open"),
                    )
                )
            fake.ticket(t, {"audits": audits, "users": [customer, agent_user(agents, agent)]})
            tickets.append(
                {
                    "id": t,
                    "subject": f"ticket {t}",
                    "status": "open",
                    "requester_id": customer["id"],
                    "created_at": tz_time(when),
                    "updated_at": tz_time(when + timedelta(hours=COMMENTS)),
                    "tags": [],
                }
            )
        pages = [tickets[i : i + 1000] for i in range(0, len(tickets), 1000)]
        for i, chunk in enumerate(pages):
            after = f"page-{i + 1}"
            fake.export(
                None if i == 0 else f"page-{i}",
                {"tickets": chunk, "after_cursor": after, "end_of_stream": i == len(pages) - 1},
            )
        fake.export(f"page-{len(pages)}", {"tickets": [], "after_cursor": f"page-{len(pages)}"})
        src = tz.source(fake, since="30d")

        def first(sink: SourceSink) -> int:
            src.poll(sink, tz.NOW)
            synced = len(api.requests)
            api.requests.clear()
            src.poll(sink, tz.NOW + timedelta(minutes=1))
            return synced * 10_000 + len(api.requests)

        both = in_store(first, "helpdesk")
        return both // 10_000, both % 10_000
    finally:
        api.stop()


def agent_user(agents: list[dict[str, Any]], agent_id: int) -> dict[str, Any]:
    return next(a for a in agents if a["id"] == agent_id)


def tz_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- Freshdesk ----------------------------------------------------------------------------------


def freshdesk(n: int) -> tuple[int, int]:
    import test_freshdesk as tf  # noqa: PLC0415
    from servers.fake_api import FakeApi  # noqa: PLC0415

    api = FakeApi().start()
    try:
        fake = tf.FakeFreshdesk(api)
        ticket, conversations = tf.load("ticket_1.json"), tf.load("conversations_ticket_1.json")
        for t in range(1, n + 1):
            body = {**copy.deepcopy(ticket), "id": t}
            copies = [
                {**copy.deepcopy(c), "id": t * 10 + i, "ticket_id": t}
                for i, c in enumerate(conversations)
            ]
            fake.ticket(body, copies)
        src = tf.source(fake)

        def run(sink: SourceSink) -> int:
            src.poll(sink, tf.NOW)
            synced = len(api.requests)
            api.requests.clear()
            src.poll(sink, tf.NOW + timedelta(minutes=1))
            return synced * 10_000 + len(api.requests)

        both = in_store(run, "helpdesk")
        return both // 10_000, both % 10_000
    finally:
        api.stop()


# --- Help Scout ---------------------------------------------------------------------------------


def helpscout(n: int) -> tuple[int, int]:
    import test_helpscout as th  # noqa: PLC0415

    recorded = [c for c in th.load("conversations.json") if c.get("_embedded", {}).get("threads")]
    conversations = []
    for i in range(n):
        source = copy.deepcopy(recorded[i % len(recorded)])
        source["id"] = 10_000_000 + i
        for k, thread in enumerate(source["_embedded"]["threads"]):
            thread["id"] = 10_000_000 * (k + 1) + i
        conversations.append(source)
    server = th.FakeHelpScout(conversations, page_size=50)  # the API's page size
    server.api.start()
    try:
        src = th.make_source(server)

        def run(sink: SourceSink) -> int:
            src.poll(sink, th.NOW)
            synced = len([r for r in server.api.requests if r.path != th.TOKEN_PATH])
            server.api.requests.clear()
            src.poll(sink, th.NOW + timedelta(minutes=1))
            idle = len([r for r in server.api.requests if r.path != th.TOKEN_PATH])
            return synced * 10_000 + idle

        both = in_store(run, "helpscout")
        return both // 10_000, both % 10_000
    finally:
        server.api.stop()


# --- GitHub -------------------------------------------------------------------------------------


def github() -> tuple[int, int, int]:
    """(issues, requests of the first sync, requests of a poll with nothing new)."""
    import test_github as tg  # noqa: PLC0415

    server = tg.FakeGitHub(page_size=100)
    issues = tg.load("issues-2012-05-27.json")
    server.serve(issues, tg.AS_OF_27)
    server.api.start()
    try:
        src = tg.make_source(server)

        def run(sink: SourceSink) -> int:
            src.poll(sink, tg.NOW)
            synced = len(server.api.requests)
            server.api.requests.clear()
            src.poll(sink, tg.NOW + timedelta(minutes=1))
            return synced * 10_000 + len(server.api.requests)

        both = in_store(run, "github")
        return len(issues), both // 10_000, both % 10_000
    finally:
        server.api.stop()


def share(figure: Figure) -> str:
    """The share of each documented limit used at TICKETS_PER_DAY, a poll a minute."""
    parts = []
    for name, per_minute in figure.limits:
        if name == "incremental exports":
            # Only the export requests count here: each idle poll's, and the export pages
            # (1,000 tickets or ticket updates a page) of the day's tickets.
            pages = 1 + (COMMENTS if figure.incremental else 0)
            per_day = POLLS_PER_DAY * figure.idle + TICKETS_PER_DAY / 1000 * pages
        else:
            per_day = figure.per_day()
        parts.append(f"{name} {per_day / 1440 / per_minute:.1%}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    print(f"{platform.machine()}, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}")
    print(f"{TICKETS_PER_DAY:,} changed tickets/day, a poll every 60 s, {COMMENTS} comments/ticket")
    figures: list[Figure] = []
    for name, refuse in (("ticket-event export", False), ("per-ticket audits (baseline)", True)):
        per, idle = {}, 0
        for n in args.sizes:
            requests, idle = zendesk(n, refuse=refuse)
            per[n] = requests / n * 1000
        figures.append(Figure("zendesk", name, per, idle, LIMITS["zendesk"], not refuse))
    per, idle = {}, 0
    for n in args.sizes:
        requests, idle = freshdesk(n)
        per[n] = requests / n * 1000
    figures.append(Figure("freshdesk", "unchanged", per, idle, LIMITS["freshdesk"]))
    per, idle = {}, 0
    for n in args.sizes:
        requests, idle = helpscout(n)
        per[n] = requests / n * 1000
    figures.append(Figure("helpscout", "unchanged", per, idle, LIMITS["helpscout"]))
    issues, requests, idle = github()
    per = dict.fromkeys(args.sizes, requests / issues * 1000)
    figures.append(
        Figure("github", f"unchanged ({issues} recorded issues)", per, idle, LIMITS["github"])
    )
    header = " | ".join(f"req/1k @ {n:,}" for n in args.sizes)
    print(f"\n| source | read | {header} | idle poll | rate limit used at 10k/day |")
    print("| --- | --- |" + " --- |" * len(args.sizes) + " --- | --- |")
    for f in figures:
        cells = " | ".join(f"{f.per_1000[n]:,.1f}" for n in args.sizes)
        print(f"| {f.source} | {f.variant} | {cells} | {f.idle} | {share(f)} |")
    ours, base = figures[0], figures[1]
    n = max(args.sizes)
    print(
        f"\nZendesk: {ours.per_1000[n]:.1f} vs {base.per_1000[n]:.1f} requests per 1,000 changed "
        f"tickets ({base.per_1000[n] / ours.per_1000[n]:.0f}x fewer); target <= 20: "
        f"{'met' if ours.per_1000[n] <= 20 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
