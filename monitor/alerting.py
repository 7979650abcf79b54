"""Alerting: plan alerts from SLA states into the outbox, deliver them, and the daily digest.

Every alert is written to the store's outbox before anything is sent, and marked sent with
Slack's message id after; a restart sends what is pending and never resends what is marked.
The one window left is a crash after Slack accepted a message and before it was marked: that
alert is sent once more on restart (at most one duplicate, per alert).

Planning runs after each evaluation, under the store lock. Delivery runs on its own job, so a
Slack outage or rate limit slows alerts but never the polls; the store lock is only held to
read and mark rows, never during a network call.

Delivery keeps each thread in stage order: a row waits while an earlier stage of its thread
and channel is pending, and a pending stage made untrue by a later one (a warning under its
breach or an escalation, a lower escalation under a higher one) is superseded, never sent; a
breach always goes, before its escalations. Errors are handled alike for a post, an edit and a
burst's summary: a temporary one adds an attempt to the rows of that call and leaves their
channel alone for the backoff, a permanent one fails them and counts one failure per call.

What a person reads is true when it is sent: a warning, breach or escalation is rendered when
planned and stored with what it is rendered from, and at delivery, while its clock is still the
conversation's running one, rendered again from the conversation's numbers as the latest
evaluation left them (every 30 s). An alert sent at once reads as planned; one held by quiet
hours, a snooze or an outage says how long the customer has waited by then. A warning whose
target has been reached by then is superseded (its breach is due, and goes as usual), never
sent saying "due in 0s". The words sent are stored, so the edits of a first alert quote them.

People's decisions hold alerts: no stage is planned for a snoozed clock until its snooze runs
out, and no stage of a snoozed or dismissed clock leaves the outbox (a row queued before the
decision waits, and is made obsolete when the clock stops). Each decision edits the clock's
first alert in place to say who took it, when and why; a dismissal through the same "the wait
is over" edit as an answer.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time as time_module
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from statistics import quantiles
from typing import Any, Literal
from zoneinfo import ZoneInfo

from monitor.alerts.base import Notifier, PermanentDeliveryError, Posted, TemporaryDeliveryError
from monitor.alerts.content import (
    AlertContent,
    DigestFacts,
    Privacy,
    StageAlert,
    StageFacts,
    Waiting,
    render_answered,
    render_digest,
    render_dismissed,
    render_snoozed,
    render_summary,
)
from monitor.config.loader import LoadedConfig
from monitor.config.rules import RuleBook
from monitor.logs import fields
from monitor.sla.policy import Policy
from monitor.sla.stages import (
    AlertStage,
    makes_moot,
    next_threshold,
    parse_quiet_hours,
    plan_stages,
    quiet_until,
    stage_rank,
)
from monitor.store import Store
from monitor.store.sqlite import active_snoozes, from_epoch, held_threads, to_epoch

log = logging.getLogger("replyclock.alerts")

CONSOLE_CHANNEL = "#console"
MAX_BACKOFF_S = 600
HISTORY_WAIT_S = 600  # how long alerts found at a first sync's end wait for the other syncs
# Stages that edit a clock's first alert instead of posting: the wait is over, or snoozed.
EDIT_STAGES = frozenset({"answered", "snoozed"})
_EDITS_SQL = "('answered', 'snoozed')"
_NEVER = 1 << 62  # a clock with every stage done: waited seconds never reach it


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
        # Per clock (thread key): the business seconds waited at which its next stage falls
        # due, as last planned; until then the scheduled pass skips it without a query.
        self._next: dict[str, int] = {}

    def plan(
        self,
        now: datetime,
        *,
        syncing: Collection[str] = (),
        catching_up: Collection[str] = (),
        only: Collection[int] | None = None,
        sources: Collection[str] = (),
    ) -> int:
        """Enqueue every alert due at ``now``; return how many were enqueued to send.

        With ``only``, just those conversations are looked at (the ones an evaluation after a
        poll changed), plus every clock of ``sources`` (those whose first sync just ended):
        alerts that time alone makes due are the scheduled pass's, which skips each clock
        until it has waited as long as its next stage needs.

        ``syncing`` names the sources still in their first sync: what they have read so far is
        history being caught up on (its replies may still be in a folder not read yet), so
        their stages wait. ``catching_up`` names those whose first sync has just ended: their
        stages due now are marked as catch-up, which the dispatcher sends as one summary per
        channel instead of one message per conversation.
        """
        ids = sorted(only) if only is not None else None
        with self.store.transaction():
            queued = self._plan_stages(
                now, frozenset(syncing), frozenset(catching_up), ids, sorted(sources)
            )
            return queued + self._plan_endings(now, ids) + self._plan_snooze_notes(now)

    def _stage_rows(
        self, ids: list[int] | None, sources: list[str] | None = None
    ) -> list[tuple[Any, ...]]:
        """Waiting conversations past their warning: all of them, or those of ``ids`` and of
        ``sources``."""
        query = (
            "SELECT id, source, policy, clock_kind, clock_started_at, waited_seconds, "
            "target_seconds, due_at, subject, customer, customer_name, link "
            "FROM conversations WHERE state IN ('warning', 'breached')"
        )
        conn = self.store.conn
        if ids is None:
            return conn.execute(query).fetchall()
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows += conn.execute(f"{query} AND id IN ({','.join('?' * len(chunk))})", chunk)
        if sources:
            seen = set(ids)
            rows += [
                row
                for row in conn.execute(
                    f"{query} AND source IN ({','.join('?' * len(sources))})", sources
                )
                if row[0] not in seen
            ]
        return rows

    def _plan_stages(
        self,
        now: datetime,
        syncing: frozenset[str],
        catching_up: frozenset[str],
        ids: list[int] | None = None,
        sources: list[str] | None = None,
    ) -> int:
        conn = self.store.conn
        rows = [row for row in self._stage_rows(ids, sources) if row[1] not in syncing]
        if ids is None:  # a full pass: forget clocks no longer waiting
            self._next = {
                key: at
                for row in rows
                if (at := self._next.get(key := thread_key(row[0], row[3], row[4]))) is not None
            }
        rows = [
            row
            for row in rows
            if self._next.get(thread_key(row[0], row[3], row[4]), 0) <= (row[5] or 0)
        ]
        # A snoozed clock earns no stage until its snooze runs out; then what is due goes.
        held = held_threads(self.store, now, [thread_key(r[0], r[3], r[4]) for r in rows])
        queued = 0
        caught_up = 0
        for (
            cid,
            source,
            policy_name,
            kind,
            started,
            waited,
            target,
            due_at,
            subject,
            customer,
            name,
            link,
        ) in rows:
            policy = self.rules.policies.by_name(policy_name)
            if policy is None or not policy.alerts.enabled:
                continue
            key = thread_key(cid, kind, started)
            if key in held:
                continue
            already = [
                s
                for (s,) in conn.execute(
                    "SELECT DISTINCT stage FROM outbox WHERE thread_key = ?", (key,)
                )
            ]
            plan = plan_stages(waited, target, policy, already)
            done = {*already, *(stage.key for stage in (*plan.send, *plan.superseded))}
            upcoming = next_threshold(target, policy, done)
            self._next[key] = upcoming if upcoming is not None else _NEVER
            if not plan.send:
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
            state, send_after = self._quiet(policy.alerts.quiet_hours, policy.alerts.quiet, now)
            for stage in plan.send:
                mention = stage.mention or (
                    policy.alerts.mention if stage.kind.value == "breach" else ()
                )
                alert = StageAlert(
                    waiting=waiting,
                    facts=StageFacts(
                        kind=stage.kind.value,
                        step=stage.step,
                        waited=waited,
                        target=target,
                        # as evaluated: the first instant the target is reached, pauses skipped
                        due_at=from_epoch(due_at),
                        zone=self.settings.team_zone or calendar.zone,
                        clock=kind,
                        mention=tuple(mention),
                        clock_key=key,
                    ),
                    privacy=self.settings.privacy,
                )
                added = self._enqueue_stage(
                    stage,
                    policy,
                    cid=cid,
                    key=key,
                    content=alert,
                    now=now,
                    send_after=send_after,
                    state=state,
                    catch_up=source in catching_up,
                )
                queued += added
                caught_up += added if source in catching_up else 0
            for lower in plan.superseded:
                self._enqueue_stage(
                    lower,
                    policy,
                    cid=cid,
                    key=key,
                    content=None,
                    now=now,
                    send_after=now,
                    state="superseded",
                )
        if caught_up:
            log.info(
                "alerts for history queued, to be sent as one summary per channel",
                extra=fields(alerts=caught_up, sources=",".join(sorted(catching_up))),
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

    def _plan_endings(self, now: datetime, ids: list[int] | None = None) -> int:
        """Clocks with alerts that have stopped: pending alerts are moot, sent roots edited.
        A clock stops only when its conversation changes, so ``ids`` (the changed ones), when
        given, are the only ones to look at."""
        conn = self.store.conn
        query = (
            "SELECT DISTINCT o.thread_key, c.conversation_id, c.stop_reason, c.responder, "
            "c.business_seconds, c.breached, c.stopped_at FROM outbox o JOIN clocks c "
            "ON c.conversation_id = o.conversation_id "
            "AND o.thread_key = c.conversation_id || ':' || c.kind || ':' || c.started_at "
            "WHERE o.state IN ('pending', 'sent') AND o.stage != 'answered' "
            "AND c.stopped_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox a "
            "WHERE a.thread_key = o.thread_key AND a.stage = 'answered')"
        )
        ended: list[tuple[Any, ...]] = []
        if ids is None:
            ended = conn.execute(query).fetchall()
        for start in range(0, len(ids or ()), 500):
            chunk = (ids or [])[start : start + 500]
            marks = ",".join("?" * len(chunk))
            ended += conn.execute(  # read from the clocks of these conversations, not the outbox
                f"{query} AND c.conversation_id IN ({marks}) AND o.conversation_id IN ({marks})",
                (*chunk, *chunk),
            )
        queued = 0
        for key, cid, reason, responder, waited, breached, stopped in ended:
            conn.execute(
                "UPDATE outbox SET state = 'obsolete' WHERE thread_key = ? AND state = 'pending' "
                "AND stage != 'answered'",
                (key,),
            )
            if not self.settings.threads:
                continue  # a webhook cannot edit what it sent
            named = conn.execute(
                "SELECT author_name FROM messages WHERE conversation_id = ? AND author = ? "
                "AND author_name != '' LIMIT 1",
                (cid, responder),
            ).fetchone()
            who = named[0] if named else responder
            dismissal = (
                conn.execute(
                    "SELECT actor, actor_name, reason FROM actions WHERE conversation_id = ? "
                    "AND kind = 'dismiss' AND at = ? ORDER BY id LIMIT 1",
                    (cid, stopped),
                ).fetchone()
                if reason == "dismissed"
                else None
            )
            for channel, payload in self._roots(key):
                original = AlertContent.from_json(json.loads(payload))
                if dismissal is not None:
                    actor, actor_name, why = dismissal
                    content = render_dismissed(
                        original,
                        who=actor_name or actor,
                        when=self._local(from_epoch(stopped), cid),
                        reason=why,
                        waited=waited,
                    )
                else:
                    content = render_answered(
                        original, how=reason, responder=who, waited=waited, within=not breached
                    )
                queued += self._enqueue(
                    dedup=f"{key}:answered:{channel}",
                    conversation=cid,
                    channel=channel,
                    kind="answered",
                    stage="answered",
                    content=content,
                    key=key,
                    now=now,
                    send_after=now,
                    state="pending",
                )
        return queued

    def _roots(self, key: str) -> list[tuple[str, str]]:
        """Per channel, the payload of the first alert of a clock that went out there."""
        return self.store.conn.execute(
            "SELECT channel, payload FROM outbox WHERE thread_key = ? AND state = 'sent' "
            f"AND stage NOT IN {_EDITS_SQL} GROUP BY channel HAVING id = MIN(id)",
            (key,),
        ).fetchall()

    def _local(self, instant: datetime, cid: int) -> str:
        """An instant as the team reads it: in alerts.timezone, else the policy's calendar."""
        zone = self.settings.team_zone
        if zone is None:
            row = self.store.conn.execute(
                "SELECT policy FROM conversations WHERE id = ?", (cid,)
            ).fetchone()
            policy = self.rules.policies.by_name(row[0]) if row and row[0] else None
            zone = self.rules.calendar_for(policy).zone if policy else ZoneInfo("UTC")
        return instant.astimezone(zone).strftime("%a %d %b %H:%M %Z")

    def _plan_snooze_notes(self, now: datetime) -> int:
        """Snoozes not yet told: the clock's first alert in each channel is edited to say who
        snoozed it, until when and why (it keeps its buttons: the wait goes on)."""
        if not self.settings.threads:
            return 0
        queued = 0
        for key, snooze in active_snoozes(self.store, now).items():
            over = self.store.conn.execute(
                "SELECT 1 FROM outbox WHERE thread_key = ? AND stage = 'answered' LIMIT 1", (key,)
            ).fetchone()
            if over:  # the wait ended first: its edit says so, and stays
                continue
            for channel, payload in self._roots(key):
                dedup = f"{key}:snoozed-{snooze.id}:{channel}"
                if self.store.conn.execute(
                    "SELECT 1 FROM outbox WHERE dedup_key = ?", (dedup,)
                ).fetchone():
                    continue
                assert snooze.until is not None
                content = render_snoozed(
                    AlertContent.from_json(json.loads(payload)),
                    who=snooze.actor_name or snooze.actor,
                    when=self._local(snooze.at, snooze.conversation_id),
                    until=self._local(snooze.until, snooze.conversation_id),
                    reason=snooze.reason,
                )
                queued += self._enqueue(
                    dedup=dedup,
                    conversation=snooze.conversation_id,
                    channel=channel,
                    kind="snoozed",
                    stage="snoozed",
                    content=content,
                    key=key,
                    now=now,
                    send_after=now,
                    state="pending",
                )
        return queued

    def _enqueue_stage(
        self,
        stage: AlertStage,
        policy: Policy,
        *,
        cid: int,
        key: str,
        content: StageAlert | None,
        now: datetime,
        send_after: datetime,
        state: str,
        catch_up: bool = False,
    ) -> int:
        """Queue one stage of one clock, in the channel the stage, its policy or the team names."""
        channel = stage.channel or policy.alerts.channel or self.settings.channel
        return self._enqueue(
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
            catch_up=catch_up,
        )

    def _enqueue(
        self,
        *,
        dedup: str,
        conversation: int | None,
        channel: str,
        kind: str,
        stage: str,
        content: AlertContent | StageAlert | None,
        key: str | None,
        now: datetime,
        send_after: datetime,
        state: str,
        catch_up: bool = False,
    ) -> int:
        """Write one outbox row (once per dedup key); a stage is kept with what it is rendered
        from, for the dispatcher to render it again when it goes."""
        if isinstance(content, StageAlert):
            payload = content.to_payload()
        else:
            payload = content.to_json() if content is not None else {}
        cursor = self.store.conn.execute(
            "INSERT OR IGNORE INTO outbox (dedup_key, conversation_id, channel, kind, payload, "
            "created_at, send_after, state, thread_key, stage, catch_up) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dedup,
                conversation,
                channel,
                kind,
                json.dumps(payload),
                to_epoch(now),
                to_epoch(send_after),
                state,
                key,
                stage,
                int(catch_up),
            ),
        )
        added = cursor.rowcount == 1 and state == "pending"
        if added and not catch_up:
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
    superseded: int = 0
    held: int = 0  # stages of snoozed or dismissed clocks, kept back


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingAlert:
    """An outbox row waiting to be delivered, as the dispatcher reads it."""

    id: int
    channel: str
    kind: str
    stage: str
    payload: str
    thread_key: str | None
    attempts: int
    send_after: int  # Unix seconds
    catch_up: bool = False  # already due when its source's first sync ended
    conversation_id: int | None = None


_PENDING = (
    "id", "channel", "kind", "stage", "payload", "thread_key", "attempts", "send_after",
    "catch_up", "conversation_id",
)  # fmt: skip
# States of a clock still running (paused: waiting on the customer, but not stopped).
_RUNNING = frozenset({"ok", "warning", "breached", "paused"})


@dataclass(frozen=True, slots=True)
class Words:
    """What a pending row says if it goes now, and its new payload when that was rendered
    again (None: sent as stored)."""

    content: AlertContent
    payload: str | None = None


def ready_in_order(alerts: list[PendingAlert], at: int) -> list[PendingAlert]:
    """The pending alerts of one channel that may go at ``at``, in sending order.

    An alert is ready when it is due and no earlier stage of its thread is still pending, so
    a thread's stages go out in order even when an earlier one is backing off. The channel
    keeps its oldest-first order; within a thread the stages take their slots in stage order.
    """
    threads: dict[str, list[PendingAlert]] = {}
    ready: list[PendingAlert] = []
    for alert in alerts:
        if alert.thread_key is None:
            if alert.send_after <= at:
                ready.append(alert)
        else:
            threads.setdefault(alert.thread_key, []).append(alert)
    queues = {}
    for key, group in threads.items():
        ordered = sorted(group, key=lambda a: (stage_rank(a.stage), a.id))
        due = list(itertools.takewhile(lambda a: a.send_after <= at, ordered))
        ready += due
        queues[key] = iter(due)
    return [
        alert if alert.thread_key is None else next(queues[alert.thread_key])
        for alert in sorted(ready, key=lambda a: a.id)
    ]


def backoff_seconds(attempts: int) -> int:
    """How long a channel is left alone after a temporary error: 5 s, doubling, up to 10 min."""
    return min(5 << min(attempts, 10), MAX_BACKOFF_S)


class Dispatcher:
    """Sends pending outbox rows through a notifier: paced, in order, summarized, never lost."""

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
        syncing: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.lock = lock
        self.burst = burst
        # While other sources are still in their first sync, alerts already due at the end of
        # one wait (up to HISTORY_WAIT_S), so one summary covers them all instead of one per
        # source: a thousand mailboxes end their first syncs over minutes.
        self.syncing = syncing
        self._history_since: float | None = None
        self.pace_s = notifier.pace_s if pace_s is None else pace_s
        self.sleep = sleep
        self.monotonic = monotonic
        self.last_post: dict[str, float] = {}
        self.reported: set[tuple[str, str]] = set()

    def deliver(self, now: datetime) -> DeliveryReport:
        """Send everything due, each thread in stage order; the store lock is held only to read
        and to mark."""
        report = DeliveryReport()
        at = to_epoch(now)
        # History waiting for other first syncs is not even read: it may be thousands of rows.
        waits = self._history_waits()
        with self.lock:
            report.superseded = self._supersede()
            pending = [
                PendingAlert(**dict(zip(_PENDING, row, strict=True)))
                for row in self.store.conn.execute(
                    f"SELECT {', '.join(_PENDING)} FROM outbox WHERE state = 'pending' "
                    f"{'AND (catch_up = 0 OR stage IN ' + _EDITS_SQL + ') ' if waits else ''}"
                    "ORDER BY id"
                )
            ]
            # Only a temporary error moves a tried row's send_after past now, so these are the
            # channels still backing off, even where that row has since been superseded or
            # made obsolete: none of their alerts is tried before the backoff ends.
            backing_off = {
                channel
                for (channel,) in self.store.conn.execute(
                    "SELECT DISTINCT channel FROM outbox WHERE state IN "
                    "('pending', 'superseded', 'obsolete') AND send_after > ? AND attempts > 0",
                    (at,),
                )
            }
            # Stages of a snoozed or dismissed clock stay in the outbox (edits still go).
            held = held_threads(
                self.store,
                now,
                {a.thread_key for a in pending if a.thread_key and a.stage not in EDIT_STAGES},
            )
        by_channel: dict[str, list[PendingAlert]] = {}
        for alert in pending:
            if alert.thread_key in held and alert.stage not in EDIT_STAGES:
                report.held += 1
                continue
            by_channel.setdefault(alert.channel, []).append(alert)
        for channel, alerts in by_channel.items():
            if channel in backing_off:
                continue
            ready = ready_in_order(alerts, at)
            # What a first sync found already due is history: one summary, however few.
            history = [a for a in ready if a.catch_up and a.stage not in EDIT_STAGES]
            if len(history) > 1:
                if self._summarize(channel, history, now, report, catch_up=True) != "summarized":
                    continue
                ready = [a for a in ready if not (a.catch_up and a.stage not in EDIT_STAGES)]
            posts = [a for a in ready if a.stage not in EDIT_STAGES]
            todo = ready
            if len(posts) > self.burst:
                if self._summarize(channel, posts, now, report) == "deferred":
                    continue
                todo = [a for a in ready if a.stage in EDIT_STAGES]
            for alert in todo:
                if not self._send(alert, now, report):
                    break  # the channel is failing for now: its other rows wait
        return report

    def _supersede(self) -> int:
        """Mark 'superseded' each pending stage that a later stage of its thread in its channel,
        pending or already out, has made moot (see ``makes_moot``); return how many."""
        conn = self.store.conn
        threads: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
        # From the pending rows to their threads (outbox_thread), not through every sent row.
        for row_id, key, channel, stage, state in conn.execute(
            "SELECT o.id, o.thread_key, o.channel, o.stage, o.state FROM "
            "(SELECT DISTINCT thread_key FROM outbox WHERE state = 'pending') AS p "
            "JOIN outbox AS o ON o.thread_key = p.thread_key "
            "WHERE o.state IN ('pending', 'sent', 'summarized')"
        ):
            threads.setdefault((key, channel), []).append((row_id, stage, state))
        # id, stage, the later stage making it moot, channel
        moot: list[tuple[int, str, str, str]] = []
        for (_key, channel), rows in threads.items():
            for row_id, stage, state in rows:
                later = [other for _, other, _ in rows if makes_moot(other, stage)]
                if state == "pending" and later:
                    moot.append((row_id, stage, max(later, key=stage_rank), channel))
        if moot:
            with self.store.transaction():
                conn.executemany(
                    "UPDATE outbox SET state = 'superseded' WHERE id = ? AND state = 'pending'",
                    [(row_id,) for row_id, *_ in moot],
                )
        for _row_id, stage, by, channel in moot:
            log.info("alert superseded", extra=fields(stage=stage, by=by, channel=channel))
        return len(moot)

    def _pace(self, channel: str) -> None:
        last = self.last_post.get(channel)
        if last is not None:
            wait = self.pace_s - (self.monotonic() - last)
            if wait > 0:
                self.sleep(wait)
        self.last_post[channel] = self.monotonic()

    def _still_pending(self, alert: PendingAlert) -> tuple[bool, Posted | None]:
        """Whether the row is still pending (planning may have made it obsolete since the round
        began), and the root of its thread in its channel: the first stage sent there."""
        with self.lock:
            conn = self.store.conn
            (state,) = conn.execute("SELECT state FROM outbox WHERE id = ?", (alert.id,)).fetchone()
            if alert.thread_key is None or not self.notifier.threads:
                return state == "pending", None
            row = conn.execute(
                "SELECT remote_channel, remote_ref FROM outbox WHERE thread_key = ? AND "
                f"channel = ? AND state = 'sent' AND stage NOT IN {_EDITS_SQL} "
                "ORDER BY id LIMIT 1",
                (alert.thread_key, alert.channel),
            ).fetchone()
        root = Posted(channel_id=row[0], ts=row[1]) if row and row[1] else None
        return state == "pending", root

    def _words(self, alert: PendingAlert, now: datetime) -> Words | None:
        """What ``alert`` says if it goes at ``now`` (the caller holds the lock); None when it
        is a warning made moot since it was planned.

        A stage whose clock is still the conversation's running one is rendered again from the
        conversation's numbers, as the latest evaluation left them: waited, target and due.
        A warning whose target is reached by then (waited up to the target, or, unless paused,
        its due time passed before an evaluation said so) is moot: its breach is due. A stage
        whose clock has stopped or been replaced goes as stored until planning makes it
        obsolete, as does one the numbers no longer bear out (a breach under a target since
        raised) and every edit, digest and row queued without what it is rendered from.
        """
        data = json.loads(alert.payload)
        stored = Words(AlertContent.from_json(data))
        if alert.stage in EDIT_STAGES or alert.thread_key is None or alert.conversation_id is None:
            return stored
        recipe = StageAlert.from_payload(data)
        if recipe is None:
            return stored
        row = self.store.conn.execute(
            "SELECT state, clock_kind, clock_started_at, waited_seconds, target_seconds, due_at, "
            "policy FROM conversations WHERE id = ?",
            (alert.conversation_id,),
        ).fetchone()
        if row is None:
            return stored
        state, kind, started, waited, target, due_at, policy = row
        if (
            state not in _RUNNING
            or None in (kind, started, waited, target, due_at)
            or thread_key(alert.conversation_id, kind, started) != alert.thread_key
        ):
            return stored
        if alert.kind == "warning":
            # A paused clock's due time assumes the wait resumes when it was evaluated: passing
            # it says nothing of the breach.
            if waited >= target or (state != "paused" and due_at <= to_epoch(now)):
                return None
        elif waited <= target:
            return stored
        fresh = recipe.measured(waited=waited, target=target, due_at=from_epoch(due_at))
        if policy and policy != fresh.waiting.policy:  # the rules changed: so did its numbers
            fresh = replace(fresh, waiting=replace(fresh.waiting, policy=policy))
        return Words(fresh.render(), json.dumps(fresh.to_payload()))

    def _words_or_moot(self, alert: PendingAlert, now: datetime) -> Words | None:
        """``_words`` under the lock; a moot warning is marked superseded (and None returned)."""
        with self.lock:
            words = self._words(alert, now)
            if words is not None:
                return words
            with self.store.transaction() as conn:
                conn.execute(
                    "UPDATE outbox SET state = 'superseded' WHERE id = ? AND state = 'pending'",
                    (alert.id,),
                )
        log.info(
            "alert superseded",
            extra=fields(stage=alert.stage, by="breach", channel=alert.channel),
        )
        return None

    def _send(self, alert: PendingAlert, now: datetime, report: DeliveryReport) -> bool:
        """Deliver one row; False when the channel answered a temporary error."""
        pending, root = self._still_pending(alert)
        if not pending:
            return True
        words = self._words_or_moot(alert, now)
        if words is None:
            report.superseded += 1
            return True
        content = words.content
        if alert.stage in EDIT_STAGES:
            if root is None:  # nothing of this clock reached the channel: nothing to edit
                self._mark(alert.id, "obsolete", None, now)
                return True
            edited = root

            def call() -> Posted:
                self.notifier.update(edited, content)
                return edited
        else:

            def call() -> Posted:
                return self.notifier.post(alert.channel, content, root)

        outcome = self._attempt(alert.channel, [alert], call, now=now, report=report)
        if not isinstance(outcome, Posted):
            return outcome == "failed"
        self._mark(alert.id, "sent", outcome, now, payload=words.payload)
        if alert.stage in EDIT_STAGES:
            report.updated += 1
        else:
            report.sent += 1
        return True

    def _attempt(
        self,
        channel: str,
        alerts: list[PendingAlert],
        call: Callable[[], Posted],
        *,
        now: datetime,
        report: DeliveryReport,
        kind: str | None = None,
    ) -> Posted | Literal["deferred", "failed"]:
        """Make one paced call to the notifier on behalf of ``alerts`` and record its failure.

        A temporary error (server, network, rate limit slack-sdk gave up on) adds an attempt
        to each row, keeps the error and leaves the channel alone for the backoff; a permanent
        one fails the rows for good, is counted once per call and logged once per channel and
        error. ``kind`` names what was sent in the log (default: the one row's kind).
        """
        kind = kind or alerts[0].kind
        self._pace(channel)
        try:
            return call()
        except TemporaryDeliveryError as exc:
            delay = backoff_seconds(max(a.attempts for a in alerts))
            with self.lock, self.store.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, send_after = ? "
                    "WHERE id = ?",
                    [(str(exc), to_epoch(now) + delay, a.id) for a in alerts],
                )
            log.warning(
                "alert delivery deferred",
                extra=fields(channel=channel, kind=kind, retry_in_s=delay, error=str(exc)),
            )
            report.deferred += len(alerts)
            return "deferred"
        except PermanentDeliveryError as exc:
            if (channel, exc.error) not in self.reported:
                self.reported.add((channel, exc.error))
                log.error(
                    "alert delivery failed",
                    extra=fields(channel=channel, error=exc.error, fix=exc.fix),
                )
            with self.lock, self.store.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET state = 'failed', attempts = attempts + 1, "
                    "last_error = ? WHERE id = ?",
                    [(exc.error, a.id) for a in alerts],
                )
                conn.execute(
                    "INSERT INTO delivery_failures (channel, count) VALUES (?, 1) "
                    "ON CONFLICT (channel) DO UPDATE SET count = count + 1",
                    (channel,),
                )
            report.failed += len(alerts)
            return "failed"

    def _mark(
        self,
        row_id: int,
        state: str,
        posted: Posted | None,
        now: datetime,
        *,
        payload: str | None = None,
    ) -> None:
        """Record how a row ended, and (``payload``) the words it went with when they were
        rendered again: the edits of a first alert quote what was sent."""
        with self.lock, self.store.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = ?, sent_at = ?, remote_ref = ?, remote_channel = ?, "
                "payload = COALESCE(?, payload) WHERE id = ?",
                (
                    state,
                    to_epoch(now),
                    posted.ts if posted else None,
                    posted.channel_id if posted else None,
                    payload,
                    row_id,
                ),
            )

    def _history_waits(self) -> bool:
        """Whether alerts a first sync found due wait for the first syncs still running."""
        if not self.syncing():
            self._history_since = None
            return False
        now = self.monotonic()
        if self._history_since is None:
            self._history_since = now
        return now - self._history_since < HISTORY_WAIT_S

    def _summarize(
        self,
        channel: str,
        alerts: list[PendingAlert],
        now: datetime,
        report: DeliveryReport,
        *,
        catch_up: bool = False,
    ) -> Literal["summarized", "deferred", "failed"]:
        """Post one message standing for a burst of alerts (or for those a first sync found
        already due), each in its words of now; its failure is theirs."""
        said: list[tuple[PendingAlert, Words]] = []
        for alert in alerts:
            words = self._words_or_moot(alert, now)
            if words is None:
                report.superseded += 1
            else:
                said.append((alert, words))
        if not said:
            return "summarized"
        alerts = [alert for alert, _ in said]
        summary = render_summary(channel, [w.content for _, w in said], catch_up=catch_up)
        outcome = self._attempt(
            channel,
            alerts,
            lambda: self.notifier.post(channel, summary, None),
            now=now,
            report=report,
            kind="summary",
        )
        if not isinstance(outcome, Posted):
            return outcome
        with self.lock, self.store.transaction() as conn:
            conn.executemany(
                "UPDATE outbox SET state = 'summarized', sent_at = ?, remote_ref = ?, "
                "remote_channel = ?, payload = COALESCE(?, payload) WHERE id = ?",
                [(to_epoch(now), outcome.ts, outcome.channel_id, w.payload, a.id) for a, w in said],
            )
        report.summarized += len(alerts)
        log.info("alerts summarized", extra=fields(channel=channel, alerts=len(alerts)))
        return "summarized"
