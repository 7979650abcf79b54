"""Build business calendars from rules files: weekly hours, public holidays, .ics closures.

The pure ``BusinessCalendar`` knows nothing of the ``holidays`` package or iCalendar files; this
adapter turns them into ``HolidaySource`` objects that answer one year at a time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import holidays

from monitor.config.models import CalendarConfig
from monitor.config.yamlsource import KeyPath, YamlDocument
from monitor.errors import ConfigProblem
from monitor.sla.calendar import (
    BusinessCalendar,
    CalendarError,
    HolidaySource,
    OpeningHours,
    combine_closed_dates,
    parse_hours,
)

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_GROUPS = {
    "weekdays": range(5),
    "weekend": range(5, 7),
    "daily": range(7),
    "everyday": range(7),
}


def weekdays_of(key: str) -> list[int]:
    """Weekday numbers named by an hours key: ``mon``, ``monday``, ``mon-fri``, ``weekdays``."""
    text = key.strip().lower()
    if text in _GROUPS:
        return list(_GROUPS[text])

    def one(name: str) -> int:
        name = name.strip()
        if name in _DAYS:
            return _DAYS.index(name)
        if name in _FULL:
            return _FULL.index(name)
        raise ValueError(
            f"unknown day {name!r}; expected mon..sun, monday..sunday, a range like mon-fri, "
            "weekdays, weekend or daily"
        )

    if "-" in text:
        first, last = (one(part) for part in text.split("-", 1))
        if last < first:
            return [*range(first, 7), *range(0, last + 1)]
        return list(range(first, last + 1))
    return [one(text)]


class PublicHolidays:
    """Public holidays of a country (and subdivision) from the ``holidays`` package."""

    def __init__(self, country: str, subdivision: str | None) -> None:
        self.country = country.upper()
        self.subdivision = subdivision
        holidays.country_holidays(self.country, subdiv=subdivision)  # raises if unknown

    def closed_dates(self, year: int) -> frozenset[date]:
        """The public holidays of ``year``."""
        found = holidays.country_holidays(self.country, subdiv=self.subdivision, years=year)
        return frozenset(found.keys())


class IcsClosedDates:
    """Closed dates from an iCalendar file, as Zammad and most calendar apps export them.

    Each VEVENT closes the local dates it covers (all-day events: DTSTART up to, not including,
    DTEND). A yearly repeating event (``RRULE:FREQ=YEARLY``) closes the same day every year.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.once: set[date] = set()
        self.yearly: set[tuple[int, int]] = set()
        # Imported only for calendars that name an .ics file: it is slow to import.
        import icalendar  # noqa: PLC0415

        calendar = icalendar.Calendar.from_ical(path.read_bytes())
        for event in calendar.walk("VEVENT"):
            start = _as_date(event.decoded("DTSTART"))
            end = _as_date(event.decoded("DTEND")) if "DTEND" in event else start + timedelta(1)
            days = [start + timedelta(n) for n in range(max((end - start).days, 1))]
            rule = event.get("RRULE")
            if rule is not None and "YEARLY" in [str(f).upper() for f in rule.get("FREQ", [])]:
                self.yearly.update((d.month, d.day) for d in days)
            else:
                self.once.update(days)

    def closed_dates(self, year: int) -> frozenset[date]:
        """Dates of ``year`` the file closes."""
        dates = {d for d in self.once if d.year == year}
        for month, day in self.yearly:
            try:
                dates.add(date(year, month, day))
            except ValueError:
                continue  # 29 February in a common year
        return frozenset(dates)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def weekly_hours(config: CalendarConfig) -> dict[int, list[OpeningHours]]:
    """The weekly schedule a calendar config describes (raises ValueError on bad keys/hours)."""
    if config.hours == "24x7":
        return {day: [(time(0), time(0))] for day in range(7)}
    weekly: dict[int, list[OpeningHours]] = {}
    for key, value in config.hours.items():
        shifts = [] if value == "closed" else [parse_hours(text) for text in value]
        for day in weekdays_of(key):
            weekly[day] = shifts
    return weekly


def build_calendar(config: CalendarConfig) -> BusinessCalendar:
    """A ``BusinessCalendar`` from its config; raises ValueError on anything unusable."""
    closed: list[HolidaySource | frozenset[date]] = [frozenset(config.closed)]
    if config.holidays is not None:
        closed.append(PublicHolidays(config.holidays.country, config.holidays.subdivision))
    if config.ics is not None:
        closed.append(_ics(config.ics))
    if isinstance(config.open, dict):
        open_dates: dict[date, list[OpeningHours]] | list[date] = {
            day: [parse_hours(text) for text in hours] for day, hours in config.open.items()
        }
    else:
        open_dates = list(config.open)
    return BusinessCalendar(
        timezone=config.timezone,
        weekly=weekly_hours(config),
        closed_dates=combine_closed_dates(*closed),
        open_dates=open_dates,
    )


@lru_cache(maxsize=32)
def _ics(path: Path) -> IcsClosedDates:
    return IcsClosedDates(path)


def calendar_problems(
    doc: YamlDocument, path: KeyPath, config: CalendarConfig
) -> list[ConfigProblem]:
    """Every reason a calendar config cannot be built, each located at its key."""
    problems: list[ConfigProblem] = []
    if isinstance(config.hours, dict):
        for key, value in config.hours.items():
            try:
                weekdays_of(key)
            except ValueError as exc:
                problems.append(doc.problem((*path, "hours", key), str(exc)))
            if value != "closed":
                for index, text in enumerate(value):
                    try:
                        parse_hours(text)
                    except ValueError as exc:
                        problems.append(doc.problem((*path, "hours", key, index), str(exc)))
    if config.holidays is not None:
        try:
            PublicHolidays(config.holidays.country, config.holidays.subdivision)
        except NotImplementedError as exc:
            problems.append(
                doc.problem(
                    (*path, "holidays"),
                    f"{exc}; use an ISO 3166 country code (DE, US, GB...) and one of its "
                    "subdivision codes as the `holidays` package lists them",
                )
            )
    if config.ics is not None:
        try:
            _ics(config.ics)
        except (ValueError, KeyError, OSError) as exc:
            problems.append(doc.problem((*path, "ics"), f"cannot read iCalendar file: {exc}"))
    if problems:
        return problems
    try:
        build_calendar(config)
    except (CalendarError, ValueError) as exc:
        key = "timezone" if "zone" in str(exc) else "hours"
        problems.append(doc.problem((*path, key), str(exc)))
    return problems
