"""Alert stages: when a waiting customer deserves a warning, a breach alert, an escalation.

Pure decisions on business time waited, so nothing fires while the calendar is closed (no
escalation on a Saturday for a team that works Monday to Friday). Each stage fires once per
clock; when several become due at once (the daemon was down, or a message arrived already
late) only the highest is sent and the lower ones are recorded as superseded.
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


@dataclass(frozen=True, slots=True)
class StagePlan:
    """What to do now for a clock: the stage to send, and lower ones made moot by it."""

    send: AlertStage | None
    superseded: tuple[AlertStage, ...] = ()


def plan_stages(waited: int, target: int, policy: Policy, already: Iterable[str]) -> StagePlan:
    """The stage to send for a clock waiting ``waited`` business seconds against ``target``,
    given the stage keys already recorded for it."""
    done = set(already)
    due = [
        stage
        for stage in stages_for(policy, target, policy.warning.threshold(target))
        if stage.threshold <= waited and stage.key not in done
    ]
    if not due:
        return StagePlan(None)
    # Only stages bound for the same channel make each other moot: an escalation to another
    # channel reaches other people, and the default channel still hears of the breach (it is
    # sent at the next planning round).
    newest = due[-1]
    superseded = tuple(s for s in due[:-1] if s.channel == newest.channel)
    return StagePlan(newest, superseded)


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
