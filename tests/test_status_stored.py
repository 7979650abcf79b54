"""`status` from stored clocks: the listing measured from what the daemon stored equals the one
evaluated in full from the messages, whatever changed since the daemon's last evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from test_engine import RULES_V1, berlin, event, ingest, reply, rulebook

from monitor.engine import ActionRequest, Engine, WaitingConversation, _clock_key
from monitor.store import Store
from monitor.store.sqlite import latest_snooze


def in_full(engine: Engine, now: datetime) -> list[WaitingConversation]:
    """Every candidate conversation evaluated from its messages and actions."""
    rows = []
    for conversation, messages, actions in engine._waiting_candidates(None):
        policy, verdicts = engine._measure(conversation, messages, actions, now)
        verdict = verdicts.awaiting
        if verdict is not None:
            snooze = latest_snooze(actions, _clock_key(conversation.id, verdict))
            held = snooze if snooze and snooze.until and snooze.until > now else None
            rows.append(
                WaitingConversation(
                    conversation=conversation, policy=policy, verdict=verdict, snoozed=held
                )
            )
    rows.sort(key=lambda row: (row.verdict.remaining, row.conversation.id))
    return rows


def test_waiting_from_stored_clocks_equals_the_full_evaluation(tmp_path: Path) -> None:
    """Conversations evaluated at their current revision are measured from the stored clock;
    one changed since, one snoozed and one never evaluated are evaluated in full; the rows,
    verdicts (customer messages included) and snoozes equal the full evaluation's."""
    rules = rulebook(tmp_path, "v1", RULES_V1)
    store = Store.open(tmp_path / "var" / "replyclock.db")
    ingest(
        store,
        event("a@x", berlin(16, 9), subject="Login"),
        event("b@x", berlin(16, 9, 30), customer="ann@shop.example", subject="Refund"),
        reply("b-r@acme", berlin(16, 10), "ann@shop.example", refs=("b@x",)),
        event("b2@x", berlin(16, 11), customer="ann@shop.example", subject="Refund", refs=("b@x",)),
        event("b3@x", berlin(16, 12), customer="ann@shop.example", subject="Refund", refs=("b@x",)),
        event("c@x", berlin(16, 10), sender="ops@bigcustomer.example", subject="API"),
        event("d@x", berlin(16, 11), customer="kai@design.example", subject="Logo"),
        reply("d-r@acme", berlin(16, 11, 30), "kai@design.example", refs=("d@x",)),
        at=berlin(16, 12, 30),
    )
    engine = Engine(store, rules)
    engine.evaluate(berlin(16, 12, 30))
    # After the evaluation: a follow-up on a, a snooze on c, a conversation never evaluated.
    ingest(store, event("a2@x", berlin(16, 13), subject="Login", refs=("a@x",)), at=berlin(16, 13))
    cid_c = store.conversation_for_message("inbox", "c@x")
    assert cid_c is not None
    outcome = engine.act(
        ActionRequest(
            kind="snooze",
            conversation_id=cid_c,
            actor="alice",
            via="cli",
            until=berlin(17, 12),
        ),
        berlin(16, 13),
    )
    assert outcome.action is not None
    ingest(store, event("e@x", berlin(16, 14), customer="lea@shop.example", subject="Export"),
           at=berlin(16, 14))  # fmt: skip
    now = berlin(17, 10) + timedelta(seconds=17)

    rows = engine.waiting(now)

    assert rows == in_full(engine, now)
    assert len(rows) == 4  # a, b, c, e; d was answered
    by_subject = {row.conversation.subject: row for row in rows}
    assert by_subject["Refund"].verdict.clock.customer_messages == 2
    assert by_subject["API"].snoozed is not None
    store.close()
