"""Time the business-hours calendar against a naive day-by-day walk, and check they agree.

Run ``python bench/calendar_ops.py``. The calendar is Mon-Fri 09:00-17:00 in Europe/Berlin with
about 12 closed dates a year; the workload is ``business_seconds_between`` over 90-day spans and
``add_business_seconds`` of up to 30 business days, from random starts in 2024-2027. Ours runs on
a fresh calendar, so its figures include filling the caches. The baseline converts every day's
hours again on every call, as a straightforward implementation would; it runs fewer operations
because it is slow, and its answers are compared with ours.
"""

from __future__ import annotations

import argparse
import random
import sys
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.sla.calendar import BusinessCalendar, OpeningHours, parse_hours

TIMEZONE = "Europe/Berlin"
WORKDAY = parse_hours("09:00-17:00")
BUSINESS_DAY_SECONDS = 8 * 3600


def easter_sunday(year: int) -> date:
    """Return Western Easter Sunday of ``year`` (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


@dataclass(frozen=True, slots=True)
class GermanStyleHolidays:
    """About twelve closed dates a year: German public holidays plus two company days."""

    def closed_dates(self, year: int) -> frozenset[date]:
        easter = easter_sunday(year)
        moving = [easter + timedelta(days=offset) for offset in (-2, 1, 39, 50, 60)]
        fixed = [(1, 1), (5, 1), (10, 3), (11, 1), (12, 24), (12, 25), (12, 26), (12, 31)]
        return frozenset(moving + [date(year, month, day) for month, day in fixed])


def naive_between(
    zone: ZoneInfo,
    weekly: dict[int, Sequence[OpeningHours]],
    closed: Callable[[date], bool],
    start: datetime,
    end: datetime,
) -> int:
    """Count open seconds by converting each local day's hours, one day at a time, every call."""
    if end <= start:
        return 0
    counted = 0
    day = start.astimezone(zone).date() - timedelta(days=1)  # yesterday's overnight shift
    last = end.astimezone(zone).date()
    while day <= last:
        if not closed(day):
            for opens, closes in weekly.get(day.weekday(), ()):
                closing_day = day if closes > opens else day + timedelta(days=1)
                opening = datetime.combine(day, opens).replace(tzinfo=zone).astimezone(UTC)
                closing = datetime.combine(closing_day, closes).replace(tzinfo=zone).astimezone(UTC)
                overlap = min(closing, end) - max(opening, start)
                counted += max(0, overlap // timedelta(seconds=1))
        day += timedelta(days=1)
    return counted


def naive_add(
    zone: ZoneInfo,
    weekly: dict[int, Sequence[OpeningHours]],
    closed: Callable[[date], bool],
    start: datetime,
    seconds: int,
) -> datetime:
    """Walk day by day from ``start``, spending open seconds until ``seconds`` are used up."""
    remaining = seconds
    day = start.astimezone(zone).date()
    while True:
        if not closed(day):
            for opens, closes in weekly.get(day.weekday(), ()):
                closing_day = day if closes > opens else day + timedelta(days=1)
                opening = datetime.combine(day, opens).replace(tzinfo=zone).astimezone(UTC)
                closing = datetime.combine(closing_day, closes).replace(tzinfo=zone).astimezone(UTC)
                opening = max(opening, start.astimezone(UTC))
                available = max(0, (closing - opening) // timedelta(seconds=1))
                # Same definition as ours: a count reached exactly at a closing instant resumes
                # at the next opening, so only a strictly smaller remainder ends the walk here.
                if remaining < available or (remaining == 0 and available > 0):
                    return opening + timedelta(seconds=remaining)
                remaining -= available
        day += timedelta(days=1)


def main() -> None:
    """Run both implementations on the same random workload and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000, help="operations of each kind, ours")
    parser.add_argument("--baseline-ops", type=int, default=1_000, help="same, for the baseline")
    parser.add_argument("--seed", type=int, default=20250330)
    options = parser.parse_args()

    rng = random.Random(options.seed)
    first = datetime(2024, 1, 1, tzinfo=UTC)
    starts = [
        first + timedelta(seconds=rng.randrange(4 * 365 * 86_400)) for _ in range(options.ops)
    ]
    span = timedelta(days=90)
    amounts = [rng.randrange(1, 30 * BUSINESS_DAY_SECONDS + 1) for _ in range(options.ops)]

    holidays = GermanStyleHolidays()
    weekly: dict[int, Sequence[OpeningHours]] = {weekday: [WORKDAY] for weekday in range(5)}
    calendar = BusinessCalendar(timezone=TIMEZONE, weekly=weekly, closed_dates=holidays)

    began = clock.perf_counter()
    ours_between = [calendar.business_seconds_between(s, s + span) for s in starts]
    between_seconds = clock.perf_counter() - began
    began = clock.perf_counter()
    ours_add = [calendar.add_business_seconds(s, n) for s, n in zip(starts, amounts, strict=True)]
    add_seconds = clock.perf_counter() - began

    zone = ZoneInfo(TIMEZONE)
    closed_cache: dict[int, frozenset[date]] = {}

    def closed(day: date) -> bool:
        if day.year not in closed_cache:
            closed_cache[day.year] = holidays.closed_dates(day.year)
        return day in closed_cache[day.year]

    sample = range(min(options.baseline_ops, options.ops))
    began = clock.perf_counter()
    base_between = [
        naive_between(zone, weekly, closed, starts[i], starts[i] + span) for i in sample
    ]
    base_between_s = clock.perf_counter() - began
    began = clock.perf_counter()
    base_add = [naive_add(zone, weekly, closed, starts[i], amounts[i]) for i in sample]
    base_add_seconds = clock.perf_counter() - began

    disagreements = sum(base_between[i] != ours_between[i] for i in sample) + sum(
        base_add[i] != ours_add[i] for i in sample
    )

    rows = [
        ("between, 90-day spans", len(starts) / between_seconds, len(sample) / base_between_s),
        ("add, up to 30 business days", len(starts) / add_seconds, len(sample) / base_add_seconds),
    ]
    print(f"{'operation':<30} {'ours ops/s':>12} {'baseline ops/s':>15} {'ratio':>8}")
    for name, ours, baseline in rows:
        print(f"{name:<30} {ours:>12,.0f} {baseline:>15,.0f} {ours / baseline:>7.0f}x")
    print(
        f"ours: {len(starts):,} of each in {between_seconds + add_seconds:.3f} s total "
        f"(fresh calendar, caches filled on the way); "
        f"baseline: {len(sample):,} of each; disagreements: {disagreements}"
    )
    if disagreements:
        sys.exit(1)


if __name__ == "__main__":
    main()
