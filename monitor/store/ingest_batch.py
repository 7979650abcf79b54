"""One batch's reads and writes for ``ingest``: everything it looks up is read in a few bulk
queries up front, every row it adds is written with ``executemany``.

Threading a batch asks, for each new message, which conversations its thread keys and its
subject name. Both answers come from what is stored plus what the batch itself added, so the
lookup reads the stored part once, for the whole batch, and then keeps it current in memory as
the batch assigns messages and merges conversations. Row ids are assigned here the way SQLite
assigns them (one above the largest id in the table), so the rows are the same as if each
had been inserted on its own, and the inserts wait until a statement needs to see them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.conversations import DEFAULT_SUBJECT_WINDOW, names_other_messages
from monitor.model import Direction, MessageEvent
from monitor.store.sqlite import to_epoch

CHUNK = 500
_SUBJECT_WINDOW_S = int(DEFAULT_SUBJECT_WINDOW.total_seconds())
_MESSAGE_COLUMNS = (
    "id, source, identity, conversation_id, timestamp, direction, reason, author, author_name, "
    "subject, recipients, message_id, in_reply_to, refs, gm_thread_id, subject_key, customer, "
    "folder, priority, tags, link, attributes, first_seen_at, location_kind, status, closing, "
    "fingerprint"
)
_INSERT_MESSAGE = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 27)})"
_INSERT_CONVERSATION = (
    "INSERT INTO conversations (id, source, subject, customer, customer_name, link, "
    "first_message_at, last_message_at, updated_at, revision) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True, kw_only=True)
class _NewConversation:
    """A conversation row not inserted yet (mutable: the batch may still settle its span)."""

    id: int
    source: str
    subject: str
    customer: str
    customer_name: str
    link: str | None
    first_message_at: int
    last_message_at: int
    updated_at: int
    revision: int = 1

    def values(self) -> tuple[object, ...]:
        return (
            self.id,
            self.source,
            self.subject,
            self.customer,
            self.customer_name,
            self.link,
            self.first_message_at,
            self.last_message_at,
            self.updated_at,
            self.revision,
        )


@dataclass(slots=True)
class _Dated:
    """A stored (or batch) message with a customer and a subject key, as the subject rule
    reads it: when, in which conversation, and whether it names no other message."""

    timestamp: int
    conversation: int
    root: bool


class BatchRows:
    """The rows one batch adds, held back and written together; ids assigned up front.

    ``flush`` must run before any statement that reads or changes these tables, so that it
    sees the batch's rows; ``conversation_deleted`` after a merge deleted one.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.last_message = _max_id(conn, "messages")
        self.last_conversation = _max_id(conn, "conversations")
        self.conversations: dict[int, _NewConversation] = {}  # in the order they were added
        self.messages: list[tuple[object, ...]] = []
        self.keys: list[tuple[str, str, int]] = []
        self.locations: list[tuple[str, str, int, int, int]] = []

    def add_conversation(self, source: str, event: MessageEvent, timestamp: int, now_s: int) -> int:
        """A new conversation named after ``event``; its id."""
        self.last_conversation += 1
        inbound = event.direction is Direction.INBOUND
        self.conversations[self.last_conversation] = _NewConversation(
            id=self.last_conversation,
            source=source,
            subject=event.subject,
            customer=event.thread.customer,
            customer_name=event.author_name if inbound else "",
            link=event.link,
            first_message_at=timestamp,
            last_message_at=timestamp,
            updated_at=now_s,
        )
        return self.last_conversation

    def settle_new(
        self, spans: dict[int, list[int]], namers: dict[int, MessageEvent], now_s: int
    ) -> None:
        """Write into the rows of conversations not inserted yet what the end of the batch
        would otherwise update in them (their span, their name, one more revision), and take
        them out of ``spans`` and ``namers``. All their messages are in this batch, so the
        earliest inbound one of the batch is their earliest of all."""
        for conversation, row in self.conversations.items():
            span = spans.pop(conversation, None)
            if span is None:
                continue
            row.first_message_at = min(row.first_message_at, span[0])
            row.last_message_at = max(row.last_message_at, span[1])
            row.updated_at = now_s
            row.revision += 1
            namer = namers.pop(conversation, None)
            if namer is not None:
                row.subject = namer.subject
                row.customer = namer.thread.customer
                row.customer_name = namer.author_name
                if row.link is None:
                    row.link = namer.link

    def add_message(self, source: str, event: MessageEvent, conversation: int, now_s: int) -> int:
        """A new message row in ``conversation``; its id."""
        self.last_message += 1
        ref = event.thread
        self.messages.append(
            (
                self.last_message,
                source,
                event.identity,
                conversation,
                to_epoch(event.timestamp),
                event.direction.value,
                event.reason,
                event.author,
                event.author_name,
                event.subject,
                ",".join(event.recipients),
                ref.message_id,
                " ".join(ref.in_reply_to),
                " ".join(ref.references),
                ref.gm_thread_id,
                ref.subject_key,
                ref.customer,
                event.folder,
                event.priority,
                ",".join(event.tags),
                event.link,
                json.dumps(dict(event.attributes), sort_keys=True) if event.attributes else "{}",
                now_s,
                "mail" if event.location is not None else "api",
                event.status,
                event.closing,
                event.fingerprint,
            )
        )
        return self.last_message

    def flush(self) -> None:
        """Write what is held back, in the order it was added."""
        if self.conversations:
            self.conn.executemany(
                _INSERT_CONVERSATION, [row.values() for row in self.conversations.values()]
            )
            self.conversations.clear()
        if self.messages:
            self.conn.executemany(_INSERT_MESSAGE, self.messages)
            self.messages.clear()
        if self.keys:
            self.conn.executemany(
                "INSERT OR IGNORE INTO thread_keys (source, key, conversation_id) VALUES (?, ?, ?)",
                self.keys,
            )
            self.keys.clear()
        if self.locations:
            self.conn.executemany(
                "INSERT OR REPLACE INTO locations (source, folder, uidvalidity, uid, "
                "message_id) VALUES (?, ?, ?, ?, ?)",
                self.locations,
            )
            self.locations.clear()

    def conversation_deleted(self, conversation: int) -> None:
        """A merge deleted ``conversation`` (after a ``flush``): when it had the largest id,
        SQLite gives the next new conversation a lower one, and so does this."""
        if conversation == self.last_conversation:
            self.last_conversation = _max_id(self.conn, "conversations")


class BatchThreadLookup:
    """``ThreadLookup`` for one batch: the thread keys and (customer, subject) pairs the batch
    names are read in one query each (per ``CHUNK``) up front, then kept current in memory as
    the batch assigns messages and merges conversations."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        source: str,
        events: Sequence[MessageEvent],
        keys: Iterable[str],
        rows: BatchRows,
    ) -> None:
        self.conn = conn
        self.source = source
        self.rows = rows
        self.known: dict[str, int] = {}
        self.keys_of: dict[int, list[str]] = {}  # conversation -> its keys in ``known``
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, conversation in conn.execute(
                f"SELECT key, conversation_id FROM thread_keys WHERE source = ? "
                f"AND key IN ({marks})",
                [source, *chunk],
            ):
                self._know(key, conversation)
        self.dated: dict[tuple[str, str], list[_Dated]] = {}
        self.dated_in: dict[int, list[_Dated]] = {}  # conversation -> its entries in ``dated``
        self.window = (0, -1)  # the instants ``dated`` holds every message of, in Unix seconds
        self._read_subjects(events)

    def _know(self, key: str, conversation: int) -> None:
        self.known[key] = conversation
        self.keys_of.setdefault(conversation, []).append(key)

    def _read_subjects(self, events: Sequence[MessageEvent]) -> None:
        """Read the stored messages of every (customer, subject key) pair the batch may ask
        about, within the subject window of the batch's first and last message."""
        asking = [
            event
            for event in events
            if event.thread.subject_key
            and event.thread.customer
            and not (event.thread.conversation or event.thread.gm_thread_id)
        ]
        if not asking:
            return
        stamps = [to_epoch(event.timestamp) for event in asking]
        self.window = (min(stamps) - _SUBJECT_WINDOW_S, max(stamps) + _SUBJECT_WINDOW_S)
        pairs = list(dict.fromkeys((e.thread.customer, e.thread.subject_key) for e in asking))
        for pair in pairs:
            self.dated[pair] = []
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]
            values = ",".join(["(?, ?)"] * len(chunk))
            # The pairs drive the join, so each is one search of the messages_subject index
            # ("(customer, subject_key) IN (VALUES ...)" would scan the source's messages).
            rows = self.conn.execute(
                "SELECT m.customer, m.subject_key, m.timestamp, m.conversation_id, "
                "instr(m.in_reply_to, '@') = 0 AND instr(m.refs, '@') = 0 "
                f"FROM (VALUES {values}) AS p CROSS JOIN messages AS m "
                "ON m.source = ? AND m.customer = p.column1 AND m.subject_key = p.column2 "
                "AND m.timestamp BETWEEN ? AND ?",
                [*(part for pair in chunk for part in pair), self.source, *self.window],
            )
            for customer, subject_key, timestamp, conversation, root in rows:
                self._date((customer, subject_key), timestamp, conversation, bool(root))

    def _date(self, pair: tuple[str, str], timestamp: int, conversation: int, root: bool) -> None:
        entry = _Dated(timestamp, conversation, root)
        self.dated[pair].append(entry)
        self.dated_in.setdefault(conversation, []).append(entry)

    def conversations_for_keys(self, keys: Sequence[str]) -> list[int]:
        return list(dict.fromkeys(self.known[key] for key in keys if key in self.known))

    def conversations_for_subject(
        self, customer: str, subject_key: str, start: datetime, end: datetime, *, roots_only: bool
    ) -> list[int]:
        first, last = to_epoch(start), to_epoch(end)
        entries = self.dated.get((customer, subject_key))
        if entries is not None and self.window[0] <= first and last <= self.window[1]:
            return list(
                dict.fromkeys(
                    entry.conversation
                    for entry in entries
                    if first <= entry.timestamp <= last and (entry.root or not roots_only)
                )
            )
        # Not read up front (another window than the default): ask the store, which then
        # needs the batch's rows written first.
        self.rows.flush()
        # A root names no other message: no Message-ID (an id has an "@") in its In-Reply-To
        # or References, as conversations.names_other_messages decides.
        roots = " AND instr(in_reply_to, '@') = 0 AND instr(refs, '@') = 0" if roots_only else ""
        rows = self.conn.execute(
            "SELECT DISTINCT conversation_id FROM messages WHERE source = ? AND customer = ? "
            f"AND subject_key = ? AND timestamp BETWEEN ? AND ?{roots}",
            (self.source, customer, subject_key, first, last),
        )
        return [int(cid) for (cid,) in rows]

    def assign(self, keys: Iterable[str], conversation: int) -> None:
        """Keys a new message registered to ``conversation`` (a key already known stays)."""
        for key in keys:
            if key not in self.known:
                self._know(key, conversation)

    def stored(self, event: MessageEvent, conversation: int) -> None:
        """A new message of the batch, now in ``conversation``, for later subject lookups."""
        pair = (event.thread.customer, event.thread.subject_key)
        if pair in self.dated:
            root = not names_other_messages(event.thread)
            self._date(pair, to_epoch(event.timestamp), conversation, root)

    def merged(self, into: int, other: int) -> None:
        """``other`` was folded into ``into``: its keys and messages are now ``into``'s."""
        for key in self.keys_of.pop(other, ()):
            self.known[key] = into
            self.keys_of.setdefault(into, []).append(key)
        moved = self.dated_in.pop(other, [])
        for entry in moved:
            entry.conversation = into
        if moved:
            self.dated_in.setdefault(into, []).extend(moved)


def _max_id(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()
    return int(row[0]) if row and row[0] is not None else 0
