"""What an alert says, in plain data: rendered when planned and stored in the outbox.

A warning, breach or escalation is stored with what it is rendered from (``StageAlert``), so
that when it leaves the outbox later than planned (quiet hours, a snooze, a Slack outage) the
dispatcher renders it again with the clock's numbers of that moment: what a person reads is
true when it is sent. Everything else is sent as stored.

Pure (standard library only). The Slack adapter turns an ``AlertContent`` into Block Kit and
the console notifier into a log line; both say the same. By default an alert names the
customer by display name and domain only: no address and no subject, because alert channels
are often wide. ``include_sender`` and ``include_subject`` turn those on.

An alert about a waiting customer carries its clock's key (``conversation:kind:started``), so
the Slack adapter can add the "No reply needed" and "Snooze" buttons; the key is a button's
value, never shown. Once the wait is over, the edited alert drops it, and its buttons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.durations import format_duration

ICONS = {
    "warning": ":warning:",
    "breach": ":rotating_light:",
    "escalation": ":sos:",
    "answered": ":white_check_mark:",
    "dismissed": ":heavy_minus_sign:",
    "snoozed": ":zzz:",
    "summary": ":bell:",
    "digest": ":bar_chart:",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Privacy:
    """What an alert may show of the customer and the conversation."""

    include_sender: bool = False  # the customer's address
    include_subject: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """A waiting conversation as an alert describes it."""

    customer_name: str
    customer_address: str
    subject: str
    source: str
    mailbox: str  # folder, mailbox or repository: where it arrived
    policy: str
    link: str | None = None

    def who(self, privacy: Privacy) -> str:
        """The customer as the alert may name them: name and domain, or the address too."""
        domain = self.customer_address.rpartition("@")[2] if "@" in self.customer_address else ""
        name = self.customer_name or (domain and f"someone at {domain}") or "a customer"
        if privacy.include_sender and self.customer_address:
            return f"{name} <{self.customer_address}>"
        return f"{name} ({domain})" if domain and self.customer_name else name

    def shown(self, privacy: Privacy) -> Waiting:
        """Only what an alert may show under ``privacy``, for keeping: the address cut to its
        domain (``@example.com``) and no subject unless they are shown. Renders the same."""
        address = self.customer_address
        if not privacy.include_sender:
            domain = address.rpartition("@")[2] if "@" in address else ""
            address = f"@{domain}" if domain else ""
        return replace(
            self,
            customer_address=address,
            subject=self.subject if privacy.include_subject else "",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertContent:
    """One alert's words: a title, labelled facts, mentions and a link; plus a fallback text."""

    kind: str
    title: str
    fallback: str
    facts: tuple[tuple[str, str], ...] = ()
    mention: tuple[str, ...] = ()
    link: str | None = None
    lines: tuple[str, ...] = ()  # free lines (summary and digest lists)
    note: str = ""
    clock_key: str = ""  # the clock a person may dismiss or snooze from the alert; "" for none

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, for the outbox (no ``clock_key`` key when there is none)."""
        data = asdict(self)
        if not self.clock_key:
            del data["clock_key"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertContent:
        """Back from the outbox."""
        return cls(
            kind=data["kind"],
            title=data["title"],
            fallback=data["fallback"],
            facts=tuple((str(a), str(b)) for a, b in data.get("facts", ())),
            mention=tuple(data.get("mention", ())),
            link=data.get("link"),
            lines=tuple(data.get("lines", ())),
            note=data.get("note", ""),
            clock_key=data.get("clock_key", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StageFacts:
    """The numbers of a clock at the moment an alert is made."""

    kind: str  # warning, breach, escalation
    step: int
    waited: int  # business seconds
    target: int
    due_at: datetime
    zone: ZoneInfo
    clock: str  # first_response | next_response
    mention: tuple[str, ...] = field(default_factory=tuple)
    clock_key: str = ""  # for the alert's buttons


@dataclass(frozen=True, slots=True, kw_only=True)
class StageAlert:
    """What a warning, breach or escalation alert is rendered from: the waiting conversation,
    the clock's numbers and what the alert may show.

    The outbox keeps it beside the words (``to_payload``), holding no more of the customer than
    the alert shows, so the dispatcher can render the alert again with the numbers of the
    moment it is sent (``measured``).
    """

    waiting: Waiting
    facts: StageFacts
    privacy: Privacy

    def render(self) -> AlertContent:
        """The alert's words."""
        return render_stage(self.waiting, self.facts, self.privacy)

    def measured(self, *, waited: int, target: int, due_at: datetime) -> StageAlert:
        """The same alert with the clock's numbers of another moment."""
        return replace(self, facts=replace(self.facts, waited=waited, target=target, due_at=due_at))

    def to_payload(self) -> dict[str, Any]:
        """An outbox payload: the words (``AlertContent.from_json`` reads them back) and, under
        ``"stage"``, what they are rendered from (``from_payload``)."""
        facts = self.facts
        return {
            **self.render().to_json(),
            "stage": {
                "waiting": asdict(self.waiting.shown(self.privacy)),
                "privacy": asdict(self.privacy),
                "facts": {
                    "kind": facts.kind,
                    "step": facts.step,
                    "waited": facts.waited,
                    "target": facts.target,
                    "due_at": facts.due_at.isoformat(),
                    "zone": facts.zone.key,
                    "clock": facts.clock,
                    "mention": list(facts.mention),
                    "clock_key": facts.clock_key,
                },
            },
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> StageAlert | None:
        """Back from an outbox payload; None when it has no ``"stage"`` (other alerts, and
        stages queued before alerts were kept this way)."""
        stage = data.get("stage")
        if not isinstance(stage, dict):
            return None
        facts = stage["facts"]
        return cls(
            waiting=Waiting(**stage["waiting"]),
            privacy=Privacy(**stage["privacy"]),
            facts=StageFacts(
                kind=facts["kind"],
                step=facts["step"],
                waited=facts["waited"],
                target=facts["target"],
                due_at=datetime.fromisoformat(facts["due_at"]),
                zone=ZoneInfo(facts["zone"]),
                clock=facts["clock"],
                mention=tuple(facts["mention"]),
                clock_key=facts["clock_key"],
            ),
        )


def _due(facts: StageFacts) -> str:
    return facts.due_at.astimezone(facts.zone).strftime("%a %d %b %H:%M %Z")


def render_stage(waiting: Waiting, facts: StageFacts, privacy: Privacy) -> AlertContent:
    """A warning, breach or escalation alert."""
    who = waiting.who(privacy)
    # Rounded up to the minute: a breach one second past a 1h target reads "1h01m", not "1h00m".
    waited = format_duration(-(-facts.waited // 60) * 60, days=False)
    target = format_duration(facts.target, days=False)
    reply = "first reply" if facts.clock == "first_response" else "next reply"
    if facts.kind == "warning":
        left = format_duration(max(facts.target - facts.waited, 0), days=False)
        title = f"{ICONS['warning']} {who} has waited {waited} for a {reply}: due in {left}"
    elif facts.kind == "breach":
        title = f"{ICONS['breach']} SLA breached: {who} has waited {waited} for a {reply}"
    else:
        title = f"{ICONS['escalation']} Escalation {facts.step}: {who} still waiting after {waited}"
    fact_rows = [
        ("Policy", waiting.policy),
        ("Waited (business time)", f"{waited} of {target}"),
        ("Due", _due(facts)),
        ("Mailbox", f"{waiting.source} / {waiting.mailbox}" if waiting.mailbox else waiting.source),
    ]
    if privacy.include_subject and waiting.subject:
        fact_rows.append(("Subject", waiting.subject))
    mention = " ".join(facts.mention)
    fallback = (
        f"{title.split(' ', 1)[1]} (policy {waiting.policy}, target {target}, due {_due(facts)})"
    )
    if mention:
        fallback = f"{mention} {fallback}"
    return AlertContent(
        kind=facts.kind,
        title=title,
        fallback=fallback,
        facts=tuple(fact_rows),
        mention=facts.mention,
        link=waiting.link,
        clock_key=facts.clock_key,
    )


def render_answered(
    original: AlertContent, *, how: str, responder: str, waited: int, within: bool
) -> AlertContent:
    """The root alert, edited in place once the wait is over: answered, solved or closed."""
    verdict = "within target" if within else "late"
    after = format_duration(waited, days=False)
    if how == "reply":
        answered = f"Answered by {responder or 'the team'} after {after} ({verdict})"
    elif how == "solved":
        answered = f"Ticket solved without a reply after {after}"
    else:
        answered = f"Closed without a reply after {after} (archived or deleted)"
    title = f"{ICONS['answered']} {answered}"
    return AlertContent(
        kind="answered",
        title=title,
        fallback=f"{answered}. Was: {original.fallback}",
        facts=original.facts,
        link=original.link,
        note=f"was: {original.title}",
    )


def render_dismissed(
    original: AlertContent, *, who: str, when: str, reason: str, waited: int
) -> AlertContent:
    """The root alert, edited in place once a person said no reply is needed."""
    said = f"Dismissed by {who or 'someone'}: no reply needed"
    after = format_duration(waited, days=False)
    why = f": {reason}" if reason else ""
    return AlertContent(
        kind="answered",
        title=f"{ICONS['dismissed']} {said}",
        fallback=f"{said} ({when}, after {after}{why}). Was: {original.fallback}",
        facts=original.facts,
        link=original.link,
        note=f"dismissed {when} after {after} of business time{why}; was: {original.title}",
    )


def render_snoozed(
    original: AlertContent, *, who: str, when: str, until: str, reason: str
) -> AlertContent:
    """The root alert, edited in place when a person snoozed it: it stays live (buttons too),
    and says until when its alerts are held."""
    why = f": {reason}" if reason else ""
    said = f"Snoozed by {who or 'someone'} until {until}"
    return AlertContent(
        kind="snoozed",
        title=original.title,
        fallback=f"{said}. {original.fallback}",
        facts=original.facts,
        mention=original.mention,
        link=original.link,
        note=f"{ICONS['snoozed']} {said} ({when}{why}); no alerts for this wait until then.",
        clock_key=original.clock_key,
    )


def render_summary(
    channel: str, alerts: Sequence[AlertContent], shown: int = 10, *, catch_up: bool = False
) -> AlertContent:
    """One message standing for a burst of alerts to the same channel, or (``catch_up``) for
    the alerts that were already due when replyclock first read a mailbox's history."""
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.kind] = counts.get(alert.kind, 0) + 1
    order = ("escalation", "breach", "warning", "answered")
    plural = {"breach": "breaches"}
    parts = [
        f"{counts[k]} {k if counts[k] == 1 else plural.get(k, k + 's')}"
        for k in order
        if k in counts
    ]
    if catch_up:
        title = f"{ICONS['summary']} First read of the mailbox: {len(alerts)} alerts already due"
        title += f": {', '.join(parts)}"
        note = (
            "These were already due when replyclock first read the mail, so they come as one "
            "message; from now on each alert is sent as it happens. `replyclock status` lists all."
        )
    else:
        title = f"{ICONS['summary']} {len(alerts)} alerts at once: {', '.join(parts)}"
        note = "Sent as one message so the channel is not flooded; `replyclock status` lists all."
    ranked = sorted(alerts, key=lambda a: order.index(a.kind) if a.kind in order else 9)
    lines = tuple(a.title for a in ranked[:shown])
    more = len(alerts) - len(lines)
    return AlertContent(
        kind="summary",
        title=title,
        fallback=f"{title.split(' ', 1)[1]} in {channel}",
        lines=lines + ((f"... and {more} more",) if more > 0 else ()),
        note=note,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestFacts:
    """The numbers of a daily digest."""

    day: str  # the day summarized, e.g. "Mon 23 Nov"
    backlog: tuple[tuple[str, int, int, int], ...]  # policy, ok, warning, breached
    breaches_yesterday: int
    replies_yesterday: int
    p50: int | None  # first-response business seconds
    p90: int | None
    longest: tuple[tuple[str, str, int], ...]  # who, policy, waited business seconds


def render_digest(facts: DigestFacts) -> AlertContent:
    """The daily digest for a channel."""
    waiting = sum(ok + warn + breached for _, ok, warn, breached in facts.backlog)
    title = (
        f"{ICONS['digest']} Support SLA digest: {waiting} waiting, "
        f"{facts.breaches_yesterday} breaches {facts.day}"
    )
    rows: list[tuple[str, str]] = [
        (policy, f"{ok} ok, {warn} {'warning' if warn == 1 else 'warnings'}, {breached} breached")
        for policy, ok, warn, breached in facts.backlog
    ]
    replies = facts.replies_yesterday
    first_response = "no first replies"
    if facts.p50 is not None and facts.p90 is not None:
        first_response = (
            f"p50 {format_duration(facts.p50, days=False)}, "
            f"p90 {format_duration(facts.p90, days=False)} "
            f"({replies} {'reply' if replies == 1 else 'replies'})"
        )
    rows.append((f"First response {facts.day}", first_response))
    lines = tuple(
        f"{who}: {format_duration(waited, days=False)} ({policy})"
        for who, policy, waited in facts.longest
    )
    return AlertContent(
        kind="digest",
        title=title,
        fallback=f"{title.split(' ', 1)[1]}",
        facts=tuple(rows),
        lines=("Longest waiting:", *lines) if lines else ("Nobody is waiting.",),
    )
