"""Reply clocks: what starts a customer's wait, what ends it, and what does nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.model import Direction
from monitor.sla.clocks import Clock, ClockKind, ClockMessage, StopReason, segment_clocks

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
