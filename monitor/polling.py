"""One poll of one source, with the logging, locking and error handling every caller wants."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from monitor.errors import ReplyclockError, SourceError
from monitor.logs import fields
from monitor.model import FolderCursor, MessageEvent
from monitor.sources.base import BatchResult, PollReport, Source
from monitor.store import SourceSink, Store
from monitor.store.sqlite import PollRecord, record_poll

log = logging.getLogger("replyclock.poll")


class Stopping(ReplyclockError):
    """The daemon is shutting down: the poll ends between two batches, nothing half-written."""


# A message may be dated a little ahead of our clock (the server's clock runs fast); past this
# its instant is not believed: it would keep the clock at "waited 0" until that date.
FUTURE_TOLERANCE = timedelta(minutes=5)


def clamp_future(
    events: Sequence[MessageEvent], read_at: datetime
) -> tuple[list[MessageEvent], list[MessageEvent]]:
    """Events as stored, and the originals of those dated past ``read_at`` plus the tolerance:
    those are timed when they were read, and their reason says so (``explain`` shows it)."""
    limit = read_at + FUTURE_TOLERANCE
    kept: list[MessageEvent] = []
    clamped: list[MessageEvent] = []
    for event in events:
        if event.timestamp <= limit:
            kept.append(event)
            continue
        clamped.append(event)
        kept.append(
            replace(
                event,
                timestamp=read_at,
                reason=f"{event.reason}; dated {event.timestamp:%Y-%m-%d %H:%M} UTC, in the "
                "future, so timed when it was read",
            )
        )
    return kept, clamped


class GuardedSink:
    """A source's view of the store for the daemon: each write takes the store lock (so a
    slow server never holds it while waiting on the network) and refuses to start once the
    daemon is stopping. Messages dated in the future are timed when they were read."""

    def __init__(
        self,
        sink: SourceSink,
        lock: threading.Lock,
        stopping: threading.Event,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sink = sink
        self.lock = lock
        self.stopping = stopping
        self.clock = clock

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if self.stopping.is_set():
            raise Stopping("stopping")
        with self.lock:
            yield

    def cursor(self, folder: str) -> FolderCursor | None:
        with self._turn():
            return self.sink.cursor(folder)

    def accept(
        self,
        events: Sequence[MessageEvent],
        cursor: FolderCursor | None,
        now: datetime,
        *,
        checkpoint: tuple[str, str] | None = None,
    ) -> BatchResult:
        events, clamped = clamp_future(events, self.clock())
        if clamped:
            log.warning(
                "messages dated in the future; timed when they were read",
                extra=fields(
                    source=self.sink.source,
                    messages=len(clamped),
                    dated=clamped[0].timestamp.isoformat(),
                    folder=clamped[0].folder,
                    uid=clamped[0].location.uid if clamped[0].location else None,
                ),
            )
        with self._turn():
            return self.sink.accept(events, cursor, now, checkpoint=checkpoint)

    def save_cursor(self, cursor: FolderCursor, now: datetime) -> None:
        with self._turn():
            self.sink.save_cursor(cursor, now)

    def checkpoint(self, key: str) -> str | None:
        with self._turn():
            return self.sink.checkpoint(key)

    def save_checkpoint(self, key: str, value: str, now: datetime) -> None:
        with self._turn():
            self.sink.save_checkpoint(key, value, now)

    def folder_uids(self, folder: str, uidvalidity: int) -> set[int]:
        with self._turn():
            return self.sink.folder_uids(folder, uidvalidity)

    def forget_uids(self, folder: str, uidvalidity: int, uids: Iterable[int], now: datetime) -> int:
        with self._turn():
            return self.sink.forget_uids(folder, uidvalidity, uids, now)

    def reset_folder(self, folder: str, now: datetime) -> None:
        with self._turn():
            self.sink.reset_folder(folder, now)

    def retire_locations(
        self, folder: str, uidvalidity: int, since: datetime, now: datetime
    ) -> int:
        with self._turn():
            return self.sink.retire_locations(folder, uidvalidity, since, now)

    def oldest_open_message(self) -> datetime | None:
        with self._turn():
            return self.sink.oldest_open_message()

    def known_thread_hints(self, hints: Iterable[str]) -> set[str]:
        with self._turn():
            return self.sink.known_thread_hints(hints)

    def message_thread_hints(self, message_ids: Iterable[str]) -> dict[str, str | None]:
        with self._turn():
            return self.sink.message_thread_hints(message_ids)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """How a poll went: its report, or the error that stopped it."""

    source: str
    report: PollReport | None
    error: str | None
    duration_s: float

    @property
    def ok(self) -> bool:
        """Whether the source was read successfully."""
        return self.error is None


class FailureLog:
    """Says once that a source fails, and once that it works again.

    A source that keeps failing with the same error (a refused token, a server that is down)
    is not logged again at every poll: the first failure and any change of error are errors,
    repeats are debug lines, and the first good poll after them says how long it was down.
    It also counts the failed polls in a row, which the daemon's backoff follows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: dict[str, tuple[str, float, int]] = {}  # error, since, failed polls

    def failing(self, source: str) -> int:
        """How many polls of ``source`` in a row have failed (0: its last poll worked)."""
        with self._lock:
            last = self._failing.get(source)
        return last[2] if last is not None else 0

    def failed(self, source: str, error: str) -> None:
        """Log a failed poll: loudly if it is the first or the error is new."""
        with self._lock:
            last = self._failing.get(source)
            repeat = last is not None and last[0] == error
            since = last[1] if last is not None else time.monotonic()
            self._failing[source] = (error, since, (last[2] if last else 0) + 1)
        if repeat:
            log.debug("source still failing", extra=fields(source=source, error=error))
        else:
            log.error("source poll failed", extra=fields(source=source, error=error))

    def succeeded(self, source: str) -> None:
        """Log the first good poll after failures."""
        with self._lock:
            last = self._failing.pop(source, None)
        if last is not None:
            log.info(
                "source recovered",
                extra=fields(
                    source=source, failed_polls=last[2], down_s=round(time.monotonic() - last[1])
                ),
            )


class PollRecords:
    """How polls went, kept until the next evaluation writes them all in one transaction: a
    thousand sources polled a minute cost one write, not a thousand (the daemon's way)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, PollRecord] = {}

    def add(self, record: PollRecord) -> None:
        """Keep a poll's outcome; a later poll of the same source replaces it (the store keeps
        only the last attempt and the last success, which ``record_polls`` merges)."""
        with self._lock:
            last = self._records.get(record.source)
            if last is not None and last.ok and not record.ok:
                record = replace(record, last_success=last.at)
            elif last is not None and not record.ok:
                record = replace(record, last_success=last.last_success)
            self._records[record.source] = record

    def take(self) -> list[PollRecord]:
        """The outcomes kept so far, handed over once."""
        with self._lock:
            records, self._records = list(self._records.values()), {}
        return records

    def give_back(self, records: Sequence[PollRecord]) -> None:
        """Keep outcomes whose write failed, unless a newer one came meanwhile."""
        with self._lock:
            for record in records:
                self._records.setdefault(record.source, record)


def poll_source(
    source: Source,
    store: Store,
    now: datetime,
    *,
    lock: threading.Lock | None = None,
    stopping: threading.Event | None = None,
    failures: FailureLog | None = None,
    records: PollRecords | None = None,
) -> PollOutcome:
    """Poll ``source`` into ``store`` and record how it went; a source failure is logged and
    returned, never raised (with ``failures``, the daemon's, a repeated failure only once).
    With ``lock``, the store is only held while writing. With ``records`` how the poll went
    is kept there for a later write of many at once, instead of written now."""
    lock = lock or threading.Lock()
    failures = failures or FailureLog()
    started = time.monotonic()

    def read_at() -> datetime:  # ``now`` moved on by the time the poll has taken so far
        return now + timedelta(seconds=time.monotonic() - started)

    sink = GuardedSink(SourceSink(store, source.name), lock, stopping or threading.Event(), read_at)
    try:
        report = source.poll(sink, now)
    except SourceError as exc:
        duration = time.monotonic() - started
        failures.failed(source.name, exc.detail)
        _record(store, lock, records, PollRecord(source.name, False, now, duration, exc.detail))
        return PollOutcome(source.name, None, exc.detail, duration)
    duration = time.monotonic() - started
    failures.succeeded(source.name)
    _record(store, lock, records, PollRecord(source.name, True, now, duration, None))
    quiet = report.new == 0 and report.removed == 0
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "source polled",
        extra=fields(
            source=source.name,
            new=report.new,
            duplicates=report.duplicates,
            removed=report.removed,
            duration_ms=round(duration * 1000, 1),
        ),
    )
    return PollOutcome(source.name, report, None, duration)


def _record(
    store: Store, lock: threading.Lock, records: PollRecords | None, record: PollRecord
) -> None:
    if records is not None:
        records.add(record)
        return
    with lock:
        record_poll(
            store,
            record.source,
            ok=record.ok,
            duration=record.duration,
            error=record.error,
            now=record.at,
        )
