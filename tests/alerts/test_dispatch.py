"""Delivery: outbox rows through the real SlackNotifier (and the webhook and console ones) to
the fake Slack: threads and edits, pacing, bursts, failures, and never lost, never doubled.

The Dispatcher and FakeSlack share a manual clock, so pacing never really sleeps; the only real
wait is slack-sdk's own Retry-After handling (1 s) in the rate-limit test.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack, SlackMessage

from alerts.helpers import (
    ALERTS,
    BERLIN,
    ESCALATING,
    ROUND_THE_CLOCK,
    SLACK,
    T0,
    Alerting,
    ManualClock,
    RecordingNotifier,
    berlin,
    customer,
    dispatcher,
    ingest,
    load,
    minutes,
    outbox,
    payloads,
    settings_for,
    stages,
    team_reply,
)
from monitor.alerting import HISTORY_WAIT_S, Dispatcher, PendingAlert, ready_in_order
from monitor.alerts.base import Posted, TemporaryDeliveryError
from monitor.alerts.console import ConsoleNotifier
from monitor.alerts.content import AlertContent
from monitor.alerts.slack import FIXES, SlackNotifier, WebhookNotifier
from monitor.config.rules import RuleBook
from monitor.daemon import StoreSnapshots, policy_infos
from monitor.metrics import ReplyclockCollector, build_registry
from monitor.sla.stages import makes_moot
from monitor.store import Store
from monitor.store.sqlite import to_epoch

SUPPORT = "C0SUPPORT1"  # #support
# Two policies: vip (bigcorp.example) alerts in a channel of its own.
TWO_CHANNELS = """\
policies:
  - name: vip
    match: {{sender_domain: [bigcorp.example]}}
    calendar: 24x7
    targets: {{first_response: 1h}}
    warning: 30m
    alerts: {{channel: "{vip_channel}"}}
  - name: standard
    calendar: 24x7
    targets: {{first_response: 1h}}
    warning: 30m
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock.monotonic) as fake:
        yield fake


def notifier_for(slack: FakeSlack, token: str = DEFAULT_TOKEN) -> SlackNotifier:
    """The real Slack notifier, pointed at the fake."""
    return SlackNotifier(token, slack.api_url)


def bot_messages(slack: FakeSlack, channel: str) -> list[SlackMessage]:
    """The bot's messages in a channel, oldest first."""
    return [m for m in slack.messages.get(channel, []) if m.by_bot]


def shape(slack: FakeSlack, channel: str) -> list[tuple[str, str | None, str | None]]:
    """A channel as (ts, thread_ts, current text) per message."""
    return [(m.ts, m.thread_ts, m.text) for m in slack.messages.get(channel, [])]


def vip(n: int, when: datetime) -> Any:
    return customer(f"v{n}@x", when, name=f"Vip {n}", address=f"v{n}@bigcorp.example")


def std(n: int, when: datetime) -> Any:
    return customer(f"s{n}@x", when, name=f"Shop {n}", address=f"s{n}@shop{n}.example")


# --- threads and edits -------------------------------------------------------------------------


def test_first_alert_posts_a_root_later_ones_reply_in_its_thread_and_answer_edits_it(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Warning: a new message; breach and escalation: replies in its thread (thread_ts); the
    reply to the customer: chat.update of the root saying answered, by whom, after how long."""
    rules = ROUND_THE_CLOCK + "    escalation:\n      - after: 30m\n"
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", T0), at=T0)

    reports = []
    for m in (31, 61, 91):
        alerting.at(minutes(m))
        reports.append(send.deliver(minutes(m)))
    reply = team_reply("r1@acme", minutes(100), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(100))
    alerting.at(minutes(101))
    reports.append(send.deliver(minutes(101)))

    warning, breach, escalation, answered = (AlertContent.from_json(p) for p in payloads(store))
    root_ts, breach_ts, escalation_ts = (m.ts for m in slack.messages[ALERTS])
    assert [(r.sent, r.updated) for r in reports] == [(1, 0), (1, 0), (1, 0), (0, 1)]
    assert shape(slack, ALERTS) == [
        (root_ts, None, answered.fallback),
        (breach_ts, root_ts, breach.fallback),
        (escalation_ts, root_ts, escalation.fallback),
    ]
    root = slack.message(ALERTS, root_ts)
    assert [e.text for e in root.edits] == [answered.fallback]
    assert answered.title == (":white_check_mark: Answered by Acme Support after 1h40m (late)")
    assert answered.fallback == (
        "Answered by Acme Support after 1h40m (late). Was: Tom Baker (smallshop.example) "
        "has waited 31m for a first reply: due in 29m (policy standard, target 1h00m, "
        "due Mon 16 Nov 10:00 UTC)"
    )
    assert root.blocks == [
        {"type": "header", "text": {"type": "plain_text", "text": answered.title, "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in warning.facts
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"was: {warning.title}"}]},
    ]
    [update] = slack.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (ALERTS, root_ts)
    assert [c.args.get("thread_ts") for c in slack.calls_to("chat.postMessage")] == [
        None,
        root_ts,
        root_ts,
    ]
    rows = store.conn.execute(
        "SELECT stage, state, remote_channel, remote_ref FROM outbox ORDER BY id"
    ).fetchall()
    assert rows == [
        ("warning", "sent", ALERTS, root_ts),
        ("breach", "sent", ALERTS, breach_ts),
        ("escalation-1", "sent", ALERTS, escalation_ts),
        ("answered", "sent", ALERTS, root_ts),
    ]


# --- pacing and bursts -------------------------------------------------------------------------


def test_pacing_keeps_one_message_per_second_per_channel(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """With Slack's 1 msg/s/channel limit enforced, the Dispatcher waits (on its injected clock)
    so no channel gets two posts within a second and no 429 is ever answered; it waits only
    between posts to the same channel, across rounds too."""
    slack.rate_limit_per_channel = True
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, *(std(n, T0) for n in (1, 2, 3)), vip(1, T0), vip(2, T0), at=T0)

    alerting.at(minutes(31))
    first = send.deliver(minutes(31))
    alerting.at(minutes(61))
    second = send.deliver(minutes(61))

    assert (first.sent, second.sent) == (5, 5)
    assert slack.post_times(ALERTS) == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0, 1005.0]
    assert slack.post_times(SUPPORT) == [1002.0, 1003.0, 1005.0, 1006.0]
    for channel in (ALERTS, SUPPORT):
        times = slack.post_times(channel)
        assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
    assert {c.status for c in slack.calls} == {200}
    assert clock.slept == [1.0] * 6


def test_a_burst_to_one_channel_becomes_one_summary(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """500 warnings due at once in one channel are sent as ONE summary message (the rows marked
    'summarized' with its ts), while another channel's three alerts go out one by one."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, *(std(n, T0) for n in range(1, 501)), *(vip(n, T0) for n in (1, 2, 3)), at=T0)

    alerting.at(minutes(31))
    report = dispatcher(store, notifier_for(slack), clock).deliver(minutes(31))

    assert (report.sent, report.summarized, report.failed, report.deferred) == (3, 500, 0, 0)
    [summary] = slack.messages[ALERTS]
    assert summary.text == "500 alerts at once: 500 warnings in #sla-alerts"
    titles = [
        f":warning: Shop {n} (shop{n}.example) has waited 31m for a first reply: due in 29m"
        for n in range(1, 11)
    ]
    assert summary.blocks == [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": ":bell: 500 alerts at once: 500 warnings",
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "\n".join([*titles, "... and 490 more"])},
        },
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Sent as one message so the channel is not flooded; "
                    "`replyclock status` lists all.",
                }
            ],
        },
    ]
    assert [m.text for m in slack.messages[SUPPORT]] == [
        f"Vip {n} (bigcorp.example) has waited 31m for a first reply: due in 29m "
        "(policy vip, target 1h00m, due Mon 16 Nov 10:00 UTC)"
        for n in (1, 2, 3)
    ]
    states = Counter(store.conn.execute("SELECT channel, state, remote_ref FROM outbox").fetchall())
    support_refs = {m.ts for m in slack.messages[SUPPORT]}
    assert states == {
        ("#sla-alerts", "summarized", summary.ts): 500,
        **{("#support", "sent", ts): 1 for ts in support_refs},
    }


# --- failures ----------------------------------------------------------------------------------


def test_rate_limit_answer_is_honoured_and_the_alert_delivered_once(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """A 429 with Retry-After: 1 is waited out by slack-sdk's RateLimitErrorRetryHandler and
    retried: the alert is delivered exactly once and the row is marked sent."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    slack.fail_next("chat.postMessage", "rate_limited", retry_after=1)

    report = dispatcher(store, notifier_for(slack), clock).deliver(minutes(31))

    assert (report.sent, report.deferred, report.failed) == (1, 0, 0)
    calls = slack.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[0].args == calls[1].args
    assert len(slack.messages[ALERTS]) == 1
    assert stages(store) == [("warning", "#sla-alerts", "sent")]


def test_server_error_backs_off_and_delivers_on_a_later_round(
    tmp_path: Path,
    store: Store,
    slack: FakeSlack,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 500 leaves the row pending with attempts=1, the error and send_after 5 s later; the
    next round before then sends nothing, the one after delivers it; the other channel is not
    held up in the meantime."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, std(1, T0), vip(1, T0), at=T0)
    now = minutes(31)
    alerting.at(now)
    slack.fail_next("chat.postMessage", "server_error")

    with caplog.at_level(logging.WARNING, logger="replyclock.alerts"):
        first = send.deliver(now)
    too_soon = send.deliver(now + timedelta(seconds=4))
    rows_between = outbox(store)
    later = send.deliver(now + timedelta(seconds=5))

    assert (first.sent, first.deferred) == (1, 1)
    assert (too_soon.sent, too_soon.deferred) == (0, 0)
    assert (later.sent, later.deferred) == (1, 0)
    assert [(r["channel"], r["state"], r["attempts"], r["send_after"]) for r in rows_between] == [
        ("#sla-alerts", "pending", 1, to_epoch(now) + 5),
        ("#support", "sent", 0, to_epoch(now)),
    ]
    assert store.conn.execute("SELECT last_error FROM outbox WHERE id = 1").fetchone() == (
        "Slack answered internal_error",
    )
    assert [m.text[:6] for m in bot_messages(slack, ALERTS)] == ["Shop 1"]
    assert [m.text[:5] for m in bot_messages(slack, SUPPORT)] == ["Vip 1"]
    [deferred] = [r for r in caplog.records if r.getMessage() == "alert delivery deferred"]
    assert deferred.levelno == logging.WARNING
    assert deferred.replyclock_fields == {  # type: ignore[attr-defined]
        "channel": "#sla-alerts",
        "kind": "warning",
        "retry_in_s": 5,
        "error": "Slack answered internal_error",
    }


def scrape(store: Store, book: RuleBook) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics scrape of the store, as the daemon's collector serves it."""
    collector = ReplyclockCollector(
        snapshot=StoreSnapshots(store),
        sources=["inbox"],
        policies=policy_infos(book),
        channels=["#sla-alerts"],
        clock=lambda: T0,
    )
    text = generate_latest(build_registry(collector)).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize(
    ("error", "vip_channel", "injected"),
    [
        pytest.param("channel_not_found", "#no-such-channel", False, id="channel_not_found"),
        pytest.param("not_in_channel", "#random", False, id="not_in_channel"),
        pytest.param("invalid_auth", "#support", True, id="invalid_auth"),
    ],
)
def test_permanent_error_is_logged_once_counted_and_spares_other_channels(
    tmp_path: Path,
    store: Store,
    slack: FakeSlack,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    error: str,
    vip_channel: str,
    injected: bool,
) -> None:
    """An error only a person can fix fails the channel's alerts for good (state 'failed'),
    logs ONE error naming the fix however many alerts hit it, counts each in
    replyclock_alert_delivery_failures_total, and the default channel still gets its alert."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel=vip_channel), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, vip(1, T0), vip(2, T0), at=T0)
    ingest(store, std(1, T0), at=T0)
    alerting.at(minutes(31))
    if injected:  # a token revoked mid-round: Slack refuses the vip channel's two posts
        for _ in range(2):
            slack.fail_next("chat.postMessage", "error", error=error)

    with caplog.at_level(logging.WARNING, logger="replyclock.alerts"):
        report = send.deliver(minutes(31))

    assert (report.sent, report.failed, report.deferred) == (1, 2, 0)
    assert stages(store) == [
        ("warning", vip_channel, "failed"),
        ("warning", vip_channel, "failed"),
        ("warning", "#sla-alerts", "sent"),
    ]
    assert [m.text[:6] for m in bot_messages(slack, ALERTS)] == ["Shop 1"]
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.getMessage()) for r in logged] == [("ERROR", "alert delivery failed")]
    assert logged[0].replyclock_fields == {  # type: ignore[attr-defined]
        "channel": vip_channel,
        "error": error,
        "fix": FIXES[error],
    }
    assert store.conn.execute("SELECT channel, count FROM delivery_failures").fetchall() == [
        (vip_channel, 2)
    ]
    samples = scrape(store, book)
    failures = "replyclock_alert_delivery_failures_total"
    assert samples[(failures, frozenset({("channel", vip_channel)}))] == 2
    assert samples[(failures, frozenset({("channel", "#sla-alerts")}))] == 0


def test_fix_texts_name_what_to_do() -> None:
    """The fixes logged for the three commonest setup errors say exactly what to change."""
    assert {k: FIXES[k] for k in ("channel_not_found", "not_in_channel", "invalid_auth")} == {
        "channel_not_found": "check the channel name or id in the config (alerts.slack.channel "
        "or the policy's alerts.channel / escalation channel)",
        "not_in_channel": "invite the bot to the channel (/invite @your-app) or give the app the "
        "chat:write.public scope",
        "invalid_auth": "check alerts.slack.token: it must be the app's bot token (xoxb-...)",
    }


def test_permanent_error_is_not_logged_again_in_later_rounds(
    tmp_path: Path,
    store: Store,
    slack: FakeSlack,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The breach to a channel the bot is not in fails again an hour later without a second
    error line, and the failure counter keeps counting."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#random"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, vip(1, T0), at=T0)

    with caplog.at_level(logging.ERROR, logger="replyclock.alerts"):
        for m in (31, 61):
            alerting.at(minutes(m))
            send.deliver(minutes(m))

    assert [r.getMessage() for r in caplog.records] == ["alert delivery failed"]
    assert store.conn.execute("SELECT count FROM delivery_failures").fetchone() == (2,)


# --- webhook and console -----------------------------------------------------------------------


def test_webhook_posts_each_alert_as_a_new_message_without_threads_or_edits(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Through an incoming webhook the warning and the breach are two separate messages in the
    webhook's channel, and the reply neither threads nor edits anything (no Web API call)."""
    loaded, book = load(
        tmp_path, ROUND_THE_CLOCK, f"alerts:\n  webhook: {{url: '{slack.webhook_url}'}}\n"
    )
    alerting = Alerting(store, book, settings_for(loaded, threads=False))
    send = dispatcher(store, WebhookNotifier(slack.webhook_url), clock)
    ingest(store, customer("q1@x", T0), at=T0)

    for m in (31, 61):
        alerting.at(minutes(m))
        send.deliver(minutes(m))
    reply = team_reply("r1@acme", minutes(70), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(70))
    alerting.at(minutes(71))
    last = send.deliver(minutes(71))

    warning, breach = (AlertContent.from_json(p) for p in payloads(store))
    assert [(p.status, p.channel) for p in slack.webhook_posts] == [(200, SUPPORT)] * 2
    assert [p.payload["text"] for p in slack.webhook_posts] == [warning.fallback, breach.fallback]
    assert all("thread_ts" not in p.payload for p in slack.webhook_posts)
    assert slack.webhook_posts[1].payload["blocks"][0]["text"]["text"] == breach.title
    assert slack.calls == []
    assert (last.sent, last.updated) == (0, 0)
    assert stages(store) == [("warning", "#webhook", "sent"), ("breach", "#webhook", "sent")]


def test_console_logs_the_same_title_and_facts(
    tmp_path: Path, store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The console notifier logs each alert's title as the message with its facts as fields,
    a later stage marked as in the first one's thread, and the answer as an update."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, "")
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, ConsoleNotifier(), clock)
    ingest(store, customer("q1@x", T0), at=T0)

    with caplog.at_level(logging.INFO, logger="replyclock.alerts"):
        for m in (31, 61):
            alerting.at(minutes(m))
            send.deliver(minutes(m))
        reply = team_reply("r1@acme", minutes(70), "tom@smallshop.example", refs=("q1@x",))
        ingest(store, reply, at=minutes(70))
        alerting.at(minutes(71))
        send.deliver(minutes(71))

    warning, breach, answered = (AlertContent.from_json(p) for p in payloads(store))
    shown = [
        (r.levelname, r.getMessage(), r.replyclock_fields)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.levelno == logging.WARNING
    ]
    facts = {
        "policy": "standard",
        "due": "Mon 16 Nov 10:00 UTC",
        "mailbox": "inbox / INBOX",
    }
    assert shown == [
        (
            "WARNING",
            warning.title,
            {
                "alert": "warning",
                "channel": "#console",
                "in_thread": None,
                **facts,
                "waited_business_time": "31m of 1h00m",
            },
        ),
        (
            "WARNING",
            breach.title,
            {
                "alert": "breach",
                "channel": "#console",
                "in_thread": "console.1",
                **facts,
                "waited_business_time": "1h01m of 1h00m",
            },
        ),
        (
            "WARNING",
            answered.title,
            {"alert": "update", "channel": "#console", "of": "console.1"},
        ),
    ]
    assert [label for label, _ in warning.facts] == [
        "Policy",
        "Waited (business time)",
        "Due",
        "Mailbox",
    ]


# --- never lost, never doubled -----------------------------------------------------------------


def test_crash_between_write_and_send_loses_nothing(
    tmp_path: Path, db: Path, slack: FakeSlack, clock: ManualClock
) -> None:
    """Alerts planned into the outbox before a crash are each posted exactly once after the
    restart (a new Store and Dispatcher), into the threads made before the crash."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    store = Store.open(db)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, *(std(n, T0) for n in (1, 2, 3)), at=T0)
    alerting.at(minutes(31))
    dispatcher(store, notifier_for(slack), clock).deliver(minutes(31))
    alerting.at(minutes(61))  # three breaches written...
    store.close()  # ...and the process dies before delivering them

    restarted = Store.open(db)
    try:
        after = dispatcher(restarted, notifier_for(slack), clock).deliver(minutes(62))
        again = dispatcher(restarted, notifier_for(slack), clock).deliver(minutes(63))
        final = stages(restarted)
    finally:
        restarted.close()

    assert (after.sent, again.sent) == (3, 0)
    roots = [m for m in slack.messages[ALERTS] if m.thread_ts is None]
    replies = [m for m in slack.messages[ALERTS] if m.thread_ts is not None]
    assert [m.text[:6] for m in roots] == ["Shop 1", "Shop 2", "Shop 3"]
    assert [(m.thread_ts, m.text[:36]) for m in replies] == [
        (root.ts, f"SLA breached: Shop {n} (shop{n}.example)")
        for n, root in zip((1, 2, 3), roots, strict=True)
    ]
    sent = "#sla-alerts", "sent"
    assert final == [("warning", *sent)] * 3 + [("breach", *sent)] * 3


class CrashAfterPost:
    """The real Slack notifier, but the process dies right after Slack accepts post number
    ``crash_on`` and before the Dispatcher can mark it sent."""

    name = "slack"
    threads = True
    pace_s = 1.0

    def __init__(self, inner: SlackNotifier, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.posts = 0

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        posted = self.inner.post(channel, content, thread)
        self.posts += 1
        if self.posts == self.crash_on:
            raise KeyboardInterrupt
        return posted

    def update(self, posted: Posted, content: AlertContent) -> None:
        self.inner.update(posted, content)


def test_crash_between_send_and_mark_duplicates_that_alert_once(
    tmp_path: Path, db: Path, slack: FakeSlack, clock: ManualClock
) -> None:
    """If the process dies after Slack accepted an alert but before it was marked, the restart
    posts that alert a second time (the documented at-most-one duplicate) and every other alert
    once; a third round sends nothing new."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    store = Store.open(db)
    ingest(store, *(std(n, T0) for n in (1, 2, 3)), at=T0)
    Alerting(store, book, settings_for(loaded)).at(minutes(31))
    crashing = dispatcher(store, CrashAfterPost(notifier_for(slack), crash_on=2), clock)
    with pytest.raises(KeyboardInterrupt):
        crashing.deliver(minutes(31))
    before_restart = stages(store)
    store.close()

    restarted = Store.open(db)
    try:
        second = dispatcher(restarted, notifier_for(slack), clock).deliver(minutes(32))
        third = dispatcher(restarted, notifier_for(slack), clock).deliver(minutes(33))
        after = stages(restarted)
    finally:
        restarted.close()

    assert before_restart == [
        ("warning", "#sla-alerts", "sent"),
        ("warning", "#sla-alerts", "pending"),
        ("warning", "#sla-alerts", "pending"),
    ]
    assert (second.sent, third.sent) == (2, 0)
    posted = Counter((m.text or "")[:6] for m in slack.messages[ALERTS])
    assert posted == {"Shop 1": 1, "Shop 2": 2, "Shop 3": 1}
    assert len(slack.calls_to("chat.postMessage")) == 4
    assert after == [("warning", "#sla-alerts", "sent")] * 3


def test_held_alert_survives_a_restart(
    tmp_path: Path, db: Path, slack: FakeSlack, clock: ManualClock
) -> None:
    """An alert held by quiet hours is still pending after a restart and is posted once, at
    the end of the window, by the new process (still true then: due 07:20)."""
    alerts = SLACK + '  timezone: Europe/Berlin\n  quiet_hours: "22:00-07:00"\n'
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, alerts)
    store = Store.open(db)
    arrived = datetime(2026, 11, 17, 6, 20, tzinfo=BERLIN)
    ingest(store, customer("q1@x", arrived), at=arrived)
    Alerting(store, book, settings_for(loaded)).at(arrived + timedelta(minutes=31))
    store.close()

    restarted = Store.open(db)
    try:
        send = dispatcher(restarted, notifier_for(slack), clock)
        night = send.deliver(berlin(17, 6, 55))
        morning = send.deliver(berlin(17, 7))
        again = send.deliver(berlin(17, 7, 10))
    finally:
        restarted.close()

    assert (night.sent, morning.sent, again.sent) == (0, 1, 0)
    assert len(slack.messages[ALERTS]) == 1


# --- order and errors, through a recording notifier --------------------------------------------

UNREACHABLE = TemporaryDeliveryError("cannot reach Slack (connection refused)")
DEFAULT = "#sla-alerts"


@pytest.mark.parametrize(
    ("later", "earlier", "moot"),
    [
        pytest.param("breach", "warning", True, id="breach_makes_the_warning_untrue"),
        pytest.param("escalation-1", "warning", True, id="escalation_makes_the_warning_untrue"),
        pytest.param("escalation-1", "breach", False, id="escalation_follows_up_the_breach"),
        pytest.param("escalation-2", "escalation-1", True, id="higher_escalation_repeats_lower"),
        pytest.param("escalation-1", "escalation-2", False, id="lower_escalation_is_no_news"),
        pytest.param("escalation-10", "escalation-9", True, id="steps_compare_as_numbers"),
        pytest.param("warning", "breach", False, id="warning_is_older_news"),
        pytest.param("answered", "warning", False, id="the_answer_is_the_planners_to_handle"),
        pytest.param("breach", "answered", False, id="an_edit_is_never_moot"),
    ],
)
def test_which_later_stage_makes_an_earlier_one_moot(later: str, earlier: str, moot: bool) -> None:
    """A warning is moot once a breach or escalation exists, a lower escalation once a higher
    one does; a breach never is (its escalation says "still waiting" after it), nor an edit."""
    assert makes_moot(later, earlier) is moot


def pending(
    row_id: int, stage: str, *, key: str | None = "1:first_response:0", due: int = 0
) -> PendingAlert:
    """A pending row of the default channel, for the ordering function."""
    return PendingAlert(
        id=row_id,
        channel=DEFAULT,
        kind=stage.split("-", maxsplit=1)[0],
        stage=stage,
        payload="{}",
        thread_key=key,
        attempts=0,
        send_after=due,
    )


def test_ready_rows_keep_the_channel_order_and_each_thread_its_stage_order() -> None:
    """Rows go oldest first, but a thread's stages take its slots in stage order; a stage
    waiting out a backoff holds back the later stages of its thread only."""
    rows = [
        pending(1, "escalation-1", key="a"),  # written before its breach (not by this planner)
        pending(2, "warning", key="b", due=100),  # backing off until 100
        pending(3, "digest", key=None),
        pending(4, "breach", key="a"),
        pending(5, "breach", key="b"),
        pending(6, "warning", key="c"),
    ]

    order = ready_in_order(rows, at=50)

    assert [(r.thread_key, r.stage) for r in order] == [
        ("a", "breach"),
        (None, "digest"),
        ("a", "escalation-1"),
        ("c", "warning"),
    ]


def every_minute(
    alerting: Alerting,
    send: Dispatcher,
    notifier: RecordingNotifier,
    first: int,
    last: int,
    *,
    down: range = range(0),
) -> None:
    """Plan and deliver once a minute from minute ``first`` to ``last`` after T0, the default
    channel unreachable in the minutes of ``down``."""
    for m in range(first, last + 1):
        if m in down:
            notifier.down[DEFAULT] = UNREACHABLE
        else:
            notifier.down.pop(DEFAULT, None)
        alerting.at(minutes(m))
        send.deliver(minutes(m))


def recording(
    tmp_path: Path, store: Store, clock: ManualClock, rules: str, **options: int
) -> tuple[Alerting, Dispatcher, RecordingNotifier]:
    """Alerting on ``rules`` with Slack configured, delivering to a RecordingNotifier through a
    Dispatcher on ``clock`` (``options`` as ``dispatcher`` takes them)."""
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    notifier = RecordingNotifier()
    return alerting, dispatcher(store, notifier, clock, **options), notifier


def test_breach_opens_the_thread_when_the_warning_never_got_out(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    """With Slack unreachable from the warning (30m) until escalation 1 is due (91m), the
    warning, made untrue by the breach, is superseded and never sent, and the breach, still
    backing off when Slack is back, opens the thread with escalation 1 after it in the thread."""
    alerting, send, notifier = recording(tmp_path, store, clock, ESCALATING)
    ingest(store, customer("q1@x", T0), at=T0)

    every_minute(alerting, send, notifier, 30, 110, down=range(30, 92))

    [root, reply] = notifier.delivered(DEFAULT)
    assert (root.title[:36], root.thread) == (":rotating_light: SLA breached: Tom B", None)
    assert (reply.title[:20], reply.thread) == (":sos: Escalation 1: ", root.ts)
    assert [(r["stage"], r["state"], r["attempts"]) for r in outbox(store)] == [
        ("warning", "superseded", 9),
        ("breach", "sent", 9),
        ("escalation-1", "sent", 0),
    ]
    # Backoff per channel: 18 failed tries in 61 minutes, not one per round.
    tries = [(c.title.split()[0], c.error is None) for c in notifier.calls]
    assert tries == [(":warning:", False)] * 9 + [(":rotating_light:", False)] * 9 + [
        (":rotating_light:", True),
        (":sos:", True),
    ]


def test_escalation_waits_for_its_breach_and_follows_it_in_the_thread(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    """A breach still backing off when Slack is back and escalation 1 is due goes first (it is
    not made moot by the escalation); the escalation follows it in the warning's thread."""
    alerting, send, notifier = recording(tmp_path, store, clock, ESCALATING)
    ingest(store, customer("q1@x", T0), at=T0)

    every_minute(alerting, send, notifier, 30, 100, down=range(61, 92))

    root, *replies = notifier.delivered(DEFAULT)
    assert root.title.startswith(":warning:")
    assert [(c.title.split()[0], c.thread) for c in replies] == [
        (":rotating_light:", root.ts),
        (":sos:", root.ts),
    ]
    assert [(r["stage"], r["state"], r["attempts"]) for r in outbox(store)] == [
        ("warning", "sent", 0),
        ("breach", "sent", 9),
        ("escalation-1", "sent", 0),
    ]


def test_higher_escalation_supersedes_a_lower_one_still_pending(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    """Escalation 1 stuck behind an outage until escalation 2 is queued is superseded; the
    thread reads warning, breach, escalation 2."""
    rules = ESCALATING + "      - after: 1h\n"
    alerting, send, notifier = recording(tmp_path, store, clock, rules)
    ingest(store, customer("q1@x", T0), at=T0)

    every_minute(alerting, send, notifier, 30, 140, down=range(91, 122))

    root, *replies = notifier.delivered(DEFAULT)
    assert [root.title.split()[0]] + [c.title[:19] for c in replies] == [
        ":warning:",
        ":rotating_light: SL",
        ":sos: Escalation 2:",
    ]
    assert all(c.thread == root.ts for c in replies)
    assert [(r["stage"], r["state"]) for r in outbox(store)] == [
        ("warning", "sent"),
        ("breach", "sent"),
        ("escalation-1", "superseded"),
        ("escalation-2", "sent"),
    ]


def test_a_channel_backing_off_is_left_alone_and_other_channels_go_on(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    """With a round every 2 s, a channel that answered a temporary error is tried again only
    when its backoff ends (5 s, 10 s, 20 s, ...), an alert queued for it meanwhile waits too,
    and the other channel's alert goes out at once; once back, both wait no longer."""
    alerting, send, notifier = recording(
        tmp_path, store, clock, TWO_CHANNELS.format(vip_channel="#support")
    )
    ingest(store, vip(1, T0), std(1, T0), at=T0)
    ingest(store, vip(2, T0 + timedelta(seconds=70)), at=T0 + timedelta(seconds=70))
    notifier.down["#support"] = TemporaryDeliveryError("Slack answered internal_error")

    tried: list[tuple[int, str, str]] = []
    for second in range(0, 90, 2):
        if second == 60:
            del notifier.down["#support"]
        now = minutes(31) + timedelta(seconds=second)
        seen = len(notifier.calls)
        alerting.at(now)
        send.deliver(now)
        tried += [(second, c.channel, c.title.split()[1]) for c in notifier.calls[seen:]]

    assert tried == [
        (0, "#support", "Vip"),
        (0, "#sla-alerts", "Shop"),
        (6, "#support", "Vip"),  # 5 s after the first error: the next round
        (16, "#support", "Vip"),  # then 10 s, 20 s, 40 s; Vip 2, due from 10 s, waits too
        (36, "#support", "Vip"),
        (76, "#support", "Vip"),
        (76, "#support", "Vip"),
    ]
    assert [c.title.split()[2] for c in notifier.delivered("#support")] == ["1", "2"]
    assert [(r["channel"], r["state"], r["attempts"]) for r in outbox(store)] == [
        ("#support", "sent", 4),
        ("#sla-alerts", "sent", 0),
        ("#support", "sent", 0),
    ]


def test_answer_during_an_outage_obsoletes_the_breach_and_edits_the_root_once_back(
    tmp_path: Path, store: Store, clock: ManualClock
) -> None:
    """A breach backing off when the team replies is made obsolete by the planner and never
    sent; the 'answered' edit of the root waits for the channel's backoff, then goes once."""
    alerting, send, notifier = recording(tmp_path, store, clock, ROUND_THE_CLOCK)
    ingest(store, customer("q1@x", T0), at=T0)
    every_minute(alerting, send, notifier, 30, 70, down=range(61, 72))
    reply = team_reply("r1@acme", minutes(70), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(70))

    every_minute(alerting, send, notifier, 71, 80, down=range(61, 72))

    root = notifier.delivered(DEFAULT)[0]
    assert [(c.method, c.title.split()[0], c.error is None) for c in notifier.calls] == [
        ("post", ":warning:", True),
        *[("post", ":rotating_light:", False)] * 7,  # 61, 62, 63, 64, 65, 67, 70
        ("update", ":white_check_mark:", True),  # at 76, when the 320 s backoff ended
    ]
    assert notifier.calls[-1].thread == root.ts
    assert [(r["stage"], r["state"], r["attempts"]) for r in outbox(store)] == [
        ("warning", "sent", 0),
        ("breach", "obsolete", 7),
        ("answered", "sent", 0),
    ]


def test_a_summary_that_fails_for_now_backs_off_every_row_it_stands_for(
    tmp_path: Path, store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst's summary that meets server errors adds an attempt and the backoff to each of
    its rows and logs one warning per failed try; it is not posted again before the backoff
    ends, and is posted once when Slack answers."""
    alerting, send, notifier = recording(tmp_path, store, clock, ROUND_THE_CLOCK, burst=3)
    ingest(store, *(std(n, T0) for n in range(1, 6)), at=T0)
    alerting.at(minutes(31))
    notifier.fail_next(DEFAULT, *[TemporaryDeliveryError("Slack answered internal_error")] * 3)

    reports, rows = [], []
    with caplog.at_level(logging.WARNING, logger="replyclock.alerts"):
        for second in range(0, 40, 2):
            reports.append(send.deliver(minutes(31) + timedelta(seconds=second)))
            rows.append(
                {(r["attempts"], r["send_after"] - to_epoch(minutes(31))) for r in outbox(store)}
            )

    assert [(c.title[:30], c.error is None) for c in notifier.calls] == [
        (":bell: 5 alerts at once: 5 war", False),  # at 0 s
        (":bell: 5 alerts at once: 5 war", False),  # at 6 s
        (":bell: 5 alerts at once: 5 war", False),  # at 16 s
        (":bell: 5 alerts at once: 5 war", True),  # at 36 s
    ]
    assert [rows[i] for i in (0, 3, 8, 18)] == [{(1, 5)}, {(2, 16)}, {(3, 36)}, {(3, 36)}]
    assert [(r.deferred, r.summarized) for r in reports if r.deferred or r.summarized] == [
        (5, 0),
        (5, 0),
        (5, 0),
        (0, 5),
    ]
    deferred = [r.replyclock_fields for r in caplog.records]  # type: ignore[attr-defined]
    assert deferred == [
        {
            "channel": DEFAULT,
            "kind": "summary",
            "retry_in_s": delay,
            "error": "Slack answered internal_error",
        }
        for delay in (5, 10, 20)
    ]
    assert {r["state"] for r in outbox(store)} == {"summarized"}


def test_a_summary_refused_for_good_fails_its_rows_counts_once_and_is_not_reposted(
    tmp_path: Path,
    store: Store,
    slack: FakeSlack,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A burst's summary refused with invalid_auth (a revoked token, through slack-sdk and the
    fake Slack) fails every row it stands for (one attempt each), counts one failure per
    Slack call, logs one error with the fix, and is not posted again in later rounds; the
    breaches' summary later fails too, counted again but not logged again."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack, token="xoxb-revoked"), clock, burst=3)
    ingest(store, *(std(n, T0) for n in range(1, 6)), at=T0)

    calls_per_round = []
    with caplog.at_level(logging.WARNING, logger="replyclock.alerts"):
        for m in (31, 31.05, 31.1, 32, 45, 61, 62, 70):
            alerting.at(minutes(m))
            before = len(slack.calls)
            send.deliver(minutes(m))
            calls_per_round.append(len(slack.calls) - before)
        after_warnings = [(r["stage"], r["state"], r["attempts"]) for r in outbox(store)]

    assert calls_per_round == [1, 0, 0, 0, 0, 1, 0, 0]
    assert {c.response["error"] for c in slack.calls} == {"invalid_auth"}
    assert Counter(after_warnings) == {("warning", "failed", 1): 5, ("breach", "failed", 1): 5}
    assert store.conn.execute("SELECT DISTINCT last_error FROM outbox").fetchall() == [
        ("invalid_auth",)
    ]
    assert store.conn.execute("SELECT channel, count FROM delivery_failures").fetchall() == [
        ("#sla-alerts", 2)
    ]
    assert [(r.getMessage(), r.replyclock_fields) for r in caplog.records] == [  # type: ignore[attr-defined]
        (
            "alert delivery failed",
            {"channel": "#sla-alerts", "error": "invalid_auth", "fix": FIXES["invalid_auth"]},
        )
    ]
    assert slack.messages == {}


def test_alerts_already_due_at_the_end_of_a_first_sync_come_as_one_summary(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Nothing is planned for a source still in its first sync; when the sync ends, the stages
    then due are marked as history and sent as ONE summary per channel, even below the burst
    size, while a stage that falls due later is sent on its own."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    settings = settings_for(loaded)
    alerting = Alerting(store, book, settings)
    ingest(store, *(std(n, T0) for n in range(1, 6)), vip(1, T0), at=T0)
    ingest(store, std(9, minutes(20)), at=T0)
    send = dispatcher(store, notifier_for(slack), clock)

    alerting.engine.evaluate(minutes(40))
    assert alerting.planner.plan(minutes(40), syncing=["inbox"]) == 0
    assert outbox(store) == []

    alerting.engine.evaluate(minutes(41))
    assert alerting.planner.plan(minutes(41), catching_up=["inbox"]) == 6
    report = send.deliver(minutes(41))
    assert (report.sent, report.summarized) == (1, 5)  # vip's lone alert goes as it is
    [summary] = slack.messages[ALERTS]
    assert summary.text == (
        "First read of the mailbox: 5 alerts already due: 5 warnings in #sla-alerts"
    )
    [lone] = slack.messages[SUPPORT]
    assert lone.text.startswith("Vip 1 (bigcorp.example) has waited 41m for a first reply")

    alerting.engine.evaluate(minutes(51))
    assert alerting.planner.plan(minutes(51)) == 1  # Shop 9's warning, due after the sync
    assert send.deliver(minutes(51)).sent == 1
    assert slack.messages[ALERTS][-1].text.startswith("Shop 9 (shop9.example) has waited 31m")


def test_history_waits_for_the_other_first_syncs_then_goes_as_one_summary(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """With many mailboxes ending their first syncs one after another, alerts already due at
    the end of one wait while others still sync (at most HISTORY_WAIT_S), so one summary per
    channel covers every mailbox instead of one summary per mailbox."""
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, *(std(n, T0) for n in range(1, 6)), at=T0)
    others_syncing = True
    send = Dispatcher(
        store,
        notifier_for(slack),
        threading.Lock(),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        syncing=lambda: others_syncing,
    )
    alerting.engine.evaluate(minutes(41))
    assert alerting.planner.plan(minutes(41), catching_up=["inbox"]) == 5
    assert send.deliver(minutes(41)).summarized == 0
    clock.sleep(60)
    assert send.deliver(minutes(42)).summarized == 0
    assert ALERTS not in slack.messages
    others_syncing = False
    assert send.deliver(minutes(43)).summarized == 5
    [summary] = slack.messages[ALERTS]
    assert summary.text.startswith("First read of the mailbox: 5 alerts already due")


def test_history_waits_no_longer_than_its_limit_for_a_source_that_never_syncs(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    loaded, book = load(tmp_path, TWO_CHANNELS.format(vip_channel="#support"), SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, *(std(n, T0) for n in range(1, 4)), at=T0)
    send = Dispatcher(
        store,
        notifier_for(slack),
        threading.Lock(),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        syncing=lambda: True,  # a source whose password is wrong never ends its first sync
    )
    alerting.engine.evaluate(minutes(41))
    alerting.planner.plan(minutes(41), catching_up=["inbox"])
    assert send.deliver(minutes(41)).summarized == 0
    clock.sleep(HISTORY_WAIT_S)
    assert send.deliver(minutes(52)).summarized == 3
