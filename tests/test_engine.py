"""The SLA engine over a real store: policy matching, clock history, transitions, waiting.

Rules come from YAML files written into the test's directory and loaded through a config file
that includes them, as `replyclock run` does. Times are in Berlin during a plain week of CET
(UTC+1): Mon 2026-11-16 to Fri 2026-11-20, the weekend before it Sat 14 and Sun 15.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.config.loader import load_config
from monitor.config.rules import RuleBook, build_rulebook
from monitor.engine import Engine, EvaluationReport, WaitingConversation
from monitor.explain import explain
from monitor.model import Direction, MailLocation, MessageEvent, ThreadRef
from monitor.store import SourceSink, Store
from monitor.store.sqlite import to_epoch

BERLIN = ZoneInfo("Europe/Berlin")
IN, OUT, IGN = Direction.INBOUND, Direction.OUTBOUND, Direction.IGNORED
HOUR = 3600

CONFIG = """\
store:
  path: var/replyclock.db
team:
  addresses: [support@acme.example]
  domains: [acme.example]
rules:
  - rules/{name}.yaml
sources:
  - name: inbox
    type: maildir
    path: maildir
"""

OFFICE = """\
calendars:
  office:
    timezone: Europe/Berlin
    hours:
      mon-fri: ["{hours}"]
"""
VIP_AND_STANDARD = """\
  - name: vip
    match:
      sender_domain: [bigcustomer.example]
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 15m
  - name: standard
    calendar: office
    targets: {first_response: 4h, next_response: 8h}
    warning: 30m
"""
INVOICES = """\
  - name: invoices
    match:
      subject_regex: "(?i)invoice"
    calendar: 24x7
    targets: {first_response: 2h}
    warning: 75%
"""
RULES_V1 = OFFICE.format(hours="09:00-17:00") + "policies:\n" + VIP_AND_STANDARD
# A new policy in front that the first conversation's subject matches.
RULES_INVOICES_FIRST = OFFICE.format(hours="09:00-17:00") + "policies:\n" + INVOICES
RULES_INVOICES_FIRST += VIP_AND_STANDARD
# The same policies, the office open two hours longer.
RULES_LONGER_HOURS = OFFICE.format(hours="08:00-18:00") + "policies:\n" + VIP_AND_STANDARD


def rulebook(tmp_path: Path, name: str, rules: str) -> RuleBook:
    """Write a rules file and a config including it, load both and build the rule book."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "maildir").mkdir(exist_ok=True)
    (tmp_path / "rules" / f"{name}.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / f"{name}.yaml"
    config.write_text(CONFIG.format(name=name), encoding="utf-8")
    return build_rulebook(load_config(config))


def berlin(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant of November 2026 on the Berlin wall clock, as UTC."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=BERLIN).astimezone(UTC)


def event(
    mid: str,
    when: datetime,
    direction: Direction = IN,
    *,
    sender: str = "tom@smallshop.example",
    customer: str = "tom@smallshop.example",
    subject: str = "Cannot log in",
    refs: tuple[str, ...] = (),
    uid: int | None = None,
) -> MessageEvent:
    return MessageEvent(
        source="inbox",
        identity=mid,
        timestamp=when,
        direction=direction,
        reason="test",
        author=sender,
        subject=subject,
        thread=ThreadRef(
            message_id=mid, references=refs, subject_key=subject.lower(), customer=customer
        ),
        folder="INBOX",
        location=MailLocation(folder="INBOX", uidvalidity=7, uid=uid) if uid is not None else None,
    )


def reply(mid: str, when: datetime, to: str, *, refs: tuple[str, ...]) -> MessageEvent:
    return event(mid, when, OUT, sender="support@acme.example", customer=to, refs=refs)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "var" / "replyclock.db")
    yield opened
    opened.close()


@pytest.fixture
def rules(tmp_path: Path) -> RuleBook:
    return rulebook(tmp_path, "v1", RULES_V1)


def ingest(store: Store, *events: MessageEvent, at: datetime) -> None:
    SourceSink(store, "inbox").accept(list(events), None, at)


def conversation_of(store: Store, mid: str) -> int:
    found = store.conversation_for_message("inbox", mid)
    assert found is not None
    return found


CURRENT = (
    "policy", "policy_reason", "state", "clock_kind", "waited_seconds", "target_seconds", "due_at",
)  # fmt: skip
HISTORY = (
    "seq", "policy", "kind", "started_at", "stopped_at", "stop_reason", "target_seconds",
    "business_seconds", "calendar_seconds", "state", "breached", "due_at",
)  # fmt: skip


def current(store: Store, cid: int) -> dict[str, object]:
    """The conversation's policy and current clock as stored."""
    row = store.conn.execute(
        f"SELECT {', '.join(CURRENT)} FROM conversations WHERE id = ?", (cid,)
    ).fetchone()
    return dict(zip(CURRENT, row, strict=True))


def clock_rows(store: Store, cid: int) -> list[dict[str, object]]:
    """The conversation's stored clock history, oldest first."""
    rows = store.conn.execute(
        f"SELECT {', '.join(HISTORY)} FROM clocks WHERE conversation_id = ? ORDER BY seq", (cid,)
    )
    return [dict(zip(HISTORY, row, strict=True)) for row in rows]


def changes(report: EvaluationReport) -> list[tuple[int, int, str | None, str]]:
    """The state changes an evaluation reported, as (conversation, clock, before, after)."""
    return [
        (t.conversation_id, t.seq, t.previous, t.verdict.state.value) for t in report.transitions
    ]


def test_rule_book_comes_from_the_included_rules_file(rules: RuleBook) -> None:
    """The config's `rules:` list brings in the rules file: its policies in order (no default
    appended, since `standard` catches everything) and its calendar described in words."""
    assert [
        (p.name, p.calendar, p.first_response, p.target("next_response"))
        for p in rules.policies.all
    ] == [("vip", "24x7", HOUR, HOUR), ("standard", "office", 4 * HOUR, 8 * HOUR)]
    assert rules.calendar_notes["office"] == "Europe/Berlin, mon-fri 09:00-17:00"


def test_policy_is_matched_once_and_kept_until_recompute(
    tmp_path: Path, store: Store, rules: RuleBook
) -> None:
    """The policy chosen on the first customer message is stored and kept when the rules change
    so that another policy would match, even when the conversation is evaluated again; only
    `recompute` matches it again under the new rules."""
    first_message = event("q1@x", berlin(16, 10), subject="Invoice 11/2026 is wrong")
    ingest(store, first_message, at=berlin(16, 10, 0, 30))
    cid = conversation_of(store, "q1@x")
    catch_all = "policy without conditions (catches every conversation)"

    first = Engine(store, rules).evaluate(berlin(16, 10, 30))

    # standard (office, 4h): 10:00-10:30 = 30m; due 10:00 + 4h = 14:00.
    assert (first.matched, first.reevaluated) == (1, 1)
    assert current(store, cid) == {
        "policy": "standard",
        "policy_reason": catch_all,
        "state": "ok",
        "clock_kind": "first_response",
        "waited_seconds": 1800,
        "target_seconds": 4 * HOUR,
        "due_at": to_epoch(berlin(16, 14)),
    }

    changed = rulebook(tmp_path, "v2", RULES_INVOICES_FIRST)
    follow_up = event("q2@x", berlin(16, 11), refs=("q1@x",), subject="Re: Invoice")
    ingest(store, follow_up, at=berlin(16, 11, 0, 30))
    again = Engine(store, changed).evaluate(berlin(16, 11, 30))

    # Evaluated in full (a follow-up arrived), still under standard: 10:00-11:30 = 1h30m.
    assert (again.matched, again.reevaluated) == (0, 1)
    assert current(store, cid) == {
        "policy": "standard",
        "policy_reason": catch_all,
        "state": "ok",
        "clock_kind": "first_response",
        "waited_seconds": 5400,
        "target_seconds": 4 * HOUR,
        "due_at": to_epoch(berlin(16, 14)),
    }

    recomputed = Engine(store, changed).recompute(berlin(16, 12))

    # invoices (24x7, 2h, warning at 75% = 1h30m): 10:00-12:00 = 2h -> warning; due 12:00.
    assert (recomputed.matched, recomputed.reevaluated) == (1, 1)
    assert current(store, cid) == {
        "policy": "invoices",
        "policy_reason": "subject matches /(?i)invoice/",
        "state": "warning",
        "clock_kind": "first_response",
        "waited_seconds": 2 * HOUR,
        "target_seconds": 2 * HOUR,
        "due_at": to_epoch(berlin(16, 12)),
    }


def answered_before_opening(store: Store, rules: RuleBook) -> int:
    """Tom writes Mon 08:30 and is answered at 10:00; evaluated at 12:00 under ``rules``."""
    ingest(
        store,
        event("q1@x", berlin(16, 8, 30)),
        reply("r1@acme", berlin(16, 10), "tom@smallshop.example", refs=("q1@x",)),
        at=berlin(16, 10, 0, 30),
    )
    Engine(store, rules).evaluate(berlin(16, 12))
    return conversation_of(store, "q1@x")


def touch_with_auto_reply(store: Store) -> None:
    """Our autoresponder's notice at 12:30: the conversation changed, so it is evaluated anew."""
    notice = event(
        "a1@acme", berlin(16, 12, 30), IGN, sender="support@acme.example", refs=("r1@acme",)
    )
    ingest(store, notice, at=berlin(16, 12, 30, 30))


def test_stopped_clock_keeps_its_numbers_when_the_calendar_changes_until_recompute(
    tmp_path: Path, store: Store, rules: RuleBook
) -> None:
    """An answered clock is history: after the office hours change it keeps the business time
    and due time computed when it stopped, even when its conversation is evaluated again, until
    `recompute` measures it under the new hours."""
    cid = answered_before_opening(store, rules)
    # 09:00-17:00: 08:30-10:00 counts 09:00-10:00 = 1h; due 09:00 + 4h = 13:00.
    as_stopped = {
        "seq": 0,
        "policy": "standard",
        "kind": "first_response",
        "started_at": to_epoch(berlin(16, 8, 30)),
        "stopped_at": to_epoch(berlin(16, 10)),
        "stop_reason": "reply",
        "target_seconds": 4 * HOUR,
        "business_seconds": HOUR,
        "calendar_seconds": 5400,
        "state": "answered",
        "breached": 0,
        "due_at": to_epoch(berlin(16, 13)),
    }
    assert clock_rows(store, cid) == [as_stopped]

    longer = rulebook(tmp_path, "longer", RULES_LONGER_HOURS)
    touch_with_auto_reply(store)
    report = Engine(store, longer).evaluate(berlin(16, 13))

    assert (report.reevaluated, changes(report)) == (1, [])
    assert clock_rows(store, cid) == [as_stopped]

    Engine(store, longer).recompute(berlin(16, 14))

    # 08:00-18:00: 08:30-10:00 = 1h30m; due 08:30 + 4h = 12:30.
    assert clock_rows(store, cid) == [
        {**as_stopped, "business_seconds": 5400, "due_at": to_epoch(berlin(16, 12, 30))}
    ]


def test_conversation_row_of_a_stopped_clock_agrees_with_its_history(
    tmp_path: Path, store: Store, rules: RuleBook
) -> None:
    """When a conversation whose last clock is history is evaluated again under changed hours,
    its stored waited time and due time stay those of the history row (1h, due 13:00), not
    the new calendar's (1h30m, due 12:30)."""
    cid = answered_before_opening(store, rules)
    longer = rulebook(tmp_path, "longer", RULES_LONGER_HOURS)
    touch_with_auto_reply(store)

    Engine(store, longer).evaluate(berlin(16, 13))

    [history] = clock_rows(store, cid)
    assert (history["business_seconds"], history["due_at"]) == (HOUR, to_epoch(berlin(16, 13)))
    assert current(store, cid) == {
        "policy": "standard",
        "policy_reason": "policy without conditions (catches every conversation)",
        "state": "answered",
        "clock_kind": "first_response",
        "waited_seconds": HOUR,
        "target_seconds": 4 * HOUR,
        "due_at": to_epoch(berlin(16, 13)),
    }


def test_transitions_are_reported_once_per_state_change(store: Store, rules: RuleBook) -> None:
    """Evaluations at increasing `now` report ok, then warning, then breached, then answered,
    each once; an evaluation that finds no state changed reports nothing."""
    ingest(store, event("q1@x", berlin(16, 9)), at=berlin(16, 9, 0, 30))
    cid = conversation_of(store, "q1@x")
    engine = Engine(store, rules)

    # standard: 4h target, warning 30m before due = from 3h30m (12:30), breached after 13:00.
    reports = [
        engine.evaluate(now)
        for now in (
            berlin(16, 9, 30),  # 30m: ok, a clock seen for the first time
            berlin(16, 10),  # 1h: ok
            berlin(16, 12, 30),  # 3h30m: warning
            berlin(16, 12, 45),  # 3h45m: warning
            berlin(16, 13),  # 4h: still warning (a reply now is on time)
            berlin(16, 13, 0, 1),  # 4h00m01s: breached
            berlin(16, 14),  # 5h: breached
        )
    ]
    answer = reply("r1@acme", berlin(16, 14, 30), "tom@smallshop.example", refs=("q1@x",))
    ingest(store, answer, at=berlin(16, 14, 30, 30))
    reports += [engine.evaluate(berlin(16, 15)), engine.evaluate(berlin(16, 16))]

    assert [changes(report) for report in reports] == [
        [(cid, 0, None, "ok")],
        [],
        [(cid, 0, "ok", "warning")],
        [],
        [],
        [(cid, 0, "warning", "breached")],
        [],
        [(cid, 0, "breached", "answered")],
        [],
    ]
    assert [t.policy for r in reports for t in r.transitions] == ["standard"] * 4
    # 09:00-14:30 = 5h30m of business time; the breach stays in the history.
    [history] = clock_rows(store, cid)
    assert (history["business_seconds"], history["state"], history["breached"]) == (
        5 * HOUR + 1800,
        "answered",
        1,
    )


def test_expunged_customer_message_closes_its_clock_without_reply(
    store: Store, rules: RuleBook
) -> None:
    """When the only customer message leaves every watched folder unanswered, the next
    evaluation re-evaluates the conversation and closes its clock as closed_without_reply,
    counted up to the removal and not a breach."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("q1@x", berlin(16, 9), uid=1)], None, berlin(16, 9, 0, 30))
    cid = conversation_of(store, "q1@x")
    engine = Engine(store, rules)
    engine.evaluate(berlin(16, 10))

    assert sink.forget_uids("INBOX", 7, [1], berlin(16, 11)) == 1
    report = engine.evaluate(berlin(16, 11, 30))

    # 09:00-11:00 = 2h of 4h; due 13:00.
    assert (report.reevaluated, changes(report)) == (1, [(cid, 0, "ok", "closed")])
    assert clock_rows(store, cid) == [
        {
            "seq": 0,
            "policy": "standard",
            "kind": "first_response",
            "started_at": to_epoch(berlin(16, 9)),
            "stopped_at": to_epoch(berlin(16, 11)),
            "stop_reason": "closed_without_reply",
            "target_seconds": 4 * HOUR,
            "business_seconds": 2 * HOUR,
            "calendar_seconds": 2 * HOUR,
            "state": "closed",
            "breached": 0,
            "due_at": to_epoch(berlin(16, 13)),
        }
    ]
    assert current(store, cid)["state"] == "closed"
    assert engine.waiting(berlin(16, 11, 30)) == []


def waiting_table(rows: list[WaitingConversation]) -> list[tuple[int, str, str, int, int]]:
    return [
        (
            row.conversation.id,
            row.policy.name,
            row.verdict.state.value,
            row.verdict.business_seconds,
            row.verdict.remaining,
        )
        for row in rows
    ]


def test_waiting_is_right_before_any_evaluation_and_sorted_by_time_left(
    tmp_path: Path, store: Store, rules: RuleBook
) -> None:
    """`waiting` on a read-only store that was never evaluated measures every waiting customer
    under the policy the rules choose, least business time left first (ties by id), writes
    nothing, and agrees with what it says after an evaluation."""
    saturday = datetime(2026, 11, 14, 10, tzinfo=BERLIN).astimezone(UTC)

    def customer(mid: str, when: datetime, sender: str, subject: str) -> MessageEvent:
        return event(mid, when, sender=sender, customer=sender, subject=subject)

    ingest(
        store,
        customer("a@x", berlin(16, 9), "tom@smallshop.example", "Cannot log in"),
        customer("f@x", berlin(16, 10), "ops2@bigcustomer.example", "Webhooks fail"),
        customer("b@x", berlin(16, 11, 30), "ops@bigcustomer.example", "API down"),
        customer("c@x", berlin(16, 11), "kai@design.example", "Logo upload"),
        customer("d@x", berlin(16, 9), "ann@shop.example", "Refund"),
        reply("d-reply@acme", berlin(16, 9, 30), "ann@shop.example", refs=("d@x",)),
        customer("e@x", saturday, "lea@shop.example", "Export"),
        at=berlin(16, 11, 45),
    )
    ids = {mid: conversation_of(store, mid) for mid in ("a@x", "b@x", "c@x", "e@x", "f@x")}
    now = berlin(16, 12)
    # vip (24x7, 1h, warning from 45m): f 10:00-12:00 = 2h -> breached, 1h over;
    #   b 11:30-12:00 = 30m -> ok, 30m left.
    # standard (office, 4h, warning from 3h30m): a 09:00-12:00 = 3h, 1h left; e since Saturday
    #   counts from Monday 09:00: 3h, 1h left (a has the lower id); c 11:00-12:00 = 1h, 3h left.
    # d was answered: not waiting.
    expected = [
        (ids["f@x"], "vip", "breached", 2 * HOUR, -HOUR),
        (ids["b@x"], "vip", "ok", 1800, 1800),
        (ids["a@x"], "standard", "ok", 3 * HOUR, HOUR),
        (ids["e@x"], "standard", "ok", 3 * HOUR, HOUR),
        (ids["c@x"], "standard", "ok", HOUR, 3 * HOUR),
    ]
    store.close()

    with Store.open(tmp_path / "var" / "replyclock.db", readonly=True) as reader:
        rows = Engine(reader, rules).waiting(now)
        elsewhere = Engine(reader, rules).waiting(now, source="another-inbox")
        written = reader.conn.execute(
            "SELECT (SELECT COUNT(*) FROM conversations WHERE policy IS NOT NULL "
            "OR evaluated_at IS NOT NULL), (SELECT COUNT(*) FROM clocks)"
        ).fetchone()

    assert waiting_table(rows) == expected
    assert (elsewhere, tuple(written)) == ([], (0, 0))
    with Store.open(tmp_path / "var" / "replyclock.db") as writer:
        engine = Engine(writer, rules)
        engine.evaluate(now)
        assert waiting_table(engine.waiting(now)) == expected


def test_conversation_with_only_outbound_mail_has_no_clock_and_no_policy(
    store: Store, rules: RuleBook
) -> None:
    """A message the team sent with no customer message yet matches no policy, starts no clock
    and is not waiting; the customer's answer later starts a next-response clock."""
    outreach = reply("r1@acme", berlin(16, 9), "tom@smallshop.example", refs=())
    ingest(store, outreach, at=berlin(16, 9, 0, 30))
    cid = conversation_of(store, "r1@acme")
    engine = Engine(store, rules)

    report = engine.evaluate(berlin(16, 10))

    assert (report.matched, changes(report)) == (0, [])
    assert current(store, cid) == dict.fromkeys(CURRENT)
    assert clock_rows(store, cid) == []
    assert engine.waiting(berlin(16, 10)) == []

    ingest(store, event("q1@x", berlin(16, 11), refs=("r1@acme",)), at=berlin(16, 11, 0, 30))
    later = engine.evaluate(berlin(16, 12))

    # standard's next-response target is 8h: 11:00-12:00 = 1h; due 8h later = Tue 11:00.
    assert (later.matched, changes(later)) == (1, [(cid, 0, None, "ok")])
    assert current(store, cid) == {
        "policy": "standard",
        "policy_reason": "policy without conditions (catches every conversation)",
        "state": "ok",
        "clock_kind": "next_response",
        "waited_seconds": HOUR,
        "target_seconds": 8 * HOUR,
        "due_at": to_epoch(berlin(17, 11)),
    }


def test_customer_message_moved_back_reopens_its_clock(store: Store, rules: RuleBook) -> None:
    """A customer message archived unanswered and then moved back into the INBOX makes the
    customer wait again: the next evaluation reopens the clock from the first message."""
    sink = SourceSink(store, "inbox")
    sink.accept([event("q1@x", berlin(16, 9), uid=1)], None, berlin(16, 9, 0, 30))
    cid = conversation_of(store, "q1@x")
    engine = Engine(store, rules)
    engine.evaluate(berlin(16, 10))
    sink.forget_uids("INBOX", 7, [1], berlin(16, 11))
    engine.evaluate(berlin(16, 11, 30))

    sink.accept([event("q1@x", berlin(16, 9), uid=2)], None, berlin(16, 12))
    report = engine.evaluate(berlin(16, 12, 30))

    # Running again from 09:00: 09:00-12:30 = 3h30m = the warning threshold of standard.
    assert changes(report) == [(cid, 0, "closed", "warning")]
    assert current(store, cid)["state"] == "warning"
    assert [row.conversation.id for row in engine.waiting(berlin(16, 12, 30))] == [cid]


RULES_PAUSE_ON_PENDING = (
    OFFICE.format(hours="09:00-17:00")
    + """\
policies:
  - name: helpdesk
    calendar: office
    targets: {first_response: 4h}
    warning: 30m
    pause_on: [pending]
"""
)


def status_change(mid: str, when: datetime, status: str) -> MessageEvent:
    """A helpdesk ticket's status change: neither a customer message nor a reply."""
    return MessageEvent(
        source="inbox",
        identity=mid,
        timestamp=when,
        direction=IGN,
        reason="status change",
        status=status,
        thread=ThreadRef(conversation="ticket-1"),
    )


def test_remeasuring_a_resumed_clock_leaves_its_pause_out(tmp_path: Path, store: Store) -> None:
    """A ticket that was pending 10:00-13:00 under a policy that pauses on pending has waited
    1h + 1h = 2h at 14:00, whether its conversation changed since the last evaluation or not."""
    rules = rulebook(tmp_path, "helpdesk", RULES_PAUSE_ON_PENDING)
    asked = MessageEvent(
        source="inbox",
        identity="t1-c1",
        timestamp=berlin(16, 9),
        direction=IN,
        reason="customer comment",
        author="tom@smallshop.example",
        thread=ThreadRef(conversation="ticket-1"),
    )
    ingest(
        store,
        asked,
        status_change("t1-s1", berlin(16, 10), "pending"),
        status_change("t1-s2", berlin(16, 13), "open"),
        at=berlin(16, 13, 0, 30),
    )
    cid = conversation_of(store, "t1-c1")
    engine = Engine(store, rules)

    engine.evaluate(berlin(16, 13, 30))  # in full: 09:00-10:00 + 13:00-13:30 = 1h30m
    assert current(store, cid)["waited_seconds"] == 5400
    report = engine.evaluate(berlin(16, 14))  # nothing changed: the running clock is remeasured

    # A clock with ticket statuses is measured from its messages (its pauses live there).
    assert (report.remeasured, report.reevaluated) == (0, 1)
    assert (current(store, cid)["state"], current(store, cid)["waited_seconds"]) == (
        "ok",
        2 * HOUR,
    )


def test_explain_leaves_pauses_out_of_the_business_time_per_day(
    tmp_path: Path, store: Store
) -> None:
    """A ticket pending 10:00-13:00 of a Monday and 09:00-16:00 of the Tuesday: explain lists
    both pauses and counts per day only the time that counted (Mon 1h + 4h, Tue 1h: 6h), the
    same total the clock waited."""
    rules = rulebook(tmp_path, "helpdesk", RULES_PAUSE_ON_PENDING)
    asked = MessageEvent(
        source="inbox",
        identity="t1-c1",
        timestamp=berlin(16, 9),
        direction=IN,
        reason="customer comment",
        author="tom@smallshop.example",
        thread=ThreadRef(conversation="ticket-1"),
    )
    ingest(
        store,
        asked,
        status_change("t1-s1", berlin(16, 10), "pending"),
        status_change("t1-s2", berlin(16, 13), "open"),
        status_change("t1-s3", berlin(17, 9), "pending"),
        status_change("t1-s4", berlin(17, 16), "open"),
        at=berlin(17, 16),
    )
    cid = conversation_of(store, "t1-c1")
    text = "\n".join(explain(store, rules, cid, berlin(17, 17)))
    assert "business time counted per day: Mon 11-16 5h00m, Tue 11-17 1h00m" in text
    assert text.count("(waiting on the customer)") == 2
    assert "waited 6h00m in business time" in text
