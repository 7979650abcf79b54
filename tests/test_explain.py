"""`replyclock explain` and `replyclock recompute` on the shipped example, at a fixed now.

Each test works on a copy of examples/ and rules/ in its own directory (the example's store,
``../var/demo.db``, lands in that copy). The command line's clock is pinned to
NOW = Tue 2026-11-24 12:00 UTC = 13:00 CET.

Conversation b (Message-ID <b1@smallshop.example>), policy `standard` of rules/default.yaml:
office calendar Mon-Fri 09:00-17:00 Europe/Berlin (no Berlin holiday in these weeks), first
response 4h, next response 8h, warning 30m before due.

- b1 Mon 16 10:00 UTC = 11:00 CET, b2 (follow-up) 14:00 CET, b3 (reply, Sent) 15:40 CET:
  first response 11:00-15:40 = 4h40m, all on Monday; due 11:00 + 4h = 15:00, warning from
  14:30; 40m late.
- b4 Tue 17 10:00 CET: next response still running at NOW. Tue 10:00-17:00 = 7h, Wed, Thu,
  Fri and Mon 8h each, Tue 24 09:00-13:00 = 4h: 43h. Due: 7h on Tuesday + 1h Wednesday =
  Wed 18 10:00, warning from 09:30; 43h - 8h = 35h over. Wall clock: 7 days 3 hours.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_cli import REPO, FrozenDatetime

from monitor import cli
from monitor.cli import main
from monitor.store import Store


@pytest.fixture
def demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """A copy of examples/ and rules/ side by side, already read by `run --once` at NOW;
    returns the copied demo.yaml."""
    monkeypatch.setattr(cli, "datetime", FrozenDatetime)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    config = tmp_path / "examples" / "demo.yaml"
    assert main(["run", "-c", str(config), "--once"]) == 0
    capsys.readouterr()
    return config


def store_path(demo: Path) -> Path:
    return demo.parent.parent / "var" / "demo.db"


def conversation_id(demo: Path, message_id: str) -> int:
    with Store.open(store_path(demo), readonly=True) as store:
        found = store.conversation_for_message(None, message_id)
    assert found is not None
    return found


def history(demo: Path) -> tuple[list[tuple[object, ...]], ...]:
    """Every stored clock and the running totals derived from them."""
    with Store.open(store_path(demo), readonly=True) as store:
        return tuple(
            [tuple(row) for row in store.conn.execute(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in (
                ("clocks", "conversation_id, seq"),
                ("clock_totals", "source, policy, kind"),
                ("response_buckets", "source, policy, kind, le"),
            )
        )


def expected_b(cid: int) -> list[str]:
    return [
        f"Conversation {cid} - source acme-support - 'Cannot log in after password reset'",
        "Customer:  Tom Baker <tom@smallshop.example>",
        "Policy:    standard - policy without conditions (catches every conversation) "
        "(stored when its first customer message was matched)",
        "Calendar:  office - Europe/Berlin, mon-fri 09:00-17:00; public holidays of DE-BE; "
        "closed 2026-12-24, 2026-12-31",
        "Targets:   first response 4h00m, next response 8h00m; warning 30m before due",
        "",
        "Messages (Europe/Berlin):",
        "  Mon 2026-11-16 11:00 CET  inbound   Tom Baker <tom@smallshop.example> [INBOX]: "
        "customer message",
        "  Mon 2026-11-16 14:00 CET  inbound   Tom Baker <tom@smallshop.example> [INBOX]: "
        "customer message",
        "  Mon 2026-11-16 15:40 CET  outbound  Acme Support <support@acme.example> [Sent]: "
        "in Sent folder",
        "  Tue 2026-11-17 10:00 CET  inbound   Tom Baker <tom@smallshop.example> [INBOX]: "
        "customer message",
        "",
        "Clocks (evaluated Tue 2026-11-24 13:00 CET):",
        "  1. first response: started Mon 2026-11-16 11:00 CET (1 follow-up did not restart it), "
        "stopped Mon 2026-11-16 15:40 CET by the reply from support@acme.example",
        "     business time counted per day: Mon 11-16 4h40m",
        "     waited 4h40m in business time (4h40m on the wall clock)",
        "     target 4h00m: due Mon 2026-11-16 15:00 CET, warning from Mon 2026-11-16 14:30 CET",
        "     verdict: answered late: target missed by 40m",
        "  2. next response: started Tue 2026-11-17 10:00 CET, still running",
        "     business time counted per day: Tue 11-17 7h00m, Wed 11-18 8h00m, Thu 11-19 8h00m, "
        "Fri 11-20 8h00m, Mon 11-23 8h00m, Tue 11-24 4h00m",
        "     waited 43h00m in business time (7d3h on the wall clock)",
        "     target 8h00m: due Wed 2026-11-18 10:00 CET, warning from Wed 2026-11-18 09:30 CET",
        "     verdict: BREACHED: over target by 35h00m",
        "",
        "Numbers use the current calendar and targets of the policy. Clocks already stored as "
        "history keep the numbers computed when they stopped (in `status`, metrics and alerts) "
        "until `replyclock recompute` is run; the policy chosen for a conversation is kept even "
        "if the rules change.",
    ]


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("id", id="by_id"),
        pytest.param("<b1@smallshop.example>", id="by_message_id"),
        pytest.param("b4@smallshop.example", id="by_a_later_message_id_without_brackets"),
    ],
)
def test_explain_shows_both_clocks_of_the_conversation(
    demo: Path, capsys: pytest.CaptureFixture[str], reference: str
) -> None:
    """`explain` by conversation id or by any of its Message-IDs prints the timeline of
    conversation b: its policy and why, every message, a late first response and a breached
    next response with business time listed per day (hand-computed in the module docstring)."""
    cid = conversation_id(demo, "b1@smallshop.example")

    code = main(["explain", "-c", str(demo), str(cid) if reference == "id" else reference])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines() == expected_b(cid)
    assert captured.err == ""


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("999", id="unknown_id"),
        pytest.param("<nobody@nowhere.example>", id="unknown_message_id"),
    ],
)
def test_explain_unknown_conversation_exits_1_naming_it(
    demo: Path, capsys: pytest.CaptureFixture[str], reference: str
) -> None:
    """`explain` of a conversation the store does not hold exits 1, prints nothing on stdout,
    and says on stderr what it looked for, where, and how to find the ids."""
    code = main(["explain", "-c", str(demo), reference])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == (
        f"replyclock: no conversation {reference!r} in {store_path(demo)}; "
        "`replyclock status` lists the ids\n"
    )


def test_recompute_prints_the_count_and_changes_nothing_when_rules_did_not_change(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recompute` under unchanged rules reports all 9 conversations (6 with a customer
    message, matched to a policy; the auto-reply, bounce and newsletter ones have none), and
    `status`, `status --json` and `explain` read exactly as before it, as do the stored clock
    history and the running totals behind the metrics."""
    cid = conversation_id(demo, "b1@smallshop.example")

    def views() -> list[str]:
        outputs = []
        for argv in (["status"], ["status", "--json"], ["explain", str(cid)]):
            assert main([argv[0], "-c", str(demo), *argv[1:]]) == 0
            outputs.append(capsys.readouterr().out)
        return outputs

    before = views(), history(demo)
    code = main(["recompute", "-c", str(demo)])
    captured = capsys.readouterr()
    after = views(), history(demo)

    assert code == 0
    assert captured.out == (
        "recomputed 9 conversations under the current rules (6 matched to a policy)\n"
    )
    assert after == before
    assert len(before[1][0]) == 7  # a, b (2), f, g, h, i: one row per clock
    assert before[0][0].splitlines()[-1] == (
        "4 awaiting a reply; WAITED is business time under each policy's calendar. "
        "`replyclock explain ID` shows why."
    )
