"""Behaviour of the business-hours calendar: counting and stepping open time, exactly."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.sla.calendar import (
    BusinessCalendar,
    CalendarError,
    OpeningHours,
    combine_closed_dates,
    format_hours,
    parse_hours,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
HOUR = 3600


def shifts(*texts: str) -> list[OpeningHours]:
    """Parse shift texts such as ``"09:00-17:00"``."""
    return [parse_hours(text) for text in texts]


def every_day(*texts: str) -> dict[int, list[OpeningHours]]:
    return {weekday: shifts(*texts) for weekday in range(7)}


def weekdays(*texts: str) -> dict[int, list[OpeningHours]]:
    return {weekday: shifts(*texts) for weekday in range(MON, SAT)}


def at(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2025) -> datetime:
    return at(BERLIN, year, month, day, hour, minute)


# Mon-Fri 09:00-17:00 in Berlin. In March 2025 (CET) Monday is the 3rd, Wednesday the 5th,
# Friday the 7th, the weekend the 8th and 9th, and the next Monday the 10th.
OFFICE = BusinessCalendar(timezone="Europe/Berlin", weekly=weekdays("09:00-17:00"))


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("09:00-17:00", (time(9), time(17)), id="office_day"),
        pytest.param("9:30 - 12:00", (time(9, 30), time(12)), id="single_digit_hour_and_spaces"),
        pytest.param("22:00-06:00", (time(22), time(6)), id="overnight_shift"),
        pytest.param("00:00-24:00", (time(0), time(0)), id="whole_day"),
        pytest.param("08:00-24:00", (time(8), time(0)), id="until_midnight"),
    ],
)
def test_parse_hours_reads_shifts(text: str, expected: OpeningHours) -> None:
    """Shift texts become (opens, closes) times, with 24:00 stored as the next day's 00:00."""
    assert parse_hours(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "9-5", 'opening hours must look like "09:00-17:00", got: "9-5"', id="no_minutes"
        ),
        pytest.param("", 'opening hours must look like "09:00-17:00", got: ""', id="empty"),
        pytest.param(
            "25:00-26:00",
            'opening hours must look like "09:00-17:00", with hours 00-23 (24:00 only as an end) '
            'and minutes 00-59, got: "25:00-26:00"',
            id="hour_out_of_range",
        ),
        pytest.param(
            "24:00-06:00",
            'opening hours must look like "09:00-17:00", with hours 00-23 (24:00 only as an end) '
            'and minutes 00-59, got: "24:00-06:00"',
            id="start_at_24",
        ),
    ],
)
def test_parse_hours_rejects_malformed_text(text: str, message: str) -> None:
    """Malformed shift text raises a ValueError quoting the text and the expected shape."""
    with pytest.raises(ValueError) as raised:
        parse_hours(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("hours", "text"),
    [
        pytest.param((time(9), time(17)), "09:00-17:00", id="office_day"),
        pytest.param((time(0), time(0)), "00:00-24:00", id="whole_day"),
        pytest.param((time(22), time(6, 0, 30)), "22:00-06:00:30", id="seconds_shown"),
    ],
)
def test_format_hours_writes_what_parse_hours_reads(hours: OpeningHours, text: str) -> None:
    """A shift formats back to text, ending at 24:00 when it closes at midnight."""
    assert format_hours(hours) == text


# -- an office week --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "seconds", "expected"),
    [
        # 16:30-17:00 Friday is 30 min; the other 30 min run from 09:00 Monday.
        pytest.param(berlin(3, 7, 16, 30), HOUR, berlin(3, 10, 9, 30), id="friday_late_to_monday"),
        pytest.param(berlin(3, 5, 10), 2 * HOUR, berlin(3, 5, 12), id="wednesday_morning"),
        # Nothing counts before 09:00, so 2 h end at 11:00.
        pytest.param(berlin(3, 5, 7), 2 * HOUR, berlin(3, 5, 11), id="before_opening"),
        pytest.param(berlin(3, 8, 12), HOUR, berlin(3, 10, 10), id="weekend_start"),
        # Mon 13-17 (4 h) + Tue (8 h) + Wed (8 h) + Thu 09-13 (4 h) = 24 h.
        pytest.param(berlin(3, 3, 13), 24 * HOUR, berlin(3, 6, 13), id="three_business_days"),
        # The hour is used up at 17:00 Friday; counting resumes, and a reply is still within
        # the hour, until 09:00 Monday.
        pytest.param(berlin(3, 7, 16), HOUR, berlin(3, 10, 9), id="used_up_at_close"),
        pytest.param(berlin(3, 5, 10), 0, berlin(3, 5, 10), id="zero_in_open_hours"),
        pytest.param(berlin(3, 5, 7), 0, berlin(3, 5, 9), id="zero_before_opening"),
        pytest.param(berlin(3, 7, 17), 0, berlin(3, 10, 9), id="zero_at_closing"),
    ],
)
def test_add_business_seconds_in_an_office_week(
    start: datetime, seconds: int, expected: datetime
) -> None:
    """Adding business time skips nights and weekends of a Mon-Fri 09:00-17:00 calendar."""
    result = OFFICE.add_business_seconds(start, seconds)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # 16:30-17:00 (1800 s) + 09:00-10:30 (5400 s).
        pytest.param(berlin(3, 5, 16, 30), berlin(3, 6, 10, 30), 7200, id="late_then_next_morning"),
        # Nothing from 20:00 to 09:00, then 09:00-09:15.
        pytest.param(berlin(3, 5, 20), berlin(3, 6, 9, 15), 900, id="evening_then_next_morning"),
        # Friday 16:50-17:00 (600 s) + Monday 09:00-09:20 (1200 s).
        pytest.param(berlin(3, 7, 16, 50), berlin(3, 10, 9, 20), 1800, id="friday_to_monday"),
        pytest.param(berlin(3, 5, 10), berlin(3, 5, 10, 20), 1200, id="inside_one_day"),
        pytest.param(berlin(3, 8), berlin(3, 10), 0, id="whole_weekend"),
        pytest.param(berlin(3, 3), berlin(3, 10), 5 * 8 * HOUR, id="whole_week"),
        pytest.param(berlin(3, 6), berlin(3, 5), 0, id="end_before_start"),
        pytest.param(berlin(3, 5, 10), berlin(3, 5, 10), 0, id="same_instant"),
    ],
)
def test_business_seconds_between_in_an_office_week(
    start: datetime, end: datetime, expected: int
) -> None:
    """Only the seconds inside Mon-Fri 09:00-17:00 count, and never a negative number."""
    assert OFFICE.business_seconds_between(start, end) == expected


@pytest.mark.parametrize(
    ("instant", "is_open", "next_open"),
    [
        pytest.param(berlin(3, 5, 9), True, berlin(3, 5, 9), id="opening_instant_is_open"),
        pytest.param(berlin(3, 5, 12), True, berlin(3, 5, 12), id="midday"),
        pytest.param(berlin(3, 5, 17), False, berlin(3, 6, 9), id="closing_instant_is_closed"),
        pytest.param(berlin(3, 8, 11), False, berlin(3, 10, 9), id="saturday"),
    ],
)
def test_is_open_and_next_open(instant: datetime, is_open: bool, next_open: datetime) -> None:
    """Open intervals include their opening instant and exclude their closing instant."""
    assert OFFICE.is_open(instant) is is_open
    assert OFFICE.next_open(instant) == next_open


def test_sub_second_parts_are_dropped_before_counting() -> None:
    """Instants are floored to the whole second, and an open start with 0 seconds is kept as is."""
    start = berlin(3, 5, 10).replace(microsecond=900_000)
    end = berlin(3, 5, 10).replace(second=2, microsecond=100_000)
    assert OFFICE.business_seconds_between(start, end) == 2  # 10:00:00 to 10:00:02
    assert OFFICE.add_business_seconds(start, 0) == start
    assert OFFICE.add_business_seconds(start, 1) == berlin(3, 5, 10).replace(second=1)


# -- closed dates, open dates, several shifts a day -----------------------------------------------


@pytest.mark.parametrize(
    ("closed", "start", "end", "expected"),
    [
        # Good Friday (18 April) and Easter Monday (21 April) closed: Thursday 16-17 (1 h)
        # + Tuesday 09-10 (1 h).
        pytest.param(
            [date(2025, 4, 18), date(2025, 4, 21)],
            berlin(4, 17, 16),
            berlin(4, 22, 10),
            2 * HOUR,
            id="easter_skipped",
        ),
        # The same span without holidays: Thu 1 h + Fri 8 h + Mon 8 h + Tue 1 h.
        pytest.param([], berlin(4, 17, 16), berlin(4, 22, 10), 18 * HOUR, id="no_holidays"),
        # Wednesday 31 Dec 16-17 (1 h), Thursday 1 Jan closed, Friday 2 Jan 09-10 (1 h).
        pytest.param(
            [date(2026, 1, 1)],
            berlin(12, 31, 16),
            berlin(1, 2, 10, year=2026),
            2 * HOUR,
            id="year_boundary",
        ),
    ],
)
def test_closed_dates_are_skipped(
    closed: list[date], start: datetime, end: datetime, expected: int
) -> None:
    """A closed date contributes no business time, and stepping jumps over it."""
    calendar = BusinessCalendar(
        timezone="Europe/Berlin", weekly=weekdays("09:00-17:00"), closed_dates=closed
    )
    assert calendar.business_seconds_between(start, end) == expected
    assert calendar.add_business_seconds(start, expected) == end


@dataclass
class RecordingHolidays:
    """A holiday source closing New Year's Day that records which years it was asked about."""

    asked: list[int] = field(default_factory=list)

    def closed_dates(self, year: int) -> frozenset[date]:
        self.asked.append(year)
        return frozenset({date(year, 1, 1)})


def test_holiday_source_is_asked_lazily_once_per_year() -> None:
    """A holiday source answers for any year on demand and each year is asked only once."""
    source = RecordingHolidays()
    calendar = BusinessCalendar(
        timezone="Europe/Berlin", weekly=weekdays("09:00-17:00"), closed_dates=source
    )
    assert source.asked == []
    # Tuesday 31 Dec 2030 16-17 (1 h), Wednesday 1 Jan 2031 closed, Thursday 2 Jan 09-10 (1 h).
    start, end = berlin(12, 31, 16, year=2030), berlin(1, 2, 10, year=2031)
    assert calendar.business_seconds_between(start, end) == 2 * HOUR
    assert calendar.add_business_seconds(start, 2 * HOUR) == end
    assert calendar.business_seconds_between(berlin(1, 1, year=2087), berlin(1, 2, year=2087)) == 0
    assert {2030, 2031, 2087} <= set(source.asked)
    assert len(source.asked) == len(set(source.asked))


def test_combined_closed_dates_close_every_date_of_every_source() -> None:
    """Company days off combined with a holiday source close the union of their dates."""
    closed = combine_closed_dates(RecordingHolidays(), [date(2031, 1, 2)])
    calendar = BusinessCalendar(
        timezone="Europe/Berlin", weekly=weekdays("09:00-17:00"), closed_dates=closed
    )
    # Wed 1 Jan and Thu 2 Jan 2031 closed; Friday 3 Jan is the only open day of the week.
    assert calendar.business_seconds_between(berlin(1, 1, year=2031), berlin(1, 4, year=2031)) == (
        8 * HOUR
    )


LUNCH_BREAK = BusinessCalendar(
    timezone="Europe/Berlin", weekly=weekdays("09:00-12:00", "13:00-17:00")
)


@pytest.mark.parametrize(
    ("start", "seconds", "expected"),
    [
        # 11:30-12:00 then 13:00-13:30.
        pytest.param(berlin(3, 5, 11, 30), HOUR, berlin(3, 5, 13, 30), id="across_lunch"),
        # Used up at 12:00, so the result is when counting resumes.
        pytest.param(berlin(3, 5, 11), HOUR, berlin(3, 5, 13), id="used_up_at_lunch"),
        pytest.param(berlin(3, 5, 12, 30), 0, berlin(3, 5, 13), id="zero_during_lunch"),
        # 09-12 (3 h) + 13-17 (4 h) + next day 09:00-10:00.
        pytest.param(berlin(3, 5, 9), 8 * HOUR, berlin(3, 6, 10), id="full_day_and_an_hour"),
    ],
)
def test_several_shifts_a_day(start: datetime, seconds: int, expected: datetime) -> None:
    """Time between two shifts of the same day does not count."""
    assert LUNCH_BREAK.add_business_seconds(start, seconds) == expected


def test_lunch_break_is_not_counted() -> None:
    """From 11:00 to 14:00 with a 12:00-13:00 break, two hours count."""
    assert LUNCH_BREAK.business_seconds_between(berlin(3, 5, 11), berlin(3, 5, 14)) == 2 * HOUR
    assert not LUNCH_BREAK.is_open(berlin(3, 5, 12, 30))


@pytest.mark.parametrize(
    ("open_dates", "default_open_hours", "expected"),
    [
        # Saturday 8 March opens with the usual weekday hours: Fri 16-17 (1 h) + Sat 8 h +
        # Mon 09-10 (1 h).
        pytest.param([date(2025, 3, 8)], [], 10 * HOUR, id="saturday_usual_hours"),
        # Given hours 10:00-14:00: 1 h + 4 h + 1 h.
        pytest.param(
            {date(2025, 3, 8): shifts("10:00-14:00")}, [], 6 * HOUR, id="saturday_given_hours"
        ),
        # No hours given: the default (10:00-12:00) applies because Saturday has none.
        pytest.param(
            [date(2025, 3, 8)], shifts("10:00-12:00"), 4 * HOUR, id="saturday_default_hours"
        ),
    ],
)
def test_open_dates_open_a_closed_weekday(
    open_dates: Mapping[date, Sequence[OpeningHours]] | list[date],
    default_open_hours: list[OpeningHours],
    expected: int,
) -> None:
    """An extra open date counts with its given hours, its weekday's, or the default ones."""
    calendar = BusinessCalendar(
        timezone="Europe/Berlin",
        weekly=weekdays("09:00-17:00"),
        open_dates=open_dates,
        default_open_hours=default_open_hours,
    )
    assert calendar.business_seconds_between(berlin(3, 7, 16), berlin(3, 10, 10)) == expected


def test_open_date_overrides_a_closed_date() -> None:
    """A date both closed and explicitly opened is open with the hours given for it."""
    calendar = BusinessCalendar(
        timezone="Europe/Berlin",
        weekly=weekdays("09:00-17:00"),
        closed_dates=[date(2025, 12, 24)],
        open_dates={date(2025, 12, 24): shifts("09:00-12:00")},
    )
    assert calendar.business_seconds_between(berlin(12, 24), berlin(12, 25)) == 3 * HOUR


@pytest.mark.parametrize(
    ("weekly", "start", "end", "expected"),
    [
        # 09:00-13:00 and 12:00-17:00 overlap: 09:00-17:00 is 8 h, not 9.
        pytest.param(
            {MON: shifts("09:00-13:00", "12:00-17:00")},
            berlin(3, 3),
            berlin(3, 4),
            8 * HOUR,
            id="overlapping_same_day",
        ),
        # Monday 22:00 to Tuesday 06:00 overlaps Tuesday 05:00-09:00: one stretch of 11 h.
        pytest.param(
            {MON: shifts("22:00-06:00"), TUE: shifts("05:00-09:00")},
            berlin(3, 3, 12),
            berlin(3, 5),
            11 * HOUR,
            id="overnight_into_morning_shift",
        ),
        pytest.param(
            {MON: shifts("08:00-08:00")}, berlin(3, 3), berlin(3, 5), 24 * HOUR, id="24h_shift"
        ),
    ],
)
def test_overlapping_shifts_count_once(
    weekly: dict[int, list[OpeningHours]], start: datetime, end: datetime, expected: int
) -> None:
    """Overlapping shifts, also across midnight, are merged so no second counts twice."""
    calendar = BusinessCalendar(timezone="Europe/Berlin", weekly=weekly)
    assert calendar.business_seconds_between(start, end) == expected


# -- overnight shifts and closed dates ------------------------------------------------------------

NIGHTS = every_day("22:00-06:00")


@pytest.mark.parametrize(
    ("closed", "instant", "is_open"),
    [
        # Tuesday 4 March closed: Monday's shift still runs into it until 06:00 ...
        pytest.param(date(2025, 3, 4), berlin(3, 4, 3), True, id="shift_into_closed_date_runs"),
        # ... but Tuesday's own 22:00 shift does not start.
        pytest.param(date(2025, 3, 4), berlin(3, 4, 23), False, id="closed_dates_shift_skipped"),
        # Monday 3 March closed: Sunday's shift runs into Monday, Monday's does not start.
        pytest.param(date(2025, 3, 3), berlin(3, 3, 5), True, id="previous_evening_runs"),
        pytest.param(date(2025, 3, 3), berlin(3, 4, 1), False, id="next_night_skipped"),
    ],
)
def test_overnight_shift_belongs_to_the_day_it_starts(
    closed: date, instant: datetime, is_open: bool
) -> None:
    """Closing a date removes the shift starting on it, not the one running into it."""
    calendar = BusinessCalendar(timezone="Europe/Berlin", weekly=NIGHTS, closed_dates=[closed])
    assert calendar.is_open(instant) is is_open


def test_closed_date_shows_the_previous_nights_tail() -> None:
    """A closed date's open intervals are the tail of the shift that started the evening before."""
    calendar = BusinessCalendar(
        timezone="Europe/Berlin", weekly=NIGHTS, closed_dates=[date(2025, 3, 4)]
    )
    # Tuesday 00:00-06:00 CET is 23:00 Monday to 05:00 Tuesday UTC.
    assert calendar.open_intervals_utc(date(2025, 3, 4)) == (
        (utc(2025, 3, 3, 23), utc(2025, 3, 4, 5)),
    )
    # Monday noon to Wednesday noon: only Monday's 8-hour night.
    assert calendar.business_seconds_between(berlin(3, 3, 12), berlin(3, 5, 12)) == 8 * HOUR


# -- daylight saving time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "weekly", "start", "end", "expected"),
    [
        # Sat 22:00 CET (21:00Z) to Sun 06:00 CEST (04:00Z): 7 real hours.
        pytest.param(
            BERLIN, NIGHTS, berlin(3, 29, 12), berlin(3, 30, 12), 7 * HOUR, id="berlin_spring_night"
        ),
        # Sat 22:00 CEST (20:00Z) to Sun 06:00 CET (05:00Z): 9 real hours.
        pytest.param(
            BERLIN, NIGHTS, berlin(10, 25, 12), berlin(10, 26, 12), 9 * HOUR, id="berlin_fall_night"
        ),
        # Sat 22:00 EST (03:00Z) to Sun 06:00 EDT (10:00Z): 7 real hours.
        pytest.param(
            NEW_YORK,
            NIGHTS,
            at(NEW_YORK, 2025, 3, 8, 12),
            at(NEW_YORK, 2025, 3, 9, 12),
            7 * HOUR,
            id="new_york_spring_night",
        ),
        # Sat 22:00 EDT (02:00Z) to Sun 06:00 EST (11:00Z): 9 real hours.
        pytest.param(
            NEW_YORK,
            NIGHTS,
            at(NEW_YORK, 2025, 11, 1, 12),
            at(NEW_YORK, 2025, 11, 2, 12),
            9 * HOUR,
            id="new_york_fall_night",
        ),
        # 00:00 CET (23:00Z Sat) to 06:00 CEST (04:00Z): 5 real hours.
        pytest.param(
            BERLIN,
            every_day("00:00-06:00"),
            berlin(3, 30),
            berlin(3, 30, 12),
            5 * HOUR,
            id="berlin_spring_early_shift",
        ),
        # 00:00 CEST (22:00Z Sat) to 06:00 CET (05:00Z): 7 real hours.
        pytest.param(
            BERLIN,
            every_day("00:00-06:00"),
            berlin(10, 26),
            berlin(10, 26, 12),
            7 * HOUR,
            id="berlin_fall_early_shift",
        ),
        # 00:00 EST (05:00Z) to 06:00 EDT (10:00Z): 5 real hours.
        pytest.param(
            NEW_YORK,
            every_day("00:00-06:00"),
            at(NEW_YORK, 2025, 3, 9),
            at(NEW_YORK, 2025, 3, 9, 12),
            5 * HOUR,
            id="new_york_spring_early_shift",
        ),
        # 00:00 EDT (04:00Z) to 06:00 EST (11:00Z): 7 real hours.
        pytest.param(
            NEW_YORK,
            every_day("00:00-06:00"),
            at(NEW_YORK, 2025, 11, 2),
            at(NEW_YORK, 2025, 11, 2, 12),
            7 * HOUR,
            id="new_york_fall_early_shift",
        ),
        # Lord Howe falls back 30 min: Sat 22:00 +11 (11:00Z) to Sun 06:00 +10:30 (19:30Z).
        pytest.param(
            LORD_HOWE,
            NIGHTS,
            at(LORD_HOWE, 2025, 4, 5, 12),
            at(LORD_HOWE, 2025, 4, 6, 12),
            8 * HOUR + 1800,
            id="lord_howe_fall_night",
        ),
        # ... and springs forward 30 min: Sat 22:00 +10:30 (11:30Z) to Sun 06:00 +11 (19:00Z).
        pytest.param(
            LORD_HOWE,
            NIGHTS,
            at(LORD_HOWE, 2025, 10, 4, 12),
            at(LORD_HOWE, 2025, 10, 5, 12),
            7 * HOUR + 1800,
            id="lord_howe_spring_night",
        ),
    ],
)
def test_night_shifts_count_real_elapsed_time_across_dst(
    zone: ZoneInfo,
    weekly: dict[int, list[OpeningHours]],
    start: datetime,
    end: datetime,
    expected: int,
) -> None:
    """A shift spanning a clock change counts the seconds that really passed, not wall time."""
    calendar = BusinessCalendar(timezone=str(zone), weekly=weekly)
    assert calendar.business_seconds_between(start, end) == expected
    assert calendar.add_business_seconds(start, expected) == calendar.next_open(end)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # 00:00 EST (05:00Z) to 00:00 EDT next day (04:00Z): 23 h.
        pytest.param(NEW_YORK, date(2025, 3, 9), 23 * HOUR, id="new_york_spring_day"),
        # 00:00 EDT (04:00Z) to 00:00 EST next day (05:00Z): 25 h.
        pytest.param(NEW_YORK, date(2025, 11, 2), 25 * HOUR, id="new_york_fall_day"),
        # 00:00 CET (23:00Z) to 00:00 CEST next day (22:00Z): 23 h.
        pytest.param(BERLIN, date(2025, 3, 30), 23 * HOUR, id="berlin_spring_day"),
        # 00:00 CEST (22:00Z) to 00:00 CET next day (23:00Z): 25 h.
        pytest.param(BERLIN, date(2025, 10, 26), 25 * HOUR, id="berlin_fall_day"),
        # 00:00 +11 (13:00Z) to 00:00 +10:30 next day (13:30Z): 24.5 h.
        pytest.param(LORD_HOWE, date(2025, 4, 6), 24 * HOUR + 1800, id="lord_howe_fall_day"),
        # 00:00 +10:30 (13:30Z) to 00:00 +11 next day (13:00Z): 23.5 h.
        pytest.param(LORD_HOWE, date(2025, 10, 5), 23 * HOUR + 1800, id="lord_howe_spring_day"),
        pytest.param(KOLKATA, date(2025, 3, 9), 24 * HOUR, id="kolkata_no_dst"),
    ],
)
def test_always_open_counts_the_real_length_of_a_local_day(
    zone: ZoneInfo, day: date, expected: int
) -> None:
    """A 24x7 calendar counts a local day as long as it really is: 23, 24 or 25 hours or so."""
    calendar = BusinessCalendar.always_open(str(zone))
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    assert calendar.business_seconds_between(midnight, next_midnight) == expected
    assert calendar.add_business_seconds(midnight, expected) == next_midnight
    assert calendar.business_seconds_by_day(midnight, next_midnight) == [(day, expected)]
    assert calendar.open_intervals_utc(day) == ((midnight, next_midnight),)


@pytest.mark.parametrize(
    ("zone", "weekly", "day", "expected"),
    [
        # 02:30 does not exist on 9 March in New York: the shift opens at 03:00 EDT (07:00Z)
        # and closes at 10:00 EDT (14:00Z).
        pytest.param(
            NEW_YORK,
            {SUN: shifts("02:30-10:00")},
            date(2025, 3, 9),
            ((utc(2025, 3, 9, 7), utc(2025, 3, 9, 14)),),
            id="spring_skip_hour",
        ),
        # A shift wholly inside the skipped hour never opens that day ...
        pytest.param(
            NEW_YORK, {SUN: shifts("02:00-02:45")}, date(2025, 3, 9), (), id="shift_inside_gap"
        ),
        # ... and runs 45 min on an ordinary Sunday (02:00 EDT is 06:00Z).
        pytest.param(
            NEW_YORK,
            {SUN: shifts("02:00-02:45")},
            date(2025, 3, 16),
            ((utc(2025, 3, 16, 6), utc(2025, 3, 16, 6, 45)),),
            id="same_shift_next_week",
        ),
        # 01:30 happens twice on 2 November: the first, 01:30 EDT (05:30Z), opens; the shift
        # closes at 05:00 EST (10:00Z), 4.5 real hours later.
        pytest.param(
            NEW_YORK,
            {SUN: shifts("01:30-05:00")},
            date(2025, 11, 2),
            ((utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 10)),),
            id="fall_back_repeated_hour",
        ),
        # Berlin skips 02:00-03:00: 02:30-04:00 opens at 03:00 CEST (01:00Z), 1 h.
        pytest.param(
            BERLIN,
            {SUN: shifts("02:30-04:00")},
            date(2025, 3, 30),
            ((utc(2025, 3, 30, 1), utc(2025, 3, 30, 2)),),
            id="berlin_spring_skip_hour",
        ),
        # Berlin repeats 02:00-03:00: 02:30 CEST (00:30Z) to 04:00 CET (03:00Z), 2.5 h.
        pytest.param(
            BERLIN,
            {SUN: shifts("02:30-04:00")},
            date(2025, 10, 26),
            ((utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 3)),),
            id="berlin_fall_back_repeated_hour",
        ),
        # Lord Howe skips 02:00-02:30: 02:15-03:00 opens at 02:30 +11 (15:30Z) for 30 min.
        pytest.param(
            LORD_HOWE,
            {SUN: shifts("02:15-03:00")},
            date(2025, 10, 5),
            ((utc(2025, 10, 4, 15, 30), utc(2025, 10, 4, 16)),),
            id="lord_howe_skip_half_hour",
        ),
        # Lord Howe repeats 01:30-02:00: 01:45 +11 (14:45Z) to 03:00 +10:30 (16:30Z), 1:45 h.
        pytest.param(
            LORD_HOWE,
            {SUN: shifts("01:45-03:00")},
            date(2025, 4, 6),
            ((utc(2025, 4, 5, 14, 45), utc(2025, 4, 5, 16, 30)),),
            id="lord_howe_repeated_half_hour",
        ),
    ],
)
def test_opening_times_in_gaps_and_repeats(
    zone: ZoneInfo,
    weekly: dict[int, list[OpeningHours]],
    day: date,
    expected: tuple[tuple[datetime, datetime], ...],
) -> None:
    """A skipped opening time opens when the gap ends; a repeated one at its first occurrence."""
    calendar = BusinessCalendar(timezone=str(zone), weekly=weekly)
    assert calendar.open_intervals_utc(day) == expected


def test_next_open_after_a_skipped_opening_time() -> None:
    """Before a shift whose opening time was skipped, the next opening is the end of the gap."""
    calendar = BusinessCalendar(timezone="America/New_York", weekly={SUN: shifts("02:30-10:00")})
    assert not calendar.is_open(utc(2025, 3, 9, 6, 59))
    assert calendar.next_open(utc(2025, 3, 9, 5)) == utc(2025, 3, 9, 7)


def test_add_across_spring_forward_night() -> None:
    """Five business hours from 22:00 on a spring-forward night end at 04:00 EDT."""
    calendar = BusinessCalendar(timezone="America/New_York", weekly=NIGHTS)
    # 22:00 EST (03:00Z) + 5 real hours = 08:00Z = 04:00 EDT: the clock skipped 02:00-03:00.
    assert calendar.add_business_seconds(at(NEW_YORK, 2025, 3, 8, 22), 5 * HOUR) == utc(
        2025, 3, 9, 8
    )


# -- explain ------------------------------------------------------------------------------------


def test_business_seconds_by_day_lists_every_local_date() -> None:
    """Per-day counts cover every local date of the span, closed ones with 0, and add up."""
    assert OFFICE.business_seconds_by_day(berlin(3, 7, 16, 50), berlin(3, 10, 9, 20)) == [
        (date(2025, 3, 7), 600),
        (date(2025, 3, 8), 0),
        (date(2025, 3, 9), 0),
        (date(2025, 3, 10), 1200),
    ]


def test_business_seconds_by_day_splits_night_shifts_at_midnight() -> None:
    """A night shift's seconds are counted on the local date on which they passed."""
    calendar = BusinessCalendar(timezone="Europe/Berlin", weekly=NIGHTS)
    # Monday 22:00-24:00 is 2 h on the 3rd, 00:00-06:00 is 6 h on the 4th.
    assert calendar.business_seconds_by_day(berlin(3, 3, 12), berlin(3, 4, 12)) == [
        (date(2025, 3, 3), 2 * HOUR),
        (date(2025, 3, 4), 6 * HOUR),
    ]


def test_open_intervals_utc_of_an_office_day() -> None:
    """An office day's interval is reported in UTC: 09:00-17:00 CET is 08:00-16:00Z."""
    assert OFFICE.open_intervals_utc(date(2025, 3, 5)) == (
        (utc(2025, 3, 5, 8), utc(2025, 3, 5, 16)),
    )
    assert OFFICE.open_intervals_utc(date(2025, 3, 8)) == ()


# -- errors -------------------------------------------------------------------------------------


def _naive_between() -> object:
    return OFFICE.business_seconds_between(datetime(2025, 3, 7, 16, 30), berlin(3, 10))


def _naive_end() -> object:
    return OFFICE.business_seconds_between(berlin(3, 7), datetime(2025, 3, 10, 9, 20))


def _naive_add() -> object:
    return OFFICE.add_business_seconds(datetime(2025, 3, 7, 16, 30), HOUR)


def _naive_is_open() -> object:
    return OFFICE.is_open(datetime(2025, 3, 7, 16, 30))


def _unknown_zone() -> object:
    return BusinessCalendar(timezone="Mars/Olympus_Mons", weekly=weekdays("09:00-17:00"))


def _weekday_out_of_range() -> object:
    return BusinessCalendar(timezone="UTC", weekly={7: shifts("09:00-17:00")})


def _hours_as_text() -> object:
    return BusinessCalendar(timezone="UTC", weekly={MON: ["09:00-17:00"]})  # type: ignore[list-item]


def _never_open() -> object:
    return BusinessCalendar(timezone="UTC", weekly={})


def _open_date_without_hours() -> object:
    return BusinessCalendar(timezone="UTC", weekly={}, open_dates=[date(2025, 3, 8)])


def _datetime_as_closed_date() -> object:
    return BusinessCalendar(
        timezone="UTC", weekly=weekdays("09:00-17:00"), closed_dates=[datetime(2025, 1, 1)]
    )


def _negative_seconds() -> object:
    return OFFICE.add_business_seconds(berlin(3, 5, 10), -1)


def _fractional_seconds() -> object:
    return OFFICE.add_business_seconds(berlin(3, 5, 10), 1.5)  # type: ignore[arg-type]


def _after_the_last_open_date() -> object:
    calendar = BusinessCalendar(
        timezone="UTC", weekly={}, open_dates={date(2025, 3, 8): shifts("09:00-17:00")}
    )
    return calendar.add_business_seconds(utc(2025, 3, 8, 16), 2 * HOUR)


class ClosedForever:
    """A holiday source that closes every date of every year."""

    def closed_dates(self, year: int) -> frozenset[date]:
        first = date(year, 1, 1)
        return frozenset(
            first + timedelta(days=n) for n in range((date(year + 1, 1, 1) - first).days)
        )


def _closed_forever() -> object:
    calendar = BusinessCalendar(
        timezone="UTC", weekly=weekdays("09:00-17:00"), closed_dates=ClosedForever()
    )
    return calendar.next_open(utc(2025, 3, 8))


def _before_supported_range() -> object:
    return OFFICE.is_open(datetime(1, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        pytest.param(
            _naive_between,
            "start must be a timezone-aware datetime, got naive: 2025-03-07T16:30:00",
            id="naive_start",
        ),
        pytest.param(
            _naive_end,
            "end must be a timezone-aware datetime, got naive: 2025-03-10T09:20:00",
            id="naive_end",
        ),
        pytest.param(
            _naive_add,
            "start must be a timezone-aware datetime, got naive: 2025-03-07T16:30:00",
            id="naive_add_start",
        ),
        pytest.param(
            _naive_is_open,
            "instant must be a timezone-aware datetime, got naive: 2025-03-07T16:30:00",
            id="naive_instant",
        ),
        pytest.param(
            _unknown_zone,
            'unknown time zone "Mars/Olympus_Mons": expected an IANA name such as "Europe/Berlin"',
            id="unknown_zone",
        ),
        pytest.param(
            _weekday_out_of_range,
            "weekly keys must be weekdays 0 (Monday) to 6 (Sunday), got: 7",
            id="weekday_out_of_range",
        ),
        pytest.param(
            _hours_as_text,
            "weekly[0] must hold (opens, closes) pairs of datetime.time, got: '09:00-17:00'; "
            'parse text such as "09:00-17:00" with parse_hours()',
            id="hours_as_text",
        ),
        pytest.param(
            _never_open,
            "weekly has no opening hours and no open_dates are given: "
            "the calendar would never be open",
            id="never_open",
        ),
        pytest.param(
            _open_date_without_hours,
            "open date 2025-03-08 has no hours: give them in open_dates, or set default_open_hours",
            id="open_date_without_hours",
        ),
        pytest.param(
            _datetime_as_closed_date,
            "closed_dates must hold dates (datetime.date), "
            "got: datetime.datetime(2025, 1, 1, 0, 0)",
            id="datetime_as_closed_date",
        ),
        pytest.param(
            _negative_seconds,
            "seconds must be a whole number of seconds, 0 or more, got: -1",
            id="negative_seconds",
        ),
        pytest.param(
            _fractional_seconds,
            "seconds must be a whole number of seconds, 0 or more, got: 1.5",
            id="fractional_seconds",
        ),
        pytest.param(
            _after_the_last_open_date,
            "the calendar has no open hours after 2025-03-08T16:00:00+00:00: "
            "it has no weekly hours and its last open date has passed",
            id="after_the_last_open_date",
        ),
        pytest.param(
            _closed_forever,
            # The search gives up after 41 closed blocks of 28 days.
            "the calendar has no open hours in the 1148 days after 2025-03-08T00:00:00+00:00: "
            "check its closed dates",
            id="closed_forever",
        ),
        pytest.param(
            _before_supported_range,
            "instant must lie between 0002-01-01 and 9998-01-01, got: 0001-06-01T00:00:00+00:00",
            id="before_supported_range",
        ),
    ],
)
def test_bad_values_are_rejected_with_a_message_naming_them(
    attempt: Callable[[], object], message: str
) -> None:
    """Every rejected value raises a CalendarError, a ValueError, naming the value and the fix."""
    with pytest.raises(CalendarError) as raised:
        attempt()
    assert isinstance(raised.value, ValueError)
    assert str(raised.value) == message


# -- properties ---------------------------------------------------------------------------------

# Zones with the dates of their clock changes in 2025, and the range of their UTC offsets, which
# the brute-force oracle below uses to bound its search. Santiago changes its clocks at midnight,
# so its local days start inside a gap or a repeat.
ZONES: dict[str, tuple[tuple[date, ...], tuple[int, int]]] = {
    "Europe/Berlin": ((date(2025, 3, 30), date(2025, 10, 26)), (1 * HOUR, 2 * HOUR)),
    "America/New_York": ((date(2025, 3, 9), date(2025, 11, 2)), (-5 * HOUR, -4 * HOUR)),
    "Australia/Lord_Howe": ((date(2025, 4, 6), date(2025, 10, 5)), (21 * 1800, 11 * HOUR)),
    "Asia/Kolkata": ((date(2025, 3, 9), date(2025, 12, 31)), (11 * 1800, 11 * 1800)),
    "America/Santiago": ((date(2025, 4, 6), date(2025, 9, 7)), (-4 * HOUR, -3 * HOUR)),
}
GRID = 900  # every opening time and every clock change here falls on a quarter hour


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A random calendar, the rules it was built from, and a date near a clock change."""

    zone_name: str
    weekly: dict[int, list[OpeningHours]]
    closed: frozenset[date]
    open_dates: dict[date, list[OpeningHours]]
    anchor: datetime
    calendar: BusinessCalendar


quarter_hours = st.one_of(
    st.integers(0, 95),
    st.integers(0, 16),  # bias towards 00:00-04:00, where clocks change
).map(lambda quarter: time(quarter // 4, quarter % 4 * 15))
shift_strategy = st.tuples(quarter_hours, quarter_hours)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone_name = draw(st.sampled_from(sorted(ZONES)))
    anchor_day = draw(st.sampled_from(ZONES[zone_name][0]))
    weekly = {weekday: draw(st.lists(shift_strategy, max_size=3)) for weekday in range(7)}
    if not any(weekly.values()):
        weekly[draw(st.integers(0, 6))] = [draw(shift_strategy)]
    nearby_days = st.integers(-20, 20).map(lambda offset: anchor_day + timedelta(days=offset))
    closed = frozenset(draw(st.sets(nearby_days, max_size=4)))
    open_dates = draw(
        st.dictionaries(nearby_days, st.lists(shift_strategy, min_size=1, max_size=2), max_size=2)
    )
    calendar = BusinessCalendar(
        timezone=zone_name, weekly=weekly, closed_dates=closed, open_dates=open_dates
    )
    anchor = datetime.combine(anchor_day, time(0), tzinfo=UTC)
    return Scenario(
        zone_name=zone_name,
        weekly=weekly,
        closed=closed,
        open_dates=open_dates,
        anchor=anchor,
        calendar=calendar,
    )


# Offsets from the anchor, in seconds: near the clock change or up to 25 days away (crossing the
# calendar's internal cache boundaries), and often on the quarter-hour grid where shifts begin.
offsets = st.one_of(
    st.integers(-2 * 86_400, 2 * 86_400),
    st.integers(-25 * 86_400, 25 * 86_400),
    st.integers(-25 * 86_400 // GRID, 25 * 86_400 // GRID).map(lambda quarter: quarter * GRID),
)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def oracle_first_second_reading(zone_name: str, wall: datetime) -> int:
    """Scan quarter hours for the first UTC second at which the local clock reads ``wall``."""
    zone = ZoneInfo(zone_name)
    lowest_offset, highest_offset = ZONES[zone_name][1]
    wall_as_utc = int(wall.replace(tzinfo=UTC).timestamp())
    candidate = wall_as_utc - highest_offset - HOUR
    while candidate <= wall_as_utc - lowest_offset + HOUR:
        if datetime.fromtimestamp(candidate, zone).replace(tzinfo=None) >= wall:
            return candidate
        candidate += GRID
    raise AssertionError(f"no instant reads {wall} in {zone_name}")


def oracle_between(scenario: Scenario, start: datetime, end: datetime) -> int:
    """Count open seconds by listing every shift near the span and merging them, brute force."""
    first, last = int(start.timestamp()), int(end.timestamp())
    if last <= first:
        return 0
    zone = ZoneInfo(scenario.zone_name)
    day = datetime.fromtimestamp(first, zone).date() - timedelta(days=3)
    last_day = datetime.fromtimestamp(last, zone).date() + timedelta(days=1)
    intervals: list[tuple[int, int]] = []
    while day <= last_day:
        if day in scenario.open_dates:
            hours = scenario.open_dates[day]
        elif day in scenario.closed:
            hours = []
        else:
            hours = scenario.weekly[day.weekday()]
        for opens, closes in hours:
            closing_day = day if closes > opens else day + timedelta(days=1)
            opening = oracle_first_second_reading(scenario.zone_name, datetime.combine(day, opens))
            closing = oracle_first_second_reading(
                scenario.zone_name, datetime.combine(closing_day, closes)
            )
            intervals.append((opening, closing))
        day += timedelta(days=1)
    counted, covered_until = 0, first
    for shift_opens, shift_closes in sorted(intervals):
        opening, closing = max(shift_opens, covered_until), min(shift_closes, last)
        if closing > opening:
            counted += closing - opening
            covered_until = closing
    return counted


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets)
def test_between_matches_a_brute_force_oracle(
    scenario: Scenario, offset_a: int, offset_b: int
) -> None:
    """Business seconds agree with merging every nearby shift by hand, across clock changes."""
    start = scenario.anchor + timedelta(seconds=offset_a)
    end = scenario.anchor + timedelta(seconds=offset_b)
    assert scenario.calendar.business_seconds_between(start, end) == oracle_between(
        scenario, start, end
    )


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets)
def test_add_gives_back_the_end_of_a_counted_span(
    scenario: Scenario, offset_a: int, offset_b: int
) -> None:
    """Adding the count of [start, end) to start lands on end, or on the next opening after it."""
    start, end = sorted(
        (
            scenario.anchor + timedelta(seconds=offset_a),
            scenario.anchor + timedelta(seconds=offset_b),
        )
    )
    calendar = scenario.calendar
    landed = calendar.add_business_seconds(start, calendar.business_seconds_between(start, end))
    assert landed == calendar.next_open(end)
    if calendar.is_open(end):
        assert landed == end


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets, offsets)
def test_between_adds_up_over_a_split_point(
    scenario: Scenario, offset_a: int, offset_b: int, offset_c: int
) -> None:
    """Counting [a, c) equals counting [a, b) plus [b, c) for any b between them."""
    a, b, c = sorted(scenario.anchor + timedelta(seconds=s) for s in (offset_a, offset_b, offset_c))
    between = scenario.calendar.business_seconds_between
    assert between(a, c) == between(a, b) + between(b, c)


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets)
def test_between_is_never_negative_nor_more_than_elapsed(
    scenario: Scenario, offset_a: int, offset_b: int
) -> None:
    """A count lies between 0 and the real seconds elapsed, whatever the order of the instants."""
    start = scenario.anchor + timedelta(seconds=offset_a)
    end = scenario.anchor + timedelta(seconds=offset_b)
    counted = scenario.calendar.business_seconds_between(start, end)
    assert 0 <= counted <= max(0, offset_b - offset_a)


@PROPERTY_SETTINGS
@given(scenarios(), offsets, st.integers(0, 40 * 86_400), st.integers(0, 40 * 86_400))
def test_add_is_monotonic_and_exact(
    scenario: Scenario, offset: int, seconds_a: int, seconds_b: int
) -> None:
    """More business seconds never land earlier, and the count up to the result is exact."""
    start = scenario.anchor + timedelta(seconds=offset)
    smaller, larger = sorted((seconds_a, seconds_b))
    calendar = scenario.calendar
    earlier = calendar.add_business_seconds(start, smaller)
    later = calendar.add_business_seconds(start, larger)
    assert start <= earlier <= later
    assert calendar.business_seconds_between(start, earlier) == smaller
    assert calendar.business_seconds_between(start, later) == larger
    assert calendar.is_open(later)


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets, st.integers(0, 10 * 86_400))
def test_add_marks_the_last_instant_within_a_target(
    scenario: Scenario, offset: int, offset_now: int, seconds: int
) -> None:
    """A target of ``seconds`` is exceeded by ``now`` exactly when ``now`` is past the result."""
    start = scenario.anchor + timedelta(seconds=offset)
    now = scenario.anchor + timedelta(seconds=offset_now)
    calendar = scenario.calendar
    deadline = calendar.add_business_seconds(start, seconds)
    assert (calendar.business_seconds_between(start, now) > seconds) == (now > deadline)


@PROPERTY_SETTINGS
@given(scenarios(), offsets, offsets)
def test_per_day_counts_add_up_to_the_total(
    scenario: Scenario, offset_a: int, offset_b: int
) -> None:
    """Per-day counts sum to the span's count, and whole days match their open intervals."""
    start = scenario.anchor + timedelta(seconds=offset_a)
    end = scenario.anchor + timedelta(seconds=offset_b)
    calendar = scenario.calendar
    by_day = calendar.business_seconds_by_day(start, end)
    assert sum(counted for _, counted in by_day) == calendar.business_seconds_between(start, end)
    for day, counted in by_day[1:-1]:
        intervals = calendar.open_intervals_utc(day)
        assert counted == sum(
            (closes - opens) // timedelta(seconds=1) for opens, closes in intervals
        )


# A deliberately awkward week: overnight shifts, shifts of nearly or exactly 24 hours starting
# at odd times, a shift in the small hours where clocks change. The sweep rotates it through the
# weekdays so that every kind of shift meets every kind of day boundary.
AWKWARD_WEEK: list[list[OpeningHours]] = [
    shifts("22:00-06:00"),
    shifts("20:30-19:45"),
    shifts("00:00-24:00"),
    shifts("09:00-17:00", "23:30-02:15"),
    shifts("18:00-18:00"),
    shifts("02:30-03:15"),
    shifts("01:00-01:00"),
]


@pytest.mark.parametrize("rotation", range(7))
@pytest.mark.parametrize("zone_name", sorted(ZONES))
def test_between_matches_the_oracle_on_a_sweep_of_windows(zone_name: str, rotation: int) -> None:
    """Windows of 41 hours stepped every 5 h 15 min over four months all agree with the oracle."""
    weekly = {weekday: AWKWARD_WEEK[(weekday + rotation) % 7] for weekday in range(7)}
    anchor_day = ZONES[zone_name][0][0]
    closed = frozenset({anchor_day + timedelta(days=3), anchor_day - timedelta(days=40)})
    scenario = Scenario(
        zone_name=zone_name,
        weekly=weekly,
        closed=closed,
        open_dates={},
        anchor=datetime.combine(anchor_day, time(0), tzinfo=UTC),
        calendar=BusinessCalendar(timezone=zone_name, weekly=weekly, closed_dates=closed),
    )
    step, width = timedelta(hours=5, minutes=15), timedelta(hours=41)
    start = scenario.anchor - timedelta(days=60)
    while start < scenario.anchor + timedelta(days=60):
        counted = scenario.calendar.business_seconds_between(start, start + width)
        assert counted == oracle_between(scenario, start, start + width), start
        start += step


class NoHolidays:
    """A holiday source with no holidays, which keeps the calendar off its 24x7 shortcut."""

    def closed_dates(self, year: int) -> frozenset[date]:
        return frozenset()


@PROPERTY_SETTINGS
@given(st.sampled_from(sorted(ZONES)), offsets, offsets, st.integers(0, 90 * 86_400))
def test_always_open_shortcut_matches_the_general_path(
    zone_name: str, offset_a: int, offset_b: int, seconds: int
) -> None:
    """The 24x7 shortcut gives the same answers as a whole-day weekly calendar counted in full."""
    anchor = datetime.combine(ZONES[zone_name][0][0], time(0), tzinfo=UTC)
    start = anchor + timedelta(seconds=offset_a)
    end = anchor + timedelta(seconds=offset_b)
    shortcut = BusinessCalendar.always_open(zone_name)
    general = BusinessCalendar(
        timezone=zone_name, weekly=every_day("00:00-24:00"), closed_dates=NoHolidays()
    )
    assert shortcut.business_seconds_between(start, end) == general.business_seconds_between(
        start, end
    )
    assert shortcut.add_business_seconds(start, seconds) == general.add_business_seconds(
        start, seconds
    )
    assert shortcut.business_seconds_by_day(start, end) == general.business_seconds_by_day(
        start, end
    )


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 3 * 365 * 86_400),
    st.integers(0, 3 * 365 * 86_400),
    st.integers(0, 3 * 365 * 86_400),
)
def test_long_spans_add_up_across_years(offset_a: int, offset_b: int, offset_c: int) -> None:
    """Over spans of years, counts stay additive and stepping stays the inverse of counting."""
    a, b, c = sorted(utc(2024, 1, 1) + timedelta(seconds=s) for s in (offset_a, offset_b, offset_c))
    calendar = BusinessCalendar(
        timezone="Europe/Berlin",
        weekly=weekdays("09:00-12:00", "13:00-17:00"),
        closed_dates=RecordingHolidays(),
    )
    between = calendar.business_seconds_between
    assert between(a, c) == between(a, b) + between(b, c)
    assert calendar.add_business_seconds(a, between(a, c)) == calendar.next_open(c)
