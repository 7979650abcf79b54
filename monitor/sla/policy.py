"""SLA policies: which conversations a policy covers, and its reply targets.

A conversation is matched once, on the facts of its first customer message, and the chosen
policy is stored with it: editing the rules later does not rewrite history unless
``replyclock recompute`` is run. Policies are tried in order; the first that matches wins. A
policy without conditions matches everything; when no policy does, the built-in ``default``
policy applies (24x7, 24 h targets).
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time

from monitor.sla.clocks import NO_STATUS_RULES, StatusRules

DEFAULT_POLICY_NAME = "default"
# Response-time histogram bounds in business seconds, unless the config sets others:
# 5m 15m 30m 1h 2h 4h 8h 1d 2d 3d 7d, because support targets span minutes to days.
DEFAULT_RESPONSE_BUCKETS: tuple[int, ...] = (
    300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 259200, 604800,
)  # fmt: skip
DEFAULT_TARGET_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchFacts:
    """What a policy can match on: the facts of a conversation's first customer message."""

    source: str
    folder: str = ""
    sender: str = ""  # lowercase address or login
    recipients: tuple[str, ...] = ()
    subject: str = ""
    priority: str | None = None
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)  # group, brand, mailbox, ...

    @property
    def sender_domain(self) -> str:
        """The domain of the sender's address, or an empty string."""
        return self.sender.rpartition("@")[2] if "@" in self.sender else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """Every given test must hold; a list test holds when any of its values matches.

    ``any_of`` holds when one sub-condition holds, ``all_of`` when all do, ``none_of`` when its
    condition does not. Sender and recipient patterns are globs (``*@bigcorp.com``).
    """

    any_of: tuple[Condition, ...] | None = None
    all_of: tuple[Condition, ...] | None = None
    none_of: Condition | None = None
    sources: tuple[str, ...] | None = None
    folders: tuple[str, ...] | None = None
    senders: tuple[str, ...] | None = None
    sender_domains: tuple[str, ...] | None = None
    sender_regex: str | None = None
    recipients: tuple[str, ...] | None = None
    subject_regex: str | None = None
    priorities: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    attributes: tuple[tuple[str, tuple[str, ...]], ...] | None = None  # (name, accepted values)

    def explain(self, facts: MatchFacts) -> str | None:
        """Why the condition holds for ``facts`` in words, or None when it does not hold."""
        reasons: list[str] = []
        for test in (
            self._test_any,
            self._test_all,
            self._test_none,
            self._test_values,
        ):
            reason = test(facts)
            if reason is None:
                return None
            if reason:
                reasons.append(reason)
        return " and ".join(reasons) or "no conditions"

    def _test_any(self, facts: MatchFacts) -> str | None:
        if self.any_of is None:
            return ""
        for condition in self.any_of:
            reason = condition.explain(facts)
            if reason is not None:
                return reason
        return None

    def _test_all(self, facts: MatchFacts) -> str | None:
        if self.all_of is None:
            return ""
        reasons = [condition.explain(facts) for condition in self.all_of]
        if any(reason is None for reason in reasons):
            return None
        return " and ".join(r for r in reasons if r)

    def _test_none(self, facts: MatchFacts) -> str | None:
        if self.none_of is None:
            return ""
        return None if self.none_of.explain(facts) is not None else "not excluded"

    def _test_values(self, facts: MatchFacts) -> str | None:
        reasons: list[str] = []
        checks: list[tuple[tuple[str, ...] | None, Sequence[str], str, bool]] = [
            (self.sources, [facts.source], "source", False),
            (self.folders, [facts.folder], "folder", False),
            (self.senders, [facts.sender], "sender", True),
            (self.sender_domains, [facts.sender_domain], "sender domain", False),
            (self.recipients, facts.recipients, "recipient", True),
            (self.priorities, [facts.priority or ""], "priority", False),
            (self.tags, facts.tags, "tag", False),
        ]
        for wanted, values, label, glob in checks:
            if wanted is None:
                continue
            hit = _first_hit(wanted, values, glob=glob)
            if hit is None:
                return None
            reasons.append(f"{label} {hit}")
        for name, accepted in self.attributes or ():
            hit = _first_hit(accepted, [facts.attributes.get(name, "")], glob=False)
            if hit is None:
                return None
            reasons.append(f"{name} {hit}")
        for regex, value, label in (
            (self.sender_regex, facts.sender, "sender"),
            (self.subject_regex, facts.subject, "subject"),
        ):
            if regex is None:
                continue
            if _compiled(regex).search(value) is None:
                return None
            reasons.append(f"{label} matches /{regex}/")
        return " and ".join(reasons)


@functools.lru_cache(maxsize=512)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _first_hit(wanted: tuple[str, ...], values: Sequence[str], *, glob: bool) -> str | None:
    """The first value matching one of ``wanted`` (case-insensitive), or None."""
    for value in values:
        lowered = value.lower()
        for pattern in wanted:
            if (
                glob and fnmatch.fnmatchcase(lowered, pattern.lower())
            ) or lowered == pattern.lower():
                return value
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class WarningRule:
    """When a waiting conversation turns from ok to warning."""

    percent: float | None = None  # of the target
    before_due: int | None = None  # seconds before the target is reached

    def threshold(self, target: int) -> int:
        """Business seconds waited at which the warning starts, for a target of ``target``."""
        if self.before_due is not None:
            return max(target - self.before_due, 0)
        percent = 75.0 if self.percent is None else self.percent
        return min(math.ceil(target * percent / 100), target)

    def describe(self) -> str:
        """The rule in words, for `explain`."""
        if self.before_due is not None:
            return f"{self.before_due}s before due"
        return f"at {75.0 if self.percent is None else self.percent:g}% of the target"


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationStep:
    """After a breach, who else to tell and when (used by the alerting)."""

    after: int  # seconds after the breach
    mention: tuple[str, ...] = ()
    channel: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyAlerts:
    """A policy's alerting: on or off, the channel, who to mention on breach, quiet hours."""

    enabled: bool = True
    channel: str | None = None  # None: the default channel
    mention: tuple[str, ...] = ()
    quiet_hours: tuple[time, time] | None = None  # None: the global quiet hours apply
    quiet: str | None = None  # hold | drop; None: the global choice


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Reply targets on a business calendar for the conversations a condition selects."""

    name: str
    calendar: str
    first_response: int
    next_response: int | None = None  # None: the first-response target applies
    condition: Condition | None = None  # None: every conversation
    warning: WarningRule = field(default_factory=WarningRule)
    escalation: tuple[EscalationStep, ...] = ()
    status_rules: StatusRules = NO_STATUS_RULES  # helpdesk statuses that pause or stop
    alerts: PolicyAlerts = field(default_factory=PolicyAlerts)

    def target(self, kind: str) -> int:
        """The target in business seconds for a clock of ``kind`` (first/next response)."""
        if kind == "next_response" and self.next_response is not None:
            return self.next_response
        return self.first_response


DEFAULT_POLICY = Policy(
    name=DEFAULT_POLICY_NAME,
    calendar="24x7",
    first_response=DEFAULT_TARGET_SECONDS,
    next_response=DEFAULT_TARGET_SECONDS,
)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Policies in the order they are tried, ending with one that catches the rest."""

    policies: tuple[Policy, ...]

    def __post_init__(self) -> None:
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policy names must be unique, got: {names}")

    @property
    def all(self) -> tuple[Policy, ...]:
        """Every policy that can be chosen, the built-in default last when none catches all."""
        if any(p.condition is None for p in self.policies):
            return self.policies
        return (*self.policies, DEFAULT_POLICY)

    def by_name(self, name: str) -> Policy | None:
        """The policy called ``name``, if it still exists in the rules."""
        for policy in self.all:
            if policy.name == name:
                return policy
        return None

    def choose(self, facts: MatchFacts) -> tuple[Policy, str]:
        """The first policy matching ``facts``, and why it matched."""
        for policy in self.all:
            if policy.condition is None:
                if policy is DEFAULT_POLICY:
                    return policy, "no policy matched; the built-in default applies"
                return policy, "policy without conditions (catches every conversation)"
            reason = policy.condition.explain(facts)
            if reason is not None:
                return policy, reason
        raise AssertionError("the policy list always ends with one that matches")
