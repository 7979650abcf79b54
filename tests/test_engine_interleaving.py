"""Polls and evaluations interleaved on purpose: an evaluation that runs while a poll is still
reading never hides what that poll stores afterwards.

The daemon evaluates after every source's poll and every 30 seconds, so a long first sync is
read in many batches with evaluations in between, and each batch is stamped with the instant
its poll *started*. The result must equal one evaluation of everything read at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine import IN, OUT, event, rulebook

from monitor.config.rules import RuleBook
from monitor.engine import Engine
from monitor.model import MessageEvent
from monitor.store import SourceSink, Store

RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 2h}
    warning: 15m
"""
START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
STATE = ("policy", "state", "clock_kind", "waited_seconds", "due_at")
CLOCKS = (
    "seq", "kind", "started_at", "stopped_at", "stop_reason", "business_seconds", "state",
    "breached",
)  # fmt: skip


def conversation_events(count: int) -> list[MessageEvent]:
    """``count`` conversations: a question, our reply, and for every third one a follow-up."""
    events: list[MessageEvent] = []
    for n in range(count):
        asked = START + timedelta(minutes=7 * n)
        customer = f"c{n}@customer.example"
        events.append(event(f"q{n}@c", asked, IN, sender=customer, customer=customer))
        events.append(
            event(
                f"r{n}@acme",
                asked + timedelta(minutes=20 + n % 90),
                OUT,
                sender="support@acme.example",
                customer=customer,
                refs=(f"q{n}@c",),
            )
        )
        if n % 3 == 0:
            events.append(
                event(
                    f"f{n}@c",
                    asked + timedelta(hours=3),
                    IN,
                    sender=customer,
                    customer=customer,
                    refs=(f"q{n}@c", f"r{n}@acme"),
                )
            )
    return events


def snapshot(store: Store) -> list[tuple[object, ...]]:
    """Every conversation's current state and clock history, keyed by its first message."""
    rows = []
    for cid, identity in store.conn.execute(
        "SELECT conversation_id, MIN(identity) FROM messages GROUP BY conversation_id"
    ):
        current = store.conn.execute(
            f"SELECT {', '.join(STATE)} FROM conversations WHERE id = ?", (cid,)
        ).fetchone()
        clocks = store.conn.execute(
            f"SELECT {', '.join(CLOCKS)} FROM clocks WHERE conversation_id = ? ORDER BY seq",
            (cid,),
        ).fetchall()
        rows.append((identity, tuple(current), tuple(map(tuple, clocks))))
    return sorted(rows)


@pytest.fixture
def rules(tmp_path: Path) -> RuleBook:
    return rulebook(tmp_path, "interleave", RULES)


def empty(store: Store) -> None:
    """Delete every message, conversation and clock (hypothesis reuses a test's stores)."""
    with store.transaction() as conn:
        for table in (
            "messages",
            "conversations",
            "thread_keys",
            "clocks",
            "clock_totals",
            "merged_conversations",
            "locations",
            "response_buckets",
        ):
            conn.execute(f"DELETE FROM {table}")


def test_a_reply_stored_after_an_evaluation_by_a_poll_that_started_before_it_is_seen(
    stores: tuple[Store, Store], rules: RuleBook
) -> None:
    """The daemon's first sync, as traced in the field: the inbox batch is stored, another
    source's evaluation runs, then the same poll stores its Sent batch stamped with the instant
    the poll started, before that evaluation. Every conversation still ends up answered."""
    store, _ = stores
    events = conversation_events(30)
    inbound = [e for e in events if e.identity.startswith("q")]
    replies = [e for e in events if e.identity.startswith("r")]
    poll_started = START + timedelta(days=1)
    sink = SourceSink(store, "inbox")
    engine = Engine(store, rules)
    sink.accept(inbound, None, poll_started)
    engine.evaluate(poll_started + timedelta(seconds=5))
    sink.accept(replies, None, poll_started)
    engine.evaluate(poll_started + timedelta(seconds=10))
    states = dict(
        store.conn.execute("SELECT state, COUNT(*) FROM conversations GROUP BY state").fetchall()
    )
    assert states == {"answered": 30}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_interleaving_of_batches_and_evaluations_equals_one_evaluation_at_the_end(
    stores: tuple[Store, Store], rules: RuleBook, data: st.DataObject
) -> None:
    """Messages split into batches in any order, each stored with a poll-start instant that may
    lie before evaluations already run, with evaluations at any instants in between: the final
    states and clock histories equal those of storing everything and evaluating once."""
    interleaved, reference = stores
    for store in stores:
        empty(store)
    events = conversation_events(data.draw(st.integers(1, 12), label="conversations"))
    order = data.draw(st.permutations(events), label="order")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(order) - 1, 1))), label="cuts"))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True) if a < b]
    end = START + timedelta(days=2)
    engine = Engine(interleaved, rules)
    sink = SourceSink(interleaved, "inbox")
    clock = START + timedelta(days=1)
    for batch in batches:
        poll_started = clock
        evaluations = data.draw(st.lists(st.integers(0, 120), max_size=3), label="evaluations")
        for offset in evaluations:  # other sources' evaluations while this poll reads
            engine.evaluate(poll_started + timedelta(seconds=offset))
        sink.accept(batch, None, poll_started)
        clock += timedelta(seconds=data.draw(st.integers(0, 60), label="gap"))
    engine.evaluate(end)
    SourceSink(reference, "inbox").accept(events, None, end)
    Engine(reference, rules).evaluate(end)
    assert snapshot(interleaved) == snapshot(reference)


def test_replies_stored_between_two_batches_of_a_remeasure_are_evaluated_before_it_ends(
    stores: tuple[Store, Store], rules: RuleBook
) -> None:
    """The daemon lets polls write between batches of 500 clocks measured again. Replies
    stored in such a pause, to conversations of a batch not yet measured, must not be
    overwritten by that batch's stale "still waiting": when evaluate returns they are
    answered, as in one evaluation of everything."""
    store, reference = stores
    events = conversation_events(600)
    questions = [e for e in events if e.identity.startswith("q")]
    replies = [e for e in events if e.identity.startswith("r")]
    asked = START + timedelta(days=1)
    sink = SourceSink(store, "inbox")
    engine = Engine(store, rules)
    sink.accept(questions, None, asked)
    engine.evaluate(asked, remeasure=False)
    later = START + timedelta(days=2)
    pauses = 0

    def poll_writes() -> None:
        nonlocal pauses
        pauses += 1
        if pauses == 1:  # the replies arrive while the first batch is written
            sink.accept(replies, None, later)

    report = engine.evaluate(later, pause=poll_writes)
    assert pauses >= 1
    assert report.changed  # the replies' conversations were evaluated in full
    SourceSink(reference, "inbox").accept(questions + replies, None, asked)
    Engine(reference, rules).evaluate(later)
    assert snapshot(store) == snapshot(reference)
