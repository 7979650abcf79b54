"""People's decisions about a clock, through the engine, the planner and the dispatcher.

"No reply needed" (dismiss) stops the clock: no more alerts, the first alert edited to say who
and why, counted in the dismissed total; a later customer message starts a new clock. "Snooze"
holds a clock's alerts until it runs out while the clock and its numbers go on. Times: see
``alerts.helpers`` (a 24x7 policy, warning at 30m, target 1h, from T0 = Mon 16 Nov 09:00 UTC).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from alerts.helpers import (
    ESCALATING,
    ROUND_THE_CLOCK,
    SLACK,
    T0,
    Alerting,
    ManualClock,
    RecordingNotifier,
    customer,
    dispatcher,
    ingest,
    load,
    minutes,
    settings_for,
    stages,
    team_reply,
)
from monitor.engine import ActionOutcome, ActionRequest
from monitor.store import Store
from monitor.store.sqlite import (
    actions_by_conversation,
    active_snoozes,
    metrics_snapshot,
    take_new_actions,
    to_epoch,
)

KEY = f"1:first_response:{to_epoch(T0)}"  # the first clock of conversation 1


def act(
    alerting: Alerting, kind: str, at: datetime, *, until: datetime | None = None, **extra: str
) -> ActionOutcome:
    """A lead's decision on conversation 1, as the command line or Slack records it."""
    request = ActionRequest(
        kind="dismiss" if kind == "dismiss" else "snooze",
        conversation_id=1,
        actor=extra.get("actor", "U0LEAD0001"),
        actor_name=extra.get("name", "Ann Lead" if extra.get("via", "slack") == "slack" else ""),
        via="slack" if extra.get("via", "slack") == "slack" else "cli",
        reason=extra.get("reason", ""),
        until=until,
        clock_key=extra.get("key"),
    )
    return alerting.engine.act(request, at)


def state(store: Store) -> tuple[str, ...]:
    """Conversation 1's stored clocks: (kind, state, stop reason) each."""
    return tuple(
        f"{kind}:{state}:{reason}"
        for kind, state, reason in store.conn.execute(
            "SELECT kind, state, stop_reason FROM clocks WHERE conversation_id = 1 ORDER BY seq"
        )
    )


@pytest.fixture
def alerting(tmp_path: Path, store: Store) -> Alerting:
    loaded, book = load(tmp_path, ESCALATING, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    return alerting


def test_dismissal_stops_the_clock_and_every_alert_after_it(
    store: Store, alerting: Alerting
) -> None:
    """Dismissed at 1h05m from the breach alert: the clock stops as dismissed (its breach
    stays counted), the dismissed total counts it, the root alert is edited to say who
    dismissed it and why, and the escalation due at 1h30m is never queued."""
    notifier = RecordingNotifier()
    send = dispatcher(store, notifier, ManualClock())
    alerting.at(minutes(65))
    send.deliver(minutes(65))

    outcome = act(alerting, "dismiss", minutes(66), reason="customer said thanks")
    alerting.at(minutes(66))
    send.deliver(minutes(66))
    for later in (95, 200):
        alerting.at(minutes(later))
        send.deliver(minutes(later))

    assert outcome.action is not None
    assert outcome.message.startswith("dismissed its first-response clock (waiting since ")
    assert state(store) == ("first_response:dismissed:dismissed",)
    [totals] = metrics_snapshot(store).totals
    assert (totals.dismissed, totals.breaches, totals.closed) == (1, 1, 0)
    assert stages(store) == [
        ("breach", "#sla-alerts", "sent"),
        ("warning", "#sla-alerts", "superseded"),
        ("answered", "#sla-alerts", "sent"),
    ]
    assert [(c.method, c.title) for c in notifier.calls] == [
        ("post", ":rotating_light: SLA breached: Tom Baker (smallshop.example) has waited 1h05m "
         "for a first reply"),
        ("update", ":heavy_minus_sign: Dismissed by Ann Lead: no reply needed"),
    ]  # fmt: skip


def test_the_dismissed_edit_says_when_and_why_and_drops_the_buttons(
    store: Store, alerting: Alerting
) -> None:
    """The edited first alert keeps its facts, names the time and reason, and has no
    buttons any more (no clock key): the wait is over."""
    alerting.at(minutes(65))
    dispatcher(store, RecordingNotifier(), ManualClock()).deliver(minutes(65))
    act(alerting, "dismiss", minutes(66), actor="alice", via="cli", reason="spam")
    alerting.at(minutes(66))

    [edit] = list(store.conn.execute("SELECT payload FROM outbox WHERE stage = 'answered'"))
    assert '"clock_key"' not in edit[0]
    assert (
        "Dismissed by alice: no reply needed (Mon 16 Nov 10:06 UTC, after 1h06m: spam)" in (edit[0])
    )


def test_a_new_customer_message_after_a_dismissal_starts_a_new_clock(
    store: Store, alerting: Alerting
) -> None:
    """After a dismissal the customer writes again: a new (first-response) clock starts and
    earns its own warning as usual."""
    alerting.at(minutes(10))
    act(alerting, "dismiss", minutes(20))
    alerting.at(minutes(20))
    ingest(store, customer("q2@x", minutes(40), refs=("q1@x",)), at=minutes(40))

    alerting.at(minutes(71))

    assert state(store) == (
        "first_response:dismissed:dismissed",
        "first_response:warning:None",
    )
    assert [s for s in stages(store) if s[2] == "pending"] == [
        ("warning", "#sla-alerts", "pending")
    ]


def test_a_dismissal_recorded_beside_the_writer_is_taken_in_and_counted_once(
    store: Store, alerting: Alerting
) -> None:
    """A dismissal in the actions table (as `replyclock dismiss` leaves it next to a running
    daemon) is taken in at the next evaluation, once: the clock is re-evaluated, the row is
    marked applied, and evaluating again changes nothing."""
    alerting.at(minutes(10))
    act(alerting, "dismiss", minutes(12), actor="alice", via="cli")
    [pending] = actions_by_conversation(store, [1])[1]
    assert pending.applied_at is None

    alerting.at(minutes(13))
    alerting.at(minutes(14))

    [applied] = actions_by_conversation(store, [1])[1]
    assert applied.applied_at == minutes(13).replace(microsecond=0)
    assert take_new_actions(store, minutes(15)) == []
    assert metrics_snapshot(store).totals[0].dismissed == 1


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            "answered", "the wait is over: the customer was answered, Mon 16 Nov 09:20 UTC",
            id="answered",
        ),
        pytest.param(
            "dismissed",
            "the wait is over: already dismissed by Ann Lead (Slack U0LEAD0001), "
            "Mon 16 Nov 09:15 UTC",
            id="dismissed_before",
        ),
    ],
)  # fmt: skip
def test_a_button_on_an_alert_whose_wait_is_over_records_nothing(
    store: Store, alerting: Alerting, setup: str, message: str
) -> None:
    """Pressing an old alert's button after the customer was answered, or after someone
    else dismissed it, records nothing and says why (no address, subject or id)."""
    alerting.at(minutes(10))
    if setup == "answered":
        ingest(
            store,
            team_reply("r1@acme", minutes(20), "tom@smallshop.example", refs=("q1@x",)),
            at=minutes(20),
        )
    else:
        act(alerting, "dismiss", minutes(15))

    outcome = act(alerting, "dismiss", minutes(30), key=KEY)

    assert (outcome.action, outcome.message) == (None, message)
    assert len(actions_by_conversation(store, [1])[1]) == (0 if setup == "answered" else 1)


def test_a_button_of_an_earlier_clock_never_touches_the_running_one(
    store: Store, alerting: Alerting
) -> None:
    """Answered, then the customer writes again: the old alert's "No reply needed" names the
    first clock, so the second (running) clock is left alone."""
    ingest(
        store,
        team_reply("r1@acme", minutes(20), "tom@smallshop.example", refs=("q1@x",)),
        at=minutes(20),
    )
    ingest(store, customer("q2@x", minutes(40), refs=("q1@x",)), at=minutes(40))

    outcome = act(alerting, "dismiss", minutes(50), key=KEY)
    alerting.at(minutes(50))

    assert outcome.action is None
    assert state(store) == ("first_response:answered:reply", "next_response:ok:None")


def test_snooze_holds_the_alerts_until_it_runs_out_and_the_clock_runs_on(
    store: Store, alerting: Alerting
) -> None:
    """Warning sent at 31m, snoozed 1h at 32m: the breach (due after 1h) and the escalation
    (after 1h30m) wait while the clock and its numbers go on (breached at 1h05m); at 1h32m the
    snooze runs out and only the highest stage due goes, in the thread: breach, then the
    escalation."""
    notifier = RecordingNotifier()
    send = dispatcher(store, notifier, ManualClock())
    alerting.at(minutes(31))
    send.deliver(minutes(31))

    act(alerting, "snooze", minutes(32), until=minutes(92))
    held = {}
    for at in (33, 65, 91):
        alerting.at(minutes(at))
        held[at] = send.deliver(minutes(at)).sent
    during = (
        store.conn.execute("SELECT state FROM conversations WHERE id = 1").fetchone()[0],
        [c.method for c in notifier.calls],
    )
    alerting.at(minutes(93))
    send.deliver(minutes(93))

    assert held == {33: 0, 65: 0, 91: 0}
    assert during == ("breached", ["post", "update"])  # the warning, and its snooze note
    assert [(c.method, c.thread is not None) for c in notifier.calls] == [
        ("post", False),
        ("update", True),
        ("post", True),
        ("post", True),
    ]
    assert [c.title.split(":", 2)[1].strip() for c in notifier.calls[2:]] == [
        "rotating_light",
        "sos",
    ]
    assert active_snoozes(store, minutes(93)) == {}


def test_the_snooze_note_edits_the_first_alert_keeping_its_buttons(
    store: Store, alerting: Alerting
) -> None:
    """The snooze is told on the first alert once: it says who, until when and why, and keeps
    the buttons (the wait goes on, the lead may still dismiss it)."""
    alerting.at(minutes(31))
    dispatcher(store, RecordingNotifier(), ManualClock()).deliver(minutes(31))
    act(alerting, "snooze", minutes(32), until=minutes(272), reason="waiting on finance")

    alerting.at(minutes(33))
    alerting.at(minutes(34))

    [(payload,)] = store.conn.execute(
        "SELECT payload FROM outbox WHERE stage = 'snoozed'"
    ).fetchall()
    assert f'"clock_key": "{KEY}"' in payload
    assert (
        ":zzz: Snoozed by Ann Lead until Mon 16 Nov 13:32 UTC (Mon 16 Nov 09:32 UTC: waiting on "
        "finance); no alerts for this wait until then."
    ) in payload


def test_a_later_snooze_replaces_an_earlier_one(store: Store, alerting: Alerting) -> None:
    """Snoozed 4h, then 1h: the 1h snooze decides (alerts come back after 1h)."""
    alerting.at(minutes(31))
    act(alerting, "snooze", minutes(32), until=minutes(272))
    act(alerting, "snooze", minutes(33), until=minutes(93))

    [(key, snooze)] = active_snoozes(store, minutes(40)).items()

    assert (key, snooze.until) == (KEY, minutes(93))
    assert active_snoozes(store, minutes(94)) == {}


def test_a_stage_queued_before_the_snooze_waits_for_it(tmp_path: Path, store: Store) -> None:
    """A warning held in the outbox (planned, not yet delivered) when the clock is snoozed is
    not delivered while the snooze lasts, and goes after it if still true."""
    loaded, book = load(tmp_path, ROUND_THE_CLOCK, SLACK)
    alerting = Alerting(store, book, settings_for(loaded))
    ingest(store, customer("q1@x", T0), at=T0)
    notifier = RecordingNotifier()
    send = dispatcher(store, notifier, ManualClock())
    alerting.at(minutes(31))  # the warning is queued

    act(alerting, "snooze", minutes(31), until=minutes(41))
    report = send.deliver(minutes(32))
    after = send.deliver(minutes(42))

    assert (report.sent, report.held) == (0, 1)
    assert after.sent == 1
    assert [c.title[:10] for c in notifier.calls] == [":warning: "]


def test_actions_survive_a_restart(db: Path, store: Store, alerting: Alerting) -> None:
    """What was decided is in the store: reopened, the dismissal and its reason are there."""
    act(alerting, "dismiss", minutes(5), actor="alice", via="cli", reason="duplicate")
    store.close()

    with Store.open(db) as reopened:
        [action] = actions_by_conversation(reopened, [1])[1]

    assert (action.kind, action.actor, action.via, action.reason, action.at) == (
        "dismiss",
        "alice",
        "cli",
        "duplicate",
        minutes(5),
    )
    assert action.thread_key == KEY
    assert action.who == "alice (command line)"
