"""Reply clocks: what starts a customer's wait, what ends it, and what does nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import (
    Clock,
    ClockKind,
    ClockMessage,
    StatusRules,
    StopReason,
    segment_clocks,
)
from monitor.sla.evaluate import ClockState, evaluate
from monitor.sla.policy import Policy

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
IN, OUT, IGN = Direction.INBOUND, Direction.OUTBOUND, Direction.IGNORED


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(
    minutes: int, direction: Direction, removed: int | None = None, author: str = ""
) -> ClockMessage:
    return ClockMessage(
        timestamp=at(minutes),
        direction=direction,
        removed_at=at(removed) if removed is not None else None,
        author=author,
    )


FIRST, NEXT = ClockKind.FIRST, ClockKind.NEXT


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param([msg(0, IN)], [Clock(kind=FIRST, started_at=at(0))], id="waiting"),
        pytest.param(
            [msg(0, IN), msg(30, OUT, author="a@t")],
            [
                Clock(
                    kind=FIRST,
                    started_at=at(0),
                    stopped_at=at(30),
                    stop_reason=StopReason.REPLY,
                    responder="a@t",
                )
            ],
            id="answered",
        ),
        pytest.param(
            [msg(0, IN), msg(10, IN), msg(20, IN), msg(30, OUT)],
            [
                Clock(
                    kind=FIRST,
                    started_at=at(0),
                    stopped_at=at(30),
                    stop_reason=StopReason.REPLY,
                    customer_messages=3,
                )
            ],
            id="follow_ups_do_not_restart",
        ),
        pytest.param(
            [msg(0, IN), msg(30, OUT), msg(40, OUT)],
            [Clock(kind=FIRST, started_at=at(0), stopped_at=at(30), stop_reason=StopReason.REPLY)],
            id="second_reply_starts_nothing",
        ),
        pytest.param(
            [msg(0, IN), msg(30, OUT), msg(90, IN), msg(95, IN), msg(200, OUT)],
            [
                Clock(
                    kind=FIRST, started_at=at(0), stopped_at=at(30), stop_reason=StopReason.REPLY
                ),
                Clock(
                    kind=NEXT,
                    started_at=at(90),
                    stopped_at=at(200),
                    stop_reason=StopReason.REPLY,
                    customer_messages=2,
                ),
            ],
            id="next_response_from_oldest_unanswered",
        ),
        pytest.param(
            [msg(0, IN), msg(5, IGN), msg(6, IGN)],
            [Clock(kind=FIRST, started_at=at(0))],
            id="auto_replies_do_not_stop",
        ),
        pytest.param(
            [msg(0, OUT), msg(60, IN)],
            [Clock(kind=NEXT, started_at=at(60))],
            id="team_started_conversation",
        ),
        pytest.param(
            [msg(0, IN, removed=50)],
            [Clock(kind=FIRST, started_at=at(0), stopped_at=at(50), stop_reason=StopReason.CLOSED)],
            id="archived_without_reply",
        ),
        pytest.param(
            [msg(0, IN, removed=50), msg(10, IN)],
            [Clock(kind=FIRST, started_at=at(0), customer_messages=2)],
            id="one_of_two_archived_keeps_running",
        ),
        pytest.param(
            [msg(0, IN, removed=100), msg(30, OUT)],
            [Clock(kind=FIRST, started_at=at(0), stopped_at=at(30), stop_reason=StopReason.REPLY)],
            id="archived_after_reply_is_answered",
        ),
        pytest.param(
            [msg(0, IN, removed=20), msg(30, OUT), msg(40, IN)],
            [
                Clock(
                    kind=FIRST, started_at=at(0), stopped_at=at(20), stop_reason=StopReason.CLOSED
                ),
                Clock(kind=NEXT, started_at=at(40)),
            ],
            id="archived_then_reply_then_new_question",
        ),
        pytest.param([msg(0, IGN), msg(3, OUT)], [], id="nothing_to_answer"),
        pytest.param(
            [msg(0, OUT), msg(0, IN)],
            [Clock(kind=FIRST, started_at=at(0), stopped_at=at(0), stop_reason=StopReason.REPLY)],
            id="same_second_reply_counts_after_question",
        ),
    ],
)
def test_segment_clocks(messages: list[ClockMessage], expected: list[Clock]) -> None:
    """Each message sequence yields exactly the clocks a support lead would draw by hand."""
    assert segment_clocks(messages) == expected


def test_order_of_input_does_not_matter() -> None:
    """Messages are put in time order before the clocks are cut."""
    messages = [msg(0, IN), msg(30, OUT), msg(90, IN)]
    assert segment_clocks(list(reversed(messages))) == segment_clocks(messages)


HELPDESK = StatusRules(pause_on=frozenset({"pending", "on_hold"}))


def status(minutes: int, value: str) -> ClockMessage:
    return ClockMessage(timestamp=at(minutes), direction=IGN, status=value)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param(
            [msg(0, IN), status(30, "solved")],
            [Clock(kind=FIRST, started_at=at(0), stopped_at=at(30), stop_reason=StopReason.SOLVED)],
            id="solved_stops",
        ),
        pytest.param(
            [msg(0, IN), status(30, "pending"), status(90, "open")],
            [Clock(kind=FIRST, started_at=at(0), pauses=((at(30), at(90)),))],
            id="pending_pauses_until_open",
        ),
        pytest.param(
            [msg(0, IN), status(30, "pending"), msg(50, IN)],
            [Clock(kind=FIRST, started_at=at(0), customer_messages=2, pauses=((at(30), at(50)),))],
            id="customer_reply_resumes",
        ),
        pytest.param(
            [msg(0, IN), status(30, "pending")],
            [Clock(kind=FIRST, started_at=at(0), pauses=((at(30), None),))],
            id="still_paused",
        ),
        pytest.param(
            [msg(0, IN), status(30, "on_hold"), msg(40, OUT)],
            [
                Clock(
                    kind=FIRST,
                    started_at=at(0),
                    stopped_at=at(40),
                    stop_reason=StopReason.REPLY,
                    pauses=((at(30), at(40)),),
                )
            ],
            id="reply_while_paused_stops",
        ),
        pytest.param(
            [msg(0, IN), status(10, "solved"), msg(60, IN)],
            [
                Clock(
                    kind=FIRST, started_at=at(0), stopped_at=at(10), stop_reason=StopReason.SOLVED
                ),
                Clock(kind=FIRST, started_at=at(60)),
            ],
            id="reopened_by_customer",
        ),
        pytest.param(
            [status(5, "pending"), status(6, "solved")], [], id="status_alone_starts_nothing"
        ),
    ],
)
def test_ticket_statuses_pause_and_stop(
    messages: list[ClockMessage], expected: list[Clock]
) -> None:
    """Helpdesk statuses pause (pending, on_hold when configured) and stop (solved) clocks."""
    assert segment_clocks(messages, HELPDESK) == expected


def test_mail_clocks_ignore_statuses_without_rules() -> None:
    """With the default rules a pending status does nothing; solved still stops."""
    assert segment_clocks([msg(0, IN), status(30, "pending")]) == [
        Clock(kind=FIRST, started_at=at(0))
    ]


def test_pauses_are_not_counted_as_waiting() -> None:
    """A 24x7 clock paused for an hour has waited an hour less, and its due time moves on."""
    policy = Policy(name="p", calendar="c", first_response=2 * 3600, status_rules=HELPDESK)
    calendar = BusinessCalendar.always_open()
    messages = [msg(0, IN), status(30, "pending"), status(90, "open")]
    verdict = evaluate(messages, policy, calendar, at(120)).clocks[0]
    assert (verdict.business_seconds, verdict.state) == (60 * 60, ClockState.OK)
    assert verdict.due_at == at(180)  # 2h of counting: 0-30 and 90-180
    paused = evaluate([msg(0, IN), status(30, "pending")], policy, calendar, at(600)).clocks[0]
    assert (paused.business_seconds, paused.state, paused.awaiting) == (
        1800,
        ClockState.PAUSED,
        False,
    )
    assert paused.due_at == at(600 + 90)  # if the wait resumed now, 1h30m would remain


def thanks(minutes: int) -> ClockMessage:
    """A customer message that is only a closing phrase ("Thanks, that fixed it!")."""
    return ClockMessage(timestamp=at(minutes), direction=IN, closing=True)


def test_a_closing_message_after_our_reply_starts_no_clock() -> None:
    """ "Thanks!" after the reply: nobody owes an answer, so no next-response clock starts;
    a real question after it starts one as usual."""
    replied = Clock(
        kind=FIRST, started_at=at(0), stopped_at=at(30), stop_reason=StopReason.REPLY,
        responder="a@t",
    )  # fmt: skip
    assert segment_clocks([msg(0, IN), msg(30, OUT, author="a@t"), thanks(40)]) == [replied]
    again = segment_clocks([msg(0, IN), msg(30, OUT, author="a@t"), thanks(40), msg(50, IN)])
    assert [(c.kind, c.started_at) for c in again] == [(FIRST, at(0)), (NEXT, at(50))]


def test_a_closing_message_first_or_while_a_clock_runs_counts_as_customer_mail() -> None:
    """Before any reply a "Thanks" may well be a question's opener: it starts the first
    clock; while a clock runs it is one more message of that wait."""
    (first,) = segment_clocks([thanks(0)])
    assert (first.kind, first.started_at) == (FIRST, at(0))
    (running,) = segment_clocks([msg(0, IN), thanks(10)])
    assert (running.started_at, running.customer_messages) == (at(0), 2)
