"""Mail on disk: a Maildir tree or mbox files, read-only.

Useful for backfilling history from an export, for mail delivered locally, and for the demo.
A Maildir message's arrival time is its file's modification time, as Dovecot takes it for
INTERNALDATE; ``timestamps: date`` uses the Date header instead, for exports whose file times
mean nothing. Maildir files that disappear are noticed like IMAP expunges.
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from monitor.config.models import MaildirSourceConfig, MboxSourceConfig
from monitor.errors import SourceError
from monitor.logs import fields
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.mail.headers import parse_headers
from monitor.model import FolderRole, MailLocation, MessageEvent
from monitor.sources.base import MessageSink, PollReport

log = logging.getLogger("replyclock.sources.files")

MAILDIR_UIDVALIDITY = 1  # Maildir has no UIDVALIDITY; file names are stable identifiers
_BATCH = 500
_HEADER_READ_LIMIT = 256 * 1024  # a header block larger than this is cut; bodies are never read


def store_in_batches(
    sink: MessageSink,
    folder: str,
    events: Iterable[MessageEvent],
    now: datetime,
    report: PollReport,
) -> None:
    """Hand events to the store a batch at a time, so memory stays flat on large folders."""
    batch: list[MessageEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= _BATCH:
            result = sink.accept(batch, None, now)
            report.add(folder, result.new, result.duplicates)
            batch = []
    if batch:
        result = sink.accept(batch, None, now)
        report.add(folder, result.new, result.duplicates)


def read_header_block(path: Path) -> bytes:
    """The header block of a message file, without reading its body."""
    chunks: list[bytes] = []
    size = 0
    with path.open("rb") as handle:
        while size < _HEADER_READ_LIMIT:
            chunk = handle.read(8192)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            data = b"".join(chunks)
            for separator in (b"\r\n\r\n", b"\n\n"):
                end = data.find(separator)
                if end >= 0:
                    return data[: end + len(separator)]
    return b"".join(chunks)


def maildir_uid(file_name: str) -> int:
    """A stable 63-bit number for a Maildir file, from the unique part of its name."""
    unique = file_name.split(":", 1)[0].split("!", 1)[0]
    return int.from_bytes(hashlib.blake2b(unique.encode(), digest_size=8).digest(), "big") >> 1


class MaildirSource:
    """A Maildir tree: the root is INBOX, Maildir++ subfolders (``.Sent``) are other folders."""

    def __init__(self, config: MaildirSourceConfig, identity: MailboxIdentity) -> None:
        self.name = config.name
        self.config = config
        self.identity = identity
        self.use_date_header = config.timestamps == "date"

    def close(self) -> None:
        """Nothing to release: files are opened per read."""

    def folder_path(self, folder: str) -> Path:
        """Where a folder lives: the root for INBOX, ``.Name`` (Maildir++) or ``Name`` otherwise."""
        root = self.config.path
        if folder.upper() == "INBOX":
            return root
        dotted = root / f".{folder}"
        return dotted if dotted.is_dir() else root / folder

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Store files not seen before; note files that disappeared."""
        if not (self.config.path / "cur").is_dir() and not (self.config.path / "new").is_dir():
            raise SourceError(
                self.name,
                f"{self.config.path} is not a Maildir (no cur/ or new/ inside); fix `path`",
            )
        report = PollReport(source=self.name)
        roles = dict.fromkeys(self.config.folders, FolderRole.INBOX)
        for folder in self.config.sent_folders:
            if self.folder_path(folder).is_dir():
                roles[folder] = FolderRole.SENT
        # Disappeared files are forgotten only after every folder is read, so a message moved
        # from one watched folder to another is found in its new place first, never "removed".
        gone = {
            folder: self._poll_folder(sink, folder, role, now, report)
            for folder, role in roles.items()
        }
        for folder, uids in gone.items():
            if uids:
                report.removed += sink.forget_uids(folder, MAILDIR_UIDVALIDITY, uids, now)
        return report

    def _files(self, folder: str) -> dict[int, Path]:
        base = self.folder_path(folder)
        found: dict[int, Path] = {}
        for sub in ("new", "cur"):
            directory = base / sub
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if entry.is_file() and not entry.name.startswith("."):
                    found[maildir_uid(entry.name)] = Path(entry.path)
        return found

    def _poll_folder(
        self, sink: MessageSink, folder: str, role: FolderRole, now: datetime, report: PollReport
    ) -> set[int]:
        """Store a folder's new files; return the UIDs of files that are gone from it."""
        if not self.folder_path(folder).is_dir():
            raise SourceError(
                self.name,
                f"folder {folder!r} does not exist under {self.config.path}; "
                "fix `folders` in the config",
            )
        files = self._files(folder)
        known = sink.folder_uids(folder, MAILDIR_UIDVALIDITY)
        context = FolderContext(source=self.name, folder=folder, role=role, identity=self.identity)
        since = now - timedelta(seconds=self.config.since)
        events = (self._read(context, files[uid], uid, since) for uid in sorted(set(files) - known))
        store_in_batches(sink, folder, (e for e in events if e is not None), now, report)
        return known - set(files)

    def _read(
        self, context: FolderContext, path: Path, uid: int, since: datetime
    ) -> MessageEvent | None:
        try:
            received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if not self.use_date_header and received < since:
                return None
            block = read_header_block(path)
        except FileNotFoundError:
            return None  # moved between listing and reading: the next poll sees where it went
        except OSError as exc:
            log.warning(
                "cannot read message file",
                extra=fields(source=self.name, path=str(path), error=exc.strerror),
            )
            return None
        if self.use_date_header:
            received = parse_headers(block).date or received
            if received < since:
                return None
        return event_from_headers(
            context,
            block,
            received,
            location=MailLocation(folder=context.folder, uidvalidity=MAILDIR_UIDVALIDITY, uid=uid),
        )


class MboxSource:
    """An mbox file (and optionally one of sent mail), read whole at each poll; for backfills."""

    def __init__(self, config: MboxSourceConfig, identity: MailboxIdentity) -> None:
        self.name = config.name
        self.config = config
        self.identity = identity

    def close(self) -> None:
        """Nothing to release."""

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Store every message of the files; the store drops the ones it already has."""
        report = PollReport(source=self.name)
        files = [(self.config.path, FolderRole.INBOX, "path")]
        if self.config.sent_path is not None:
            files.append((self.config.sent_path, FolderRole.SENT, "sent_path"))
        since = now - timedelta(seconds=self.config.since)
        for path, role, key in files:
            if not path.is_file():
                raise SourceError(self.name, f"mbox file {path} does not exist; fix `{key}`")
            folder = path.name
            store_in_batches(
                sink, folder, self._events(path, folder, role, since, now), now, report
            )
        return report

    def _events(
        self, path: Path, folder: str, default_role: FolderRole, since: datetime, now: datetime
    ) -> Iterator[MessageEvent]:
        box = mailbox.mbox(path, create=False)
        try:
            for key in box.iterkeys():
                raw = box.get_bytes(key)
                end = raw.find(b"\n\n")
                block = raw[: end + 2] if end >= 0 else raw
                headers = parse_headers(block)
                labels = ",".join(headers.fields.get("x-gmail-labels", ())).lower()
                role = FolderRole.SENT if "sent" in labels.split(",") else default_role
                received = _from_line_date(box.get_message(key).get_from()) or headers.date
                if received is None:
                    # Nothing dates it: keep it (never lose a message), timed when first seen.
                    log.warning(
                        "message without a date; using the time it was first seen",
                        extra=fields(
                            source=self.name, file=str(path), message_id=headers.message_id
                        ),
                    )
                    received = now
                if received < since:
                    continue
                context = FolderContext(
                    source=self.name, folder=folder, role=role, identity=self.identity
                )
                yield event_from_headers(context, block, received)
        finally:
            box.close()


def _from_line_date(from_line: str) -> datetime | None:
    """The date on an mbox ``From `` separator line, taken as UTC when it carries no zone."""
    parts = from_line.split(None, 1)
    if len(parts) < 2:
        return None
    try:
        parsed = parsedate_to_datetime(parts[1])
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
