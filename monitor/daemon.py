"""The long-running service: APScheduler runs each source's poll, alert delivery and
housekeeping; one evaluation thread takes in what every poll stored; one thread waits on every
IMAP IDLE connection; an HTTP endpoint serves /metrics, /healthz and /readyz.

Work follows what changed, not how many sources there are: a poll stores its batches and asks
for an evaluation, which evaluates only the conversations that changed since the last one and
plans alerts only for them; running clocks are measured again on their own 30-second schedule.
Polls run on a pool of threads per server (an IMAP host, a helpdesk's API), and a source whose
polls fail is moved to a pool of its own, so a server that is down or slow never delays the
sources of another, nor a failing mailbox the healthy ones beside it. How each poll went is
written with the next evaluation, for all sources at once.

With ``alerts.slack.app_token`` a Socket Mode thread receives the alerts' buttons ("No reply
needed", "Snooze"): each allowed click is recorded as an action through the engine, under the
store lock, and the evaluation job runs at once so the clock and its Slack message follow.

Lifecycle: SIGTERM or SIGINT stop taking new work, let the jobs under way end at their next
store write (each batch is written whole, so nothing is half-stored), close the store and exit
0 within 10 seconds. SIGHUP reloads the config and rules; an invalid new config is logged in
full and the running one kept. Under systemd (``NOTIFY_SOCKET``) the daemon reports READY=1,
WATCHDOG=1 while its scheduler runs, and STOPPING=1.
"""

from __future__ import annotations

import functools
import logging
import random
import resource
import signal
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from urllib.parse import urlsplit

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from monitor.alerting import AlertPlanner, AlertSettings, Dispatcher
from monitor.alerts.base import Notifier
from monitor.alerts.slack import ActionClick, SlackActions
from monitor.app import build_notifier, build_sources, read_secret
from monitor.config.loader import LoadedConfig, load_config
from monitor.config.models import ImapSourceConfig
from monitor.config.rules import RuleBook, build_rulebook
from monitor.engine import ActionRequest, Engine
from monitor.errors import ConfigError, ReplyclockError, StoreError
from monitor.evaluator import EvaluationLoop, Round
from monitor.logs import fields
from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.model import ServiceStatus
from monitor.polling import FailureLog, PollRecords, Stopping, poll_source
from monitor.sdnotify import notify, watchdog_interval
from monitor.snapshots import StoreSnapshots
from monitor.sources.base import Source
from monitor.sources.imap import ImapSource
from monitor.sources.imap_idle import IdleHub
from monitor.sources.probe import RECENT
from monitor.store import Store
from monitor.store.sqlite import prune_closed, record_polls, synced_sources
from monitor.supervision import PollLag, RepliesWatch, StoreHealth
from monitor.web import Credentials, HttpServer, make_app, split_listen, tls_context

log = logging.getLogger("replyclock.daemon")

EVALUATION_INTERVAL_S = 30
DELIVERY_INTERVAL_S = 2
HOUSEKEEPING_INTERVAL_S = 3600
SUPERVISION_INTERVAL_S = 10
REPLIES_CHECK_INTERVAL_S = 600  # how often mail sources are checked for missing replies
MAX_BACKOFF_S = 900
# Threads that run polls, per server. Polls mostly wait on the network; on loopback they take
# turns on the interpreter. Sources whose last poll failed poll on a pool of their own.
POLL_WORKERS = 16
FAILING_WORKERS = 4
STOP_BUDGET_S = 8.0  # SIGTERM to exit stays under 10 s


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


def alert_channels(rules: RuleBook, settings: AlertSettings) -> list[str]:
    """Every channel alerts can go to, so their failure counters start at 0."""
    channels = {settings.channel, *settings.digest_channels}
    for policy in rules.policies.all:
        if policy.alerts.channel:
            channels.add(policy.alerts.channel)
        channels.update(step.channel for step in policy.escalation if step.channel)
    return sorted(channels)


def backoff_seconds(interval: int, failures: int) -> float:
    """Wait before the next try of a failing source: doubling, capped, with 10% jitter."""
    base = float(min(interval * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))
    return base * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not cryptography


@dataclass
class Generation:
    """What a config load produces; SIGHUP swaps it whole."""

    loaded: LoadedConfig
    sources: list[Source]
    rules: RuleBook
    engine: Engine
    planner: AlertPlanner
    dispatcher: Dispatcher
    settings: AlertSettings
    idle: IdleHub | None


class Daemon:
    """Polls, evaluates, alerts and serves metrics until stopped."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        sources: Sequence[Source],
        rules: RuleBook,
        notifier: Notifier,
        *,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.dry_run = dry_run
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            executors={
                "default": ThreadPoolExecutor(8),
                "failing": ThreadPoolExecutor(FAILING_WORKERS),
            },
        )
        self.pools: set[str] = set()  # the per-server poll pools made so far
        # One SQLite connection is shared by the jobs; this lock makes their writes take turns.
        self.store_lock = threading.Lock()
        self.stopping = threading.Event()
        self.idle_stop = threading.Event()
        self.inflight = 0
        self.inflight_changed = threading.Condition()
        self.succeeded: set[str] = set()
        self.poll_requested: set[str] = set()
        self.polling: set[str] = set()  # sources whose poll runs now
        self.polling_lock = threading.Lock()
        self.store_health = StoreHealth()
        self.lag = PollLag(time.time())
        # Failed polls in a row per source (the backoff follows them), each failure said once.
        self.failure_log = FailureLog()
        self.poll_records = PollRecords()
        self.syncing: list[str] = []  # sources in their first sync, as last evaluated
        self.evaluator = EvaluationLoop(
            self._evaluate_round,
            self._evaluated,
            self.stopping,
            remeasure_every=EVALUATION_INTERVAL_S,
        )
        self.replies = RepliesWatch()
        self.replies_synced: set[str] = set()  # sources synced when replies were last checked
        # Sources whose first sync ended before this process, or whose alerts for history
        # were planned since: later stages of theirs are sent one by one.
        self.planned_synced = synced_sources(store)
        self.gen = self._generation(loaded, list(sources), rules, notifier)
        self.snapshots = StoreSnapshots(store)
        self.collector = ReplyclockCollector(
            snapshot=self.snapshots,
            sources=[s.name for s in self.gen.sources],
            policies=policy_infos(rules),
            channels=alert_channels(rules, self.gen.settings),
            clock=lambda: datetime.now(UTC),
            service=self.service_status,
            histograms_by_source=loaded.config.metrics.histograms_by_source,
        )
        metrics = loaded.config.metrics
        host, port = split_listen(metrics.listen)
        tls = (
            tls_context(str(metrics.tls.cert_file), str(metrics.tls.key_file))
            if metrics.tls
            else None
        )
        self.http = HttpServer(
            make_app(build_registry(self.collector), self.ready, _credentials(loaded)),
            host,
            port,
            tls,
        )
        self.slack_actions: SlackActions | None = None  # built by run(): it starts threads

    # --- the alert buttons (Socket Mode) -------------------------------------------------------

    def _slack_actions(self, loaded: LoadedConfig) -> SlackActions | None:
        """The Socket Mode client for the alert buttons, when an app token is configured (an
        app token changed by SIGHUP takes effect at the next restart; allowed_actors at once)."""
        alerts = loaded.config.alerts
        slack = alerts.slack if alerts is not None else None
        if self.dry_run or slack is None or not slack.actions_enabled:
            return None
        return SlackActions(
            app_token=read_secret(slack.app_token, slack.app_token_file),
            bot_token=read_secret(slack.token, slack.token_file),
            base_url=str(slack.base_url),
            allowed=self._allowed_actors,
            on_click=self.slack_action,
        )

    def _allowed_actors(self) -> list[str]:
        alerts = self.gen.loaded.config.alerts
        slack = alerts.slack if alerts is not None else None
        return list(slack.allowed_actors) if slack is not None else []

    def slack_action(self, click: ActionClick) -> str | None:
        """Record a button pressed by an allowed actor; None when done, else why not (for an
        ephemeral message, so it names no customer, subject or conversation id)."""
        head = click.clock_key.split(":", 1)[0]
        if not head.isdigit():
            return "That button is not one replyclock knows."
        now = datetime.now(UTC)
        request = ActionRequest(
            kind="dismiss" if click.action == "dismiss" else "snooze",
            conversation_id=int(head),
            actor=click.user_id,
            actor_name=click.user_name,
            via="slack",
            until=now + timedelta(seconds=click.snooze_seconds or 0),
            clock_key=click.clock_key,
        )
        outcome = None
        with self._store_work("slack action") as usable, self.store_lock:
            if usable:
                outcome = self.gen.engine.act(request, now)
        if outcome is None:
            return "replyclock cannot write its store right now; please try again in a minute."
        if outcome.action is None:
            return f"Nothing done: {outcome.message}."
        # Take it in now: the clock, the metrics and the Slack message.
        self.evaluator.request(remeasure=True)
        return None

    def _generation(
        self, loaded: LoadedConfig, sources: list[Source], rules: RuleBook, notifier: Notifier
    ) -> Generation:
        settings = AlertSettings.from_config(loaded, threads=notifier.threads)
        return Generation(
            loaded=loaded,
            sources=sources,
            rules=rules,
            engine=Engine(self.store, rules),
            planner=AlertPlanner(self.store, rules, settings),
            dispatcher=Dispatcher(
                self.store,
                notifier,
                self.store_lock,
                burst=settings.burst,
                syncing=lambda: bool(self.syncing),
            ),
            settings=settings,
            idle=None,
        )

    # --- health ------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """Ready once every source was read successfully since start and the store writes."""
        problem = self.store_health.reason()
        if problem is not None:
            return False, problem
        missing = [s.name for s in self.gen.sources if s.name not in self.succeeded]
        if missing:
            return False, f"not read successfully yet: {', '.join(missing)}"
        return True, "ready"

    def service_status(self) -> ServiceStatus:
        """What /metrics says of the daemon itself: poll lag and store health."""
        return ServiceStatus(
            scheduler_lag_seconds=self.lag.lag(time.time())[0],
            evaluation_lag_seconds=self.evaluator.lag(),
            store_ok=self.store_health.ok,
            replies_missing=self.replies.missing(),
        )

    @contextmanager
    def _job(self) -> Iterator[bool]:
        """Count a job as under way (shutdown waits for it); yields False when stopping."""
        with self.inflight_changed:
            self.inflight += 1
        try:
            yield not self.stopping.is_set()
        finally:
            with self.inflight_changed:
                self.inflight -= 1
                self.inflight_changed.notify_all()

    # --- jobs --------------------------------------------------------------------------------

    def poll(self, source: Source) -> None:
        """One source's poll, then an evaluation asked for; again if mail was signalled
        meanwhile (IMAP IDLE). Never two polls of one source at once: a poll due while one
        runs (its job may just have moved to another pool) is left to the running one."""
        name = source.name
        with self.polling_lock:
            if name in self.polling:
                self.poll_requested.add(name)
                return
            self.polling.add(name)
        try:
            with self._job() as go:
                while go and not self.stopping.is_set() and self.store_health.usable:
                    self.poll_requested.discard(name)
                    self._poll_once(source)
                    with self.polling_lock:  # decided with the check above: no ask is lost
                        if name not in self.poll_requested:
                            self.polling.discard(name)
                            break
        finally:
            with self.polling_lock:
                self.polling.discard(name)

    def _poll_once(self, source: Source) -> None:
        interval = self._interval(source.name)
        started = time.time()
        next_due = started + interval
        self.lag.begin(source.name, started)
        try:
            with self.store.guarded():
                outcome = poll_source(
                    source,
                    self.store,
                    datetime.now(UTC),
                    lock=self.store_lock,
                    stopping=self.stopping,
                    failures=self.failure_log,
                    records=self.poll_records,
                )
        except Stopping:
            return
        except StoreError as exc:
            # Nothing of the batch was kept, nor its cursor: the next poll reads it again.
            self.store_health.failed(f"poll:{source.name}", exc)
            return
        finally:
            self.lag.end(source.name, next_due)
        self.store_health.succeeded(f"poll:{source.name}")
        if not outcome.ok:
            failures = self.failure_log.failing(source.name)
            delay = backoff_seconds(interval, failures)
            # Said once: the failure itself is logged by the poll, its repeats at debug level.
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "source down",
                extra=fields(source=source.name, failures=failures, next_try_s=round(delay)),
            )
            self._reschedule(source.name, delay, executor="failing")
            self.lag.end(source.name, time.time() + delay)
        elif self._executor(source.name) == "failing":
            self._move(source.name, self._pool_for(source))
        # Ready only once what was read is evaluated (a scrape then shows it): the evaluation
        # thread says so when it has taken this poll in.
        self.evaluator.request(source.name if outcome.ok else None)

    def _interval(self, name: str) -> int:
        for config in self.gen.loaded.config.sources:
            if config.name == name:
                return config.poll_interval
        return 60

    def _reschedule(self, name: str, delay: float, *, executor: str | None = None) -> None:
        job = self.scheduler.get_job(f"poll:{name}")
        if job is not None:
            changes: dict[str, object] = {
                "next_run_time": datetime.now(UTC) + timedelta(seconds=delay)
            }
            if executor is not None and job.executor != executor:
                changes["executor"] = executor
            job.modify(**changes)

    def _pool_for(self, source: Source) -> str:
        """The pool of threads a healthy source polls on: its server's."""
        config = next((c for c in self.gen.loaded.config.sources if c.name == source.name), None)
        alias = f"server:{server_of(config)}"
        if alias not in self.pools:
            same = sum(
                1 for c in self.gen.loaded.config.sources if f"server:{server_of(c)}" == alias
            )
            self.scheduler.add_executor(ThreadPoolExecutor(min(POLL_WORKERS, same)), alias)
            self.pools.add(alias)
        return alias

    def _executor(self, name: str) -> str | None:
        job = self.scheduler.get_job(f"poll:{name}")
        return job.executor if job is not None else None

    def _move(self, name: str, executor: str) -> None:
        """Run a source's later polls on another pool (back to the healthy one once it works)."""
        job = self.scheduler.get_job(f"poll:{name}")
        if job is not None:
            job.modify(executor=executor)

    def request_poll(self, name: str) -> None:
        """New mail was signalled (IMAP IDLE): poll that source now."""
        self.poll_requested.add(name)
        self.lag.wanted_now(name, time.time())
        self._reschedule(name, 0)

    @contextmanager
    def _store_work(self, job: str) -> Iterator[bool]:
        """Run a job's store work: yields False when the store is unusable (nothing is
        written); a store failure is recorded and logged once, never raised."""
        if not self.store_health.usable:
            yield False
            return
        try:
            with self.store.guarded():
                yield True
        except StoreError as exc:
            self.store_health.failed(job, exc)
        else:
            self.store_health.succeeded(job)

    def _evaluate_round(self, work: Round) -> bool:
        """One evaluation, on the evaluation thread: write how the polls since the last one
        went, evaluate what changed (and, on the 30-second schedule, every running clock),
        then plan alerts: for the conversations evaluated, or on the schedule for every clock
        whose next stage is due. True when it was done (the store took it)."""
        if not self.store_health.usable:
            return False
        gen = self.gen
        records = self.poll_records.take()
        done = False
        with self._store_work("evaluate") as usable, self.store_lock:
            if usable:
                try:
                    record_polls(self.store, records)
                except StoreError:
                    self.poll_records.give_back(records)
                    raise
                now = datetime.now(UTC)
                synced = synced_sources(self.store)
                syncing = [s.name for s in gen.sources if s.name not in synced]
                self.syncing = syncing
                catching_up = synced - self.planned_synced
                # A first sync just ended: its clocks were held; measure them again (that
                # source's only, unless it is time for all) before the catch-up summary is
                # planned, so it covers everything already due.
                remeasure: bool | set[str] = work.remeasure or catching_up
                report = gen.engine.evaluate(
                    now, remeasure=remeasure, hold=syncing, pause=self._let_polls_write
                )
                gen.planner.plan(
                    now,
                    syncing=syncing,
                    catching_up=catching_up,
                    only=None if work.remeasure else report.touched,
                    sources=catching_up,
                )
                self.planned_synced |= synced
                done = True
        if not done:
            self.poll_records.give_back(records)
        fresh = self.planned_synced - self.replies_synced
        if done and fresh:
            self.check_replies(fresh)  # a first sync ended: are its replies where they are read?
        return done

    def _let_polls_write(self) -> None:
        """Between two batches of a long evaluation: hand the store lock to polls waiting."""
        self.store_lock.release()
        try:
            time.sleep(0.001)
        finally:
            self.store_lock.acquire()

    def _evaluated(self, sources: Collection[str]) -> None:
        """What these sources' polls read is evaluated: they count as read for readiness."""
        self.succeeded.update(sources)

    def deliver(self) -> None:
        """The delivery job: send due alerts (on its own thread: Slack never slows a poll)."""
        with self._job() as go, self._store_work("deliver") as usable:
            if go and usable:
                self.gen.dispatcher.deliver(datetime.now(UTC))

    def digest(self) -> None:
        """The daily digest job, at the configured local time."""
        with self._job() as go, self._store_work("digest") as usable, self.store_lock:
            if go and usable:
                self.gen.planner.plan_digest(datetime.now(UTC))
        self.deliver()

    def housekeeping(self) -> None:
        """Hourly: erase what conversations quiet past retention said."""
        with self._job() as go, self._store_work("housekeeping") as usable, self.store_lock:
            if go and usable:
                prune_closed(self.store, self.gen.loaded.config.store.retention, datetime.now(UTC))

    def check_replies(self, only: Collection[str] | None = None) -> None:
        """Every 10 minutes: is any mail source's team missing replies (see RepliesWatch)?
        With ``only``, just those sources (whose first sync just ended): a check counts a
        week of their messages, not of every source's."""
        with self._job() as go, self._store_work("replies check") as usable:
            if not (go and usable):
                return
            with self.store_lock:
                synced = synced_sources(self.store)
                if only is not None:
                    synced &= set(only)
                traffic = self.store.recent_traffic(
                    datetime.now(UTC) - RECENT, None if only is None else sorted(synced)
                )
            self.replies_synced = synced if only is None else self.replies_synced | synced
            mailboxes = {
                source.name: watched
                for source in self.gen.sources
                if source.name in synced
                and (watched := getattr(source, "replies_watched", lambda: None)()) is not None
            }
            self.replies.update(traffic, mailboxes, time.time(), partial=only is not None)

    def supervise(self) -> None:
        """Every few seconds: say once when polls fall behind or catch up, and notice a store
        file deleted or replaced even while nothing is written."""
        self.lag.check(time.time())
        with self._store_work("file check") as usable:
            if usable:
                self.store.check_file()

    def watchdog(self) -> None:
        """Tell systemd the scheduler is alive."""
        notify("WATCHDOG=1")

    # --- scheduling ----------------------------------------------------------------------------

    def schedule_sources(self) -> None:
        """One poll job per source at its interval; IMAP IDLE for the folders configured."""
        gen = self.gen
        self.lag.track([source.name for source in gen.sources], time.time())
        for source in gen.sources:
            interval = self._interval(source.name)
            self.scheduler.add_job(
                self.poll,
                "interval",
                args=[source],
                seconds=interval,
                id=f"poll:{source.name}",
                executor=self._pool_for(source),
                next_run_time=datetime.now(UTC),
                coalesce=True,
                max_instances=1,
                # However late a poll starts (a thousand first syncs queue for the pool), it
                # runs: a poll skipped as "missed" would wait a whole interval more.
                misfire_grace_time=None,
                replace_existing=True,
            )
        self.idle_stop = threading.Event()
        hub = IdleHub(self.idle_stop)
        for source in gen.sources:
            if isinstance(source, ImapSource) and isinstance(source.config, ImapSourceConfig):
                for folder in source.config.idle_on:
                    hub.watch(source, folder, functools.partial(self.request_poll, source.name))
        hub.start()
        gen.idle = hub

    def schedule(self) -> None:
        """Every job: polls, evaluation, delivery, digest, housekeeping, watchdog."""
        self.schedule_sources()
        settings = self.gen.settings
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
                replace_existing=True,
            )
        jobs: list[tuple[object, float]] = [
            (self.deliver, DELIVERY_INTERVAL_S),
            (self.housekeeping, HOUSEKEEPING_INTERVAL_S),
            (self.supervise, SUPERVISION_INTERVAL_S),
            (self.check_replies, REPLIES_CHECK_INTERVAL_S),
        ]
        interval = watchdog_interval()
        if interval is not None:
            jobs.append((self.watchdog, interval))
        for job, seconds in jobs:
            self.scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                id=getattr(job, "__name__", "job"),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(int(seconds), 1),
                replace_existing=True,
            )

    # --- reload and stop ---------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: load the config again; keep the running one if the new one is invalid."""
        path = self.gen.loaded.path
        try:
            loaded = load_config(path)
            rules = build_rulebook(loaded)
            sources = build_sources(loaded)
            notifier = build_notifier(loaded, dry_run=self.dry_run)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload refused", extra=fields(problem=str(problem)))
            log.error("config not reloaded; the running config stays", extra=fields(path=str(path)))
            return
        except (ReplyclockError, OSError) as exc:
            log.error("config not reloaded; the running config stays", extra=fields(error=str(exc)))
            return
        old = self.gen
        if loaded.config.metrics.listen != old.loaded.config.metrics.listen:
            log.warning("metrics.listen changed: it takes effect at the next restart")
        if loaded.config.store.path != old.loaded.config.store.path:
            log.warning("store.path changed: it takes effect at the next restart")
        self.idle_stop.set()
        if old.idle is not None:
            old.idle.join(2)
        with self.store_lock:
            for job in self.scheduler.get_jobs():
                if job.id.startswith("poll:"):
                    job.remove()
            for source in old.sources:
                source.close()
            self.gen = self._generation(loaded, sources, rules, notifier)
            self.collector.sources = [s.name for s in sources]
            self.collector.policies = {p.name: p for p in policy_infos(rules)}
            self.collector.channels = alert_channels(rules, self.gen.settings)
            self.collector.histograms_by_source = loaded.config.metrics.histograms_by_source
            self.succeeded &= {s.name for s in sources}
            self.store_health.forget(
                f"poll:{s.name}" for s in old.sources if s.name not in {n.name for n in sources}
            )
        self.schedule_sources()
        log.info("config reloaded", extra=fields(path=str(path), sources=len(sources)))

    def _write_poll_records(self) -> None:
        """At exit: write how the last polls went (the evaluation thread has stopped)."""
        records = self.poll_records.take()
        if not records or not self.store_health.usable:
            return
        try:
            with self.store.guarded(), self.store_lock:
                record_polls(self.store, records)
        except StoreError as exc:
            log.warning("could not write the last polls' outcome", extra=fields(error=str(exc)))

    def stop(self, reason: str) -> None:
        """Stop taking work; the scheduler loop returns and `run` finishes the shutdown."""
        if self.stopping.is_set():
            return
        log.info("stopping", extra=fields(signal=reason))
        notify("STOPPING=1")
        self.stopping.set()
        self.idle_stop.set()
        self.evaluator.wake()
        if self.gen.idle is not None:
            self.gen.idle.wake()
        self.scheduler.shutdown(wait=False)

    def run(self) -> int:
        """Serve and schedule until SIGINT or SIGTERM; return the exit code."""

        def on_stop(signum: int, frame: FrameType | None) -> None:
            del frame
            self.stop(signal.Signals(signum).name)

        def on_hup(signum: int, frame: FrameType | None) -> None:
            del signum, frame
            log.info("SIGHUP: reloading the config")
            self.scheduler.add_job(self.reload, id="reload", replace_existing=True)

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        raise_open_files_limit(len(self.gen.sources))
        self.evaluator.start()
        self.schedule()
        self.http.start()
        self.slack_actions = self._slack_actions(self.gen.loaded)
        if self.slack_actions is not None:
            self.slack_actions.start()
        log.info(
            "started",
            extra=fields(
                sources=len(self.gen.sources),
                store=str(self.store.path),
                metrics=f"http://{self.gen.loaded.config.metrics.listen}/metrics",
            ),
        )
        notify("READY=1")
        started = time.monotonic()
        try:
            self.scheduler.start()
        finally:
            self._finish(started)
        return 0

    def _finish(self, started: float) -> None:
        deadline = time.monotonic() + STOP_BUDGET_S
        with self.inflight_changed:
            while self.inflight and time.monotonic() < deadline:
                self.inflight_changed.wait(deadline - time.monotonic())
        if self.inflight:
            log.warning("jobs still running at exit", extra=fields(jobs=self.inflight))
        self.evaluator.join(max(deadline - time.monotonic(), 0.1))
        if self.gen.idle is not None:
            self.gen.idle.join(max(deadline - time.monotonic(), 0.1))
        self._write_poll_records()
        if self.slack_actions is not None:
            self.slack_actions.close()
        self.http.stop()
        self.snapshots.close()
        for source in self.gen.sources:
            source.close()
        log.info("stopped", extra=fields(uptime_s=round(time.monotonic() - started)))


def server_of(config: object) -> str:
    """Which server a source reads from, for its pool of poll threads: the IMAP host and
    port, the API's host, or the local disk for Maildir and mbox."""
    host = getattr(config, "host", None)
    if isinstance(host, str):
        return f"{host}:{getattr(config, 'effective_port', '')}"
    api = getattr(config, "api_url", None)
    if api is not None:
        return urlsplit(str(api)).netloc or str(api)
    return "local"


def raise_open_files_limit(sources: int) -> None:
    """Raise the soft limit on open files to the hard one: each IMAP source holds a socket
    for polling and one per IDLE folder, and 1024 (a common default) runs out near 500
    sources. Said when even the hard limit looks too low (the systemd unit sets
    ``LimitNOFILE``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit", extra=fields(error=str(exc)))
        else:
            soft = target
    needed = 64 + 3 * sources
    if soft < needed:
        log.warning(
            "open files limit may be too low for this many sources; raise LimitNOFILE "
            "(systemd) or ulimit -n",
            extra=fields(limit=soft, sources=sources, needed=needed),
        )


def _credentials(loaded: LoadedConfig) -> Credentials | None:
    metrics = loaded.config.metrics
    if metrics.basic_auth is not None:
        auth = metrics.basic_auth
        return Credentials(
            username=auth.username, password=read_secret(auth.password, auth.password_file)
        )
    if metrics.bearer_token is not None or metrics.bearer_token_file is not None:
        return Credentials(bearer=read_secret(metrics.bearer_token, metrics.bearer_token_file))
    return None


def run_forever(
    loaded: LoadedConfig,
    store: Store,
    sources: Sequence[Source],
    rules: RuleBook,
    notifier: Notifier,
    *,
    dry_run: bool = False,
) -> int:
    """Run the daemon until stopped; return the exit code."""
    return Daemon(loaded, store, sources, rules, notifier, dry_run=dry_run).run()
