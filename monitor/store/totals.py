"""Running totals of the clock history: what the metrics' counters and histograms read.

Every write of a clock row goes through ``adjust``: the old row's contribution is taken out and
the new one's put in, in the same transaction. A scrape then reads a handful of rows however
long the history grows, and a restart of the daemon neither resets the totals nor counts any
clock twice.
"""

from __future__ import annotations

import json
import sqlite3
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from monitor.model import ClockTotals

INF = -1

T = TypeVar("T")

ClockRow = tuple[str, str, str, str | None, int, int]  # source, policy, kind, stop, breached, s
CLOCK_ROW_COLUMNS = "source, policy, kind, stop_reason, breached, business_seconds"


def bucket_bound(seconds: int, bounds: Sequence[int]) -> int:
    """The upper bound of the histogram bucket a response time falls in (INF past the last)."""
    index = bisect_left(bounds, seconds)
    return bounds[index] if index < len(bounds) else INF


def adjust(conn: sqlite3.Connection, row: ClockRow, sign: int, bounds: Sequence[int]) -> None:
    """Add (sign=1) or take out (sign=-1) one clock row's contribution to the totals."""
    source, policy, kind, stop_reason, breached, seconds = row
    replied = stop_reason == "reply"
    closed = stop_reason in ("closed_without_reply", "solved")  # ended without a reply
    dismissed = stop_reason == "dismissed"  # a person said no reply is needed
    if not (replied or breached or closed or dismissed):
        return
    conn.execute(
        "INSERT INTO clock_totals (source, policy, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (source, policy, kind),
    )
    conn.execute(
        "UPDATE clock_totals SET replies_within = replies_within + ?, "
        "replies_late = replies_late + ?, breaches = breaches + ?, closed = closed + ?, "
        "dismissed = dismissed + ?, response_sum = response_sum + ? "
        "WHERE source = ? AND policy = ? AND kind = ?",
        (
            sign * int(replied and not breached),
            sign * int(replied and bool(breached)),
            sign * int(bool(breached)),
            sign * int(closed),
            sign * int(dismissed),
            sign * seconds if replied else 0,
            source,
            policy,
            kind,
        ),
    )
    if replied:
        conn.execute(
            "INSERT INTO response_buckets (source, policy, kind, le, count) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO UPDATE SET count = count + excluded.count",
            (source, policy, kind, bucket_bound(seconds, bounds), sign),
        )


def stored_clock(conn: sqlite3.Connection, conversation_id: int, seq: int) -> ClockRow | None:
    """A clock row as ``adjust`` takes it, or None."""
    row = conn.execute(
        f"SELECT {CLOCK_ROW_COLUMNS} FROM clocks WHERE conversation_id = ? AND seq = ?",
        (conversation_id, seq),
    ).fetchone()
    return (row[0], row[1], row[2], row[3], row[4], row[5]) if row is not None else None


def rebuild(conn: sqlite3.Connection, bounds_for: Callable[[str], Sequence[int]]) -> None:
    """Recount every total from the clock history (after `recompute` or new bucket bounds)."""
    conn.execute("DELETE FROM clock_totals")
    conn.execute("DELETE FROM response_buckets")
    for row in conn.execute(f"SELECT {CLOCK_ROW_COLUMNS} FROM clocks").fetchall():
        adjust(conn, (row[0], row[1], row[2], row[3], row[4], row[5]), 1, bounds_for(row[1]))


def ensure_layout(
    conn: sqlite3.Connection,
    layout: dict[str, Sequence[int]],
    bounds_for: Callable[[str], Sequence[int]],
) -> bool:
    """Recount the histograms if their bucket bounds changed since they were counted; return
    whether an earlier layout was replaced."""
    wanted = json.dumps({name: list(bounds) for name, bounds in sorted(layout.items())})
    row = conn.execute("SELECT value FROM meta WHERE key = 'histogram_layout'").fetchone()
    if row is not None and row[0] == wanted:
        return False
    rebuild(conn, bounds_for)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('histogram_layout', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (wanted,),
    )
    return row is not None


class RowMemo(Generic[T]):
    """Values built from rows, kept from one read to the next.

    A row read again unchanged gives back the value built for it the last time, so a scrape
    of a thousand quiet sources builds nothing, and a consumer can tell a changed value from an
    unchanged one by identity. Only the last read's rows are kept: memory follows the store.
    """

    def __init__(self, build: Callable[[tuple[Any, ...]], T]) -> None:
        self._build = build
        self._values: dict[tuple[Any, ...], T] = {}

    def read(self, rows: Iterable[tuple[Any, ...]]) -> list[T]:
        """The value of each row, in order: the kept one when the row is unchanged."""
        last = self._values
        values: dict[tuple[Any, ...], T] = {}
        found: list[T] = []
        for row in rows:
            value = last.get(row)
            if value is None:
                value = self._build(row)
            values[row] = value
            found.append(value)
        self._values = values
        return found


# One row per total, its buckets as "le count le count ..." (SQLite builds the text; a row per
# bucket would cost Python a tuple each, at ten buckets per source, policy and kind).
TOTALS_QUERY = (
    "SELECT t.source, t.policy, t.kind, t.replies_within, t.replies_late, t.breaches, "
    "t.closed, t.response_sum, t.dismissed, (SELECT group_concat(b.le || ' ' || b.count, ' ') "
    "FROM response_buckets b WHERE b.source = t.source AND b.policy = t.policy "
    "AND b.kind = t.kind) FROM clock_totals t"
)


def totals_from_row(row: tuple[Any, ...]) -> ClockTotals:
    """A row of ``TOTALS_QUERY`` as the metrics read it."""
    numbers = [int(n) for n in row[9].split(" ")] if row[9] else []
    return ClockTotals(
        source=row[0],
        policy=row[1],
        kind=row[2],
        replies_within=row[3],
        replies_late=row[4],
        breaches=row[5],
        closed=row[6],
        response_sum=row[7],
        dismissed=row[8],
        buckets=tuple(zip(numbers[::2], numbers[1::2], strict=True)),
    )


def read_totals(
    conn: sqlite3.Connection, memo: RowMemo[ClockTotals] | None = None
) -> list[ClockTotals]:
    """Every total, with its buckets, for a scrape; with ``memo``, unchanged totals are the
    objects of the last read."""
    rows = conn.execute(TOTALS_QUERY).fetchall()
    if memo is None:
        return [totals_from_row(row) for row in rows]
    return memo.read(rows)
