"""Writing what a source read: idempotent message storage, threading, cursors, expunges.

A source hands over a batch of events together with the cursor that covers them; both are
written in one transaction, so a crash either keeps the batch and its cursor or neither, and
the next poll neither loses nor double-counts a message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from monitor.conversations import decide_thread, thread_keys
from monitor.model import Direction, FolderCursor, MessageEvent, ThreadRef
from monitor.store.ingest_batch import CHUNK as _CHUNK
from monitor.store.ingest_batch import BatchRows, BatchThreadLookup
from monitor.store.sqlite import Store, from_epoch, to_epoch


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one batch changed."""

    new: int = 0
    duplicates: int = 0
    conversations_created: int = 0
    conversations_merged: int = 0


class SourceSink:
    """Where one source writes: the store's side of the source/store boundary."""

    def __init__(self, store: Store, source: str) -> None:
        self.store = store
        self.source = source

    def cursor(self, folder: str) -> FolderCursor | None:
        """How far this source has read ``folder``."""
        return self.store.cursor(self.source, folder)

    def accept(
        self,
        events: Sequence[MessageEvent],
        cursor: FolderCursor | None,
        now: datetime,
        *,
        checkpoint: tuple[str, str] | None = None,
    ) -> IngestResult:
        """Store a batch and, in the same transaction, the cursor or checkpoint covering it."""
        with self.store.transaction() as conn:
            result = _ingest(conn, self.source, events, now)
            if cursor is not None:
                self.store.save_cursor(cursor, now)
            if checkpoint is not None:
                self._write_checkpoint(conn, checkpoint, now)
        return result

    def checkpoint(self, key: str) -> str | None:
        """An API source's saved position (an export cursor, an updated-since time)."""
        row = self.store.conn.execute(
            "SELECT value FROM checkpoints WHERE source = ? AND key = ?", (self.source, key)
        ).fetchone()
        return str(row[0]) if row else None

    def save_checkpoint(self, key: str, value: str, now: datetime) -> None:
        """Record a checkpoint on its own (a poll that found nothing new)."""
        with self.store.transaction() as conn:
            self._write_checkpoint(conn, (key, value), now)

    def _write_checkpoint(
        self, conn: sqlite3.Connection, checkpoint: tuple[str, str], now: datetime
    ) -> None:
        conn.execute(
            "INSERT INTO checkpoints (source, key, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source, key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (self.source, checkpoint[0], checkpoint[1], to_epoch(now)),
        )

    def save_cursor(self, cursor: FolderCursor, now: datetime) -> None:
        """Record a cursor on its own (a poll that found nothing new, a reconciliation)."""
        with self.store.transaction():
            self.store.save_cursor(cursor, now)

    def folder_uids(self, folder: str, uidvalidity: int) -> set[int]:
        """UIDs of ``folder`` whose messages the store holds."""
        rows = self.store.conn.execute(
            "SELECT uid FROM locations WHERE source = ? AND folder = ? AND uidvalidity = ?",
            (self.source, folder, uidvalidity),
        )
        return {uid for (uid,) in rows}

    def forget_uids(self, folder: str, uidvalidity: int, uids: Iterable[int], now: datetime) -> int:
        """Note that these UIDs left ``folder``; a message in no watched folder is 'removed'."""
        uid_list = list(uids)
        removed = 0
        with self.store.transaction() as conn:
            for start in range(0, len(uid_list), _CHUNK):
                chunk = uid_list[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                where = f"source = ? AND folder = ? AND uidvalidity = ? AND uid IN ({marks})"
                args = [self.source, folder, uidvalidity, *chunk]
                message_ids = [
                    mid
                    for (mid,) in conn.execute(
                        f"SELECT message_id FROM locations WHERE {where}", args
                    )
                ]
                conn.execute(f"DELETE FROM locations WHERE {where}", args)
                removed += _mark_removed_if_nowhere(conn, message_ids, now)
        return removed

    def reset_folder(self, folder: str, now: datetime) -> None:
        """UIDVALIDITY changed: forget the folder's cursor, so the folder is read again whole.

        The old UIDs stay until that read is complete: the re-read finds each message again
        under its identity and records its new UID, then ``retire_locations`` removes the old
        ones and marks removed what did not come back. A crash in between loses nothing: the
        read starts again and the old UIDs are still there to compare with.
        """
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM cursors WHERE source = ? AND folder = ?", (self.source, folder)
            )
        del now

    def retire_locations(
        self, folder: str, uidvalidity: int, since: datetime, now: datetime
    ) -> int:
        """After a whole read of ``folder`` under ``uidvalidity``: drop its UIDs of any other
        UIDVALIDITY, and mark removed the messages that are then in no watched folder.

        Only messages the read would have found are marked: those from ``since`` on (with a
        day's margin, as IMAP's SINCE counts whole days). An older message that is in no folder
        any more keeps its history as it is; nothing open is that old, since a re-read reaches
        back to the oldest conversation still waiting. Returns the number marked removed.
        """
        where = "source = ? AND folder = ? AND uidvalidity != ?"
        args = (self.source, folder, uidvalidity)
        with self.store.transaction() as conn:
            message_ids = [
                mid
                for (mid,) in conn.execute(f"SELECT message_id FROM locations WHERE {where}", args)
            ]
            if not message_ids:
                return 0
            conn.execute(f"DELETE FROM locations WHERE {where}", args)
            cutoff = to_epoch(since) + 86400
            recent: list[int] = []
            for start in range(0, len(message_ids), _CHUNK):
                chunk = message_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                recent.extend(
                    mid
                    for (mid,) in conn.execute(
                        f"SELECT id FROM messages WHERE id IN ({marks}) AND timestamp >= ?",
                        [*chunk, cutoff],
                    )
                )
            return _mark_removed_if_nowhere(conn, recent, now)

    def known_thread_hints(self, hints: Iterable[str]) -> set[str]:
        """The thread hints (Gmail thread ids, Graph conversation ids) among ``hints`` that a
        stored message of this source carries: a lookup on the thread keys' primary key."""
        keys = {thread_keys(ThreadRef(gm_thread_id=hint))[0]: hint for hint in hints if hint}
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                keys[key]
                for (key,) in self.store.conn.execute(
                    f"SELECT key FROM thread_keys WHERE source = ? AND key IN ({marks})",
                    [self.source, *chunk],
                )
            )
        return found

    def message_thread_hints(self, message_ids: Iterable[str]) -> dict[str, str | None]:
        """The stored messages of this source among these Message-IDs, each with its thread
        hint (None when it has none): a lookup on the messages' (source, identity) index."""
        wanted = list(dict.fromkeys(mid for mid in message_ids if mid))
        found: dict[str, str | None] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                self.store.conn.execute(
                    f"SELECT identity, gm_thread_id FROM messages WHERE source = ? "
                    f"AND identity IN ({marks})",
                    [self.source, *chunk],
                ).fetchall()
            )
        return found

    def oldest_open_message(self) -> datetime | None:
        """The first message of the oldest conversation still holding unremoved inbound mail."""
        row = self.store.conn.execute(
            "SELECT MIN(timestamp) FROM messages WHERE source = ? AND removed_at IS NULL "
            "AND direction = 'inbound'",
            (self.source,),
        ).fetchone()
        return from_epoch(row[0]) if row and row[0] is not None else None


def _mark_removed_if_nowhere(
    conn: sqlite3.Connection, message_ids: list[int], now: datetime
) -> int:
    """Mark removed the messages no watched folder holds; their conversations need a new look."""
    removed = 0
    for mid in message_ids:
        cur = conn.execute(
            "UPDATE messages SET removed_at = ? WHERE id = ? AND removed_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM locations WHERE message_id = ?)",
            (to_epoch(now), mid, mid),
        )
        if cur.rowcount:
            conn.execute(
                "UPDATE conversations SET updated_at = ?, revision = revision + 1 WHERE id = "
                "(SELECT conversation_id FROM messages WHERE id = ?)",
                (to_epoch(now), mid),
            )
        removed += cur.rowcount
    return removed


def _ingest(
    conn: sqlite3.Connection, source: str, events: Sequence[MessageEvent], now: datetime
) -> IngestResult:
    """Store a batch: duplicates, thread keys and subjects are read in bulk, rows written in
    bulk (see ``ingest_batch``)."""
    now_s = to_epoch(now)
    wanted = [e.identity for e in events] + [_twin(e) for e in events if e.fingerprint]
    existing = _existing_messages(conn, source, wanted)
    rows = BatchRows(conn)
    lookup = BatchThreadLookup(
        conn, source, events, (k for e in events for k in thread_keys(e.thread)), rows
    )
    spans: dict[int, list[int]] = {}  # conversation -> [first, last] timestamps of this batch
    namers: dict[int, MessageEvent] = {}  # conversation -> earliest inbound event of this batch
    new = duplicates = created = merged = 0
    for given in events:
        event, known = _same_message(conn, given, existing, rows)
        ts = to_epoch(event.timestamp)
        if known is not None:
            duplicates += 1
            if event.location is not None:
                rows.locations.append(_location_row(source, event, known[0]))
                if known[1] is not None:
                    rows.flush()
                    conn.execute("UPDATE messages SET removed_at = NULL WHERE id = ?", (known[0],))
                    # Back in a watched folder: its conversation needs a new look.
                    conn.execute(
                        "UPDATE conversations SET updated_at = ?, revision = revision + 1 "
                        "WHERE id = (SELECT conversation_id FROM messages WHERE id = ?)",
                        (now_s, known[0]),
                    )
            continue
        decision = decide_thread(event.thread, event.timestamp, lookup)
        if decision.conversation is None:
            conversation = rows.add_conversation(source, event, ts, now_s)
            created += 1
        else:
            conversation = decision.conversation
            for other in decision.merge:
                rows.flush()
                _merge_conversation(conn, into=conversation, other=other)
                rows.conversation_deleted(other)
                lookup.merged(conversation, other)
                _fold(spans, namers, into=conversation, other=other)
                merged += 1
        lookup.assign(decision.keys, conversation)
        rows.keys.extend((source, key, conversation) for key in decision.keys)
        rowid = rows.add_message(source, event, conversation, now_s)
        lookup.stored(event, conversation)
        existing[event.identity] = (rowid, None, event.fingerprint)
        if event.location is not None:
            rows.locations.append(_location_row(source, event, rowid))
        span = spans.setdefault(conversation, [ts, ts])
        span[0], span[1] = min(span[0], ts), max(span[1], ts)
        if event.direction is Direction.INBOUND:
            first = namers.get(conversation)
            if first is None or event.timestamp < first.timestamp:
                namers[conversation] = event
        new += 1
    rows.settle_new(spans, namers, now_s)
    rows.flush()
    _update_conversations(conn, spans, namers, now_s)
    return IngestResult(new, duplicates, created, merged)


def _existing_messages(
    conn: sqlite3.Connection, source: str, identities: list[str]
) -> dict[str, tuple[int, int | None, str]]:
    """identity -> (row id, removed_at, fingerprint) for the identities already stored."""
    found: dict[str, tuple[int, int | None, str]] = {}
    unique = list(dict.fromkeys(identities))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for identity, rowid, removed, fingerprint in conn.execute(
            f"SELECT identity, id, removed_at, fingerprint FROM messages WHERE source = ? "
            f"AND identity IN ({marks})",
            [source, *chunk],
        ):
            found[identity] = (rowid, removed, fingerprint)
    return found


def _twin(event: MessageEvent) -> str:
    """The identity of a mail whose Message-ID another, different mail took first."""
    return f"{event.identity}#{event.fingerprint}"


def _same_message(
    conn: sqlite3.Connection,
    event: MessageEvent,
    existing: dict[str, tuple[int, int | None, str]],
    rows: BatchRows,
) -> tuple[MessageEvent, tuple[int, int | None, str] | None]:
    """The event (under its twin identity if it only shares a Message-ID with a different
    stored mail: another From or Date) and what is stored of it already, if anything."""
    known = existing.get(event.identity)
    if known is None or not event.fingerprint:
        return event, known
    if not known[2]:  # stored before fingerprints were kept: this mail's is taken as its own
        rows.flush()
        conn.execute(
            "UPDATE messages SET fingerprint = ? WHERE id = ?", (event.fingerprint, known[0])
        )
        existing[event.identity] = (known[0], known[1], event.fingerprint)
        return event, known
    if known[2] == event.fingerprint:
        return event, known
    twin = replace(event, identity=_twin(event))
    return twin, existing.get(twin.identity)


def _fold(
    spans: dict[int, list[int]], namers: dict[int, MessageEvent], *, into: int, other: int
) -> None:
    """Carry this batch's pending facts about a merged conversation over to the survivor."""
    if other in spans:
        span = spans.pop(other)
        target = spans.setdefault(into, list(span))
        target[0], target[1] = min(target[0], span[0]), max(target[1], span[1])
    if other in namers:
        event = namers.pop(other)
        if into not in namers or event.timestamp < namers[into].timestamp:
            namers[into] = event


def _update_conversations(
    conn: sqlite3.Connection,
    spans: dict[int, list[int]],
    namers: dict[int, MessageEvent],
    now_s: int,
) -> None:
    conn.executemany(
        "UPDATE conversations SET first_message_at = MIN(first_message_at, ?), "
        "last_message_at = MAX(last_message_at, ?), updated_at = ?, revision = revision + 1 "
        "WHERE id = ?",
        [(first, last, now_s, conversation) for conversation, (first, last) in spans.items()],
    )
    # A conversation is named after its earliest customer message, whatever arrived first.
    conn.executemany(
        "UPDATE conversations SET subject = ?, customer = ?, customer_name = ?, "
        "link = COALESCE(link, ?) WHERE id = ? AND NOT EXISTS (SELECT 1 FROM messages "
        "WHERE conversation_id = ? AND direction = 'inbound' AND timestamp < ?)",
        [
            (
                event.subject,
                event.thread.customer,
                event.author_name,
                event.link,
                conversation,
                conversation,
                to_epoch(event.timestamp),
            )
            for conversation, event in namers.items()
        ],
    )


def _location_row(source: str, event: MessageEvent, rowid: int) -> tuple[str, str, int, int, int]:
    loc = event.location
    assert loc is not None
    return (source, loc.folder, loc.uidvalidity, loc.uid, rowid)


def _merge_conversation(conn: sqlite3.Connection, *, into: int, other: int) -> None:
    """Fold ``other`` into ``into``: two threads turned out to be one."""
    conn.execute("UPDATE messages SET conversation_id = ? WHERE conversation_id = ?", (into, other))
    conn.execute(
        "UPDATE thread_keys SET conversation_id = ? WHERE conversation_id = ?", (into, other)
    )
    conn.execute("UPDATE outbox SET conversation_id = ? WHERE conversation_id = ?", (into, other))
    row = conn.execute(
        "SELECT first_message_at, last_message_at, policy, policy_reason FROM conversations "
        "WHERE id = ?",
        (other,),
    ).fetchone()
    if row is not None:
        conn.execute(
            "UPDATE conversations SET first_message_at = MIN(first_message_at, ?), "
            "last_message_at = MAX(last_message_at, ?), policy = COALESCE(policy, ?), "
            "policy_reason = COALESCE(policy_reason, ?), revision = revision + 1 WHERE id = ?",
            (row[0], row[1], row[2], row[3], into),
        )
        conn.execute("DELETE FROM conversations WHERE id = ?", (other,))
        # Its clock history is taken out of the totals by the next evaluation.
        conn.execute(
            "INSERT OR IGNORE INTO merged_conversations (conversation_id) VALUES (?)", (other,)
        )
    first = conn.execute(
        "SELECT subject, customer, author_name FROM messages WHERE conversation_id = ? "
        "AND direction = 'inbound' ORDER BY timestamp, id LIMIT 1",
        (into,),
    ).fetchone()
    if first is not None:
        conn.execute(
            "UPDATE conversations SET subject = ?, customer = ?, customer_name = ? WHERE id = ?",
            (*first, into),
        )
