"""The semantics table: what a support lead would read off each conversation, worked by hand.

Every row is a conversation (local times in the calendar's zone), a policy and ``now``; the
expected clocks are computed by hand, with the arithmetic in a comment above each row, and
checked exactly through ``monitor.sla.evaluate.evaluate``. The first rows reproduce the worked
examples helpdesk vendors publish (Zendesk's business-hours SLA examples) on a Mon-Fri
09:00-17:00 calendar in Europe/Berlin.

Dates: Mon 2026-11-16 to Fri 2026-11-20 is a plain week (CET, UTC+1), Sat 21 and Sun 22 the
weekend, Mon 2026-11-23 the next Monday. DST: Europe/Berlin springs forward on 2026-03-29 and
falls back on 2026-10-25; America/New_York on 2026-03-08 and 2026-11-01.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from factories import mail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.calendars import PublicHolidays
from monitor.mail.classify import MailboxIdentity, classify
from monitor.mail.headers import parse_headers
from monitor.model import Direction, FolderRole
from monitor.sla.calendar import BusinessCalendar, OpeningHours, parse_hours
from monitor.sla.clocks import ClockMessage, StatusRules
from monitor.sla.evaluate import ClockState, evaluate
from monitor.sla.policy import Policy, WarningRule

IN, OUT, IGN = Direction.INBOUND, Direction.OUTBOUND, Direction.IGNORED
MINUTE, HOUR = 60, 3600
FIRST, NEXT = "first_response", "next_response"


def hours(*texts: str) -> list[OpeningHours]:
    return [parse_hours(text) for text in texts]


def mon_fri(*texts: str) -> dict[int, list[OpeningHours]]:
    return {weekday: hours(*texts) for weekday in range(5)}


def daily(*texts: str) -> dict[int, list[OpeningHours]]:
    return {weekday: hours(*texts) for weekday in range(7)}


OFFICE = BusinessCalendar(timezone="Europe/Berlin", weekly=mon_fri("09:00-17:00"))
OFFICE_BERLIN_HOLIDAYS = BusinessCalendar(
    timezone="Europe/Berlin",
    weekly=mon_fri("09:00-17:00"),
    closed_dates=PublicHolidays("DE", "BE"),
)
OFFICE_SAXONY_HOLIDAYS = BusinessCalendar(
    timezone="Europe/Berlin",
    weekly=mon_fri("09:00-17:00"),
    closed_dates=PublicHolidays("DE", "SN"),
)
OFFICE_NEW_YEAR_CLOSED = BusinessCalendar(
    timezone="Europe/Berlin", weekly=mon_fri("09:00-17:00"), closed_dates={date(2027, 1, 1)}
)
ALWAYS_BERLIN = BusinessCalendar.always_open("Europe/Berlin")
ALWAYS_NEW_YORK = BusinessCalendar.always_open("America/New_York")
ALWAYS_UTC = BusinessCalendar.always_open("UTC")
NIGHTS_BERLIN = BusinessCalendar(timezone="Europe/Berlin", weekly=daily("22:00-06:00"))
NIGHTS_NEW_YORK = BusinessCalendar(timezone="America/New_York", weekly=daily("22:00-06:00"))
WEEKDAY_NIGHTS = BusinessCalendar(timezone="Europe/Berlin", weekly=mon_fri("22:00-06:00"))

# The team as the mailbox knows it: the shared address and every address of the domain.
TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@acme.example"}), team_domains=frozenset({"acme.example"})
)
SENT_AT = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
# Alice answers from her own address with the shared support address on CC: the mail lands in
# the watched INBOX (not Sent), and is a reply because acme.example is the team's domain.
TEAMMATE_ON_CC = mail(
    sender="Alice Berg <alice@acme.example>",
    to="Tom Baker <tom@smallshop.example>",
    subject="Re: Cannot log in",
    message_id="r1@acme.example",
    date=SENT_AT,
    in_reply_to="q1@smallshop.example",
    extra={"Cc": "Acme Support <support@acme.example>"},
)
# The helpdesk's own "we received your message" acknowledgement, from the support address.
OWN_AUTO_REPLY = mail(
    sender="Acme Support <support@acme.example>",
    to="Tom Baker <tom@smallshop.example>",
    subject="We received your message",
    message_id="ack1@acme.example",
    date=SENT_AT,
    in_reply_to="q1@smallshop.example",
    extra={"Auto-Submitted": "auto-replied"},
)
TEAMMATE_REPLY = classify(parse_headers(TEAMMATE_ON_CC), FolderRole.INBOX, TEAM).direction
AUTO_REPLY = classify(parse_headers(OWN_AUTO_REPLY), FolderRole.INBOX, TEAM).direction


def local(text: str, zone: ZoneInfo) -> datetime:
    """``2026-11-20 16:30`` (or with seconds) read on the wall clock of ``zone``, as UTC."""
    layout = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, layout).replace(tzinfo=zone).astimezone(UTC)


def policy(
    first: int,
    following: int | None = None,
    *,
    percent: float | None = None,
    before: int | None = None,
    pause_on: tuple[str, ...] = (),
) -> Policy:
    return Policy(
        name="table",
        calendar="table",
        first_response=first,
        next_response=following,
        warning=WarningRule(percent=percent, before_due=before),
        status_rules=StatusRules(pause_on=frozenset(pause_on)),
    )


@dataclass(frozen=True, slots=True)
class Status:
    """A helpdesk ticket's status change (mail has none): neither inbound nor outbound."""

    name: str


SOLVED, PENDING, OPEN = Status("solved"), Status("pending"), Status("open")


@dataclass(frozen=True, slots=True)
class Dismissal:
    """A person's "no reply needed" at that instant: handed to ``evaluate`` as data."""


DISMISS = Dismissal()
Entry = tuple[str, Direction | Status | Dismissal] | tuple[str, Direction, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """One clock as a support lead reads it; times on the calendar's wall clock."""

    kind: str
    start: str
    stop: str | None
    waited: int  # business seconds
    state: str
    met: bool | None  # for a clock stopped by a reply
    due: str  # the first instant the target is reached
    breached: bool = False  # waited longer than the target while the clock ran


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    calendar: BusinessCalendar
    policy: Policy
    messages: Sequence[Entry]
    now: str
    clocks: Sequence[Expected] = field(default_factory=tuple)


def case(
    calendar: BusinessCalendar,
    target: Policy,
    messages: Sequence[Entry],
    now: str,
    *clocks: Expected,
    id: str,
) -> object:
    return pytest.param(
        Case(calendar=calendar, policy=target, messages=messages, now=now, clocks=clocks), id=id
    )


P1H = policy(HOUR)
P2H = policy(2 * HOUR)
P4H = policy(4 * HOUR)
P4H_WARN_30M = policy(4 * HOUR, before=30 * MINUTE)
P4H_WARN_75 = policy(4 * HOUR, percent=75)
P8H = policy(8 * HOUR)
P24H = policy(24 * HOUR)
P4H_PAUSE_PENDING = policy(4 * HOUR, pause_on=("pending",))

CASES = [
    # --- the published worked examples --------------------------------------------------------
    # Fri 16:30-17:00 = 30m, Mon 09:00-09:15 = 15m: 45m = 2700 s = 75% of 1h -> warning.
    # Due: 30m on Friday, the other 30m from Monday 09:00 -> Mon 09:30.
    case(
        OFFICE, P1H, [("2026-11-20 16:30", IN)], "2026-11-23 09:15",
        Expected(kind=FIRST, start="2026-11-20 16:30", stop=None, waited=45 * MINUTE,
                 state="warning", met=None, due="2026-11-23 09:30"),
        id="zendesk_1h_created_friday_1630_due_monday_0930",
    ),
    # Wed 10:00-11:00 = 1h of a 2h target (warning from 1h30m) -> ok; due 10:00 + 2h = 12:00.
    case(
        OFFICE, P2H, [("2026-11-18 10:00", IN)], "2026-11-18 11:00",
        Expected(kind=FIRST, start="2026-11-18 10:00", stop=None, waited=HOUR, state="ok",
                 met=None, due="2026-11-18 12:00"),
        id="zendesk_2h_created_wednesday_1000_due_1200",
    ),
    # Before opening nothing counts (0 s at 08:59); counting starts at 09:00 -> due 11:00.
    case(
        OFFICE, P2H, [("2026-11-18 07:00", IN)], "2026-11-18 08:59",
        Expected(kind=FIRST, start="2026-11-18 07:00", stop=None, waited=0, state="ok",
                 met=None, due="2026-11-18 11:00"),
        id="zendesk_2h_created_wednesday_0700_due_1100",
    ),
    # Tue 16:30-17:00 = 30m + Wed 09:00-10:30 = 1h30m = 2h. Due: 30m Tue + 3h30m Wed = 12:30.
    case(
        OFFICE, P4H, [("2026-11-17 16:30", IN), ("2026-11-18 10:30", OUT)], "2026-11-18 12:00",
        Expected(kind=FIRST, start="2026-11-17 16:30", stop="2026-11-18 10:30", waited=2 * HOUR,
                 state="answered", met=True, due="2026-11-18 12:30"),
        id="zendesk_arrives_1630_answered_next_day_1030_waited_2h",
    ),
    # Tue 20:00 is after hours: 0 s on Tuesday + Wed 09:00-09:15 = 15m. Due Wed 09:00 + 1h.
    case(
        OFFICE, P1H, [("2026-11-17 20:00", IN), ("2026-11-18 09:15", OUT)], "2026-11-18 12:00",
        Expected(kind=FIRST, start="2026-11-17 20:00", stop="2026-11-18 09:15",
                 waited=15 * MINUTE, state="answered", met=True, due="2026-11-18 10:00"),
        id="zendesk_arrives_2000_answered_next_day_0915_waited_15m",
    ),
    # 4h target, warning 30m before due: threshold 3h30m = 12600 s. 09:00-12:29:59 = 12599 s.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN)], "2026-11-16 12:29:59",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=12599, state="ok",
                 met=None, due="2026-11-16 13:00"),
        id="zendesk_4h_warn_30m_ok_one_second_before_3h30",
    ),
    # 09:00-12:30 = 12600 s = the threshold: warning from exactly 3h30m.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN)], "2026-11-16 12:30",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=12600, state="warning",
                 met=None, due="2026-11-16 13:00"),
        id="zendesk_4h_warn_30m_warning_at_exactly_3h30",
    ),
    # 09:00-13:00 = 14400 s = the target, not over it: a reply now would be on time.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN)], "2026-11-16 13:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=14400, state="warning",
                 met=None, due="2026-11-16 13:00"),
        id="zendesk_4h_warn_30m_still_warning_at_exactly_4h",
    ),
    # 09:00-13:00:01 = 14401 s > 14400: breached one second after 4h of business time.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN)], "2026-11-16 13:00:01",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=14401,
                 state="breached", met=None, due="2026-11-16 13:00", breached=True),
        id="zendesk_4h_warn_30m_breached_one_second_after_4h",
    ),
    # A reply at 13:00 = 14400 s = the target: on time.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN), ("2026-11-16 13:00", OUT)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 13:00", waited=14400,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="reply_at_exactly_the_target_is_on_time",
    ),
    # A reply at 13:00:01 = 14401 s: late by one second.
    case(
        OFFICE, P4H_WARN_30M, [("2026-11-16 09:00", IN), ("2026-11-16 13:00:01", OUT)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 13:00:01", waited=14401,
                 state="answered", met=False, due="2026-11-16 13:00", breached=True),
        id="reply_one_second_after_the_target_is_late",
    ),
    # Fri 16:50-17:00 = 10m + Mon 09:00-09:20 = 20m = 30m. Due: 10m Fri + 50m Mon = Mon 09:50.
    case(
        OFFICE, P1H, [("2026-11-20 16:50", IN), ("2026-11-23 09:20", OUT)], "2026-11-23 12:00",
        Expected(kind=FIRST, start="2026-11-20 16:50", stop="2026-11-23 09:20",
                 waited=30 * MINUTE, state="answered", met=True, due="2026-11-23 09:50"),
        id="zendesk_friday_1650_reply_monday_0920_waited_30m",
    ),
    # --- next response ------------------------------------------------------------------------
    # First: 09:00-10:00 = 1h = the 1h target (on time), due 10:00. Next (Zendesk): from the
    # oldest unanswered customer message, 14:00 (not the 15:00 follow-up), to Tue 10:00:
    # 14:00-17:00 = 3h + Tue 09:00-10:00 = 1h = 4h of 8h; due 3h Mon + 5h Tue = Tue 14:00.
    case(
        OFFICE, policy(HOUR, 8 * HOUR),
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", OUT), ("2026-11-16 14:00", IN),
         ("2026-11-16 15:00", IN), ("2026-11-17 10:00", OUT)],
        "2026-11-17 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="answered", met=True, due="2026-11-16 10:00"),
        Expected(kind=NEXT, start="2026-11-16 14:00", stop="2026-11-17 10:00", waited=4 * HOUR,
                 state="answered", met=True, due="2026-11-17 14:00"),
        id="next_response_starts_at_oldest_unanswered_customer_message",
    ),
    # First 09:00-09:30 = 30m of 1h, due 10:00. Next has its own 30m target: 16:00-17:00 = 1h +
    # Tue 09:00-09:15 = 15m = 4500 s > 1800 -> breached; due 16:00 + 30m = 16:30.
    case(
        OFFICE, policy(HOUR, 30 * MINUTE, percent=50),
        [("2026-11-16 09:00", IN), ("2026-11-16 09:30", OUT), ("2026-11-16 16:00", IN)],
        "2026-11-17 09:15",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 09:30",
                 waited=30 * MINUTE, state="answered", met=True, due="2026-11-16 10:00"),
        Expected(kind=NEXT, start="2026-11-16 16:00", stop=None, waited=4500, state="breached",
                 met=None, due="2026-11-16 16:30", breached=True),
        id="next_response_target_differs_from_first_response",
    ),
    # No next-response target: the 1h first-response target applies. 16:00-17:00 = 1h is
    # reached exactly at closing, so due Mon 17:00; + Tue 09:00-09:15 = 4500 s > 3600.
    case(
        OFFICE, P1H,
        [("2026-11-16 09:00", IN), ("2026-11-16 09:30", OUT), ("2026-11-16 16:00", IN)],
        "2026-11-17 09:15",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 09:30",
                 waited=30 * MINUTE, state="answered", met=True, due="2026-11-16 10:00"),
        Expected(kind=NEXT, start="2026-11-16 16:00", stop=None, waited=4500, state="breached",
                 met=None, due="2026-11-16 17:00", breached=True),
        id="next_response_without_own_target_uses_first_response_target",
    ),
    # The team wrote first: the customer's answer starts a next-response clock (2h target):
    # 11:00-12:00 = 1h < 1h30m (75%) -> ok; due 13:00.
    case(
        OFFICE, policy(HOUR, 2 * HOUR), [("2026-11-16 09:00", OUT), ("2026-11-16 11:00", IN)],
        "2026-11-16 12:00",
        Expected(kind=NEXT, start="2026-11-16 11:00", stop=None, waited=HOUR, state="ok",
                 met=None, due="2026-11-16 13:00"),
        id="team_started_conversation_has_only_a_next_response_clock",
    ),
    # --- holidays -----------------------------------------------------------------------------
    # DE-BE: Thu 2026-12-24 is a working day (16:00-17:00 = 1h), Fri 25 is Christmas Day, then
    # the weekend; Mon 28 09:00-10:00 = 1h. 2h < 3h (75%) -> ok. Due: 1h Thu + 3h Mon = 12:00.
    case(
        OFFICE_BERLIN_HOLIDAYS, P4H, [("2026-12-24 16:00", IN)], "2026-12-28 10:00",
        Expected(kind=FIRST, start="2026-12-24 16:00", stop=None, waited=2 * HOUR, state="ok",
                 met=None, due="2026-12-28 12:00"),
        id="public_holiday_christmas_day_berlin_is_closed",
    ),
    # A message on Christmas Day counts from Mon 28 09:00: 09:00-09:30 = 30m; due 10:00.
    case(
        OFFICE_BERLIN_HOLIDAYS, P1H, [("2026-12-25 11:00", IN), ("2026-12-28 09:30", OUT)],
        "2026-12-28 12:00",
        Expected(kind=FIRST, start="2026-12-25 11:00", stop="2026-12-28 09:30",
                 waited=30 * MINUTE, state="answered", met=True, due="2026-12-28 10:00"),
        id="message_on_public_holiday_counts_from_next_opening",
    ),
    # Wed 2026-11-18 (Repentance Day) is a holiday in Saxony only: open in Berlin,
    # 10:00-12:00 = 2h = the target -> warning (not over it); due 12:00.
    case(
        OFFICE_BERLIN_HOLIDAYS, P2H, [("2026-11-18 10:00", IN)], "2026-11-18 12:00",
        Expected(kind=FIRST, start="2026-11-18 10:00", stop=None, waited=2 * HOUR,
                 state="warning", met=None, due="2026-11-18 12:00"),
        id="saxon_holiday_is_a_working_day_in_berlin",
    ),
    # The same message under DE-SN: Wednesday is closed, 0 s; due Thu 09:00 + 2h = 11:00.
    case(
        OFFICE_SAXONY_HOLIDAYS, P2H, [("2026-11-18 10:00", IN)], "2026-11-18 12:00",
        Expected(kind=FIRST, start="2026-11-18 10:00", stop=None, waited=0, state="ok",
                 met=None, due="2026-11-19 11:00"),
        id="saxon_holiday_is_closed_in_saxony",
    ),
    # --- DST, 24x7 ----------------------------------------------------------------------------
    # Berlin Sun 2026-03-29 00:00 CET (Sat 23:00 UTC) to Mon 00:00 CEST (Sun 22:00 UTC) = 23h.
    # Due 23:00 UTC + 24h = Sun 23:00 UTC = Mon 01:00 CEST.
    case(
        ALWAYS_BERLIN, P24H, [("2026-03-29 00:00", IN), ("2026-03-30 00:00", OUT)],
        "2026-03-30 12:00",
        Expected(kind=FIRST, start="2026-03-29 00:00", stop="2026-03-30 00:00", waited=23 * HOUR,
                 state="answered", met=True, due="2026-03-30 01:00"),
        id="dst_24x7_berlin_spring_forward_day_is_23h",
    ),
    # Berlin Sun 2026-10-25 00:00 CEST (Sat 22:00 UTC) to Mon 00:00 CET (Sun 23:00 UTC) = 25h
    # > 24h -> late. Due 22:00 UTC + 24h = Sun 22:00 UTC = Sun 23:00 CET.
    case(
        ALWAYS_BERLIN, P24H, [("2026-10-25 00:00", IN), ("2026-10-26 00:00", OUT)],
        "2026-10-26 12:00",
        Expected(kind=FIRST, start="2026-10-25 00:00", stop="2026-10-26 00:00", waited=25 * HOUR,
                 state="answered", met=False, due="2026-10-25 23:00", breached=True),
        id="dst_24x7_berlin_fall_back_day_is_25h",
    ),
    # New York Sun 2026-03-08 00:00 EST (05:00 UTC) to Mon 00:00 EDT (04:00 UTC) = 23h.
    # Due 05:00 UTC + 24h = Mon 05:00 UTC = Mon 01:00 EDT.
    case(
        ALWAYS_NEW_YORK, P24H, [("2026-03-08 00:00", IN), ("2026-03-09 00:00", OUT)],
        "2026-03-09 12:00",
        Expected(kind=FIRST, start="2026-03-08 00:00", stop="2026-03-09 00:00", waited=23 * HOUR,
                 state="answered", met=True, due="2026-03-09 01:00"),
        id="dst_24x7_new_york_spring_forward_day_is_23h",
    ),
    # New York Sun 2026-11-01 00:00 EDT (04:00 UTC) to Mon 00:00 EST (05:00 UTC) = 25h -> late.
    # Due 04:00 UTC + 24h = Mon 04:00 UTC = Sun 23:00 EST.
    case(
        ALWAYS_NEW_YORK, P24H, [("2026-11-01 00:00", IN), ("2026-11-02 00:00", OUT)],
        "2026-11-02 12:00",
        Expected(kind=FIRST, start="2026-11-01 00:00", stop="2026-11-02 00:00", waited=25 * HOUR,
                 state="answered", met=False, due="2026-11-01 23:00", breached=True),
        id="dst_24x7_new_york_fall_back_day_is_25h",
    ),
    # --- DST, overnight shift 22:00-06:00 every day --------------------------------------------
    # Berlin Sat 22:00 CET (21:00 UTC) to Sun 06:00 CEST (04:00 UTC) = 7h of 8h: over 6h (75%)
    # -> warning. The last hour: Sun 22:00 CEST (20:00 UTC) + 1h = Sun 23:00 CEST.
    case(
        NIGHTS_BERLIN, P8H, [("2026-03-28 22:00", IN)], "2026-03-29 06:00",
        Expected(kind=FIRST, start="2026-03-28 22:00", stop=None, waited=7 * HOUR,
                 state="warning", met=None, due="2026-03-29 23:00"),
        id="dst_overnight_berlin_spring_forward_night_is_7h",
    ),
    # Berlin Sat 22:00 CEST (20:00 UTC) to Sun 06:00 CET (05:00 UTC) = 9h > 8h -> breached.
    # Due 20:00 UTC + 8h = 04:00 UTC = Sun 05:00 CET.
    case(
        NIGHTS_BERLIN, P8H, [("2026-10-24 22:00", IN)], "2026-10-25 06:00",
        Expected(kind=FIRST, start="2026-10-24 22:00", stop=None, waited=9 * HOUR,
                 state="breached", met=None, due="2026-10-25 05:00", breached=True),
        id="dst_overnight_berlin_fall_back_night_is_9h",
    ),
    # New York Sat 22:00 EST (03:00 UTC) to Sun 06:00 EDT (10:00 UTC) = 7h -> warning. The
    # last hour: Sun 22:00 EDT (Mon 02:00 UTC) + 1h = Sun 23:00 EDT.
    case(
        NIGHTS_NEW_YORK, P8H, [("2026-03-07 22:00", IN)], "2026-03-08 06:00",
        Expected(kind=FIRST, start="2026-03-07 22:00", stop=None, waited=7 * HOUR,
                 state="warning", met=None, due="2026-03-08 23:00"),
        id="dst_overnight_new_york_spring_forward_night_is_7h",
    ),
    # New York Sat 22:00 EDT (02:00 UTC) to Sun 06:00 EST (11:00 UTC) = 9h -> breached.
    # Due 02:00 UTC + 8h = 10:00 UTC = Sun 05:00 EST.
    case(
        NIGHTS_NEW_YORK, P8H, [("2026-10-31 22:00", IN)], "2026-11-01 06:00",
        Expected(kind=FIRST, start="2026-10-31 22:00", stop=None, waited=9 * HOUR,
                 state="breached", met=None, due="2026-11-01 05:00", breached=True),
        id="dst_overnight_new_york_fall_back_night_is_9h",
    ),
    # --- overnight shifts, Mon-Fri 22:00-06:00 ------------------------------------------------
    # Monday's shift runs into Tuesday: 23:30-00:45 = 1h15m; due 23:30 + 2h = Tue 01:30.
    case(
        WEEKDAY_NIGHTS, P2H, [("2026-11-16 23:30", IN), ("2026-11-17 00:45", OUT)],
        "2026-11-17 12:00",
        Expected(kind=FIRST, start="2026-11-16 23:30", stop="2026-11-17 00:45", waited=4500,
                 state="answered", met=True, due="2026-11-17 01:30"),
        id="overnight_shift_answered_across_midnight",
    ),
    # Tue 05:30-06:00 (Monday's shift) = 30m + Tue 22:00-22:30 = 30m = 1h = the target.
    case(
        WEEKDAY_NIGHTS, P1H, [("2026-11-17 05:30", IN), ("2026-11-17 22:30", OUT)],
        "2026-11-18 12:00",
        Expected(kind=FIRST, start="2026-11-17 05:30", stop="2026-11-17 22:30", waited=HOUR,
                 state="answered", met=True, due="2026-11-17 22:30"),
        id="overnight_shift_message_before_close_answered_next_night",
    ),
    # --- 24x7 ---------------------------------------------------------------------------------
    # UTC 16:30-16:50 = 20m of a 30m target; warning 10m before due = from 20m -> warning.
    case(
        ALWAYS_UTC, policy(30 * MINUTE, before=10 * MINUTE), [("2026-11-21 16:30", IN)],
        "2026-11-21 16:50",
        Expected(kind=FIRST, start="2026-11-21 16:30", stop=None, waited=20 * MINUTE,
                 state="warning", met=None, due="2026-11-21 17:00"),
        id="always_open_counts_saturday_evening",
    ),
    # --- what starts, stops and does nothing -----------------------------------------------------
    # The 11:00 follow-up joins the 09:00 clock: one clock 09:00-12:00 = 3h; due 13:00.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 11:00", IN), ("2026-11-16 12:00", OUT)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 12:00", waited=3 * HOUR,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="customer_follow_up_before_reply_does_not_restart",
    ),
    # The 11:00 reply answers nothing: still one clock, 09:00-10:00 = 1h.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", OUT), ("2026-11-16 11:00", OUT)],
        "2026-11-17 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="reply_while_nothing_is_awaited_starts_nothing",
    ),
    # Our autoresponder's acknowledgement (ignored) at 09:01 does not stop it; the reply at
    # 11:00 does: 09:00-11:00 = 2h.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 09:01", AUTO_REPLY), ("2026-11-16 11:00", OUT)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 11:00", waited=2 * HOUR,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="own_auto_reply_does_not_stop_the_clock",
    ),
    # With only the acknowledgement, the customer still waits: 09:00-12:00 = 3h = 75% -> warning.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 09:01", AUTO_REPLY)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2026-11-16 13:00"),
        id="own_auto_reply_leaves_the_customer_waiting",
    ),
    # Alice's reply from her own address (support on CC) is outbound: 09:00-10:15 = 1h15m.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 10:15", TEAMMATE_REPLY)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:15", waited=4500,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="teammate_reply_from_own_address_with_support_on_cc_stops_the_clock",
    ),
    # Archived unanswered at 10:00: closed after 1h, before the 13:00 due time: not a breach.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN, "2026-11-16 10:00")], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="closed", met=None, due="2026-11-16 13:00"),
        id="closed_without_reply_before_the_target",
    ),
    # Archived unanswered at 14:00: 5h > 4h, the breach stands (met is for replies only).
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN, "2026-11-16 14:00")], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 14:00", waited=5 * HOUR,
                 state="closed", met=None, due="2026-11-16 13:00", breached=True),
        id="closed_without_reply_after_the_target",
    ),
    # Archived unanswered at 10:00 (1h), then the customer writes again at 14:00. The team has
    # never replied, so the new clock is a first-response clock again: 14:00-15:00 = 1h < 3h
    # -> ok; due 3h Monday + 1h Tuesday = Tue 10:00.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN, "2026-11-16 10:00"), ("2026-11-16 14:00", IN)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="closed", met=None, due="2026-11-16 13:00"),
        Expected(kind=FIRST, start="2026-11-16 14:00", stop=None, waited=HOUR, state="ok",
                 met=None, due="2026-11-17 10:00"),
        id="customer_writes_again_after_archive_starts_a_second_first_response_clock",
    ),
    # --- helpdesk ticket statuses -------------------------------------------------------------
    # Solved at 10:00 without a reply: stopped after 1h, before the 13:00 due time.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 10:00", SOLVED)], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="solved", met=None, due="2026-11-16 13:00"),
        id="ticket_solved_before_the_target",
    ),
    # Solved at 14:00: 5h > 4h, the breach stands.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 14:00", SOLVED)], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 14:00", waited=5 * HOUR,
                 state="solved", met=None, due="2026-11-16 13:00", breached=True),
        id="ticket_solved_after_the_target",
    ),
    # By default no status pauses: pending at 10:00 changes nothing, 09:00-12:00 = 3h -> warning.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING)], "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2026-11-16 13:00"),
        id="pending_does_not_pause_unless_the_policy_says_so",
    ),
    # pause_on pending: 09:00-10:00 = 1h counted, then paused. Due assumes the wait resumes now
    # (15:00): 3h left = 15:00-17:00 + Tue 09:00-10:00 -> Tue 10:00.
    case(
        OFFICE, P4H_PAUSE_PENDING, [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=HOUR, state="paused",
                 met=None, due="2026-11-17 10:00"),
        id="pending_pauses_the_clock",
    ),
    # Paused 10:00-13:00 until the customer writes back: 1h + 13:00-15:00 2h = 3h -> warning;
    # due: 3h left from 13:00 -> 16:00.
    case(
        OFFICE, P4H_PAUSE_PENDING,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING), ("2026-11-16 13:00", IN)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2026-11-16 16:00"),
        id="customer_message_ends_the_pause",
    ),
    # Paused 10:00-11:00 until the ticket is reopened: 1h + 11:00-12:00 1h = 2h -> ok; due:
    # 3h left from 11:00 -> 14:00.
    case(
        OFFICE, P4H_PAUSE_PENDING,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING), ("2026-11-16 11:00", OPEN)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=2 * HOUR, state="ok",
                 met=None, due="2026-11-16 14:00"),
        id="reopened_ticket_ends_the_pause",
    ),
    # Paused from 10:00 until the 14:00 reply: only 09:00-10:00 = 1h counts; due: 3h left
    # from 14:00 is reached as Monday closes -> 17:00.
    case(
        OFFICE, P4H_PAUSE_PENDING,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING), ("2026-11-16 14:00", OUT)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 14:00", waited=HOUR,
                 state="answered", met=True, due="2026-11-16 17:00"),
        id="reply_during_a_pause_stops_the_clock",
    ),
    # Only an ignored message and a reply: nobody waited, no clock.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IGN), ("2026-11-16 09:05", OUT)], "2026-11-16 15:00",
        id="ignored_message_and_reply_make_no_clock",
    ),
    # --- dismissed: "no reply needed" ---------------------------------------------------------
    # Dismissed at 10:00, before the 13:00 due time: stopped after 1h, not a breach; it never
    # breaches later (now 15:00 is past the due time).
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 10:00", DISMISS)], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="dismissed", met=None, due="2026-11-16 13:00"),
        id="dismissed_before_the_target_is_not_a_breach",
    ),
    # Dismissed at 14:00 from the breach alert: 5h > 4h, the breach already counted stands.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 14:00", DISMISS)], "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 14:00", waited=5 * HOUR,
                 state="dismissed", met=None, due="2026-11-16 13:00", breached=True),
        id="dismissed_after_the_target_keeps_the_breach",
    ),
    # Dismissed 10:00; the customer writes again at 11:00: a new clock, and since the team
    # never replied, a first-response one again: 11:00-12:00 = 1h -> ok; due 15:00.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", DISMISS), ("2026-11-16 11:00", IN)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="dismissed", met=None, due="2026-11-16 13:00"),
        Expected(kind=FIRST, start="2026-11-16 11:00", stop=None, waited=HOUR, state="ok",
                 met=None, due="2026-11-16 15:00"),
        id="customer_message_after_a_dismissal_starts_a_new_clock",
    ),
    # A follow-up in the same second as the dismissal was seen before it: one clock, dismissed
    # with both messages; nothing waits after.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", IN), ("2026-11-16 10:00", DISMISS)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="dismissed", met=None, due="2026-11-16 13:00"),
        id="message_of_the_same_second_counts_as_before_the_dismissal",
    ),
    # Answered at 10:00; a dismissal at 11:00 (an old alert's button) finds nothing running.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", OUT), ("2026-11-16 11:00", DISMISS)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 10:00", waited=HOUR,
                 state="answered", met=True, due="2026-11-16 13:00"),
        id="dismissal_while_nothing_runs_does_nothing",
    ),
    # Archived at 09:30, dismissed at 10:00: the wait had already closed without reply.
    case(
        OFFICE, P4H,
        [("2026-11-16 09:00", IN, "2026-11-16 09:30"), ("2026-11-16 10:00", DISMISS)],
        "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 09:30", waited=1800,
                 state="closed", met=None, due="2026-11-16 13:00"),
        id="dismissal_after_the_mail_was_archived_leaves_it_closed",
    ),
    # A dismissal recorded after ``now`` is not made yet: still running at 12:00 -> warning.
    case(
        OFFICE, P4H, [("2026-11-16 09:00", IN), ("2026-11-16 13:00", DISMISS)], "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2026-11-16 13:00"),
        id="dismissal_later_than_now_is_not_made_yet",
    ),
    # pause_on pending: paused from 10:00, dismissed at 14:00: 1h counted, the pause closed.
    case(
        OFFICE, P4H_PAUSE_PENDING,
        [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING), ("2026-11-16 14:00", DISMISS)],
        "2026-11-16 15:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop="2026-11-16 14:00", waited=HOUR,
                 state="dismissed", met=None, due="2026-11-16 17:00"),
        id="dismissing_a_paused_clock_stops_it",
    ),
    # --- due at a closing instant: Fri 16:00 + 1h --------------------------------------------
    # 16:00-17:00 = 1h is reached exactly as Friday closes: due Fri 17:00; 3600 s = target,
    # over 45m (75%) -> warning, not breached.
    case(
        OFFICE, P1H, [("2026-11-20 16:00", IN)], "2026-11-20 17:00",
        Expected(kind=FIRST, start="2026-11-20 16:00", stop=None, waited=HOUR, state="warning",
                 met=None, due="2026-11-20 17:00"),
        id="due_at_closing_instant_friday_1700",
    ),
    # A Saturday reply: still 3600 s, no business time passed since Friday 17:00 -> on time.
    case(
        OFFICE, P1H, [("2026-11-20 16:00", IN), ("2026-11-21 10:00", OUT)], "2026-11-23 12:00",
        Expected(kind=FIRST, start="2026-11-20 16:00", stop="2026-11-21 10:00", waited=HOUR,
                 state="answered", met=True, due="2026-11-20 17:00"),
        id="due_at_closing_instant_reply_on_saturday_is_on_time",
    ),
    # Mon 09:00:00: still 3600 s -> warning.
    case(
        OFFICE, P1H, [("2026-11-20 16:00", IN)], "2026-11-23 09:00",
        Expected(kind=FIRST, start="2026-11-20 16:00", stop=None, waited=HOUR, state="warning",
                 met=None, due="2026-11-20 17:00"),
        id="due_at_closing_instant_still_warning_monday_0900",
    ),
    # Mon 09:00:01: 3601 s -> breached.
    case(
        OFFICE, P1H, [("2026-11-20 16:00", IN)], "2026-11-23 09:00:01",
        Expected(kind=FIRST, start="2026-11-20 16:00", stop=None, waited=HOUR + 1,
                 state="breached", met=None, due="2026-11-20 17:00", breached=True),
        id="due_at_closing_instant_breached_monday_090001",
    ),
    # A reply at Mon 09:00:01: 3601 s -> late.
    case(
        OFFICE, P1H, [("2026-11-20 16:00", IN), ("2026-11-23 09:00:01", OUT)],
        "2026-11-23 12:00",
        Expected(kind=FIRST, start="2026-11-20 16:00", stop="2026-11-23 09:00:01",
                 waited=HOUR + 1, state="answered", met=False, due="2026-11-20 17:00",
                 breached=True),
        id="due_at_closing_instant_reply_monday_090001_is_late",
    ),
    # --- warning rules ------------------------------------------------------------------------
    # 75% of 4h = 3h = 10800 s; 09:00-11:59:59 = 10799 s -> ok.
    case(
        OFFICE, P4H_WARN_75, [("2026-11-16 09:00", IN)], "2026-11-16 11:59:59",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=10799, state="ok",
                 met=None, due="2026-11-16 13:00"),
        id="warning_by_percent_ok_one_second_before_75_percent",
    ),
    # 09:00-12:00 = 10800 s = 75% -> warning.
    case(
        OFFICE, P4H_WARN_75, [("2026-11-16 09:00", IN)], "2026-11-16 12:00",
        Expected(kind=FIRST, start="2026-11-16 09:00", stop=None, waited=10800, state="warning",
                 met=None, due="2026-11-16 13:00"),
        id="warning_by_percent_at_75_percent_of_4h_is_3h",
    ),
    # 4h, warning 1h before due -> from 3h. Fri 15:00-17:00 = 2h + Mon 09:00-09:59:59 -> ok.
    case(
        OFFICE, policy(4 * HOUR, before=HOUR), [("2026-11-20 15:00", IN)], "2026-11-23 09:59:59",
        Expected(kind=FIRST, start="2026-11-20 15:00", stop=None, waited=3 * HOUR - 1,
                 state="ok", met=None, due="2026-11-23 11:00"),
        id="warning_before_due_across_weekend_ok_until_monday_1000",
    ),
    # Fri 2h + Mon 09:00-10:00 1h = 3h -> warning; due 2h Fri + 2h Mon = Mon 11:00.
    case(
        OFFICE, policy(4 * HOUR, before=HOUR), [("2026-11-20 15:00", IN)], "2026-11-23 10:00",
        Expected(kind=FIRST, start="2026-11-20 15:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2026-11-23 11:00"),
        id="warning_before_due_across_weekend_from_monday_1000",
    ),
    # --- weekends and the year boundary -------------------------------------------------------
    # Sat 11:00: nothing counts until Mon 09:00; Mon 09:00-10:00 = 1h; due Mon 11:00.
    case(
        OFFICE, P2H, [("2026-11-21 11:00", IN)], "2026-11-23 10:00",
        Expected(kind=FIRST, start="2026-11-21 11:00", stop=None, waited=HOUR, state="ok",
                 met=None, due="2026-11-23 11:00"),
        id="weekend_start_counts_from_monday_0900",
    ),
    # Asked and answered on Sunday: 0 business seconds.
    case(
        OFFICE, P2H, [("2026-11-22 11:00", IN), ("2026-11-22 15:00", OUT)], "2026-11-23 10:00",
        Expected(kind=FIRST, start="2026-11-22 11:00", stop="2026-11-22 15:00", waited=0,
                 state="answered", met=True, due="2026-11-23 11:00"),
        id="weekend_start_answered_on_sunday_waited_nothing",
    ),
    # Thu 2026-12-31 16:00-17:00 = 1h; Fri 2027-01-01 closed; Mon 4 09:00-11:00 = 2h: 3h = 75%
    # of 4h -> warning. Due: 1h Thu + 3h Mon = Mon 2027-01-04 12:00.
    case(
        OFFICE_NEW_YEAR_CLOSED, P4H, [("2026-12-31 16:00", IN)], "2027-01-04 11:00",
        Expected(kind=FIRST, start="2026-12-31 16:00", stop=None, waited=3 * HOUR,
                 state="warning", met=None, due="2027-01-04 12:00"),
        id="year_boundary_with_new_year_closed",
    ),
]  # fmt: skip


def clock_message(entry: Entry, zone: ZoneInfo) -> ClockMessage:
    timestamp, what = local(entry[0], zone), entry[1]
    assert not isinstance(what, Dismissal), "dismissals are not messages"
    if isinstance(what, Status):
        return ClockMessage(timestamp=timestamp, direction=IGN, status=what.name)
    removed = local(entry[2], zone) if len(entry) == 3 else None
    return ClockMessage(timestamp=timestamp, direction=what, removed_at=removed)


@pytest.mark.parametrize("row", CASES)
def test_semantics_table(row: Case) -> None:
    """Each conversation's clocks have the hand-computed kind, start, stop, business seconds
    waited, state, met-target flag, breach flag and due instant."""
    zone = row.calendar.zone
    messages = [clock_message(e, zone) for e in row.messages if not isinstance(e[1], Dismissal)]
    dismissals = [local(e[0], zone) for e in row.messages if isinstance(e[1], Dismissal)]

    verdict = evaluate(
        messages, row.policy, row.calendar, local(row.now, zone), dismissals=dismissals
    )

    got = [
        (
            v.clock.kind.value,
            v.clock.started_at,
            v.clock.stopped_at,
            v.business_seconds,
            v.state.value,
            v.met_target,
            v.breached,
            v.due_at,
        )
        for v in verdict.clocks
    ]
    assert got == [
        (
            e.kind,
            local(e.start, zone),
            local(e.stop, zone) if e.stop else None,
            e.waited,
            e.state,
            e.met,
            e.breached,
            local(e.due, zone),
        )
        for e in row.clocks
    ]


def test_table_reaches_every_state() -> None:
    """The table covers every clock state at least once, so none goes unchecked."""
    states = {e.state for param in CASES for e in param.values[0].clocks}
    assert states == {state.value for state in ClockState}


@pytest.mark.parametrize(
    ("message", "direction", "reason"),
    [
        pytest.param(
            TEAMMATE_ON_CC, OUT, "from team domain acme.example", id="teammate_with_support_on_cc"
        ),
        pytest.param(
            OWN_AUTO_REPLY,
            IGN,
            "our own auto-reply (Auto-Submitted: auto-replied)",
            id="own_autoresponder",
        ),
    ],
)
def test_table_directions_come_from_classification(
    message: bytes, direction: Direction, reason: str
) -> None:
    """The directions the table feeds in for a teammate's reply and our autoresponder are what
    the mail classifier decides for those messages found in the INBOX."""
    verdict = classify(parse_headers(message), FolderRole.INBOX, TEAM)
    assert (verdict.direction, verdict.reason) == (direction, reason)


# --- properties over random conversations and calendars ------------------------------------------

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
START = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def shifts(draw: st.DrawFn) -> OpeningHours:
    """A shift on a quarter-hour grid, up to 24 h long, possibly past midnight."""
    opens = draw(st.integers(0, 95))
    length = draw(st.integers(1, 96))
    closes = (opens + length) % 96
    return time(opens // 4, opens % 4 * 15), time(closes // 4, closes % 4 * 15)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    """A random weekly calendar in a zone with or without DST, with a few closed dates."""
    weekly = draw(
        st.dictionaries(st.integers(0, 6), st.lists(shifts(), max_size=2), min_size=1).filter(
            lambda days: any(days.values())
        )
    )
    closed = draw(
        st.sets(st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 12, 31)), max_size=8)
    )
    return BusinessCalendar(
        timezone=draw(st.sampled_from(ZONES)), weekly=weekly, closed_dates=closed
    )


@st.composite
def conversations(draw: st.DrawFn) -> list[ClockMessage]:
    """Up to 8 messages a few seconds to 3 days apart: customer messages (some later removed),
    replies, ignored mail and helpdesk status changes."""
    instant = START + timedelta(seconds=draw(st.integers(0, 300 * 86400)))
    messages: list[ClockMessage] = []
    for _ in range(draw(st.integers(0, 8))):
        instant += timedelta(seconds=draw(st.integers(0, 3 * 86400)))
        what = draw(st.sampled_from([IN, IN, OUT, IGN, PENDING, PENDING, OPEN, SOLVED]))
        if isinstance(what, Status):
            messages.append(ClockMessage(timestamp=instant, direction=IGN, status=what.name))
            continue
        removed = draw(st.none() | st.integers(0, 3 * 86400))
        messages.append(
            ClockMessage(
                timestamp=instant,
                direction=what,
                removed_at=instant + timedelta(seconds=removed) if removed is not None else None,
            )
        )
    return messages


warning_rules = st.builds(WarningRule, percent=st.floats(1, 99)) | st.builds(
    WarningRule, before_due=st.integers(0, 86400)
)
policies = st.builds(
    Policy,
    name=st.just("random"),
    calendar=st.just("random"),
    first_response=st.integers(1, 3 * 86400),
    next_response=st.none() | st.integers(1, 3 * 86400),
    warning=warning_rules,
    status_rules=st.sampled_from([StatusRules(), StatusRules(pause_on=frozenset({"pending"}))]),
)
AWAITING = {ClockState.OK, ClockState.WARNING, ClockState.BREACHED}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calendar=calendars(),
    messages=conversations(),
    target=policies,
    later=st.integers(0, 5 * 86400),
)
def test_business_time_never_exceeds_real_time_and_breach_means_over_target(
    calendar: BusinessCalendar, messages: list[ClockMessage], target: Policy, later: int
) -> None:
    """On any calendar and any conversation, no clock counts more business seconds than real
    seconds, clocks never overlap so their stopped sum fits in real time too, a clock is
    breached exactly when it waited longer than its target, pauses only ever take time away,
    and a reply meets the target exactly when it comes no later than breach_after."""
    now = (messages[-1].timestamp if messages else START) + timedelta(seconds=later)
    never_paused = replace(target, status_rules=replace(target.status_rules, pause_on=frozenset()))

    verdict = evaluate(messages, target, calendar, now)
    unpaused = evaluate(messages, never_paused, calendar, now)

    previous_stop = None
    for clock in verdict.clocks:
        end = clock.clock.stopped_at or now
        assert 0 <= clock.business_seconds <= clock.calendar_seconds
        assert clock.calendar_seconds == int((end - clock.clock.started_at).total_seconds())
        assert clock.breached == (clock.business_seconds > clock.target)
        assert clock.target == target.target(clock.clock.kind.value)
        assert (clock.state is ClockState.PAUSED) == clock.clock.paused
        if clock.state in AWAITING:
            assert (clock.state is ClockState.BREACHED) == (clock.business_seconds > clock.target)
            assert (clock.state is ClockState.WARNING) == (
                clock.warning_threshold <= clock.business_seconds <= clock.target
            )
        if clock.met_target is not None and not clock.clock.pauses:
            assert clock.met_target == (clock.clock.stopped_at <= clock.breach_after)
        if previous_stop is not None:
            assert clock.clock.started_at >= previous_stop
        previous_stop = end
    stopped = [c for c in verdict.clocks if not c.running]
    if stopped:
        span = stopped[-1].clock.stopped_at - stopped[0].clock.started_at
        assert sum(c.business_seconds for c in stopped) <= sum(c.calendar_seconds for c in stopped)
        assert sum(c.calendar_seconds for c in stopped) <= span.total_seconds()
    assert [v.clock.started_at for v in unpaused.clocks] == [
        v.clock.started_at for v in verdict.clocks
    ]
    assert [v.clock.stopped_at for v in unpaused.clocks] == [
        v.clock.stopped_at for v in verdict.clocks
    ]
    for paused, counted in zip(verdict.clocks, unpaused.clocks, strict=True):
        assert paused.business_seconds <= counted.business_seconds


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calendar=calendars(),
    messages=conversations(),
    target=policies,
    marks=st.lists(st.integers(-86400, 10 * 86400), max_size=3),
)
def test_no_clock_runs_past_a_dismissal(
    calendar: BusinessCalendar, messages: list[ClockMessage], target: Policy, marks: list[int]
) -> None:
    """With dismissals at random instants (in any order), no clock runs on past one: each is
    stopped there or had stopped before; every dismissed clock stops at a dismissal, and
    without dismissals nothing is dismissed."""
    first = messages[0].timestamp if messages else START
    dismissals = [first + timedelta(seconds=mark) for mark in marks]
    now = max([first, *dismissals]) + timedelta(days=1)

    verdict = evaluate(messages, target, calendar, now, dismissals=dismissals)
    again = evaluate(messages, target, calendar, now, dismissals=list(reversed(dismissals)))
    plain = evaluate(messages, target, calendar, now)

    assert [v.clock for v in again.clocks] == [v.clock for v in verdict.clocks]
    assert ClockState.DISMISSED not in {v.state for v in plain.clocks}
    for clock in verdict.clocks:
        c = clock.clock
        for at in dismissals:
            assert not (c.started_at <= at and (c.stopped_at is None or at < c.stopped_at))
        if clock.state is ClockState.DISMISSED:
            assert c.stopped_at in dismissals


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calendar=calendars(),
    offset=st.integers(0, 300 * 86400),
    target=st.integers(1, 3 * 86400),
)
def test_reply_at_last_instant_within_target_meets_it_and_one_second_later_does_not(
    calendar: BusinessCalendar, offset: int, target: int
) -> None:
    """A reply at exactly add_business_seconds(start, target) meets the target; that instant
    is always open, so a reply one second later is late by exactly one second."""
    start = START + timedelta(seconds=offset)
    last = calendar.add_business_seconds(start, target)
    rules = policy(target)

    def answered_at(instant: datetime) -> tuple[int, bool | None]:
        messages = [
            ClockMessage(timestamp=start, direction=IN),
            ClockMessage(timestamp=instant, direction=OUT),
        ]
        [clock] = evaluate(messages, rules, calendar, instant).clocks
        return clock.business_seconds, clock.met_target

    assert calendar.due_instant(start, target) <= last
    assert answered_at(last) == (target, True)
    assert calendar.is_open(last)
    assert answered_at(last + timedelta(seconds=1)) == (target + 1, False)


def test_breach_after_skips_a_pause_that_begins_as_the_target_is_reached() -> None:
    """With a 1h target reached exactly as the ticket goes pending at 10:00 and reopened at
    11:00, replies at 10:30 and 11:00 are on time, so the last instant within the target
    (breach_after) is 11:00, when counting resumes."""
    zone = OFFICE.zone
    rules = policy(HOUR, pause_on=("pending",))
    asked = [("2026-11-16 09:00", IN), ("2026-11-16 10:00", PENDING), ("2026-11-16 11:00", OPEN)]

    def answered_at(reply: str) -> tuple[bool | None, datetime]:
        messages = [clock_message(entry, zone) for entry in [*asked, (reply, OUT)]]
        [clock] = evaluate(messages, rules, OFFICE, local("2026-11-16 15:00", zone)).clocks
        return clock.met_target, clock.breach_after

    assert [answered_at(reply)[0] for reply in ("2026-11-16 10:30", "2026-11-16 11:00")] == [
        True,
        True,
    ]
    assert answered_at("2026-11-16 11:00")[1] == local("2026-11-16 11:00", zone)
