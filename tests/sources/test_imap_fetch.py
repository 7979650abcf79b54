"""FETCH replies read without imapclient's lexer give what imapclient's parser gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from factories import mail
from servers.dovecot import DovecotServer, ImapUser

from monitor.sources.imap_fetch import (
    FetchedMessage,
    _read_common_shape,
    _read_with_imapclient,
    fetch_messages,
    read_fetch_reply,
)

NOW = datetime.now(UTC).replace(microsecond=0)
HEADER = b"From: Ann <ann@example.org>\r\nSubject: Hi\r\n\r\n"
ARRIVED = b'INTERNALDATE "04-Dec-2026 10:00:00 +0000" '
SECTION = b"BODY[HEADER.FIELDS (FROM SUBJECT)]"


def reply(*messages: tuple[bytes, bytes, bytes]) -> list[Any]:
    """imaplib's reply lines: per message, (line up to the literal, literal), then the rest."""
    data: list[Any] = []
    for head, literal, tail in messages:
        data += [(head + b" {%d}" % len(literal), literal), tail]
    return data


@pytest.mark.parametrize(
    ("data", "common"),
    [
        pytest.param(
            reply((b'1 (UID 7 INTERNALDATE "04-Dec-2026 10:00:00 +0100" ' + SECTION, HEADER, b")")),
            True,
            id="dovecot_order",
        ),
        pytest.param(
            reply(
                (
                    b'3 (X-GM-THRID 1790000000000000001 UID 9 INTERNALDATE " 4-Dec-2026 '
                    b'23:59:59 -0530" ' + SECTION,
                    HEADER,
                    b")",
                )
            ),
            True,
            id="gmail_order_padded_day",
        ),
        pytest.param(
            reply((b"2 (" + SECTION, HEADER, b' UID 8 INTERNALDATE "04-Dec-2026 10:00:00 +0000")')),
            True,
            id="items_after_the_literal",
        ),
        pytest.param(
            reply((b"2 (UID 8 MODSEQ (12) FLAGS (\\Seen) BODY[TEXT]<0>", b"Thanks!\r\n", b")")),
            True,
            id="body_start",
        ),
        pytest.param(
            reply((b'1 (UID 7 INTERNALDATE "04-Dec-2026 10:00:00 -0000" ' + SECTION, HEADER, b")")),
            True,
            id="zone_unknown",
        ),
        pytest.param(
            reply((b'1 (UID 7 INTERNALDATE "31-Feb-2026 10:00:00 +0000" ' + SECTION, HEADER, b")")),
            True,
            id="impossible_date",
        ),
        pytest.param(
            [b'1 (UID 7 INTERNALDATE "04-Dec-2026 10:00:00 +0000" ' + SECTION + b' "")'],
            False,
            id="header_as_quoted_string",
        ),
        pytest.param(
            [b"4 (FLAGS (\\Seen))", *reply((b"1 (UID 7 " + ARRIVED + SECTION, HEADER, b")"))],
            False,
            id="unsolicited_fetch",
        ),
        pytest.param(
            reply(
                (b'1 (UID 7 X-GM-LABELS ("a (b)") ' + SECTION, HEADER, b")"),
                (b"2 (UID 8 " + SECTION, HEADER, b")"),
            ),
            False,
            id="item_only_the_general_parser_reads",
        ),
        pytest.param(
            reply((b"1 (UID 7 " + SECTION, HEADER, b")"), (b"1 (UID 7 " + SECTION, HEADER, b")")),
            False,
            id="same_message_twice",
        ),
    ],
)
def test_reply_reads_as_imapclient_reads_it(data: list[Any], common: bool) -> None:
    """Whatever shape the reply has, the messages read are those imapclient's parser reads;
    the common shapes are read without it."""
    assert read_fetch_reply(data) == _read_with_imapclient(data)
    assert (_read_common_shape(data) is not None) == common


def test_common_shape_values() -> None:
    """The common shape gives the UID, the time with its offset, the header bytes and the
    Gmail thread id."""
    data = reply(
        (
            b'3 (X-GM-THRID 42 UID 9 INTERNALDATE "04-Dec-2026 10:00:00 +0130" ' + SECTION,
            HEADER,
            b")",
        )
    )
    assert read_fetch_reply(data) == {
        9: FetchedMessage(
            9,
            datetime(2026, 12, 4, 10, 0, tzinfo=timezone(timedelta(hours=1, minutes=30))),
            HEADER,
            None,
            42,
        )
    }


@pytest.mark.imap
def test_dovecot_reply_is_read_as_imapclient_reads_it(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    """Against a real server, headers and body starts fetched here equal IMAPClient.fetch's,
    and a UID that is not in the folder is simply absent."""
    for n in range(5):
        dovecot.append(
            imap_user.username,
            imap_user.password,
            "INBOX",
            mail(
                sender=f"Customer {n} <c{n}@customer.example>",
                subject=f"Question {n}",
                message_id=f"q{n}@customer.example",
                date=NOW - timedelta(minutes=n),
            ),
            internaldate=NOW - timedelta(minutes=n),
        )
    header = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)]"
    with dovecot.session(imap_user.username, imap_user.password) as client:
        client.normalise_times = False
        client.select_folder("INBOX", readonly=True)
        uids = [*client.search("ALL"), 999]
        ours = fetch_messages(client, uids, ["INTERNALDATE", header])
        theirs = client.fetch(uids, ["INTERNALDATE", header])
        bodies = fetch_messages(client, uids[:2], ["BODY.PEEK[TEXT]<0.4096>"])
        their_bodies = client.fetch(uids[:2], ["BODY.PEEK[TEXT]<0.4096>"])
    assert sorted(ours) == sorted(theirs) == uids[:-1]
    for uid, item in theirs.items():
        assert ours[uid].internaldate == item[b"INTERNALDATE"]
        assert ours[uid].header == item[b"BODY[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)]"]
        assert ours[uid].header.startswith(b"From: Customer")
    assert {uid: b.body for uid, b in bodies.items()} == {
        uid: item[b"BODY[TEXT]<0>"] for uid, item in their_bodies.items()
    }
