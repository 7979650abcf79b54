"""One poll of one source, with the logging and error handling every caller wants."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from monitor.errors import SourceError, StoreError
from monitor.logs import fields
from monitor.sources.base import PollReport, Source
from monitor.store import SourceSink, Store
from monitor.store.sqlite import record_poll

log = logging.getLogger("replyclock.poll")


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


def poll_source(source: Source, store: Store, now: datetime) -> PollOutcome:
    """Poll ``source`` into ``store``; a failure is logged once and returned, never raised."""
    started = time.monotonic()
    try:
        report = source.poll(SourceSink(store, source.name), now)
    except SourceError as exc:
        duration = time.monotonic() - started
        log.error("source poll failed", extra=fields(source=source.name, error=exc.detail))
        record_poll(store, source.name, ok=False, duration=duration, error=exc.detail, now=now)
        return PollOutcome(source.name, None, exc.detail, duration)
    except StoreError:
        raise
    duration = time.monotonic() - started
    record_poll(store, source.name, ok=True, duration=duration, error=None, now=now)
    log.info(
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
