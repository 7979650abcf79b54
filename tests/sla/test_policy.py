"""Policy matching: the first policy whose conditions hold wins, and says why."""

from __future__ import annotations

import pytest

from monitor.sla.policy import (
    DEFAULT_POLICY,
    Condition,
    MatchFacts,
    Policy,
    PolicySet,
    WarningRule,
)


def facts(**kw: object) -> MatchFacts:
    values: dict[str, object] = {"source": "support", "sender": "ann@bigcorp.example"}
    values.update(kw)
    return MatchFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "given", "reason"),
    [
        pytest.param(Condition(sources=("support",)), facts(), "source support", id="source"),
        pytest.param(
            Condition(folders=("VIP",)), facts(folder="vip"), "folder vip", id="folder_any_case"
        ),
        pytest.param(
            Condition(senders=("*@bigcorp.example",)),
            facts(),
            "sender ann@bigcorp.example",
            id="sender_glob",
        ),
        pytest.param(
            Condition(sender_domains=("bigcorp.example",)),
            facts(),
            "sender domain bigcorp.example",
            id="sender_domain",
        ),
        pytest.param(
            Condition(sender_regex=r"^ann@"), facts(), "sender matches /^ann@/", id="sender_regex"
        ),
        pytest.param(
            Condition(recipients=("vip@acme.example",)),
            facts(recipients=("support@acme.example", "vip@acme.example")),
            "recipient vip@acme.example",
            id="any_recipient",
        ),
        pytest.param(
            Condition(subject_regex=r"(?i)\burgent\b"),
            facts(subject="URGENT: down"),
            r"subject matches /(?i)\burgent\b/",
            id="subject_regex",
        ),
        pytest.param(
            Condition(priorities=("high",)), facts(priority="high"), "priority high", id="priority"
        ),
        pytest.param(Condition(tags=("vip", "gold")), facts(tags=("gold",)), "tag gold", id="tags"),
        pytest.param(
            Condition(attributes=(("group", ("Billing",)),)),
            facts(attributes={"group": "billing", "brand": "acme"}),
            "group billing",
            id="helpdesk_attribute",
        ),
        pytest.param(
            Condition(
                any_of=(Condition(tags=("vip",)), Condition(sender_domains=("bigcorp.example",)))
            ),
            facts(),
            "sender domain bigcorp.example",
            id="any_second_holds",
        ),
        pytest.param(
            Condition(all_of=(Condition(sources=("support",)), Condition(priorities=("high",)))),
            facts(priority="high"),
            "source support and priority high",
            id="all_hold",
        ),
        pytest.param(
            Condition(sources=("support",), none_of=Condition(tags=("spam",))),
            facts(),
            "not excluded and source support",
            id="not_excluded",
        ),
    ],
)
def test_conditions_that_hold_say_why(condition: Condition, given: MatchFacts, reason: str) -> None:
    """Each condition kind holds on matching facts and explains itself in words."""
    assert condition.explain(given) == reason


@pytest.mark.parametrize(
    ("condition", "given"),
    [
        pytest.param(Condition(sources=("billing",)), facts(), id="other_source"),
        pytest.param(Condition(sender_domains=("corp.example",)), facts(), id="domain_is_exact"),
        pytest.param(Condition(priorities=("high",)), facts(), id="no_priority"),
        pytest.param(Condition(attributes=(("group", ("billing",)),)), facts(), id="no_attribute"),
        pytest.param(
            Condition(all_of=(Condition(sources=("support",)), Condition(tags=("vip",)))),
            facts(),
            id="all_needs_every_one",
        ),
        pytest.param(Condition(none_of=Condition(sources=("support",))), facts(), id="excluded"),
        pytest.param(
            Condition(subject_regex="invoice"), facts(subject="Invoice"), id="regex_case_sensitive"
        ),
    ],
)
def test_conditions_that_do_not_hold(condition: Condition, given: MatchFacts) -> None:
    """A condition that does not hold gives no reason."""
    assert condition.explain(given) is None


def policy(name: str, condition: Condition | None) -> Policy:
    return Policy(name=name, calendar="24x7", first_response=3600, condition=condition)


def test_first_matching_policy_wins_and_default_catches_the_rest() -> None:
    """Policies are tried in order; without a catch-all, the built-in default applies."""
    rules = PolicySet(
        (
            policy("urgent", Condition(subject_regex="(?i)urgent")),
            policy("vip", Condition(sender_domains=("bigcorp.example",))),
        )
    )
    assert rules.choose(facts(subject="URGENT")) == (
        rules.policies[0],
        "subject matches /(?i)urgent/",
    )
    assert rules.choose(facts())[0].name == "vip"
    chosen, reason = rules.choose(facts(sender="x@else.example"))
    assert (chosen, reason) == (DEFAULT_POLICY, "no policy matched; the built-in default applies")
    assert (DEFAULT_POLICY.first_response, DEFAULT_POLICY.calendar) == (86400, "24x7")


def test_a_policy_without_conditions_catches_everything_after_it() -> None:
    """A policy with no `match` is the catch-all, and the built-in default is not added."""
    rules = PolicySet((policy("vip", Condition(tags=("vip",))), policy("standard", None)))
    assert rules.choose(facts()) == (
        rules.policies[1],
        "policy without conditions (catches every conversation)",
    )
    assert rules.all == rules.policies


def test_duplicate_policy_names_are_refused() -> None:
    """Two policies may not share a name: stored conversations refer to policies by name."""
    with pytest.raises(ValueError, match="policy names must be unique"):
        PolicySet((policy("a", None), policy("a", None)))


@pytest.mark.parametrize(
    ("rule", "target", "threshold"),
    [
        pytest.param(WarningRule(), 4 * 3600, 3 * 3600, id="default_75_percent"),
        pytest.param(WarningRule(percent=50), 3600, 1800, id="percent"),
        pytest.param(WarningRule(before_due=1800), 4 * 3600, 3 * 3600 + 1800, id="before_due"),
        pytest.param(WarningRule(before_due=7200), 3600, 0, id="before_due_longer_than_target"),
        pytest.param(WarningRule(percent=99.9), 100, 100, id="rounds_up_within_target"),
    ],
)
def test_warning_thresholds(rule: WarningRule, target: int, threshold: int) -> None:
    """The warning starts at a percentage of the target or a time before it is due."""
    assert rule.threshold(target) == threshold
