"""Alerting: plan alerts from SLA states into the outbox, deliver them, and the daily digest.

Every alert is written to the store's outbox before anything is sent, and marked sent with
Slack's message id after; a restart sends what is pending and never resends what is marked.
The one window left is a crash after Slack accepted a message and before it was marked: that
alert is sent once more on restart (at most one duplicate, per alert).

Planning runs after each evaluation, under the store lock. Delivery runs on its own job, so a
Slack outage or rate limit slows alerts but never the polls; the store lock is only held to
read and mark rows, never during a network call.
"""

from __future__ import annotations

import json
import logging
import threading
import time as time_module
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import quantiles
from zoneinfo import ZoneInfo

from monitor.alerts.base import Notifier, PermanentDeliveryError, Posted, TemporaryDeliveryError
from monitor.alerts.content import (
    AlertContent,
    DigestFacts,
    Privacy,
    StageFacts,
    Waiting,
    render_answered,
    render_digest,
    render_stage,
    render_summary,
)
from monitor.config.loader import LoadedConfig
from monitor.config.rules import RuleBook
from monitor.logs import fields
from monitor.sla.stages import parse_quiet_hours, plan_stages, quiet_until
from monitor.store import Store
from monitor.store.sqlite import from_epoch, to_epoch

log = logging.getLogger("replyclock.alerts")

CONSOLE_CHANNEL = "#console"
MAX_BACKOFF_S = 600


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """The global alert settings, from the config's ``alerts`` section."""

    channel: str = CONSOLE_CHANNEL
    privacy: Privacy = field(default_factory=Privacy)
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    team_zone: ZoneInfo | None = None  # alerts.timezone when set: due times are shown in it
    quiet_hours: tuple[time, time] | None = None
    quiet: str = "hold"
    burst: int = 20
    threads: bool = True  # the notifier can thread and edit (not a webhook)
    digest_time: time | None = None
    digest_channels: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, threads: bool) -> AlertSettings:
        """Settings from the config (defaults when it has no ``alerts`` section)."""
        alerts = loaded.config.alerts
        if alerts is None:
            return cls(threads=threads)
        channel = (
            alerts.slack.channel
            if alerts.slack is not None
            else ("#webhook" if alerts.webhook is not None else CONSOLE_CHANNEL)
        )
        digest = alerts.digest
        return cls(
            channel=channel,
            privacy=Privacy(
                include_sender=alerts.include_sender, include_subject=alerts.include_subject
            ),
            zone=ZoneInfo(alerts.timezone or "UTC"),
            team_zone=ZoneInfo(alerts.timezone) if alerts.timezone else None,
            quiet_hours=parse_quiet_hours(alerts.quiet_hours) if alerts.quiet_hours else None,
            quiet=alerts.quiet,
            burst=alerts.burst,
            threads=threads,
            digest_time=time.fromisoformat(digest.time) if digest is not None else None,
            digest_channels=tuple(digest.channels or [channel]) if digest is not None else (),
        )


def thread_key(conversation_id: int, kind: str, started_at: int) -> str:
    """The identity of one clock, shared by all its alerts (and their Slack thread)."""
    return f"{conversation_id}:{kind}:{started_at}"


class AlertPlanner:
    """Decides which alerts are due and writes them to the outbox."""

    def __init__(self, store: Store, rules: RuleBook, settings: AlertSettings) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings

    def plan(self, now: datetime, *, syncing: Collection[str] = ()) -> int:
        """Enqueue every alert due at ``now``; return how many were enqueued to send.

        ``syncing`` names the sources still in their first sync: what they have read so far is
        history being caught up on (its replies may still be in a folder not read yet), so
        their stages wait until the sync is complete and are then planned together, where the
        dispatcher sends a burst as one summary instead of one message per conversation.
        """
        with self.store.transaction():
            return self._plan_stages(now, frozenset(syncing)) + self._plan_endings(now)

    def _plan_stages(self, now: datetime, syncing: frozenset[str]) -> int:
        conn = self.store.conn
        rows = [
            row
            for row in conn.execute(
                "SELECT id, source, policy, clock_kind, clock_started_at, waited_seconds, "
                "target_seconds, subject, customer, customer_name, link FROM conversations "
                "WHERE state IN ('warning', 'breached')"
            ).fetchall()
            if row[1] not in syncing
        ]
        queued = 0
        for (
            cid,
            source,
            policy_name,
            kind,
            started,
            waited,
            target,
            subject,
            customer,
            name,
            link,
        ) in rows:
            policy = self.rules.policies.by_name(policy_name)
            if policy is None or not policy.alerts.enabled:
                continue
            key = thread_key(cid, kind, started)
            already = [
                s
                for (s,) in conn.execute(
                    "SELECT DISTINCT stage FROM outbox WHERE thread_key = ?", (key,)
                )
            ]
            plan = plan_stages(waited, target, policy, already)
            if plan.send is None:
                continue
            calendar = self.rules.calendar_for(policy)
            folder = conn.execute(
                "SELECT folder FROM messages WHERE conversation_id = ? AND direction = 'inbound' "
                "ORDER BY timestamp LIMIT 1",
                (cid,),
            ).fetchone()
            waiting = Waiting(
                customer_name=name,
                customer_address=customer,
                subject=subject,
                source=source,
                mailbox=folder[0] if folder else "",
                policy=policy.name,
                link=link,
            )
            stage = plan.send
            mention = stage.mention or (
                policy.alerts.mention if stage.kind.value == "breach" else ()
            )
            content = render_stage(
                waiting,
                StageFacts(
                    kind=stage.kind.value,
                    step=stage.step,
                    waited=waited,
                    target=target,
                    due_at=calendar.due_instant(from_epoch(started), target),
                    zone=self.settings.team_zone or calendar.zone,
                    clock=kind,
                    mention=tuple(mention),
                ),
                self.settings.privacy,
            )
            channel = stage.channel or policy.alerts.channel or self.settings.channel
            state, send_after = self._quiet(policy.alerts.quiet_hours, policy.alerts.quiet, now)
            queued += self._enqueue(
                dedup=f"{key}:{stage.key}:{channel}",
                conversation=cid,
                channel=channel,
                kind=stage.kind.value,
                stage=stage.key,
                content=content,
                key=key,
                now=now,
                send_after=send_after,
                state=state,
            )
            for lower in plan.superseded:
                self._enqueue(
                    dedup=f"{key}:{lower.key}:{channel}",
                    conversation=cid,
                    channel=channel,
                    kind=lower.kind.value,
                    stage=lower.key,
                    content=None,
                    key=key,
                    now=now,
                    send_after=now,
                    state="superseded",
                )
        return queued

    def _quiet(
        self, window: tuple[time, time] | None, mode: str | None, now: datetime
    ) -> tuple[str, datetime]:
        window = window or self.settings.quiet_hours
        if window is None:
            return "pending", now
        ends = quiet_until(now, window, self.settings.zone)
        if ends is None:
            return "pending", now
        return ("dropped", now) if (mode or self.settings.quiet) == "drop" else ("pending", ends)

    def _plan_endings(self, now: datetime) -> int:
        """Clocks with alerts that have stopped: pending alerts are moot, sent roots edited."""
        conn = self.store.conn
        ended = conn.execute(
            "SELECT DISTINCT o.thread_key, c.conversation_id, c.stop_reason, c.responder, "
            "c.business_seconds, c.breached FROM outbox o JOIN clocks c "
            "ON c.conversation_id = o.conversation_id "
            "AND o.thread_key = c.conversation_id || ':' || c.kind || ':' || c.started_at "
            "WHERE o.state IN ('pending', 'sent') AND o.stage != 'answered' "
            "AND c.stopped_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox a "
            "WHERE a.thread_key = o.thread_key AND a.stage = 'answered')"
        ).fetchall()
        queued = 0
        for key, cid, reason, responder, waited, breached in ended:
            conn.execute(
                "UPDATE outbox SET state = 'obsolete' WHERE thread_key = ? AND state = 'pending' "
                "AND stage != 'answered'",
                (key,),
            )
            if not self.settings.threads:
                continue  # a webhook cannot edit what it sent
            roots = conn.execute(
                "SELECT channel, payload FROM outbox WHERE thread_key = ? AND state = 'sent' "
                "AND stage != 'answered' GROUP BY channel HAVING id = MIN(id)",
                (key,),
            ).fetchall()
            named = conn.execute(
                "SELECT author_name FROM messages WHERE conversation_id = ? AND author = ? "
                "AND author_name != '' LIMIT 1",
                (cid, responder),
            ).fetchone()
            who = named[0] if named else responder
            for channel, payload in roots:
                original = AlertContent.from_json(json.loads(payload))
                queued += self._enqueue(
                    dedup=f"{key}:answered:{channel}",
                    conversation=cid,
                    channel=channel,
                    kind="answered",
                    stage="answered",
                    content=render_answered(
                        original,
                        how=reason,
                        responder=who,
                        waited=waited,
                        within=not breached,
                    ),
                    key=key,
                    now=now,
                    send_after=now,
                    state="pending",
                )
        return queued

    def _enqueue(
        self,
        *,
        dedup: str,
        conversation: int | None,
        channel: str,
        kind: str,
        stage: str,
        content: AlertContent | None,
        key: str | None,
        now: datetime,
        send_after: datetime,
        state: str,
    ) -> int:
        cursor = self.store.conn.execute(
            "INSERT OR IGNORE INTO outbox (dedup_key, conversation_id, channel, kind, payload, "
            "created_at, send_after, state, thread_key, stage) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dedup,
                conversation,
                channel,
                kind,
                json.dumps(content.to_json() if content is not None else {}),
                to_epoch(now),
                to_epoch(send_after),
                state,
                key,
                stage,
            ),
        )
        added = cursor.rowcount == 1 and state == "pending"
        if added:
            log.info(
                "alert queued",
                extra=fields(kind=kind, stage=stage, channel=channel, state=state),
            )
        return int(added)

    # --- the daily digest ------------------------------------------------------------------

    def plan_digest(self, now: datetime) -> int:
        """Enqueue today's digest for each digest channel (once per local day)."""
        if self.settings.digest_time is None:
            return 0
        today = now.astimezone(self.settings.zone).date()
        content = render_digest(self._digest_facts(today - timedelta(days=1)))
        with self.store.transaction():
            return sum(
                self._enqueue(
                    dedup=f"digest:{today.isoformat()}:{channel}",
                    conversation=None,
                    channel=channel,
                    kind="digest",
                    stage="digest",
                    content=content,
                    key=None,
                    now=now,
                    send_after=now,
                    state="pending",
                )
                for channel in self.settings.digest_channels
            )

    def _digest_facts(self, day: date) -> DigestFacts:
        conn = self.store.conn
        zone = self.settings.zone
        start = datetime.combine(day, time(0), tzinfo=zone)
        span = (to_epoch(start), to_epoch(start + timedelta(days=1)))
        backlog: dict[str, list[int]] = {}
        for policy, state, count in conn.execute(
            "SELECT policy, state, COUNT(*) FROM conversations WHERE state IN "
            "('ok', 'warning', 'breached') GROUP BY policy, state"
        ):
            backlog.setdefault(policy, [0, 0, 0])[("ok", "warning", "breached").index(state)] = (
                count
            )
        breaches = conn.execute(
            "SELECT COUNT(*) FROM clocks WHERE breached = 1 AND due_at >= ? AND due_at < ?", span
        ).fetchone()[0]
        replies = [
            seconds
            for (seconds,) in conn.execute(
                "SELECT business_seconds FROM clocks WHERE kind = 'first_response' AND "
                "stop_reason = 'reply' AND stopped_at >= ? AND stopped_at < ?",
                span,
            )
        ]
        p50 = p90 = None
        if len(replies) == 1:
            p50 = p90 = replies[0]
        elif replies:
            cuts = quantiles(replies, n=10, method="inclusive")
            p50, p90 = int(cuts[4]), int(cuts[8])
        longest = tuple(
            (
                Waiting(
                    customer_name=name,
                    customer_address=customer,
                    subject="",
                    source="",
                    mailbox="",
                    policy=policy,
                ).who(self.settings.privacy),
                policy,
                waited,
            )
            for name, customer, policy, waited in conn.execute(
                "SELECT customer_name, customer, policy, waited_seconds FROM conversations "
                "WHERE state IN ('ok', 'warning', 'breached') ORDER BY waited_seconds DESC LIMIT 5"
            )
        )
        return DigestFacts(
            day=day.strftime("%a %d %b"),
            backlog=tuple((p, *counts) for p, counts in sorted(backlog.items())),  # type: ignore[misc]
            breaches_yesterday=breaches,
            replies_yesterday=len(replies),
            p50=p50,
            p90=p90,
            longest=longest,
        )


@dataclass(slots=True)
class DeliveryReport:
    """What one delivery round did."""

    sent: int = 0
    updated: int = 0
    summarized: int = 0
    failed: int = 0
    deferred: int = 0


class Dispatcher:
    """Sends pending outbox rows through a notifier: paced, summarized, never lost."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        lock: threading.Lock,
        *,
        burst: int = 20,
        pace_s: float | None = None,
        sleep: Callable[[float], None] = time_module.sleep,
        monotonic: Callable[[], float] = time_module.monotonic,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.lock = lock
        self.burst = burst
        self.pace_s = notifier.pace_s if pace_s is None else pace_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.last_post: dict[str, float] = {}
        self.reported: set[tuple[str, str]] = set()

    def deliver(self, now: datetime) -> DeliveryReport:
        """Send everything due; the store lock is held only to read and to mark."""
        report = DeliveryReport()
        with self.lock:
            rows = self.store.conn.execute(
                "SELECT id, channel, kind, stage, payload, thread_key, attempts FROM outbox "
                "WHERE state = 'pending' AND send_after <= ? ORDER BY id",
                (to_epoch(now),),
            ).fetchall()
        by_channel: dict[str, list[tuple[int, str, str, str, str, str | None, int]]] = {}
        for row in rows:
            by_channel.setdefault(row[1], []).append(row)
        for channel, items in by_channel.items():
            posts = [r for r in items if r[3] != "answered"]
            todo = items
            if len(posts) > self.burst:
                self._summarize(channel, posts, now, report)
                todo = [r for r in items if r[3] == "answered"]
            for row in todo:
                if not self._send(row, now, report):
                    break  # the channel is failing for now: its other rows wait
        return report

    def _pace(self, channel: str) -> None:
        last = self.last_post.get(channel)
        if last is not None:
            wait = self.pace_s - (self.monotonic() - last)
            if wait > 0:
                self.sleep(wait)
        self.last_post[channel] = self.monotonic()

    def _root(self, key: str | None, channel: str) -> Posted | None:
        if key is None or not self.notifier.threads:
            return None
        with self.lock:
            row = self.store.conn.execute(
                "SELECT remote_channel, remote_ref FROM outbox WHERE thread_key = ? AND "
                "channel = ? AND state = 'sent' AND stage != 'answered' ORDER BY id LIMIT 1",
                (key, channel),
            ).fetchone()
        return Posted(channel_id=row[0], ts=row[1]) if row and row[1] else None

    def _send(
        self,
        row: tuple[int, str, str, str, str, str | None, int],
        now: datetime,
        report: DeliveryReport,
    ) -> bool:
        row_id, channel, kind, stage, payload, key, attempts = row
        content = AlertContent.from_json(json.loads(payload))
        root = self._root(key, channel)
        try:
            self._pace(channel)
            if stage == "answered":
                if root is None:
                    self._mark(row_id, "obsolete", None, now)
                    return True
                self.notifier.update(root, content)
                posted = root
                report.updated += 1
            else:
                posted = self.notifier.post(channel, content, root)
                report.sent += 1
        except TemporaryDeliveryError as exc:
            delay = min(2 ** min(attempts, 10) * 5, MAX_BACKOFF_S)
            with self.lock, self.store.transaction() as conn:
                conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, send_after = ? "
                    "WHERE id = ?",
                    (str(exc), to_epoch(now) + delay, row_id),
                )
            log.warning(
                "alert delivery deferred",
                extra=fields(channel=channel, kind=kind, retry_in_s=delay, error=str(exc)),
            )
            report.deferred += 1
            return False
        except PermanentDeliveryError as exc:
            if (channel, exc.error) not in self.reported:
                self.reported.add((channel, exc.error))
                log.error(
                    "alert delivery failed",
                    extra=fields(channel=channel, error=exc.error, fix=exc.fix),
                )
            with self.lock, self.store.transaction() as conn:
                conn.execute(
                    "UPDATE outbox SET state = 'failed', attempts = attempts + 1, "
                    "last_error = ? WHERE id = ?",
                    (exc.error, row_id),
                )
                conn.execute(
                    "INSERT INTO delivery_failures (channel, count) VALUES (?, 1) "
                    "ON CONFLICT (channel) DO UPDATE SET count = count + 1",
                    (channel,),
                )
            report.failed += 1
            return True
        self._mark(row_id, "sent", posted, now)
        return True

    def _mark(self, row_id: int, state: str, posted: Posted | None, now: datetime) -> None:
        with self.lock, self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = ?, sent_at = ?, remote_ref = ?, remote_channel = ? "
                "WHERE id = ?",
                (
                    state,
                    to_epoch(now),
                    posted.ts if posted else None,
                    posted.channel_id if posted else None,
                    row_id,
                ),
            )

    def _summarize(
        self,
        channel: str,
        rows: list[tuple[int, str, str, str, str, str | None, int]],
        now: datetime,
        report: DeliveryReport,
    ) -> None:
        contents = [AlertContent.from_json(json.loads(r[4])) for r in rows]
        summary = render_summary(channel, contents)
        try:
            self._pace(channel)
            posted = self.notifier.post(channel, summary, None)
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            log.warning("alert summary not sent", extra=fields(channel=channel, error=str(exc)))
            report.deferred += len(rows)
            return
        with self.lock, self.store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET state = 'summarized', sent_at = ?, remote_ref = ?, "
                "remote_channel = ? WHERE id = ?",
                [(to_epoch(now), posted.ts, posted.channel_id, r[0]) for r in rows],
            )
        report.summarized += len(rows)
        log.info("alerts summarized", extra=fields(channel=channel, alerts=len(rows)))
