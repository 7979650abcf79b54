"""Reply clocks: when a customer starts waiting, and what ends the wait.

The rules, as a support lead would state them:

- A customer message starts a clock if none is running. The first clock of a conversation is
  the first-response clock; a clock started after the team has replied is a next-response clock
  (Zendesk's rule: it starts at the oldest customer message not yet answered).
- A customer follow-up while a clock runs does not restart it.
- A customer message that is only a closing phrase ("Thanks, that fixed it!", "Danke!"),
  arriving after the team has replied and while no clock runs, starts no clock.
- A team reply stops the running clock. A reply while nothing is awaited starts nothing.
- When every customer message of a running clock has left the watched folders (archived or
  deleted without a reply), the clock stops as "closed without reply": counted, not a breach.
- Ignored messages (auto-replies, bounces, lists) do nothing.
- Helpdesk tickets also report status changes. A status the policy lists in ``stop_on``
  (by default solved and closed) stops the running clock as "solved": counted, not a breach
  unless the target had passed. A status in ``pause_on`` (none by default; typically pending
  and on_hold, "waiting on the customer") pauses it: business time does not count until the
  ticket leaves that status, a customer message arrives, or a reply stops the clock. Mail has
  no statuses, so mail clocks never pause.
- A person may dismiss a clock ("no reply needed"). A dismissal is an instant, handed in as
  data: it stops the clock running at that instant as "dismissed" (neither a reply nor a
  breach; a target already passed stays passed). A message of the same second counts as seen
  before the dismissal. A customer message after it starts a new clock as usual; a dismissal
  while nothing runs does nothing.

A conversation the team started (an outbound message first) has no first-response clock: the
customer's answer starts a next-response clock, because the team has already spoken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.model import Direction


class ClockKind(StrEnum):
    """Which reply target a clock measures against."""

    FIRST = "first_response"
    NEXT = "next_response"


class StopReason(StrEnum):
    """Why a clock stopped."""

    REPLY = "reply"
    CLOSED = "closed_without_reply"
    SOLVED = "solved"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRules:
    """Which ticket statuses pause a running clock, and which stop it."""

    pause_on: frozenset[str] = frozenset()
    stop_on: frozenset[str] = frozenset({"solved", "closed"})


NO_STATUS_RULES = StatusRules()


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockMessage:
    """The part of a message the clock needs."""

    timestamp: datetime
    direction: Direction
    removed_at: datetime | None = None
    author: str = ""
    status: str | None = None  # a ticket's new status (helpdesk sources), else None
    closing: bool = False  # only a closing phrase ("Thanks!"): starts no next-response clock


Pause = tuple[datetime, datetime | None]  # from, until (None: still paused)


@dataclass(frozen=True, slots=True, kw_only=True)
class Clock:
    """One wait of the customer for the team, running or stopped."""

    kind: ClockKind
    started_at: datetime
    stopped_at: datetime | None = None
    stop_reason: StopReason | None = None
    responder: str = ""  # who sent the reply that stopped it
    customer_messages: int = 1  # the message that started it plus follow-ups
    pauses: tuple[Pause, ...] = ()  # while the ticket waited on the customer

    @property
    def running(self) -> bool:
        """Whether the clock has not stopped (it may be paused)."""
        return self.stopped_at is None

    @property
    def paused(self) -> bool:
        """Whether the running clock is paused right now (the ticket waits on the customer)."""
        return self.running and bool(self.pauses) and self.pauses[-1][1] is None


_ORDER = {Direction.INBOUND: 0, Direction.OUTBOUND: 1, Direction.IGNORED: 2}
_INBOUND, _OUTBOUND = Direction.INBOUND, Direction.OUTBOUND


# Evaluation makes a Clock for every wait of every conversation it measures. The frozen
# dataclass's __init__ sets each field through object.__setattr__, which costs several times a
# plain assignment; ``_make_clock`` assigns the same slots on a twin class of the same layout
# and then gives the object its real class, so the result is the same immutable, equal and
# hashable value, made in a quarter of the time.
class _ClockParts:
    """A Clock being made: the same slots, in the same order, plainly assignable."""

    __slots__ = (
        "customer_messages",
        "kind",
        "pauses",
        "responder",
        "started_at",
        "stop_reason",
        "stopped_at",
    )

    def __init__(  # noqa: PLR0917 - one argument per field of Clock, positional for speed
        self,
        kind: ClockKind,
        started_at: datetime,
        stopped_at: datetime | None,
        stop_reason: StopReason | None,
        responder: str,
        customer_messages: int,
        pauses: tuple[Pause, ...],
    ) -> None:
        self.kind = kind
        self.started_at = started_at
        self.stopped_at = stopped_at
        self.stop_reason = stop_reason
        self.responder = responder
        self.customer_messages = customer_messages
        self.pauses = pauses


def _make_clock(  # noqa: PLR0917 - one argument per field of Clock, positional for speed
    kind: ClockKind,
    started_at: datetime,
    stopped_at: datetime | None,
    stop_reason: StopReason | None,
    responder: str,
    customer_messages: int,
    pauses: tuple[Pause, ...],
) -> Clock:
    """The same value as ``Clock(kind=..., ...)``, without the frozen __init__'s cost."""
    clock: Clock = _ClockParts(  # type: ignore[assignment]
        kind, started_at, stopped_at, stop_reason, responder, customer_messages, pauses
    )
    clock.__class__ = Clock
    return clock


def running_clock(kind: ClockKind, started_at: datetime, customer_messages: int = 1) -> Clock:
    """A running, never paused clock: what a stored clock is measured again from."""
    return _make_clock(kind, started_at, None, None, "", customer_messages, ())


def _all_removed_by(inbound: list[ClockMessage], instant: datetime | None) -> datetime | None:
    """When the last of ``inbound`` left the folders, if all had left by ``instant``."""
    removed = [m.removed_at for m in inbound]
    if not removed or any(r is None for r in removed):
        return None
    last = max(r for r in removed if r is not None)
    return last if instant is None or last <= instant else None


def segment_clocks(
    messages: Sequence[ClockMessage],
    rules: StatusRules = NO_STATUS_RULES,
    dismissals: Sequence[datetime] = (),
) -> list[Clock]:
    """Split a conversation's messages into its reply clocks, oldest first; each instant in
    ``dismissals`` stops the clock running then as dismissed."""
    if not dismissals:
        plain = _segment_plain(messages)
        if plain is not None:
            return plain
    return _segment_by_rules(messages, rules, dismissals)


def segment_plain(
    messages: Sequence[ClockMessage], rules: StatusRules = NO_STATUS_RULES
) -> list[Clock]:
    """``segment_clocks`` without dismissals, the usual case, with one call less."""
    plain = _segment_plain(messages)
    return plain if plain is not None else _segment_by_rules(messages, rules, ())


def _segment_by_rules(  # noqa: PLR0915 - one pass over the messages, each rule a few lines
    messages: Sequence[ClockMessage],
    rules: StatusRules,
    dismissals: Sequence[datetime],
) -> list[Clock]:
    """``segment_clocks`` with every rule: removals, statuses, dismissals."""
    ordered = sorted(messages, key=_in_time_order) if len(messages) > 1 else messages
    pending = sorted(dismissals, reverse=True)  # the next dismissal is pending[-1]
    clocks: list[Clock] = []
    team_has_spoken = False
    waiting: list[ClockMessage] = []  # customer messages of the running clock
    pauses: list[Pause] = []
    kind = ClockKind.FIRST

    def stop(at: datetime, reason: StopReason, responder: str = "") -> None:
        nonlocal waiting, pauses
        if pauses and pauses[-1][1] is None:
            pauses[-1] = (pauses[-1][0], at)
        clocks.append(
            _stopped(kind, waiting, at=at, reason=reason, responder=responder, pauses=tuple(pauses))
        )
        waiting, pauses = [], []

    def close_if_gone(instant: datetime | None) -> None:
        """End the wait as closed if all its mail had left the folders by ``instant``."""
        closed_at = _all_removed_by(waiting, instant) if waiting else None
        if closed_at is not None:
            stop(closed_at, StopReason.CLOSED)

    def dismiss(at: datetime) -> None:
        close_if_gone(at)  # mail that left the folders first closed the wait already
        if waiting:
            stop(at, StopReason.DISMISSED)

    for message in ordered:
        while pending and pending[-1] < message.timestamp:
            dismiss(pending.pop())
        close_if_gone(message.timestamp)
        paused = bool(pauses) and pauses[-1][1] is None
        if message.direction is Direction.INBOUND:
            if not waiting and team_has_spoken and message.closing:
                continue  # "Thanks, that fixed it!" after our reply: nobody owes an answer
            if not waiting:
                kind = ClockKind.NEXT if team_has_spoken else ClockKind.FIRST
            elif paused:  # the customer wrote back: the wait on the team resumes
                pauses[-1] = (pauses[-1][0], message.timestamp)
            waiting.append(message)
        elif message.direction is Direction.OUTBOUND:
            team_has_spoken = True
            if waiting:
                stop(message.timestamp, StopReason.REPLY, message.author)
        elif message.status is not None and waiting:
            if message.status in rules.stop_on:
                stop(message.timestamp, StopReason.SOLVED)
            elif message.status in rules.pause_on:
                if not paused:
                    pauses.append((message.timestamp, None))
            elif paused:
                pauses[-1] = (pauses[-1][0], message.timestamp)
    for at in reversed(pending):
        dismiss(at)
    close_if_gone(None)
    if waiting:
        clocks.append(
            _make_clock(kind, waiting[0].timestamp, None, None, "", len(waiting), tuple(pauses))
        )
    return clocks


def _segment_plain(
    messages: Sequence[ClockMessage], *, ordered: bool = False
) -> list[Clock] | None:
    """The clocks of the usual conversation, in one cheap pass: no customer message removed
    from the folders, no ticket status, no dismissal.

    Returns None as soon as a message needs the full rules (a removal, a status); without them
    both give the same clocks, because nothing closes, pauses or dismisses a wait. Messages out
    of time order are put in order first, as the full rules do.
    """
    clocks: list[Clock] = []
    team_has_spoken = False
    started_at: datetime | None = None  # of the running clock
    count = 0  # its customer messages
    kind = ClockKind.FIRST
    previous: ClockMessage | None = None
    for message in messages:
        timestamp = message.timestamp
        direction = message.direction
        if (
            not ordered
            and previous is not None
            and timestamp <= previous.timestamp
            and _in_time_order(message) < _in_time_order(previous)
        ):
            return _segment_plain(sorted(messages, key=_in_time_order), ordered=True)
        previous = message
        if direction is _INBOUND:
            if message.removed_at is not None:
                return None
            if started_at is not None:
                count += 1
            elif team_has_spoken and message.closing:
                continue  # "Thanks, that fixed it!" after our reply: nobody owes an answer
            else:
                kind = ClockKind.NEXT if team_has_spoken else ClockKind.FIRST
                started_at, count = timestamp, 1
        elif direction is _OUTBOUND:
            team_has_spoken = True
            if started_at is not None:
                clocks.append(
                    _make_clock(
                        kind, started_at, timestamp, StopReason.REPLY, message.author, count, ()
                    )
                )
                started_at = None
        elif message.status is not None:
            return None
    if started_at is not None:
        clocks.append(_make_clock(kind, started_at, None, None, "", count, ()))
    return clocks


def _in_time_order(message: ClockMessage) -> tuple[datetime, int]:
    return message.timestamp, _ORDER[message.direction]


def _stopped(
    kind: ClockKind,
    waiting: list[ClockMessage],
    *,
    at: datetime,
    reason: StopReason,
    responder: str,
    pauses: tuple[Pause, ...],
) -> Clock:
    return _make_clock(kind, waiting[0].timestamp, at, reason, responder, len(waiting), pauses)
