"""`replyclock demo`: a live support inbox in ./var/demo, watched by the real daemon.

It writes a Maildir of realistic conversations dated relative to now, a config and rules with
short targets (minutes, so warnings and breaches happen while you watch), and starts the
daemon on it with alerts written to the console and metrics on 127.0.0.1:9465. Every few
seconds a new customer message arrives, and now and then the team answers one. Nothing
outside ./var/demo is written.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TextIO

DEMO_RULES = """\
# Demo rules: targets of minutes, so warnings and breaches happen while you watch.
calendars:
  office:
    timezone: Europe/Berlin
    hours: {daily: ["00:00-24:00"]}
policies:
  - name: vip
    match: {sender_domain: [bigcustomer.example]}
    calendar: office
    targets: {first_response: 2m, next_response: 3m}
    warning: 50%
    escalation:
      - {after: 1m, mention: ["<!subteam^S0LEADS001>"]}
  - name: standard
    calendar: office
    targets: {first_response: 4m, next_response: 6m}
    warning: 75%
"""

DEMO_CONFIG = """\
# Written by `replyclock demo`; edit freely, it is rewritten only when missing.
store: {{path: store.db}}
metrics: {{listen: "{listen}"}}
team:
  addresses: [support@acme.example]
  domains: [acme.example]
rules: [rules.yaml]
sources:
  - name: demo-inbox
    type: maildir
    path: maildir
    sent_folders: [Sent]
    poll_interval: 3s
    since: 1d
"""

CUSTOMERS = (
    ("Maria Lopez", "maria@bigcustomer.example"),
    ("Tom Baker", "tom@smallshop.example"),
    ("Priya Shah", "priya@startup.example"),
    ("Kai Sato", "kai@design.example"),
    ("Björn Müller", "bjoern@kunde.example"),
    ("Ops Team", "ops@bigcustomer.example"),
    ("Lena Fischer", "lena@partner.example"),
    ("Sam Okafor", "sam@logistics.example"),
)
SUBJECTS = (
    "Invoice shows the wrong VAT",
    "Cannot log in after password reset",
    "Export to CSV misses the last row",
    "Logo upload fails with large files",
    "Frage zur Rechnung über März",
    "API returns 502 for EU tenants",
    "How do I add a second admin?",
    "Shipment label is blank",
)


@dataclass
class DemoMailbox:
    """The demo's Maildir: writes customer mail and team replies with arrival times."""

    root: Path
    counter: itertools.count[int]

    def _write(self, folder: str, text: str, when: datetime) -> None:
        base = self.root / ("." + folder if folder != "INBOX" else "")
        name = f"{int(when.timestamp())}.D{next(self.counter)}.demo:2,"
        path = base / "cur" / name
        path.write_text(text, encoding="utf-8")
        os.utime(path, (when.timestamp(), when.timestamp()))

    def customer(self, number: int, when: datetime) -> str:
        """A customer's question; returns its Message-ID."""
        name, address = CUSTOMERS[number % len(CUSTOMERS)]
        subject = SUBJECTS[number % len(SUBJECTS)]
        message_id = f"demo-{number}@{address.split('@')[1]}"
        self._write(
            "INBOX",
            f"From: {name} <{address}>\nTo: Acme Support <support@acme.example>\n"
            f"Subject: {subject}\nDate: {format_datetime(when)}\nMessage-ID: <{message_id}>\n"
            "Content-Type: text/plain; charset=utf-8\n\nHello, could you help?\n",
            when,
        )
        return message_id

    def reply(self, number: int, parent: str, when: datetime) -> None:
        """The team's answer to a question, in the Sent folder."""
        _, address = CUSTOMERS[number % len(CUSTOMERS)]
        self._write(
            "Sent",
            f"From: Acme Support <support@acme.example>\nTo: {address}\n"
            f"Subject: Re: {SUBJECTS[number % len(SUBJECTS)]}\nDate: {format_datetime(when)}\n"
            f"Message-ID: <reply-{number}@acme.example>\nIn-Reply-To: <{parent}>\n"
            f"References: <{parent}>\nContent-Type: text/plain; charset=utf-8\n\nSure!\n",
            when,
        )

    def autoreply(self, when: datetime) -> None:
        """An out-of-office reply from a customer: it must start no clock."""
        self._write(
            "INBOX",
            "From: Lena Fischer <lena@partner.example>\nTo: support@acme.example\n"
            f"Subject: Automatic reply: Your request\nDate: {format_datetime(when)}\n"
            f"Message-ID: <ooo-{next(self.counter)}@partner.example>\n"
            "Auto-Submitted: auto-replied\n\nI am out of the office.\n",
            when,
        )


def prepare(directory: Path, listen: str, now: datetime) -> tuple[Path, DemoMailbox]:
    """Write a fresh demo mailbox (and the config and rules when missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    maildir = directory / "maildir"
    shutil.rmtree(maildir, ignore_errors=True)
    for sub in ("cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for stale in ("store.db", "store.db-wal", "store.db-shm", "store.db.lock"):
        (directory / stale).unlink(missing_ok=True)
    config = directory / "replyclock.yaml"
    if not config.exists():
        config.write_text(DEMO_CONFIG.format(listen=listen), encoding="utf-8")
    rules = directory / "rules.yaml"
    if not rules.exists():
        rules.write_text(DEMO_RULES, encoding="utf-8")
    box = DemoMailbox(maildir, itertools.count(1))
    # A morning's history: answered in time, answered late, waiting, one already breached.
    for number, minutes_ago, answered_after in (
        (0, 30, 1),
        (1, 25, 8),
        (2, 3, None),
        (3, 5, None),
        (4, 1, None),
        (5, 2, None),
    ):
        asked = now - timedelta(minutes=minutes_ago)
        parent = box.customer(number, asked)
        if answered_after is not None:
            box.reply(number, parent, asked + timedelta(minutes=answered_after))
    box.autoreply(now - timedelta(minutes=4))
    return config, box


class DemoFeeder:
    """New customer mail every few seconds, and answers to some of the waiting ones."""

    def __init__(self, box: DemoMailbox, seed: int = 7) -> None:
        self.box = box
        self.rng = random.Random(seed)  # noqa: S311 - a repeatable demo, not cryptography
        self.numbers = itertools.count(100)
        self.waiting: list[tuple[int, str]] = []

    def tick(self) -> None:
        """One step of the demo's life."""
        now = datetime.now(UTC)
        if self.waiting and self.rng.random() < 0.35:
            number, parent = self.waiting.pop(self.rng.randrange(len(self.waiting)))
            self.box.reply(number, parent, now)
            return
        number = next(self.numbers)
        self.waiting.append((number, self.box.customer(number, now)))


def banner(config: Path, listen: str, out: TextIO) -> None:
    """Where to look while the demo runs."""
    print(
        f"""
replyclock demo: a live support inbox in {config.parent}/maildir
  alerts          are printed below as log lines (msg=... alert=warning|breach|escalation)
  metrics         http://{listen}/metrics   (readiness: /readyz)
  who is waiting  replyclock status -c {config}
  one timeline    replyclock explain -c {config} <ID from status>
New customer mail arrives every 5 seconds; Ctrl-C stops the demo.
""",
        file=out,
    )
    out.flush()


def default_directory() -> Path:
    """./var/demo under the current directory."""
    return Path.cwd() / "var" / "demo"


def stderr() -> TextIO:
    """Where the demo banner goes."""
    return sys.stderr
