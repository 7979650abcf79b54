"""What can go wrong with the store file, told in words that say what to do.

Every SQLite error is turned into a ``StoreError`` here, so no ``sqlite3`` exception reaches
the daemon or the command line. The kind decides what the daemon does:

* a full disk, a read-only file or directory, an I/O error or a lock held too long
  (``StoreUnavailableError``) can pass: the daemon keeps what it has, retries, and reads
  again whatever it could not store, since a batch and its cursor are written together;
* a damaged file (``StoreCorruptError``) and a file deleted, replaced or truncated under the
  running daemon (``StoreGoneError``) cannot: writing on would lose or invent data, so the
  daemon stops writing and says so until someone restores the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from monitor.errors import StoreCorruptError, StoreError, StoreGoneError, StoreUnavailableError

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


def translate(exc: sqlite3.Error, path: Path) -> StoreError:
    """The ``StoreError`` for a SQLite error on the store at ``path``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    detail = str(exc) or type(exc).__name__
    if primary in (_CORRUPT, _NOTADB) or (
        isinstance(exc, sqlite3.DatabaseError)
        and ("malformed" in detail or "not a database" in detail)
    ):
        return StoreCorruptError(str(path), detail)
    if primary == _FULL:
        return StoreUnavailableError(
            str(path),
            "disk full",
            f"the disk holding the store {path} is full ({detail}); free some space: "
            "replyclock keeps what it has and retries, and mail it could not store is read again",
        )
    if primary in (_READONLY, _CANTOPEN):
        return StoreUnavailableError(
            str(path),
            "not writable",
            f"the store {path} cannot be written ({detail}): the file or its directory is "
            "read-only or not writable by this user; make both writable (the directory also "
            "holds the store's -wal and -shm files)",
        )
    if primary == _IOERR:
        return StoreUnavailableError(
            str(path),
            "I/O error",
            f"the store {path} could not be read or written ({detail}); the disk may be full "
            "or failing: check it, replyclock retries",
        )
    if primary in (_BUSY, _LOCKED):
        return StoreUnavailableError(
            str(path),
            "locked",
            f"the store {path} stayed locked by another program ({detail}); replyclock "
            "retries; do not open the store for writing with other tools while it runs",
        )
    return StoreError(f"the store {path} failed: {detail}")


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose statements and fetches raise ``StoreError``, never ``sqlite3.Error``.

    Iterating row by row is left as it is (wrapping ``__next__`` costs a Python call per
    row); code that iterates runs inside ``Store.transaction`` or ``Store.guarded``, which
    translate what escapes.
    """

    store_path: Path = Path()

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        try:
            super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise translate(exc, self.store_path) from exc
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> GuardedCursor:
        try:
            super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            raise translate(exc, self.store_path) from exc
        return self

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise translate(exc, self.store_path) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise translate(exc, self.store_path) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size if size is not None else self.arraysize)
        except sqlite3.Error as exc:
            raise translate(exc, self.store_path) from exc


class GuardedConnection(sqlite3.Connection):
    """A connection whose statements raise ``StoreError`` (see ``GuardedCursor``)."""

    store_path: Path = Path()

    def cursor(self, factory: Any = None) -> GuardedCursor:  # type: ignore[override]
        del factory  # every cursor of the store is a guarded one
        cursor = super().cursor(GuardedCursor)
        cursor.store_path = self.store_path
        return cursor

    def execute(self, sql: str, parameters: Any = (), /) -> GuardedCursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> GuardedCursor:
        return self.cursor().executemany(sql, parameters)


def connect(path: Path, uri: str | None = None, **kwargs: Any) -> GuardedConnection:
    """Open ``path`` (or a ``file:`` ``uri`` for it) as a ``GuardedConnection``."""
    try:
        conn = sqlite3.connect(
            uri or path, uri=uri is not None, factory=GuardedConnection, **kwargs
        )
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc
    assert isinstance(conn, GuardedConnection)
    conn.store_path = path
    return conn


class FileIdentity:
    """Which file the store is: a writer notices when its file is deleted, replaced or emptied
    under it (SQLite would go on writing into the unlinked or truncated file, and lose it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        stat = os.stat(path)
        self.inode = (stat.st_dev, stat.st_ino)

    def check(self) -> None:
        """Raise ``StoreGoneError`` unless ``path`` is still the file that was opened."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise StoreGoneError(str(self.path), "was deleted") from None
        except OSError as exc:
            raise StoreUnavailableError(
                str(self.path),
                "not readable",
                f"the store {self.path} cannot be looked at ({exc.strerror}); check the "
                "directory's permissions and the disk",
            ) from exc
        if (stat.st_dev, stat.st_ino) != self.inode:
            raise StoreGoneError(str(self.path), "was replaced by another file")
        if stat.st_size == 0:
            raise StoreGoneError(str(self.path), "was truncated to 0 bytes")
