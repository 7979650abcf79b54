"""Turn validated rules files into the pure core's policies and calendars."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.config.calendars import build_calendar
from monitor.config.loader import LoadedConfig
from monitor.config.models import CalendarConfig, PolicyConfig
from monitor.config.models import Condition as ConditionConfig
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import StatusRules
from monitor.sla.policy import (
    DEFAULT_RESPONSE_BUCKETS,
    Condition,
    EscalationStep,
    Policy,
    PolicyAlerts,
    PolicySet,
    WarningRule,
)
from monitor.sla.stages import parse_quiet_hours

ALWAYS_OPEN = "24x7"


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Every policy, in order, and the calendars they use, built once per config load."""

    policies: PolicySet
    calendars: Mapping[str, BusinessCalendar]
    calendar_notes: Mapping[str, str]  # each calendar in words, for `explain`
    buckets: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # by policy
    default_buckets: tuple[int, ...] = DEFAULT_RESPONSE_BUCKETS

    def buckets_for(self, policy: str) -> tuple[int, ...]:
        """Histogram bucket bounds (business seconds) for a policy's response times."""
        return self.buckets.get(policy, self.default_buckets)

    def calendar_for(self, policy: Policy) -> BusinessCalendar:
        """The business calendar a policy counts on."""
        return self.calendars[policy.calendar]


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None


def build_condition(config: ConditionConfig) -> Condition:
    """The pure condition a config condition describes."""
    return Condition(
        any_of=tuple(build_condition(c) for c in config.any) if config.any is not None else None,
        all_of=tuple(build_condition(c) for c in config.all) if config.all is not None else None,
        none_of=build_condition(config.not_) if config.not_ is not None else None,
        sources=_tuple(config.source),
        folders=_tuple(config.folder),
        senders=_tuple(config.sender),
        sender_domains=_tuple(config.sender_domain),
        sender_regex=config.sender_regex,
        recipients=_tuple(config.recipient),
        subject_regex=config.subject_regex,
        priorities=_tuple(config.priority),
        tags=_tuple(config.tags),
        attributes=(
            tuple((name, tuple(values)) for name, values in config.attributes.items())
            if config.attributes is not None
            else None
        ),
    )


def build_policy(config: PolicyConfig) -> Policy:
    """The pure policy a config policy describes."""
    return Policy(
        name=config.name,
        calendar=config.calendar,
        first_response=config.targets.first_response,
        next_response=config.targets.next_response,
        condition=build_condition(config.match) if config.match is not None else None,
        warning=WarningRule(percent=config.warning.percent, before_due=config.warning.before_due),
        escalation=tuple(
            EscalationStep(after=step.after, mention=tuple(step.mention), channel=step.channel)
            for step in config.escalation
        ),
        status_rules=StatusRules(
            pause_on=frozenset(config.pause_on), stop_on=frozenset(config.stop_on)
        ),
        alerts=PolicyAlerts(
            enabled=config.alerts.enabled,
            channel=config.alerts.channel,
            mention=tuple(config.alerts.mention),
            quiet_hours=(
                parse_quiet_hours(config.alerts.quiet_hours) if config.alerts.quiet_hours else None
            ),
            quiet=config.alerts.quiet,
        ),
    )


def build_rulebook(loaded: LoadedConfig) -> RuleBook:
    """Policies of every rules file in order, and every calendar, plus the 24x7 calendar."""
    calendars: dict[str, BusinessCalendar] = {ALWAYS_OPEN: BusinessCalendar.always_open("UTC")}
    notes = {ALWAYS_OPEN: "UTC, open 24 hours a day, 7 days a week (built in)"}
    policies: list[Policy] = []
    buckets: dict[str, tuple[int, ...]] = {}
    for _, rules in loaded.rules:
        for name, calendar in rules.calendars.items():
            calendars[name] = build_calendar(calendar)
            notes[name] = describe_calendar(calendar)
        policies.extend(build_policy(policy) for policy in rules.policies)
        buckets.update({p.name: tuple(sorted(set(p.buckets))) for p in rules.policies if p.buckets})
    default = loaded.config.metrics.buckets
    return RuleBook(
        policies=PolicySet(tuple(policies)),
        calendars=calendars,
        calendar_notes=notes,
        buckets=buckets,
        default_buckets=tuple(sorted(set(default))) if default else DEFAULT_RESPONSE_BUCKETS,
    )


def describe_calendar(config: CalendarConfig) -> str:
    """A calendar config in one line of words."""
    if config.hours == "24x7":
        parts = [f"{config.timezone}, open 24 hours a day, 7 days a week"]
    else:
        hours = "; ".join(
            f"{days} {'closed' if value == 'closed' else ', '.join(value)}"
            for days, value in config.hours.items()
        )
        parts = [f"{config.timezone}, {hours}"]
    if config.holidays is not None:
        region = config.holidays.country
        if config.holidays.subdivision:
            region += f"-{config.holidays.subdivision}"
        parts.append(f"public holidays of {region}")
    if config.closed:
        parts.append("closed " + ", ".join(d.isoformat() for d in config.closed))
    if config.open:
        parts.append("also open " + ", ".join(d.isoformat() for d in config.open))
    if config.ics is not None:
        parts.append(f"closed dates from {config.ics.name}")
    return "; ".join(parts)
