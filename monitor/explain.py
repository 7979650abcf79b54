"""`replyclock explain`: one conversation's timeline, and why each number is what it is.

The timeline holds the messages and people's decisions (dismissed, snoozed) in time order.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from monitor.alerting import thread_key
from monitor.config.rules import RuleBook
from monitor.durations import format_duration
from monitor.engine import Engine, clock_messages
from monitor.sla.clocks import StopReason
from monitor.sla.evaluate import ClockState, ClockVerdict, evaluate
from monitor.sla.policy import Policy
from monitor.store import Store, StoredMessage
from monitor.store.sqlite import (
    StoredAction,
    actions_by_conversation,
    dismissal_instants,
    latest_snooze,
    to_epoch,
)

_MAX_DAYS_LISTED = 14


def local(instant: datetime, zone: ZoneInfo) -> str:
    """``Mon 2026-11-16 11:00 CET``: an instant as the team's calendar reads it."""
    return instant.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def describe_targets(policy: Policy) -> str:
    """A policy's targets and warning rule in words."""
    first = format_duration(policy.first_response)
    following = format_duration(policy.target("next_response"))
    warning = policy.warning
    if warning.before_due is not None:
        warn = f"warning {format_duration(warning.before_due)} before due"
    else:
        warn = (
            f"warning at {warning.percent if warning.percent is not None else 75:g}% of the target"
        )
    return f"first response {first}, next response {following}; {warn}"


def _who(message: StoredMessage) -> str:
    if message.author_name and message.author:
        return f"{message.author_name} <{message.author}>"
    return message.author or message.author_name or "(no sender)"


def _per_day(verdict: ClockVerdict, rules: RuleBook, policy: Policy, end: datetime) -> str:
    """Business time per day from the clock's start to ``end``, its pauses taken out (they do
    not count), so the days add up to what the clock waited."""
    calendar = rules.calendar_for(policy)
    per_day = dict(calendar.business_seconds_by_day(verdict.clock.started_at, end))
    for since, until in verdict.clock.pauses:
        for day, seconds in calendar.business_seconds_by_day(since, min(until or end, end)):
            per_day[day] = per_day.get(day, 0) - seconds
    counted = [(day, seconds) for day, seconds in sorted(per_day.items()) if seconds > 0]
    shown = counted[:_MAX_DAYS_LISTED]
    text = ", ".join(
        f"{_day(day)} {format_duration(seconds, days=False)}" for day, seconds in shown
    )
    if len(counted) > len(shown):
        rest = sum(seconds for _, seconds in counted[len(shown) :])
        text += (
            f", and {format_duration(rest, days=False)} on {len(counted) - len(shown)} more days"
        )
    return text or "none (the calendar was closed the whole time)"


def _day(day: date) -> str:
    return day.strftime("%a %m-%d")


def _verdict_line(verdict: ClockVerdict) -> str:
    over = verdict.business_seconds - verdict.target
    if verdict.state is ClockState.ANSWERED:
        if verdict.breached:
            return f"answered late: target missed by {format_duration(over, days=False)}"
        return f"answered within target ({format_duration(-over, days=False)} to spare)"
    if verdict.state is ClockState.DISMISSED:
        if verdict.breached:
            return "dismissed (no reply needed) after the target had passed: the breach stands"
        return "dismissed (no reply needed) before the target: counted, not a breach"
    if verdict.state in (ClockState.CLOSED, ClockState.SOLVED):
        how = "closed without reply" if verdict.state is ClockState.CLOSED else "solved"
        if verdict.breached:
            return f"{how} after the target had passed: the breach stands"
        return f"{how} before the target: counted, not a breach"
    if verdict.state is ClockState.PAUSED:
        return (
            f"paused while the ticket waits on the customer; "
            f"{format_duration(-over, days=False)} of business time left"
        )
    if verdict.state is ClockState.BREACHED:
        return f"BREACHED: over target by {format_duration(over, days=False)}"
    if verdict.state is ClockState.WARNING:
        return f"WARNING: {format_duration(-over, days=False)} of business time left"
    return f"ok: {format_duration(-over, days=False)} of business time left"


def explain(store: Store, rules: RuleBook, conversation_id: int, now: datetime) -> list[str]:
    """The lines `replyclock explain` prints for one conversation."""
    engine = Engine(store, rules)
    conversation = store.conversation(conversation_id)
    if conversation is None:
        return [f"No conversation {conversation_id} in the store."]
    messages = store.messages(conversation_id)
    policy, reason = engine.choose_policy(conversation, messages)
    calendar = rules.calendar_for(policy)
    zone = calendar.zone
    stored = "stored when its first customer message was matched"
    if conversation.policy is None:
        stored = "not stored yet: chosen now, stored at the next evaluation"
    elif conversation.policy != policy.name:
        stored = f"stored policy {conversation.policy!r} no longer exists; chosen again now"
    lines = [
        f"Conversation {conversation.id} - source {conversation.source} - "
        f"{conversation.subject or '(no subject)'!r}",
        f"Customer:  {conversation.customer_name + ' ' if conversation.customer_name else ''}"
        f"<{conversation.customer}>"
        if conversation.customer
        else "Customer:  (unknown)",
        f"Policy:    {policy.name} - {reason} ({stored})",
        f"Calendar:  {policy.calendar} - {rules.calendar_notes.get(policy.calendar, '')}",
        f"Targets:   {describe_targets(policy)}",
    ]
    if conversation.link:
        lines.append(f"Link:      {conversation.link}")
    actions = actions_by_conversation(store, [conversation_id])[conversation_id]
    lines += ["", f"Messages{' and actions' if actions else ''} ({zone.key}):"]
    verdict = evaluate(
        clock_messages(messages), policy, calendar, now, dismissals=dismissal_instants(actions)
    )
    spans = [(v.clock.started_at, v.clock.stopped_at) for v in verdict.clocks]
    lines += _timeline(messages, actions, zone, spans)
    lines += ["", f"Clocks (evaluated {local(now, zone)}):"]
    if not verdict.clocks:
        lines.append("  none: no customer message is waiting or was answered")
    for number, clock in enumerate(verdict.clocks, 1):
        c = clock.clock
        kind = c.kind.value.replace("_", " ")
        stop, end = _stop(clock, actions, zone) if c.stopped_at else ("still running", now)
        follow = (
            f" ({c.customer_messages - 1} follow-up{'s' if c.customer_messages > 2 else ''} "
            "did not restart it)"
            if c.customer_messages > 1
            else ""
        )
        pauses = "".join(
            f"; paused {local(since, zone)} to "
            f"{local(until, zone) if until else 'now'} (waiting on the customer)"
            for since, until in c.pauses
        )
        lines += [
            f"  {number}. {kind}: started {local(c.started_at, zone)}{follow}, {stop}{pauses}",
            f"     business time counted per day: {_per_day(clock, rules, policy, end)}",
            f"     waited {format_duration(clock.business_seconds, days=False)} in business time "
            f"({format_duration(clock.calendar_seconds)} on the wall clock)",
            f"     target {format_duration(clock.target)}: due {local(clock.due_at, zone)}, "
            f"warning from {local(clock.warning_at, zone)}",
            f"     verdict: {_verdict_line(clock)}",
        ]
        key = thread_key(conversation_id, c.kind.value, to_epoch(c.started_at))
        snooze = latest_snooze(actions, key) if c.running else None
        if snooze is not None and snooze.until is not None and snooze.until > now:
            lines.append(
                f"     alerts snoozed until {local(snooze.until, zone)} by {snooze.who}; "
                "the clock keeps running"
            )
    lines += [
        "",
        "Numbers use the current calendar and targets of the policy. Clocks already stored as "
        "history keep the numbers computed when they stopped (in `status`, metrics and alerts) "
        "until `replyclock recompute` is run; the policy chosen for a conversation is kept "
        "even if the rules change.",
    ]
    return lines


def _timeline(
    messages: list[StoredMessage],
    actions: list[StoredAction],
    zone: ZoneInfo,
    spans: list[tuple[datetime, datetime | None]],
) -> list[str]:
    """Messages and people's decisions in time order (a message before a decision of the same
    second, as the clock rules take them). ``spans`` are the clocks' start and stop: a closing
    message outside all of them started no clock, and says so."""
    timeline: list[tuple[datetime, int, str]] = []
    for m in messages:
        removed = f"; left the folders {local(m.removed_at, zone)}" if m.removed_at else ""
        where = f" [{m.folder}]" if m.folder else ""
        reason = m.reason
        if m.closing is not None:
            inside = any(a <= m.timestamp and (b is None or m.timestamp <= b) for a, b in spans)
            reason = (
                f"{reason}; only a closing message ('{m.closing}'), counted with the wait it is in"
                if inside
                else f"not a clock: closing message ('{m.closing}')"
            )
        line = f"{m.direction.value:8}  {_who(m)}{where}: {reason}{removed}"
        timeline.append((m.timestamp, 0, line))
    timeline += [(a.at, 1, _action_line(a, zone)) for a in actions]
    return [f"  {local(at, zone)}  {line}" for at, _, line in sorted(timeline, key=_first_two)]


def _first_two(item: tuple[datetime, int, str]) -> tuple[datetime, int]:
    return item[0], item[1]


def _stop(
    verdict: ClockVerdict, actions: list[StoredAction], zone: ZoneInfo
) -> tuple[str, datetime]:
    """How a stopped clock stopped, in words, and when."""
    c = verdict.clock
    assert c.stopped_at is not None
    at = local(c.stopped_at, zone)
    if c.stop_reason is StopReason.REPLY:
        return f"stopped {at} by the reply from {c.responder or '?'}", c.stopped_at
    if c.stop_reason is StopReason.SOLVED:
        return f"stopped {at}: the ticket was solved or closed", c.stopped_at
    if c.stop_reason is StopReason.DISMISSED:
        by = [a.who for a in actions if a.kind == "dismiss" and a.at == c.stopped_at]
        who = f" by {by[0]}" if by else ""
        return f"stopped {at}: dismissed{who}, no reply needed", c.stopped_at
    return f"stopped {at}: the customer's messages left the folders", c.stopped_at


def _action_line(action: StoredAction, zone: ZoneInfo) -> str:
    """One decision as a timeline line: what, by whom, and why."""
    why = f"; reason: {action.reason}" if action.reason else ""
    if action.kind == "dismiss":
        return f"{'dismiss':8}  {action.who}: no reply needed{why}"
    until = local(action.until, zone) if action.until is not None else "?"
    return f"{'snooze':8}  {action.who}: alerts held until {until}{why}"
