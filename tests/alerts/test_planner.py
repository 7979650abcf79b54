"""The alert planner: which alerts a clock earns and when, what they say, and the daily digest.

Each test builds a real store, ingests messages, evaluates with the engine and plans, exactly as
a poll does, and reads the outbox. Times: see ``alerts.helpers`` (Berlin, November 2026).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack

from alerts.helpers import (
    ROUND_THE_CLOCK,
    SLACK,
    T0,
    Alerting,
    ManualClock,
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
from monitor.alerting import AlertPlanner
from monitor.alerts.console import ConsoleNotifier
from monitor.alerts.slack import SlackNotifier, WebhookNotifier
from monitor.store import Store
from monitor.store.sqlite import to_epoch


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def deliver(store: Store, now: datetime) -> None:
    """Send what is due through the console (marks rows sent, as a real delivery would)."""
    dispatcher(store, ConsoleNotifier(), ManualClock()).deliver(now)


# --- stages ------------------------------------------------------------------------------------


def test_each_stage_fires_once_per_clock(tmp_path: Path, store: Store) -> None:
    """Warning at the policy's threshold (30m before a 1h target), breach after the target and
    each escalation step at target + after are queued once each, however often it is planned."""
    rules = ROUND_THE_CLOCK + "    escalation:\n      - after: 30m\n      - after: 1h\n"
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)

    queued = {m: alerting.at(minutes(m)) for m in (29, 30, 45, 60, 60.05, 61, 90, 90.05, 120.05)}
    queued[600] = alerting.at(minutes(600))

    assert queued == {
        29: 0,
        30: 1,  # warning: 30m waited
        45: 0,
        60: 0,  # a reply at exactly the target is on time: no breach yet
        60.05: 1,  # breach: 1h00m03s waited
        61: 0,
        90: 0,
        90.05: 1,  # escalation 1: 30m after the breach
        120.05: 1,  # escalation 2: 1h after the breach
        600: 0,
    }
    assert stages(store) == [
        ("warning", "#sla-alerts", "pending"),
        ("breach", "#sla-alerts", "pending"),
        ("escalation-1", "#sla-alerts", "pending"),
        ("escalation-2", "#sla-alerts", "pending"),
    ]
    assert [r["send_after"] for r in outbox(store)] == [
        to_epoch(minutes(m)) for m in (30, 60.05, 90.05, 120.05)
    ]
    assert {r["thread_key"] for r in outbox(store)} == {f"1:first_response:{to_epoch(T0)}"}
    assert [p["title"] for p in payloads(store)] == [
        ":warning: Tom Baker (smallshop.example) has waited 30m for a first reply: due in 30m",
        # Rounded up to the minute: planned 3 s past each threshold.
        ":rotating_light: SLA breached: Tom Baker (smallshop.example) has waited 1h01m for a "
        "first reply",
        ":sos: Escalation 1: Tom Baker (smallshop.example) still waiting after 1h31m",
        ":sos: Escalation 2: Tom Baker (smallshop.example) still waiting after 2h01m",
    ]


OFFICE = """\
calendars:
  office:
    timezone: Europe/Berlin
    hours:
      mon-fri: ["09:00-17:00"]
policies:
  - name: office
    calendar: office
    targets: {first_response: 2h}
    warning: 75%
    escalation:
      - after: 2h
"""


def test_escalation_waits_for_business_time_over_the_weekend(tmp_path: Path, store: Store) -> None:
    """On a Mon-Fri 09-17 calendar a Friday 14:00 message warns at 15:30, breaches after 16:00,
    stays silent all weekend and escalates two business hours later: Monday 10:00."""
    loaded, book = load(tmp_path, OFFICE, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", berlin(20, 14)), at=berlin(20, 14))
    instants = {
        "fri 15:29": berlin(20, 15, 29),
        "fri 15:30": berlin(20, 15, 30),
        "fri 16:00": berlin(20, 16, 0),
        "fri 16:00:01": berlin(20, 16, 0, 1),
        "fri 16:59": berlin(20, 16, 59),
        "sat 12:00": berlin(21, 12),
        "sun 20:00": berlin(22, 20),
        "mon 09:59:59": berlin(23, 9, 59, 59),
        "mon 10:00:01": berlin(23, 10, 0, 1),
        "mon 16:00": berlin(23, 16),
    }

    queued = {name: alerting.at(now) for name, now in instants.items()}

    assert queued == {
        "fri 15:29": 0,
        "fri 15:30": 1,
        "fri 16:00": 0,
        "fri 16:00:01": 1,
        "fri 16:59": 0,
        "sat 12:00": 0,
        "sun 20:00": 0,
        "mon 09:59:59": 0,
        "mon 10:00:01": 1,
        "mon 16:00": 0,
    }
    assert [(r["stage"], r["send_after"]) for r in outbox(store)] == [
        ("warning", to_epoch(instants["fri 15:30"])),
        ("breach", to_epoch(instants["fri 16:00:01"])),
        ("escalation-1", to_epoch(instants["mon 10:00:01"])),
    ]
    escalation = payloads(store, stage="escalation-1")[0]
    assert escalation["title"] == (
        ":sos: Escalation 1: Tom Baker (smallshop.example) still waiting after 4h01m"
    )
    assert escalation["facts"] == [
        ["Policy", "office"],
        ["Waited (business time)", "4h01m of 2h00m"],
        ["Due", "Fri 20 Nov 16:00 CET"],
        ["Mailbox", "inbox / INBOX"],
    ]


def test_warning_and_breach_due_together_queue_only_the_breach(
    tmp_path: Path, store: Store
) -> None:
    """A clock first seen already past its target gets the breach alone; the warning is
    recorded as superseded (empty payload) and is never queued later."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)

    assert alerting.at(minutes(70)) == 1
    assert alerting.at(minutes(71)) == 0

    assert stages(store) == [
        ("breach", "#sla-alerts", "pending"),
        ("warning", "#sla-alerts", "superseded"),
    ]
    assert payloads(store, state="superseded") == [{}]


def test_a_clock_first_seen_past_two_escalations_queues_breach_then_the_last_escalation(
    tmp_path: Path, store: Store
) -> None:
    """A clock first seen long past its target (the daemon was down) queues its breach and its
    highest escalation, in that order; the warning and the lower escalation are superseded, so
    its thread opens on the breach, never on an escalation."""
    rules = ROUND_THE_CLOCK + "    escalation:\n      - after: 30m\n      - after: 1h\n"
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)

    assert alerting.at(minutes(150)) == 2

    assert stages(store) == [
        ("breach", "#sla-alerts", "pending"),
        ("escalation-2", "#sla-alerts", "pending"),
        ("warning", "#sla-alerts", "superseded"),
        ("escalation-1", "#sla-alerts", "superseded"),
    ]


def test_escalation_with_its_own_channel_goes_there_and_mentions_its_people(
    tmp_path: Path, store: Store
) -> None:
    """An escalation step with a channel and mentions is queued to that channel, naming those
    people first in its fallback text; the other stages stay in the default channel."""
    rules = ROUND_THE_CLOCK + (
        "    escalation:\n"
        "      - after: 30m\n"
        '        channel: "#support-leads"\n'
        '        mention: ["<@U0LEAD0001>", "<!subteam^S0LEADS001>"]\n'
    )
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)

    for m in (30, 61, 91):
        alerting.at(minutes(m))

    assert stages(store) == [
        ("warning", "#sla-alerts", "pending"),
        ("breach", "#sla-alerts", "pending"),
        ("escalation-1", "#support-leads", "pending"),
    ]
    [escalation] = payloads(store, stage="escalation-1")
    assert escalation["mention"] == ["<@U0LEAD0001>", "<!subteam^S0LEADS001>"]
    assert escalation["fallback"] == (
        "<@U0LEAD0001> <!subteam^S0LEADS001> Escalation 1: Tom Baker (smallshop.example) still "
        "waiting after 1h31m (policy standard, target 1h00m, due Mon 16 Nov 10:00 UTC)"
    )
    assert [p["mention"] for p in payloads(store, channel="#sla-alerts")] == [[], []]


def test_breach_due_with_an_escalation_elsewhere_still_reaches_the_default_channel(
    tmp_path: Path, store: Store
) -> None:
    """When a breach and an escalation to another channel fall due together (escalation
    `after: 0m`, or the daemon was down), the default channel still gets its breach alert."""
    rules = ROUND_THE_CLOCK + (
        '    escalation:\n      - after: 0m\n        channel: "#support-leads"\n'
    )
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)

    alerting.at(minutes(30))  # the warning, to the default channel
    alerting.at(minutes(61))  # breach and escalation 1 fall due together
    alerting.at(minutes(62))

    assert ("breach", "#sla-alerts", "pending") in stages(store)


def test_policy_with_alerts_disabled_queues_nothing(tmp_path: Path, store: Store) -> None:
    """A policy with `alerts: {enabled: false}` queues nothing even when breached, while another
    policy's conversation is alerted as usual."""
    rules = """\
policies:
  - name: internal
    match: {sender_domain: [partner.example]}
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
    alerts: {enabled: false}
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
"""
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(
        store,
        customer("p1@x", T0, name="Pat", address="pat@partner.example"),
        customer("q1@x", T0),
        at=T0,
    )

    queued = [alerting.at(minutes(m)) for m in (31, 61, 600)]

    assert queued == [1, 1, 0]
    partner = store.conversation_for_message("inbox", "p1@x")
    assert store.conn.execute(
        "SELECT policy, state FROM conversations WHERE id = ?", (partner,)
    ).fetchone() == ("internal", "breached")
    assert [(r["thread_key"].split(":")[0], r["stage"]) for r in outbox(store)] == [
        (str(store.conversation_for_message("inbox", "q1@x")), "warning"),
        (str(store.conversation_for_message("inbox", "q1@x")), "breach"),
    ]


VIP = """\
policies:
  - name: vip
    match: {sender_domain: [bigcorp.example]}
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
    alerts:
      channel: "#vip-alerts"
      mention: ["<@U0VIP00001>", "<!subteam^S0LEADS001>"]
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
"""


def test_policy_channel_and_breach_mentions(tmp_path: Path, store: Store) -> None:
    """A policy's own channel takes its warnings and breaches; its mentions (a user and a user
    group) ride on the breach only, first in the fallback text; other policies use the default."""
    loaded, book = load(tmp_path, VIP, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(
        store,
        customer("v1@x", T0, name="Vera Lang", address="vera@bigcorp.example"),
        customer("q1@x", T0),
        at=T0,
    )

    alerting.at(minutes(31))
    alerting.at(minutes(61))

    assert stages(store) == [
        ("warning", "#vip-alerts", "pending"),
        ("warning", "#sla-alerts", "pending"),
        ("breach", "#vip-alerts", "pending"),
        ("breach", "#sla-alerts", "pending"),
    ]
    vip_warning, vip_breach = payloads(store, channel="#vip-alerts")
    assert vip_warning["mention"] == []
    assert not vip_warning["fallback"].startswith("<")
    assert vip_breach["mention"] == ["<@U0VIP00001>", "<!subteam^S0LEADS001>"]
    assert vip_breach["fallback"] == (
        "<@U0VIP00001> <!subteam^S0LEADS001> SLA breached: Vera Lang (bigcorp.example) has "
        "waited 1h01m for a first reply (policy vip, target 1h00m, due Mon 16 Nov 10:00 UTC)"
    )
    assert [p["mention"] for p in payloads(store, channel="#sla-alerts")] == [[], []]


# --- quiet hours -------------------------------------------------------------------------------

QUIET = (
    'alerts:\n  slack: {token: xoxb-unused, channel: "#sla-alerts"}\n  timezone: Europe/Berlin\n'
)


@pytest.mark.parametrize(
    ("arrived", "planned", "send_after"),
    [
        pytest.param(berlin(16, 21), berlin(16, 21, 31), berlin(16, 21, 31), id="before_window"),
        pytest.param(berlin(16, 22, 40), berlin(16, 23, 10), berlin(17, 7), id="before_midnight"),
        pytest.param(berlin(17, 0, 0), berlin(17, 0, 30), berlin(17, 7), id="after_midnight"),
        pytest.param(berlin(17, 6, 0), berlin(17, 6, 59, 59), berlin(17, 7), id="last_second"),
        pytest.param(berlin(17, 6, 30), berlin(17, 7), berlin(17, 7), id="window_over"),
    ],
)
def test_quiet_hours_hold_alerts_until_the_window_ends(
    tmp_path: Path, store: Store, arrived: datetime, planned: datetime, send_after: datetime
) -> None:
    """With quiet hours 22:00-07:00 (Berlin, the alerts' time zone, across midnight) and
    `quiet: hold`, an alert due inside the window is queued to be sent when it ends."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, QUIET + '  quiet_hours: "22:00-07:00"\n')
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", arrived), at=arrived)

    assert alerting.at(planned) == 1

    assert [(r["stage"], r["state"], r["send_after"]) for r in outbox(store)] == [
        ("warning", "pending", to_epoch(send_after))
    ]


def test_held_alert_is_sent_when_the_window_ends(tmp_path: Path, store: Store) -> None:
    """A held alert is not delivered a second before quiet hours end, and is at their end
    (the warning of 06:50 is still true at 07:00: due 07:20)."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, QUIET + '  quiet_hours: "22:00-07:00"\n')
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", berlin(17, 6, 20)), at=berlin(17, 6, 20))
    alerting.at(berlin(17, 6, 50))
    send = dispatcher(store, ConsoleNotifier(), ManualClock())

    early = send.deliver(berlin(17, 6, 59, 59))
    on_time = send.deliver(berlin(17, 7))

    assert (early.sent, on_time.sent) == (0, 1)
    assert stages(store) == [("warning", "#sla-alerts", "sent")]


def test_quiet_drop_records_the_alert_as_dropped_and_never_sends_it(
    tmp_path: Path, store: Store
) -> None:
    """A policy's own quiet hours (12:00-12:30 Berlin) with `quiet: drop` record the warning
    due at 12:05 as dropped: never delivered, never queued again; the breach after the window
    is queued as usual."""
    rules = ROUND_THE_CLOCK + '    alerts: {quiet_hours: "12:00-12:30", quiet: drop}\n'
    loaded, book = load(tmp_path, rules, QUIET)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", berlin(16, 11, 35)), at=berlin(16, 11, 35))
    send = dispatcher(store, ConsoleNotifier(), ManualClock())

    assert alerting.at(berlin(16, 12, 5)) == 0
    assert send.deliver(berlin(16, 12, 5)).sent == 0
    assert alerting.at(berlin(16, 12, 31)) == 0
    assert alerting.at(berlin(16, 12, 36)) == 1
    report = send.deliver(berlin(16, 12, 36))

    assert report.sent == 1
    assert stages(store) == [
        ("warning", "#sla-alerts", "dropped"),
        ("breach", "#sla-alerts", "sent"),
    ]


@pytest.mark.parametrize(
    ("alerts", "policy", "state", "send_after"),
    [
        pytest.param('  quiet_hours: "22:00-07:00"\n', "", "pending", berlin(17, 7), id="global"),
        pytest.param(
            '  quiet_hours: "22:00-07:00"\n  quiet: drop\n',
            "",
            "dropped",
            berlin(16, 23, 10),
            id="global_drop",
        ),
        pytest.param(
            "  quiet: drop\n",
            '    alerts: {quiet_hours: "23:00-06:00"}\n',
            "dropped",
            berlin(16, 23, 10),
            id="policy_window_global_mode",
        ),
        pytest.param(
            '  quiet_hours: "22:00-07:00"\n  quiet: drop\n',
            '    alerts: {quiet_hours: "23:00-06:00", quiet: hold}\n',
            "pending",
            berlin(17, 6),
            id="policy_overrides_both",
        ),
        pytest.param(
            '  quiet_hours: "22:00-07:00"\n',
            '    alerts: {quiet_hours: "12:00-13:00"}\n',
            "pending",
            berlin(16, 23, 10),
            id="policy_window_replaces_global",
        ),
    ],
)
def test_policy_quiet_hours_and_mode_override_the_global_ones(
    tmp_path: Path,
    store: Store,
    alerts: str,
    policy: str,
    state: str,
    send_after: datetime,
) -> None:
    """A policy's quiet window replaces the global one and its mode (hold/drop) wins; what it
    leaves out comes from the `alerts` section."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK + policy, QUIET + alerts)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", berlin(16, 22, 40)), at=berlin(16, 22, 40))

    alerting.at(berlin(16, 23, 10))

    assert [(r["state"], r["send_after"]) for r in outbox(store)] == [(state, to_epoch(send_after))]


# --- the customer is answered ------------------------------------------------------------------


def test_answer_obsoletes_pending_alerts_and_queues_answered_per_channel(
    tmp_path: Path, store: Store
) -> None:
    """Once the team replies, alerts not yet sent become obsolete and each channel where a root
    alert was sent gets one 'answered' row, made from that channel's root (the first alert)."""
    rules = ROUND_THE_CLOCK + (
        "    escalation:\n"
        '      - after: 30m\n        channel: "#support-leads"\n'
        "      - after: 1h\n"
    )
    loaded, book = load(tmp_path, rules, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    for m in (30, 61, 91):
        alerting.at(minutes(m))
        deliver(store, minutes(m))
    alerting.at(minutes(121))  # escalation 2 queued, not delivered yet
    reply = team_reply("r1@acme", minutes(125), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(125))

    assert alerting.at(minutes(126)) == 2

    assert stages(store) == [
        ("warning", "#sla-alerts", "sent"),
        ("breach", "#sla-alerts", "sent"),
        ("escalation-1", "#support-leads", "sent"),
        ("escalation-2", "#sla-alerts", "obsolete"),
        ("answered", "#sla-alerts", "pending"),
        ("answered", "#support-leads", "pending"),
    ]
    warning, *_ = payloads(store, stage="warning")
    escalation, *_ = payloads(store, stage="escalation-1")
    answered_here, answered_leads = payloads(store, stage="answered")
    done = "Answered by Acme Support after 2h05m (late)"
    assert answered_here == {
        "kind": "answered",
        "title": f":white_check_mark: {done}",
        "fallback": f"{done}. Was: {warning['fallback']}",
        "facts": warning["facts"],
        "mention": [],
        "link": None,
        "lines": [],
        "note": f"was: {warning['title']}",
    }
    assert answered_leads["note"] == f"was: {escalation['title']}"
    assert answered_leads["fallback"] == f"{done}. Was: {escalation['fallback']}"


def test_answered_update_survives_a_plan_round_before_delivery(
    tmp_path: Path, store: Store
) -> None:
    """An 'answered' row still pending when the next poll plans again (delivery runs on its own
    job, or Slack is down) stays pending and is delivered as an edit of the root."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    deliver(store, minutes(31))
    reply = team_reply("r1@acme", minutes(45), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(45))
    alerting.at(minutes(46))

    alerting.at(minutes(47))  # the next poll plans again before the delivery job runs
    report = dispatcher(store, ConsoleNotifier(), ManualClock()).deliver(minutes(47))

    assert report.updated == 1
    assert stages(store) == [
        ("warning", "#sla-alerts", "sent"),
        ("answered", "#sla-alerts", "sent"),
    ]


def test_answer_within_target_says_so(tmp_path: Path, store: Store) -> None:
    """A reply before the target after a warning edits the warning to 'within target'."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    deliver(store, minutes(31))
    reply = team_reply("r1@acme", minutes(45), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(45))

    alerting.at(minutes(46))

    [answered] = payloads(store, stage="answered")
    assert answered["title"] == (
        ":white_check_mark: Answered by Acme Support after 45m (within target)"
    )


def test_answer_before_any_alert_was_sent_queues_no_update(tmp_path: Path, store: Store) -> None:
    """A warning still pending when the reply comes is made obsolete; with no root sent there
    is nothing to edit, so no 'answered' row is queued."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    ingest(
        store,
        team_reply("r1@acme", minutes(40), "tom@smallshop.example", refs=("q1@x",)),
        at=minutes(40),
    )

    assert alerting.at(minutes(41)) == 0

    assert stages(store) == [("warning", "#sla-alerts", "obsolete")]


def test_webhook_setup_never_queues_answered(
    tmp_path: Path, store: Store, slack: FakeSlack
) -> None:
    """With a webhook (threads=False) sent alerts stay as they are after the reply and pending
    ones become obsolete, but no 'answered' row is queued: a webhook cannot edit."""
    alerts = f"alerts:\n  webhook: {{url: '{slack.webhook_url}'}}\n"
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, alerts)
    settings = settings_for(loaded, threads=False)
    alerting = Alerting(store, book, settings)
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    dispatcher(store, WebhookNotifier(slack.webhook_url), ManualClock()).deliver(minutes(31))
    alerting.at(minutes(61))  # the breach, not delivered
    reply = team_reply("r1@acme", minutes(65), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, reply, at=minutes(65))

    assert alerting.at(minutes(66)) == 0

    assert settings.channel == "#webhook"
    assert stages(store) == [
        ("warning", "#webhook", "sent"),
        ("breach", "#webhook", "obsolete"),
    ]


# --- privacy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "who", "subject"),
    [
        pytest.param("", "Tom Baker (smallshop.example)", False, id="default"),
        pytest.param(
            "  include_sender: true\n",
            "Tom Baker <tom@smallshop.example>",
            False,
            id="include_sender",
        ),
        pytest.param(
            "  include_subject: true\n", "Tom Baker (smallshop.example)", True, id="subject"
        ),
        pytest.param(
            "  include_sender: true\n  include_subject: true\n",
            "Tom Baker <tom@smallshop.example>",
            True,
            id="both",
        ),
    ],
)
def test_alert_shows_only_what_privacy_allows(
    tmp_path: Path, store: Store, slack: FakeSlack, options: str, who: str, subject: bool
) -> None:
    """By default an alert names the customer and their domain, never the address nor the
    subject, in the outbox and in Slack's blocks and text; include_sender / include_subject
    turn them on."""
    alerts = f'alerts:\n  slack: {{token: xoxb-unused, channel: "#sla-alerts"}}\n{options}'
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, alerts)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0, subject="Refund for order 4711"), at=T0)
    alerting.at(minutes(31))
    notifier = SlackNotifier(DEFAULT_TOKEN, slack.api_url)
    dispatcher(store, notifier, ManualClock()).deliver(minutes(31))

    [stored] = payloads(store)
    [message] = slack.messages["C0ALERTS01"]
    facts = [
        ["Policy", "standard"],
        ["Waited (business time)", "31m of 1h00m"],
        ["Due", "Mon 16 Nov 10:00 UTC"],
        ["Mailbox", "inbox / INBOX"],
    ] + ([["Subject", "Refund for order 4711"]] if subject else [])
    title = f":warning: {who} has waited 31m for a first reply: due in 29m"
    assert stored["title"] == title
    assert stored["facts"] == facts
    assert message.text == (
        f"{who} has waited 31m for a first reply: due in 29m "
        "(policy standard, target 1h00m, due Mon 16 Nov 10:00 UTC)"
    )
    # The buttons name the clock by its opaque key (conversation:target:start), nothing else.
    key = f"1:first_response:{to_epoch(T0)}"
    assert stored["clock_key"] == key
    assert message.blocks == [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in facts],
        },
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": text},
                    "action_id": action_id,
                    "value": key,
                }
                for text, action_id in (
                    ("No reply needed", "replyclock_dismiss"),
                    ("Snooze 1h", "replyclock_snooze_1h"),
                    ("Snooze 4h", "replyclock_snooze_4h"),
                )
            ],
        },
    ]
    shown = json.dumps(stored) + json.dumps(message.blocks) + (message.text or "")
    assert ("tom@smallshop.example" in shown) == ("<tom@" in who)
    assert ("Refund" in shown) == subject


# --- the daily digest --------------------------------------------------------------------------

DIGEST_RULES = """\
policies:
  - name: vip
    match: {sender_domain: [bigcorp.example]}
    calendar: 24x7
    targets: {first_response: 4h}
    warning: 1h
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
"""
DIGEST = (
    'alerts:\n  slack: {token: xoxb-unused, channel: "#sla-alerts"}\n'
    "  timezone: Europe/Berlin\n"
    '  digest: {time: "09:00", channels: ["#sla-alerts", "#support-leads"]}\n'
)
DIGEST_NOW = berlin(17, 9)  # Tuesday 09:00 in Berlin: the digest covers Monday 16


def answered(store: Store, n: str, start: datetime, after_minutes: int) -> None:
    """A standard conversation answered ``after_minutes`` after it started."""
    ingest(
        store,
        customer(f"{n}@x", start, name=f"Answered {n}", address=f"{n}@shop.example"),
        at=start,
    )
    when = start + timedelta(minutes=after_minutes)
    ingest(store, team_reply(f"r-{n}@acme", when, f"{n}@shop.example", refs=(f"{n}@x",)), at=when)


def test_digest_reports_backlog_breaches_percentiles_and_longest(
    tmp_path: Path, store: Store
) -> None:
    """The digest for Monday, planned Tuesday 09:00 Berlin, counts the backlog by policy and
    state, Monday's breaches (by due time, in Berlin days), Monday's first-response p50/p90 and
    the five customers waiting longest, to each digest channel."""
    loaded, book = load(tmp_path, DIGEST_RULES, DIGEST)
    settings = settings_for(loaded)
    # Answered on Monday (Berlin): 10m, 20m, 30m, 1h (on time) and 2h (breached, due Monday).
    for n, hour, after in (("a1", 9, 10), ("a2", 10, 20), ("a3", 11, 30), ("a4", 12, 60)):
        answered(store, n, berlin(16, hour), after)
    answered(store, "a5", berlin(16, 14), 120)
    # Answered on Sunday (5h, breached Sunday) and on Tuesday: neither is Monday's.
    answered(store, "a0", berlin(15, 10), 300)
    answered(store, "a6", berlin(17, 8), 30)
    # Waiting now.
    for mid, start, name, address in (
        ("w1", berlin(17, 8, 50), "Wanda One", "w1@shop.example"),  # 10m: ok
        ("w2", berlin(17, 8, 20), "Walt Two", "w2@shop.example"),  # 40m: warning
        ("w3", berlin(16, 22), "", "w3@shop.example"),  # 11h: breached, due Mon 23:00
        ("w4", berlin(17, 6), "Wim Four", "w4@shop.example"),  # 3h: breached, due Tue 07:00
        ("v1", berlin(17, 8), "Vic One", "v1@bigcorp.example"),  # vip 1h: ok
        ("v2", berlin(16, 20), "Vera Two", "v2@bigcorp.example"),  # vip 13h: due Tue 00:00
    ):
        ingest(store, customer(f"{mid}@x", start, name=name, address=address), at=start)
    Alerting(store, book, settings).engine.evaluate(DIGEST_NOW)
    planner = AlertPlanner(store, book, settings)

    assert planner.plan_digest(DIGEST_NOW) == 2

    assert stages(store) == [
        ("digest", "#sla-alerts", "pending"),
        ("digest", "#support-leads", "pending"),
    ]
    first, second = payloads(store)
    assert first == second
    # p50 of 10m, 20m, 30m, 1h, 2h is 30m; p90 (inclusive) is 1h + 0.6 x 1h = 1h36m.
    assert first == {
        "kind": "digest",
        "title": ":bar_chart: Support SLA digest: 6 waiting, 2 breaches Mon 16 Nov",
        "fallback": "Support SLA digest: 6 waiting, 2 breaches Mon 16 Nov",
        "facts": [
            ["standard", "1 ok, 1 warning, 2 breached"],
            ["vip", "1 ok, 0 warnings, 1 breached"],
            ["First response Mon 16 Nov", "p50 30m, p90 1h36m (5 replies)"],
        ],
        "mention": [],
        "link": None,
        "lines": [
            "Longest waiting:",
            "Vera Two (bigcorp.example): 13h00m (vip)",
            "someone at shop.example: 11h00m (standard)",
            "Wim Four (shop.example): 3h00m (standard)",
            "Vic One (bigcorp.example): 1h00m (vip)",
            "Walt Two (shop.example): 40m (standard)",
        ],
        "note": "",
    }


def test_digest_is_queued_once_per_local_day_per_channel(tmp_path: Path, store: Store) -> None:
    """The digest is queued once per Berlin day and channel: again the same day is a no-op,
    the next day (from Berlin midnight, 23:00 UTC) queues a new one; nobody waiting says so."""
    loaded, book = load(tmp_path, DIGEST_RULES, DIGEST)
    planner = AlertPlanner(store, book, settings_for(loaded))

    counts = [
        planner.plan_digest(now)
        for now in (DIGEST_NOW, berlin(17, 23, 59), berlin(18, 0, 0), berlin(18, 9))
    ]

    assert counts == [2, 0, 2, 0]
    [tuesday, *_] = payloads(store)
    assert tuesday["title"] == ":bar_chart: Support SLA digest: 0 waiting, 0 breaches Mon 16 Nov"
    assert tuesday["facts"] == [["First response Mon 16 Nov", "no first replies"]]
    assert tuesday["lines"] == ["Nobody is waiting."]
    assert [p["title"][-10:] for p in payloads(store)] == ["Mon 16 Nov"] * 2 + ["Tue 17 Nov"] * 2


def test_no_digest_without_a_digest_section(tmp_path: Path, store: Store) -> None:
    """Without `alerts.digest` plan_digest queues nothing."""
    loaded, book = load(tmp_path, DIGEST_RULES, SLACK)

    assert AlertPlanner(store, book, settings_for(loaded)).plan_digest(DIGEST_NOW) == 0
    assert outbox(store) == []


def test_settings_come_from_the_alerts_section(tmp_path: Path) -> None:
    """AlertSettings reads channel, privacy, zone, quiet hours, burst and digest from the
    config; without an `alerts` section alerts go to the console with the defaults."""
    loaded, _ = load(
        tmp_path,
        ROUND_THE_CLOCK,
        DIGEST + '  quiet_hours: "22:00-07:00"\n  quiet: drop\n  burst: 5\n',
    )
    settings = settings_for(loaded)
    (tmp_path / "bare").mkdir()
    bare, _ = load(tmp_path / "bare", ROUND_THE_CLOCK)

    assert (settings.channel, str(settings.zone), settings.quiet, settings.burst) == (
        "#sla-alerts",
        "Europe/Berlin",
        "drop",
        5,
    )
    assert [t.isoformat() for t in settings.quiet_hours or ()] == ["22:00:00", "07:00:00"]
    assert settings.digest_channels == ("#sla-alerts", "#support-leads")
    assert settings.digest_time is not None
    assert settings.digest_time.isoformat() == "09:00:00"
    defaults = settings_for(bare)
    assert (defaults.channel, defaults.quiet_hours, defaults.digest_time, defaults.burst) == (
        "#console",
        None,
        None,
        20,
    )
