"""How the daemon watches itself: is the store usable, and are polls keeping up?

Both trackers say each change once in the log (the first failure, the recovery), never once
per attempt, and both feed ``/readyz`` and ``/metrics``, so an operator and Prometheus see the
same thing. Time is handed in (``now`` in Unix seconds), so tests never sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from monitor.errors import StoreError
from monitor.logs import fields
from monitor.sources.probe import Platform, missing_replies

log = logging.getLogger("replyclock.daemon")

# Polls this late (seconds past when they were due) count as falling behind.
LAG_WARNING_S = 30.0


class StoreHealth:
    """Whether the store takes writes: fine, failing for now (retried), or unusable for good.

    Each job that writes (a source's poll, the evaluation, delivery, ...) reports how its
    store work went; the store is failing while any job's last attempt failed, and healthy
    again once each of those has succeeded. So a full disk that still takes a small write
    (one job's) is not mistaken for healed while a poll's batch keeps failing. A damaged file,
    or one deleted or replaced under the daemon, is different: from then on the daemon writes
    nothing (``usable`` is False) until it is restarted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: dict[str, StoreError] = {}  # job -> its last failure
        self.fatal: StoreError | None = None

    @property
    def usable(self) -> bool:
        """False once the store is damaged or gone: no job may write to it any more."""
        return self.fatal is None

    @property
    def ok(self) -> bool:
        """Whether every job's last store work succeeded."""
        return not self.errors and self.fatal is None

    def failed(self, job: str, exc: StoreError) -> None:
        """``job``'s store work failed: log it if it is news, stop writing if it is fatal."""
        with self._lock:
            if self.fatal is not None:
                return
            if exc.fatal:
                self.fatal = exc
                log.error(
                    "store unusable; replyclock stopped writing",
                    extra=fields(reason=exc.reason, error=str(exc)),
                )
                return
            news = exc.reason not in {e.reason for e in self.errors.values()}
            self.errors[job] = exc
        if news:
            log.error(
                "store write failed; retrying, nothing is lost",
                extra=fields(reason=exc.reason, error=str(exc)),
            )

    def succeeded(self, job: str) -> None:
        """``job``'s store work went through: its failure, if any, is over."""
        with self._lock:
            was = self.errors.pop(job, None)
            healed = was is not None and not self.errors and self.fatal is None
        if healed and was is not None:
            log.info("store writable again", extra=fields(after=was.reason))

    def forget(self, jobs: Iterable[str]) -> None:
        """Jobs that no longer exist (sources removed by a reload) fail no more."""
        with self._lock:
            for job in jobs:
                self.errors.pop(job, None)

    def reason(self) -> str | None:
        """Why the store is not ready, in words for /readyz, or None when it is."""
        problem = self.fatal or next(iter(self.errors.values()), None)
        return f"{problem.reason}: {problem}" if problem is not None else None


class PollLag:
    """When each source's next poll is due, and how late the latest-running ones are.

    A poll is due at its interval after the previous one ended (or at its backoff, or at once
    when IMAP IDLE signals mail). The lag of a source is how long past that instant its poll
    has not started yet; a poll under way keeps the lag it started with. The daemon's lag is
    the largest over all sources: 0 when every poll starts on time.
    """

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self.due: dict[str, float] = {}
        self.running: dict[str, float] = {}  # source -> how late its poll under way started
        self.behind = False
        self.started = now

    def track(self, names: Iterable[str], now: float) -> None:
        """Sources to watch (all due now); sources no longer configured are dropped."""
        wanted = set(names)
        with self._lock:
            for name in wanted - self.due.keys():
                self.due[name] = now
            for name in set(self.due) - wanted:
                del self.due[name]
                self.running.pop(name, None)

    def begin(self, name: str, now: float) -> None:
        """A poll of ``name`` starts."""
        with self._lock:
            self.running[name] = max(now - self.due.get(name, now), 0.0)

    def end(self, name: str, next_due: float) -> None:
        """A poll of ``name`` ended; the next one is due at ``next_due``."""
        with self._lock:
            self.running.pop(name, None)
            if name in self.due:
                self.due[name] = next_due

    def wanted_now(self, name: str, now: float) -> None:
        """New mail was signalled: the source's poll is due now."""
        with self._lock:
            if name in self.due:
                self.due[name] = min(self.due[name], now)

    def lag(self, now: float) -> tuple[float, int]:
        """The largest lag over the sources, and how many sources are behind."""
        with self._lock:
            lags = [
                self.running[name] if name in self.running else max(now - due, 0.0)
                for name, due in self.due.items()
            ]
        worst = max(lags, default=0.0)
        return worst, sum(1 for value in lags if value > LAG_WARNING_S)

    def check(self, now: float) -> float:
        """Log once when polls fall behind and once when they catch up; return the lag."""
        worst, behind = self.lag(now)
        if not self.behind and worst > LAG_WARNING_S:
            self.behind = True
            log.warning(
                "polls are falling behind: replyclock cannot poll every source at its interval",
                extra=fields(
                    lag_s=round(worst),
                    sources_behind=behind,
                    sources=len(self.due),
                    fix="raise poll_interval, or split the sources over more replyclock processes",
                ),
            )
        elif self.behind and worst <= LAG_WARNING_S / 2:
            self.behind = False
            log.info("polls caught up", extra=fields(lag_s=round(worst)))
        return worst


class RepliesWatch:
    """Says when a mail source's replies are missing: customer mail but no team message.

    The set-up mistake that makes every conversation look unanswered (an Exchange shared
    mailbox whose agents' replies are saved in their own Sent Items, a Sent folder not
    watched) shows as customer mail within the last 7 days and no team message at all. While
    that holds, a warning with the platform's fix is logged once a day, and
    ``replyclock_replies_missing`` is 1; one line says when replies are seen again.
    """

    REPEAT_S = 86400.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._missing: dict[str, float] = {}  # source -> when the warning was last logged
        self._checked: dict[str, bool] = {}

    def update(
        self,
        traffic: dict[str, tuple[int, int]],
        mailboxes: dict[str, tuple[Platform, str]],
        now: float,
        *,
        partial: bool = False,
    ) -> None:
        """Take (customer, team) message counts of the last 7 days per source, and log.
        ``partial``: only the sources in ``mailboxes`` were counted; the others stay as
        they were (otherwise sources no longer given are forgotten)."""
        for source, (platform, mailbox) in mailboxes.items():
            inbound, outbound = traffic.get(source, (0, 0))
            warning = missing_replies(platform, mailbox, inbound, outbound)
            with self._lock:
                self._checked[source] = warning is not None
                last = self._missing.get(source)
                due = warning is not None and (last is None or now - last >= self.REPEAT_S)
                if due:
                    self._missing[source] = now
                cleared = warning is None and self._missing.pop(source, None) is not None
            if due:
                log.warning("replies missing", extra=fields(source=source, hint=warning))
            elif cleared:
                log.info("replies seen again", extra=fields(source=source))
        if partial:
            return
        with self._lock:
            for source in set(self._checked) - set(mailboxes):
                del self._checked[source]
                self._missing.pop(source, None)

    def missing(self) -> tuple[tuple[str, bool], ...]:
        """(source, replies missing) for every mail source checked so far."""
        with self._lock:
            return tuple(sorted(self._checked.items()))
