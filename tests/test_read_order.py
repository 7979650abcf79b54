"""Conversations and clocks come out the same whatever order the mail is read in.

A first sync reads INBOX before Sent, a batch at a time; a later poll may meet mail that
arrived late. Whatever the order, the messages must fall into the same conversations and give
the same clocks. The partition is also computed here independently, as the connected pieces
of the ties replyclock's threading rules make between pairs of messages (conversations.py):
an id one names and the other has or also names; or the same customer and normalized subject,
at most 14 days apart, at least one of the two naming no other message.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine import IN, OUT, event, rulebook
from test_engine_interleaving import RULES, START, empty, snapshot

from monitor.config.rules import RuleBook
from monitor.engine import Engine
from monitor.model import MessageEvent
from monitor.store import SourceSink, Store

WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class Shape:
    """One conversation as a support mailbox holds it."""

    customer: int
    subject: int
    day: int  # when the question came, days after START
    reply_names_question: bool  # False: the reply has no In-Reply-To / References
    follow_up: str  # "", "reply" (names only our reply) or "both"
    second_reply: bool


shapes = st.builds(
    Shape,
    customer=st.integers(0, 1),
    subject=st.integers(0, 2),
    day=st.integers(0, 40),
    reply_names_question=st.booleans(),
    follow_up=st.sampled_from(["", "reply", "both"]),
    second_reply=st.booleans(),
)


def mailbox(conversations: list[Shape]) -> list[MessageEvent]:
    """The messages of ``conversations``: INBOX (customer mail) and Sent (the team's)."""
    events: list[MessageEvent] = []
    for n, shape in enumerate(conversations):
        customer = f"c{shape.customer}@customer.example"
        subject = f"Order problem {shape.subject}"
        asked = START + timedelta(days=shape.day, minutes=17 * n)
        q, r, f, r2 = (f"{kind}{n}@x" for kind in ("q", "r", "f", "s"))
        events.append(event(q, asked, IN, sender=customer, customer=customer, subject=subject))
        reply_refs = (q,) if shape.reply_names_question else ()
        team = {"sender": "support@acme.example", "customer": customer, "subject": subject}
        events.append(event(r, asked + timedelta(minutes=40), OUT, refs=reply_refs, **team))
        if shape.follow_up:
            refs = (r,) if shape.follow_up == "reply" else (q, r)
            later = asked + timedelta(hours=3)
            events.append(
                event(f, later, IN, sender=customer, customer=customer, subject=subject, refs=refs)
            )
            if shape.second_reply:
                events.append(event(r2, later + timedelta(hours=1), OUT, refs=(q, r, f), **team))
    return events


def expected_partition(events: list[MessageEvent]) -> set[frozenset[str]]:
    """The connected pieces of the pairwise ties (see the module docstring)."""
    parent = {e.identity: e.identity for e in events}

    def find(item: str) -> str:
        while parent[item] != item:
            item = parent[item]
        return item

    def names(e: MessageEvent) -> set[str]:
        return {e.thread.message_id or "", *e.thread.references, *e.thread.in_reply_to} - {""}

    def root(e: MessageEvent) -> bool:
        return not (e.thread.references or e.thread.in_reply_to)

    for a, b in itertools.combinations(events, 2):
        by_id = bool(names(a) & names(b))
        by_subject = (
            (a.thread.customer, a.thread.subject_key) == (b.thread.customer, b.thread.subject_key)
            and abs(a.timestamp - b.timestamp) <= WINDOW
            and (root(a) or root(b))
        )
        if by_id or by_subject:
            parent[find(a.identity)] = find(b.identity)
    pieces: dict[str, set[str]] = {}
    for e in events:
        pieces.setdefault(find(e.identity), set()).add(e.identity)
    return {frozenset(piece) for piece in pieces.values()}


def partition(store: Store) -> set[frozenset[str]]:
    pieces: dict[int, set[str]] = {}
    for identity, cid in store.conn.execute("SELECT identity, conversation_id FROM messages"):
        pieces.setdefault(cid, set()).add(identity)
    return {frozenset(piece) for piece in pieces.values()}


@pytest.fixture
def rules(tmp_path: Path) -> RuleBook:
    return rulebook(tmp_path, "order", RULES)


def test_a_reply_tied_only_by_subject_read_after_the_answer_to_it_joins_its_question(
    stores: tuple[Store, Store], rules: RuleBook
) -> None:
    """INBOX first: the customer's answer names our reply, which only the subject ties to the
    question. Read that way, the reply used to start a second conversation: the question
    breached with no first response. Now it is one conversation, as when Sent is read first."""
    events = mailbox([Shape(0, 0, 0, reply_names_question=False, follow_up="reply",
                            second_reply=False)])  # fmt: skip
    inbox = [e for e in events if e.direction is IN]
    sent = [e for e in events if e.direction is OUT]
    end = START + timedelta(days=1)
    for store, folders in zip(stores, ([inbox, sent], [sent, inbox]), strict=True):
        for batch in folders:
            SourceSink(store, "inbox").accept(batch, None, end)
        Engine(store, rules).evaluate(end)
    inbox_first, sent_first = stores
    assert partition(inbox_first) == {frozenset({"q0@x", "r0@x", "f0@x"})}
    assert snapshot(inbox_first) == snapshot(sent_first)
    (_, _, clocks), *_ = snapshot(inbox_first)
    assert [clock[1] for clock in clocks] == ["first_response", "next_response"]
    assert clocks[0][4] == "reply"  # the first response was the reply read last


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_folder_and_batch_order_gives_the_same_conversations_and_clocks(
    stores: tuple[Store, Store], rules: RuleBook, data: st.DataObject
) -> None:
    """INBOX or Sent first, each folder in any order, cut into batches anywhere: the same
    partition into conversations (the independent one) and the same clocks as reading all
    of it in time order at once."""
    shuffled, reference = stores
    for store in stores:
        empty(store)
    events = mailbox(data.draw(st.lists(shapes, min_size=1, max_size=6), label="mailbox"))
    folders = [[e for e in events if e.direction is IN], [e for e in events if e.direction is OUT]]
    if data.draw(st.booleans(), label="sent first"):
        folders.reverse()
    order = [e for folder in folders for e in data.draw(st.permutations(folder))]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(order) - 1, 1))), label="cuts"))
    end = START + timedelta(days=60)
    sink = SourceSink(shuffled, "inbox")
    for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True):
        if a < b:
            sink.accept(order[a:b], None, end)
    Engine(shuffled, rules).evaluate(end)
    SourceSink(reference, "inbox").accept(sorted(events, key=lambda e: e.timestamp), None, end)
    Engine(reference, rules).evaluate(end)
    assert partition(shuffled) == expected_partition(events)
    assert partition(reference) == expected_partition(events)
    assert snapshot(shuffled) == snapshot(reference)
