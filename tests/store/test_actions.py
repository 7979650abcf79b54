"""The actions table: people's decisions, recorded next to a running writer and taken in once.

The daemon holds the store's writer lock for as long as it runs; `replyclock dismiss` and
`snooze` then open the store ``beside_writer`` and append one row, which SQLite serializes with
the writer's transactions. Here the "daemon" is a writer ``Store`` opened in the test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION
from monitor.store.sqlite import (
    _split_sql,
    actions_by_conversation,
    active_snoozes,
    held_threads,
    record_action,
    take_new_actions,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEY = "1:first_response:1795000000"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store.db")
    yield opened
    opened.close()


def question(store: Store) -> None:
    """One customer message: conversation 1."""
    SourceSink(store, "inbox").accept(
        [
            MessageEvent(
                source="inbox",
                identity="q1@x",
                timestamp=NOW - timedelta(hours=2),
                direction=Direction.INBOUND,
                reason="customer message",
                author="tom@shop.example",
                thread=ThreadRef(message_id="q1@x"),
            )
        ],
        None,
        NOW,
    )


def dismiss(store: Store, at: datetime = NOW, actor: str = "alice") -> None:
    record_action(
        store, conversation_id=1, thread_key=KEY, kind="dismiss", at=at, actor=actor, via="cli"
    )


def test_a_dismissal_is_recorded_beside_the_running_writer(tmp_path: Path) -> None:
    """With the writer holding the lock, the store opens beside it, appends the action (and
    nothing else), and the writer takes it in: the conversation is marked changed, the row
    marked applied, once."""
    path = tmp_path / "store.db"
    daemon = Store.open(path)
    try:
        question(daemon)
        revision = daemon.conn.execute("SELECT revision FROM conversations").fetchone()[0]
        beside = Store.open_for_actions(path)
        try:
            assert beside.beside_writer
            dismiss(beside)
        finally:
            beside.close()

        taken = take_new_actions(daemon, NOW + timedelta(seconds=30))
        again = take_new_actions(daemon, NOW + timedelta(seconds=60))
        after = daemon.conn.execute("SELECT revision FROM conversations").fetchone()[0]
        [stored] = actions_by_conversation(daemon, [1])[1]
    finally:
        daemon.close()

    assert [(a.kind, a.actor, a.via) for a in taken] == [("dismiss", "alice", "cli")]
    assert again == []
    assert after == revision + 1
    assert stored.applied_at == NOW + timedelta(seconds=30)


def test_without_a_running_writer_the_command_is_the_writer(tmp_path: Path) -> None:
    """When no daemon runs, the store opens as its writer (taking the lock)."""
    path = tmp_path / "store.db"
    Store.open(path).close()

    opened = Store.open_for_actions(path)
    try:
        assert not opened.beside_writer
        assert not opened.readonly
    finally:
        opened.close()


def test_no_store_yet_is_an_error_that_says_how_to_make_one(tmp_path: Path) -> None:
    """Recording an action never creates a store."""
    with pytest.raises(StoreError, match=r"no store at .* yet; run `replyclock run` first"):
        Store.open_for_actions(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


def test_beside_an_older_daemon_the_action_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A store at an older schema (a daemon of an older release holds it) is not written to:
    the message says to restart the daemon with this version first."""
    path = tmp_path / "store.db"
    daemon = Store.open(path)
    try:
        daemon.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
        with pytest.raises(StoreError, match="restart the running daemon with this version"):
            Store.open_for_actions(path)
    finally:
        daemon.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        daemon.close()


def test_a_snooze_needs_an_end_and_a_dismissal_none(store: Store) -> None:
    """Actions are a dismiss, or a snooze with an ``until``."""
    with pytest.raises(ValueError, match="a dismiss, or a snooze with an end"):
        record_action(
            store, conversation_id=1, thread_key=KEY, kind="snooze", at=NOW, actor="a", via="cli"
        )


def test_held_threads_are_the_dismissed_and_the_snoozed(store: Store) -> None:
    """Alerts of a dismissed clock are held for good, of a snoozed one until it runs out; the
    latest snooze of a clock decides."""
    dismiss(store)
    snoozed = "2:first_response:1795000000"
    for hours in (4, 1):
        record_action(
            store,
            conversation_id=2,
            thread_key=snoozed,
            kind="snooze",
            at=NOW,
            until=NOW + timedelta(hours=hours),
            actor="U0LEAD0001",
            actor_name="Ann",
            via="slack",
        )
    keys = {KEY, snoozed, "3:first_response:1795000000"}

    assert held_threads(store, NOW, keys) == {KEY, snoozed}
    assert held_threads(store, NOW + timedelta(hours=2), keys) == {KEY}
    assert set(active_snoozes(store, NOW)) == {snoozed}


def test_migration_adds_the_actions_table_and_the_dismissed_total(tmp_path: Path) -> None:
    """A store at schema 6 is upgraded in place: the actions table appears, and every running
    total gets a dismissed count of 0."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:6]:
        for statement in _split_sql(script):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO clock_totals (source, policy, kind, breaches) VALUES ('i', 'p', 'k', 3)"
    )
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()

    with Store.open(path) as store:
        tables = {row[0] for row in store.conn.execute("SELECT name FROM sqlite_master")}
        totals = store.conn.execute("SELECT breaches, dismissed FROM clock_totals").fetchall()

    assert SCHEMA_VERSION >= 7
    assert "actions" in tables
    assert totals == [(3, 0)]
