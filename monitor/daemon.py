"""The long-running service: APScheduler runs each source's poll, evaluation and housekeeping,
and an HTTP endpoint serves /metrics, /healthz and /readyz."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.alerting import AlertPlanner, AlertSettings, Dispatcher
from monitor.alerts.base import Notifier
from monitor.config.loader import LoadedConfig
from monitor.config.rules import RuleBook
from monitor.engine import Engine
from monitor.errors import StoreError
from monitor.logs import fields
from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.model import MetricsSnapshot
from monitor.polling import poll_source
from monitor.sources.base import Source
from monitor.store import Store
from monitor.store.sqlite import metrics_snapshot, prune_closed
from monitor.web import HttpServer, make_app, split_listen

log = logging.getLogger("replyclock.daemon")

EVALUATION_INTERVAL_S = 30
DELIVERY_INTERVAL_S = 2
HOUSEKEEPING_INTERVAL_S = 3600


class StoreSnapshots:
    """Read-only views of the store for scrapes: one connection per HTTP thread (WAL lets
    them read while the daemon writes)."""

    def __init__(self, store: Store) -> None:
        self.path = store.path
        self.local = threading.local()

    def __call__(self) -> MetricsSnapshot:
        reader: Store | None = getattr(self.local, "store", None)
        if reader is None:
            reader = self.local.store = Store.open(self.path, readonly=True)
        return metrics_snapshot(reader)


def policy_infos(rules: RuleBook) -> list[PolicyInfo]:
    """What the metrics need of each policy: calendar, targets and histogram bounds."""
    return [
        PolicyInfo(
            name=policy.name,
            calendar=rules.calendar_for(policy),
            targets={
                "first_response": policy.target("first_response"),
                "next_response": policy.target("next_response"),
            },
            buckets=rules.buckets_for(policy.name),
        )
        for policy in rules.policies.all
    ]


class Daemon:
    """Polls, evaluates and serves metrics until stopped."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        sources: Sequence[Source],
        rules: RuleBook,
        notifier: Notifier,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.sources = list(sources)
        self.rules = rules
        self.engine = Engine(store, rules)
        self.scheduler = BlockingScheduler(timezone=UTC)
        # One SQLite connection is shared by the jobs; this lock makes their writes take turns.
        self.store_lock = threading.Lock()
        self.alert_settings = AlertSettings.from_config(loaded, threads=notifier.threads)
        self.planner = AlertPlanner(store, rules, self.alert_settings)
        self.dispatcher = Dispatcher(
            store, notifier, self.store_lock, burst=self.alert_settings.burst
        )
        self.succeeded: set[str] = set()
        self.store_ok = True
        collector = ReplyclockCollector(
            snapshot=StoreSnapshots(store),
            sources=[s.name for s in self.sources],
            policies=policy_infos(rules),
            channels=alert_channels(rules, self.alert_settings),
            clock=lambda: datetime.now(UTC),
        )
        host, port = split_listen(loaded.config.metrics.listen)
        self.http = HttpServer(make_app(build_registry(collector), self.ready), host, port)

    def ready(self) -> tuple[bool, str]:
        """Ready once every source was read successfully since start and the store writes."""
        missing = [s.name for s in self.sources if s.name not in self.succeeded]
        if missing:
            return False, f"not read successfully yet: {', '.join(missing)}"
        if not self.store_ok:
            return False, "the store rejected the last write"
        return True, "ready"

    def poll(self, source: Source) -> None:
        """One source's poll job, followed by an evaluation."""
        with self.store_lock:
            try:
                outcome = poll_source(source, self.store, datetime.now(UTC))
                if outcome.ok:
                    self.succeeded.add(source.name)
                now = datetime.now(UTC)
                self.engine.evaluate(now)
                self.planner.plan(now)
                self.store_ok = True
            except StoreError as exc:
                self.store_ok = False
                log.error("store write failed", extra=fields(error=str(exc)))

    def evaluate(self) -> None:
        """The evaluation job: SLA states follow the clock even when no mail arrives."""
        with self.store_lock:
            try:
                now = datetime.now(UTC)
                self.engine.evaluate(now)
                self.planner.plan(now)
                self.store_ok = True
            except StoreError as exc:
                self.store_ok = False
                log.error("store write failed", extra=fields(error=str(exc)))

    def deliver(self) -> None:
        """The delivery job: send due alerts (on its own thread: Slack never slows a poll)."""
        try:
            self.dispatcher.deliver(datetime.now(UTC))
        except StoreError as exc:
            self.store_ok = False
            log.error("store write failed", extra=fields(error=str(exc)))

    def digest(self) -> None:
        """The daily digest job, at the configured local time."""
        with self.store_lock:
            self.planner.plan_digest(datetime.now(UTC))
        self.deliver()

    def housekeeping(self) -> None:
        """Hourly: erase what conversations quiet past retention said."""
        with self.store_lock:
            prune_closed(self.store, self.loaded.config.store.retention, datetime.now(UTC))

    def schedule(self) -> None:
        """One poll job per source at its interval, plus evaluation and housekeeping."""
        intervals = {s.name: s.poll_interval for s in self.loaded.config.sources}
        for source in self.sources:
            self.scheduler.add_job(
                self.poll,
                "interval",
                args=[source],
                seconds=intervals[source.name],
                id=f"poll:{source.name}",
                next_run_time=datetime.now(UTC),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=intervals[source.name],
            )
        settings = self.alert_settings
        if settings.digest_time is not None:
            self.scheduler.add_job(
                self.digest,
                CronTrigger(
                    hour=settings.digest_time.hour,
                    minute=settings.digest_time.minute,
                    timezone=settings.zone,
                ),
                id="digest",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,
            )
        for job, seconds in (
            (self.evaluate, EVALUATION_INTERVAL_S),
            (self.deliver, DELIVERY_INTERVAL_S),
            (self.housekeeping, HOUSEKEEPING_INTERVAL_S),
        ):
            self.scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                id=job.__name__,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=seconds,
            )

    def run(self) -> int:
        """Serve and schedule until SIGINT or SIGTERM; return the exit code."""

        def stop(signum: int, frame: FrameType | None) -> None:
            del frame
            log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
            self.scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.schedule()
        self.http.start()
        log.info(
            "started",
            extra=fields(
                sources=len(self.sources),
                store=str(self.store.path),
                metrics=f"http://{self.loaded.config.metrics.listen}/metrics",
            ),
        )
        try:
            self.scheduler.start()
        finally:
            self.http.stop()
            for source in self.sources:
                source.close()
        return 0


def alert_channels(rules: RuleBook, settings: AlertSettings) -> list[str]:
    """Every channel alerts can go to, so their failure counters start at 0."""
    channels = {settings.channel, *settings.digest_channels}
    for policy in rules.policies.all:
        if policy.alerts.channel:
            channels.add(policy.alerts.channel)
        channels.update(step.channel for step in policy.escalation if step.channel)
    return sorted(channels)


def run_forever(
    loaded: LoadedConfig,
    store: Store,
    sources: Sequence[Source],
    rules: RuleBook,
    notifier: Notifier,
) -> int:
    """Run the daemon until stopped; return the exit code."""
    return Daemon(loaded, store, sources, rules, notifier).run()
