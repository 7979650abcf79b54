"""What a person reads is true when it is sent: a stage held in the outbox (quiet hours, a
snooze, a Slack outage) is rendered again at delivery from the conversation's numbers as the
latest evaluation left them, while one sent at once goes exactly as planned.

Delivery is through the real SlackNotifier to the fake Slack, on a manual clock (see
``alerts.helpers`` for the week and the policies). The evaluation runs as the daemon's would:
``Alerting.at`` evaluates and plans at a given instant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack, SlackMessage

from alerts.helpers import (
    ALERTS,
    BERLIN,
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
    payloads,
    settings_for,
    stages,
    team_reply,
)
from monitor.alerts.content import (
    AlertContent,
    Privacy,
    StageAlert,
    StageFacts,
    Waiting,
    render_stage,
)
from monitor.alerts.slack import SlackNotifier
from monitor.engine import ActionRequest
from monitor.store import Store

# A day's target, the warning 12 hours before it: a warning can outlast a night of quiet hours.
LONG_WAIT = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 24h}
    warning: 12h
"""
NIGHTS = SLACK + '  timezone: Europe/Berlin\n  quiet_hours: "22:00-07:00"\n'
ADDRESS = "tom@smallshop.example"
SUBJECT = "Refund for order 4711"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def slack(clock: ManualClock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock.monotonic) as fake:
        yield fake


def notifier_for(slack: FakeSlack) -> SlackNotifier:
    return SlackNotifier(DEFAULT_TOKEN, slack.api_url)


def posted(slack: FakeSlack) -> list[SlackMessage]:
    """The bot's messages in #sla-alerts, oldest first."""
    return [m for m in slack.messages.get(ALERTS, []) if m.by_bot]


def header(message: SlackMessage) -> str:
    """The title of a posted alert, from its Block Kit header."""
    assert message.blocks is not None
    text: str = message.blocks[0]["text"]["text"]
    return text


def fields_of(message: SlackMessage) -> dict[str, str]:
    """The labelled facts of a posted alert: ``{"Due": "Tue 17 Nov 11:00 CET", ...}``."""
    assert message.blocks is not None
    found: dict[str, str] = {}
    for block in message.blocks:
        for field in block.get("fields", ()):
            label, _, value = field["text"].partition("\n")
            found[label.strip("*")] = value
    return found


def words(store: Store, **where: str) -> list[AlertContent]:
    """The words stored for the outbox rows matching ``column=value``, oldest first."""
    return [AlertContent.from_json(p) for p in payloads(store, **where)]


def hourly(alerting: Alerting, send: Any, start: datetime, end: datetime) -> int:
    """Evaluate, plan and deliver once an hour from ``start`` to ``end`` (both included), as
    the daemon's jobs would; return how many alerts went out."""
    sent = 0
    now = start
    while now <= end:
        alerting.at(now)
        sent += send.deliver(now).sent
        now += timedelta(hours=1)
    return sent


# --- held, then sent with the numbers of the morning --------------------------------------------


def test_a_warning_held_by_quiet_hours_says_how_long_the_customer_has_waited_by_morning(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Tom writes Mon 11:00 (Berlin); the warning is due at 23:00, inside quiet hours
    22:00-07:00, and held. Planned, it said 12h waited, due in 12h; sent at 07:00 it says what
    is true then: 20h waited, due in 4h (the due time itself does not move)."""
    loaded, book = load(tmp_path, LONG_WAIT, NIGHTS)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", berlin(16, 11)), at=berlin(16, 11))

    assert alerting.at(berlin(16, 23)) == 1
    [planned] = words(store, stage="warning")
    night = hourly(alerting, send, berlin(16, 23), berlin(17, 6))
    alerting.at(berlin(17, 7))
    morning = send.deliver(berlin(17, 7))

    assert planned.title == (
        ":warning: Tom Baker (smallshop.example) has waited 12h00m for a first reply: due in 12h00m"
    )
    assert (night, morning.sent) == (0, 1)
    [alert] = posted(slack)
    assert header(alert) == (
        ":warning: Tom Baker (smallshop.example) has waited 20h00m for a first reply: due in 4h00m"
    )
    assert alert.text == (
        "Tom Baker (smallshop.example) has waited 20h00m for a first reply: due in 4h00m "
        "(policy standard, target 24h00m, due Tue 17 Nov 11:00 CET)"
    )
    assert fields_of(alert) == {
        "Policy": "standard",
        "Waited (business time)": "20h00m of 24h00m",
        "Due": "Tue 17 Nov 11:00 CET",
        "Mailbox": "inbox / INBOX",
    }
    # What was sent is what the outbox keeps (the edits of the first alert quote it).
    [kept] = words(store, stage="warning")
    assert (kept.title, kept.fallback) == (header(alert), alert.text)


def test_a_warning_held_by_a_snooze_is_sent_with_the_wait_of_then_and_its_answer_quotes_it(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """The warning queued at 31m waits while the clock is snoozed until 41m; sent at 42m it
    says 42m waited, due in 18m. The reply at 50m edits that alert, quoting what it said."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(31))
    alerting.engine.act(
        ActionRequest(
            kind="snooze",
            conversation_id=1,
            actor="U0LEAD0001",
            actor_name="Ann Lead",
            via="slack",
            reason="",
            until=minutes(41),
        ),
        minutes(31),
    )

    held = send.deliver(minutes(32))
    alerting.at(minutes(42))
    after = send.deliver(minutes(42))
    ingest(store, team_reply("r1@acme", minutes(50), ADDRESS, refs=("q1@x",)), at=minutes(50))
    alerting.at(minutes(50))
    send.deliver(minutes(50))

    said = (
        "Tom Baker (smallshop.example) has waited 42m for a first reply: due in 18m "
        "(policy standard, target 1h00m, due Mon 16 Nov 10:00 UTC)"
    )
    assert (held.sent, held.held, after.sent) == (0, 1, 1)
    [alert] = posted(slack)
    assert [e.text for e in alert.edits] == [
        f"Answered by Acme Support after 50m (within target). Was: {said}"
    ]
    assert alert.edits[0].blocks is not None
    assert header(alert) == ":white_check_mark: Answered by Acme Support after 50m (within target)"


def test_a_breach_delayed_by_a_slack_outage_says_how_long_at_the_retry(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """The breach planned at 61m meets a Slack server error; retried after the next
    evaluation (70m), it says 1h10m waited, not 1h01m."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", T0), at=T0)
    alerting.at(minutes(61))  # the warning is superseded by the breach due with it
    slack.fail_next("chat.postMessage", "server_error")

    first = send.deliver(minutes(61))
    alerting.at(minutes(70))
    retry = send.deliver(minutes(70))

    assert (first.deferred, retry.sent) == (1, 1)
    [alert] = posted(slack)
    assert header(alert) == (
        ":rotating_light: SLA breached: Tom Baker (smallshop.example) has waited 1h10m "
        "for a first reply"
    )
    assert fields_of(alert)["Waited (business time)"] == "1h10m of 1h00m"


# --- a warning whose target passed while it was held -------------------------------------------


@pytest.mark.parametrize("evaluated", [True, False], ids=["evaluated_hourly", "not_evaluated"])
def test_a_held_warning_whose_target_passed_is_never_sent_the_breach_goes(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock, evaluated: bool
) -> None:
    """Tom writes at 21:35; the warning (due 22:05) is held by quiet hours, the target passes
    at 22:35. At 07:00 the warning would say "due in 0s": it is superseded, whether the
    evaluations of the night have planned the breach already or the delivery comes before
    any evaluation says the target has passed (a daemon down for the night). The breach goes,
    saying how long Tom has waited by then."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, NIGHTS)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", berlin(16, 21, 35)), at=berlin(16, 21, 35))
    alerting.at(berlin(16, 22, 5))

    if evaluated:  # the breach is planned at 23:00, held too: it supersedes the warning
        assert hourly(alerting, send, berlin(16, 23), berlin(17, 7)) == 1
    else:
        morning = send.deliver(berlin(17, 7))
        assert (morning.sent, morning.superseded) == (0, 1)
        alerting.at(berlin(17, 7))
        assert send.deliver(berlin(17, 7)).sent == 1

    assert stages(store) == [
        ("warning", "#sla-alerts", "superseded"),
        ("breach", "#sla-alerts", "sent"),
    ]
    [alert] = posted(slack)
    assert header(alert) == (
        ":rotating_light: SLA breached: Tom Baker (smallshop.example) has waited 9h25m "
        "for a first reply"
    )


# --- sent at once: as planned -------------------------------------------------------------------


def test_alerts_sent_at_once_go_exactly_as_planned(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Delivered right after the evaluation that planned them, the warning and the breach
    say what was stored when they were planned, and the stored rows are left as they were."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", T0), at=T0)

    rows = []
    for m in (31, 61):
        alerting.at(minutes(m))
        rows.append(
            store.conn.execute("SELECT payload FROM outbox ORDER BY id DESC LIMIT 1").fetchone()[0]
        )
        send.deliver(minutes(m))

    warning, breach = (AlertContent.from_json(json.loads(row)) for row in rows)
    assert [m.text for m in posted(slack)] == [warning.fallback, breach.fallback]
    assert [header(m) for m in posted(slack)] == [warning.title, breach.title]
    assert warning.title == (
        ":warning: Tom Baker (smallshop.example) has waited 31m for a first reply: due in 29m"
    )
    stored = [p for (p,) in store.conn.execute("SELECT payload FROM outbox ORDER BY id")]
    assert stored == rows


# --- privacy ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shown", [False, True], ids=["by_default", "include_sender_and_subject"])
def test_what_is_kept_to_render_again_holds_no_more_than_the_alert_shows(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock, shown: bool
) -> None:
    """The outbox keeps the address and the subject only when the alert shows them; the
    alert rendered again in the morning shows exactly what the config allows."""
    privacy = "  include_sender: true\n  include_subject: true\n" if shown else ""
    loaded, book = load(tmp_path, LONG_WAIT, NIGHTS + privacy)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock)
    ingest(store, customer("q1@x", berlin(16, 11)), at=berlin(16, 11))
    alerting.at(berlin(16, 23))

    (payload,) = store.conn.execute("SELECT payload FROM outbox").fetchone()
    alerting.at(berlin(17, 7))
    send.deliver(berlin(17, 7))

    assert (ADDRESS in payload, SUBJECT in payload) == (shown, shown)
    [alert] = posted(slack)
    who = f"Tom Baker <{ADDRESS}>" if shown else "Tom Baker (smallshop.example)"
    assert header(alert) == f":warning: {who} has waited 20h00m for a first reply: due in 4h00m"
    assert fields_of(alert).get("Subject") == (SUBJECT if shown else None)


# --- a burst released in the morning ------------------------------------------------------------


def test_a_burst_released_in_the_morning_is_summarized_with_the_numbers_of_then(
    tmp_path: Path, store: Store, slack: FakeSlack, clock: ManualClock
) -> None:
    """Two warnings held overnight go as one summary (burst 1): its lines say how long each
    customer has waited at 07:00."""
    loaded, book = load(tmp_path, LONG_WAIT, NIGHTS)
    alerting = Alerting(store, book, settings_for(loaded))
    send = dispatcher(store, notifier_for(slack), clock, burst=1)
    ingest(store, customer("q1@x", berlin(16, 11)), at=berlin(16, 11))
    other = customer(
        "q2@x", berlin(16, 12), name="Ann Smith", address="ann@bigshop.example", subject="Order"
    )
    ingest(store, other, at=berlin(16, 12))
    alerting.at(berlin(17, 0))
    alerting.at(berlin(17, 7))

    report = send.deliver(berlin(17, 7))

    assert report.summarized == 2
    [summary] = posted(slack)
    assert summary.blocks is not None
    text = json.dumps(summary.blocks)
    assert "Tom Baker (smallshop.example) has waited 20h00m for a first reply: due in 4h00m" in text
    assert "Ann Smith (bigshop.example) has waited 19h00m for a first reply: due in 5h00m" in text


# --- what is kept renders the same --------------------------------------------------------------

FACTS = StageFacts(
    kind="warning",
    step=0,
    waited=31 * 60,
    target=3600,
    due_at=T0 + timedelta(hours=1),
    zone=ZoneInfo("Europe/Berlin"),
    clock="first_response",
    mention=("<!subteam^S0LEADS001>",),
    clock_key="1:first_response:1794906000",
)


@pytest.mark.parametrize(
    ("name", "address"),
    [("Tom Baker", ADDRESS), ("", ADDRESS), ("Tom Baker", ""), ("", ""), ("Tom", "tom")],
)
@pytest.mark.parametrize(
    "privacy",
    [Privacy(), Privacy(include_sender=True), Privacy(include_subject=True)],
    ids=["default", "sender", "subject"],
)
def test_a_stage_back_from_the_outbox_renders_as_it_did(
    name: str, address: str, privacy: Privacy
) -> None:
    """Kept with only what may be shown (an address cut to its domain), a stage renders the
    same words as from the full facts, and again once measured anew."""
    waiting = Waiting(
        customer_name=name,
        customer_address=address,
        subject=SUBJECT,
        source="inbox",
        mailbox="INBOX",
        policy="standard",
        link="https://mail.example/t/1",
    )
    alert = StageAlert(waiting=waiting, facts=FACTS, privacy=privacy)

    back = StageAlert.from_payload(json.loads(json.dumps(alert.to_payload())))

    assert back is not None
    assert back.render() == render_stage(waiting, FACTS, privacy)
    assert AlertContent.from_json(alert.to_payload()) == back.render()
    due = FACTS.due_at.astimezone(BERLIN)
    again = back.measured(waited=50 * 60, target=3600, due_at=due).render()
    assert again == alert.measured(waited=50 * 60, target=3600, due_at=due).render()
    assert again.title.endswith("has waited 50m for a first reply: due in 10m")
