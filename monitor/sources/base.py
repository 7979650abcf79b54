"""What every source is, and the port through which it writes to the store.

A source never imports the store: the daemon hands it a ``MessageSink`` (the store's
``SourceSink`` fits it) and calls ``poll`` at the source's interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from monitor.errors import SourceError
from monitor.model import FolderCursor, MessageEvent


class BatchResult(Protocol):
    """What the store reports for one accepted batch."""

    @property
    def new(self) -> int: ...

    @property
    def duplicates(self) -> int: ...


class MessageSink(Protocol):
    """The store as one source sees it."""

    def cursor(self, folder: str) -> FolderCursor | None: ...

    def accept(
        self,
        events: Sequence[MessageEvent],
        cursor: FolderCursor | None,
        now: datetime,
        *,
        checkpoint: tuple[str, str] | None = None,
    ) -> BatchResult: ...

    def checkpoint(self, key: str) -> str | None: ...

    def save_checkpoint(self, key: str, value: str, now: datetime) -> None: ...

    def save_cursor(self, cursor: FolderCursor, now: datetime) -> None: ...

    def folder_uids(self, folder: str, uidvalidity: int) -> set[int]: ...

    def forget_uids(
        self, folder: str, uidvalidity: int, uids: Iterable[int], now: datetime
    ) -> int: ...

    def reset_folder(self, folder: str, now: datetime) -> None: ...

    def retire_locations(
        self, folder: str, uidvalidity: int, since: datetime, now: datetime
    ) -> int: ...

    def oldest_open_message(self) -> datetime | None: ...

    # What a source reading team members' own mailboxes asks before it keeps a message there
    # (Microsoft Graph's reply_mailboxes): does it belong to a conversation stored already?
    def known_thread_hints(self, hints: Iterable[str]) -> set[str]: ...

    def message_thread_hints(self, message_ids: Iterable[str]) -> dict[str, str | None]: ...


@dataclass(slots=True)
class PollReport:
    """What one poll of one source did, for logs, metrics and `run --once`."""

    source: str
    new: int = 0
    duplicates: int = 0
    removed: int = 0
    folders: dict[str, int] = field(default_factory=dict)  # folder -> new messages
    round_trips: int = 0  # IMAP commands sent, to keep an idle poll cheap

    def add(self, folder: str, new: int, duplicates: int) -> None:
        """Count a stored batch."""
        self.new += new
        self.duplicates += duplicates
        self.folders[folder] = self.folders.get(folder, 0) + new


class Source(Protocol):
    """Anything that can be polled for new message events."""

    name: str

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read what is new since the sink's cursors and hand it to the sink."""
        ...

    def close(self) -> None:
        """Release connections; the next poll reconnects."""
        ...


def read_secret(source: str, *, key: str, value: str | None, path: Path | None) -> str:
    """A source's secret: the ``*_file`` read fresh (so a rotated file is picked up), else the
    value from the config. An unreadable or empty file is a clear error naming the key."""
    if path is None:
        assert value is not None  # the config requires one of the two
        return value
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SourceError(
            source, f"cannot read {key} {path} ({exc.strerror}); check the path"
        ) from exc
    if not secret:
        raise SourceError(source, f"{key} {path} is empty; write the secret into it")
    return secret
