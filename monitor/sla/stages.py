"""Alert stages: when a waiting customer deserves a warning, a breach alert, an escalation.

Pure decisions on business time waited, so nothing fires while the calendar is closed (no
escalation on a Saturday for a team that works Monday to Friday). Each stage fires once per
clock; when several become due at once (the daemon was down, or a message arrived already
late) the ones a later stage makes moot are recorded as superseded and the rest go in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from monitor.sla.policy import Policy


class StageKind(StrEnum):
    """What an alert says."""

    WARNING = "warning"
    BREACH = "breach"
    ESCALATION = "escalation"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertStage:
    """One stage of a clock's alerts, and the business seconds waited at which it is due."""

    kind: StageKind
    threshold: int
    step: int = 0  # escalation step, from 1
    mention: tuple[str, ...] = ()
    channel: str | None = None  # an escalation to another channel

    @property
    def key(self) -> str:
        """Stable name of the stage within a clock: warning, breach, escalation-2."""
        return f"{self.kind.value}-{self.step}" if self.step else self.kind.value


def stages_for(policy: Policy, target: int, warning_threshold: int) -> list[AlertStage]:
    """A clock's stages in firing order: warning, breach, then each escalation step."""
    stages = []
    if warning_threshold < target:
        stages.append(AlertStage(kind=StageKind.WARNING, threshold=warning_threshold))
    stages.append(AlertStage(kind=StageKind.BREACH, threshold=target + 1))
    for number, step in enumerate(sorted(policy.escalation, key=lambda s: s.after), 1):
        stages.append(
            AlertStage(
                kind=StageKind.ESCALATION,
                threshold=target + 1 + step.after,
                step=number,
                mention=step.mention,
                channel=step.channel,
            )
        )
    return stages


def stage_rank(key: str) -> int:
    """Where a stage stands in its thread: warning, breach, escalation 1, 2, ..., snoozed,
    answered."""
    if key == "breach":
        return 1
    step = key.removeprefix("escalation-")
    if step != key and step.isdigit():
        return 1 + int(step)
    if key == "answered":
        return 1_000_000  # the edit of the first alert comes after every stage
    if key == "snoozed":
        return 999_999  # so does a snooze's note, but before the wait is over
    return 0  # the warning, and messages outside a thread (the digest)


def makes_moot(later: str, earlier: str) -> bool:
    """Whether stage ``later`` of a clock makes its ``earlier`` stage not worth sending.

    A warning ("due in 5m") is untrue once the breach or an escalation is due, and an
    escalation only repeats a later one with less time waited. A breach is never moot: it
    announces the missed target (with the policy's mentions), and an escalation's "still
    waiting" follows it up, so a thread never opens on an escalation.
    """
    if earlier == "warning":
        return later == "breach" or later.startswith("escalation-")
    return (
        earlier.startswith("escalation-")
        and later.startswith("escalation-")
        and stage_rank(later) > stage_rank(earlier)
    )


@dataclass(frozen=True, slots=True)
class StagePlan:
    """What to do now for a clock: the stages to send, in order, and those made moot."""

    send: tuple[AlertStage, ...] = ()
    superseded: tuple[AlertStage, ...] = ()


def plan_stages(waited: int, target: int, policy: Policy, already: Iterable[str]) -> StagePlan:
    """The stages to send for a clock waiting ``waited`` business seconds against ``target``,
    given the stage keys already recorded for it.

    When several are due at once (the daemon was down, or the message arrived already late),
    those a later due stage makes moot (``makes_moot``) are superseded; the rest go in order:
    the breach, then the highest escalation. Only stages bound for the same channel make each
    other moot: an escalation to another channel reaches other people.
    """
    done = set(already)
    due = [
        stage
        for stage in stages_for(policy, target, policy.warning.threshold(target))
        if stage.threshold <= waited and stage.key not in done
    ]
    moot = tuple(
        stage
        for stage in due
        if any(later.channel == stage.channel and makes_moot(later.key, stage.key) for later in due)
    )
    return StagePlan(tuple(stage for stage in due if stage not in moot), moot)


def next_threshold(target: int, policy: Policy, done: Iterable[str]) -> int | None:
    """The business seconds waited at which the next stage not in ``done`` falls due, or
    None when every stage is done: until a clock has waited that long, it needs no look."""
    finished = set(done)
    ahead = [
        stage.threshold
        for stage in stages_for(policy, target, policy.warning.threshold(target))
        if stage.key not in finished
    ]
    return min(ahead) if ahead else None


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """``"20:00-08:00"`` -> (20:00, 08:00); the window may run past midnight."""
    try:
        start_text, end_text = text.split("-", 1)
        return time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError as exc:
        raise ValueError(f'quiet hours must look like "20:00-08:00", got: {text!r}') from exc


def quiet_until(instant: datetime, window: tuple[time, time], zone: ZoneInfo) -> datetime | None:
    """When the quiet window containing ``instant`` ends, or None outside quiet hours."""
    start, end = window
    local = instant.astimezone(zone)
    clock = local.timetz().replace(tzinfo=None)
    if start == end:
        return None
    overnight = end < start
    inside = (start <= clock or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date()
    if overnight and clock >= start:
        day = day + timedelta(days=1)
    ends = datetime.combine(day, end, tzinfo=zone)
    return ends.astimezone(instant.tzinfo)
