"""The quick paths of evaluation give exactly what the full rules give."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar, epoch_second, parse_hours
from monitor.sla.clocks import (
    Clock,
    ClockKind,
    ClockMessage,
    StatusRules,
    StopReason,
    _make_clock,
    _segment_by_rules,
    running_clock,
    segment_clocks,
)
from monitor.sla.evaluate import ClockState, ClockVerdict, evaluate
from monitor.sla.policy import Policy

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
HELPDESK = StatusRules(pause_on=frozenset({"pending"}))
OFFICE = BusinessCalendar(
    timezone="Europe/Berlin", weekly={day: [parse_hours("09:00-17:00")] for day in range(5)}
)


@st.composite
def messages(draw: st.DrawFn, *, plain: bool) -> list[ClockMessage]:
    """Up to 8 messages within a few minutes (so equal timestamps happen), in any order;
    removals and statuses only when not ``plain``."""
    drawn = []
    for _ in range(draw(st.integers(0, 8))):
        direction = draw(st.sampled_from(list(Direction)))
        removed = None if plain else draw(st.none() | st.integers(0, 12))
        drawn.append(
            ClockMessage(
                timestamp=T0 + timedelta(minutes=draw(st.integers(0, 10))),
                direction=direction,
                removed_at=T0 + timedelta(minutes=removed) if removed is not None else None,
                author=draw(st.sampled_from(["", "a@t"])),
                status=None if plain else draw(st.none() | st.sampled_from(["pending", "solved"])),
                closing=draw(st.booleans()),
            )
        )
    return drawn


@given(messages(plain=True))
def test_plain_conversations_take_the_quick_path_with_the_same_clocks(
    drawn: list[ClockMessage],
) -> None:
    """Without removals, statuses or dismissals, the one-pass segmentation equals the full
    rules, even for messages out of order or of the same second."""
    assert segment_clocks(drawn) == _segment_by_rules(drawn, StatusRules(), ())


@given(messages(plain=False))
def test_any_conversation_gets_the_clocks_of_the_full_rules(drawn: list[ClockMessage]) -> None:
    """With removals and ticket statuses the quick path hands over to the full rules."""
    assert segment_clocks(drawn, HELPDESK) == _segment_by_rules(drawn, HELPDESK, ())


def test_a_quickly_made_clock_is_the_same_frozen_value() -> None:
    """A clock made without the dataclass constructor equals, hashes and refuses changes like
    one made with it."""
    made = _make_clock(ClockKind.NEXT, T0, T0 + timedelta(hours=1), StopReason.REPLY, "a@t", 2, ())
    built = Clock(
        kind=ClockKind.NEXT,
        started_at=T0,
        stopped_at=T0 + timedelta(hours=1),
        stop_reason=StopReason.REPLY,
        responder="a@t",
        customer_messages=2,
    )
    assert (made, hash(made), type(made)) == (built, hash(built), Clock)
    assert running_clock(ClockKind.FIRST, T0) == Clock(kind=ClockKind.FIRST, started_at=T0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.responder = "b@t"  # type: ignore[misc]


def test_a_verdict_is_the_same_frozen_value_as_the_constructor_makes() -> None:
    """Evaluation's verdicts equal the ones ClockVerdict(...) builds from the same numbers."""
    policy = Policy(name="p", calendar="office", first_response=4 * 3600)
    now = T0 + timedelta(hours=5, seconds=7)
    (verdict,) = evaluate([ClockMessage(timestamp=T0, direction=Direction.INBOUND)], policy,
                          OFFICE, now).clocks  # fmt: skip
    expected = ClockVerdict(
        clock=Clock(kind=ClockKind.FIRST, started_at=T0),
        target=4 * 3600,
        warning_threshold=3 * 3600,
        business_seconds=5 * 3600 + 7,
        calendar_seconds=5 * 3600 + 7,
        state=ClockState.BREACHED,
        breached=True,
        calendar=OFFICE,
        evaluated_at=now,
    )
    assert (verdict, type(verdict)) == (expected, ClockVerdict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.state = ClockState.OK  # type: ignore[misc]


@given(
    st.lists(
        st.tuples(st.integers(0, 90 * 86400), st.integers(0, 90 * 86400)), min_size=1, max_size=20
    )
)
def test_counting_from_epoch_seconds_equals_counting_between_instants(
    spans: list[tuple[int, int]],
) -> None:
    """The count kept for the last end asked about never leaks into another span's count."""
    base = epoch_second("start", T0)
    for first, last in spans:
        start, end = T0 + timedelta(seconds=first), T0 + timedelta(seconds=last)
        expected = OFFICE.business_seconds_between(start, end)
        assert OFFICE.business_seconds_in(base + first, base + last) == expected
        assert OFFICE.business_seconds_in(base + first // 2, base + last) == (
            OFFICE.business_seconds_between(T0 + timedelta(seconds=first // 2), end)
        )
