"""`replyclock dismiss` and `replyclock snooze` on the shipped example, at a fixed now.

Each test works on a copy of examples/ and rules/, read once by `run --once` at NOW = Tue
2026-11-24 12:00 UTC (see tests/test_cli.py for the example's conversations). f1 (URGENT, policy
urgent on a 24x7 UTC calendar, 30m target) waits since Tue 17 Nov 17:20 UTC: breached.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_cli import NOW, REPO, FrozenDatetime

from monitor import cli
from monitor.cli import main
from monitor.config.loader import load_config
from monitor.config.rules import build_rulebook
from monitor.engine import Engine
from monitor.store import Store
from monitor.store.sqlite import actions_by_conversation, metrics_snapshot

URGENT = "<f1@bigcustomer.example>"


@pytest.fixture
def demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """The example, read by `run --once` at NOW, with the OS user ``alice``."""
    monkeypatch.setattr(cli, "datetime", FrozenDatetime)
    monkeypatch.setenv("LOGNAME", "alice")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    config = tmp_path / "examples" / "demo.yaml"
    assert main(["run", "-c", str(config), "--once"]) == 0
    capsys.readouterr()
    return config


def db(demo: Path) -> Path:
    return demo.parent.parent / "var" / "demo.db"


def urgent_id(demo: Path) -> int:
    with Store.open(db(demo), readonly=True) as store:
        found = store.conversation_for_message(None, URGENT)
    assert found is not None
    return found


def status_ids(demo: Path, capsys: pytest.CaptureFixture[str]) -> list[int]:
    assert main(["status", "-c", str(demo), "--json"]) == 0
    return [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize(
    ("command", "example"),
    [
        pytest.param(
            "dismiss",
            'replyclock dismiss -c replyclock.yaml 42 --reason "customer said thanks"',
            id="dismiss",
        ),
        pytest.param("snooze", "replyclock snooze -c replyclock.yaml 42 4h", id="snooze"),
    ],
)
def test_help_ends_with_an_example(
    capsys: pytest.CaptureFixture[str], command: str, example: str
) -> None:
    """`dismiss --help` and `snooze --help` end with a runnable example, and the overview lists
    both with theirs."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    own = capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    overview = capsys.readouterr().out

    assert own.endswith(f"\nexample:\n  {example}\n")
    assert f"\n  {example}\n" in overview
    assert f"\n  {command} " in overview


def test_dismiss_stops_the_clock_and_says_what_it_did(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dismiss` by Message-ID prints which clock it stopped and how the record was kept;
    `status` no longer lists the conversation."""
    cid = urgent_id(demo)
    before = status_ids(demo, capsys)

    code = main(["dismiss", "-c", str(demo), URGENT, "--reason", "customer said thanks"])
    out = capsys.readouterr().out

    assert code == 0
    assert out.splitlines() == [
        f"Conversation {cid}: dismissed its first-response clock (waiting since Tue 17 Nov "
        "17:20 UTC, 162h40m in business time): no reply needed (reason: customer said thanks).",
        "Recorded as action 1 by alice (command line); `status` and `explain` show it now, "
        "`replyclock run` takes it in at its next evaluation.",
    ]
    assert cid in before
    assert status_ids(demo, capsys) == [i for i in before if i != cid]


def test_explain_shows_the_dismissal_in_the_timeline_and_the_clock(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain` lists the decision among the messages, by whom and why, and the clock as
    stopped by it, its breach standing."""
    cid = urgent_id(demo)
    main(["dismiss", "-c", str(demo), str(cid), "--reason", "duplicate of a ticket"])
    capsys.readouterr()

    assert main(["explain", "-c", str(demo), str(cid)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert "Messages and actions (UTC):" in lines
    assert (
        "  Tue 2026-11-24 12:00 UTC  dismiss   alice (command line): no reply needed; reason: "
        "duplicate of a ticket"
    ) in lines
    assert any(
        "stopped Tue 2026-11-24 12:00 UTC: dismissed by alice (command line), no reply needed"
        in line
        for line in lines
    )
    assert (
        "     verdict: dismissed (no reply needed) after the target had passed: the breach stands"
    ) in lines


def test_a_dismissed_clock_cannot_be_dismissed_again(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `dismiss` records nothing, exits 1 and says who dismissed it when."""
    cid = urgent_id(demo)
    main(["dismiss", "-c", str(demo), str(cid)])
    capsys.readouterr()

    code = main(["dismiss", "-c", str(demo), str(cid)])
    captured = capsys.readouterr()

    assert code == 1
    assert captured.err == (
        f"replyclock: conversation {cid}: nothing done: the wait is over: already dismissed "
        "by alice (command line), Tue 24 Nov 12:00 UTC\n"
    )
    with Store.open(db(demo), readonly=True) as store:
        assert len(actions_by_conversation(store, [cid])[cid]) == 1


def test_snooze_shows_in_status_and_the_clock_keeps_running(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`snooze ID 4h` prints until when; `status` still lists the conversation, breached,
    "snoozed until" then (and --json says so too)."""
    cid = urgent_id(demo)

    code = main(["snooze", "-c", str(demo), str(cid), "4h", "--reason", "on the phone"])
    out = capsys.readouterr().out
    assert main(["status", "-c", str(demo)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert main(["status", "-c", str(demo), "--json"]) == 0
    rows = {
        json.loads(line)["id"]: json.loads(line)
        for line in capsys.readouterr().out.split("\n")
        if line
    }

    assert code == 0
    assert out.splitlines()[0] == (
        f"Conversation {cid}: snoozed the alerts of its first-response clock (waiting since "
        "Tue 17 Nov 17:20 UTC, 162h40m in business time) until Tue 24 Nov 16:00 UTC; the clock "
        "keeps running (reason: on the phone)."
    )
    [row] = [line for line in table if line.split()[:2] == [str(cid), "acme-support"]]
    assert "  breached, snoozed until Tue 24 Nov 16:00 UTC  " in row
    assert rows[cid]["state"] == "breached"
    assert rows[cid]["snoozed_until"] == "2026-11-24T16:00:00+00:00"
    assert {r["snoozed_until"] for i, r in rows.items() if i != cid} == {None}


def test_actions_are_recorded_next_to_a_running_daemon(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the daemon holds the store, `dismiss` still records the decision (beside it) and
    says the daemon takes it in; the daemon's next evaluation stops the clock and counts it."""
    cid = urgent_id(demo)
    loaded = load_config(demo)
    daemon = Store.open(db(demo))  # the running daemon: the store's writer
    try:
        code = main(["dismiss", "-c", str(demo), str(cid)])
        out = capsys.readouterr().out
        Engine(daemon, build_rulebook(loaded)).evaluate(NOW)
        state = daemon.conn.execute(
            "SELECT state FROM conversations WHERE id = ?", (cid,)
        ).fetchone()[0]
        dismissed = sum(t.dismissed for t in metrics_snapshot(daemon).totals)
    finally:
        daemon.close()

    assert code == 0
    assert out.splitlines()[1].endswith(
        "the running daemon takes it in at its next evaluation (within a minute)."
    )
    assert (state, dismissed) == ("dismissed", 1)


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        pytest.param(
            ["snooze", "{cid}", "soon"],
            2,
            "replyclock: DURATION: a duration must look like 30s, 15m, 4h, 2d or 1h30m, "
            "got: 'soon'\n",
            id="unreadable_duration",
        ),
        pytest.param(
            ["snooze", "{cid}", "0m"],
            2,
            "replyclock: DURATION must be positive, got: '0m'\n",
            id="zero_duration",
        ),
        pytest.param(
            ["dismiss", "999"],
            1,
            "replyclock: no conversation '999' in {db}; `replyclock status` lists the ids\n",
            id="unknown_conversation",
        ),
        pytest.param(
            ["dismiss", "<a1@bigcustomer.example>"],
            1,
            "replyclock: conversation {answered}: nothing done: the wait is over: the customer "
            "was answered, Mon 16 Nov 10:35 CET\n",
            id="answered_conversation",
        ),
    ],
)
def test_what_cannot_be_done_is_refused_with_the_reason(
    demo: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, error: str
) -> None:
    """A bad duration (exit 2), an unknown conversation or one nobody waits on (exit 1):
    nothing is recorded, and stderr says why."""
    cid = urgent_id(demo)
    with Store.open(db(demo), readonly=True) as store:
        answered = store.conversation_for_message(None, "a1@bigcustomer.example")
    command = [a.format(cid=cid) for a in args]

    assert main([command[0], "-c", str(demo), *command[1:]]) == code
    assert capsys.readouterr().err == error.format(db=db(demo).resolve(), answered=answered)
    with Store.open(db(demo), readonly=True) as store:
        assert store.conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 0
