"""Business-hours calendars: when a team is open, and how much open time lies between instants.

A ``BusinessCalendar`` knows a team's weekly opening hours in one IANA time zone, the dates it
is closed (public holidays, company days off) and extra dates it opens. It answers, exactly to
the second, how many business seconds passed between two instants and at which instant a given
number of business seconds will have passed. This module is pure: it imports only the standard
library, so adapters elsewhere turn the ``holidays`` package or an .ics file into a
``HolidaySource``.

The rules, in one place:

* Opening hours are ``(opens, closes)`` pairs of local wall-clock times. ``closes <= opens``
  means a shift that runs past midnight into the next day, so ``22:00-06:00`` on Monday is
  Monday 22:00 to Tuesday 06:00, and ``00:00-24:00`` (stored as ``(00:00, 00:00)``) is the whole
  day. Intervals are half-open: open at the opening instant, closed at the closing instant.
* Every shift belongs to the local date it starts on. Closing a date removes the shifts that
  start on it; an overnight shift that started the evening before still runs into the closed
  date until it ends, and the closed date's own evening shift does not start.
* ``open_dates`` override everything else for their date, including closed dates: such a date
  opens with the hours given for it, or when none are given with its weekday's hours, or when
  that weekday has none with ``default_open_hours`` (by default the most common weekday hours).
* A wall-clock time means the first instant at which the local clock reads that time or later.
  In a spring-forward gap (New York 2025-03-09 02:30 never happens) that is the end of the gap
  (03:00 EDT); in a fall-back repeat (New York 2025-11-02 01:30 happens twice) it is the first
  occurrence (01:30 EDT). Shifts are converted to UTC day by day and all arithmetic is on UTC
  seconds, so a night shift spanning a transition counts the real elapsed time: ``00:00-06:00``
  is 5 hours on a spring-forward night and 7 on a fall-back night.
* Instants must be timezone-aware; their sub-second part is dropped (floored) before counting,
  so every count is a whole number of seconds and every computed instant is a whole second
  (an open instant handed back unchanged, by ``next_open`` or by adding 0, keeps its own).
* Overlapping or touching intervals, including an overnight shift running into the next day's
  hours, are merged: open time is a set of instants, never counted twice.
* ``add_business_seconds(start, n)`` is the latest instant at which exactly ``n`` business
  seconds have passed: when the count is reached just as a shift closes, it is the next opening
  (see the method for why). Adding 0 gives ``next_open(start)``.
* Reports for ``explain`` (``open_intervals_utc``, ``business_seconds_by_day``) go by the local
  date on which the seconds passed, so an overnight shift shows up on both of its dates.

Cost: per-day shifts are converted once and cached in fixed 28-day blocks of UTC time, each
holding its merged intervals with running totals, so a count or a step is a few bisections plus
one addition per block spanned; it never grows with the number of seconds or minutes.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from math import floor
from typing import Protocol, TypeAlias, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BusinessCalendar",
    "CalendarError",
    "HolidaySource",
    "OpeningHours",
    "combine_closed_dates",
    "epoch_second",
    "format_hours",
    "parse_hours",
]

OpeningHours: TypeAlias = tuple[time, time]
"""One shift as ``(opens, closes)`` local times; ``closes <= opens`` runs into the next day."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_WHOLE_DAY: OpeningHours = (_MIDNIGHT, _MIDNIGHT)

# Blocks are fixed stretches of UTC time; 28 days keeps a 90-day count to four or five block
# totals while a block is still cheap to build (about 31 local days of shifts).
_BLOCK_SECONDS = 28 * 86_400

# Instants must leave room for the days of margin a block reads on either side of itself.
_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 1, 1, tzinfo=UTC)
_EARLIEST_SECOND = (_EARLIEST - _EPOCH) // _SECOND
_LATEST_SECOND = (_LATEST - _EPOCH) // _SECOND
SUPPORTED_SECONDS = range(_EARLIEST_SECOND, _LATEST_SECOND)
"""The epoch seconds a calendar counts in; ``epoch_second`` rejects instants outside."""

# A calendar with weekly hours closed for this many blocks in a row (about three years) is
# taken to never open again, so that a step or a search ends with an error instead of looping.
_MAX_CLOSED_BLOCKS = 40

_HOURS_PATTERN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})\s*")


class CalendarError(ValueError):
    """A business calendar was given a value it cannot use; the message names it and the fix."""


@runtime_checkable
class HolidaySource(Protocol):
    """Supplies the dates a team is closed, one year at a time.

    The calendar asks once per year it needs and caches the answer, so a source may compute
    holidays lazily for any year. Dates of other years in an answer are ignored.
    """

    def closed_dates(self, year: int) -> frozenset[date]:
        """Return the dates of ``year`` on which no shift starts."""
        ...


def parse_hours(text: str) -> OpeningHours:
    """Parse ``"09:00-17:00"`` into ``(time(9), time(17))``.

    ``"22:00-06:00"`` (end not after start) is an overnight shift, ``"00:00-24:00"`` the whole day;
    ``24:00`` is accepted only as an end and is stored as ``00:00`` of the next day.
    """
    if not isinstance(text, str):
        raise CalendarError(f'opening hours must look like "09:00-17:00", got: {text!r}')
    match = _HOURS_PATTERN.fullmatch(text)
    if match is None:
        raise CalendarError(f'opening hours must look like "09:00-17:00", got: "{text}"')
    open_hour, open_minute, close_hour, close_minute = (int(part) for part in match.groups())
    if (
        open_hour > 23
        or open_minute > 59
        or close_minute > 59
        or close_hour > 24
        or (close_hour == 24 and close_minute != 0)
    ):
        raise CalendarError(
            'opening hours must look like "09:00-17:00", with hours 00-23 (24:00 only as an end) '
            f'and minutes 00-59, got: "{text}"'
        )
    return time(open_hour, open_minute), time(close_hour % 24, close_minute)


def format_hours(hours: OpeningHours) -> str:
    """Format a shift the way ``parse_hours`` reads it, with ``24:00`` for a midnight end."""
    opens, closes = hours
    end = "24:00" if closes == _MIDNIGHT else _format_time(closes)
    return f"{_format_time(opens)}-{end}"


def _format_time(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


@dataclass(frozen=True, slots=True)
class _FixedClosedDates:
    """Closed dates given as a plain collection, grouped by year for the per-year lookups."""

    by_year: Mapping[int, frozenset[date]]

    def closed_dates(self, year: int) -> frozenset[date]:
        return self.by_year.get(year, frozenset())


@dataclass(frozen=True, slots=True)
class _UnionOfClosedDates:
    """Several holiday sources closing the union of their dates."""

    sources: tuple[HolidaySource, ...]

    def closed_dates(self, year: int) -> frozenset[date]:
        return frozenset().union(*(source.closed_dates(year) for source in self.sources))


def combine_closed_dates(*sources: HolidaySource | Collection[date]) -> HolidaySource:
    """Return one source closing every date any of ``sources`` closes.

    Use it to add company days off (a plain collection of dates) to public holidays.
    """
    return _UnionOfClosedDates(tuple(_as_holiday_source(source) for source in sources))


def _as_holiday_source(closed: HolidaySource | Collection[date]) -> HolidaySource:
    if isinstance(closed, HolidaySource):
        return closed
    if isinstance(closed, str) or not isinstance(closed, Collection):
        raise CalendarError(
            f"closed_dates must be a collection of dates or a HolidaySource, got: {closed!r}"
        )
    by_year: dict[int, set[date]] = {}
    for day in closed:
        by_year.setdefault(_require_date(day, "closed_dates").year, set()).add(day)
    return _FixedClosedDates({year: frozenset(days) for year, days in by_year.items()})


def _require_date(value: object, name: str) -> date:
    # datetime is a subclass of date but never equal to one, so it would silently never match.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise CalendarError(f"{name} must hold dates (datetime.date), got: {value!r}")
    return value


def _validated_hours(hours: object, name: str) -> tuple[OpeningHours, ...]:
    """Check a day's shifts and return them sorted without duplicates."""
    if isinstance(hours, str) or not isinstance(hours, Iterable):
        raise CalendarError(
            f"{name} must be a list of (opens, closes) time pairs, got: {hours!r}; "
            'parse text such as "09:00-17:00" with parse_hours()'
        )
    shifts: set[OpeningHours] = set()
    for shift in hours:
        if not (
            isinstance(shift, tuple)
            and len(shift) == 2
            and all(isinstance(bound, time) for bound in shift)
        ):
            raise CalendarError(
                f"{name} must hold (opens, closes) pairs of datetime.time, got: {shift!r}; "
                'parse text such as "09:00-17:00" with parse_hours()'
            )
        opens, closes = shift
        for bound in (opens, closes):
            if bound.tzinfo is not None or bound.microsecond:
                raise CalendarError(
                    f"{name} must hold plain local times in whole seconds, without a time zone, "
                    f"got: {bound!r}"
                )
        shifts.add((opens, closes))
    return tuple(sorted(shifts))


def _zone_named(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise CalendarError(f'timezone must be an IANA name such as "Europe/Berlin", got: {name!r}')
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(
            f'unknown time zone "{name}": expected an IANA name such as "Europe/Berlin"'
        ) from exc


def epoch_second(name: str, value: datetime) -> int:
    """Return the whole UTC epoch second of an aware instant (sub-second part floored), checked
    as every calendar query checks its instants (``name`` is the argument named in errors)."""
    if type(value) is datetime and value.tzinfo is UTC:
        # The common case (every stored instant is UTC), done in C: checked and exact.
        second = int(value.timestamp()) if not value.microsecond else floor(value.timestamp())
        if _EARLIEST_SECOND <= second < _LATEST_SECOND:
            return second
    if not isinstance(value, datetime):
        raise CalendarError(f"{name} must be a timezone-aware datetime, got: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(
            f"{name} must be a timezone-aware datetime, got naive: {value.isoformat()}"
        )
    second = (value - _EPOCH) // _SECOND
    if not _EARLIEST_SECOND <= second < _LATEST_SECOND:
        raise CalendarError(
            f"{name} must lie between {_EARLIEST.date()} and {_LATEST.date()}, "
            f"got: {value.isoformat()}"
        )
    return second


_epoch_second = epoch_second


def _instant(second: int) -> datetime:
    return _EPOCH + timedelta(seconds=second)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Block:
    """The merged open intervals inside one fixed stretch of UTC time, with running totals.

    Intervals crossing the block's edges are cut there, so blocks never share a second and
    their totals add up. All values are UTC epoch seconds.
    """

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    counted_before: tuple[int, ...]  # business seconds in this block before interval i opens
    counted_through: tuple[int, ...]  # business seconds in this block when interval i closes
    total: int

    def counted_until(self, second: int) -> int:
        """Return the business seconds in this block before ``second``."""
        index = bisect_right(self.starts, second) - 1
        if index < 0:
            return 0
        return self.counted_before[index] + min(second, self.ends[index]) - self.starts[index]

    def is_open(self, second: int) -> bool:
        index = bisect_right(self.starts, second) - 1
        return index >= 0 and second < self.ends[index]


class BusinessCalendar:
    """A team's opening hours in one time zone, answering business-time questions exactly.

    ``weekly`` maps weekday numbers (0 = Monday ... 6 = Sunday) to that day's shifts; a missing
    weekday is closed. ``closed_dates`` is a ``HolidaySource`` or a plain collection of dates;
    ``open_dates`` opens dates that would otherwise be closed (see the module docstring for how
    their hours are chosen). Results are aware UTC datetimes. The calendar is immutable; it
    caches converted shifts as it is asked about new stretches of time, and since a cache entry
    is always computed the same way, threads may share a calendar.
    """

    __slots__ = (
        "_always_open",
        "_blocks",
        "_closed_by_year",
        "_holidays",
        "_last_end",
        "_last_open_block",
        "_open_dates",
        "_timezone",
        "_weekly",
        "_zone",
    )

    def __init__(
        self,
        *,
        timezone: str,
        weekly: Mapping[int, Sequence[OpeningHours]],
        closed_dates: HolidaySource | Collection[date] = (),
        open_dates: Mapping[date, Sequence[OpeningHours]] | Collection[date] = (),
        default_open_hours: Sequence[OpeningHours] = (),
    ) -> None:
        self._zone = _zone_named(timezone)
        self._timezone = timezone
        self._weekly = self._validated_weekly(weekly)
        self._holidays = _as_holiday_source(closed_dates)
        self._open_dates = self._resolved_open_dates(
            open_dates, _validated_hours(default_open_hours, "default_open_hours")
        )
        if not any(self._weekly) and not self._open_dates:
            raise CalendarError(
                "weekly has no opening hours and no open_dates are given: "
                "the calendar would never be open"
            )
        self._always_open = (
            all(_WHOLE_DAY in shifts for shifts in self._weekly)
            and not self._open_dates
            and isinstance(self._holidays, _FixedClosedDates)
            and not self._holidays.by_year
        )
        # With no weekly hours only the open dates open, so nothing opens after the last one's
        # overnight shift; searches stop there instead of walking years of closed blocks.
        self._last_open_block: int | None = None
        if not any(self._weekly):
            after_last = datetime.combine(max(self._open_dates) + 2 * _DAY, _MIDNIGHT)
            self._last_open_block = self._first_instant_reading(after_last) // _BLOCK_SECONDS
        self._closed_by_year: dict[int, frozenset[date]] = {}
        self._blocks: dict[int, _Block] = {}
        # The last end counted to: (epoch second, its block, business seconds in the block
        # before it). Starts impossible, so the first count fills it.
        self._last_end: tuple[int, int, int] = (_LATEST_SECOND, 0, 0)

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> BusinessCalendar:
        """Return a 24x7 calendar: every second is a business second.

        The zone matters only for ``open_intervals_utc`` and ``business_seconds_by_day``, which
        split time at local midnights.
        """
        return cls(timezone=timezone, weekly={weekday: [_WHOLE_DAY] for weekday in range(7)})

    @property
    def timezone(self) -> str:
        """The IANA name of the calendar's zone."""
        return self._timezone

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's zone."""
        return self._zone

    def __repr__(self) -> str:
        names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        weekly = ", ".join(
            f"{names[day]} {' '.join(format_hours(shift) for shift in shifts)}"
            for day, shifts in enumerate(self._weekly)
            if shifts
        )
        return f"BusinessCalendar(timezone={self._timezone!r}, weekly=[{weekly}])"

    # -- queries ------------------------------------------------------------------------------

    def is_open(self, instant: datetime) -> bool:
        """Return whether ``instant`` lies in open hours (opening instant in, closing out)."""
        second = _epoch_second("instant", instant)
        return self._always_open or self._block(second // _BLOCK_SECONDS).is_open(second)

    def next_open(self, instant: datetime) -> datetime:
        """Return the first instant at or after ``instant`` that is open.

        An open ``instant`` is returned itself (in UTC); otherwise the next opening instant.
        """
        second = _epoch_second("instant", instant)
        if self._always_open or self._block(second // _BLOCK_SECONDS).is_open(second):
            return instant.astimezone(UTC)
        return _instant(self._next_open_second(second))

    def business_seconds_between(self, start: datetime, end: datetime) -> int:
        """Return the open seconds in ``[start, end)``: 0 when ``end <= start``, never negative."""
        first = _epoch_second("start", start)
        last = _epoch_second("end", end)
        if last <= first:
            return 0
        if self._always_open:
            return last - first
        return self._count(first, last)

    def business_seconds_in(self, first: int, last: int) -> int:
        """Return ``business_seconds_between`` for UTC epoch seconds (from ``epoch_second``),
        for callers that count many spans from instants they have already converted."""
        if last <= first:
            return 0
        if self._always_open:
            return last - first
        return self._count(first, last)

    def add_business_seconds(self, start: datetime, seconds: int) -> datetime:
        """Return the instant at which ``seconds`` business seconds after ``start`` have passed.

        Precisely: the latest instant ``t >= start`` with ``business_seconds_between(start, t)
        == seconds``. That is the instant the count reaches ``seconds`` when this happens inside
        open hours, and otherwise the next opening instant, when counting would resume:

        * Friday 16:00 + 1 h with hours 09:00-17:00 is Monday 09:00, not Friday 17:00;
        * ``seconds == 0`` gives ``next_open(start)``: ``start`` itself when it is open;
        * ``add(start, between(start, end)) == next_open(end)`` for every ``end >= start``, so
          it gives back ``end`` for any ``end`` in open hours, including an opening instant;
        * ``between(start, now) > seconds`` exactly when ``now > add(start, seconds)``: the
          result is the last instant at which a reply is still within a ``seconds`` target.
        """
        if seconds == 0:
            _epoch_second("start", start)
            return self.next_open(start)
        reached, at_close = self._reach(start, seconds)
        if at_close:
            # The count is reached exactly as an interval closes: counting resumes at the next
            # opening, and every instant up to it still shows the same count.
            return _instant(self._next_open_second(reached))
        return _instant(reached)

    def due_instant(self, start: datetime, seconds: int) -> datetime:
        """Return the first instant at which ``seconds`` business seconds have passed.

        This is the due time people read: Friday 16:00 + 1 h with hours 09:00-17:00 is due
        Friday 17:00. (``add_business_seconds`` gives Monday 09:00, the last instant still
        within the target.) ``seconds == 0`` gives ``start``.
        """
        if seconds == 0:
            return _instant(_epoch_second("start", start))
        return _instant(self._reach(start, seconds)[0])

    def _reach(self, start: datetime, seconds: int) -> tuple[int, bool]:
        """The epoch second at which the count reaches ``seconds`` (> 0), and whether that is
        the closing instant of an interval."""
        first = _epoch_second("start", start)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise CalendarError(
                f"seconds must be a whole number of seconds, 0 or more, got: {seconds!r}"
            )
        if seconds >= _LATEST_SECOND - first:
            raise CalendarError(
                f"{seconds} business seconds after {start.isoformat()} fall after "
                f"{_LATEST.date()}, the last supported date"
            )
        if self._always_open:
            return first + seconds, False
        index = first // _BLOCK_SECONDS
        block = self._blocks.get(index) or self._block(index)
        target = block.counted_until(first) + seconds  # counted from the start of the block
        closed_run = 0
        while target > block.total:
            target -= block.total
            closed_run = closed_run + 1 if block.total == 0 else 0
            index += 1
            self._check_may_open(index, closed_run, first)
            block = self._block(index)
        position = bisect_left(block.counted_through, target)
        reached = block.starts[position] + target - block.counted_before[position]
        return reached, reached >= block.ends[position]

    def open_intervals_utc(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """Return the open intervals of the local date ``day``, as UTC ``(opens, closes)`` pairs.

        Intervals are cut at the day's local midnights, so an overnight shift shows up partly on
        each date it covers (and a closed date shows the tail of the previous evening's shift).
        """
        day = _require_date(day, "day")
        low = self._first_instant_reading(datetime.combine(day, _MIDNIGHT))
        high = self._first_instant_reading(datetime.combine(day + _DAY, _MIDNIGHT))
        if high <= low:
            return ()
        if self._always_open:
            return ((_instant(low), _instant(high)),)
        pieces: list[list[int]] = []
        for index in range(low // _BLOCK_SECONDS, (high - 1) // _BLOCK_SECONDS + 1):
            block = self._block(index)
            for block_opens, block_closes in zip(block.starts, block.ends, strict=True):
                opens, closes = max(block_opens, low), min(block_closes, high)
                if opens >= closes:
                    continue
                if pieces and pieces[-1][1] == opens:  # an interval cut at a block edge
                    pieces[-1][1] = closes
                else:
                    pieces.append([opens, closes])
        return tuple((_instant(opens), _instant(closes)) for opens, closes in pieces)

    def business_seconds_by_day(self, start: datetime, end: datetime) -> list[tuple[date, int]]:
        """Split ``business_seconds_between(start, end)`` by the local date the seconds passed on.

        Every local date from ``start``'s to ``end``'s is listed, closed ones with 0; the counts
        add up to ``business_seconds_between(start, end)``. Empty when ``end <= start``.
        """
        first = _epoch_second("start", start)
        last = _epoch_second("end", end)
        if last <= first:
            return []
        day = self._local_date_containing(first)
        counted: list[tuple[date, int]] = []
        piece_start = first
        while True:
            next_midnight = self._first_instant_reading(datetime.combine(day + _DAY, _MIDNIGHT))
            piece_end = min(last, next_midnight)
            counted.append((day, self._count_any(piece_start, piece_end)))
            if piece_end >= last:
                return counted
            piece_start = max(piece_start, piece_end)
            day += _DAY

    # -- counting on UTC seconds ----------------------------------------------------------------

    def _count_any(self, first: int, last: int) -> int:
        if last <= first:
            return 0
        return last - first if self._always_open else self._count(first, last)

    def _count(self, first: int, last: int) -> int:
        """Return the open seconds in ``[first, last)``, for ``first < last``.

        Evaluation counts one span per clock, most of them ending at the same ``now``: the
        count up to the last end asked about is kept, and ``_Block.counted_until`` is written
        out here.
        """
        blocks = self._blocks
        last_end = self._last_end
        if last_end[0] == last:
            last_index, counted_last = last_end[1], last_end[2]
        else:
            last_index = last // _BLOCK_SECONDS
            block = blocks.get(last_index) or self._block(last_index)
            position = bisect_right(block.starts, last) - 1
            if position < 0:
                counted_last = 0
            else:
                closes = block.ends[position]
                counted_last = (
                    block.counted_before[position]
                    + (last if last < closes else closes)
                    - block.starts[position]
                )
            self._last_end = (last, last_index, counted_last)  # one tuple: safe to share
        first_index = first // _BLOCK_SECONDS
        block = blocks.get(first_index) or self._block(first_index)
        position = bisect_right(block.starts, first) - 1
        if position < 0:
            counted_first = 0
        else:
            closes = block.ends[position]
            counted_first = (
                block.counted_before[position]
                + (first if first < closes else closes)
                - block.starts[position]
            )
        if first_index == last_index:
            return counted_last - counted_first
        counted = block.total - counted_first + counted_last
        for index in range(first_index + 1, last_index):
            counted += (blocks.get(index) or self._block(index)).total
        return counted

    def _next_open_second(self, second: int) -> int:
        """Return the first open second at or after ``second``."""
        index = second // _BLOCK_SECONDS
        block = self._block(index)
        position = bisect_right(block.starts, second) - 1
        if position >= 0 and second < block.ends[position]:
            return second
        position += 1
        closed_run = 0
        while position >= len(block.starts):
            closed_run = closed_run + 1 if block.total == 0 else 0
            index += 1
            self._check_may_open(index, closed_run, second)
            block = self._block(index)
            position = 0
        return block.starts[position]

    def _check_may_open(self, index: int, closed_run: int, origin: int) -> None:
        """Stop a forward search that can no longer find open hours."""
        if self._last_open_block is not None and index > self._last_open_block:
            raise CalendarError(
                f"the calendar has no open hours after {_instant(origin).isoformat()}: "
                "it has no weekly hours and its last open date has passed"
            )
        if closed_run > _MAX_CLOSED_BLOCKS:
            raise CalendarError(
                f"the calendar has no open hours in the {closed_run * _BLOCK_SECONDS // 86_400} "
                f"days after {_instant(origin).isoformat()}: check its closed dates"
            )
        if index * _BLOCK_SECONDS >= _LATEST_SECOND:
            raise CalendarError(
                f"the calendar has no open hours between {_instant(origin).isoformat()} and "
                f"{_LATEST.date()}, the last supported date"
            )

    # -- building blocks ------------------------------------------------------------------------

    def _block(self, index: int) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = self._build_block(index)
        return block

    def _build_block(self, index: int) -> _Block:
        low = index * _BLOCK_SECONDS
        high = low + _BLOCK_SECONDS
        # A shift of date d lies between d 00:00 and (d + 2) 00:00 local. Shifts of the day
        # before the block's first local date can reach into it, earlier ones cannot; one date
        # past its last local date is read too, in case clocks fall back across midnight.
        day = self._local_date(low) - _DAY
        last_day = self._local_date(high) + _DAY
        shifts: list[tuple[int, int]] = []
        while day <= last_day:
            shifts.extend(self._shifts_starting_on(day))
            day += _DAY
        shifts.sort()
        starts: list[int] = []
        ends: list[int] = []
        for shift_opens, shift_closes in shifts:
            opens, closes = max(shift_opens, low), min(shift_closes, high)
            if opens >= closes:
                continue
            if ends and opens <= ends[-1]:
                ends[-1] = max(ends[-1], closes)
            else:
                starts.append(opens)
                ends.append(closes)
        counted_before: list[int] = []
        counted_through: list[int] = []
        total = 0
        for opens, closes in zip(starts, ends, strict=True):
            counted_before.append(total)
            total += closes - opens
            counted_through.append(total)
        return _Block(
            starts=tuple(starts),
            ends=tuple(ends),
            counted_before=tuple(counted_before),
            counted_through=tuple(counted_through),
            total=total,
        )

    def _shifts_starting_on(self, day: date) -> list[tuple[int, int]]:
        """Return the UTC ``(opens, closes)`` seconds of the shifts that start on local ``day``."""
        shifts: list[tuple[int, int]] = []
        for opens, closes in self._hours_on(day):
            opening = self._first_instant_reading(datetime.combine(day, opens))
            closing_day = day if closes > opens else day + _DAY
            closing = self._first_instant_reading(datetime.combine(closing_day, closes))
            # A shift lying wholly inside a spring-forward gap opens and closes at the gap's
            # end: it has no duration and is dropped.
            if closing > opening:
                shifts.append((opening, closing))
        return shifts

    def _hours_on(self, day: date) -> tuple[OpeningHours, ...]:
        hours = self._open_dates.get(day)
        if hours is not None:
            return hours
        closed = self._closed_by_year.get(day.year)
        if closed is None:
            closed = self._closed_by_year[day.year] = frozenset(
                self._holidays.closed_dates(day.year)
            )
        if day in closed:
            return ()
        return self._weekly[day.weekday()]

    # -- local time -----------------------------------------------------------------------------

    def _first_instant_reading(self, wall: datetime) -> int:
        """Return the first UTC second at which the local clock reads ``wall`` or later.

        For an ordinary time that is its only occurrence; in a fall-back repeat it is the first
        occurrence (fold=0); in a spring-forward gap it is the instant the gap ends.
        """
        guess = (wall.replace(tzinfo=self._zone) - _EPOCH) // _SECOND
        if self._wall_clock_at(guess) == wall:
            return guess
        # ``wall`` falls in a gap: fold=0 and fold=1 map it to either side of the transition,
        # so bisect between them for the first second whose wall clock is past the gap.
        other = (wall.replace(tzinfo=self._zone, fold=1) - _EPOCH) // _SECOND
        low, high = min(guess, other), max(guess, other)
        while low < high:
            middle = (low + high) // 2
            if self._wall_clock_at(middle) >= wall:
                high = middle
            else:
                low = middle + 1
        return low

    def _wall_clock_at(self, second: int) -> datetime:
        return _instant(second).astimezone(self._zone).replace(tzinfo=None)

    def _local_date(self, second: int) -> date:
        return _instant(second).astimezone(self._zone).date()

    def _local_date_containing(self, second: int) -> date:
        """Return the date whose local midnights (as mapped above) enclose ``second``."""
        day = self._local_date(second)
        while second < self._first_instant_reading(datetime.combine(day, _MIDNIGHT)):
            day -= _DAY
        while second >= self._first_instant_reading(datetime.combine(day + _DAY, _MIDNIGHT)):
            day += _DAY
        return day

    # -- construction -----------------------------------------------------------------------

    @staticmethod
    def _validated_weekly(
        weekly: Mapping[int, Sequence[OpeningHours]],
    ) -> tuple[tuple[OpeningHours, ...], ...]:
        if not isinstance(weekly, Mapping):
            raise CalendarError(
                f"weekly must map weekdays 0 (Monday) to 6 (Sunday) to shifts, got: {weekly!r}"
            )
        days: list[tuple[OpeningHours, ...]] = [() for _ in range(7)]
        for weekday, shifts in weekly.items():
            if isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
                raise CalendarError(
                    f"weekly keys must be weekdays 0 (Monday) to 6 (Sunday), got: {weekday!r}"
                )
            days[weekday] = _validated_hours(shifts, f"weekly[{weekday}]")
        return tuple(days)

    def _resolved_open_dates(
        self,
        open_dates: Mapping[date, Sequence[OpeningHours]] | Collection[date],
        default_open_hours: tuple[OpeningHours, ...],
    ) -> dict[date, tuple[OpeningHours, ...]]:
        if isinstance(open_dates, Mapping):
            given: Iterable[tuple[object, object]] = open_dates.items()
        elif isinstance(open_dates, str) or not isinstance(open_dates, Collection):
            raise CalendarError(
                "open_dates must be a collection of dates or a mapping from dates to shifts, "
                f"got: {open_dates!r}"
            )
        else:
            given = ((day, ()) for day in open_dates)
        if not default_open_hours:
            # The most common weekday hours; ties go to the earlier weekday (Counter keeps order).
            usual = Counter(shifts for shifts in self._weekly if shifts).most_common(1)
            default_open_hours = usual[0][0] if usual else ()
        resolved: dict[date, tuple[OpeningHours, ...]] = {}
        for raw_day, raw_hours in given:
            day = _require_date(raw_day, "open_dates")
            hours = _validated_hours(raw_hours, f"open_dates[{day.isoformat()}]")
            hours = hours or self._weekly[day.weekday()] or default_open_hours
            if not hours:
                raise CalendarError(
                    f"open date {day.isoformat()} has no hours: give them in open_dates, "
                    "or set default_open_hours"
                )
            resolved[day] = hours
        return resolved
