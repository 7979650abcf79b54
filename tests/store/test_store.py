"""The SQLite store: idempotent ingest, threading into conversations, one writer, migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError, StoreLockedError
from monitor.model import Direction, FolderCursor, MailLocation, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION
from monitor.store.sqlite import _split_sql, prune_closed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def event(
    mid: str,
    minutes: int = 0,
    *,
    direction: Direction = Direction.INBOUND,
    refs: tuple[str, ...] = (),
    uid: int | None = None,
    folder: str = "INBOX",
    subject: str = "Help",
    customer: str = "c@example.org",
    message_id: str | None = "",
) -> MessageEvent:
    return MessageEvent(
        source="inbox",
        identity=mid,
        timestamp=T0 + timedelta(minutes=minutes),
        direction=direction,
        reason="test",
        subject=subject,
        thread=ThreadRef(
            message_id=mid if message_id == "" else message_id,
            references=refs,
            subject_key=subject.lower(),
            customer=customer,
        ),
        location=MailLocation(folder=folder, uidvalidity=7, uid=uid) if uid is not None else None,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "var" / "replyclock.db")
    yield opened
    opened.close()


def conversation_of(store: Store, identity: str) -> int:
    row = store.conn.execute("SELECT conversation_id FROM messages WHERE identity = ?", (identity,))
    return int(row.fetchone()[0])


def test_new_store_is_wal_and_at_latest_schema(store: Store) -> None:
    """A fresh store is created in WAL mode with every migration applied."""
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.schema_version == SCHEMA_VERSION


def test_same_message_twice_is_stored_once(store: Store) -> None:
    """Ingesting a message again (another poll, another folder) adds no second copy."""
    sink = SourceSink(store, "inbox")
    first = sink.accept([event("a@x", uid=1)], None, NOW)
    again = sink.accept([event("a@x", uid=1), event("a@x", uid=9, folder="Archive")], None, NOW)
    assert (first.new, first.duplicates) == (1, 0)
    assert (again.new, again.duplicates) == (0, 2)
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 1
    assert sink.folder_uids("Archive", 7) == {9}


def test_reply_arriving_before_its_parent_joins_the_same_conversation(store: Store) -> None:
    """Out-of-order arrival: a reply seen first still ends up with its parent, in one thread."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("reply@x", 30, direction=Direction.OUTBOUND, refs=("root@x",))], None, NOW)
    sink.accept([event("root@x", 0)], None, NOW)
    assert conversation_of(store, "root@x") == conversation_of(store, "reply@x")
    conversation = store.conversation(conversation_of(store, "root@x"))
    assert conversation is not None
    assert conversation.first_message_at == T0
    assert conversation.last_message_at == T0 + timedelta(minutes=30)


def test_a_message_naming_two_threads_merges_them(store: Store) -> None:
    """When a message references two conversations, they turn out to be one and are merged."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("a@x", 0), event("b@x", 5, subject="Other")], None, NOW)
    first, second = conversation_of(store, "a@x"), conversation_of(store, "b@x")
    assert first != second
    result = sink.accept([event("c@x", 10, refs=("a@x", "b@x"))], None, NOW)
    assert result.conversations_merged == 1
    assert {conversation_of(store, m) for m in ("a@x", "b@x", "c@x")} == {min(first, second)}
    assert store.conversation(max(first, second)) is None


def test_subject_fallback_threads_a_reply_without_references(store: Store) -> None:
    """A message with no References joins the same customer's same-subject conversation."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("a@x", 0, subject="Login broken")], None, NOW)
    sink.accept([event("b@x", 60, subject="Login broken")], None, NOW)
    sink.accept([event("c@x", 60, subject="Login broken", customer="other@example.org")], None, NOW)
    assert conversation_of(store, "a@x") == conversation_of(store, "b@x")
    assert conversation_of(store, "c@x") != conversation_of(store, "a@x")


def test_subject_fallback_does_not_reach_past_the_window(store: Store) -> None:
    """The same subject from the same customer a month later starts a new conversation."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("a@x", 0, subject="Invoice")], None, NOW)
    sink.accept([event("b@x", 60 * 24 * 30, subject="Invoice")], None, NOW)
    assert conversation_of(store, "a@x") != conversation_of(store, "b@x")


def test_conversation_is_named_after_its_earliest_customer_message(store: Store) -> None:
    """Subject and customer come from the first inbound message, even if it arrived last."""
    sink = SourceSink(store, "inbox")
    sink.accept(
        [event("r@x", 50, direction=Direction.OUTBOUND, refs=("q@x",), subject="Re: Q")], None, NOW
    )
    sink.accept([event("f@x", 40, refs=("q@x",), subject="Re: Q (follow-up)")], None, NOW)
    sink.accept([event("q@x", 0, subject="Q")], None, NOW)
    conversation = store.conversation(conversation_of(store, "q@x"))
    assert conversation is not None
    assert conversation.subject == "Q"


def test_expunged_uid_marks_message_removed_only_when_in_no_folder(store: Store) -> None:
    """A message leaves the store's view only when no watched folder holds it any more."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("a@x", uid=1)], None, NOW)
    sink.accept([event("a@x", uid=4, folder="Sent")], None, NOW)
    assert sink.forget_uids("INBOX", 7, [1], NOW) == 0
    assert sink.forget_uids("Sent", 7, [4], NOW) == 1
    [message] = store.messages(conversation_of(store, "a@x"))
    assert message.removed_at == NOW
    sink.accept([event("a@x", uid=5, folder="INBOX")], None, NOW)  # moved back
    [message] = store.messages(conversation_of(store, "a@x"))
    assert message.removed_at is None


def test_second_writer_gets_a_clear_error(store: Store) -> None:
    """Another process opening the same store for writing is refused, naming the holder."""
    code = (
        "import sys; from pathlib import Path; from monitor.store import Store\n"
        "from monitor.errors import StoreLockedError\n"
        "try:\n    Store.open(Path(sys.argv[1]))\n"
        "except StoreLockedError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(store.path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == (
        f"another replyclock process (pid {__import__('os').getpid()}) is already writing to "
        f"{store.path}; stop it, or point this one at a different store.path"
    )


def test_same_process_second_writer_is_refused_too(store: Store) -> None:
    """The lock holds within one process too (a second Store.open on the same file)."""
    with pytest.raises(StoreLockedError):
        Store.open(store.path)


def test_reader_sees_writes_alongside_the_writer(store: Store) -> None:
    """`status` and `explain` read while the daemon holds the store open for writing."""
    SourceSink(store, "inbox").accept([event("a@x")], None, NOW)
    reader = Store.open(store.path, readonly=True)
    try:
        assert reader.source_counts() == {"inbox": (1, 1)}
        SourceSink(store, "inbox").accept([event("b@x", subject="New")], None, NOW)
        assert reader.source_counts() == {"inbox": (2, 2)}
        with pytest.raises(StoreError, match="attempt to write a readonly database"):
            reader.conn.execute("DELETE FROM messages")
    finally:
        reader.close()


def test_reader_of_missing_store_says_what_to_do(tmp_path: Path) -> None:
    """Reading a store that does not exist yet explains how to create it."""
    with pytest.raises(StoreError) as caught:
        Store.open(tmp_path / "none.db", readonly=True)
    assert str(caught.value) == (
        f"no store at {tmp_path}/none.db yet; run `replyclock run` first, or check store.path"
    )


def test_older_store_is_migrated_forward_in_place(tmp_path: Path) -> None:
    """A store written at schema version 1 is upgraded on open and keeps its messages."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statement in _split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO conversations (id, source, first_message_at, last_message_at, updated_at) "
        "VALUES (1, 'inbox', 100, 100, 100)"
    )
    conn.execute(
        "INSERT INTO messages (source, identity, conversation_id, timestamp, direction, reason, "
        "first_seen_at) VALUES ('inbox', 'a@x', 1, 100, 'inbound', 'customer message', 100)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    reopened = Store.open(path)
    try:
        assert reopened.schema_version == SCHEMA_VERSION > 1
        assert reopened.source_counts() == {"inbox": (1, 1)}
        columns = {row[1] for row in reopened.conn.execute("PRAGMA table_info(conversations)")}
        assert {"state", "clock_started_at", "evaluated_at"} <= columns
    finally:
        reopened.close()


def test_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    """A store written by a newer replyclock is not touched."""
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this replyclock"):
        Store.open(path)


def test_batch_and_cursor_are_written_together(store: Store) -> None:
    """A failing batch leaves neither its messages nor its cursor behind."""
    sink = SourceSink(store, "inbox")
    cursor = FolderCursor(source="inbox", folder="INBOX", uidvalidity=7, last_uid=10)
    broken = event("b@x")
    object.__setattr__(broken, "direction", "not-a-direction")  # forces an error mid-batch
    with pytest.raises(AttributeError):
        sink.accept([event("a@x"), broken], cursor, NOW)
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert sink.cursor("INBOX") is None
    sink.accept([event("a@x")], cursor, NOW)
    assert sink.cursor("INBOX") == cursor


def test_retention_erases_quiet_answered_conversations_only(store: Store) -> None:
    """What quiet answered conversations said is erased after retention; waiting ones keep
    everything, and erased messages still count as seen so they are never read again."""
    sink = SourceSink(store, "inbox")
    sink.accept(
        [
            event("old-q@x", 0, subject="Old", uid=1),
            event("old-r@x", 5, direction=Direction.OUTBOUND, refs=("old-q@x",), subject="Old"),
            event("waiting@x", 1, subject="Still waiting"),
            event("recent@x", 60 * 24 * 200, subject="Recent"),
        ],
        None,
        NOW,
    )
    later = T0 + timedelta(days=200)
    assert prune_closed(store, 180 * 86400, later) == 2
    subjects = dict(store.conn.execute("SELECT identity, subject FROM messages"))
    assert subjects == {
        "old-q@x": "",
        "old-r@x": "",
        "waiting@x": "Still waiting",
        "recent@x": "Recent",
    }
    old = store.conversation(1)
    assert old is not None
    assert (old.subject, old.customer) == ("", "")
    keys = store.conn.execute("SELECT COUNT(*) FROM thread_keys WHERE conversation_id = 1")
    assert keys.fetchone()[0] == 0
    again = sink.accept([event("old-q@x", 0, subject="Old", uid=1)], None, later)
    assert (again.new, again.duplicates) == (0, 1)
    assert sink.folder_uids("INBOX", 7) == {1}
    assert prune_closed(store, 180 * 86400, later) == 0
