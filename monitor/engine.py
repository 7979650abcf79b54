"""The SLA engine: match policies, evaluate conversations, keep clock history in the store.

Wiring, not core: it reads and writes the store and applies the pure rules of ``monitor.sla``.
Each evaluation redoes in full only the conversations that changed since the last one (new or
removed messages); every other waiting conversation has its running clock measured again at
the new ``now``. Stopped clocks are history: once stored, their numbers stay as they were
computed, even if the calendar or the policy changes later, until ``recompute`` is run.

People's decisions about a clock (``act``: dismiss it, snooze its alerts) are stored as
actions; each evaluation first takes in those recorded since the last (by the command line
next to the daemon, or from Slack) and hands a conversation's dismissals to the pure rules as
data, so a dismissed clock stops there, in the history, the totals and every view.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

from monitor.alerting import thread_key
from monitor.config.rules import RuleBook
from monitor.durations import format_duration
from monitor.logs import fields
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import Clock, ClockKind, ClockMessage, running_clock
from monitor.sla.evaluate import (
    ClockState,
    ClockVerdict,
    ConversationVerdict,
    evaluate,
    evaluate_clock,
)
from monitor.sla.policy import MatchFacts, Policy
from monitor.store import Store, StoredConversation, StoredMessage, totals
from monitor.store.sqlite import (
    StoredAction,
    actions_by_conversation,
    candidate_waiting_conversations,
    conversations_by_id,
    conversations_with_actions,
    dismissal_instants,
    from_epoch,
    latest_snooze,
    record_action,
    running_clock_rows,
    stored_running_clocks,
    take_new_actions,
    to_epoch,
    unevaluated_waiting_candidates,
)

log = logging.getLogger("replyclock.engine")

RUNNING_STATES = (ClockState.OK.value, ClockState.WARNING.value, ClockState.BREACHED.value)
_CLOCK_KINDS = {kind.value: kind for kind in ClockKind}
_CHUNK = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """A clock that entered a new state at this evaluation (what alerts are made of)."""

    conversation_id: int
    source: str
    policy: str
    seq: int
    verdict: ClockVerdict
    previous: str | None  # the state stored before, None for a clock not seen before


@dataclass(slots=True)
class EvaluationReport:
    """What one evaluation did."""

    matched: int = 0
    reevaluated: int = 0
    remeasured: int = 0
    transitions: list[Transition] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # conversations evaluated in full

    @property
    def touched(self) -> set[int]:
        """The conversations this evaluation evaluated in full or saw change state: the only
        ones whose alerts can have changed, unless time alone crossed a threshold."""
        return {*self.changed, *(t.conversation_id for t in self.transitions)}


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitingConversation:
    """A conversation awaiting a reply, measured now: the row of `replyclock status`."""

    conversation: StoredConversation
    policy: Policy
    verdict: ClockVerdict
    snoozed: StoredAction | None = None  # the snooze holding its alerts now, if any


class ListedConversation(NamedTuple):
    """A line of `replyclock status`: a conversation awaiting a reply, reduced to the figures
    shown. Instants are UTC epoch seconds. A named tuple rather than a dataclass because a
    listing makes thousands at once: the first two fields, unique together, sort the lines
    (soonest breach first, then by id) without a key function."""

    remaining: int  # business seconds left before the target (negative once breached)
    id: int
    source: str
    policy: Policy
    customer: str
    subject: str
    kind: ClockKind
    state: ClockState
    started_at: int
    business_seconds: int
    calendar_seconds: int
    target: int
    due_at: int  # the first instant at which the target is reached
    snoozed_until: datetime | None  # the snooze holding its alerts now, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRequest:
    """A person asks to dismiss a conversation's running clock, or to snooze its alerts."""

    kind: Literal["dismiss", "snooze"]
    conversation_id: int
    actor: str  # the OS user, or the Slack user id
    via: Literal["cli", "slack"]
    actor_name: str = ""
    reason: str = ""
    until: datetime | None = None  # snooze: hold alerts until then
    clock_key: str | None = None  # the clock an alert was about; None: the one running now


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionOutcome:
    """What ``Engine.act`` did: the action recorded, or None and why not. ``message`` names
    no address, subject or conversation id, so Slack may show it."""

    action: StoredAction | None
    message: str
    verdict: ClockVerdict | None = None  # the clock acted on, as it stood


def match_facts(conversation: StoredConversation, first: StoredMessage) -> MatchFacts:
    """What policies match on: the conversation's first customer message."""
    return MatchFacts(
        source=conversation.source,
        folder=first.folder,
        sender=first.author,
        recipients=first.recipients,
        subject=first.subject,
        priority=first.priority,
        tags=first.tags,
        attributes=first.attributes,
    )


def clock_messages(messages: Iterable[StoredMessage]) -> list[ClockMessage]:
    """The part of stored messages the clock rules need."""
    return [
        ClockMessage(
            timestamp=m.timestamp,
            direction=m.direction,
            removed_at=m.removed_at,
            author=m.author,
            status=m.status,
            closing=m.closing is not None,
        )
        for m in messages
    ]


class Engine:
    """Applies a rule book to the conversations of one store."""

    def __init__(self, store: Store, rules: RuleBook) -> None:
        self.store = store
        self.rules = rules
        self._layout_checked = False

    def _bounds(self, policy: str) -> Sequence[int]:
        return self.rules.buckets_for(policy)

    def _prepare_totals(self) -> None:
        """Once per engine: recount the histograms if their bucket bounds changed."""
        if self._layout_checked or self.store.readonly:
            return
        layout = {policy.name: self._bounds(policy.name) for policy in self.rules.policies.all}
        with self.store.transaction() as conn:
            if totals.ensure_layout(conn, layout, self._bounds):
                log.info("histogram buckets changed; response-time histograms recounted")
        self._layout_checked = True

    def _forget_clocks(self, conversation_id: int, from_seq: int = 0) -> None:
        """Delete stored clocks (from ``from_seq`` on), taking them out of the totals."""
        conn = self.store.conn
        rows = conn.execute(
            f"SELECT {totals.CLOCK_ROW_COLUMNS} FROM clocks WHERE conversation_id = ? AND seq >= ?",
            (conversation_id, from_seq),
        ).fetchall()
        for row in rows:
            totals.adjust(conn, tuple(row), -1, self._bounds(row[1]))
        conn.execute(
            "DELETE FROM clocks WHERE conversation_id = ? AND seq >= ?",
            (conversation_id, from_seq),
        )

    def _absorb_merges(self) -> None:
        """Clocks of conversations merged into others leave the history (and the totals): the
        surviving conversation's evaluation measures all of its messages again."""
        merged = [
            cid
            for (cid,) in self.store.conn.execute(
                "SELECT conversation_id FROM merged_conversations"
            )
        ]
        if not merged:
            return
        with self.store.transaction() as conn:
            for cid in merged:
                self._forget_clocks(cid)
                conn.execute("DELETE FROM merged_conversations WHERE conversation_id = ?", (cid,))

    # --- policy matching ---------------------------------------------------------------------

    def choose_policy(
        self, conversation: StoredConversation, messages: list[StoredMessage]
    ) -> tuple[Policy, str]:
        """The stored policy when it still exists, else the one the rules choose now."""
        if conversation.policy is not None:
            policy = self.rules.policies.by_name(conversation.policy)
            if policy is not None:
                return policy, conversation.policy_reason or ""
        first = next((m for m in messages if m.direction.value == "inbound"), None)
        if first is None:
            return self.rules.policies.all[-1], "no customer message yet"
        return self.rules.policies.choose(match_facts(conversation, first))

    def _assign(
        self, conversation: StoredConversation, messages: list[StoredMessage]
    ) -> Policy | None:
        """Match and store a policy for a conversation that has none (or a removed one)."""
        if conversation.policy is not None and self.rules.policies.by_name(conversation.policy):
            return None
        if not any(m.direction.value == "inbound" for m in messages):
            return None
        policy, reason = self.choose_policy(_with_policy(conversation, None, None), messages)
        if conversation.policy is not None:
            log.warning(
                "policy no longer in the rules; conversation matched again",
                extra=fields(
                    conversation=conversation.id, old=conversation.policy, new=policy.name
                ),
            )
        self.store.conn.execute(
            "UPDATE conversations SET policy = ?, policy_reason = ? WHERE id = ?",
            (policy.name, reason, conversation.id),
        )
        return policy

    # --- evaluation --------------------------------------------------------------------------

    def evaluate(
        self,
        now: datetime,
        *,
        remeasure: bool | Collection[str] = True,
        hold: Collection[str] = (),
        pause: Callable[[], None] | None = None,
    ) -> EvaluationReport:
        """Bring every conversation's SLA state up to ``now``; report state changes.

        Conversations that changed are always evaluated in full. With ``remeasure`` the
        running clocks of all the others are measured again at ``now`` too (the scheduled
        evaluation does that; a poll's evaluation need not). Sources in ``hold`` are in their
        first sync: their running clocks are provisional until it ends (the replies may be in
        a folder not read yet), so measuring them again would be work thrown away. A
        collection of source names for ``remeasure`` measures only their clocks again (a
        source whose first sync just ended).

        ``pause`` is called between two batches of clocks measured again (the daemon lets
        polls write there); conversations changed meanwhile are left to a full evaluation,
        done before this one returns.
        """
        report = EvaluationReport()
        self._prepare_totals()
        self._absorb_merges()
        take_new_actions(self.store, now)
        self._evaluate_changed(now, report)
        if remeasure:
            only = None if isinstance(remeasure, bool) else frozenset(remeasure)
            self._remeasure_all(now, frozenset(hold), report, pause, only)
            if pause is not None:  # what polls stored between the batches
                self._absorb_merges()
                self._evaluate_changed(now, report)
        if report.matched or report.transitions:
            log.info(
                "evaluated",
                extra=fields(
                    matched=report.matched,
                    reevaluated=report.reevaluated,
                    remeasured=report.remeasured,
                    transitions=len(report.transitions),
                ),
            )
        return report

    def _evaluate_changed(self, now: datetime, report: EvaluationReport) -> None:
        """Evaluate in full every conversation changed since it was last evaluated."""
        # Changed since evaluated: the revision a write bumped is past the one the last
        # evaluation read. Both numbers are written in the same transactions as the data, so
        # mail stored by a poll that started before this evaluation is never missed.
        changed = [
            cid
            for (cid,) in self.store.conn.execute(
                "SELECT id FROM conversations WHERE "
                "(evaluated_revision IS NULL OR evaluated_revision < revision) "
                "AND pruned_at IS NULL"
            )
        ]
        report.changed += changed
        for chunk in _chunks(changed):
            with self.store.transaction():
                # Messages and revisions are read in this one transaction: what is evaluated
                # is exactly what the recorded revision stands for.
                messages = self.store.messages_by_conversation(chunk)
                actions = actions_by_conversation(self.store, chunk)
                for cid in chunk:
                    conversation = self.store.conversation(cid)
                    if conversation is None:
                        continue
                    self._reevaluate(conversation, messages[cid], now, report, actions[cid])

    def _reevaluate(
        self,
        conversation: StoredConversation,
        messages: list[StoredMessage],
        now: datetime,
        report: EvaluationReport,
        actions: list[StoredAction] | None = None,
    ) -> None:
        assigned = self._assign(conversation, messages)
        if assigned is not None:
            report.matched += 1
            conversation = _with_policy(conversation, assigned.name, None)
        report.reevaluated += 1
        conn = self.store.conn
        if conversation.policy is None:  # nothing a customer wrote yet: no clock
            conn.execute(
                "UPDATE conversations SET state = NULL, evaluated_at = ?, evaluated_revision = ? "
                "WHERE id = ?",
                (to_epoch(now), conversation.revision, conversation.id),
            )
            return
        policy, _ = self.choose_policy(conversation, messages)
        if actions is None:
            actions = actions_by_conversation(self.store, [conversation.id])[conversation.id]
        verdict = evaluate(
            clock_messages(messages),
            policy,
            self.rules.calendar_for(policy),
            now,
            dismissals=dismissal_instants(actions),
        )
        stored = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT seq, kind, started_at, stopped_at, stop_reason, state FROM clocks "
                "WHERE conversation_id = ?",
                (conversation.id,),
            )
        }
        kept: set[int] = set()
        for seq, clock in enumerate(verdict.clocks):
            key = (
                clock.clock.kind.value,
                to_epoch(clock.clock.started_at),
                to_epoch(clock.clock.stopped_at) if clock.clock.stopped_at else None,
                clock.clock.stop_reason.value if clock.clock.stop_reason else None,
            )
            previous = stored.get(seq)
            if previous is not None and previous[:4] == key and clock.clock.stopped_at:
                kept.add(seq)  # history: its numbers stay as first computed
                continue
            self._write_clock(conversation, policy, seq, clock)
            if previous is None or previous[4] != clock.state.value:
                report.transitions.append(
                    Transition(
                        conversation_id=conversation.id,
                        source=conversation.source,
                        policy=policy.name,
                        seq=seq,
                        verdict=clock,
                        previous=previous[4] if previous is not None else None,
                    )
                )
        self._forget_clocks(conversation.id, len(verdict.clocks))
        last = len(verdict.clocks) - 1
        if last in kept:  # the last clock is history: the conversation row shows it as stored
            self._write_current_from_history(conversation.id, last, now)
        else:
            self._write_current(
                conversation.id, verdict.clocks[-1] if verdict.clocks else None, now
            )
        conn.execute(
            "UPDATE conversations SET evaluated_revision = ? WHERE id = ?",
            (conversation.revision, conversation.id),
        )

    def _remeasure_all(
        self,
        now: datetime,
        held: frozenset[str],
        report: EvaluationReport,
        pause: Callable[[], None] | None = None,
        sources: frozenset[str] | None = None,
    ) -> None:
        """Measure every running clock again at ``now`` (of ``sources`` only, when given):
        one read of them all, and two
        batched writes per 500; history and totals are touched only where a clock's breach
        flag flips. Clocks with pauses (ticket statuses) are evaluated in full instead."""
        marks = ",".join("?" * len(RUNNING_STATES))
        names = sorted(sources) if sources is not None else []
        which = f" AND c.source IN ({','.join('?' * len(names))})" if sources is not None else ""
        running = [
            row
            for row in self.store.conn.execute(
                "SELECT c.id, c.source, c.policy, c.clock_kind, c.clock_started_at, c.state, "
                "k.seq, k.breached, EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = "
                "c.id AND m.status IS NOT NULL) FROM conversations c LEFT JOIN clocks k ON "
                "k.conversation_id = c.id AND k.seq = (SELECT MAX(seq) FROM clocks x WHERE "
                f"x.conversation_id = c.id) WHERE c.state IN ({marks}) AND c.evaluated_at < ?"
                f"{which}",
                (*RUNNING_STATES, to_epoch(now), *names),
            ).fetchall()
            if row[1] not in held
        ]
        for number, batch in enumerate(_chunks(running)):
            rows = batch
            if pause is not None and number:
                pause()
                rows = self._unchanged(batch)
            with self.store.transaction():
                clocks: list[tuple[object, ...]] = []
                current: list[tuple[object, ...]] = []
                for row in rows:
                    self._remeasure(row, now, report, clocks, current)
                conn = self.store.conn
                conn.executemany(
                    "UPDATE clocks SET business_seconds = ?, calendar_seconds = ?, state = ?, "
                    "breached = ? WHERE conversation_id = ? AND seq = ?",
                    clocks,
                )
                conn.executemany(
                    "UPDATE conversations SET state = ?, clock_kind = ?, clock_started_at = ?, "
                    "waited_seconds = ?, target_seconds = ?, due_at = ?, evaluated_at = ? "
                    "WHERE id = ?",
                    current,
                )

    def _unchanged(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Of rows read before a pause, those whose conversation nobody changed since (the
        others are evaluated in full instead)."""
        ids = [row[0] for row in rows]
        changed = {
            cid
            for (cid,) in self.store.conn.execute(
                f"SELECT id FROM conversations WHERE id IN ({','.join('?' * len(ids))}) AND "
                "(evaluated_revision IS NULL OR evaluated_revision < revision)",
                ids,
            )
        }
        return [row for row in rows if row[0] not in changed]

    def _remeasure(
        self,
        row: tuple[Any, ...],
        now: datetime,
        report: EvaluationReport,
        clocks: list[tuple[object, ...]],
        current: list[tuple[object, ...]],
    ) -> None:
        cid, source, policy_name, kind, started_at, previous, seq, was_breached, paused = row
        policy = self.rules.policies.by_name(policy_name)
        if policy is None:  # the rules changed under us: redo this one in full next time
            self.store.conn.execute(
                "UPDATE conversations SET evaluated_revision = NULL WHERE id = ?", (cid,)
            )
            return
        if paused:  # pauses live in the messages: measure this one in full
            conversation = self.store.conversation(cid)
            if conversation is not None:
                self._reevaluate(conversation, self.store.messages(cid), now, report)
            return
        clock = Clock(kind=ClockKind(kind), started_at=from_epoch(started_at))
        verdict = evaluate_clock(clock, policy, self.rules.calendar_for(policy), now)
        report.remeasured += 1
        if seq is not None:
            breached = int(verdict.breached)
            if breached != was_breached:  # the totals count breaches: move this clock's count
                conn = self.store.conn
                old = totals.stored_clock(conn, cid, seq)
                if old is not None:
                    totals.adjust(conn, old, -1, self._bounds(old[1]))
                    new = (*old[:4], breached, verdict.business_seconds)
                    totals.adjust(conn, new, 1, self._bounds(old[1]))
            clocks.append(
                (
                    verdict.business_seconds,
                    verdict.calendar_seconds,
                    verdict.state.value,
                    breached,
                    cid,
                    seq,
                )
            )
        current.append(
            (
                verdict.state.value,
                verdict.clock.kind.value,
                to_epoch(verdict.clock.started_at),
                verdict.business_seconds,
                verdict.target,
                to_epoch(verdict.due_at),
                to_epoch(now),
                cid,
            )
        )
        if verdict.state.value != previous:
            report.transitions.append(
                Transition(
                    conversation_id=cid,
                    source=source,
                    policy=policy.name,
                    seq=seq or 0,
                    verdict=verdict,
                    previous=previous,
                )
            )

    def _write_clock(
        self, conversation: StoredConversation, policy: Policy, seq: int, clock: ClockVerdict
    ) -> None:
        c = clock.clock
        conn = self.store.conn
        old = totals.stored_clock(conn, conversation.id, seq)
        if old is not None:
            totals.adjust(conn, old, -1, self._bounds(old[1]))
        conn.execute(
            "INSERT OR REPLACE INTO clocks (conversation_id, seq, source, policy, kind, "
            "started_at, stopped_at, stop_reason, responder, target_seconds, business_seconds, "
            "calendar_seconds, state, breached, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation.id,
                seq,
                conversation.source,
                policy.name,
                c.kind.value,
                to_epoch(c.started_at),
                to_epoch(c.stopped_at) if c.stopped_at else None,
                c.stop_reason.value if c.stop_reason else None,
                c.responder,
                clock.target,
                clock.business_seconds,
                clock.calendar_seconds,
                clock.state.value,
                int(clock.breached),
                to_epoch(clock.due_at),
            ),
        )
        new = totals.stored_clock(conn, conversation.id, seq)
        assert new is not None
        totals.adjust(conn, new, 1, self._bounds(policy.name))

    def _write_current_from_history(self, cid: int, seq: int, now: datetime) -> None:
        self.store.conn.execute(
            "UPDATE conversations SET (state, clock_kind, clock_started_at, waited_seconds, "
            "target_seconds, due_at, evaluated_at) = (SELECT state, kind, started_at, "
            "business_seconds, target_seconds, due_at, ? FROM clocks WHERE conversation_id = ? "
            "AND seq = ?) WHERE id = ?",
            (to_epoch(now), cid, seq, cid),
        )

    def _write_current(self, cid: int, clock: ClockVerdict | None, now: datetime) -> None:
        if clock is None:
            values: tuple[object, ...] = (None, None, None, None, None, None)
        else:
            values = (
                clock.state.value,
                clock.clock.kind.value,
                to_epoch(clock.clock.started_at),
                clock.business_seconds,
                clock.target,
                to_epoch(clock.due_at),
            )
        self.store.conn.execute(
            "UPDATE conversations SET state = ?, clock_kind = ?, clock_started_at = ?, "
            "waited_seconds = ?, target_seconds = ?, due_at = ?, evaluated_at = ? WHERE id = ?",
            (*values, to_epoch(now), cid),
        )

    # --- recompute ---------------------------------------------------------------------------

    def recompute(
        self, now: datetime, progress: Callable[[int, int], None] | None = None
    ) -> EvaluationReport:
        """Match every conversation again under the current rules and rebuild its clocks.

        This rewrites history on purpose: totals, response times and breaches change to what
        the current rules say. Alerts already sent are not sent again.
        """
        ids = [
            cid
            for (cid,) in self.store.conn.execute(
                "SELECT id FROM conversations WHERE pruned_at IS NULL ORDER BY id"
            )
        ]
        report = EvaluationReport()
        self._prepare_totals()
        self._absorb_merges()
        done = 0
        for chunk in _chunks(ids):
            with self.store.transaction() as conn:
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    f"UPDATE conversations SET policy = NULL, policy_reason = NULL, "
                    f"evaluated_at = NULL, evaluated_revision = NULL WHERE id IN ({marks})",
                    chunk,
                )
                for cid in chunk:
                    self._forget_clocks(cid)
                messages = self.store.messages_by_conversation(chunk)
                actions = actions_by_conversation(self.store, chunk)
                for cid in chunk:
                    conversation = self.store.conversation(cid)
                    if conversation is not None:
                        self._reevaluate(conversation, messages[cid], now, report, actions[cid])
            done += len(chunk)
            if progress is not None:
                progress(done, len(ids))
        return report

    # --- read-only views ---------------------------------------------------------------------

    def waiting(self, now: datetime, source: str | None = None) -> list[WaitingConversation]:
        """Conversations awaiting a reply, measured at ``now``, soonest breach first.

        Read-only: conversations changed since the daemon's last evaluation are evaluated
        here in memory, so the answer is right even when the daemon is behind or stopped.
        The others are measured from their stored running clock, as the daemon measures them
        between changes, unless their messages carry ticket statuses (pauses live there) or
        people acted on them (dismissals and snoozes live in the actions): those are
        evaluated in full too.
        """
        rows: list[WaitingConversation] = []
        policies = {policy.name: policy for policy in self.rules.policies.all}
        calendars: dict[str, BusinessCalendar] = {}
        acted = conversations_with_actions(self.store)
        in_full = unevaluated_waiting_candidates(self.store, source)
        for conversation, kind, started_at, customers, has_statuses in stored_running_clocks(
            self.store, source
        ):
            policy = policies.get(conversation.policy or "")
            if policy is None or has_statuses or conversation.id in acted:
                in_full.append(conversation.id)
                continue
            calendar = calendars.get(policy.name)
            if calendar is None:
                calendar = calendars[policy.name] = self.rules.calendar_for(policy)
            clock = running_clock(_CLOCK_KINDS[kind], from_epoch(started_at), customers)
            measured = evaluate_clock(clock, policy, calendar, now)
            if measured.awaiting:  # running and never paused: always awaiting a reply
                rows.append(
                    WaitingConversation(conversation=conversation, policy=policy, verdict=measured)
                )
        rows.extend(self._waiting_in_full(sorted(set(in_full)), now))
        rows.sort(key=lambda row: (row.verdict.remaining, row.conversation.id))
        return rows

    def _waiting_in_full(self, ids: list[int], now: datetime) -> Iterator[WaitingConversation]:
        """Those of ``ids`` awaiting a reply, each evaluated in full from its messages and
        actions, with the snooze holding its alerts now."""
        for conversation, messages, actions in self._in_full(ids):
            policy, verdicts = self._measure(conversation, messages, actions, now)
            verdict = verdicts.awaiting
            if verdict is not None:
                snooze = latest_snooze(actions, _clock_key(conversation.id, verdict))
                yield WaitingConversation(
                    conversation=conversation,
                    policy=policy,
                    verdict=verdict,
                    snoozed=snooze if snooze and snooze.until and snooze.until > now else None,
                )

    def listing(self, now: datetime, source: str | None = None) -> list[ListedConversation]:
        """``waiting``, reduced to what `replyclock status` shows: the same conversations in
        the same order with the same figures, made without the full values.

        A stored running clock that never paused and nobody acted on is measured here in
        epoch seconds on its calendar, with the state rules of ``monitor.sla.evaluate``;
        every other conversation is taken from ``waiting``'s full evaluation. The due time
        is worked out on the calendar once per distinct figure: clocks without pauses that
        have waited the same business time under one policy and target started at the same
        count of business time, so they fall due at the same instant.
        """
        rows: list[ListedConversation] = []
        append = rows.append
        measures = {
            policy.name: {kind.value: _Measure(self, policy, kind) for kind in ClockKind}
            for policy in self.rules.policies.all
        }
        acted = conversations_with_actions(self.store)
        in_full = unevaluated_waiting_candidates(self.store, source)
        now_second = to_epoch(now)
        breached, warning, ok = ClockState.BREACHED, ClockState.WARNING, ClockState.OK
        make = tuple.__new__
        for cid, src, name, customer, subject, kind, started, statuses in running_clock_rows(
            self.store, source
        ):
            by_kind = measures.get(name)  # type: ignore[arg-type]  # None: no such policy
            if by_kind is None or statuses or cid in acted:
                in_full.append(cid)
                continue
            m = by_kind[kind]
            waited = m.business_seconds_in(started, now_second)
            target = m.target
            due = m.dues.get(waited) if started <= now_second else None
            if due is None:
                due = m.due(started, waited, now_second)
            append(
                make(  # the tuple made directly: the listing makes one per conversation
                    ListedConversation,
                    (
                        target - waited,
                        cid,
                        src,
                        m.policy,
                        customer,
                        subject,
                        m.kind,
                        breached if waited > target else warning if waited >= m.threshold else ok,
                        started,
                        waited,
                        now_second - started if now_second > started else 0,
                        target,
                        due,
                        None,
                    ),
                )
            )
        for row in self._waiting_in_full(sorted(set(in_full)), now):
            v = row.verdict
            conversation = row.conversation
            same = measures.get(row.policy.name, {}).get(v.clock.kind.value)
            started = to_epoch(v.clock.started_at)
            if (
                same is None
                or v.clock.pauses
                or not v.target
                or v.target != same.target
                or started > now_second
            ):
                due = to_epoch(v.due_at)
            else:
                due = same.dues.get(v.business_seconds)
                if due is None:
                    due = same.dues[v.business_seconds] = to_epoch(v.due_at)
            append(
                ListedConversation(
                    v.remaining,
                    conversation.id,
                    conversation.source,
                    row.policy,
                    conversation.customer,
                    conversation.subject,
                    v.clock.kind,
                    v.state,
                    started,
                    v.business_seconds,
                    v.calendar_seconds,
                    v.target,
                    due,
                    row.snoozed.until if row.snoozed is not None else None,
                )
            )
        rows.sort()
        return rows

    def _waiting_candidates(
        self, source: str | None
    ) -> Iterator[tuple[StoredConversation, list[StoredMessage], list[StoredAction]]]:
        return self._in_full(candidate_waiting_conversations(self.store, source))

    def _in_full(
        self, ids: list[int]
    ) -> Iterator[tuple[StoredConversation, list[StoredMessage], list[StoredAction]]]:
        """Each conversation of ``ids`` with its messages and actions, read in chunks."""
        for chunk in _chunks(ids):
            conversations = conversations_by_id(self.store, chunk)
            messages = self.store.messages_by_conversation(chunk)
            actions = actions_by_conversation(self.store, chunk)
            for cid in chunk:
                conversation = conversations.get(cid)
                if conversation is not None:
                    yield conversation, messages[cid], actions[cid]

    def _measure(
        self,
        conversation: StoredConversation,
        messages: list[StoredMessage],
        actions: list[StoredAction],
        now: datetime,
    ) -> tuple[Policy, ConversationVerdict]:
        """A conversation's clocks at ``now``, in memory, with the dismissals recorded."""
        policy, _ = self.choose_policy(conversation, messages)
        verdict = evaluate(
            clock_messages(messages),
            policy,
            self.rules.calendar_for(policy),
            now,
            dismissals=dismissal_instants(actions),
        )
        return policy, verdict

    # --- people's decisions ------------------------------------------------------------------

    def act(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        """Record a dismissal of the conversation's running clock, or a snooze of its alerts.

        The clock is measured here from what the store holds now (with the dismissals already
        recorded), so a request about a clock that has stopped since its alert was sent (an
        answer, an earlier dismissal) records nothing and says why. Works as the writer and
        ``beside_writer``: the only write is the new action row.
        """
        conversation = self.store.conversation(request.conversation_id)
        if conversation is None:
            return ActionOutcome(action=None, message="no such conversation in the store")
        messages = self.store.messages(conversation.id)
        actions = actions_by_conversation(self.store, [conversation.id])[conversation.id]
        policy, verdicts = self._measure(conversation, messages, actions, now)
        current = verdicts.current
        key = _clock_key(conversation.id, current) if current is not None else None
        if current is None or (request.clock_key is not None and request.clock_key != key):
            why = self._why_over(conversation.id, verdicts, actions, request.clock_key)
            return ActionOutcome(action=None, message=why)
        assert key is not None
        action = record_action(
            self.store,
            conversation_id=conversation.id,
            thread_key=key,
            kind=request.kind,
            at=now,
            actor=request.actor,
            actor_name=request.actor_name,
            via=request.via,
            reason=request.reason,
            until=request.until if request.kind == "snooze" else None,
        )
        zone = self.rules.calendar_for(policy).zone
        kind = current.clock.kind.value.replace("_", "-")
        since = current.clock.started_at.astimezone(zone).strftime("%a %d %b %H:%M %Z")
        waited = format_duration(current.business_seconds, days=False)
        clock = f"its {kind} clock (waiting since {since}, {waited} in business time)"
        if request.kind == "dismiss":
            message = f"dismissed {clock}: no reply needed"
        else:
            assert action.until is not None
            until = action.until.astimezone(zone).strftime("%a %d %b %H:%M %Z")
            message = f"snoozed the alerts of {clock} until {until}; the clock keeps running"
        log.info(
            "action recorded",
            extra=fields(
                action=request.kind, conversation=conversation.id, via=request.via, id=action.id
            ),
        )
        return ActionOutcome(action=action, message=message, verdict=current)

    def _why_over(
        self, cid: int, verdicts: ConversationVerdict, actions: list[StoredAction], key: str | None
    ) -> str:
        """Why there is nothing to act on: the clock asked about (or the last one) has ended."""
        if not verdicts.clocks:
            return "no customer is waiting: nothing to act on"
        asked = [c for c in verdicts.clocks if _clock_key(cid, c) == key]
        clock = asked[0] if asked else verdicts.clocks[-1]
        if (key is not None and not asked) or clock.running:
            return "that alert's wait is over: the conversation has changed since it was sent"
        assert clock.clock.stopped_at is not None
        zone = self.rules.calendar_for(verdicts.policy).zone
        when = clock.clock.stopped_at.astimezone(zone).strftime("%a %d %b %H:%M %Z")
        if clock.state is ClockState.DISMISSED:
            by = [a.who for a in actions if a.kind == "dismiss" and a.at == clock.clock.stopped_at]
            return f"the wait is over: already dismissed by {by[0] if by else 'someone'}, {when}"
        if clock.state is ClockState.ANSWERED:
            return f"the wait is over: the customer was answered, {when}"
        return f"the wait is over: the clock stopped ({clock.state.value}), {when}"


def _clock_key(conversation_id: int, verdict: ClockVerdict) -> str:
    """The clock's thread key: what its alerts, their buttons and its actions name it by."""
    return thread_key(conversation_id, verdict.clock.kind.value, to_epoch(verdict.clock.started_at))


class _Measure:
    """What the listing measures running clocks of one policy and kind with: the calendar,
    the target and the warning threshold, and the due instants found so far, by business
    seconds waited (a clock without pauses that waited as long is due at the same instant)."""

    __slots__ = (
        "business_seconds_in",
        "calendar",
        "dues",
        "kind",
        "policy",
        "target",
        "threshold",
    )

    def __init__(self, engine: Engine, policy: Policy, kind: ClockKind) -> None:
        self.policy = policy
        self.kind = kind
        self.calendar = engine.rules.calendar_for(policy)
        self.business_seconds_in = self.calendar.business_seconds_in
        self.target = policy.target(kind.value)
        self.threshold = policy.warning.threshold(self.target)
        self.dues: dict[int, int] = {}

    def due(self, started: int, waited: int, now: int) -> int:
        """The due instant of a clock started at ``started`` that has waited ``waited`` by
        ``now`` (epoch seconds)."""
        due = to_epoch(self.calendar.due_instant(from_epoch(started), self.target))
        # Not kept for a zero target (due at the start itself, whatever was counted) nor for
        # a start after now (nothing counted yet, wherever it starts).
        if self.target and started <= now:
            self.dues[waited] = due
        return due


def _with_policy(
    conversation: StoredConversation, policy: str | None, reason: str | None
) -> StoredConversation:
    return replace(conversation, policy=policy, policy_reason=reason)


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
