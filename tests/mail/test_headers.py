"""Header parsing: decoding, addresses, message ids, dates, and never raising on real mail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.mail.headers import HEADER_FIELDS, ParsedHeaders, message_identity, parse_headers

from . import (
    NOTMUCH,
    NOTMUCH_MESSAGES,
    SISIMAI_BOUNCES,
    SISIMAI_NOT_BOUNCES,
    corpus_id,
    mbox_messages,
    parsed,
)

ALL_CORPUS_FILES = [*SISIMAI_BOUNCES, *SISIMAI_NOT_BOUNCES, *NOTMUCH_MESSAGES]


def subject_of(encoded: bytes) -> str:
    """Parse a one-line header block and return its decoded subject."""
    return parse_headers(b"Subject: " + encoded + b"\n\n").subject


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        pytest.param(b"=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", "Grüße aus Köln", id="utf8-base64"),
        pytest.param(b"=?iso-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème", id="latin1-q"),
        pytest.param(b"=?gb2312?B?xOO6w6OsysC95w==?=", "你好\uff0c世界", id="gb2312-base64"),
        pytest.param(b"=?koi8-r?Q?=F0=D2=C9=D7=C5=D4?=", "Привет", id="koi8r-q"),
        pytest.param(b"=?KOI8-R?B?8NLJ18XUIM3J0g==?=", "Привет мир", id="koi8r-base64-upper"),
        pytest.param(b"=?ISO-2022-JP?B?GyRCN29MPhsoQg==?=", "件名", id="iso2022jp"),
        pytest.param(b"=?x-unknown?Q?caf=C3=A9?=", "café", id="unknown-charset-utf8-bytes"),
        pytest.param(b"=?x-unknown?Q?caf=E9?=", "café", id="unknown-charset-8bit-bytes"),
        pytest.param(b"=?base64?Q?plain?=", "plain", id="charset-is-not-a-text-codec"),
        pytest.param(b"=?utf-8*en?Q?hello?=", "hello", id="rfc2231-language-suffix"),
        pytest.param(b"=?utf-8?Q?a_b?= =?utf-8?Q?_c?=", "a b c", id="adjacent-words-joined"),
        pytest.param(b"=?utf-8?B?5pel5g==?=\n =?utf-8?B?nKzoqp7jga7ku7blkI0=?=", "日本語の件名",
                     id="multibyte-char-split-across-folded-words"),
        pytest.param(b"=?utf-8?Q?a?==?utf-8?Q?b?=", "ab", id="words-without-space"),
        pytest.param(b"Re: =?utf-8?Q?Gr=C3=BC=C3=9Fe?= from Bonn", "Re: Grüße from Bonn",
                     id="encoded-word-between-plain-text"),
        pytest.param(b"=?utf-8?B?!!w6k?=", "é", id="base64-junk-and-missing-padding"),
        pytest.param(b"=?utf-8?Q?unterminated", "=?utf-8?Q?unterminated", id="unterminated-word"),
        pytest.param(b"Caf\xe9 au lait", "Café au lait", id="raw-8bit-latin1"),
        pytest.param("Grüße".encode(), "Grüße", id="raw-8bit-utf8"),
        pytest.param(b"  folded\n\tover   lines  ", "folded over lines", id="whitespace-collapsed"),
    ],
)  # fmt: skip
def test_subject_decoding(encoded: bytes, expected: str) -> None:
    """Encoded words in any charset, raw 8-bit bytes and folding all decode to plain text."""
    assert subject_of(encoded) == expected


@pytest.mark.parametrize(
    ("block", "expected_from", "expected_name", "expected_to"),
    [
        pytest.param(b"From: Alice <Alice@Example.COM>\nTo: b@x.org, c@y.org\n",
                     "alice@example.com", "Alice", ("b@x.org", "c@y.org"), id="lowercased"),
        pytest.param(b'From: "Doe, Jane" <jane@x.org>\nTo: "a, b" <ab@x.org>, ab@x.org\n',
                     "jane@x.org", "Doe, Jane", ("ab@x.org",), id="quoted-commas-and-dedup"),
        pytest.param(b"From: =?utf-8?B?QW5kcsOpIEJyw6Fz?= <dummy@example.com>\n",
                     "dummy@example.com", "André Brás", (), id="encoded-display-name"),
        pytest.param(b"From: MAILER-DAEMON <>\nTo: undisclosed-recipients:;\n",
                     "", "MAILER-DAEMON", (), id="null-address-and-empty-group"),
        pytest.param(b"From: Kijitora <kijitora@example.jp\n", "kijitora@example.jp", "Kijitora",
                     (), id="missing-closing-bracket"),
        pytest.param(b"To: someone@example.org\n", "", "", ("someone@example.org",),
                     id="no-from-header"),
    ],
)  # fmt: skip
def test_addresses(
    block: bytes, expected_from: str, expected_name: str, expected_to: tuple[str, ...]
) -> None:
    """Address headers yield lowercase addresses and decoded display names, malformed or not."""
    headers = parse_headers(block)
    assert (headers.from_addr, headers.from_name, headers.to) == (
        expected_from,
        expected_name,
        expected_to,
    )


@pytest.mark.parametrize(
    ("block", "message_id", "in_reply_to", "references"),
    [
        pytest.param(b"Message-ID: <a@x>\nIn-Reply-To: <b@x>\nReferences: <c@x> <b@x>\n",
                     "a@x", ("b@x",), ("c@x", "b@x"), id="well-formed"),
        pytest.param(b"Message-Id: <first@x>\nMessage-ID: <second@x>\n", "first@x", (), (),
                     id="duplicate-message-id-uses-first"),
        pytest.param(b"Subject: no id\n", None, (), (), id="missing-message-id"),
        pytest.param(b"Message-ID: <>\n", None, (), (), id="empty-brackets"),
        pytest.param(b"Message-ID: bare-id@example.com\n", "bare-id@example.com", (), (),
                     id="message-id-without-brackets"),
        pytest.param(b"Message-ID: <long.\n id@x>\n", "long.id@x", (), (),
                     id="whitespace-inside-id-removed"),
        pytest.param(b"References: <a@x>\n\t<b@x>,\n  junk (comment) <c@x> <a@x>\n", None, (),
                     ("a@x", "b@x", "c@x"), id="folded-junk-and-duplicates"),
        pytest.param(b"References: a@x b@x\n", None, (), ("a@x", "b@x"),
                     id="references-without-brackets"),
        pytest.param(b'In-Reply-To: Message from Joe <joe@x.org> of "Mon" <42@x.org>\n', None,
                     ("joe@x.org", "42@x.org"), (), id="mh-style-in-reply-to-keeps-all-tokens"),
    ],
)  # fmt: skip
def test_message_ids(
    block: bytes,
    message_id: str | None,
    in_reply_to: tuple[str, ...],
    references: tuple[str, ...],
) -> None:
    """Message ids come out without brackets, in order, de-duplicated, however they were written."""
    headers = parse_headers(block)
    assert (headers.message_id, headers.in_reply_to, headers.references) == (
        message_id,
        in_reply_to,
        references,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b"Mon, 15 Jul 2013 13:16:38 -0700 (PDT)", datetime(2013, 7, 15, 20, 16, 38,
                     tzinfo=UTC), id="offset-with-comment"),
        pytest.param(b"12 Jun 2013 02:21:53 -0000", datetime(2013, 6, 12, 2, 21, 53, tzinfo=UTC),
                     id="no-weekday-unknown-zone-is-utc"),
        pytest.param(b"Tue, 16 Jul 2013 05:16:35 JST", datetime(2013, 7, 16, 5, 16, 35,
                     tzinfo=UTC), id="unknown-zone-name-read-as-utc"),
        pytest.param(b"2019-12-17T02:53:09+09:00", datetime(2019, 12, 16, 17, 53, 9, tzinfo=UTC),
                     id="iso8601-fallback"),
        pytest.param(b"Mon, 15 Jul 2013 13:16:38 +9999", None, id="impossible-offset"),
        pytest.param(b"yesterday at noon", None, id="garbage"),
        pytest.param(b"", None, id="empty"),
    ],
)  # fmt: skip
def test_dates(value: bytes, expected: datetime | None) -> None:
    """Dates become aware UTC datetimes, or None when nothing sensible can be read."""
    assert parse_headers(b"Date: " + value + b"\n\n").date == expected


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        pytest.param(b"Subject: x\n", None, id="absent"),
        pytest.param(b"Return-Path: <>\n", "", id="null-sender"),
        pytest.param(b"Return-Path: \n", "", id="empty-value-gmx-style"),
        pytest.param(b"Return-Path: <Bounce@X.org>\nReturn-Path: <>\n", "bounce@x.org",
                     id="first-of-several"),
    ],
)  # fmt: skip
def test_return_path(block: bytes, expected: str | None) -> None:
    """Return-Path distinguishes absent (None), the null sender ("") and an address."""
    assert parse_headers(block).return_path == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b'Multipart/Report; report-type="delivery-status"', "multipart/report",
                     id="lowercased-without-params"),
        pytest.param(b"text/plain", "text/plain", id="bare"),
        pytest.param(b"Multipart/Mixed;", "multipart/mixed", id="trailing-semicolon"),
        pytest.param(b"garbage", "", id="malformed"),
    ],
)  # fmt: skip
def test_content_type(value: bytes, expected: str) -> None:
    """Content-Type is reduced to a lowercase type/subtype, or "" when malformed."""
    assert parse_headers(b"Content-Type: " + value + b"\n").content_type == expected


BLOCK = (
    b"Message-ID: <m1@example.org>\n"
    b"From: Customer <c@example.org>\n"
    b"To: support@example.com\n"
    b"Subject: =?utf-8?Q?Gr=C3=BC=C3=9Fe?=\n"
    b"Date: Thu, 29 Apr 2010 23:34:45 +0900\n"
)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(BLOCK.replace(b"\n", b"\r\n") + b"\r\n", id="crlf-with-blank-line"),
        pytest.param(BLOCK, id="lf-without-blank-line"),
        pytest.param(b"From c@example.org  Thu Apr 29 23:34:45 2010\n" + BLOCK, id="mbox-from"),
        pytest.param(BLOCK + b"\nBody: not a header\n", id="whole-message"),
        pytest.param(BLOCK.replace(b"\n", b"\r") + b"\r", id="cr-line-ends"),
        pytest.param(b"not a field\n continued\n" + BLOCK, id="garbage-line-skipped"),
        pytest.param(BLOCK.replace(b"Subject:", b"Subject :"), id="obsolete-space-before-colon"),
    ],
)
def test_block_shapes_parse_alike(variant: bytes) -> None:
    """Line ends, a missing blank line, an mbox From line, a body or a garbage line are harmless."""
    assert parse_headers(variant) == parse_headers(BLOCK + b"\n")


def test_fields_keep_only_fetched_headers() -> None:
    """``fields`` holds every value of the fetched headers only, under lowercase names."""
    headers = parse_headers(
        b"Received: from a\nReceived: from b\nDelivered-To: a@x\nDelivered-To: b@x\n"
        b"X-Priority: 1 (Highest)\n\n"
    )
    assert dict(headers.fields) == {
        "delivered-to": ("a@x", "b@x"),
        "x-priority": ("1 (Highest)",),
    }
    assert headers.delivered_to == ("a@x", "b@x")


def imap_header_fields_fetch(data: bytes) -> bytes:
    """What ``BODY.PEEK[HEADER.FIELDS (...)]`` returns: the wanted header lines, then CRLF."""
    wanted = {name.lower() for name in HEADER_FIELDS}
    block = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    kept: list[bytes] = []
    keep = False
    for line in block.split(b"\n"):
        if line.startswith(b"From ") and not kept and not keep:
            continue  # the mbox separator is not a header
        if line[:1] in (b" ", b"\t"):
            if keep:
                kept.append(line.rstrip(b"\r"))
            continue
        keep = line.split(b":", 1)[0].strip().decode("latin-1").lower() in wanted
        if keep:
            kept.append(line.rstrip(b"\r"))
    return b"\r\n".join(kept) + b"\r\n\r\n"


def test_corpus_parses_like_an_imap_fetch() -> None:
    """Every corpus file parses, and the whole file gives what the IMAP header fetch would."""
    differing = [
        corpus_id(path)
        for path in ALL_CORPUS_FILES
        if parsed(path) != parse_headers(imap_header_fields_fetch(path.read_bytes()))
    ]
    assert len(ALL_CORPUS_FILES) == 629 + 3 + 275
    assert differing == []


def test_mbox_messages_parse() -> None:
    """All 37 messages of the sisimai mbox parse, each with a From address."""
    headers = [parse_headers(message) for message in mbox_messages()]
    assert len(headers) == 37
    assert all(isinstance(h, ParsedHeaders) and h.from_addr for h in headers)


ANGLE = re.compile(rb"<([^<>]*)>")


def raw_ids(path: Path, name: bytes) -> tuple[str, ...]:
    """The <...> tokens of the first header ``name`` in a file, read with plain regexes."""
    block = re.split(rb"\n\n", path.read_bytes(), maxsplit=1)[0]
    match = re.search(rb"^" + name + rb":(.*(?:\n[ \t].*)*)", block, re.IGNORECASE | re.MULTILINE)
    if match is None:
        return ()
    return tuple(dict.fromkeys(t.decode().strip() for t in ANGLE.findall(match.group(1))))


def test_notmuch_threading_headers_match_the_file() -> None:
    """Every notmuch message's Message-ID, In-Reply-To and References are exactly the file's."""
    mismatched = {
        corpus_id(path): (parsed(path).message_id, parsed(path).in_reply_to)
        for path in NOTMUCH_MESSAGES
        if (
            (parsed(path).message_id,) != raw_ids(path, b"Message-ID")
            or parsed(path).in_reply_to != raw_ids(path, b"In-Reply-To")
            or parsed(path).references != raw_ids(path, b"References")
        )
    }
    assert len(NOTMUCH_MESSAGES) == 275
    assert mismatched == {}


@pytest.mark.parametrize(
    ("relative", "message_id", "in_reply_to", "references"),
    [
        pytest.param("default/cur/52:2,", "4EFC743A.3060609@april.org",
                     ("4EFC3D62.4030202@archlinux.org",),
                     ("4EFC3931.6030007@april.org", "4EFC3D62.4030202@archlinux.org"),
                     id="default-52-thunderbird-reply"),
        pytest.param("lkml/cur/1382298793.002257:2,",
                     "59705f848d35b12ace640f92afcffea02cee0976.1289789605.git.joe@perches.com",
                     ("cover.1289789604.git.joe@perches.com",),
                     ("cover.1289789604.git.joe@perches.com",), id="lkml-patch-in-series"),
        pytest.param("threading/ghost-root/1532672447.R3166642290392477575.len:2,S",
                     "rt-4.2.8-22046-1529425595-591.33575-211-0@xxxxxxx-xxxxxxxxxxxxxxxxx"
                     "-xxxxxxxxx-xxxxxxxxx.de",
                     ("87bmc6lp3h.fsf@len.workgroup",),
                     ("RT-Ticket-33575@xxxxxxx-xxxxxxxxxxxxxxxxx-xxxxxxxxx-xxxxxxxxx.de",
                      "87bmc6lp3h.fsf@len.workgroup"), id="rt-folded-references"),
    ],
)  # fmt: skip
def test_notmuch_spot_checks(
    relative: str, message_id: str, in_reply_to: tuple[str, ...], references: tuple[str, ...]
) -> None:
    """Hand-read values from three notmuch files, including a folded References header."""
    headers = parsed(NOTMUCH / relative)
    assert (headers.message_id, headers.in_reply_to, headers.references) == (
        message_id,
        in_reply_to,
        references,
    )


def test_modern_policy_breaker_parses() -> None:
    """The LKML To header that makes email.policy.default raise is read as no recipients."""
    headers = parsed(NOTMUCH / "lkml/cur/1382298770.002930:2,")
    assert headers.first("To") == "unlisted-recipients:; (no To-header on input)"
    assert headers.to == ()


HEADER_NAMES = st.sampled_from([*HEADER_FIELDS, "Received", "X-Junk", "from", "SUBJECT"])
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda cs, enc, payload: f"=?{cs}?{enc}?{payload}?=".encode(),
        st.sampled_from(["utf-8", "x-unknown", "gb2312", "koi8-r", "base64", "", "utf-8*en"]),
        st.sampled_from(["B", "q", "X"]),
        st.text(alphabet="abcXYZ019+/=_? ", max_size=20),
    ),
)
HEADER_LINES = st.lists(
    st.tuples(HEADER_NAMES, HEADER_VALUES).map(lambda nv: nv[0].encode() + b": " + nv[1]),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_never_raises_on_random_bytes(data: bytes) -> None:
    """Any byte string at all parses into a ParsedHeaders."""
    assert isinstance(parse_headers(data), ParsedHeaders)


@settings(max_examples=300, deadline=None)
@given(HEADER_LINES, st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_parse_never_raises_on_header_shaped_bytes(lines: list[bytes], newline: bytes) -> None:
    """Header-shaped garbage (bad encoded words, 8-bit values, odd line ends) never raises."""
    headers = parse_headers(newline.join(lines) + newline)
    assert headers.date is None or headers.date.tzinfo is UTC


WHEN = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_ID = parse_headers(b"From: a@x.org\nTo: b@y.org\nDate: Fri, 1 Mar 2024 12:00:00 +0000\n\n")


@pytest.mark.parametrize(
    ("headers", "internaldate", "expected"),
    [
        pytest.param(parse_headers(b"Message-ID:  < id@x >\n"), WHEN, "id@x", id="message-id"),
        pytest.param(NO_ID, WHEN, message_identity(NO_ID, WHEN + timedelta(microseconds=5)),
                     id="hash-ignores-microseconds"),
        pytest.param(NO_ID, WHEN.astimezone(timezone(timedelta(hours=9))),
                     message_identity(NO_ID, WHEN), id="hash-same-instant-other-zone"),
    ],
)  # fmt: skip
def test_message_identity(headers: ParsedHeaders, internaldate: datetime, expected: str) -> None:
    """The identity is the Message-ID, else a hash that is the same for the same message."""
    assert message_identity(headers, internaldate) == expected


def test_message_identity_hash_shape_and_sensitivity() -> None:
    """Without Message-ID the identity is "sha256:" + 64 hex digits and tracks INTERNALDATE."""
    identity = message_identity(NO_ID, WHEN)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", identity)
    assert identity != message_identity(NO_ID, WHEN + timedelta(seconds=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        message_identity(NO_ID, datetime(2024, 3, 1, 12, 0, 0))
