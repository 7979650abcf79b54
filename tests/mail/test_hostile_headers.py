"""Hostile header blocks: parsing never raises, and every result stays within its bound.

No test here measures time (house rule); bench/hostile_headers.py does. These tests show the
other half: whatever the input, what comes out is bounded, and still names what it can.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.conversations import thread_keys
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.mail.headers import (
    HEADER_FIELDS,
    MAX_ADDRESSES,
    MAX_FIELDS,
    MAX_HEADER_BYTES,
    MAX_ID_LIST_BYTES,
    MAX_REFERENCES,
    MAX_TOKEN_LENGTH,
    MAX_VALUE_BYTES,
    ParsedHeaders,
    parse_headers,
)
from monitor.model import Direction, FolderRole

RECEIVED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
INBOX = FolderContext(
    source="support",
    folder="INBOX",
    role=FolderRole.INBOX,
    identity=MailboxIdentity(team_addresses=frozenset({"support@example.com"})),
)
FROM_EVE = b"From: Eve <eve@example.org>\r\nSubject: still here\r\n"
# The old bare-id regex, quadratic on a long run without "@", kept as the oracle on short text.
OLD_BARE_ID = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")


def assert_bounded(headers: ParsedHeaders) -> None:
    """Every part of ``headers`` is within the bounds that headers.py documents."""
    ids = (*headers.in_reply_to, *headers.references)
    assert len(headers.references) <= MAX_REFERENCES
    assert len(headers.in_reply_to) <= MAX_REFERENCES
    assert all(0 < len(mid) <= MAX_TOKEN_LENGTH for mid in ids)
    assert headers.message_id is None or 0 < len(headers.message_id) <= MAX_TOKEN_LENGTH
    lists = (headers.to, headers.cc, headers.reply_to, headers.delivered_to)
    assert all(len(addresses) <= MAX_ADDRESSES for addresses in lists)
    addresses = [headers.from_addr, headers.sender_addr, *(a for group in lists for a in group)]
    assert all(len(address) <= MAX_TOKEN_LENGTH for address in addresses)
    assert len(headers.from_name) <= MAX_TOKEN_LENGTH
    assert headers.return_path is None or len(headers.return_path) <= MAX_TOKEN_LENGTH
    assert len(headers.subject) <= MAX_VALUE_BYTES
    assert sum(len(values) for values in headers.fields.values()) <= MAX_FIELDS
    assert all(len(v) <= MAX_ID_LIST_BYTES for values in headers.fields.values() for v in values)
    assert headers.date is None or headers.date.tzinfo is UTC


def ids_of(count: int, template: bytes = b"<%d.thread@example.org>") -> list[bytes]:
    """``count`` distinct message ids written with ``template``."""
    return [template % i for i in range(count)]


# --- the cases from the issue


def test_message_id_of_100000_characters_without_at() -> None:
    """The issue's Message-ID is dropped; the message keeps a hash identity and is classified."""
    block = b"Message-ID: " + b"a" * 100_000 + b"\r\n" + FROM_EVE + b"\r\n"
    headers = parse_headers(block)
    event = event_from_headers(INBOX, block, RECEIVED)
    assert (headers.message_id, headers.from_addr, headers.subject) == (
        None,
        "eve@example.org",
        "still here",
    )
    assert event.identity.startswith("sha256:")
    assert (event.direction, event.reason) == (Direction.INBOUND, "customer message")


@pytest.mark.parametrize("name", [b"In-Reply-To", b"References"])
def test_id_list_of_100000_characters_without_at(name: bytes) -> None:
    """The same 100,000-character junk in In-Reply-To or References yields no id at all."""
    headers = parse_headers(name + b": " + b"a" * 100_000 + b"\r\n" + FROM_EVE + b"\r\n")
    assert (headers.in_reply_to, headers.references, headers.from_addr) == (
        (),
        (),
        "eve@example.org",
    )


@pytest.mark.parametrize(
    ("shape", "separator"),
    [
        pytest.param(b"<%d.thread@example.org>", b" ", id="bracketed-one-line"),
        pytest.param(b"<%d.thread@example.org>", b"\r\n ", id="bracketed-folded"),
        pytest.param(b"%d.thread@example.org", b" ", id="bare-ids"),
    ],
)
def test_one_megabyte_references(shape: bytes, separator: bytes) -> None:
    """A 1 MB References yields the root and at most 63 more ids, every one of them real."""
    ids = ids_of(45_000, shape)
    block = b"References: " + separator.join(ids) + b"\r\n\r\n"
    assert len(block) > 1_000_000
    headers = parse_headers(block)
    real = {mid.strip(b"<>").decode() for mid in ids}
    assert_bounded(headers)
    assert len(headers.references) == MAX_REFERENCES
    assert headers.references[0] == "0.thread@example.org"
    assert set(headers.references) <= real


def test_one_megabyte_references_event_is_stored_bounded() -> None:
    """The whole event of a 1 MB References message has bounded thread keys."""
    block = FROM_EVE + b"References: " + b" ".join(ids_of(45_000)) + b"\r\n\r\n"
    event = event_from_headers(INBOX, block, RECEIVED)
    assert event.author == "eve@example.org"
    assert len(thread_keys(event.thread)) <= 1 + 2 * MAX_REFERENCES


# --- each bound, and what is kept inside it


def test_references_keep_the_root_and_the_nearest_parents() -> None:
    """Past 64 ids, References keeps the first (the root) and the last 63 (nearest the parent)."""
    ids = ids_of(1_000)  # about 25 KB: under the value bound, so only the id count applies
    headers = parse_headers(b"References: " + b" ".join(ids) + b"\r\n\r\n")
    expected = [mid.strip(b"<>").decode() for mid in (ids[0], *ids[-63:])]
    assert list(headers.references) == expected


def test_over_long_references_keep_both_ends() -> None:
    """A References value past its byte bound still yields the true root and the true parent."""
    ids = ids_of(8_000)  # about 200 KB, inside the block bound, with From after it
    headers = parse_headers(b"References: " + b"\r\n ".join(ids) + b"\r\n" + FROM_EVE + b"\r\n")
    assert headers.references[0] == "0.thread@example.org"
    assert headers.references[-1] == "7999.thread@example.org"
    assert headers.from_addr == "eve@example.org"


def test_in_reply_to_keeps_its_first_ids() -> None:
    """In-Reply-To keeps its first 64 ids."""
    ids = ids_of(200)
    headers = parse_headers(b"In-Reply-To: " + b" ".join(ids) + b"\r\n\r\n")
    assert headers.in_reply_to == tuple(mid.strip(b"<>").decode() for mid in ids[:64])


def test_over_long_ids_and_addresses_are_dropped_not_shortened() -> None:
    """An id or address past 998 characters is dropped; a shortened one would name another."""
    long_local = b"x" * 1_000
    headers = parse_headers(
        b"Message-ID: <" + long_local + b"@example.org> <short@example.org>\r\n"
        b"References: <" + long_local + b"@example.org> <parent@example.org>\r\n"
        b"From: Eve <" + long_local + b"@example.org>\r\n"
        b"To: " + long_local + b"@example.org, bob@example.org\r\n\r\n"
    )
    assert headers.message_id == "short@example.org"
    assert headers.references == ("parent@example.org",)
    assert (headers.from_addr, headers.from_name) == ("", "Eve")
    assert headers.to == ("bob@example.org",)


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(b"u%d@x.io", id="bare"),
        pytest.param(b"U <u%d@x.io>", id="named"),
        pytest.param(b'"U, V" <u%d@x.io>', id="quoted"),
    ],
)
def test_address_lists_keep_their_first_500(address: bytes) -> None:
    """Thousands of recipients, in one field or several, yield the first 500 in every form."""
    value = b", ".join(address % i for i in range(3_000))
    headers = parse_headers(b"To: " + value + b"\r\nCc: cc@x.io\r\nCc: " + value + b"\r\n\r\n")
    first = tuple(f"u{i}@x.io" for i in range(MAX_ADDRESSES))
    assert (headers.to, headers.cc) == (first, ("cc@x.io", *first[:-1]))


def test_full_parser_shares_one_budget_per_message() -> None:
    """Forms only the full parser reads (comments here) get about 700 addresses a message."""
    value = b", ".join(b"u%d@x.io (U)" % i for i in range(3_000))
    headers = parse_headers(b"To: " + value + b"\r\nCc: " + value + b"\r\n\r\n")
    first = tuple(f"u{i}@x.io" for i in range(MAX_ADDRESSES))
    assert headers.to == first
    assert 0 < len(headers.cc) < MAX_ADDRESSES
    assert headers.cc == first[: len(headers.cc)]


def test_block_past_its_bound_is_read_up_to_it() -> None:
    """Past 256 KiB nothing is read, and the field the bound cuts yields only whole ids."""
    ids = ids_of(20_000, b"%d.thread@example.org")  # bare ids, about 460 KB
    block = FROM_EVE + b"References: " + b" ".join(ids) + b"\r\nTo: late@example.org\r\n\r\n"
    headers = parse_headers(block)
    real = {mid.decode() for mid in ids}
    assert len(block) > MAX_HEADER_BYTES
    assert (headers.from_addr, headers.to) == ("eve@example.org", ())
    assert headers.references[0] == "0.thread@example.org"
    assert set(headers.references) <= real


def test_fields_past_their_count_are_not_read() -> None:
    """After 1,000 fetched fields the rest of the block is ignored."""
    block = b"X-Priority: 1\r\n" * 5_000 + FROM_EVE + b"\r\n"
    headers = parse_headers(block)
    assert len(headers.fields["x-priority"]) == MAX_FIELDS
    assert not headers.has("From")


def test_cut_text_keeps_whole_utf8_characters() -> None:
    """A subject cut to its bound is still UTF-8 text, not cp1252 mojibake of a half character."""
    headers = parse_headers(b"Subject: " + "é".encode() * 20_000 + b"\r\n\r\n")
    assert set(headers.subject) == {"é"}
    assert len(headers.subject.encode()) <= MAX_VALUE_BYTES


def test_many_made_up_charsets_decode_without_raising() -> None:
    """A subject naming hundreds of unknown charsets still decodes, as unlabelled text."""
    words = b" ".join(b"=?x-made-up-%d?q?caf=C3=A9?=" % i for i in range(500))
    assert parse_headers(b"Subject: " + words + b"\r\n\r\n").subject == "café" * 500


def test_punycode_is_not_a_charset() -> None:
    """A word labelled punycode (quadratic to decode) is read as unlabelled bytes instead."""
    word = b"=?punycode?q?" + b"9" * 10_000 + b"-x?="
    assert parse_headers(b"Subject: " + word + b"\r\n\r\n").subject == "9" * 10_000 + "-x"


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from([*'<>,;()" \t@', "a", "b", "é", "\x1c"]), max_size=40))
def test_bare_ids_read_as_the_old_regex_did(value: str) -> None:
    """The linear bare-id reading finds exactly what the old quadratic regex found."""
    headers = parse_headers(b"References: " + value.encode() + b"\r\n\r\n")
    if "<" in value:
        return  # bracketed ids are read by a different rule
    old = [("".join(token.split())) for token in OLD_BARE_ID.findall(value)]
    if old:
        assert list(headers.references) == list(dict.fromkeys(old))


# --- anything at all

UNITS = st.sampled_from(
    [
        b"a", b"@", b"<", b">", b"<a@b>", b"a@b ", b"(", b")", b'"', b"\\", b",", b";", b":",
        b"[", b"]", b" ", b"\t", b"\r\n ", b"\n\t", b"\x00", b"\xff", b"\xc3", b"\xe2\x82",
        b"=?", b"?=", b"=?x?q?", b"=?utf-8?b?", b"=?punycode?q?9", b"=41", b"_", b"QUJD",
        b"[fwd: re:]", b"Re: ", b"[#1]", b"a.", b"g:", b"u@x.org, ", b'"N, M" <u@x.org>, ',
        b"Mon, 99 Foo 99999 99:99:99 +9999", b"-0000", b"2019-13-45T99:99:99", b"+0000 (",
        b"report-type=", b"multipart/report;",
    ]
)  # fmt: skip
# A value is a few units repeated to any length up to about 300 KB: huge, and hostile.
HOSTILE_VALUES = st.builds(
    lambda units, size: (b"".join(units) * (size // len(b"".join(units)) + 1))[:size],
    st.lists(UNITS, min_size=1, max_size=4),
    st.one_of(st.integers(0, 200), st.integers(0, 300_000)),
)
HOSTILE_NAMES = st.sampled_from([*HEADER_FIELDS, "X-Junk", "from", "To ", "Received"])
HOSTILE_BLOCKS = st.builds(
    lambda fields, newline: (
        newline.join(name.encode() + b":" + value for name, value in fields) + newline * 2
    ),
    st.lists(st.tuples(HOSTILE_NAMES, HOSTILE_VALUES), min_size=1, max_size=5),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
)


@settings(max_examples=150, deadline=None)
@given(HOSTILE_BLOCKS)
def test_hostile_blocks_parse_within_bounds(block: bytes) -> None:
    """Huge, 8-bit, NUL-filled, broken or endless header blocks parse within every bound."""
    assert_bounded(parse_headers(block))


@settings(max_examples=100, deadline=None)
@given(HOSTILE_BLOCKS, st.sampled_from(list(FolderRole)))
def test_hostile_blocks_become_bounded_events(block: bytes, role: FolderRole) -> None:
    """Every hostile block becomes a stored, classified event with bounded thread keys."""
    context = FolderContext(source="support", folder="INBOX", role=role, identity=INBOX.identity)
    event = event_from_headers(context, block, RECEIVED)
    assert event.identity
    assert len(event.identity) <= MAX_TOKEN_LENGTH
    assert len(thread_keys(event.thread)) <= 1 + 2 * MAX_REFERENCES
    assert len(event.recipients) <= 2 * MAX_ADDRESSES


def test_a_references_value_cut_at_both_ends_stays_within_its_bound() -> None:
    """Found by the property test above: the two kept parts and the space between them once
    came to one byte over MAX_ID_LIST_BYTES."""
    headers = parse_headers(b"References:" + b">" * (MAX_ID_LIST_BYTES + 1) + b"\r\n\r\n")
    assert_bounded(headers)
