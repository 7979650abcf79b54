"""Maildir and mbox sources on trees built per test: layout, timestamps, expunges, bad mail."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import mail

from monitor.config.models import MaildirSourceConfig, MboxSourceConfig
from monitor.errors import SourceError
from monitor.mail.classify import MailboxIdentity
from monitor.model import Direction
from monitor.sla.clocks import Clock, ClockKind, ClockMessage, StopReason, segment_clocks
from monitor.sources.base import PollReport
from monitor.sources.files import MAILDIR_UIDVALIDITY, MaildirSource, MboxSource, maildir_uid
from monitor.sources.probe import print_probe
from monitor.store import SourceSink, Store, StoredMessage
from monitor.store.sqlite import prune_closed

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@acme.example"}), team_domains=frozenset({"acme.example"})
)
CUSTOMER = "Tom Baker <tom@smallshop.example>"
GARBAGE = (
    b"\x00\xff\xfe garbage line without a colon\n"
    b"From: \xe9\xe8 broken <<<\n"
    b"Date: yesterday-ish, around noon\n"
    b"Subject: =?bogus-charset?Q?caf=E9?=\n"
    b"\n"
    b"\x89PNG body bytes\n"
)


# --- helpers -----------------------------------------------------------------------------------


def make_maildir(root: Path, *folders: str) -> Path:
    """A Maildir++ tree: cur/new/tmp at the root (INBOX) and in each ``.Folder``."""
    for base in (root, *(root / f".{folder}" for folder in folders)):
        for sub in ("cur", "new", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
    return root


def deliver(directory: Path, name: str, data: bytes, mtime: datetime) -> Path:
    """Write one message file and set its modification time, as a delivery agent would."""
    path = directory / name
    path.write_bytes(data)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def maildir_source(root: Path, identity: MailboxIdentity = TEAM, **options: Any) -> MaildirSource:
    config = MaildirSourceConfig.model_validate(
        {"type": "maildir", "name": "box", "path": root, **options}
    )
    return MaildirSource(config, identity)


def mbox_source(path: Path, identity: MailboxIdentity = TEAM, **options: Any) -> MboxSource:
    config = MboxSourceConfig.model_validate(
        {"type": "mbox", "name": "box", "path": path, **options}
    )
    return MboxSource(config, identity)


def mbox_entry(from_line: str, message: bytes) -> bytes:
    """One mbox entry: the ``From `` separator, the message with LF line ends, a blank line."""
    return f"From {from_line}\n".encode() + message.replace(b"\r\n", b"\n") + b"\n"


def customer_mail(message_id: str, date: datetime, **options: Any) -> bytes:
    return mail(sender=CUSTOMER, message_id=message_id, date=date, **options)


def team_reply(message_id: str, date: datetime, parent: str) -> bytes:
    return mail(
        sender="Acme Support <support@acme.example>",
        to=CUSTOMER,
        subject="Re: Help",
        message_id=message_id,
        date=date,
        in_reply_to=parent,
        references=f"<{parent}>",
    )


def stored(store: Store) -> dict[str, StoredMessage]:
    """Every stored message by identity."""
    ids = [conversation.id for conversation in store.conversations()]
    return {
        message.identity: message
        for messages in store.messages_by_conversation(ids).values()
        for message in messages
    }


def clocks_of(store: Store, identity: str) -> list[Clock]:
    """The reply clocks of the conversation holding ``identity``."""
    conversation = store.conversation_for_message(None, identity)
    assert conversation is not None
    return segment_clocks(
        [
            ClockMessage(
                timestamp=m.timestamp,
                direction=m.direction,
                removed_at=m.removed_at,
                author=m.author,
            )
            for m in store.messages(conversation)
        ]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "var" / "replyclock.db")
    yield opened
    opened.close()


@pytest.fixture
def sink(store: Store) -> SourceSink:
    return SourceSink(store, "box")


# --- Maildir: layout and timestamps ------------------------------------------------------------


def test_root_is_inbox_and_dot_sent_is_sent(tmp_path: Path, store: Store, sink: SourceSink) -> None:
    """In a Maildir++ tree the root's new/ and cur/ are INBOX and .Sent/ holds the team's
    replies; files in tmp/ (still being delivered) and dotfiles are not messages."""
    root = make_maildir(tmp_path / "Maildir", "Sent")
    deliver(root / "new", "1794819600.M1P1.host", customer_mail("q1@shop", T0), T0)
    deliver(root / "tmp", "1794819700.M2P1.host", customer_mail("partial@shop", T0), T0)
    deliver(root / "cur", ".hidden:2,S", customer_mail("hidden@shop", T0), T0)
    reply_at = T0 + timedelta(minutes=30)
    deliver(
        root / ".Sent" / "cur",
        "1794821400.M3P1.host:2,S",
        team_reply("r1@acme", reply_at, "q1@shop"),
        reply_at,
    )

    report = maildir_source(root).poll(sink, NOW)

    assert report == PollReport(source="box", new=2, folders={"INBOX": 1, "Sent": 1})
    messages = stored(store)
    assert sorted(messages) == ["q1@shop", "r1@acme"]
    question, reply = messages["q1@shop"], messages["r1@acme"]
    assert (question.folder, question.direction, question.reason) == (
        "INBOX",
        Direction.INBOUND,
        "customer message",
    )
    assert (reply.folder, reply.direction, reply.reason) == (
        "Sent",
        Direction.OUTBOUND,
        "in Sent folder",
    )
    assert question.conversation_id == reply.conversation_id
    assert clocks_of(store, "q1@shop") == [
        Clock(
            kind=ClockKind.FIRST,
            started_at=T0,
            stopped_at=reply_at,
            stop_reason=StopReason.REPLY,
            responder="support@acme.example",
        )
    ]


def test_a_missing_sent_folder_is_not_an_error(tmp_path: Path, sink: SourceSink) -> None:
    """The default sent folder is optional: a Maildir without .Sent/ is read as INBOX only."""
    root = make_maildir(tmp_path / "Maildir")
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", T0), T0)

    report = maildir_source(root).poll(sink, NOW)

    assert report == PollReport(source="box", new=1, folders={"INBOX": 1})


@pytest.mark.parametrize(
    ("timestamps", "expected"),
    [
        pytest.param("received", T0 + timedelta(hours=2), id="received_is_file_mtime"),
        pytest.param("date", T0, id="date_is_date_header"),
    ],
)
def test_timestamps_option_picks_the_instant(
    tmp_path: Path, store: Store, sink: SourceSink, timestamps: str, expected: datetime
) -> None:
    """`timestamps: received` takes the file's mtime (like Dovecot's INTERNALDATE) and
    `timestamps: date` the Date header, here two hours apart."""
    root = make_maildir(tmp_path / "Maildir")
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", T0), T0 + timedelta(hours=2))

    maildir_source(root, timestamps=timestamps).poll(sink, NOW)

    assert stored(store)["q1@shop"].timestamp == expected


@pytest.mark.parametrize(
    ("timestamps", "kept"),
    [
        pytest.param("received", "old-date@shop", id="received_judges_by_mtime"),
        pytest.param("date", "old-mtime@shop", id="date_judges_by_date_header"),
    ],
)
def test_messages_older_than_since_are_skipped(
    tmp_path: Path, store: Store, sink: SourceSink, timestamps: str, kept: str
) -> None:
    """With `since: 7d`, a message whose instant (mtime or Date, per `timestamps`) is 8 days
    old is not stored, and one 6 days old is."""
    old, recent = NOW - timedelta(days=8), NOW - timedelta(days=6)
    root = make_maildir(tmp_path / "Maildir")
    deliver(root / "cur", "1.a:2,S", customer_mail("old-date@shop", old), recent)
    deliver(root / "cur", "2.b:2,S", customer_mail("old-mtime@shop", recent), old)

    report = maildir_source(root, timestamps=timestamps, since="7d").poll(sink, NOW)

    assert report.new == 1
    assert sorted(stored(store)) == [kept]


def test_second_poll_stores_nothing_new(tmp_path: Path, store: Store, sink: SourceSink) -> None:
    """Polling an unchanged Maildir again reports and stores nothing."""
    root = make_maildir(tmp_path / "Maildir", "Sent")
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", T0), T0)
    deliver(root / ".Sent" / "cur", "2.b:2,S", team_reply("r1@acme", T0, "q1@shop"), T0)
    source = maildir_source(root)
    source.poll(sink, NOW)

    again = source.poll(sink, LATER)

    assert again == PollReport(source="box")
    assert len(stored(store)) == 2


# --- Maildir: files that move or disappear -----------------------------------------------------


def test_file_removed_from_cur_closes_the_clock(
    tmp_path: Path, store: Store, sink: SourceSink
) -> None:
    """A customer message deleted or archived out of the watched folders without a reply stops
    its clock as closed-without-reply at the poll that noticed it."""
    root = make_maildir(tmp_path / "Maildir")
    path = deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", T0), T0)
    source = maildir_source(root)
    source.poll(sink, NOW)
    assert clocks_of(store, "q1@shop") == [Clock(kind=ClockKind.FIRST, started_at=T0)]

    path.unlink()
    report = source.poll(sink, LATER)

    assert report == PollReport(source="box", removed=1)
    assert stored(store)["q1@shop"].removed_at == LATER
    assert clocks_of(store, "q1@shop") == [
        Clock(kind=ClockKind.FIRST, started_at=T0, stopped_at=LATER, stop_reason=StopReason.CLOSED)
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            ("new", "1794819600.M1P2.host"),
            ("cur", "1794819600.M1P2.host:2,S"),
            id="delivered_then_seen",
        ),
        pytest.param(("cur", "1794.M1.h,S=812:2,S"), ("cur", "1794.M1.h,S=812:2,RS"), id="replied"),
        pytest.param(("cur", "1794.M1.h!2,S"), ("cur", "1794.M1.h!2,ST"), id="bang_separator"),
    ],
)
def test_flag_change_is_not_a_new_message(
    tmp_path: Path,
    store: Store,
    sink: SourceSink,
    before: tuple[str, str],
    after: tuple[str, str],
) -> None:
    """A mail client renaming a file to change its flags (new/ -> cur/, ``:2,S``) keeps the
    message's uid: nothing new is stored and nothing is marked removed."""
    root = make_maildir(tmp_path / "Maildir")
    path = deliver(root / before[0], before[1], customer_mail("q1@shop", T0), T0)
    source = maildir_source(root)
    source.poll(sink, NOW)
    uids = sink.folder_uids("INBOX", MAILDIR_UIDVALIDITY)

    path.rename(root / after[0] / after[1])
    report = source.poll(sink, LATER)

    assert maildir_uid(before[1]) == maildir_uid(after[1])
    assert uids == {maildir_uid(before[1])}
    assert report == PollReport(source="box")
    assert sink.folder_uids("INBOX", MAILDIR_UIDVALIDITY) == uids
    assert stored(store)["q1@shop"].removed_at is None


def test_message_moved_to_another_watched_folder_stays_open(
    tmp_path: Path, store: Store, sink: SourceSink
) -> None:
    """Moving a message from INBOX to another watched folder keeps it stored once and not
    removed, so its clock keeps running."""
    root = make_maildir(tmp_path / "Maildir", "Later")
    path = deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", T0), T0)
    source = maildir_source(root, folders=["INBOX", "Later"])
    source.poll(sink, NOW)

    path.rename(root / ".Later" / "cur" / path.name)
    report = source.poll(sink, LATER)

    assert (report.new, report.duplicates) == (0, 1)
    assert sorted(stored(store)) == ["q1@shop"]
    assert stored(store)["q1@shop"].removed_at is None
    assert sink.folder_uids("Later", MAILDIR_UIDVALIDITY) == {maildir_uid(path.name)}
    assert sink.folder_uids("INBOX", MAILDIR_UIDVALIDITY) == set()
    assert clocks_of(store, "q1@shop") == [Clock(kind=ClockKind.FIRST, started_at=T0)]


# --- Maildir: configuration mistakes -----------------------------------------------------------


def test_missing_folder_is_named(tmp_path: Path, sink: SourceSink) -> None:
    """A configured folder that does not exist fails the poll with its name and the fix."""
    root = make_maildir(tmp_path / "Maildir")

    with pytest.raises(SourceError) as caught:
        maildir_source(root, folders=["INBOX", "Archive"]).poll(sink, NOW)

    assert str(caught.value) == (
        f"source 'box': folder 'Archive' does not exist under {root}; fix `folders` in the config"
    )


@pytest.mark.parametrize(
    "kind", ["missing_path", "empty_directory", "regular_file", "directory_of_mail_files"]
)
def test_path_that_is_not_a_maildir(tmp_path: Path, sink: SourceSink, kind: str) -> None:
    """A `path` without cur/ or new/ inside fails the poll, naming the path and the fix."""
    path = tmp_path / "mail"
    if kind == "empty_directory":
        path.mkdir()
    elif kind == "regular_file":
        path.write_bytes(customer_mail("q1@shop", T0))
    elif kind == "directory_of_mail_files":
        path.mkdir()
        (path / "1.eml").write_bytes(customer_mail("q1@shop", T0))

    with pytest.raises(SourceError) as caught:
        maildir_source(path).poll(sink, NOW)

    assert str(caught.value) == (
        f"source 'box': {path} is not a Maildir (no cur/ or new/ inside); fix `path`"
    )


# --- Maildir: malformed mail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(GARBAGE, "customer message (no address in From)", id="garbage_bytes"),
        pytest.param(b"", "customer message (no From)", id="empty_file"),
        pytest.param(
            b"From: Eve <eve@shop>\nSubject: no blank line, no body, no Message-ID",
            "customer message",
            id="header_only",
        ),
    ],
)
def test_malformed_maildir_message_is_stored(
    tmp_path: Path, store: Store, sink: SourceSink, data: bytes, reason: str
) -> None:
    """A file with garbage bytes, no Message-ID and no usable Date is stored as a customer
    message at its file time (the Date fallback), next to a good message, without an error."""
    root = make_maildir(tmp_path / "Maildir")
    received = T0 + timedelta(minutes=5)
    deliver(root / "cur", "1.bad:2,S", data, received)
    deliver(root / "cur", "2.good:2,S", customer_mail("q1@shop", T0), T0)

    report = maildir_source(root, timestamps="date").poll(sink, NOW)

    assert report == PollReport(source="box", new=2, folders={"INBOX": 2})
    messages = stored(store)
    [bad] = [m for identity, m in messages.items() if identity != "q1@shop"]
    assert bad.identity.startswith("sha256:")
    assert len(bad.identity) == len("sha256:") + 64
    assert (bad.direction, bad.reason, bad.timestamp) == (Direction.INBOUND, reason, received)


# --- mbox --------------------------------------------------------------------------------------


def test_mbox_path_and_sent_path(tmp_path: Path, store: Store, sink: SourceSink) -> None:
    """Mail in `path` is inbound and mail in `sent_path` outbound, each file a folder named
    after it, threaded into one conversation whose clock the reply stops."""
    inbox, sent = tmp_path / "inbox.mbox", tmp_path / "sent.mbox"
    inbox.write_bytes(
        mbox_entry("tom@smallshop.example Mon Nov 16 09:00:00 2026", customer_mail("q1@shop", T0))
    )
    reply_at = T0 + timedelta(minutes=45)
    sent.write_bytes(
        mbox_entry(
            "support@acme.example Mon Nov 16 09:45:00 2026",
            team_reply("r1@acme", reply_at, "q1@shop"),
        )
    )

    report = mbox_source(inbox, sent_path=sent).poll(sink, NOW)

    assert report == PollReport(source="box", new=2, folders={"inbox.mbox": 1, "sent.mbox": 1})
    messages = stored(store)
    assert (messages["q1@shop"].folder, messages["q1@shop"].direction) == (
        "inbox.mbox",
        Direction.INBOUND,
    )
    assert (messages["r1@acme"].folder, messages["r1@acme"].direction) == (
        "sent.mbox",
        Direction.OUTBOUND,
    )
    assert clocks_of(store, "q1@shop") == [
        Clock(
            kind=ClockKind.FIRST,
            started_at=T0,
            stopped_at=reply_at,
            stop_reason=StopReason.REPLY,
            responder="support@acme.example",
        )
    ]


@pytest.mark.parametrize(
    ("labels", "direction", "reason"),
    [
        pytest.param("Inbox,Opened", Direction.INBOUND, "customer message", id="inbox_label"),
        pytest.param(
            "Sent,Opened",
            Direction.OUTBOUND,
            "in Sent folder",
            id="sent_label",
        ),
        pytest.param(
            "Archived,Sent,Category Personal",
            Direction.OUTBOUND,
            "in Sent folder",
            id="sent_label_among_others",
        ),
    ],
)
def test_gmail_takeout_labels_decide_sent(
    tmp_path: Path,
    store: Store,
    sink: SourceSink,
    labels: str,
    direction: Direction,
    reason: str,
) -> None:
    """In a Gmail Takeout mbox (one file for all mail) a message labelled Sent is the team's
    reply, even from an address not listed as the team's; other labels leave it inbound."""
    box = tmp_path / "All mail Including Spam and Trash.mbox"
    message = mail(
        sender="Me <me@gmail.example>",
        to=CUSTOMER,
        message_id="m1@gmail.example",
        date=T0,
        extra={"X-GM-THRID": "1750000000000000001", "X-Gmail-Labels": labels},
    )
    box.write_bytes(mbox_entry("1750000000000000001@xxx Mon Nov 16 09:00:00 +0000 2026", message))

    mbox_source(box, identity=MailboxIdentity()).poll(sink, NOW)

    stored_message = stored(store)["m1@gmail.example"]
    assert (stored_message.direction, stored_message.reason) == (direction, reason)


@pytest.mark.parametrize(
    ("from_line", "expected"),
    [
        pytest.param(
            "tom@smallshop.example Mon Nov 16 11:30:00 2026",
            datetime(2026, 11, 16, 11, 30, tzinfo=UTC),
            id="asctime_without_zone_is_utc",
        ),
        pytest.param(
            "1750000000000000001@xxx Mon Nov 16 11:30:00 +0000 2026",
            datetime(2026, 11, 16, 11, 30, tzinfo=UTC),
            id="gmail_takeout",
        ),
        pytest.param(
            "- Mon Nov 16 11:30:00 2026 +0100",
            datetime(2026, 11, 16, 10, 30, tzinfo=UTC),
            id="thunderbird_with_zone",
        ),
        pytest.param("tom@smallshop.example", T0, id="no_date_falls_back_to_date_header"),
    ],
)
def test_mbox_from_line_date_is_the_received_time(
    tmp_path: Path, store: Store, sink: SourceSink, from_line: str, expected: datetime
) -> None:
    """The date on the ``From `` line (when the mail arrived) wins over the sender's Date
    header (09:00 UTC here), which is used only when the line carries no date."""
    box = tmp_path / "inbox.mbox"
    box.write_bytes(mbox_entry(from_line, customer_mail("q1@shop", T0)))

    mbox_source(box).poll(sink, NOW)

    assert stored(store)["q1@shop"].timestamp == expected


def test_mbox_second_poll_and_since(tmp_path: Path, store: Store, sink: SourceSink) -> None:
    """An mbox is re-read whole at each poll, so a second poll finds only duplicates; a message
    older than `since` is skipped both times."""
    box = tmp_path / "inbox.mbox"
    box.write_bytes(
        mbox_entry("a@x Mon Nov 16 09:00:00 2026", customer_mail("q1@shop", T0))
        + mbox_entry(
            "b@x Mon Oct 12 09:00:00 2026", customer_mail("old@shop", T0 - timedelta(days=35))
        )
        + mbox_entry(
            "c@x Tue Nov 17 09:00:00 2026", customer_mail("q2@shop", T0 + timedelta(days=1))
        )
    )
    source = mbox_source(box, since="30d")

    first = source.poll(sink, NOW)
    again = source.poll(sink, LATER)

    assert first == PollReport(source="box", new=2, folders={"inbox.mbox": 2})
    assert again == PollReport(source="box", duplicates=2, folders={"inbox.mbox": 0})
    assert sorted(stored(store)) == ["q1@shop", "q2@shop"]


def test_malformed_mbox_message_is_stored(tmp_path: Path, store: Store, sink: SourceSink) -> None:
    """A message of garbage bytes with no Message-ID and a broken Date is stored and classified
    at its ``From `` line time, and the messages around it are read as usual."""
    box = tmp_path / "inbox.mbox"
    box.write_bytes(
        mbox_entry("a@x Mon Nov 16 09:00:00 2026", customer_mail("q1@shop", T0))
        + mbox_entry("MAILER-DAEMON Mon Nov 16 10:00:00 2026", GARBAGE)
        + mbox_entry("c@x Mon Nov 16 11:00:00 2026", customer_mail("q2@shop", T0))
    )

    report = mbox_source(box).poll(sink, NOW)

    assert report == PollReport(source="box", new=3, folders={"inbox.mbox": 3})
    [bad] = [m for identity, m in stored(store).items() if identity.startswith("sha256:")]
    assert (bad.direction, bad.reason, bad.timestamp, bad.subject) == (
        Direction.INBOUND,
        "customer message (no address in From)",
        datetime(2026, 11, 16, 10, 0, tzinfo=UTC),
        "café",  # unknown charset: the bytes read as cp1252
    )


@pytest.mark.parametrize(
    ("missing", "key"),
    [
        pytest.param("path", "path", id="path"),
        pytest.param(
            "sent_path",
            "sent_path",
            id="sent_path",
        ),
    ],
)
def test_missing_mbox_file_names_the_key_to_fix(
    tmp_path: Path, sink: SourceSink, missing: str, key: str
) -> None:
    """A configured mbox file that does not exist fails the poll naming the file and the
    config key that points at it."""
    files = {"path": tmp_path / "inbox.mbox", "sent_path": tmp_path / "sent.mbox"}
    for name, path in files.items():
        if name != missing:
            path.write_bytes(mbox_entry("a@x Mon Nov 16 09:00:00 2026", customer_mail(name, T0)))

    with pytest.raises(SourceError) as caught:
        mbox_source(files["path"], sent_path=files["sent_path"]).poll(sink, NOW)

    assert str(caught.value) == (
        f"source 'box': mbox file {files[missing]} does not exist; fix `{key}`"
    )


# --- retention ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_pruned_messages_are_not_read_again(
    tmp_path: Path, store: Store, sink: SourceSink, kind: str
) -> None:
    """After `retention` prunes an answered conversation, the next poll of a source whose
    `since` reaches further back (the shipped demo: 3650d vs 180d) stores nothing new and adds
    no conversation."""
    asked = NOW - timedelta(days=400)
    answered = asked + timedelta(hours=1)
    question = customer_mail("q1@shop", asked)
    reply = team_reply("r1@acme", answered, "q1@shop")
    source: MaildirSource | MboxSource
    if kind == "maildir":
        root = make_maildir(tmp_path / "Maildir", "Sent")
        deliver(root / "cur", "1.a:2,S", question, asked)
        deliver(root / ".Sent" / "cur", "2.b:2,S", reply, answered)
        source = maildir_source(root, since="3650d")
    else:
        box, sent = tmp_path / "inbox.mbox", tmp_path / "sent.mbox"
        box.write_bytes(mbox_entry(f"a@x {asked:%a %b %d %H:%M:%S %Y}", question))
        sent.write_bytes(mbox_entry(f"b@x {answered:%a %b %d %H:%M:%S %Y}", reply))
        source = mbox_source(box, sent_path=sent, since="3650d")
    source.poll(sink, NOW)
    assert prune_closed(store, 180 * 86400, NOW) == 2

    again = source.poll(sink, LATER)

    assert again.new == 0
    assert store.source_counts() == {"box": (2, 1)}  # erased rows stay as "already seen"
    assert {row[0] for row in store.conn.execute("SELECT subject FROM messages")} == {""}


# --- check --connect ---------------------------------------------------------------------------


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def from_line(when: datetime) -> str:
    return f"tom@smallshop.example {when:%a %b %d %H:%M:%S %Y}"


def test_maildir_probe_reports_folders_the_sent_folder_newest_mail_and_first_sync(
    tmp_path: Path,
) -> None:
    """Every folder of the tree with its message count; the watched and the sent folder (and
    why it is the sent one); the newest mail each way by file time; what a first sync stores."""
    root = make_maildir(tmp_path / "Maildir", "Sent", "Drafts")
    deliver(root / "new", "3.c", customer_mail("q3@shop", days_ago(2)), days_ago(2))
    deliver(root / "cur", "2.b:2,S", customer_mail("q2@shop", days_ago(20)), days_ago(20))
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", days_ago(40)), days_ago(40))
    deliver(root / "tmp", "4.d", customer_mail("partial@shop", NOW), NOW)  # not delivered yet
    reply = team_reply("r3@acme", days_ago(1), "q3@shop")
    deliver(root / ".Sent" / "cur", "5.e:2,S", reply, days_ago(1))
    deliver(root / ".Drafts" / "cur", "6.f:2,D", reply, days_ago(1))

    report = maildir_source(root).probe(NOW)

    assert (report.source, report.kind, report.account) == ("box", "maildir", str(root))
    assert [(f.name, f.role, f.messages, f.why) for f in report.folders] == [
        ("Drafts", "", 1, ""),
        ("INBOX", "watched", 3, ""),
        ("Sent", "sent", 1, "named in sent_folders"),
    ]
    assert report.first_sync == "3 messages since 2026-10-25 (since: 30d): INBOX 2, Sent 1"
    assert (report.newest_inbound, report.newest_outbound) == (days_ago(2), days_ago(1))
    assert (report.recent_inbound, report.recent_outbound) == (1, 1)
    assert report.warnings == []
    out = io.StringIO()
    print_probe(report, out)
    printed = out.getvalue()
    assert printed.startswith(f"box (maildir): reads {root}\n")
    assert "  newest inbound    2026-11-22 12:00 UTC\n" in printed
    assert "  newest outbound   2026-11-23 12:00 UTC\n" in printed
    assert "    Sent            1  sent (named in sent_folders)\n" in printed


def test_maildir_probe_warns_when_customer_mail_has_no_replies_this_week(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir", "Sent")
    deliver(root / "new", "1.a", customer_mail("q1@shop", days_ago(1)), days_ago(1))
    deliver(
        root / ".Sent" / "cur", "2.b:2,S", team_reply("r@acme", days_ago(9), "x@y"), days_ago(9)
    )

    report = maildir_source(root).probe(NOW)

    assert (report.recent_inbound, report.recent_outbound) == (1, 0)
    assert report.newest_outbound == days_ago(9)
    assert report.warnings == [
        "1 customer message in the last 7 days but no team message in any Sent folder: replies "
        "are missing. Set sent_folders to the folder that holds the team's sent mail, or have "
        "the mail client save sent replies into this mailbox."
    ]


def test_maildir_probe_without_a_sent_folder_says_which_key_to_set(tmp_path: Path) -> None:
    root = make_maildir(tmp_path / "Maildir")
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", days_ago(10)), days_ago(10))

    report = maildir_source(root).probe(NOW)

    assert [(f.name, f.role) for f in report.folders] == [("INBOX", "watched")]
    assert report.newest_outbound is None
    assert report.warnings == [
        "no sent folder found (sent_folders: Sent): set sent_folders to the folder that holds "
        "sent mail"
    ]


def test_maildir_probe_takes_the_date_header_when_configured(tmp_path: Path) -> None:
    """With `timestamps: date` the probe dates messages as the poll does, by the Date header
    (the files here were all copied in just now)."""
    root = make_maildir(tmp_path / "Maildir")
    deliver(root / "cur", "1.a:2,S", customer_mail("q1@shop", days_ago(10)), NOW)
    deliver(root / "cur", "2.b:2,S", customer_mail("q2@shop", days_ago(45)), NOW)

    report = maildir_source(root, timestamps="date").probe(NOW)

    assert dict(report.details)["timestamps"] == "the Date header (timestamps: date)"
    assert report.newest_inbound == days_ago(10)
    assert report.first_sync == "1 message since 2026-10-25 (since: 30d): INBOX 1"


def test_maildir_probe_fails_where_a_poll_would(tmp_path: Path) -> None:
    """No sign-in to refuse, but a path that is not a Maildir or a watched folder that is not
    there fails the probe with the poll's message, naming the key to fix."""
    with pytest.raises(
        SourceError, match=r"is not a Maildir \(no cur/ or new/ inside\); fix `path`"
    ):
        maildir_source(tmp_path).probe(NOW)
    root = make_maildir(tmp_path / "Maildir")
    with pytest.raises(SourceError) as caught:
        maildir_source(root, folders=["INBOX", "Archive"]).probe(NOW)
    assert str(caught.value) == (
        f"source 'box': folder 'Archive' does not exist under {root}; fix `folders` in the config"
    )


def test_mbox_probe_reports_the_files_sent_mail_and_why(tmp_path: Path) -> None:
    """The mbox, the Gmail-labelled sent mail inside it (a Takeout export) and the sent_path
    file, each counted; messages dated by their From line, as a poll dates them."""
    box, sent = tmp_path / "inbox.mbox", tmp_path / "sent.mbox"
    takeout_sent = mail(
        sender="Me <me@gmail.example>",
        to=CUSTOMER,
        message_id="m1@gmail.example",
        date=days_ago(2),
        extra={"X-Gmail-Labels": "Sent,Opened"},
    )
    box.write_bytes(
        mbox_entry(from_line(days_ago(3)), customer_mail("q2@shop", days_ago(3)))
        + mbox_entry(from_line(days_ago(45)), customer_mail("q1@shop", days_ago(45)))
        + mbox_entry(from_line(days_ago(2)), takeout_sent)
    )
    sent.write_bytes(
        mbox_entry(from_line(days_ago(1)), team_reply("r2@acme", days_ago(1), "q2@shop"))
    )

    report = mbox_source(box, sent_path=sent).probe(NOW)

    assert (report.kind, report.account) == ("mbox", str(box))
    assert [(f.name, f.role, f.messages, f.why) for f in report.folders] == [
        ("inbox.mbox", "watched", 2, ""),
        (
            "inbox.mbox (Gmail label Sent)",
            "sent",
            1,
            "X-Gmail-Labels: Sent, as in a Google Takeout export",
        ),
        ("sent.mbox", "sent", 1, "named in sent_path"),
    ]
    assert report.first_sync == (
        "3 messages since 2026-10-25 (since: 30d): inbox.mbox 1, "
        "inbox.mbox (Gmail label Sent) 1, sent.mbox 1"
    )
    assert (report.newest_inbound, report.newest_outbound) == (days_ago(3), days_ago(1))
    assert (report.recent_inbound, report.recent_outbound) == (1, 2)
    assert report.warnings == []


def test_mbox_probe_without_sent_mail_warns(tmp_path: Path) -> None:
    box = tmp_path / "inbox.mbox"
    box.write_bytes(mbox_entry(from_line(days_ago(1)), customer_mail("q1@shop", days_ago(1))))

    report = mbox_source(box).probe(NOW)

    assert [(f.name, f.role, f.messages) for f in report.folders] == [("inbox.mbox", "watched", 1)]
    assert report.warnings[0].startswith(
        "1 customer message in the last 7 days but no team message in any Sent folder"
    )
    assert report.warnings[1:] == [
        "no sent mail found: set sent_path to an mbox file of the team's sent mail"
    ]


def test_mbox_probe_of_a_missing_file_names_the_key(tmp_path: Path) -> None:
    box = tmp_path / "inbox.mbox"
    box.write_bytes(mbox_entry(from_line(days_ago(1)), customer_mail("q1@shop", days_ago(1))))
    with pytest.raises(SourceError) as caught:
        mbox_source(box, sent_path=tmp_path / "sent.mbox").probe(NOW)
    assert str(caught.value) == (
        f"source 'box': mbox file {tmp_path / 'sent.mbox'} does not exist; fix `sent_path`"
    )


def test_a_closing_reply_is_told_in_maildir_and_mbox(tmp_path: Path, store: Store) -> None:
    """The start of a customer reply's file is read to tell "Merci beaucoup !" from a
    question; the maildir and the mbox reading agree."""
    asked = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    messages = [
        ("q1", customer_mail("q1@c", asked), asked),
        ("a1", customer_mail("a1@c", asked + timedelta(hours=2), subject="Re: Help",
                             in_reply_to="r1@acme.example", body="Merci beaucoup !\r\n"),
         asked + timedelta(hours=2)),
        ("a2", customer_mail("a2@c", asked + timedelta(hours=3), subject="Re: Help",
                             in_reply_to="r1@acme.example", body="Ça ne marche pas ?\r\n"),
         asked + timedelta(hours=3)),
    ]  # fmt: skip
    root = make_maildir(tmp_path / "Maildir", "Sent")
    for name, data, when in messages:
        deliver(root / "cur", f"{name}:2,S", data, when)
    deliver(
        root / ".Sent" / "cur",
        "r1:2,S",
        team_reply("r1@acme.example", asked + timedelta(hours=1), "q1@c"),
        asked,
    )
    maildir_source(root, since="3650d").poll(SourceSink(store, "box"), asked + timedelta(days=1))
    from_maildir = {m.identity: m.closing for m in stored(store).values()}
    box = tmp_path / "inbox.mbox"
    box.write_bytes(b"".join(mbox_entry(f"c@x {when:%a %b %d %H:%M:%S %Y}", data)
                             for _, data, when in messages))  # fmt: skip
    with Store.open(tmp_path / "mbox.db") as other:
        mbox_source(box, since="3650d").poll(SourceSink(other, "box"), asked + timedelta(days=1))
        from_mbox = {m.identity: m.closing for m in stored(other).values()}
    assert from_maildir["a1@c"] == "Merci beaucoup !"
    assert from_maildir["a2@c"] is None
    assert from_maildir["q1@c"] is None
    assert {k: v for k, v in from_maildir.items() if k != "r1@acme.example"} == from_mbox
