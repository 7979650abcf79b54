"""The long-running service: APScheduler runs one poll job per source at its interval."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from monitor.config.loader import LoadedConfig
from monitor.config.rules import RuleBook
from monitor.engine import Engine
from monitor.logs import fields
from monitor.polling import poll_source
from monitor.sources.base import Source
from monitor.store import Store
from monitor.store.sqlite import prune_closed

log = logging.getLogger("replyclock.daemon")


EVALUATION_INTERVAL_S = 30


def run_forever(
    loaded: LoadedConfig, store: Store, sources: Sequence[Source], rules: RuleBook
) -> int:
    """Poll every source at its own interval and keep SLA states current until SIGINT or
    SIGTERM; return the exit code."""
    scheduler = BlockingScheduler(timezone=UTC)
    # One SQLite connection is shared by the poll jobs; the lock makes their writes take turns.
    store_lock = threading.Lock()
    intervals = {source.name: source.poll_interval for source in loaded.config.sources}

    engine = Engine(store, rules)

    def poll(source: Source) -> None:
        with store_lock:
            poll_source(source, store, datetime.now(UTC))
            engine.evaluate(datetime.now(UTC))

    def evaluate() -> None:
        with store_lock:
            now = datetime.now(UTC)
            engine.evaluate(now)
            prune_closed(store, loaded.config.store.retention, now)

    scheduler.add_job(
        evaluate,
        "interval",
        seconds=EVALUATION_INTERVAL_S,
        id="evaluate",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=EVALUATION_INTERVAL_S,
    )

    for source in sources:
        scheduler.add_job(
            poll,
            "interval",
            args=[source],
            seconds=intervals[source.name],
            id=f"poll:{source.name}",
            next_run_time=datetime.now(UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=intervals[source.name],
        )

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("started", extra=fields(sources=len(sources), store=str(store.path)))
    scheduler.start()
    for source in sources:
        source.close()
    return 0
