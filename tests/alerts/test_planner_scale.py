"""The planner's work follows what changed, not how many customers wait.

A plan after a poll looks only at the conversations that poll changed; the scheduled pass
looks at every waiting clock but skips, without a query, each one that has not yet waited as
long as its next stage needs. Counted in SQL statements (the store's trace callback), so the
tests say "proportional", never "fast".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alerts.helpers import (
    ESCALATING,
    SLACK,
    T0,
    Alerting,
    customer,
    ingest,
    load,
    minutes,
    settings_for,
    stages,
    team_reply,
)
from monitor.store import Store

WAITING = 200


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store runs inside the block."""
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        store.conn.set_trace_callback(None)


def crowd(tmp_path: Path, store: Store) -> Alerting:
    """WAITING customers who wrote at T0 (1h target, warning 30m, escalation 30m after)."""
    loaded, book = load(tmp_path, ESCALATING, SLACK)
    for n in range(WAITING):
        ingest(
            store,
            customer(f"q{n}@x", T0, address=f"c{n}@shop{n}.example", subject=f"order {n}"),
            at=T0,
        )
    return Alerting(store, book, settings_for(loaded))


def test_a_scheduled_pass_skips_clocks_whose_next_stage_is_not_due(
    tmp_path: Path, store: Store
) -> None:
    """Once every clock's breach is queued, passes before the escalation is due look at no
    clock's outbox rows at all; the pass after it queues every escalation, once."""
    alerting = crowd(tmp_path, store)
    assert alerting.at(minutes(61)) == WAITING  # the breach of each (the warning is moot)
    with statements(store) as quiet:
        alerting.engine.evaluate(minutes(70))
        assert alerting.planner.plan(minutes(70)) == 0
    per_clock = [s for s in quiet if "FROM outbox WHERE thread_key" in s]
    assert per_clock == [], f"{len(per_clock)} outbox lookups in a pass with nothing due"
    assert alerting.at(minutes(91)) == WAITING  # escalation 1, 30 minutes after the breach
    assert alerting.at(minutes(95)) == 0
    kinds = [stage for stage, _, _ in stages(store)]
    assert kinds.count("escalation-1") == WAITING
    assert kinds.count("breach") == WAITING


def test_a_plan_after_a_poll_looks_only_at_what_the_poll_changed(
    tmp_path: Path, store: Store
) -> None:
    """A reply to one conversation: the plan for what that evaluation touched reads a few
    rows, not WAITING, and queues the "answered" edit of that one conversation's alert."""
    alerting = crowd(tmp_path, store)
    alerting.at(minutes(61))
    store.conn.execute("UPDATE outbox SET state = 'sent', remote_ref = 'ts'")
    ingest(store, team_reply("r0@x", minutes(62), "c0@shop0.example", refs=("q0@x",)), at=T0)
    report = alerting.engine.evaluate(minutes(62), remeasure=False)
    assert len(report.touched) == 1
    with statements(store) as seen:
        queued = alerting.planner.plan(minutes(62), only=report.touched)
    assert queued == 1
    assert len(seen) < 30, f"{len(seen)} statements to plan one changed conversation"
    answered = [stage for stage, _, state in stages(store) if stage == "answered"]
    assert answered == ["answered"]


def test_a_plan_for_nothing_changed_queues_nothing_and_reads_little(
    tmp_path: Path, store: Store
) -> None:
    """A quiet poll (nothing changed): planning for it costs a handful of statements."""
    alerting = crowd(tmp_path, store)
    alerting.at(minutes(61))
    with statements(store) as seen:
        assert alerting.planner.plan(minutes(65), only=set()) == 0
    assert len(seen) < 10, seen


def test_a_source_whose_first_sync_ended_has_all_its_clocks_planned_and_only_its_own(
    tmp_path: Path, store: Store
) -> None:
    """When one source's first sync ends, its clocks (held until then) are measured again and
    planned, without a pass over every other source's waiting clocks."""
    alerting = crowd(tmp_path, store)
    alerting.engine.evaluate(minutes(61), remeasure=False)
    report = alerting.engine.evaluate(minutes(62), remeasure=["elsewhere"])
    assert report.remeasured == 0  # no clock of "elsewhere": none of "inbox" measured again
    assert alerting.planner.plan(minutes(62), only=set(), sources=["elsewhere"]) == 0
    report = alerting.engine.evaluate(minutes(63), remeasure=["inbox"])
    assert report.remeasured == WAITING
    assert alerting.planner.plan(minutes(63), only=set(), sources=["inbox"]) == WAITING
