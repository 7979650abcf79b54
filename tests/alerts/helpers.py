"""Shared set-up for the alert tests: rules and config from YAML, messages, clocks, the outbox.

Rules and the config that includes them are written into the test's directory and loaded as
`replyclock run` loads them. Times are in Berlin around a plain week of CET (UTC+1): Mon
2026-11-16 to Fri 2026-11-20, with the weekends Sat 14 / Sun 15 and Sat 21 / Sun 22.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor.alerting import AlertPlanner, AlertSettings, Dispatcher
from monitor.alerts.base import Notifier, Posted
from monitor.alerts.content import AlertContent
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
# The same with an escalation 30 minutes after the breach.
ESCALATING = ROUND_THE_CLOCK + "    escalation:\n      - after: 30m\n"
# An alerts section for Slack's #sla-alerts (the tests hand the Dispatcher its notifier).
SLACK = 'alerts:\n  slack: {token: xoxb-unused, channel: "#sla-alerts"}\n'
ALERTS = "C0ALERTS01"  # the fake Slack's id of #sla-alerts


def berlin(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant of November 2026 on the Berlin wall clock, as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


T0 = berlin(16, 10)  # Monday 10:00 in Berlin (09:00 UTC)


def minutes(count: float) -> datetime:
    """T0 plus a number of minutes."""
    return T0 + timedelta(minutes=count)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifierCall:
    """One call a RecordingNotifier took, and how it ended."""

    method: str  # post | update
    channel: str
    title: str
    thread: str | None  # post: the root it replied to; update: the message it edited
    ts: str | None  # the message id it answered with, None when it raised
    error: str | None = None


class RecordingNotifier:
    """A Notifier that keeps every call it takes and raises the errors it is told to.

    ``fail_next(channel, error)`` queues an error for the next call to a channel; while
    ``down[channel]`` is set, every call to that channel raises it (an outage).
    """

    name = "recording"
    threads = True
    pace_s = 1.0

    def __init__(self) -> None:
        self.calls: list[NotifierCall] = []
        self.down: dict[str, Exception] = {}
        self._queued: dict[str, deque[Exception]] = {}
        self._ts = itertools.count(1)

    def fail_next(self, channel: str, *errors: Exception) -> None:
        """Raise these errors, one per call, on the next calls to ``channel``."""
        self._queued.setdefault(channel, deque()).extend(errors)

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        """Record the post; raise the channel's error, if any, or answer with a new ts."""
        return self._take("post", channel, content, thread.ts if thread else None)

    def update(self, posted: Posted, content: AlertContent) -> None:
        """Record the edit; raise the channel's error, if any."""
        self._take("update", posted.channel_id, content, posted.ts)

    def _take(self, method: str, channel: str, content: AlertContent, thread: str | None) -> Posted:
        queued = self._queued.get(channel)
        error = queued.popleft() if queued else self.down.get(channel)
        ts = None if error else f"ts{next(self._ts)}"
        self.calls.append(
            NotifierCall(
                method=method,
                channel=channel,
                title=content.title,
                thread=thread,
                ts=ts,
                error=str(error) if error else None,
            )
        )
        if error is not None:
            raise error
        assert ts is not None
        return Posted(channel_id=channel, ts=ts)

    def delivered(self, channel: str) -> list[NotifierCall]:
        """The calls to ``channel`` that succeeded, in order."""
        return [c for c in self.calls if c.channel == channel and c.error is None]
