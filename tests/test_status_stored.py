"""`status` from stored clocks: the listing measured from what the daemon stored equals the one
evaluated in full from the messages, whatever changed since the daemon's last evaluation; the
listing's lean rows, its local times and its quick-made values equal the full ones; and the
command loads neither the daemon nor any source adapter."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine import RULES_V1, berlin, event, ingest, reply, rulebook

from monitor import cli
from monitor.cli import LocalTimes
from monitor.config.loader import load_config
from monitor.engine import (
    ActionRequest,
    Engine,
    ListedConversation,
    WaitingConversation,
    _clock_key,
)
from monitor.store import Store
from monitor.store.sqlite import (
    _CONVERSATION_COLUMNS,
    _conversation,
    _made_conversation,
    latest_snooze,
    to_epoch,
)

REPO = Path(__file__).resolve().parent.parent


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


def listed(rows: list[WaitingConversation]) -> list[ListedConversation]:
    """Full rows reduced to the listing's figures, each due time from its own verdict."""
    return [
        ListedConversation(
            row.verdict.remaining,
            row.conversation.id,
            row.conversation.source,
            row.policy,
            row.conversation.customer,
            row.conversation.subject,
            row.verdict.clock.kind,
            row.verdict.state,
            to_epoch(row.verdict.clock.started_at),
            row.verdict.business_seconds,
            row.verdict.calendar_seconds,
            row.verdict.target,
            to_epoch(row.verdict.due_at),
            row.snoozed.until if row.snoozed is not None else None,
        )
        for row in rows
    ]


def test_listing_equals_the_full_evaluation_line_for_line(tmp_path: Path) -> None:
    """The lean listing has the full evaluation's conversations, order and figures, whether a
    row was measured from the stored clock or evaluated in full (changed, snoozed, new)."""
    rules = rulebook(tmp_path, "v1", RULES_V1)
    store = Store.open(tmp_path / "var" / "replyclock.db")
    ingest(
        store,
        event("a@x", berlin(16, 9), subject="Login"),
        event("b@x", berlin(16, 9, 30), customer="ann@shop.example", subject="Refund"),
        reply("b-r@acme", berlin(16, 10), "ann@shop.example", refs=("b@x",)),
        event("b2@x", berlin(16, 11), customer="ann@shop.example", subject="Refund", refs=("b@x",)),
        event("c@x", berlin(16, 10), sender="ops@bigcustomer.example", subject="API"),
        event("d@x", berlin(14, 11), customer="kai@design.example", subject="Logo"),
        at=berlin(16, 12, 30),
    )
    engine = Engine(store, rules)
    engine.evaluate(berlin(16, 12, 30))
    ingest(store, event("a2@x", berlin(16, 13), subject="Login", refs=("a@x",)), at=berlin(16, 13))
    cid_c = store.conversation_for_message("inbox", "c@x")
    assert cid_c is not None
    engine.act(
        ActionRequest(kind="snooze", conversation_id=cid_c, actor="al", via="cli",
                      until=berlin(17, 12)),
        berlin(16, 13),
    )  # fmt: skip
    ingest(store, event("e@x", berlin(16, 14), customer="lea@shop.example", subject="Export"),
           at=berlin(16, 14))  # fmt: skip
    now = berlin(17, 10) + timedelta(seconds=17)

    rows = engine.listing(now)

    assert rows == listed(engine.waiting(now))
    assert len(rows) == 5
    assert [row.snoozed_until for row in rows if row.id == cid_c] == [berlin(17, 12)]
    assert engine.listing(now, "elsewhere") == []
    store.close()


def test_listing_shares_a_due_time_only_between_clocks_due_together(tmp_path: Path) -> None:
    """Clocks that waited the same business time under one policy share a due time (started
    over one weekend: due Monday 13:00); a clock started after now has waited nothing too, yet
    is due later than one started the evening before."""
    rules = rulebook(tmp_path, "v1", RULES_V1)
    store = Store.open(tmp_path / "var" / "replyclock.db")
    now = berlin(17, 8)  # Tuesday, before opening
    ingest(
        store,
        event("sat@x", berlin(14, 10), customer="a@shop.example", subject="One"),
        event("sun@x", berlin(15, 18), customer="b@shop.example", subject="Two"),
        event("mon@x", berlin(16, 18), customer="c@shop.example", subject="Three"),
        event("later@x", berlin(17, 9, 30), customer="d@shop.example", subject="Four"),
        event("vip@x", berlin(16, 20), sender="ops@bigcustomer.example", subject="Five"),
        at=now,
    )
    engine = Engine(store, rules)
    engine.evaluate(now)

    rows = engine.listing(now)

    assert rows == listed(engine.waiting(now))
    due = {row.subject: datetime.fromtimestamp(row.due_at, UTC) for row in rows}
    waited = {row.subject: row.business_seconds for row in rows}
    assert (waited["One"], waited["Two"], waited["Three"], waited["Four"]) == (8 * 3600,) * 2 + (
        0,
        0,
    )
    assert due == {
        "One": berlin(16, 13),
        "Two": berlin(16, 13),
        "Three": berlin(17, 13),
        "Four": berlin(17, 13, 30),
        "Five": berlin(16, 21),
    }
    store.close()


ZONES = ("UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe",
         "Europe/Amsterdam", "Pacific/Apia", "America/Sao_Paulo")  # fmt: skip


@pytest.mark.parametrize("zone", ZONES)
@settings(max_examples=300, deadline=None)
@given(second=st.integers(min_value=-2_208_988_800, max_value=4_102_444_800))  # 1900 to 2100
def test_local_times_read_as_strftime_does(zone: str, second: int) -> None:
    """Any instant from 1900 to 2100, offsets of whole hours, half hours, 45 minutes and the
    seconds of local mean time, across DST changes: the text ``strftime`` gives."""
    local = LocalTimes(ZoneInfo(zone))
    expected = datetime.fromtimestamp(second, UTC).astimezone(local.zone).strftime(local.FORMAT)
    assert local(second) == expected


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        pytest.param("Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC), id="spring_skip_hour"),
        pytest.param("Europe/Berlin", datetime(2026, 10, 25, tzinfo=UTC), id="autumn_repeat_hour"),
        pytest.param("Australia/Lord_Howe", datetime(2026, 4, 4, 12, tzinfo=UTC), id="half_hour"),
        pytest.param("Asia/Kathmandu", datetime(1985, 12, 31, 12, tzinfo=UTC), id="to_45_minutes"),
    ],
)
def test_local_times_across_a_change_minute_by_minute(zone: str, day: datetime) -> None:
    """Every minute of the day around a change of offset reads as ``strftime`` reads it."""
    local = LocalTimes(ZoneInfo(zone))
    start = int(day.timestamp())
    for second in range(start, start + 86400, 60):
        instant = datetime.fromtimestamp(second, UTC).astimezone(local.zone)
        assert local(second) == instant.strftime(local.FORMAT), second


def test_conversations_made_for_listings_equal_the_plain_ones(tmp_path: Path) -> None:
    """A conversation read for a listing is the same value as one read alone: equal, equally
    hashed, frozen, and of the same class with every field."""
    store = Store.open(tmp_path / "var" / "replyclock.db")
    ingest(store, event("a@x", berlin(16, 9), subject="Login"), at=berlin(16, 9))
    row = store.conn.execute(f"SELECT {_CONVERSATION_COLUMNS} FROM conversations").fetchone()
    store.close()

    made, plain = _made_conversation(row), _conversation(row)

    assert (made, hash(made), type(made)) == (plain, hash(plain), type(plain))
    assert dataclasses.asdict(made) == dataclasses.asdict(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.subject = "changed"  # type: ignore[misc]


QUICK_COMMANDS = [
    ["--version"],
    ["--help"],
    ["status", "-c", "CONFIG"],
    ["explain", "-c", "CONFIG", "1"],
]
HEAVY = (
    "monitor.daemon", "monitor.app", "monitor.sources", "monitor.metrics", "monitor.polling",
    "imapclient", "msal", "google", "slack_sdk", "apscheduler", "prometheus_client",
)  # fmt: skip


@pytest.mark.parametrize("argv", QUICK_COMMANDS, ids=lambda argv: argv[0])
def test_quick_commands_load_no_daemon_and_no_source_adapter(
    tmp_path: Path, argv: list[str]
) -> None:
    """``--version``, ``--help``, ``status`` and ``explain`` import neither the daemon nor the
    source adapters, nor their libraries."""
    config = tmp_path / "replyclock.yaml"
    (tmp_path / "maildir").mkdir()
    config.write_text(
        "store:\n  path: var/replyclock.db\nteam:\n  addresses: [support@acme.example]\n"
        "sources:\n  - name: inbox\n    type: maildir\n    path: maildir\n",
        encoding="utf-8",
    )
    Store.open(tmp_path / "var" / "replyclock.db").close()
    args = [str(config) if arg == "CONFIG" else arg for arg in argv]
    script = (
        "import sys\n"
        "from monitor.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy) and "
        "(m in heavy or m.startswith(tuple(h + '.' for h in heavy)))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False
    )

    assert done.stdout.splitlines()[-1] == "[]", done.stderr


class Terminal(io.StringIO):
    """Output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("no_color", "coloured"), [("", True), ("1", False)], ids=["tty", "NO_COLOR"]
)
def test_status_colours_the_state_column_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_color: str, *, coloured: bool
) -> None:
    """On a terminal each line's STATE cell is coloured by its state, padding included, and
    nothing else is; NO_COLOR turns colours off."""
    rulebook(tmp_path, "v1", RULES_V1)
    store = Store.open(tmp_path / "var" / "replyclock.db")
    now = berlin(16, 12, 40)
    ingest(
        store,
        event("a@x", berlin(16, 9), subject="Login"),  # 3h40m of 4h: warning from 3h30m
        event("b@x", berlin(16, 11, 50), customer="ann@shop.example", subject="Refund"),
        at=now,
    )
    Engine(store, rulebook(tmp_path, "v1", RULES_V1)).evaluate(now)
    store.close()

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:
            return now

    monkeypatch.setattr(cli, "datetime", Frozen)
    monkeypatch.setenv("NO_COLOR", no_color)
    out = Terminal()
    cli.cmd_status(load_config(tmp_path / "v1.yaml"), source=None, as_json=False, out=out)

    lines = out.getvalue().splitlines()
    if coloured:
        assert "\033[33mwarning\033[0m" in lines[1]
        assert lines[1].count("\033[") == 2
        assert "\033[32mok     \033[0m" in lines[2]
        assert "\033[" not in lines[0] + lines[-1]
    else:
        assert "\033[" not in out.getvalue()
