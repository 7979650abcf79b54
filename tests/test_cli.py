"""The replyclock command line: check, run --once and status on the shipped example.

Every test works on a copy of examples/ and rules/ in its own directory, so the example's
relative paths resolve and its store (``../var/demo.db``) never lands in the repository.
The example Maildir holds 16 messages (13 in cur/, 3 in .Sent/cur/) in 9 conversations, and
4 customers wait for a reply:

- a1 -> a2 (Sent): answered.
- b1, b2 -> b3 (Sent) -> b4: answered once, then a next-response clock runs since b4.
- c1 auto-reply, d1 bounce, e1 newsletter: one conversation each, nobody waits.
- f1 (URGENT): waiting.
- g1 -> g2 (our own "we received your message" auto-reply): still waiting.
- h1 -> h2 (from a teammate's own address in the team domain): answered.
- i1, i2 (i2 has no References; joined by subject and customer): waiting since i1.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest

from monitor import cli
from monitor.cli import main
from monitor.store import Store

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

SUMMARY_HEADER = "SOURCE        STATUS  NEW  MESSAGES  CONVERSATIONS  AWAITING REPLY"
FIRST_RUN = [SUMMARY_HEADER, "acme-support  ok      16   16        9              4"]
SECOND_RUN = [SUMMARY_HEADER, "acme-support  ok      0    16        9              4"]

# The four waiting conversations, longest waiting first, as of NOW.
WAITING = [
    {
        "first": "b1@smallshop.example",
        "clock": "next_response",
        "since": "2026-11-17T09:00:00+00:00",
        "waited_seconds": 7 * 86400 + 3 * 3600,
        "customer": "tom@smallshop.example",
        "subject": "Cannot log in after password reset",
    },
    {
        "first": "f1@bigcustomer.example",
        "clock": "first_response",
        "since": "2026-11-17T17:20:00+00:00",
        "waited_seconds": 6 * 86400 + 18 * 3600 + 40 * 60,
        "customer": "ops@bigcustomer.example",
        "subject": "URGENT: API is down for our EU tenants",
    },
    {
        "first": "g1@kunde.example",
        "clock": "first_response",
        "since": "2026-11-17T19:00:00+00:00",
        "waited_seconds": 6 * 86400 + 17 * 3600,
        "customer": "bjoern@kunde.example",
        "subject": "Frage zur Rechnung über März",
    },
    {
        "first": "i1@design.example",
        "clock": "first_response",
        "since": "2026-11-18T00:00:00+00:00",
        "waited_seconds": 6 * 86400 + 12 * 3600,
        "customer": "kai@design.example",
        "subject": "Logo upload fails with large files",
    },
]


class FrozenDatetime(datetime):
    """``datetime`` whose ``now`` is NOW: the command line's only clock, pinned."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:
        assert tz is UTC, "the command line reads the clock in UTC only"
        return NOW


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "datetime", FrozenDatetime)


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of examples/ and rules/ side by side; returns the copied demo.yaml."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    return tmp_path / "examples" / "demo.yaml"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so nobody else takes it, but not
    listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def with_config(demo: Path, name: str, text: str) -> Path:
    """A config file next to the copied demo.yaml, so its relative paths resolve the same."""
    path = demo.parent / name
    path.write_text(text, encoding="utf-8")
    return path


def logfmt(line: str) -> dict[str, str]:
    """The key/value pairs of one logfmt line, quoted values unescaped."""
    return {
        key: json.loads(value) if value.startswith('"') else value
        for key, value in LOGFMT_PAIR.findall(line)
    }


def conversation_ids(demo: Path) -> dict[str, int | None]:
    """Conversation id of each waiting conversation's first message, read from the store."""
    with Store.open(demo.parent.parent / "var" / "demo.db", readonly=True) as store:
        return {row["first"]: store.conversation_for_message(None, row["first"]) for row in WAITING}


# --- help and version --------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the program name and version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])

    assert caught.value.code == 0
    assert capsys.readouterr().out == "replyclock 0.1.0\n"


def test_help_lists_commands_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """--help names check, run and status, each with a one-line summary, and shows an example
    command line for each."""
    with pytest.raises(SystemExit) as caught:
        main(["--help"])

    lines = capsys.readouterr().out.splitlines()
    commands = lines[lines.index("commands:") + 1 :]
    commands = commands[: commands.index("")]
    examples = lines[lines.index("examples:") + 1 :]
    assert caught.value.code == 0
    assert lines[0] == "usage: replyclock [-h] [--version] COMMAND ..."
    assert {line.split()[0] for line in commands} >= {"check", "run", "status"}
    assert all(len(line.split()) > 3 for line in commands)
    assert {
        "  replyclock check -c replyclock.yaml",
        "  replyclock run -c replyclock.yaml --once",
        "  replyclock status -c replyclock.yaml --source support-inbox",
    } <= set(examples)


@pytest.mark.parametrize(
    ("command", "example"),
    [
        pytest.param("check", "replyclock check -c replyclock.yaml --connect", id="check"),
        pytest.param("run", "replyclock run -c replyclock.yaml --once", id="run"),
        pytest.param(
            "status", "replyclock status -c replyclock.yaml --source support-inbox", id="status"
        ),
    ],
)
def test_each_command_help_ends_with_an_example(
    capsys: pytest.CaptureFixture[str], command: str, example: str
) -> None:
    """Every command's --help ends with a runnable example."""
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])

    assert caught.value.code == 0
    assert capsys.readouterr().out.endswith(f"\nexample:\n  {example}\n")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Running replyclock without a command shows the help and exits 2 (a usage error)."""
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: replyclock [-h] [--version] COMMAND ...\n")


# --- check -------------------------------------------------------------------------------------


def test_check_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    """`check` on examples/demo.yaml (read in place; check writes nothing) exits 0 with a
    one-line summary."""
    path = REPO / "examples" / "demo.yaml"

    assert main(["check", "-c", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: OK (1 source, 1 rules file, 3 policies, 3 calendars)\n"
    )


# --- run --once --------------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
def test_run_once_summarizes_and_second_run_adds_nothing(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --once` on the example stores 16 messages in 9 conversations, 4 awaiting a reply,
    in the copy's own var/; running it again finds nothing new."""
    maildir = demo.parent / "maildir"
    files = [p for sub in ("cur", ".Sent/cur") for p in (maildir / sub).iterdir()]

    assert main(["run", "-c", str(demo), "--once"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert main(["run", "-c", str(demo), "--once"]) == 0
    second = capsys.readouterr().out.splitlines()

    assert len(files) == 16
    assert first == FIRST_RUN
    assert second == SECOND_RUN
    assert (demo.parent.parent / "var" / "demo.db").is_file()


# --- status ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
def test_status_table_is_soonest_breach_first(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` prints the 4 waiting conversations, soonest breach (least business time left)
    first, with business time waited under each policy's calendar and the due time in the
    calendar's zone (hand-computed for NOW = Tue 2026-11-24 12:00 UTC = 13:00 CET)."""
    assert main(["run", "-c", str(demo), "--once"]) == 0
    capsys.readouterr()
    ids = conversation_ids(demo)

    assert main(["status", "-c", str(demo)]) == 0
    captured = capsys.readouterr()

    b, f, g, i = (ids[row["first"]] for row in WAITING)
    # f1: urgent, 24x7 UTC, since Tue 17 17:20 UTC: 6d18h40m = 162h40m, due after 30m.
    # b4: standard (Mon-Fri 09-17 Berlin), next response since Tue 17 10:00 CET: 7h on Tue,
    #     8h Wed..Fri and Mon, 4h today = 43h; 8h target due Wed 18 10:00 CET.
    # g1 (Tue 20:00 CET) and i1 (Wed 01:00 CET): from Wed 09:00, 8h x 4 + 4h = 36h; 4h target
    #     due Wed 18 13:00 CET. Equal time left: the lower id first.
    rows = [
        (f, "urgent  ", "162h40m", "30m  ", "Tue 17 Nov 17:50 UTC", 3),
        (b, "standard", "43h00m ", "8h00m", "Wed 18 Nov 10:00 CET", 0),
        *sorted(
            [
                (g, "standard", "36h00m ", "4h00m", "Wed 18 Nov 13:00 CET", 2),
                (i, "standard", "36h00m ", "4h00m", "Wed 18 Nov 13:00 CET", 3),
            ]
        ),
    ]
    customers = {
        b: ("tom@smallshop.example  ", "Cannot log in after password reset"),
        f: ("ops@bigcustomer.example", "URGENT: API is down for our EU tenants"),
        g: ("bjoern@kunde.example   ", "Frage zur Rechnung über März"),
        i: ("kai@design.example     ", "Logo upload fails with large files"),
    }
    assert captured.out.splitlines() == [
        "ID  SOURCE        POLICY    STATE     WAITED   TARGET  DUE                   "
        "CUSTOMER                 SUBJECT",
        *(
            f"{cid}   acme-support  {policy}  breached  {waited}  {target}   {due}  "
            f"{customers[cid][0]}  {customers[cid][1]}"
            for cid, policy, waited, target, due, _ in rows
        ),
        "4 awaiting a reply; WAITED is business time under each policy's calendar. "
        "`replyclock explain ID` shows why.",
    ]
    assert captured.err == ""


@pytest.mark.usefixtures("frozen")
def test_status_json_lines_carry_business_and_calendar_time(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status --json` prints one JSON object per waiting conversation, in the table's order,
    with policy, state, business and calendar seconds waited, target and due time."""
    assert main(["run", "-c", str(demo), "--once"]) == 0
    capsys.readouterr()
    ids = conversation_ids(demo)

    assert main(["status", "-c", str(demo), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    business = {
        "f1@bigcustomer.example": (
            "urgent",
            162 * 3600 + 40 * 60,
            1800,
            "2026-11-17T17:50:00+00:00",
        ),
        "b1@smallshop.example": ("standard", 43 * 3600, 8 * 3600, "2026-11-18T09:00:00+00:00"),
        "g1@kunde.example": ("standard", 36 * 3600, 4 * 3600, "2026-11-18T12:00:00+00:00"),
        "i1@design.example": ("standard", 36 * 3600, 4 * 3600, "2026-11-18T12:00:00+00:00"),
    }
    expected = {
        ids[row["first"]]: {
            "id": ids[row["first"]],
            "source": "acme-support",
            "policy": business[row["first"]][0],
            "state": "breached",
            "clock": row["clock"],
            "since": row["since"],
            "waited_business_seconds": business[row["first"]][1],
            "waited_calendar_seconds": row["waited_seconds"],
            "target_seconds": business[row["first"]][2],
            "due": business[row["first"]][3],
            "customer": row["customer"],
            "subject": row["subject"],
            "snoozed_until": None,
        }
        for row in WAITING
    }
    assert [line["id"] for line in lines][:2] == [
        ids["f1@bigcustomer.example"],
        ids["b1@smallshop.example"],
    ]
    assert {line["id"]: line for line in lines} == expected
    assert all(list(line) == list(expected[line["id"]]) for line in lines)


@pytest.mark.usefixtures("frozen")
def test_status_shows_each_waiting_customer_once(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the columns and order, `status` has one row per waiting conversation: its id,
    customer and decoded subject, and no row for the 5 conversations nobody waits on."""
    assert main(["run", "-c", str(demo), "--once"]) == 0
    capsys.readouterr()
    ids = conversation_ids(demo)

    assert main(["status", "-c", str(demo)]) == 0

    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.split()[:1] != ["ID"] and line.split()[1:2] == ["acme-support"]
    ]
    by_id = {int(line.split()[0]): line for line in rows}
    assert sorted(by_id) == sorted(ids[row["first"]] for row in WAITING)
    for row in WAITING:
        line = by_id[ids[row["first"]]]
        assert f"  {row['customer']}  " in line
        assert line.endswith(f"  {row['subject']}")


@pytest.mark.usefixtures("frozen")
def test_status_json_names_each_waiting_conversation(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever else it carries, each `status --json` line has the conversation's id, source,
    clock kind, clock start, customer and subject."""
    assert main(["run", "-c", str(demo), "--once"]) == 0
    capsys.readouterr()
    ids = conversation_ids(demo)

    assert main(["status", "-c", str(demo), "--json"]) == 0

    keys = ("id", "source", "clock", "since", "customer", "subject")
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(tuple(entry[key] for key in keys) for entry in found) == sorted(
        (ids[r["first"]], "acme-support", r["clock"], r["since"], r["customer"], r["subject"])
        for r in WAITING
    )


def test_status_without_a_store_says_how_to_create_one(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` before any `run` exits 1 and says on stderr where it looked and what to do."""
    assert main(["status", "-c", str(demo)]) == 1

    captured = capsys.readouterr()
    store = demo.parent.parent / "var" / "demo.db"
    assert captured.out == ""
    assert captured.err == (
        f"replyclock: no store at {store} yet; run `replyclock run` first, or check store.path\n"
    )
    assert not (demo.parent.parent / "var").exists()


# --- failures and logs -------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen")
def test_unreachable_imap_fails_alone(
    demo: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """An IMAP server that refuses the connection makes `run --once` exit 1 with FAILED for
    that source and one error line, while the Maildir source beside it is still polled."""
    config = with_config(
        demo,
        "two.yaml",
        f"""\
store:
  path: ../var/two.db
team:
  addresses: [support@acme.example]
  domains: [acme.example]
rules:
  - ../rules/default.yaml
sources:
  - name: imap-down
    type: imap
    host: 127.0.0.1
    port: {closed_port}
    tls: false
    username: support
    password: not-a-real-secret
    timeout: 5s
  - name: acme-support
    type: maildir
    path: maildir
    timestamps: date
    since: 3650d
""",
    )

    assert main(["run", "-c", str(config), "--once"]) == 1
    captured = capsys.readouterr()

    error = (
        f"cannot connect to 127.0.0.1:{closed_port}: Connection refused; check host and port, "
        "and that the server is running"
    )
    assert captured.out.splitlines() == [
        SUMMARY_HEADER,
        "imap-down     FAILED  0    0         0              0",
        "acme-support  ok      16   16        9              4",
        f"imap-down: {error}",
    ]
    logs = [logfmt(line) for line in captured.err.splitlines()]
    errors = [entry for entry in logs if entry["level"] == "error"]
    assert len(errors) == 1
    assert {key: errors[0][key] for key in ("logger", "msg", "source", "error")} == {
        "logger": "replyclock.poll",
        "msg": "source poll failed",
        "source": "imap-down",
        "error": error,
    }
    assert "not-a-real-secret" not in captured.out + captured.err


@pytest.mark.usefixtures("frozen")
def test_logs_are_logfmt_by_default(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without a `log` section, log lines on stderr are logfmt: a poll logs one line with ts,
    level, logger, msg, then the poll's fields, in that order."""
    assert main(["run", "-c", str(demo), "--once"]) == 0

    logs = [logfmt(line) for line in capsys.readouterr().err.splitlines()]
    [entry] = [e for e in logs if e.get("logger") == "replyclock.poll"]
    assert list(entry) == [
        "ts",
        "level",
        "logger",
        "msg",
        "source",
        "new",
        "duplicates",
        "removed",
        "duration_ms",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("ts"))
    assert float(entry.pop("duration_ms")) >= 0
    assert entry == {
        "level": "info",
        "logger": "replyclock.poll",
        "msg": "source polled",
        "source": "acme-support",
        "new": "16",
        "duplicates": "0",
        "removed": "0",
    }


@pytest.mark.usefixtures("frozen")
def test_logs_are_json_when_configured(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With `log: {format: json}` every log line is one JSON object; a poll's has ts, level,
    logger, msg, then the poll's fields."""
    config = with_config(
        demo, "json.yaml", demo.read_text(encoding="utf-8") + "\nlog:\n  format: json\n"
    )

    assert main(["run", "-c", str(config), "--once"]) == 0

    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [entry] = [e for e in logs if e["logger"] == "replyclock.poll"]
    assert list(entry)[:5] == ["ts", "level", "logger", "msg", "source"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("ts"))
    assert isinstance(entry.pop("duration_ms"), float)
    assert entry == {
        "level": "info",
        "logger": "replyclock.poll",
        "msg": "source polled",
        "source": "acme-support",
        "new": 16,
        "duplicates": 0,
        "removed": 0,
    }


# --- the installed entry points ----------------------------------------------------------------


@pytest.mark.parametrize(
    "entry_point",
    [
        pytest.param([str(Path(sys.executable).parent / "replyclock")], id="console_script"),
        pytest.param([sys.executable, "-m", "monitor"], id="python_m_monitor"),
    ],
)
def test_entry_points_run_the_example(demo: Path, entry_point: list[str]) -> None:
    """The `replyclock` console script and `python -m monitor` both run `run --once` in a real
    process: the summary on stdout, logfmt lines on stderr, exit 0."""
    done = subprocess.run(
        [*entry_point, "run", "-c", str(demo), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=demo.parent,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == FIRST_RUN
    logs = [logfmt(line) for line in done.stderr.splitlines()]
    polled = [e for e in logs if e["msg"] == "source polled"]
    assert [(e["source"], e["new"]) for e in polled] == [("acme-support", "16")]
