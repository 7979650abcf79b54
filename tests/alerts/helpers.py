"""Shared set-up for the alert tests: rules and config from YAML, messages, clocks, the outbox.

Rules and the config that includes them are written into the test's directory and loaded as
`replyclock run` loads them. Times are in Berlin around a plain week of CET (UTC+1): Mon
2026-11-16 to Fri 2026-11-20, with the weekends Sat 14 / Sun 15 and Sat 21 / Sun 22.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerting import AlertPlanner, AlertSettings, Dispatcher
from monitor.alerts.base import Notifier
from monitor.config.loader import LoadedConfig, load_config
from monitor.config.rules import RuleBook, build_rulebook
from monitor.engine import Engine
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = 60
HOUR = 3600
TEAM_ADDRESS = "support@acme.example"

CONFIG = """\
store:
  path: var/replyclock.db
team:
  addresses: [support@acme.example]
  domains: [acme.example]
rules:
  - rules.yaml
sources:
  - name: inbox
    type: maildir
    path: maildir
"""

# A 24x7 policy: warning 30 minutes before the 1h target.
ROUND_THE_CLOCK = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
"""


def berlin(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant of November 2026 on the Berlin wall clock, as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


def load(tmp_path: Path, rules: str, alerts: str = "") -> tuple[LoadedConfig, RuleBook]:
    """Write ``rules.yaml`` and a config including it (plus an ``alerts`` section); load both."""
    (tmp_path / "maildir").mkdir(exist_ok=True)
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / "replyclock.yaml"
    config.write_text(CONFIG + alerts, encoding="utf-8")
    loaded = load_config(config)
    return loaded, build_rulebook(loaded)


def customer(
    mid: str,
    when: datetime,
    *,
    name: str = "Tom Baker",
    address: str = "tom@smallshop.example",
    subject: str = "Refund for order 4711",
    refs: tuple[str, ...] = (),
) -> MessageEvent:
    """A customer's message to the inbox."""
    return MessageEvent(
        source="inbox",
        identity=mid,
        timestamp=when,
        direction=Direction.INBOUND,
        reason="test",
        author=address,
        author_name=name,
        subject=subject,
        thread=ThreadRef(
            message_id=mid, references=refs, subject_key=subject.lower(), customer=address
        ),
        folder="INBOX",
    )


def team_reply(mid: str, when: datetime, to: str, *, refs: tuple[str, ...]) -> MessageEvent:
    """The team's reply (from the shared support address) in a conversation."""
    return MessageEvent(
        source="inbox",
        identity=mid,
        timestamp=when,
        direction=Direction.OUTBOUND,
        reason="test",
        author=TEAM_ADDRESS,
        author_name="Acme Support",
        subject="Re: your message",
        thread=ThreadRef(message_id=mid, references=refs, customer=to),
        folder="Sent",
    )


def ingest(store: Store, *events: MessageEvent, at: datetime) -> None:
    """Store messages as a poll would."""
    SourceSink(store, "inbox").accept(list(events), None, at)


def settings_for(loaded: LoadedConfig, *, threads: bool = True) -> AlertSettings:
    """The alert settings of a loaded config."""
    return AlertSettings.from_config(loaded, threads=threads)


@dataclass
class Alerting:
    """One store, its engine and planner: evaluate and plan at a given ``now``, as a poll does."""

    store: Store
    rules: RuleBook
    settings: AlertSettings
    engine: Engine = field(init=False)
    planner: AlertPlanner = field(init=False)

    def __post_init__(self) -> None:
        self.engine = Engine(self.store, self.rules)
        self.planner = AlertPlanner(self.store, self.rules, self.settings)

    def at(self, now: datetime) -> int:
        """Evaluate and plan at ``now``; return how many alerts were queued to send."""
        self.engine.evaluate(now)
        return self.planner.plan(now)


OUTBOX = ("id", "channel", "kind", "stage", "state", "send_after", "attempts", "thread_key")


def outbox(store: Store) -> list[dict[str, Any]]:
    """Every outbox row (the main columns), oldest first."""
    rows = store.conn.execute(f"SELECT {', '.join(OUTBOX)} FROM outbox ORDER BY id").fetchall()
    return [dict(zip(OUTBOX, row, strict=True)) for row in rows]


def stages(store: Store) -> list[tuple[str, str, str]]:
    """(stage, channel, state) of every outbox row, oldest first."""
    return [(r["stage"], r["channel"], r["state"]) for r in outbox(store)]


def payloads(store: Store, **where: str) -> list[dict[str, Any]]:
    """The stored content of outbox rows matching ``column=value`` pairs, oldest first."""
    clause = " AND ".join(f"{column} = ?" for column in where) or "1"
    return [
        json.loads(payload)
        for (payload,) in store.conn.execute(
            f"SELECT payload FROM outbox WHERE {clause} ORDER BY id", tuple(where.values())
        )
    ]


class ManualClock:
    """A monotonic clock that only moves when slept on: the Dispatcher's and FakeSlack's time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """The current reading."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Move time forward instead of waiting."""
        self.slept.append(seconds)
        self.now += seconds


def dispatcher(
    store: Store, notifier: Notifier, clock: ManualClock, *, burst: int = 20
) -> Dispatcher:
    """A Dispatcher on a manual clock (it never really sleeps)."""
    return Dispatcher(
        store,
        notifier,
        threading.Lock(),
        burst=burst,
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
