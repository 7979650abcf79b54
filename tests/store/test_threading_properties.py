"""Threading properties: the conversations found do not depend on the order mail arrives in."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.conversations import ThreadDecision, decide_thread, thread_keys
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@st.composite
def forests(draw: st.DrawFn) -> tuple[list[int | None], list[bool], list[int]]:
    """Random reply trees: parent index per message, whether it carries full References, and
    an arrival order."""
    size = draw(st.integers(min_value=1, max_value=14))
    parents: list[int | None] = []
    for index in range(size):
        parents.append(draw(st.one_of(st.none(), st.integers(0, index - 1))) if index else None)
    full_refs = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    order = draw(st.permutations(list(range(size))))
    return parents, full_refs, list(order)


def ancestors(parents: list[int | None], index: int) -> list[int]:
    chain: list[int] = []
    parent = parents[index]
    while parent is not None:
        chain.insert(0, parent)
        parent = parents[parent]
    return chain


def root(parents: list[int | None], index: int) -> int:
    chain = ancestors(parents, index)
    return chain[0] if chain else index


def as_event(parents: list[int | None], full_refs: list[bool], index: int) -> MessageEvent:
    chain = ancestors(parents, index)
    refs = (
        tuple(f"m{a}@x" for a in chain)
        if full_refs[index]
        else tuple(f"m{a}@x" for a in chain[-1:])
    )
    return MessageEvent(
        source="s",
        identity=f"m{index}@x",
        timestamp=T0 + timedelta(minutes=index),
        direction=Direction.INBOUND if index % 2 == 0 else Direction.OUTBOUND,
        reason="test",
        thread=ThreadRef(
            message_id=f"m{index}@x",
            in_reply_to=refs[-1:],
            references=refs,
            subject_key=f"subject {root(parents, index)}",  # distinct per thread
            customer="c@example.org",
        ),
    )


@settings(max_examples=60, deadline=None)
@given(forests())
def test_conversations_are_the_reply_trees_whatever_the_arrival_order(
    forest: tuple[list[int | None], list[bool], list[int]],
) -> None:
    """Messages group into exactly their reply trees, in any arrival order, with or without
    full References headers."""
    parents, full_refs, order = forest
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "t.db")
        try:
            sink = SourceSink(store, "s")
            for index in order:
                sink.accept([as_event(parents, full_refs, index)], None, T0)
            found: dict[int, set[int]] = {}
            for identity, cid in store.conn.execute(
                "SELECT identity, conversation_id FROM messages"
            ):
                found.setdefault(cid, set()).add(int(identity[1:].split("@")[0]))
        finally:
            store.close()
    expected: dict[int, set[int]] = {}
    for index in range(len(parents)):
        expected.setdefault(root(parents, index), set()).add(index)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, expected.values()))


class DictLookup:
    """A tiny in-memory ThreadLookup for the pure decision function: conversation 99 has a
    root message with customer c@x and subject "hello", conversation 98 only replies."""

    def __init__(self, keys: dict[str, int]) -> None:
        self.keys = keys

    def conversations_for_keys(self, keys: list[str]) -> list[int]:
        return list(dict.fromkeys(self.keys[k] for k in keys if k in self.keys))

    def conversations_for_subject(
        self, customer: str, subject_key: str, start: datetime, end: datetime, *, roots_only: bool
    ) -> list[int]:
        if (customer, subject_key) != ("c@x", "hello") or not start <= T0 <= end:
            return []
        return [99] if roots_only else [98, 99]


def test_explicit_ticket_key_overrides_headers() -> None:
    """A helpdesk ticket key decides the conversation; mail headers are not consulted."""
    ref = ThreadRef(conversation="zendesk:42", message_id="m@x", references=("other@x",))
    assert thread_keys(ref) == ("key:zendesk:42",)


def test_gmail_thread_id_is_used_when_present() -> None:
    """Gmail's X-GM-THRID is the only key when the server gives one."""
    ref = ThreadRef(gm_thread_id="1780", message_id="m@x", in_reply_to=("p@x",))
    assert thread_keys(ref) == ("gm:1780",)


def test_decision_joins_oldest_and_merges_the_rest() -> None:
    """A message linking two known conversations joins the older and merges the newer."""
    lookup = DictLookup({"mid:a@x": 5, "mid:b@x": 3})
    ref = ThreadRef(message_id="c@x", references=("a@x", "b@x"))
    assert decide_thread(ref, T0, lookup) == ThreadDecision(
        keys=("mid:c@x", "mid:a@x", "mid:b@x"), conversation=3, merge=(5,)
    )


def test_a_root_joins_by_subject_and_a_reply_only_through_a_root() -> None:
    """A message naming no other joins every conversation of its customer and subject in the
    window (and merges them); a reply joins only those holding a root of that pair."""
    lookup = DictLookup({})
    plain = ThreadRef(message_id="n@x", subject_key="hello", customer="c@x")
    assert decide_thread(plain, T0, lookup) == ThreadDecision(
        keys=("mid:n@x",), conversation=98, merge=(99,), by_subject=True
    )
    reply = ThreadRef(
        message_id="n@x", in_reply_to=("gone@x",), subject_key="hello", customer="c@x"
    )
    assert decide_thread(reply, T0, lookup).conversation == 99
    elsewhere = ThreadRef(message_id="n@x", subject_key="other", customer="c@x")
    assert decide_thread(elsewhere, T0, lookup).conversation is None


def test_a_subject_tie_and_an_id_tie_merge_their_conversations() -> None:
    """A message placed by its Message-ID (a later message named it) and by its subject joins
    both: the conversations are one."""
    lookup = DictLookup({"mid:r@x": 7})
    reply = ThreadRef(message_id="r@x", subject_key="hello", customer="c@x")
    decision = decide_thread(reply, T0, lookup)
    assert (decision.conversation, decision.merge) == (7, (98, 99))
