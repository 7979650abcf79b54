"""The store file under attack: deleted, replaced, truncated, damaged, reached by a symlink, or
placed where it cannot be created. Each is a ``StoreError`` that says what to do; none is a
raw ``sqlite3`` exception or a traceback."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.errors import (
    StoreCorruptError,
    StoreError,
    StoreGoneError,
    StoreLockedError,
    StoreUnavailableError,
)
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def event(identity: str) -> MessageEvent:
    return MessageEvent(
        source="inbox",
        identity=identity,
        timestamp=NOW,
        direction=Direction.INBOUND,
        reason="test",
        author="ann@customer.example",
        subject="Help",
        thread=ThreadRef(message_id=identity, subject_key="help", customer="ann@customer.example"),
    )


def filled(path: Path, count: int = 1) -> Store:
    store = Store.open(path)
    SourceSink(store, "inbox").accept([event(f"m{n}@x") for n in range(count)], None, NOW)
    return store


def test_a_new_store_file_is_never_seen_half_made(tmp_path: Path) -> None:
    """A store is created beside its path and moved into place whole: the file is there only
    once it holds the whole schema, and no draft is left behind."""
    path = tmp_path / "replyclock.db"
    Store.open(path).close()
    assert path.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replyclock.db", "replyclock.db.lock"]


def test_an_empty_store_file_is_refused_not_taken_as_new(tmp_path: Path) -> None:
    """A store file truncated to 0 bytes while the daemon was stopped is refused at start: a
    new store would read every mailbox again as if nothing had been seen."""
    path = tmp_path / "replyclock.db"
    filled(path).close()
    path.write_bytes(b"")
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    assert str(caught.value) == (
        f"the store {path} exists but is empty (0 bytes): it was truncated or replaced, and "
        "taking it as new would read every mailbox again. Restore it from a backup, or delete "
        "it to start a new store"
    )


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        pytest.param(lambda p: p.unlink(), "was deleted", id="deleted"),
        pytest.param(
            lambda p: (p.rename(p.with_name("old.db")), p.write_bytes(b"x" * 4096)),
            "was replaced by another file",
            id="replaced",
        ),
        pytest.param(lambda p: os.truncate(p, 0), "was truncated to 0 bytes", id="truncated"),
    ],
)
def test_a_writer_refuses_to_write_once_its_file_is_gone(
    tmp_path: Path, damage: object, what: str
) -> None:
    """Deleted, replaced or emptied under a running writer, the store refuses the next write
    with a fatal error naming what happened, instead of writing where no one will read."""
    path = tmp_path / "replyclock.db"
    store = filled(path)
    try:
        damage(path)  # type: ignore[operator]
        with pytest.raises(StoreGoneError) as caught:
            SourceSink(store, "inbox").accept([event("late@x")], None, NOW)
    finally:
        store.close()
    assert caught.value.fatal
    assert str(caught.value).startswith(f"the store file {path} {what} while replyclock was")


def test_a_damaged_page_is_a_corrupt_store_error_in_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A page overwritten in the middle of the file makes `status` print one sentence saying
    the store is damaged and how to recover, with exit code 1 and no traceback."""
    path = tmp_path / "var" / "replyclock.db"
    filled(path, 3000).close()
    data = bytearray(path.read_bytes())
    assert len(data) > 40 * 4096
    for page in range(2, len(data) // 4096, 3):
        data[page * 4096 : page * 4096 + 100] = b"\xff" * 100
    path.write_bytes(bytes(data))
    config = tmp_path / "replyclock.yaml"
    config.write_text(
        "store: {path: var/replyclock.db}\nsources:\n  - {name: inbox, type: maildir, path: m}\n"
    )
    (tmp_path / "m").mkdir()
    code = main(["status", "-c", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"replyclock: the store {path} is damaged (")
    assert "restore the file from a backup" in err
    assert "Traceback" not in err


def test_corruption_is_a_fatal_store_error() -> None:
    """The error for a damaged file tells the daemon to stop writing, and says how to recover."""
    error = StoreCorruptError(
        "/var/lib/replyclock/replyclock.db", "database disk image is malformed"
    )
    assert error.fatal
    assert str(error) == (
        "the store /var/lib/replyclock/replyclock.db is damaged (database disk image is "
        "malformed); replyclock stopped writing to it. Stop replyclock, then restore the file "
        "from a backup, or move it away to start a new store (every mailbox is then read again)"
    )


def test_a_second_writer_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """Two daemons reaching one store by different paths (a symlink) still exclude each other."""
    real = tmp_path / "data" / "replyclock.db"
    link_dir = tmp_path / "link"
    first = Store.open(real)
    try:
        link_dir.symlink_to(real.parent)
        with pytest.raises(StoreLockedError):
            Store.open(link_dir / "replyclock.db")
    finally:
        first.close()


def test_a_store_path_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    """A store inside a directory that cannot hold files is a StoreError naming the path and
    the fix, never a FileNotFoundError traceback."""
    with pytest.raises(StoreError) as caught:
        Store.open(Path("/proc/1/replyclock.db"))
    assert "set store.path to a location this user can write" in str(caught.value)


def test_a_read_only_store_file_is_a_passing_failure(tmp_path: Path) -> None:
    """A write refused by SQLite because the file became read-only is a StoreUnavailableError:
    the daemon retries it rather than giving up."""
    path = tmp_path / "replyclock.db"
    store = filled(path)
    reader = Store.open(path, readonly=True)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            reader.conn.execute("DELETE FROM messages")
    finally:
        reader.close()
        store.close()
    assert not caught.value.fatal
    assert caught.value.reason == "not writable"
