"""Delivery: outbox rows through the real SlackNotifier (and the webhook and console ones) to
the fake Slack: threads and edits, pacing, bursts, failures, and never lost, never doubled.

The Dispatcher and FakeSlack share a manual clock, so pacing never really sleeps; the only real
wait is slack-sdk's own Retry-After handling (1 s) in the rate-limit test.
"""

from __future__ import annotations

import itertools
import logging
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
    BERLIN,
    ROUND_THE_CLOCK,
    Alerting,
    ManualClock,
    berlin,
    customer,
    dispatcher,
    ingest,
    load,
    outbox,
    payloads,
    settings_for,
    stages,
    team_reply,
)
from monitor.alerts.base import Posted
from monitor.alerts.console import ConsoleNotifier
from monitor.alerts.content import AlertContent
from monitor.alerts.slack import FIXES, SlackNotifier, WebhookNotifier
from monitor.config.rules import RuleBook
from monitor.daemon import StoreSnapshots, policy_infos
from monitor.metrics import ReplyclockCollector, build_registry
from monitor.store import Store
from monitor.store.sqlite import to_epoch

ALERTS = "C0ALERTS01"  # #sla-alerts
SUPPORT = "C0SUPPORT1"  # #support
T0 = berlin(16, 10)  # Monday 10:00 in Berlin
SLACK = 'alerts:\n  slack: {token: xoxb-unused, channel: "#sla-alerts"}\n'
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


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "replyclock.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = Store.open(db)
    yield opened
    opened.close()


def minutes(count: float) -> datetime:
    """T0 plus a number of minutes."""
    return T0 + timedelta(minutes=count)


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
    the end of the window, by the new process."""
    alerts = SLACK + '  timezone: Europe/Berlin\n  quiet_hours: "22:00-07:00"\n'
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, alerts)
    store = Store.open(db)
    arrived = datetime(2026, 11, 16, 23, 0, tzinfo=BERLIN)
    ingest(store, customer("q1@x", arrived), at=arrived)
    Alerting(store, book, settings_for(loaded)).at(arrived + timedelta(minutes=31))
    store.close()

    restarted = Store.open(db)
    try:
        send = dispatcher(restarted, notifier_for(slack), clock)
        night = send.deliver(berlin(17, 3))
        morning = send.deliver(berlin(17, 7))
        again = send.deliver(berlin(17, 8))
    finally:
        restarted.close()

    assert (night.sent, morning.sent, again.sent) == (0, 1, 0)
    assert len(slack.messages[ALERTS]) == 1
