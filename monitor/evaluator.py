"""The daemon's evaluation thread: one evaluation takes in what every source stored since the
last one, so a thousand polls do not mean a thousand evaluations.

A poll only asks for an evaluation and goes on; the thread runs one as soon as it is free,
taking in every poll that asked meanwhile, and tells each poll's source once what it read is
evaluated (readiness waits for that: a scrape then shows it). Every running clock is measured
again on its own schedule (every 30 seconds), never once per poll. Evaluations never overlap,
and an evaluation that falls behind is said once in the log and in
``replyclock_evaluation_lag_seconds``: requests are merged, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from monitor.logs import fields

log = logging.getLogger("replyclock.daemon")

# An evaluation that took longer than this is reported (once, until they are quick again).
SLOW_EVALUATION_S = 5.0


@dataclass
class Round:
    """What one evaluation is asked to do."""

    remeasure: bool  # measure every running clock again, and plan every alert
    sources: frozenset[str]  # the sources whose polls asked for it


@dataclass
class _Pending:
    sources: set[str] = field(default_factory=set)
    requested: bool = False
    remeasure: bool = False
    since: float | None = None  # when the oldest request not yet taken in was made


class EvaluationLoop:
    """Runs ``evaluate(round)`` on its own thread whenever asked, merging requests."""

    def __init__(
        self,
        evaluate: Callable[[Round], bool],
        on_done: Callable[[Collection[str]], None],
        stop: threading.Event,
        *,
        remeasure_every: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._evaluate = evaluate
        self._on_done = on_done
        self._stop = stop
        self._every = remeasure_every
        self._clock = clock
        self._cond = threading.Condition()
        self._pending = _Pending()
        self._next_remeasure = clock() + remeasure_every
        self._thread: threading.Thread | None = None
        self._running_since: float | None = None
        self._slow = False
        self.rounds = 0

    def request(self, source: str | None = None, *, remeasure: bool = False) -> None:
        """Ask for an evaluation (after a poll of ``source``, or an action); never waits."""
        with self._cond:
            pending = self._pending
            if source is not None:
                pending.sources.add(source)
            pending.requested = True
            pending.remeasure |= remeasure
            if pending.since is None:
                pending.since = self._clock()
            self._cond.notify()

    def lag(self) -> float:
        """Seconds the oldest request has waited to be taken in (0 when none waits), or the
        running evaluation has taken so far, whichever is longer."""
        now = self._clock()
        with self._cond:
            waited = now - self._pending.since if self._pending.since is not None else 0.0
            running = now - self._running_since if self._running_since is not None else 0.0
        return max(waited, running, 0.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="evaluate", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Let the thread notice ``stop``."""
        with self._cond:
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> Round | None:
        """Wait for work; None when stopping."""
        with self._cond:
            while not self._stop.is_set():
                now = self._clock()
                due = now >= self._next_remeasure
                pending = self._pending
                if due or pending.requested:
                    self._pending = _Pending()
                    if due or pending.remeasure:
                        self._next_remeasure = now + self._every
                    self._running_since = now
                    return Round(
                        remeasure=due or pending.remeasure,
                        sources=frozenset(pending.sources),
                    )
                self._cond.wait(max(self._next_remeasure - now, 0.01))
        return None

    def _run(self) -> None:
        while (work := self._take()) is not None:
            started = self._clock()
            done = False
            try:
                done = self._evaluate(work)
            except Exception:
                log.exception("evaluation failed; it is tried again at the next request")
            took = self._clock() - started
            with self._cond:
                self._running_since = None
            self.rounds += 1
            self._report(took)
            if done:
                self._on_done(work.sources)
            elif work.sources:  # not taken in (the store failed): ask again later
                with self._cond:
                    self._pending.sources |= work.sources
                    self._pending.requested = True
                    if self._pending.since is None:
                        self._pending.since = self._clock()
                self._stop.wait(1.0)

    def _report(self, took: float) -> None:
        if took >= SLOW_EVALUATION_S and not self._slow:
            self._slow = True
            log.warning(
                "evaluation is slow; polls are merged and nothing is lost, numbers come later",
                extra=fields(took_s=round(took, 1)),
            )
        elif took < SLOW_EVALUATION_S / 2 and self._slow:
            self._slow = False
            log.info("evaluation keeps up again", extra=fields(took_s=round(took, 2)))
