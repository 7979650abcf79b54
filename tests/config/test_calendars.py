"""Calendars from rules files: day names, public holidays, .ics closures, located mistakes."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from monitor.config.calendars import IcsClosedDates, PublicHolidays, build_calendar, weekdays_of
from monitor.config.loader import load_config
from monitor.config.models import CalendarConfig
from monitor.errors import ConfigError


@pytest.mark.parametrize(
    ("key", "days"),
    [
        pytest.param("mon", [0], id="short"),
        pytest.param("Sunday", [6], id="long_any_case"),
        pytest.param("mon-fri", [0, 1, 2, 3, 4], id="range"),
        pytest.param("fri-mon", [4, 5, 6, 0], id="range_over_the_weekend"),
        pytest.param("weekend", [5, 6], id="weekend"),
        pytest.param("daily", list(range(7)), id="daily"),
    ],
)
def test_day_keys(key: str, days: list[int]) -> None:
    """Hours keys name days singly, as ranges (wrapping), or as groups."""
    assert weekdays_of(key) == days


def test_public_holidays_close_the_office() -> None:
    """Berlin's public holidays come from the holidays package, one year at a time."""
    holidays = PublicHolidays("DE", "BE")
    assert {date(2026, 12, 25), date(2026, 3, 8), date(2026, 10, 3)} <= holidays.closed_dates(2026)
    calendar = build_calendar(
        CalendarConfig(
            timezone="Europe/Berlin",
            hours={"daily": ["09:00-17:00"]},
            holidays={"country": "DE", "subdivision": "BE"},
        )
    )
    christmas = datetime(2026, 12, 25, 12, tzinfo=UTC)
    assert not calendar.is_open(christmas)
    assert calendar.is_open(datetime(2026, 12, 28, 12, tzinfo=UTC))


def test_ics_file_closes_one_off_and_yearly_days(tmp_path: Path) -> None:
    """An iCalendar file closes its all-day events' dates, and yearly events every year."""
    ics = tmp_path / "closed.ics"
    ics.write_text(
        textwrap.dedent(
            """\
            BEGIN:VCALENDAR
            VERSION:2.0
            PRODID:-//replyclock test//EN
            BEGIN:VEVENT
            UID:offsite@example
            DTSTART;VALUE=DATE:20261120
            DTEND;VALUE=DATE:20261122
            SUMMARY:Team offsite
            END:VEVENT
            BEGIN:VEVENT
            UID:founders@example
            DTSTART;VALUE=DATE:20200601
            DTEND;VALUE=DATE:20200602
            RRULE:FREQ=YEARLY
            SUMMARY:Founders' day
            END:VEVENT
            END:VCALENDAR
            """
        ).replace("\n", "\r\n")
    )
    closed = IcsClosedDates(ics)
    assert closed.closed_dates(2026) == frozenset(
        {date(2026, 11, 20), date(2026, 11, 21), date(2026, 6, 1)}
    )
    assert closed.closed_dates(2031) == frozenset({date(2031, 6, 1)})


def test_calendar_mistakes_are_located(tmp_path: Path) -> None:
    """A bad day name, bad hours and an unknown country are each reported at their line."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        textwrap.dedent(
            """\
            calendars:
              office:
                timezone: Europe/Berlin
                hours:
                  mon-fry: ["09:00-17:00"]
                  sat: ["9-5"]
                holidays: {country: XX}
            """
        )
    )
    config = tmp_path / "c.yaml"
    config.write_text("rules: [rules.yaml]\nsources:\n  - {name: a, type: maildir, path: m}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    assert [str(p) for p in caught.value.problems] == [
        f"{rules}:5: calendars.office.hours.mon-fry: unknown day 'fry'; expected mon..sun, "
        "monday..sunday, a range like mon-fri, weekdays, weekend or daily",
        f'{rules}:6: calendars.office.hours.sat[0]: opening hours must look like "09:00-17:00", '
        'got: "9-5"',
        f"{rules}:7: calendars.office.holidays: Country XX not available; use an ISO 3166 "
        "country code (DE, US, GB...) and one of its subdivision codes as the `holidays` "
        "package lists them",
    ]
