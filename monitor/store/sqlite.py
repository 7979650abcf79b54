"""The SQLite store: one writer process, any number of readers, nothing kept only in memory.

The writer holds an exclusive ``flock`` on ``<db>.lock`` for as long as it runs, so a second
daemon on the same database fails at start with a clear error instead of interleaving writes.
Readers (``status``, ``explain``) open the file read-only and rely on WAL mode to read alongside
the writer without blocking it. `dismiss` and `snooze` record a person's decision next to a
running daemon: without the lock, they only append one row to the ``actions`` table (SQLite
serializes that write with the daemon's), which the daemon takes in at its next evaluation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from monitor.errors import StoreError, StoreLockedError
from monitor.model import ClockTotals, Direction, FolderCursor, MetricsSnapshot, SourceHealth
from monitor.store.faults import FileIdentity, GuardedConnection, connect, translate
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION
from monitor.store.totals import RowMemo, read_totals, totals_from_row

_BUSY_TIMEOUT_S = 10.0


def to_epoch(instant: datetime) -> int:
    """Unix seconds of an aware datetime."""
    return int(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    """Aware UTC datetime of Unix seconds."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredMessage:
    """A message as the store keeps it, with when it disappeared from every watched folder."""

    id: int
    conversation_id: int
    source: str
    identity: str
    timestamp: datetime
    direction: Direction
    reason: str
    author: str
    author_name: str
    subject: str
    recipients: tuple[str, ...]
    folder: str
    priority: str | None
    tags: tuple[str, ...]
    link: str | None
    removed_at: datetime | None
    status: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    closing: str | None = None  # only a closing phrase: these words ("Danke!")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredConversation:
    """A conversation's stored facts: who started it, when, and the policy matched once."""

    id: int
    source: str
    subject: str
    customer: str
    customer_name: str
    link: str | None
    first_message_at: datetime
    last_message_at: datetime
    policy: str | None
    policy_reason: str | None
    revision: int = 1  # bumped by every write that changes the conversation's messages


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredAction:
    """A person's decision about one clock: dismissed ("no reply needed") or snoozed."""

    id: int
    conversation_id: int
    thread_key: str  # the clock acted on (``conversation:kind:started_at``)
    kind: str  # dismiss | snooze
    at: datetime
    until: datetime | None  # snooze: alerts held until then
    actor: str  # the OS user (command line) or the Slack user id
    actor_name: str
    via: str  # cli | slack
    reason: str
    applied_at: datetime | None  # when the writer took it in; None until then

    @property
    def who(self) -> str:
        """The actor as people read it: ``alice (command line)``, ``Ann Lead (Slack U0LEAD)``."""
        if self.via == "slack":
            return f"{self.actor_name} (Slack {self.actor})" if self.actor_name else self.actor
        return f"{self.actor} (command line)"


class _WriterLock:
    """An exclusive advisory lock next to the database, released when the process dies.

    The lock file is named after the store's real path (symlinks resolved), so two daemons
    reaching one store by different paths still find each other.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        try:
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(
                f"cannot create the lock file {self.path} next to the store ({exc.strerror}); "
                "set store.path to a location this user can write"
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown pid"
            handle.close()
            raise StoreLockedError(str(self.path.with_suffix("")), holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class Store:
    """Messages, conversations, cursors and the alert outbox in one SQLite file."""

    def __init__(
        self,
        conn: GuardedConnection,
        path: Path,
        lock: _WriterLock | None,
        identity: FileIdentity | None = None,
    ) -> None:
        self.conn = conn
        self.path = path
        self._lock = lock
        self._identity = identity
        self.beside_writer = False  # opened next to a running daemon, to append actions only

    @classmethod
    def open_for_actions(cls, path: Path) -> Store:
        """The store to record a dismissal or snooze in: as its writer when no daemon runs,
        else next to the running daemon (``beside_writer``), to append to ``actions`` only."""
        path = Path(os.path.realpath(path))
        if not path.exists():
            raise StoreError(
                f"no store at {path} yet; run `replyclock run` first, or check store.path"
            )
        try:
            return cls.open(path)
        except StoreLockedError:
            pass
        conn = connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the store {path} has schema version {version} but this replyclock expects "
                f"{SCHEMA_VERSION}; restart the running daemon with this version of replyclock "
                "first (it migrates the store), then try again"
            )
        store = cls(conn, path, None)
        store.beside_writer = True
        return store

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        """Open (creating and migrating as needed) the store; readers never take the lock."""
        path = Path(os.path.realpath(path))
        if readonly:
            return cls._open_reader(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {path.parent} for the store: {exc.strerror}; "
                "set store.path to a writable location"
            ) from exc
        lock = _WriterLock(path)
        lock.acquire()
        try:
            if not path.exists():
                _create(path)
            elif path.stat().st_size == 0:
                raise StoreError(
                    f"the store {path} exists but is empty (0 bytes): it was truncated or "
                    "replaced, and taking it as new would read every mailbox again. Restore it "
                    "from a backup, or delete it to start a new store"
                )
            # Poll jobs run on scheduler threads and take turns on this connection (see daemon).
            conn = connect(
                path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            store = cls(conn, path, lock, FileIdentity(path))
            store._migrate()
        except OSError as exc:
            lock.release()
            raise StoreError(f"cannot open the store {path}: {exc.strerror or exc}") from exc
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def _open_reader(cls, path: Path) -> Store:
        if not path.exists():
            raise StoreError(
                f"no store at {path} yet; run `replyclock run` first, or check store.path"
            )
        conn = connect(
            path,
            uri=f"file:{path}?mode=ro",
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the store {path} has schema version {version} but this replyclock expects "
                f"{SCHEMA_VERSION}; start `replyclock run` once to migrate it"
            )
        return cls(conn, path, None)

    def close(self) -> None:
        """Flush and close; release the writer lock."""
        with contextlib.suppress(sqlite3.Error, StoreError):
            if self._lock is not None:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def readonly(self) -> bool:
        """Whether this is a reader (no lock, no writes)."""
        return self._lock is None

    @property
    def schema_version(self) -> int:
        """How many migrations this file has applied."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def check_file(self) -> None:
        """Raise ``StoreGoneError`` if the writer's file was deleted, replaced or emptied."""
        if self._identity is not None:
            self._identity.check()

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {current}, newer than this replyclock "
                f"({SCHEMA_VERSION}); upgrade replyclock or use another store.path"
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[version]):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[GuardedConnection]:
        """A write transaction taken up front (BEGIN IMMEDIATE), committed or rolled back whole.

        The writer first checks that its file is still the one it opened. Any SQLite error
        inside reaches the caller as a ``StoreError``.
        """
        self.check_file()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self._rollback()
            raise translate(exc, self.path) from exc
        except BaseException:
            self._rollback()
            raise
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        # A failed rollback (the disk went away) leaves nothing to undo: SQLite rolls back a
        # hot journal when the file is next opened.
        with contextlib.suppress(sqlite3.Error, StoreError):
            self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Turn a SQLite error escaping a read (a row fetched while iterating) into a
        ``StoreError``."""
        try:
            yield
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    # --- cursors ---------------------------------------------------------------------------

    def cursor(self, source: str, folder: str) -> FolderCursor | None:
        """How far ``source`` has read ``folder``, or None before its first sync."""
        row = self.conn.execute(
            "SELECT uidvalidity, last_uid, highest_modseq, last_reconciled FROM cursors "
            "WHERE source = ? AND folder = ?",
            (source, folder),
        ).fetchone()
        if row is None:
            return None
        return FolderCursor(
            source=source,
            folder=folder,
            uidvalidity=row[0],
            last_uid=row[1],
            highest_modseq=row[2],
            last_reconciled=from_epoch(row[3]) if row[3] is not None else None,
        )

    def save_cursor(self, cursor: FolderCursor, now: datetime) -> None:
        """Record a cursor; call inside the transaction that stored what it covers."""
        self.conn.execute(
            "INSERT INTO cursors (source, folder, uidvalidity, last_uid, highest_modseq, "
            "last_reconciled, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (source, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = excluded.last_uid, highest_modseq = excluded.highest_modseq, "
            "last_reconciled = excluded.last_reconciled, updated_at = excluded.updated_at",
            (
                cursor.source,
                cursor.folder,
                cursor.uidvalidity,
                cursor.last_uid,
                cursor.highest_modseq,
                to_epoch(cursor.last_reconciled) if cursor.last_reconciled else None,
                to_epoch(now),
            ),
        )

    # --- reads -----------------------------------------------------------------------------

    def conversation(self, conversation_id: int) -> StoredConversation | None:
        """One conversation by id."""
        row = self.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return _conversation(row) if row else None

    def conversation_for_message(self, source: str | None, message_id: str) -> int | None:
        """The conversation holding the message with this Message-ID (or identity)."""
        ident = message_id.strip().strip("<>")
        sql = "SELECT conversation_id FROM messages WHERE (message_id = ? OR identity = ?)"
        args: list[Any] = [ident, ident]
        if source:
            sql += " AND source = ?"
            args.append(source)
        row = self.conn.execute(sql + " LIMIT 1", args).fetchone()
        return int(row[0]) if row else None

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """A conversation's messages, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? "
            "ORDER BY timestamp, id",
            (conversation_id,),
        ).fetchall()
        return [_message(row) for row in rows]

    def conversations(
        self, source: str | None = None, active_since: datetime | None = None
    ) -> Iterator[StoredConversation]:
        """Conversations, optionally of one source or with a message since an instant."""
        sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE 1 = 1"
        args: list[Any] = []
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        if active_since is not None:
            sql += " AND last_message_at >= ?"
            args.append(to_epoch(active_since))
        for row in self.conn.execute(sql + " ORDER BY id", args):
            yield _conversation(row)

    def messages_by_conversation(
        self, conversation_ids: list[int]
    ) -> dict[int, list[StoredMessage]]:
        """Messages of many conversations at once, each list oldest first."""
        result: dict[int, list[StoredMessage]] = {cid: [] for cid in conversation_ids}
        for start in range(0, len(conversation_ids), 500):
            chunk = conversation_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id IN ({marks}) "
                "ORDER BY timestamp, id",
                chunk,
            )
            for row in rows:
                message = _message(row)
                result[message.conversation_id].append(message)
        return result

    def recent_traffic(
        self, since: datetime, sources: Collection[str] | None = None
    ) -> dict[str, tuple[int, int]]:
        """Per source (of ``sources``, or all): (customer messages, team messages) dated
        ``since`` or later."""
        counts: dict[str, list[int]] = {}
        names = list(sources) if sources is not None else []
        which = f"AND source IN ({','.join('?' * len(names))}) " if sources is not None else ""
        for source, direction, n in self.conn.execute(
            "SELECT source, direction, COUNT(*) FROM messages WHERE timestamp >= ? "
            f"{which}AND direction IN ('inbound', 'outbound') GROUP BY source, direction",
            (to_epoch(since), *names),
        ):
            counts.setdefault(source, [0, 0])[0 if direction == "inbound" else 1] = n
        return {source: (pair[0], pair[1]) for source, pair in counts.items()}

    def source_counts(self) -> dict[str, tuple[int, int]]:
        """Per source: (messages stored, conversations)."""
        counts: dict[str, list[int]] = {}
        for source, n in self.conn.execute("SELECT source, COUNT(*) FROM messages GROUP BY source"):
            counts.setdefault(source, [0, 0])[0] = n
        for source, n in self.conn.execute(
            "SELECT source, COUNT(*) FROM conversations GROUP BY source"
        ):
            counts.setdefault(source, [0, 0])[1] = n
        return {source: (pair[0], pair[1]) for source, pair in counts.items()}


_CONVERSATION_COLUMNS = (
    "id, source, subject, customer, customer_name, link, first_message_at, last_message_at, "
    "policy, policy_reason, revision"
)
_MESSAGE_COLUMNS = (
    "id, conversation_id, source, identity, timestamp, direction, reason, author, author_name, "
    "subject, recipients, folder, priority, tags, link, removed_at, status, attributes, closing"
)


def _conversation(row: tuple[Any, ...]) -> StoredConversation:
    return StoredConversation(
        id=row[0],
        source=row[1],
        subject=row[2],
        customer=row[3],
        customer_name=row[4],
        link=row[5],
        first_message_at=from_epoch(row[6]),
        last_message_at=from_epoch(row[7]),
        policy=row[8],
        policy_reason=row[9],
        revision=row[10],
    )


def _message(row: tuple[Any, ...]) -> StoredMessage:
    return StoredMessage(
        id=row[0],
        conversation_id=row[1],
        source=row[2],
        identity=row[3],
        timestamp=from_epoch(row[4]),
        direction=Direction(row[5]),
        reason=row[6],
        author=row[7],
        author_name=row[8],
        subject=row[9],
        recipients=tuple(r for r in row[10].split(",") if r),
        folder=row[11],
        priority=row[12],
        tags=tuple(t for t in row[13].split(",") if t),
        link=row[14],
        removed_at=from_epoch(row[15]) if row[15] is not None else None,
        status=row[16],
        attributes=json.loads(row[17]) if row[17] and row[17] != "{}" else {},
        closing=row[18],
    )


def _create(path: Path) -> None:
    """Make a new store beside ``path`` and move it into place whole, so that a store file,
    once there, is never empty (an empty one means it was truncated: see ``Store.open``)."""
    draft = path.with_name(f".{path.name}.new")
    for stale in (draft, Path(f"{draft}-wal"), Path(f"{draft}-shm")):
        stale.unlink(missing_ok=True)
    conn = connect(draft, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        for version, script in enumerate(MIGRATIONS):
            conn.execute("BEGIN IMMEDIATE")
            for statement in _split_sql(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
    finally:
        conn.close()
    os.replace(draft, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements, using SQLite's own idea of a complete one
    (so a semicolon inside a comment or a string does not end a statement)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def candidate_waiting_conversations(store: Store, source: str | None = None) -> list[int]:
    """Conversations that may be awaiting a reply: a customer message, still in a folder,
    no older than the team's last reply. A superset; the clock rules decide exactly."""
    sql = (
        "SELECT DISTINCT m.conversation_id FROM messages m WHERE m.direction = 'inbound' "
        "AND m.removed_at IS NULL AND m.timestamp >= COALESCE((SELECT MAX(o.timestamp) "
        "FROM messages o WHERE o.conversation_id = m.conversation_id "
        "AND o.direction = 'outbound'), 0)"
    )
    args: list[Any] = []
    if source is not None:
        sql += " AND m.source = ?"
        args.append(source)
    return [cid for (cid,) in store.conn.execute(sql, args)]


def stored_running_clocks(
    store: Store, source: str | None = None
) -> list[tuple[StoredConversation, str, int, int, bool]]:
    """Conversations evaluated at their current revision whose stored clock runs (ok, warning
    or breached): each with the clock's kind, its start (epoch seconds), the customer messages
    since the start, and whether any of its messages carries a ticket status."""
    sql = (
        f"SELECT {', '.join('c.' + name for name in _CONVERSATION_COLUMNS.split(', '))}, "
        "c.clock_kind, c.clock_started_at, "
        "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id "
        "AND m.timestamp >= c.clock_started_at AND m.direction = 'inbound'), "
        "EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id "
        "AND m.status IS NOT NULL) "
        "FROM conversations c "
        "WHERE c.state IN ('ok', 'warning', 'breached') AND c.evaluated_revision >= c.revision "
        "AND c.pruned_at IS NULL AND c.clock_kind IS NOT NULL "
        "AND c.clock_started_at IS NOT NULL"
    )
    args: list[Any] = []
    if source is not None:
        sql += " AND c.source = ?"
        args.append(source)
    # One correlated count per conversation, not a join grouped in a temporary tree: about a
    # third less time on a store of thousands waiting. (See ``running_clock_rows`` for why
    # these need no check that they have messages.)
    return [
        (_made_conversation(row), row[11], row[12], row[13], bool(row[14]))
        for row in store.conn.execute(sql, args)
    ]


class _ConversationParts:
    """A StoredConversation being made: the same slots, plainly assignable."""

    __slots__ = (
        "customer",
        "customer_name",
        "first_message_at",
        "id",
        "last_message_at",
        "link",
        "policy",
        "policy_reason",
        "revision",
        "source",
        "subject",
    )

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.id = row[0]
        self.source = row[1]
        self.subject = row[2]
        self.customer = row[3]
        self.customer_name = row[4]
        self.link = row[5]
        self.first_message_at = datetime.fromtimestamp(row[6], UTC)
        self.last_message_at = datetime.fromtimestamp(row[7], UTC)
        self.policy = row[8]
        self.policy_reason = row[9]
        self.revision = row[10]


def _made_conversation(row: tuple[Any, ...]) -> StoredConversation:
    """``_conversation(row)`` for listings of thousands: the same immutable, equal value, made
    on a plain twin of its slots and then given its class, without the frozen __init__."""
    conversation: StoredConversation = _ConversationParts(row)  # type: ignore[assignment]
    conversation.__class__ = StoredConversation
    return conversation


def running_clock_rows(
    store: Store, source: str | None = None
) -> list[tuple[int, str, str | None, str, str, str, int, int]]:
    """``stored_running_clocks`` as plain rows, for listings of thousands: each conversation's
    id, source, policy, customer and subject, its clock's kind and start (epoch seconds), and
    1 when any of its messages carries a ticket status (else 0)."""
    sql = (
        "SELECT c.id, c.source, c.policy, c.customer, c.subject, c.clock_kind, "
        "c.clock_started_at, EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id "
        "AND m.status IS NOT NULL) "
        "FROM conversations c "
        "WHERE c.state IN ('ok', 'warning', 'breached') AND c.evaluated_revision >= c.revision "
        "AND c.pruned_at IS NULL AND c.clock_kind IS NOT NULL "
        "AND c.clock_started_at IS NOT NULL"
    )
    # No check that these have messages: a clock evaluated at the conversation's current
    # revision ran on its messages, and every change to them (a merge moving them away
    # included) bumps the revision.
    args: list[Any] = []
    if source is not None:
        sql += " AND c.source = ?"
        args.append(source)
    return store.conn.execute(sql, args).fetchall()


def unevaluated_waiting_candidates(store: Store, source: str | None = None) -> list[int]:
    """``candidate_waiting_conversations`` among the conversations not evaluated at their
    current revision (changed since, or never evaluated), ascending."""
    changed = [
        cid
        for (cid,) in store.conn.execute(
            "SELECT id FROM conversations WHERE "
            "(evaluated_revision IS NULL OR evaluated_revision < revision) AND pruned_at IS NULL"
        )
    ]
    found: list[int] = []
    for start in range(0, len(changed), 500):
        chunk = changed[start : start + 500]
        sql = (
            "SELECT DISTINCT m.conversation_id FROM messages m "
            f"WHERE m.conversation_id IN ({','.join('?' * len(chunk))}) "
            "AND m.direction = 'inbound' AND m.removed_at IS NULL "
            "AND m.timestamp >= COALESCE((SELECT MAX(o.timestamp) FROM messages o "
            "WHERE o.conversation_id = m.conversation_id AND o.direction = 'outbound'), 0)"
        )
        args: list[Any] = list(chunk)
        if source is not None:
            sql += " AND m.source = ?"
            args.append(source)
        found.extend(cid for (cid,) in store.conn.execute(sql, args))
    return sorted(found)


def conversations_with_actions(store: Store) -> set[int]:
    """The conversations people have recorded a decision about (dismissed or snoozed)."""
    return {cid for (cid,) in store.conn.execute("SELECT DISTINCT conversation_id FROM actions")}


def conversations_by_id(store: Store, conversation_ids: list[int]) -> dict[int, StoredConversation]:
    """Many conversations at once, by id (those that exist)."""
    result: dict[int, StoredConversation] = {}
    for start in range(0, len(conversation_ids), 500):
        chunk = conversation_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id IN ({marks})", chunk
        ):
            result[row[0]] = _made_conversation(row)
    return result


def prune_closed(store: Store, retention_s: int, now: datetime) -> int:
    """Forget what conversations quiet for longer than ``retention_s`` (and not awaiting a
    reply) said: subjects, addresses, names and threading keys are erased. What remains of each
    message is its identity, time, direction and folder location, so it is never read again as
    new mail, and the clock history stays, so totals never go backwards.
    Returns the number of messages erased."""
    cutoff = to_epoch(now) - retention_s
    waiting = set(candidate_waiting_conversations(store))
    stale = [
        cid
        for (cid,) in store.conn.execute(
            "SELECT id FROM conversations WHERE last_message_at < ? AND pruned_at IS NULL",
            (cutoff,),
        )
        if cid not in waiting
    ]
    erased = 0
    with store.transaction() as conn:
        for start in range(0, len(stale), 500):
            chunk = stale[start : start + 500]
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM thread_keys WHERE conversation_id IN ({marks})", chunk)
            erased += conn.execute(
                "UPDATE messages SET author = '', author_name = '', subject = '', "
                "recipients = '', in_reply_to = '', refs = '', subject_key = '', customer = '', "
                f"attributes = '{{}}', link = NULL WHERE conversation_id IN ({marks})",
                chunk,
            ).rowcount
            conn.execute(
                "UPDATE conversations SET subject = '', customer = '', customer_name = '', "
                f"link = NULL, pruned_at = ? WHERE id IN ({marks})",
                [to_epoch(now), *chunk],
            )
    return erased


def record_poll(
    store: Store, source: str, *, ok: bool, duration: float, error: str | None, now: datetime
) -> None:
    """Remember how a source's poll went, for metrics and readiness across restarts."""
    record_polls(store, [PollRecord(source, ok, now, duration, error)])


@dataclass(frozen=True, slots=True)
class PollRecord:
    """How one poll of a source went, as ``record_polls`` writes it."""

    source: str
    ok: bool
    at: datetime
    duration: float
    error: str | None
    last_success: datetime | None = None  # an earlier success not yet written, if any


_POLL_UPSERT = (
    "INSERT INTO source_status (source, up, last_attempt, last_success, last_duration, "
    "last_error) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
    "up = excluded.up, last_attempt = excluded.last_attempt, "
    "last_success = COALESCE(excluded.last_success, source_status.last_success), "
    "last_duration = excluded.last_duration, last_error = excluded.last_error"
)


def record_polls(store: Store, records: Sequence[PollRecord]) -> None:
    """Remember how many sources' polls went, in one transaction."""
    if not records:
        return
    with store.transaction() as conn:
        conn.executemany(
            _POLL_UPSERT,
            [
                (
                    r.source,
                    int(r.ok),
                    to_epoch(r.at),
                    _last_success(r),
                    r.duration,
                    r.error,
                )
                for r in records
            ],
        )


def _last_success(record: PollRecord) -> int | None:
    if record.ok:
        return to_epoch(record.at)
    return to_epoch(record.last_success) if record.last_success is not None else None


def synced_sources(store: Store) -> set[str]:
    """Sources read successfully at least once: their first sync is complete."""
    return {
        name
        for (name,) in store.conn.execute(
            "SELECT source FROM source_status WHERE last_success IS NOT NULL"
        )
    }


_HEALTH_QUERY = (
    "SELECT source, up, last_attempt, last_success, last_duration, last_error "
    "FROM source_status ORDER BY source"
)


def _health(row: tuple[Any, ...]) -> SourceHealth:
    return SourceHealth(
        source=row[0],
        up=bool(row[1]),
        last_attempt=from_epoch(row[2]),
        last_success=from_epoch(row[3]) if row[3] is not None else None,
        last_duration=row[4],
        last_error=row[5],
    )


def source_health(store: Store, memo: RowMemo[SourceHealth] | None = None) -> list[SourceHealth]:
    """How each source's last poll went; with ``memo``, unchanged rows are the objects of the
    last read."""
    rows = store.conn.execute(_HEALTH_QUERY).fetchall()
    return memo.read(rows) if memo is not None else [_health(row) for row in rows]


# --- actions: people's decisions about clocks ----------------------------------------------

_ACTION_COLUMNS = (
    "id, conversation_id, thread_key, kind, at, until, actor, actor_name, via, reason, applied_at"
)


def _action(row: tuple[Any, ...]) -> StoredAction:
    return StoredAction(
        id=row[0],
        conversation_id=row[1],
        thread_key=row[2],
        kind=row[3],
        at=from_epoch(row[4]),
        until=from_epoch(row[5]) if row[5] is not None else None,
        actor=row[6],
        actor_name=row[7],
        via=row[8],
        reason=row[9],
        applied_at=from_epoch(row[10]) if row[10] is not None else None,
    )


def record_action(
    store: Store,
    *,
    conversation_id: int,
    thread_key: str,
    kind: str,
    at: datetime,
    actor: str,
    via: str,
    actor_name: str = "",
    reason: str = "",
    until: datetime | None = None,
) -> StoredAction:
    """Append one decision to the actions table (the only write allowed ``beside_writer``)."""
    if kind not in ("dismiss", "snooze") or (kind == "snooze") != (until is not None):
        raise ValueError(f"an action is a dismiss, or a snooze with an end; got: {kind!r}")
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO actions (conversation_id, thread_key, kind, at, until, actor, "
            "actor_name, via, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                thread_key,
                kind,
                to_epoch(at),
                to_epoch(until) if until is not None else None,
                actor,
                actor_name,
                via,
                reason,
            ),
        )
        row = conn.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions WHERE id = ?", (cursor.lastrowid,)
        ).fetchone()
    return _action(row)


def actions_by_conversation(
    store: Store, conversation_ids: list[int]
) -> dict[int, list[StoredAction]]:
    """The actions of many conversations, each list oldest first."""
    result: dict[int, list[StoredAction]] = {cid: [] for cid in conversation_ids}
    for start in range(0, len(conversation_ids), 500):
        chunk = conversation_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions WHERE conversation_id IN ({marks}) "
            "ORDER BY at, id",
            chunk,
        ).fetchall():
            result[row[1]].append(_action(row))
    return result


def dismissal_instants(actions: list[StoredAction]) -> list[datetime]:
    """When people dismissed a conversation's clocks: what the SLA rules take as data."""
    return [action.at for action in actions if action.kind == "dismiss"]


def latest_snooze(actions: list[StoredAction], thread_key: str) -> StoredAction | None:
    """The latest snooze of one clock (a later snooze replaces an earlier one), if any."""
    snoozes = [a for a in actions if a.kind == "snooze" and a.thread_key == thread_key]
    return max(snoozes, key=lambda a: a.id) if snoozes else None


def active_snoozes(store: Store, now: datetime) -> dict[str, StoredAction]:
    """Clocks whose alerts are held at ``now``: their latest snooze has not run out."""
    rows = store.conn.execute(
        f"SELECT {_ACTION_COLUMNS} FROM actions a WHERE kind = 'snooze' AND until > ? "
        "AND NOT EXISTS (SELECT 1 FROM actions b WHERE b.thread_key = a.thread_key "
        "AND b.kind = 'snooze' AND b.id > a.id)",
        (to_epoch(now),),
    ).fetchall()
    return {row[2]: _action(row) for row in rows}


def held_threads(store: Store, now: datetime, thread_keys: Collection[str]) -> set[str]:
    """Of ``thread_keys``, the clocks no alert may go out for at ``now``: dismissed ones (even
    before the writer took the dismissal in) and snoozed ones."""
    held = set(active_snoozes(store, now)) & set(thread_keys)
    keys = sorted(set(thread_keys) - held)
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        held.update(
            key
            for (key,) in store.conn.execute(
                f"SELECT DISTINCT thread_key FROM actions WHERE kind = 'dismiss' "
                f"AND thread_key IN ({marks})",
                chunk,
            ).fetchall()
        )
    return held


def take_new_actions(store: Store, now: datetime) -> list[StoredAction]:
    """The writer takes in the actions recorded since it last looked (from the command line
    or Slack): a dismissal marks its conversation changed, so the next evaluation measures it
    again with the dismissal; each row is marked applied. Returns them."""
    new = [
        _action(row)
        for row in store.conn.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions WHERE applied_at IS NULL ORDER BY id"
        ).fetchall()
    ]
    if not new:
        return []
    with store.transaction() as conn:
        for action in new:
            if action.kind == "dismiss":
                conn.execute(
                    "UPDATE conversations SET revision = revision + 1 WHERE id = ?",
                    (action.conversation_id,),
                )
            conn.execute(
                "UPDATE actions SET applied_at = ? WHERE id = ?", (to_epoch(now), action.id)
            )
    return new


@dataclass(slots=True)
class SnapshotMemo:
    """What one reader keeps between scrapes: the values built from rows that did not change."""

    totals: RowMemo[ClockTotals] = field(default_factory=lambda: RowMemo(totals_from_row))
    sources: RowMemo[SourceHealth] = field(default_factory=lambda: RowMemo(_health))


def metrics_snapshot(store: Store, memo: SnapshotMemo | None = None) -> MetricsSnapshot:
    """Everything a scrape reports: a few indexed reads in one read transaction (one consistent
    view), however long the history. ``memo`` (one per reader) spares rebuilding what did not
    change since its last snapshot."""
    conn = store.conn
    begun = not conn.in_transaction
    if begun:
        conn.execute("BEGIN")
    try:
        # One pass over the waiting conversations gives both the counts and the oldest clocks.
        waiting = conn.execute(
            "SELECT source, policy, state, COUNT(*), MIN(clock_started_at) FROM conversations "
            "WHERE state IN ('ok', 'warning', 'breached') GROUP BY source, policy, state"
        ).fetchall()
        # Messages delivered: each sent alert, and each summary that stood for a burst of them.
        sent = conn.execute(
            "SELECT channel, kind, COUNT(*) FROM outbox WHERE state = 'sent' "
            "GROUP BY channel, kind UNION ALL SELECT channel, 'summary', "
            "COUNT(DISTINCT remote_ref) FROM outbox WHERE state = 'summarized' GROUP BY channel"
        ).fetchall()
        failures = conn.execute("SELECT channel, count FROM delivery_failures").fetchall()
        totals = read_totals(conn, memo.totals if memo is not None else None)
        health = source_health(store, memo.sources if memo is not None else None)
    finally:
        if begun and conn.in_transaction:
            conn.execute("COMMIT")
    oldest: dict[tuple[str, str], int] = {}
    for source, policy, _, _, started in waiting:
        key = (source, policy)
        if started is not None and (key not in oldest or started < oldest[key]):
            oldest[key] = started
    return MetricsSnapshot(
        awaiting=tuple((s, p, st, n) for s, p, st, n, _ in waiting),
        oldest=tuple((s, p, from_epoch(t)) for (s, p), t in sorted(oldest.items())),
        totals=tuple(totals),
        sources=tuple(health),
        alerts_sent=tuple((c, k, n) for c, k, n in sent),
        delivery_failures=tuple((c, n) for c, n in failures),
    )
