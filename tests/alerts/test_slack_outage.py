"""End to end through an outage: six clocks go warning -> breach -> escalation 1 while Slack
answers 429, then 500, then refuses connections, then comes back.

The real SlackNotifier (slack-sdk) posts to the fake Slack; the planner and the Dispatcher run
once a minute as the daemon's jobs would. One manual clock drives the Dispatcher's pacing, the
fake's stamps and slack-sdk's own retry waits (Retry-After, connection retries), so nothing
really sleeps. What reached Slack is read back from the fake's record.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack
from slack_sdk.http_retry import builtin_handlers, handler

from alerts.helpers import (
    ALERTS,
    ESCALATING,
    SLACK,
    T0,
    Alerting,
    ManualClock,
    customer,
    dispatcher,
    ingest,
    load,
    minutes,
    outbox,
    settings_for,
)
from monitor.alerts.slack import SlackNotifier
from monitor.store import Store
from monitor.store.sqlite import metrics_snapshot

ARRIVALS = {n: 4 * (n - 1) for n in range(1, 7)}  # Shop n writes at T0 + 0, 4, ..., 20 minutes


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The manual clock, also the one slack-sdk's retry handlers sleep on."""
    manual = ManualClock()
    sleeper = SimpleNamespace(sleep=manual.sleep)
    monkeypatch.setattr(builtin_handlers, "time", sleeper)  # Retry-After waits
    monkeypatch.setattr(handler, "time", sleeper)  # connection-error retry waits
    return manual


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock.monotonic, rate_limit_per_channel=True) as fake:
        yield fake


_STAGE = re.compile(
    r"^(?:(?P<breach>SLA breached: )|(?P<escalation>Escalation 1: ))?Shop (?P<n>\d) "
)


def stage_and_shop(text: str | None) -> tuple[str, int]:
    """Which stage a posted alert is, and for which customer, from its fallback text."""
    found = _STAGE.match(text or "")
    assert found is not None, text
    stage = "breach" if found["breach"] else "escalation-1" if found["escalation"] else "warning"
    return stage, int(found["n"])


def test_outage_keeps_every_thread_in_stage_order_and_sends_each_alert_once(
    tmp_path: Path,
    store: Store,
    slack: FakeSlack,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through a 429 slack-sdk waits out, three 429s it gives up on, two 500s and 54 minutes of
    refused connections, each Slack thread opens with its lowest stage still true (the warning
    if it got out, else the breach), every later stage follows in order in that thread, no
    warning comes after its breach, each alert is posted exactly once, the outage costs 17
    tries rather than one per round, and nothing counts as a delivery failure."""
    loaded, book = load(tmp_path, ESCALATING, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, SlackNotifier(DEFAULT_TOKEN, slack.api_url), clock)
    for n, at in ARRIVALS.items():
        when = T0 + timedelta(minutes=at)
        ingest(
            store, customer(f"q{n}@x", when, name=f"Shop {n}", address=f"s{n}@x.example"), at=when
        )
    script = {
        34: lambda: slack.fail_next("chat.postMessage", "rate_limited", retry_after=3),
        38: lambda: [slack.fail_next("chat.postMessage", "rate_limited") for _ in range(3)],
        42: lambda: slack.fail_next("chat.postMessage", "server_error"),
        43: lambda: slack.fail_next("chat.postMessage", "server_error"),
        46: slack.refuse_connections,
        100: slack.accept_connections,
    }

    with caplog.at_level(logging.WARNING, logger="replyclock.alerts"):
        for m in range(30, 126):
            if m in script:
                script[m]()
            alerting.at(minutes(m))
            send.deliver(minutes(m))

    posted = [m for m in slack.messages[ALERTS] if m.by_bot]
    threads: dict[int, list[str]] = {}
    roots = {m.ts: stage_and_shop(m.text)[1] for m in posted if m.thread_ts is None}
    for message in posted:
        stage, shop = stage_and_shop(message.text)
        assert roots[message.thread_ts or message.ts] == shop, "a stage in another's thread"
        threads.setdefault(shop, []).append(stage)
    full = ["warning", "breach", "escalation-1"]
    assert threads == {1: full, 2: full, 3: full, 4: full, 5: full[1:], 6: full[1:]}
    assert len(roots) == 6
    # Each alert exactly once: one accepted post per outbox row marked sent, and back.
    sent = store.conn.execute("SELECT remote_ref FROM outbox WHERE state = 'sent'").fetchall()
    assert sorted(ts for (ts,) in sent) == sorted(m.ts for m in posted)
    assert Counter(c.status for c in slack.calls_to("chat.postMessage")) == {
        200: 16,
        429: 4,
        500: 2,
    }
    assert [s for s in clock.slept if 3 <= s < 4], "slack-sdk waited out Retry-After: 3"
    assert [(r["stage"], r["state"], r["attempts"]) for r in outbox(store)] == [
        ("warning", "sent", 0),  # Shop 1, before any trouble
        ("warning", "sent", 0),  # Shop 2: the single 429 was retried inside slack-sdk
        ("warning", "sent", 1),  # Shop 3: slack-sdk gave up after three 429s; sent at 39m
        ("warning", "sent", 2),  # Shop 4: two 500s; sent at 44m
        ("warning", "superseded", 9),  # Shop 5: tried through the outage, then its breach came
        ("warning", "superseded", 0),  # Shop 6: waited behind Shop 5's, then its breach came
        ("breach", "sent", 8),  # Shop 1: the head of the channel for the rest of the outage
        *[("breach", "sent", 0)] * 5,
        *[("escalation-1", "sent", 0)] * 6,
    ]
    deferred = Counter(
        r.replyclock_fields["error"].split(" (")[0]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "alert delivery deferred"
    )
    assert deferred == {
        "Slack answered ratelimited": 1,
        "Slack answered internal_error": 2,
        "cannot reach Slack": 17,
    }
    ours = [r.levelname for r in caplog.records if r.name == "replyclock.alerts"]
    assert ours == ["WARNING"] * 20  # one line per deferred try; no error: nothing failed for good
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(refused) == 17 * 2  # slack-sdk's own log: each try and its one connection retry
    snapshot = metrics_snapshot(store)
    assert snapshot.delivery_failures == ()
    assert sorted(snapshot.alerts_sent) == [
        ("#sla-alerts", "breach", 6),
        ("#sla-alerts", "escalation", 6),
        ("#sla-alerts", "warning", 4),
    ]
