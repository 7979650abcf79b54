"""Two different mails that share one Message-ID are both kept; one mail seen twice is one.

A broken mailer (or a reused template) can give the same Message-ID to mails from different
senders or on different days. Each is a message of its own: dropping one would lose a
customer's question. The same mail in two folders (INBOX and Sent, Gmail's All Mail) has the
same From and Date, and stays one message.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.model import FolderRole, MessageEvent
from monitor.store import SourceSink, Store

TEAM = MailboxIdentity(team_addresses=frozenset({"support@acme.example"}))
WHEN = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def mail(sender: str, date: str, folder: str = "INBOX", mid: str = "1@localhost") -> MessageEvent:
    role = FolderRole.SENT if folder == "Sent" else FolderRole.INBOX
    context = FolderContext(source="inbox", folder=folder, role=role, identity=TEAM)
    block = (
        f"From: {sender}\r\nTo: support@acme.example\r\nSubject: Help\r\n"
        f"Message-ID: <{mid}>\r\nDate: {date}\r\n\r\n"
    ).encode()
    return event_from_headers(context, block, WHEN)


def stored(store: Store) -> list[tuple[str, str]]:
    return sorted(store.conn.execute("SELECT identity, author FROM messages").fetchall())


def test_other_senders_or_dates_behind_one_message_id_are_kept(tmp_path: Path) -> None:
    first = mail("ann@customer.example", "Tue, 17 Nov 2026 09:00:00 +0000")
    other_sender = mail("bob@customer.example", "Tue, 17 Nov 2026 09:00:00 +0000")
    other_day = mail("ann@customer.example", "Wed, 18 Nov 2026 10:00:00 +0000")
    with Store.open(tmp_path / "s.db") as store:
        sink = SourceSink(store, "inbox")
        sink.accept([first], None, WHEN)
        result = sink.accept([other_sender, other_day], None, WHEN)
        assert (result.new, result.duplicates) == (2, 0)
        again = sink.accept([other_day, first, other_sender], None, WHEN + timedelta(hours=1))
        assert (again.new, again.duplicates) == (0, 3)
        rows = stored(store)
    assert [author for _, author in rows].count("ann@customer.example") == 2
    assert len(rows) == 3
    assert rows[0][0] == "1@localhost"  # the first keeps the plain Message-ID


def test_the_same_mail_in_two_folders_is_one_message(tmp_path: Path) -> None:
    date = "Tue, 17 Nov 2026 09:00:00 +0000"
    with Store.open(tmp_path / "s.db") as store:
        sink = SourceSink(store, "inbox")
        sink.accept([mail("support@acme.example", date, "Sent")], None, WHEN)
        result = sink.accept([mail("support@acme.example", date, "INBOX")], None, WHEN)
        assert (result.new, result.duplicates) == (0, 1)


def test_a_mail_stored_before_fingerprints_takes_the_first_one_seen(tmp_path: Path) -> None:
    """Stores from before this change hold no fingerprint: the next copy read names it, and a
    different mail with the same Message-ID after that is kept apart."""
    first = mail("ann@customer.example", "Tue, 17 Nov 2026 09:00:00 +0000")
    with Store.open(tmp_path / "s.db") as store:
        sink = SourceSink(store, "inbox")
        sink.accept([first], None, WHEN)
        with store.transaction() as conn:
            conn.execute("UPDATE messages SET fingerprint = ''")
        assert sink.accept([first], None, WHEN).duplicates == 1
        other = mail("bob@customer.example", "Tue, 17 Nov 2026 09:00:00 +0000")
        assert sink.accept([other], None, WHEN).new == 1
