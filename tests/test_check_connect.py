"""`replyclock check --connect` signs in to each source and says what a first sync would find.

Against the real Dovecot: folders with their counts, the Sent folder chosen and why, the
server's capabilities, the newest mail each way, the first sync's size, and the warning that
replies are missing when customer mail came in this week and nothing was sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from harness.mailbox import ask_question, message
from harness.service import imap_source
from servers.dovecot import DovecotServer, ImapUser

from monitor.cli import main

pytestmark = pytest.mark.imap


def config(tmp_path: Path, sources: str) -> Path:
    path = tmp_path / "replyclock.yaml"
    path.write_text(
        f"store: {{path: {tmp_path / 'store.db'}}}\n"
        "team: {addresses: [support@acme.example], domains: [acme.example]}\n"
        f"sources:{sources}",
        encoding="utf-8",
    )
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "-c", str(path), "--connect"])
    return code, capsys.readouterr().out


MINUTE = timedelta(minutes=1, seconds=5)


def shown(out: str, label: str) -> datetime:
    """The instant printed on the line ``label``."""
    found = re.search(rf"{label}\s+(\d{{4}}-\d\d-\d\d \d\d:\d\d) UTC", out)
    assert found, out
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def reply(dovecot: DovecotServer, user: ImapUser, to_id: str, *, days_ago: int = 0) -> None:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago, minutes=1)
    dovecot.append(
        user.username,
        user.password,
        "Sent",
        message(
            sender="support@acme.example",
            to=to_id,
            subject="Re: Question",
            message_id=f"re-{to_id}",
            date=when,
            refs=(to_id,),
        ),
        internaldate=when,
    )


def test_it_reports_folders_capabilities_and_the_first_sync(
    dovecot: DovecotServer, imap_user: ImapUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = datetime.now(UTC)
    for n in range(3):
        qid = ask_question(dovecot, imap_user, f"q{n}", minutes_ago=90 - n)
    reply(dovecot, imap_user, qid)
    code, out = check(config(tmp_path, imap_source("support", imap_user)), capsys)
    assert code == 0, out
    assert f"support (imap): signed in as {imap_user.username}" in out
    assert f"{imap_user.host}:{imap_user.port} (STARTTLS)" in out
    assert re.search(r"capabilities\s+IDLE yes, CONDSTORE yes, .*Gmail extensions no", out)
    folders = out.split("folders:\n")[1].splitlines()
    assert [line.split()[0] for line in folders[:2]] == ["INBOX", "Sent"]  # read ones first
    assert re.search(r"INBOX\s+3\s+watched\n", out)
    assert re.search(r"Sent\s+1\s+sent \(the server marks it \\Sent \(SPECIAL-USE\)\)", out)
    assert re.search(r"Drafts\s+0\n", out)  # listed, not read
    assert re.search(r"first sync reads\s+4 messages since .*: INBOX 3, Sent 1", out)
    # the newest question arrived 88 minutes ago, the reply one minute ago
    assert abs(shown(out, "newest inbound") - (start - timedelta(minutes=88))) < MINUTE
    assert abs(shown(out, "newest outbound") - (start - timedelta(minutes=1))) < MINUTE
    assert "WARNING" not in out


def test_it_warns_when_customer_mail_has_no_replies_this_week(
    dovecot: DovecotServer, imap_user: ImapUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ask_question(dovecot, imap_user, "a", minutes_ago=30)
    ask_question(dovecot, imap_user, "b", minutes_ago=20)
    reply(dovecot, imap_user, "old@customer.example", days_ago=20)  # only an old reply
    code, out = check(config(tmp_path, imap_source("support", imap_user)), capsys)
    assert code == 0, out  # a warning, not a failure: the mailbox can be read
    assert (
        "WARNING: 2 customer messages in the last 7 days but no team message in any Sent "
        "folder: replies are missing." in out
    )
    assert "Set sent_folders to the folder that holds the team's sent mail" in out


def test_a_source_that_cannot_sign_in_fails_the_check(
    dovecot: DovecotServer, imap_user: ImapUser, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = ImapUser(**{**imap_user.__dict__, "password": "not-the-password"})
    good = imap_source("good", imap_user)
    code, out = check(config(tmp_path, imap_source("bad", wrong) + good), capsys)
    assert code == 1
    assert f"bad: FAILED: login as '{imap_user.username}' was rejected" in out
    assert "not-the-password" not in out
    assert f"good (imap): signed in as {imap_user.username}" in out  # the others still run


def test_it_counts_the_connections_each_source_and_each_server_needs(
    dovecot: DovecotServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each IMAP source says how many connections it holds (polling plus IDLE) and which server
    limits bound them; sources sharing a server are added up, so the operator can raise the
    server's limits before the daemon meets them."""
    one, two = dovecot.create_user(), dovecot.create_user()
    sources = imap_source("support", one) + imap_source(
        "sales", two, extra="folders: [INBOX, Archive]\nidle_folders: [Archive]"
    )
    code, out = check(config(tmp_path, sources), capsys)
    assert code == 0, out
    assert re.search(r"connections\s+2 while the daemon runs \(1 polling, IDLE on INBOX\)", out)
    assert re.search(r"connections\s+2 while the daemon runs \(1 polling, IDLE on Archive\)", out)
    assert re.search(r"server limits\s+on Dovecot: mail_max_userip_connections", out)
    assert f"{one.host}:{one.port}: 2 IMAP sources hold 4 connections together" in out
