"""Evaluation: a conversation's messages, its policy, its calendar and ``now`` -> its SLA state.

Pure: no I/O and no wall clock. The rules, in one place:

- Waited time is business time: the open seconds of the policy's calendar between the
  customer's first unanswered message and the reply (or ``now``).
- A running clock is ``ok`` until the waited time reaches the warning threshold, ``warning``
  from then until the target, and ``breached`` once the waited time exceeds the target. A reply
  at exactly the target is on time.
- The due time shown is the first instant at which the target is reached. When that falls at
  a closing time (due Friday 17:00), no business time passes until the next opening, so the
  breach itself happens only when counting resumes (Monday 09:00): a reply over the weekend is
  still on time.
- A clock stopped by a reply is ``answered`` and records whether it met its target; one closed
  without reply is ``closed``, and one stopped by a solved ticket ``solved``: neither is a
  breach unless the target had already passed.
- While a helpdesk ticket waits on the customer (a ``pause_on`` status), the clock is
  ``paused``: no business time counts and the customer is not awaiting a reply. Due times
  skip the pauses; for a paused clock they assume the wait resumes now.
- A clock a person dismissed ("no reply needed") is ``dismissed``: not answered, and not a
  breach unless the target had already passed when it was dismissed (a breach once counted
  stays counted). Dismissals later than ``now`` are not yet made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from monitor.model import require_utc
from monitor.sla.calendar import SUPPORTED_SECONDS, BusinessCalendar, epoch_second
from monitor.sla.clocks import (
    Clock,
    ClockKind,
    ClockMessage,
    StopReason,
    segment_clocks,
    segment_plain,
)
from monitor.sla.policy import Policy


class ClockState(StrEnum):
    """Where a clock stands: the three states of a waiting customer, and two of a stopped one."""

    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    ANSWERED = "answered"
    CLOSED = "closed"
    SOLVED = "solved"
    DISMISSED = "dismissed"
    PAUSED = "paused"


AWAITING_STATES = frozenset({ClockState.OK, ClockState.WARNING, ClockState.BREACHED})


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockVerdict:
    """One clock measured against its target."""

    clock: Clock
    target: int  # business seconds
    warning_threshold: int  # business seconds waited when the warning starts
    business_seconds: int  # waited until the stop, or until now for a running clock
    calendar_seconds: int
    state: ClockState
    breached: bool  # the waited time exceeded the target while the clock ran
    calendar: BusinessCalendar  # the instants below are worked out on demand: few need them
    evaluated_at: datetime

    @property
    def due_at(self) -> datetime:
        """The first instant at which the target is reached: the due time people read."""
        return self._reaching(self.target, first=True)

    @property
    def warning_at(self) -> datetime:
        """The first instant at which the warning threshold is reached."""
        return self._reaching(self.warning_threshold, first=True)

    @property
    def breach_after(self) -> datetime:
        """The last instant still within the target; any later reply is late."""
        return self._reaching(self.target, first=False)

    @property
    def awaiting(self) -> bool:
        """Whether the customer is waiting on the team now (running and not paused)."""
        return self.state in AWAITING_STATES

    def _reaching(self, seconds: int, *, first: bool) -> datetime:
        """When ``seconds`` of counted business time are reached, pauses skipped."""
        reach = self.calendar.due_instant if first else self.calendar.add_business_seconds
        if not self.clock.pauses:  # one stretch, from the start on
            return reach(self.clock.started_at, seconds)
        remaining = seconds
        for segment_start, segment_end in _counting_segments(self.clock, self.evaluated_at):
            if segment_end is None:
                return reach(segment_start, remaining)
            counted = self.calendar.business_seconds_between(segment_start, segment_end)
            # The first instant is reached inside this stretch even at its very end; the last
            # instant still within the target is where counting resumes after it.
            if counted > remaining or (first and counted == remaining):
                return reach(segment_start, remaining)
            remaining -= counted
        raise AssertionError("the last counting segment is open-ended")

    @property
    def running(self) -> bool:
        """Whether the customer is still waiting on this clock."""
        return self.clock.running

    @property
    def met_target(self) -> bool | None:
        """For a clock stopped by a reply: whether the reply came within the target."""
        if self.clock.stop_reason is StopReason.REPLY:
            return not self.breached
        return None

    @property
    def remaining(self) -> int:
        """Business seconds left before the target (negative once breached)."""
        return self.target - self.business_seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationVerdict:
    """A conversation's clocks under its policy, evaluated at one instant."""

    policy: Policy
    clocks: tuple[ClockVerdict, ...]

    @property
    def current(self) -> ClockVerdict | None:
        """The running clock, if any (paused or not)."""
        if self.clocks and self.clocks[-1].running:
            return self.clocks[-1]
        return None

    @property
    def awaiting(self) -> ClockVerdict | None:
        """The running clock when the customer awaits a reply (not paused)."""
        current = self.current
        return current if current is not None and current.awaiting else None


def _counting_segments(clock: Clock, now: datetime) -> list[tuple[datetime, datetime | None]]:
    """The stretches in which the clock counts, pauses cut out; the last one is open-ended
    (a paused clock is taken to resume ``now``)."""
    segments: list[tuple[datetime, datetime | None]] = []
    cursor = clock.started_at
    for paused_from, paused_until in clock.pauses:
        if paused_from > cursor:
            segments.append((cursor, paused_from))
        cursor = max(cursor, paused_until if paused_until is not None else max(now, cursor))
    segments.append((cursor, None))
    return segments


def _waited(clock: Clock, calendar: BusinessCalendar, end: datetime) -> int:
    """Business seconds counted from the start to ``end``, pauses left out."""
    if not clock.pauses:
        return calendar.business_seconds_between(clock.started_at, end)
    waited = 0
    cursor = clock.started_at
    for paused_from, paused_until in clock.pauses:
        if paused_from >= end:
            break
        waited += calendar.business_seconds_between(cursor, min(paused_from, end))
        cursor = max(cursor, paused_until if paused_until is not None else end)
    return waited + calendar.business_seconds_between(cursor, end)


_STOPPED_STATES = {
    StopReason.REPLY: ClockState.ANSWERED,
    StopReason.CLOSED: ClockState.CLOSED,
    StopReason.SOLVED: ClockState.SOLVED,
    StopReason.DISMISSED: ClockState.DISMISSED,
}


# Reply targets and warning thresholds of a policy, worked out once per policy object:
# (first-response target, its threshold, next-response target, its threshold). The policy is
# kept in its entry, so its id cannot be reused by another object while the entry exists.
_TARGETS: dict[int, tuple[Policy, tuple[int, int, int, int]]] = {}
_TARGETS_KEPT = 256


def _targets(policy: Policy) -> tuple[int, int, int, int]:
    cached = _TARGETS.get(id(policy))
    if cached is not None and cached[0] is policy:
        return cached[1]
    first = policy.target(ClockKind.FIRST.value)
    following = policy.target(ClockKind.NEXT.value)
    values = (
        first,
        policy.warning.threshold(first),
        following,
        policy.warning.threshold(following),
    )
    if len(_TARGETS) >= _TARGETS_KEPT:  # rules reloaded many times: start again
        _TARGETS.clear()
    _TARGETS[id(policy)] = (policy, values)
    return values


# Evaluation makes one verdict per clock: made as ``monitor.sla.clocks._make_clock`` makes a
# Clock, on a twin class of the same slots, then given its real class.
class _VerdictParts:
    """A ClockVerdict being made: the same slots, in the same order, plainly assignable."""

    __slots__ = (
        "breached",
        "business_seconds",
        "calendar",
        "calendar_seconds",
        "clock",
        "evaluated_at",
        "state",
        "target",
        "warning_threshold",
    )

    def __init__(  # noqa: PLR0917 - one argument per field, positional for speed
        self,
        clock: Clock,
        target: int,
        warning_threshold: int,
        business_seconds: int,
        calendar_seconds: int,
        state: ClockState,
        breached: bool,
        calendar: BusinessCalendar,
        evaluated_at: datetime,
    ) -> None:
        self.clock = clock
        self.target = target
        self.warning_threshold = warning_threshold
        self.business_seconds = business_seconds
        self.calendar_seconds = calendar_seconds
        self.state = state
        self.breached = breached
        self.calendar = calendar
        self.evaluated_at = evaluated_at


class _ConversationParts:
    """A ConversationVerdict being made."""

    __slots__ = ("clocks", "policy")

    def __init__(self, policy: Policy, clocks: tuple[ClockVerdict, ...]) -> None:
        self.policy = policy
        self.clocks = clocks


# The last instant evaluated and its epoch second: a pass over many conversations hands every
# one the same ``now``, converted once. One tuple, replaced whole, so threads may share it.
_LAST_NOW: tuple[datetime, int] | None = None


def _now_second(now: datetime) -> int:
    global _LAST_NOW  # noqa: PLW0603 - a one-entry cache of a pure conversion
    last = _LAST_NOW
    if last is not None and last[0] is now:
        return last[1]
    second = epoch_second("end", now)
    _LAST_NOW = (now, second)
    return second


def evaluate_clock(
    clock: Clock, policy: Policy, calendar: BusinessCalendar, now: datetime
) -> ClockVerdict:
    """Measure one clock against its policy's target for its kind."""
    if now.tzinfo is not UTC:  # naive or another zone: checked and converted on the way
        return _measured(clock, _targets(policy), calendar, now, None)
    return _measured(clock, _targets(policy), calendar, now, _now_second(now))


def _measured(
    clock: Clock,
    targets: tuple[int, int, int, int],
    calendar: BusinessCalendar,
    now: datetime,
    now_second: int | None,
) -> ClockVerdict:
    """``evaluate_clock`` with the policy's targets and, when known, ``now`` as an epoch second."""
    if clock.kind is ClockKind.NEXT:
        target, threshold = targets[2], targets[3]
    else:
        target, threshold = targets[0], targets[1]
    started_at = clock.started_at
    stopped_at = clock.stopped_at
    end = now if stopped_at is None else stopped_at
    end = max(end, started_at)
    pauses = clock.pauses
    if pauses:
        waited = _waited(clock, calendar, end)
        calendar_seconds = int((end - started_at).total_seconds())
    else:
        # Stored instants are whole UTC seconds: converted here without a call, checked as
        # the calendar checks them.
        if type(started_at) is datetime and started_at.tzinfo is UTC and not started_at.microsecond:
            first = int(started_at.timestamp())
            if first not in SUPPORTED_SECONDS:
                first = epoch_second("start", started_at)  # raises, naming the instant
            # From a whole second the floored difference is the truncated one.
            last = now_second if end is now and now_second is not None else epoch_second("end", end)
            calendar_seconds = last - first
        else:
            first = epoch_second("start", started_at)
            last = now_second if end is now and now_second is not None else epoch_second("end", end)
            calendar_seconds = int((end - started_at).total_seconds())
        waited = calendar.business_seconds_in(first, last)
    breached = waited > target
    if clock.stop_reason is not None:
        state = _STOPPED_STATES[clock.stop_reason]
    elif stopped_at is None and pauses and pauses[-1][1] is None:
        state = ClockState.PAUSED
    elif breached:
        state = ClockState.BREACHED
    elif waited >= threshold:
        state = ClockState.WARNING
    else:
        state = ClockState.OK
    verdict: ClockVerdict = _VerdictParts(  # type: ignore[assignment]
        clock, target, threshold, waited, calendar_seconds, state, breached, calendar, now
    )
    verdict.__class__ = ClockVerdict
    return verdict


def evaluate(
    messages: Sequence[ClockMessage],
    policy: Policy,
    calendar: BusinessCalendar,
    now: datetime,
    *,
    dismissals: Sequence[datetime] = (),
) -> ConversationVerdict:
    """Cut a conversation into clocks and measure each against the policy at ``now``;
    ``dismissals`` are the instants people dismissed the running clock ("no reply needed")."""
    if now.tzinfo is not UTC:
        now = require_utc("now", now)
    made: Sequence[datetime] = ()
    if dismissals:
        made = [at for at in (require_utc("dismissal", at) for at in dismissals) if at <= now]
    clocks = (
        segment_clocks(messages, policy.status_rules, made)
        if made
        else segment_plain(messages, policy.status_rules)
    )
    measured: tuple[ClockVerdict, ...] = ()
    if clocks:
        targets = _targets(policy)
        now_second = _now_second(now)
        measured = tuple([_measured(clock, targets, calendar, now, now_second) for clock in clocks])
    verdict: ConversationVerdict = _ConversationParts(policy, measured)  # type: ignore[assignment]
    verdict.__class__ = ConversationVerdict
    return verdict
