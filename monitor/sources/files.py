"""Mail on disk: a Maildir tree or mbox files, read-only.

Useful for backfilling history from an export, for mail delivered locally, and for the demo.
A Maildir message's arrival time is its file's modification time, as Dovecot takes it for
INTERNALDATE; ``timestamps: date`` uses the Date header instead, for exports whose file times
mean nothing. Maildir files that disappear are noticed like IMAP expunges.

``probe`` (for ``replyclock check --connect``) has nobody to sign in as: it reports the folders
(or files) with their message counts, which one holds sent mail and why, the newest mail each
way, what a first sync would read, and the warning when customer mail came in this week but
no reply went out.
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
from monitor.mail.events import (
    CLOSING_BODY_BYTES,
    FolderContext,
    event_from_headers,
    wants_body,
    with_closing,
)
from monitor.mail.headers import parse_headers
from monitor.model import FolderRole, MailLocation, MessageEvent
from monitor.sources.base import MessageSink, PollReport
from monitor.sources.probe import FolderFacts, MailTally, ProbeReport

log = logging.getLogger("replyclock.sources.files")

MAILDIR_UIDVALIDITY = 1  # Maildir has no UIDVALIDITY; file names are stable identifiers
_BATCH = 500
# A header block larger than this is cut; of a body, only the start of a customer's reply is
# read (to tell a closing message), and never kept.
_HEADER_READ_LIMIT = 256 * 1024


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


def _body_start(path: Path, offset: int) -> bytes:
    """The first bytes of a message file's body (after its ``offset``-byte header block)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(CLOSING_BODY_BYTES)
    except OSError:
        return b""  # gone or unreadable now: read as no text, so never a closing message


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

    def _roles(self) -> dict[str, FolderRole]:
        """The folders a poll reads: the watched ones, and the sent folders that exist."""
        if not (self.config.path / "cur").is_dir() and not (self.config.path / "new").is_dir():
            raise SourceError(
                self.name,
                f"{self.config.path} is not a Maildir (no cur/ or new/ inside); fix `path`",
            )
        roles = dict.fromkeys(self.config.folders, FolderRole.INBOX)
        for folder in self.config.sent_folders:
            if self.folder_path(folder).is_dir():
                roles[folder] = FolderRole.SENT
        return roles

    def _missing(self, folder: str) -> SourceError:
        return SourceError(
            self.name,
            f"folder {folder!r} does not exist under {self.config.path}; "
            "fix `folders` in the config",
        )

    def probe(self, now: datetime) -> ProbeReport:
        """Report the tree's folders with their message counts, the sent folder and why, the
        newest mail each way and what a first sync would read. Only reads."""
        roles = self._roles()
        for folder in roles:
            if not self.folder_path(folder).is_dir():
                raise self._missing(folder)
        report = ProbeReport(source=self.name, kind="maildir", account=str(self.config.path))
        report.detail(
            "timestamps",
            "the Date header (timestamps: date)"
            if self.use_date_header
            else "file modification times (the arrival time, as Dovecot takes it)",
        )
        listed = self._listing()
        for folder in roles:
            if folder.upper() == "INBOX":  # named as the config names it ("inbox" works too)
                listed.pop("INBOX", None)
            listed.setdefault(folder, self.folder_path(folder))
        tally = MailTally(now, self.config.since)
        for folder, base in sorted(listed.items()):
            files = list(self._files_in(base))
            role = roles.get(folder)
            report.folders.append(
                FolderFacts(
                    name=folder,
                    role="" if role is None else "sent" if role is FolderRole.SENT else "watched",
                    messages=len(files),
                    why="named in sent_folders" if role is FolderRole.SENT else "",
                )
            )
        for folder, role in roles.items():
            tally.folders.setdefault(folder, 0)
            for path in self._files_in(self.folder_path(folder)):
                received = self._instant(path)
                if received is not None:
                    tally.add(folder, role, received)
        tally.fill(report, str(self.config.path))
        if FolderRole.SENT not in roles.values():
            report.warnings.append(
                f"no sent folder found (sent_folders: {', '.join(self.config.sent_folders)}): "
                "set sent_folders to the folder that holds sent mail"
            )
        return report

    def _listing(self) -> dict[str, Path]:
        """Every folder of the tree: INBOX (the root), ``.Name`` (Maildir++) and ``Name``
        subdirectories that hold cur/ or new/."""
        root = self.config.path
        found = {"INBOX": root}
        for entry in sorted(root.iterdir()):
            if entry.name in ("cur", "new", "tmp") or not entry.is_dir():
                continue
            if (entry / "cur").is_dir() or (entry / "new").is_dir():
                name = entry.name[1:] if entry.name.startswith(".") else entry.name
                found.setdefault(name, entry)
        return found

    @staticmethod
    def _files_in(base: Path) -> Iterator[Path]:
        """The message files of a folder (in new/ and cur/)."""
        for sub in ("new", "cur"):
            directory = base / sub
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if entry.is_file() and not entry.name.startswith("."):
                    yield Path(entry.path)

    def _instant(self, path: Path) -> datetime | None:
        """A message's instant as a poll takes it: the file time, or its Date header."""
        try:
            received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if self.use_date_header:
                received = parse_headers(read_header_block(path)).date or received
        except OSError:
            return None  # moved or unreadable: a poll skips it too
        return received

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Store files not seen before; note files that disappeared."""
        roles = self._roles()
        report = PollReport(source=self.name)
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
        return {maildir_uid(path.name): path for path in self._files_in(self.folder_path(folder))}

    def _poll_folder(
        self, sink: MessageSink, folder: str, role: FolderRole, now: datetime, report: PollReport
    ) -> set[int]:
        """Store a folder's new files; return the UIDs of files that are gone from it."""
        if not self.folder_path(folder).is_dir():
            raise self._missing(folder)
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
        event = event_from_headers(
            context,
            block,
            received,
            location=MailLocation(folder=context.folder, uidvalidity=MAILDIR_UIDVALIDITY, uid=uid),
        )
        if context.role is FolderRole.INBOX and wants_body(event, self.identity):
            event = with_closing(event, block, _body_start(path, len(block)), self.identity)
        return event


class MboxSource:
    """An mbox file (and optionally one of sent mail), read whole at each poll; for backfills."""

    def __init__(self, config: MboxSourceConfig, identity: MailboxIdentity) -> None:
        self.name = config.name
        self.config = config
        self.identity = identity

    def close(self) -> None:
        """Nothing to release."""

    def _files(self) -> list[tuple[Path, FolderRole, str]]:
        """The files a poll reads, each with its role and config key; raises if one is gone."""
        files = [(self.config.path, FolderRole.INBOX, "path")]
        if self.config.sent_path is not None:
            files.append((self.config.sent_path, FolderRole.SENT, "sent_path"))
        for path, _, key in files:
            if not path.is_file():
                raise SourceError(self.name, f"mbox file {path} does not exist; fix `{key}`")
        return files

    def probe(self, now: datetime) -> ProbeReport:
        """Report the files with their message counts, which mail counts as sent and why, the
        newest mail each way and what a first sync would read. Only reads."""
        files = self._files()
        report = ProbeReport(source=self.name, kind="mbox", account=str(self.config.path))
        report.detail("timestamps", "the From line's date, else the Date header")
        tally = MailTally(now, self.config.since)
        for path, default_role, key in files:
            counts = {FolderRole.INBOX: 0, FolderRole.SENT: 0}
            labelled = f"{path.name} (Gmail label Sent)"
            for role, received, _, _ in self._messages(path, default_role, now, warn=False):
                counts[role] += 1
                sent_label = role is FolderRole.SENT and default_role is not FolderRole.SENT
                tally.add(labelled if sent_label else path.name, role, received)
            if default_role is FolderRole.SENT:
                report.folders.append(
                    FolderFacts(path.name, "sent", counts[FolderRole.SENT], f"named in {key}")
                )
                continue
            report.folders.append(FolderFacts(path.name, "watched", counts[FolderRole.INBOX]))
            if counts[FolderRole.SENT]:
                report.folders.append(
                    FolderFacts(
                        labelled,
                        "sent",
                        counts[FolderRole.SENT],
                        "X-Gmail-Labels: Sent, as in a Google Takeout export",
                    )
                )
        tally.fill(report, str(self.config.path))
        if not any(f.role == "sent" for f in report.folders):
            report.warnings.append(
                "no sent mail found: set sent_path to an mbox file of the team's sent mail"
            )
        return report

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Store every message of the files; the store drops the ones it already has."""
        report = PollReport(source=self.name)
        since = now - timedelta(seconds=self.config.since)
        for path, role, _ in self._files():
            folder = path.name
            store_in_batches(
                sink, folder, self._events(path, folder, role, since, now), now, report
            )
        return report

    def _messages(
        self, path: Path, default_role: FolderRole, now: datetime, *, warn: bool = True
    ) -> Iterator[tuple[FolderRole, datetime, bytes, bytes]]:
        """Each message of a file: its role (Gmail's Sent label makes it sent), its instant
        (the From line's date, else the Date header, else ``now``), its header block and the
        start of its body (for closing messages)."""
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
                    if warn:
                        log.warning(
                            "message without a date; using the time it was first seen",
                            extra=fields(
                                source=self.name, file=str(path), message_id=headers.message_id
                            ),
                        )
                    received = now
                yield role, received, block, raw[len(block) : len(block) + CLOSING_BODY_BYTES]
        finally:
            box.close()

    def _events(
        self, path: Path, folder: str, default_role: FolderRole, since: datetime, now: datetime
    ) -> Iterator[MessageEvent]:
        for role, received, block, body in self._messages(path, default_role, now):
            if received < since:
                continue
            context = FolderContext(
                source=self.name, folder=folder, role=role, identity=self.identity
            )
            event = event_from_headers(context, block, received)
            if role is FolderRole.INBOX and wants_body(event, self.identity):
                event = with_closing(event, block, body, self.identity)
            yield event


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
