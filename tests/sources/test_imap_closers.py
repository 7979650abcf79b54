"""Closing messages over IMAP: a customer's "Thanks, that fixed it!" after our reply starts no
clock. The start of the body is read with BODY.PEEK (no flag changes) and never stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from factories import mail
from servers.dovecot import DovecotServer, ImapUser
from test_engine import rulebook

from monitor.engine import Engine
from monitor.explain import explain
from monitor.mail.classify import MailboxIdentity
from monitor.sources.imap import ImapSource
from monitor.store import Store
from sources.test_imap import NOW, TEAM, all_flags, append, poll, source_config

pytestmark = pytest.mark.imap

RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 1h}
"""
ATTACHED = (
    "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDanke!\r\n"
    "--b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=fehler.png\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b1--\r\n"
)


def thread(dovecot: DovecotServer, user: ImapUser, n: int, answer: str, **extra: str) -> None:
    """Question n, our reply in Sent, and the customer's ``answer`` to the reply."""
    customer = f"c{n}@customer.example"
    append(dovecot, user, "INBOX", mail(sender=customer, message_id=f"q{n}@c",
                                        date=NOW - timedelta(hours=3)), 180)  # fmt: skip
    append(
        dovecot, user, "Sent",
        mail(sender="support@acme.example", to=customer, subject="Re: Help",
             message_id=f"r{n}@acme.example", date=NOW - timedelta(hours=2),
             in_reply_to=f"q{n}@c", references=f"<q{n}@c>"),
        120,
    )  # fmt: skip
    append(
        dovecot, user, "INBOX",
        mail(sender=customer, subject="Re: Re: Help", message_id=f"a{n}@c",
             date=NOW - timedelta(hours=1), in_reply_to=f"r{n}@acme.example",
             references=f"<q{n}@c> <r{n}@acme.example>", body=answer, **extra),
        60,
    )  # fmt: skip


def test_a_thank_you_starts_no_clock_a_question_and_an_attachment_do(
    dovecot: DovecotServer, imap_user: ImapUser, tmp_path: Path
) -> None:
    quoted = "> Please restart the router.\r\n"
    gmail = "Am Mo., 16. Nov. 2026 um 10:00 Uhr schrieb Support <support@acme.example>:"
    thread(dovecot, imap_user, 1, f"Vielen Dank!\r\n\r\n{gmail}\r\n{quoted}")
    thread(dovecot, imap_user, 2, f"Thanks, but it still fails. Any idea?\r\n\r\n{quoted}")
    thread(dovecot, imap_user, 3, ATTACHED,
           extra={"Content-Type": 'multipart/mixed; boundary="b1"'})  # fmt: skip
    before = all_flags(dovecot, imap_user)
    rules = rulebook(tmp_path, "closers", RULES)
    with Store.open(tmp_path / "s.db") as store:
        imap = ImapSource(source_config(imap_user), TEAM)
        poll(imap, store)
        imap.close()
        closing = dict(store.conn.execute("SELECT identity, closing FROM messages"))
        engine = Engine(store, rules)
        engine.evaluate(NOW)
        waiting = sorted(w.conversation.customer for w in engine.waiting(NOW))
        (cid,) = store.conn.execute("SELECT conversation_id FROM messages WHERE identity='a1@c'")
        text = "\n".join(explain(store, rules, cid[0], NOW))
        columns = {row[1] for row in store.conn.execute("PRAGMA table_info(messages)")}
    assert closing == {
        "q1@c": None, "r1@acme.example": None, "a1@c": "Vielen Dank!",
        "q2@c": None, "r2@acme.example": None, "a2@c": None,
        "q3@c": None, "r3@acme.example": None, "a3@c": None,
    }  # fmt: skip
    assert waiting == ["c2@customer.example", "c3@customer.example"]
    assert "not a clock: closing message ('Vielen Dank!')" in text
    assert all_flags(dovecot, imap_user) == before  # BODY.PEEK: no \Seen
    assert "body" not in columns  # only the decision is kept


def test_closers_count_reads_no_body(
    dovecot: DovecotServer, imap_user: ImapUser, tmp_path: Path
) -> None:
    thread(dovecot, imap_user, 1, "Thanks!\r\n")
    counting = MailboxIdentity(
        team_addresses=TEAM.team_addresses, team_domains=TEAM.team_domains, closers="count"
    )
    with Store.open(tmp_path / "s.db") as store:
        imap = ImapSource(source_config(imap_user), counting)
        report = poll(imap, store)
        imap.close()
        assert store.conn.execute("SELECT COUNT(*) FROM messages WHERE closing IS NOT NULL"
                                  ).fetchone()[0] == 0  # fmt: skip
    assert report.new == 3
