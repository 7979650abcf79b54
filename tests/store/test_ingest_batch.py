"""Storing a batch at once gives the same conversations as storing its messages one by one."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model import Direction, MailLocation, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
IDS = [f"m{i}@x.example" for i in range(8)]


@st.composite
def mail(draw: st.DrawFn, uid: int) -> MessageEvent:
    """A message drawn from a few ids, customers and subjects, so that batches tie messages
    by id and by subject, merge conversations, and repeat messages."""
    message_id = draw(st.sampled_from([*IDS, None]))
    return MessageEvent(
        source="s",
        identity=message_id or f"sha256:{draw(st.integers(0, 3))}",
        # Distinct instants: which of two customer messages of one second names the
        # conversation is a tie that storing in batches does not promise to break alike.
        timestamp=T0 + timedelta(days=draw(st.integers(0, 40)), minutes=uid),
        direction=draw(st.sampled_from([Direction.INBOUND, Direction.OUTBOUND])),
        reason="test",
        author_name=draw(st.sampled_from(["Ann", "Bo"])),
        subject=draw(st.sampled_from(["Help", "Order"])),
        thread=ThreadRef(
            message_id=message_id,
            in_reply_to=tuple(draw(st.lists(st.sampled_from(IDS), max_size=1))),
            references=tuple(draw(st.lists(st.sampled_from(IDS), max_size=2))),
            subject_key=draw(st.sampled_from(["help", "order"])),
            customer=draw(st.sampled_from(["ann@c.example", "bo@c.example"])),
        ),
        link=draw(st.sampled_from([None, "https://x.example/1"])),
        location=MailLocation(folder="INBOX", uidvalidity=1, uid=uid),
        fingerprint=draw(st.sampled_from(["", "f1", "f2"])) if message_id else "",
    )


@st.composite
def batches(draw: st.DrawFn) -> list[MessageEvent]:
    size = draw(st.integers(1, 16))
    return [draw(mail(uid)) for uid in range(1, size + 1)]


def conversations(path: Path) -> set[tuple[object, ...]]:
    """Each conversation as what it holds and says, without its row id or revision (a count
    of writes) or its link (the first one stored stays)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT c.subject, c.customer, c.customer_name, c.first_message_at, "
            "c.last_message_at, group_concat(m.identity, ' ') FROM conversations c "
            "JOIN (SELECT identity, conversation_id FROM messages ORDER BY identity) m "
            "ON m.conversation_id = c.id GROUP BY c.id"
        ).fetchall()
    finally:
        conn.close()
    return {tuple(row) for row in rows}


@settings(max_examples=60, deadline=None)
@given(events=batches())
def test_a_batch_threads_as_its_messages_stored_one_at_a_time(events: list[MessageEvent]) -> None:
    """Ties by id and by subject, merges and repeats found inside one batch come out as when
    each message is stored in its own transaction."""
    with tempfile.TemporaryDirectory() as tmp:
        together, one_by_one = Path(tmp) / "together.db", Path(tmp) / "one.db"
        store = Store.open(together)
        result = SourceSink(store, "s").accept(events, None, NOW)
        store.close()
        store = Store.open(one_by_one)
        sink = SourceSink(store, "s")
        singles = [sink.accept([event], None, NOW) for event in events]
        store.close()
        assert result.new == sum(single.new for single in singles)
        assert result.duplicates == sum(single.duplicates for single in singles)
        assert conversations(together) == conversations(one_by_one)
