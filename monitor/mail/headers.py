"""Parse an email's header block into the values that classification and threading need.

The IMAP source fetches only ``HEADER_FIELDS`` (``BODY.PEEK[HEADER.FIELDS (...)]``), never a
body, and calls ``parse_headers`` on the bytes. Real mail is messy -- 8-bit bytes in headers,
encoded words in unknown charsets, folded References, dates no parser knows -- and one broken
message must never stop a mailbox from being read, so ``parse_headers`` never raises: what it
cannot decode it keeps as best-effort text or leaves empty.

Why ``email.policy.compat32`` and not the modern ``email.policy.default``: the modern policy
parses every header value into a structured object on access, and that parser raises on real
mail (on Python 3.11, an LKML ``To: unlisted-recipients:; (no To-header on input)`` raises
AttributeError). compat32 only splits the block into raw name/value pairs and never interprets
them; the decoding below is done by small functions that each have a safe fallback.

Anyone can put anything in a header (IMAP APPEND takes any bytes), and a C regex holds the GIL
for as long as it runs, so one slow match stalls every thread of the daemon, /healthz included.
So every step here is linear in its input, and the input is bounded before any work is done
(the first three bounds by ``fields.header_fields``, which splits the block):

* ``MAX_HEADER_BYTES`` (256 KiB) of the header section are read; what follows is ignored.
  Real blocks are a few KiB (the largest of the 907 corpus messages in tests/data is 15 KiB,
  Received lines and all; the IMAP fetch returns only the fields below). A hostile block that
  fills the bound with one field loses the fields after it; the message is still stored, and
  classified from what was read.
* ``MAX_FIELDS`` (1,000) fetched fields are read at most; a real block has a few dozen.
* Each value is cut to ``MAX_ID_LIST_BYTES`` (64 KiB) for References and In-Reply-To, whose
  folded id chains legitimately run to tens of KiB on long mailing-list threads, and to
  ``MAX_VALUE_BYTES`` (16 KiB) for every other field, sixteen full 998-character lines. Cuts
  never split a UTF-8 character, and never leave half a message id behind to be read as an id.
* References keeps at most ``MAX_REFERENCES`` (64) ids: the first (the thread's root) and the
  last 63 (the parent and its nearest ancestors), which is what threading links by; an
  over-long References value is cut in the middle for the same reason. In-Reply-To keeps its
  first 64 ids.
* Each address-list header yields at most ``MAX_ADDRESSES`` (500) addresses. Plain and
  quoted-name lists ('Ann <a@x>, "Doe, J" <j@x>') are read by regexes; the full parser, needed
  for comments, groups and escapes, reads at most 16,000 words and marks per message (about
  700 such addresses; 16 ms of work at most) and drops what is left.
* A message id or address longer than ``MAX_TOKEN_LENGTH`` (998, RFC 5322's line limit) is
  dropped, not shortened: a shortened id or address would name a different message or person.
  A message whose Message-ID is dropped is identified by the hash ``message_identity`` makes,
  so it is still stored once, and still classified from its other headers.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import re
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import MappingProxyType
from typing import TypeVar, overload

from monitor.mail.addresses import read_address_list
from monitor.mail.fields import (
    HEADER_FIELDS,
    MAX_FIELDS,
    MAX_HEADER_BYTES,
    MAX_ID_LIST_BYTES,
    MAX_VALUE_BYTES,
    header_fields,
)
from monitor.model import require_utc

__all__ = [
    "HEADER_FIELDS",
    "MAX_ADDRESSES",
    "MAX_FIELDS",
    "MAX_HEADER_BYTES",
    "MAX_ID_LIST_BYTES",
    "MAX_REFERENCES",
    "MAX_TOKEN_LENGTH",
    "MAX_VALUE_BYTES",
    "ParsedHeaders",
    "message_identity",
    "parse_headers",
]

# The bounds of what is read from the values (fields.py bounds the block and the values
# themselves); the module docstring says why each is what it is.
MAX_REFERENCES = 64
MAX_ADDRESSES = 500
MAX_TOKEN_LENGTH = 998

# What separates bare ids (ids written without <>); fields.py cuts at the same characters.
_ID_DELIMITERS = re.compile(r"[\s<>,;()\"]+")
_ANGLE_TOKEN = re.compile(r"<([^<>]*)>")
# The common address forms, read without the full parser, on a comma-separated part with its
# surrounding whitespace already stripped: "Name <local@domain>" and a bare "local@domain".
# The name takes everything up to "<" and is stripped afterwards: a separate "\s*" before "<"
# would compete with the name for the same spaces, which is quadratic on a run of them.
_SIMPLE_ADDRESS = re.compile(r"([^<>@,]*)<([^<>\s@,]+@[^<>\s@,]+)>|([^<>\s@,]+@[^<>\s@,]+)")
# The next most common form, '"Doe, Jane" <jane@x.org>', and how to split a list of them at
# the commas outside quotes (only used when every quote is closed and nothing is escaped).
_QUOTED_ADDRESS = re.compile(r'"([^"]*)"[ \t]*<([^<>\s@,"]+@[^<>\s@,"]+)>')
_LIST_PART = re.compile(r'(?:"[^"]*"|[^",])+')
# How far the full address parser may read in all the address headers of one message, in
# words, spaces and marks (about 1 µs each; an address with a name takes 20 to 30). The forms
# above never use it: it is for comments, groups, escapes and junk, so it is seldom needed.
_ADDRESS_STEPS = 32 * MAX_ADDRESSES
_NEEDS_FULL_PARSER = re.compile(r"[()\\:;\[\]]")
# Short address lists are read once and remembered: the team's own address is in every
# message, a customer's From in each of theirs. At most this many, of at most this length.
_CACHED_LISTS = 4096
_CACHED_LIST_CHARS = 256
_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
# Lenient on purpose: broken mailers put spaces inside Q-encoded text.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
# Text codecs that are not charsets, and decode in quadratic time (punycode: 73 ms for 16 KiB).
_NOT_CHARSETS = frozenset({"punycode", "idna"})
# Charsets looked up per value at most; real mail uses one or two. Each lookup of an unknown
# name tries an import (about 35 µs), so a value of a thousand made-up charsets must not try all.
_MAX_CHARSETS = 8
_MAX_CHARSET_NAME = 64  # IANA charset names are at most 40 characters
# Labels that real mail uses for a superset the label does not name: GB2312-labelled text is
# routinely GBK, Shift_JIS is cp932, ISO-8859-1 and US-ASCII text often carries cp1252 quotes.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedHeaders:
    """What one message's header block says, decoded; addresses lowercase, ids without <>.

    ``fields`` holds every fetched header (lowercase name) with all its decoded values, for the
    less common checks; only ``HEADER_FIELDS`` are kept even when a whole message was parsed, so
    a test on a full .eml file sees exactly what production sees over IMAP.
    """

    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject: str = ""
    from_addr: str = ""
    from_name: str = ""
    sender_addr: str = ""
    reply_to: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    delivered_to: tuple[str, ...] = ()
    date: datetime | None = None  # aware UTC; None when absent or unparseable
    return_path: str | None = None  # None: no header; "": the null sender "<>"
    content_type: str = ""  # lowercase "type/subtype", "" when absent or malformed
    fields: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def first(self, name: str) -> str | None:
        """Return the first decoded value of header ``name`` (any case), or None if absent."""
        values = self.fields.get(name.lower())
        return values[0] if values else None

    def has(self, name: str) -> bool:
        """Tell whether header ``name`` (any case) is present, even with an empty value."""
        return name.lower() in self.fields


_T = TypeVar("_T")


class _DecodedFields(Mapping[str, tuple[str, ...]]):
    """The fetched fields, each decoded (encoded words, whitespace) the first time it is read:
    most checks only ask whether a field is there, and most fields are never read."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: dict[str, list[str]]) -> None:
        self._raw = raw
        self._decoded: dict[str, tuple[str, ...]] = {}

    def __getitem__(self, name: str) -> tuple[str, ...]:
        values = self._decoded.get(name)
        if values is None:
            values = tuple(_display_text(value) for value in self._raw[name])
            self._decoded[name] = values
        return values

    @overload
    def get(self, name: str, /) -> tuple[str, ...] | None: ...
    @overload
    def get(self, name: str, /, default: tuple[str, ...] | _T) -> tuple[str, ...] | _T: ...
    def get(self, name: str, /, default: object = None) -> object:
        # Mapping.get would raise and catch a KeyError for every absent field.
        return self[name] if name in self._raw else default

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def keys(self) -> KeysView[str]:
        return self._raw.keys()

    def __repr__(self) -> str:
        return repr(dict(self))


def parse_headers(data: bytes) -> ParsedHeaders:
    """Parse a header block (or a whole message; the body is ignored) without ever raising.

    Accepts CRLF, LF or CR line ends, a leading mbox "From " line, and blocks with or without
    the terminating blank line. Repeated single-valued headers (Message-ID, From, Date, ...) use
    the first occurrence, which on delivered mail is the one the final server added or kept.
    Hostile input is cut to the bounds in the module docstring first, so the work is bounded.
    """
    raw: dict[str, list[str]] = {}
    for key, value in header_fields(data):
        # Bytes become text as the stdlib's compat32 parser does it (8-bit bytes as
        # surrogate escapes), then 8-bit text is decoded as UTF-8 or cp1252.
        if value.isascii():
            text = value.decode("ascii").strip().replace("\r", "").replace("\n", "")
        else:
            text = _decode_8bit(_unfold(value.decode("ascii", "surrogateescape").strip()))
        raw.setdefault(key, []).append(text)

    def first_raw(name: str) -> str | None:
        values = raw.get(name)
        return values[0] if values else None

    # The headers that classification reads first, while the shared budget is full.
    addresses = _AddressReader()
    from_pairs = addresses.pairs(raw.get("from", [])[:1])
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    return_path = _return_path(first_raw("return-path"), addresses)
    sender = addresses.of(raw.get("sender", [])[:1])
    reply_to, to, cc = (addresses.of(raw.get(name, [])) for name in ("reply-to", "to", "cc"))
    message_ids = _message_ids(raw.get("message-id", [])[:1])
    references = _message_ids(raw.get("references", []))
    if len(references) > MAX_REFERENCES:
        references = (references[0], *references[1 - MAX_REFERENCES :])
    return ParsedHeaders(
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=_message_ids(raw.get("in-reply-to", []))[:MAX_REFERENCES],
        references=references,
        subject=_display_text(first_raw("subject") or ""),
        from_addr=from_addr,
        from_name=from_name,
        sender_addr=sender[0] if sender else "",
        reply_to=reply_to,
        to=to,
        cc=cc,
        delivered_to=addresses.of(raw.get("delivered-to", [])),
        date=_parse_date(first_raw("date")),
        return_path=return_path,
        content_type=_content_type(first_raw("content-type")),
        fields=_DecodedFields(raw),
    )


def message_identity(h: ParsedHeaders, internaldate: datetime) -> str:
    """Return the stable identity of a message: its Message-ID, else a hash of key headers.

    The hash covers From, To, the Date header text, Subject and the server's INTERNALDATE (to
    the second, in UTC), so the same message seen in two folders, or again after a UIDVALIDITY
    change, gets the same identity. ``internaldate`` must be timezone-aware.
    """
    if h.message_id:
        return h.message_id
    received = require_utc("internaldate", internaldate).replace(microsecond=0)
    parts = (h.first("from") or "", h.first("to") or "", h.first("date") or "", h.subject)
    text = "\n".join((*parts, received.isoformat()))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def _unfold(value: str) -> str:
    """Undo header folding: every line break inside a value is folding (RFC 5322 2.2.3)."""
    return value.replace("\r", "").replace("\n", "")


def _decode_8bit(value: str) -> str:
    """Turn raw 8-bit header bytes (surrogate-escaped by the parser) into text.

    UTF-8 first (SMTPUTF8 mail and most modern clients), else cp1252, which maps nearly every
    byte to a character, with U+FFFD for the rest.
    """
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return _decode_unlabelled(data)


def _text_codec(charset: str) -> str | None:
    """The codec name to decode text labelled ``charset`` with, or None if there is none."""
    name = charset.split("*", 1)[0].strip().lower()  # RFC 2231 adds "*language"
    name = _CHARSET_SUPERSETS.get(name, name)
    if len(name) > _MAX_CHARSET_NAME:
        return None
    try:
        codec = codecs.lookup(name).name
    except Exception:  # any label at all reaches here: unknown, or not a valid name at all
        return None
    return None if codec in _NOT_CHARSETS else name


def _decode_bytes(data: bytes, codec: str | None) -> str:
    """Decode an encoded word's bytes with its charset's codec, guessing when there is none."""
    if codec is None:
        return _decode_unlabelled(data)
    try:
        return data.decode(codec, "replace")
    except Exception:  # a codec that is not a text codec ("base64") reaches here
        return _decode_unlabelled(data)


def _decode_unlabelled(data: bytes) -> str:
    """Decode bytes whose charset is unknown: UTF-8 if they are valid UTF-8, else cp1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _decode_payload(encoding: str, text: str) -> bytes | None:
    """Return the bytes of an encoded word's payload, or None if it is not decodable base64."""
    if encoding in "qQ":
        data = text.replace("_", " ").encode("utf-8", "replace")
        return _QP_ESCAPE.sub(lambda match: bytes([int(match.group(1), 16)]), data)
    # Postel: drop characters outside the alphabet, drop an impossible last sextet, re-pad.
    alphabet = _NOT_BASE64.sub("", text)
    if len(alphabet) % 4 == 1:
        alphabet = alphabet[:-1]
    try:
        return binascii.a2b_base64(alphabet + "=" * (-len(alphabet) % 4))
    except binascii.Error:
        return None


def _decode_encoded_words(value: str) -> str:
    """Decode RFC 2047 encoded words anywhere in ``value``; never raises.

    Adjacent encoded words are joined without the whitespace between them, and consecutive
    words in one charset are decoded together, because encoders split multi-byte characters
    across words. An undecodable word is kept as it was written. Only the first
    ``_MAX_CHARSETS`` charsets named in the value are looked up; words in any further one are
    decoded as unlabelled bytes.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None
    codec_of: dict[str, str | None] = {}

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            if pending_charset not in codec_of:
                known = len(codec_of) < _MAX_CHARSETS
                codec_of[pending_charset] = _text_codec(pending_charset) if known else None
            out.append(_decode_bytes(bytes(pending), codec_of[pending_charset]))
        pending.clear()
        pending_charset = None

    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        position = match.end()
        payload = _decode_payload(match.group(2), match.group(3))
        if payload is None:
            flush()
            out.append(between + match.group(0))
            continue
        if between and not (between.isspace() and pending_charset is not None):
            flush()
            out.append(between)
        charset = match.group(1).lower()
        if pending_charset is not None and charset != pending_charset:
            flush()
        pending.extend(payload)
        pending_charset = charset
    flush()
    out.append(value[position:])
    return "".join(out)


def _display_text(value: str) -> str:
    """Decode encoded words and collapse all runs of whitespace to one space."""
    return " ".join(_decode_encoded_words(value).split())


def _clean_id(token: str) -> str:
    """Remove whitespace a folding mail client may have put inside an id, and stray brackets."""
    return "".join(token.split()).strip("<>")


def _message_ids(values: list[str]) -> tuple[str, ...]:
    """Extract message ids in order, without duplicates, from References-like values.

    Real headers put comments, phrases and dates between ids, so only ``<...>`` tokens count;
    a value without any ``<`` (some clients drop the brackets) is read as bare ``local@domain``
    tokens, and a lone token without "@" as the id itself. Ids longer than
    ``MAX_TOKEN_LENGTH`` are dropped.
    """
    if not values:
        return ()
    tokens: list[str] = []
    for value in values:
        found = _ANGLE_TOKEN.findall(value)
        if not found and "<" not in value:
            # A bare id is a run between delimiters with an "@" inside it, not at either end.
            found = [token for token in _ID_DELIMITERS.split(value) if "@" in token[1:-1]]
            if not found:
                found = [_clean_id(token) for token in value.split(None, 1)[:1]]
        tokens.extend(found)
    # No token holds "<", so joining on it, dropping all whitespace at once and splitting
    # again cleans every token in three C-speed passes instead of one Python call each.
    cleaned = "".join("<".join(tokens).split()).split("<")
    return tuple(
        token for token in dict.fromkeys(cleaned) if token and len(token) <= MAX_TOKEN_LENGTH
    )


def _simple_addresses(value: str, limit: int) -> list[tuple[str, str]] | None:
    """Up to ``limit`` (name, address) pairs of a plain list such as ``Ann <a@x>, "B, C" <b@y>``;
    None when the value has comments, groups, escapes or anything else only the full parser
    reads. What this reads, it reads as the full parser does."""
    if _NEEDS_FULL_PARSER.search(value):
        return None
    if '"' in value:
        if value.count('"') % 2:
            return None
        parts = _LIST_PART.findall(value)
    else:
        parts = value.split(",")
    pairs: list[tuple[str, str]] = []
    for part in parts:
        stripped = part.strip()
        if not stripped:
            continue
        if '"' in stripped:
            quoted = _QUOTED_ADDRESS.fullmatch(stripped)
            if quoted is None:
                return None
            pairs.append((quoted.group(1), quoted.group(2)))
        else:
            match = _SIMPLE_ADDRESS.fullmatch(stripped)
            if match is None:
                return None
            name, bracketed, bare = match.groups()
            pairs.append(((name or "").strip(), bracketed or bare))
        if len(pairs) >= limit:
            break
    return pairs


def _named_addresses(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(decoded name, lowercase address) pairs of parsed ones: an address longer than
    ``MAX_TOKEN_LENGTH`` is dropped (its pair keeps the name, if it has one) and a name is cut
    to that length."""
    pairs: list[tuple[str, str]] = []
    for name, addr in parsed:
        address = "".join(addr.split()).strip("<>").lower()
        if address.startswith("@") or address.endswith("@"):
            address = ""
        if len(address) > MAX_TOKEN_LENGTH:
            address = ""
        if address or name:
            pairs.append((_display_text(name)[:MAX_TOKEN_LENGTH], address))
    return pairs


@lru_cache(maxsize=_CACHED_LISTS)
def _plain_pairs(value: str) -> tuple[tuple[str, str], ...] | None:
    """``_named_addresses`` of a short plain list, remembered; None when it is not plain."""
    parsed = _simple_addresses(value, MAX_ADDRESSES)
    return None if parsed is None else tuple(_named_addresses(parsed))


class _AddressReader:
    """Reads the address headers of one message, all sharing one budget of full-parser steps."""

    __slots__ = ("steps_left",)

    def __init__(self) -> None:
        self.steps_left = _ADDRESS_STEPS

    def pairs(self, values: list[str]) -> list[tuple[str, str]]:
        """Split address-list values into (decoded display name, lowercase address) pairs.

        At most ``MAX_ADDRESSES`` pairs; an address longer than ``MAX_TOKEN_LENGTH`` is dropped
        (its pair keeps the name, if it has one) and a name is cut to that length.
        """
        pairs: list[tuple[str, str]] = []
        for value in values:
            room = MAX_ADDRESSES - len(pairs)
            if room <= 0:
                break
            if len(value) <= _CACHED_LIST_CHARS and room >= len(value):
                # Too short to hold ``room`` addresses: the limit cannot cut it, so the result
                # is the value's own, and the same list (To: support@) comes in every message.
                cached = _plain_pairs(value)
                if cached is not None:
                    pairs.extend(cached)
                    continue
                parsed = None
            else:
                parsed = _simple_addresses(value, room)
            if parsed is None:
                parsed, self.steps_left = read_address_list(
                    value, limit=room, budget=self.steps_left
                )
            pairs.extend(_named_addresses(parsed))
        return pairs[:MAX_ADDRESSES]

    def of(self, values: list[str]) -> tuple[str, ...]:
        """Return the lowercase addresses in address-list values, in order, without duplicates."""
        if not values:
            return ()
        return tuple(dict.fromkeys(addr for _, addr in self.pairs(values) if addr))


def _parse_date(value: str | None) -> datetime | None:
    """Parse an RFC 5322 date (or, as a fallback, ISO 8601) into aware UTC; None if impossible."""
    if not value or not value.strip():
        return None
    parsed: datetime | None = _simple_date(value)
    if parsed is not None:
        return parsed
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    try:
        # "-0000" means "UTC, local zone unknown" (RFC 5322 3.3); the parser returns it naive.
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# The RFC 5322 form nearly all mail uses: "Tue, 24 Nov 2026 10:00:00 +0100" (day name and
# seconds optional), read directly; anything else goes to the stdlib parser.
_SIMPLE_DATE = re.compile(
    r"\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"\s+([+-])(\d{2})(\d{2})(?:\s+\([^()]*\))?\s*"
)


def _simple_date(value: str) -> datetime | None:
    match = _SIMPLE_DATE.fullmatch(value)
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    month_number = _MONTHS.get(month.lower())
    if (
        month_number is None
        or int(off_h) > 23
        or int(off_m) > 59
        or (sign == "-" and off_h == "00" and off_m == "00")
    ):
        return None  # an unknown month, or "-0000" ("zone unknown"): the full parser decides
    try:
        local = datetime(
            int(year), month_number, int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
    except ValueError:
        return None
    offset = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
    try:
        return local - timedelta(seconds=offset)
    except OverflowError:
        return None


def _return_path(value: str | None, addresses: _AddressReader) -> str | None:
    """Return the Return-Path address, "" for the null sender, or None if the header is absent.

    An empty value counts as the null sender: GMX writes "Return-Path: " on its bounces. A value
    with no readable address is kept as written, lowercase, cut to ``MAX_TOKEN_LENGTH``.
    """
    if value is None:
        return None
    compact = "".join(value.split())
    if not compact or compact.startswith("<>"):
        return ""
    found = addresses.of([value])
    return found[0] if found else compact.strip("<>").lower()[:MAX_TOKEN_LENGTH]


def _content_type(value: str | None) -> str:
    """Return the lowercase "type/subtype" of a Content-Type value, or "" if malformed."""
    if not value:
        return ""
    match = _CONTENT_TYPE.fullmatch("".join(value.split(";", 1)[0].split()).lower())
    return match.group(0) if match else ""
