"""SLA evaluation throughput: 100,000 open conversations against a calendar with holidays.

Times the pure evaluation (clock segmentation, business time waited, state) of N waiting
conversations with 1-4 messages each, on Mon-Fri 09:00-17:00 Europe/Berlin with the German
public holidays of Berlin, and, in the same run, a baseline that measures the same waits the
plain way (walking day by day through the opening hours, exact to the second, on a 1% sample,
scaled). On that sample every clock's business time must equal the baseline's.
Targets: the running clocks of 100,000 conversations re-measured in under 1 second on one
core; the full evaluation from messages at 150,000 conversations/s or more.

    python bench/sla_eval.py [--n 100000]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config.calendars import PublicHolidays
from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar, parse_hours
from monitor.sla.clocks import Clock, ClockMessage
from monitor.sla.evaluate import evaluate, evaluate_clock
from monitor.sla.policy import Policy, WarningRule

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
HOLIDAYS = PublicHolidays("DE", "BE")
OPENS, CLOSES = parse_hours("09:00-17:00")
FULL_TARGET = 150_000  # conversations/s


def conversations(n: int, seed: int = 7) -> list[list[ClockMessage]]:
    """Waiting conversations: a question up to 60 days old, maybe an answer and a follow-up."""
    rng = random.Random(seed)
    result = []
    for _ in range(n):
        start = NOW - timedelta(seconds=rng.randint(60, 60 * 86400))
        messages = [ClockMessage(timestamp=start, direction=Direction.INBOUND)]
        if rng.random() < 0.4:
            reply = start + timedelta(seconds=rng.randint(60, 86400))
            if reply < NOW:
                messages.append(ClockMessage(timestamp=reply, direction=Direction.OUTBOUND))
                follow = reply + timedelta(seconds=rng.randint(60, 86400))
                if follow < NOW:
                    messages.append(ClockMessage(timestamp=follow, direction=Direction.INBOUND))
        if rng.random() < 0.2:
            messages.append(
                ClockMessage(timestamp=start + timedelta(minutes=5), direction=Direction.IGNORED)
            )
        result.append(messages)
    return result


@functools.cache
def holidays_of(year: int) -> frozenset[date]:
    """Berlin's public holidays of ``year``, asked of the holidays package once."""
    return HOLIDAYS.closed_dates(year)


def day_walk(start: datetime, end: datetime) -> int:
    """The plain baseline: each local day's opening hours turned into instants and overlapped
    with ``[start, end)``, one day after another, nothing cached."""
    counted = 0
    day = start.astimezone(BERLIN).date() - timedelta(days=1)
    while day <= end.astimezone(BERLIN).date():
        if day.weekday() < 5 and day not in holidays_of(day.year):
            opens = datetime.combine(day, OPENS, tzinfo=BERLIN).astimezone(UTC)
            closes = datetime.combine(day, CLOSES, tzinfo=BERLIN).astimezone(UTC)
            counted += max(0, int((min(closes, end) - max(opens, start)).total_seconds()))
        day += timedelta(days=1)
    return counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    calendar = BusinessCalendar(
        timezone="Europe/Berlin",
        weekly={day: [parse_hours("09:00-17:00")] for day in range(5)},
        closed_dates=HOLIDAYS,
    )
    policy = Policy(
        name="standard",
        calendar="office",
        first_response=4 * 3600,
        next_response=8 * 3600,
        warning=WarningRule(percent=75),
    )
    data = conversations(args.n)
    started = time.process_time()
    verdicts = [evaluate(messages, policy, calendar, NOW) for messages in data]
    full_s = time.process_time() - started
    running = [v.current.clock for v in verdicts if v.current is not None]
    waiting = len(running)
    # What the daemon does every cycle: the stored running clock of each waiting conversation
    # (its kind and start) measured again at the new `now`; closed clocks are not redone.
    stored = [(clock.kind, clock.started_at) for clock in running]
    later = NOW + timedelta(minutes=1)
    started = time.process_time()
    for kind, since in stored:
        evaluate_clock(Clock(kind=kind, started_at=since), policy, calendar, later)
    ours_s = time.process_time() - started
    sample = range(0, len(data), 100)  # 1%
    started = time.process_time()
    walked = [
        [day_walk(v.clock.started_at, v.clock.stopped_at or NOW) for v in verdicts[index].clocks]
        for index in sample
    ]
    baseline_s = (time.process_time() - started) * (len(data) / len(sample))
    ours = [[v.business_seconds for v in verdicts[index].clocks] for index in sample]
    wrong = sum(1 for a, b in zip(ours, walked, strict=True) if a != b)
    if wrong:
        print(f"{wrong} of {len(sample)} sampled conversations differ from the baseline")
        return 1
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"SLA evaluation, {args.n:,} conversations ({waiting:,} awaiting a reply) ({machine})")
    print(f"{'':42} {'seconds (CPU)':>14} {'conversations/s':>16}")
    print(
        f"{'each cycle: running clocks re-measured':42} {ours_s:>14.3f} {waiting / ours_s:>16,.0f}"
    )
    print(f"{'from messages: evaluate() all clocks':42} {full_s:>14.3f} {args.n / full_s:>16,.0f}")
    print(
        f"{'baseline: day-by-day walk (1% sample, scaled)':42} {baseline_s:>14.3f} "
        f"{args.n / baseline_s:>16,.0f}"
    )
    print(f"{'speed-up of evaluate() over the baseline':42} {baseline_s / full_s:>14.1f}x")
    print(f"sampled: {len(sample):,} conversations, business time equal to the baseline's")
    verdict = "met" if ours_s < 1 else "NOT met"
    print(f"target: {waiting:,} open conversations per cycle in under 1 s on one core -> {verdict}")
    verdict = "met" if args.n / full_s >= FULL_TARGET else "NOT met"
    print(
        f"target: full evaluation >= {FULL_TARGET:,} conversations/s -> {verdict} "
        f"({args.n / full_s:,.0f}/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
