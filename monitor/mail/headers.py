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
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime
from types import MappingProxyType

from monitor.model import require_utc

__all__ = ["HEADER_FIELDS", "ParsedHeaders", "message_identity", "parse_headers"]

HEADER_FIELDS: tuple[str, ...] = (
    # identity and threading
    "Message-ID", "In-Reply-To", "References", "Subject",
    # who wrote it, to whom, when
    "From", "Sender", "Reply-To", "To", "Cc", "Delivered-To", "Date",
    # bounces: null envelope sender, delivery reports, failed-recipient lists
    "Return-Path", "Content-Type", "X-Failed-Recipients",
    # auto-replies (RFC 3834, vendor markers) and bulk mail
    "Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
    # iCloud vacation replies carry no Auto-Submitted; this is their only header marker
    # (sisimai rfc3834-03.eml: "X-Apple-Action: VACATION").
    "X-Apple-Action",
    # mailing lists: RFC 2919/2369, plus the older markers some list servers still send alone:
    # Mailing-List (ezmlm, Google/Yahoo Groups), X-Mailing-List (vger, SmartList) and
    # X-MLServer (fml; sisimai lhost-fml-03.eml has no other list or bounce marker).
    "List-Id", "List-Unsubscribe", "Mailing-List", "X-Mailing-List", "X-MLServer",
    # priority, for rules
    "X-Priority", "Importance",
    # Gmail Takeout mbox exports mark sent mail with this label header (IMAP never has it)
    "X-Gmail-Labels",
)  # fmt: skip

_WANTED = frozenset(name.lower() for name in HEADER_FIELDS)
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_FIELD_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_ANGLE_TOKEN = re.compile(r"<([^<>]*)>")
_BARE_ID = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")
# The common address forms, read without the stdlib's character-by-character parser:
# "Name <local@domain>" and a bare "local@domain".
_SIMPLE_ADDRESS = re.compile(
    r"\s*(?:([^<>@,]*?)\s*<([^<>\s@,]+@[^<>\s@,]+)>|([^<>\s@,]+@[^<>\s@,]+))\s*"
)
_NEEDS_FULL_PARSER = re.compile(r'["()\\:;\[\]]')
_CONTENT_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
# Lenient on purpose: broken mailers put spaces inside Q-encoded text.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
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


def parse_headers(data: bytes) -> ParsedHeaders:
    """Parse a header block (or a whole message; the body is ignored) without ever raising.

    Accepts CRLF, LF or CR line ends, a leading mbox "From " line, and blocks with or without
    the terminating blank line. Repeated single-valued headers (Message-ID, From, Date, ...) use
    the first occurrence, which on delivered mail is the one the final server added or kept.
    """
    raw: dict[str, list[str]] = {}
    for name, value in _header_fields(data):
        key = name.lower()
        if key in _WANTED:
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

    from_pairs = _address_pairs(raw.get("from", [])[:1])
    from_name, from_addr = from_pairs[0] if from_pairs else ("", "")
    sender = _addresses(raw.get("sender", [])[:1])
    return ParsedHeaders(
        message_id=_first_message_id(first_raw("message-id")),
        in_reply_to=_message_ids(raw.get("in-reply-to", [])),
        references=_message_ids(raw.get("references", [])),
        subject=_display_text(first_raw("subject") or ""),
        from_addr=from_addr,
        from_name=from_name,
        sender_addr=sender[0] if sender else "",
        reply_to=_addresses(raw.get("reply-to", [])),
        to=_addresses(raw.get("to", [])),
        cc=_addresses(raw.get("cc", [])),
        delivered_to=_addresses(raw.get("delivered-to", [])),
        date=_parse_date(first_raw("date")),
        return_path=_return_path(first_raw("return-path")),
        content_type=_content_type(first_raw("content-type")),
        fields=MappingProxyType(
            {name: tuple(_display_text(v) for v in values) for name, values in raw.items()}
        ),
    )


def _header_end(data: bytes) -> int:
    """Where the header section ends: at the first blank line (CRLF, LF or CR), else the end."""
    ends = [i for i in (data.find(b"\n\n"), data.find(b"\r\n\r\n"), data.find(b"\r\r")) if i >= 0]
    return min(ends) if ends else len(data)


def _header_fields(data: bytes) -> list[tuple[str, bytes]]:
    """Split the header section into (name, raw value) pairs, folded lines joined.

    A line that is not a field -- an mbox "From " separator, or garbage -- is skipped with its
    continuation lines instead of ending the section (the stdlib parser stops there and loses
    every header after it), and the obsolete "Name :" form (RFC 5322 4.5) is read as "Name:".
    Doing this split here also spares the stdlib feed parser, the slowest part of a first
    sync of a large mailbox.
    """
    section = data[: _header_end(data)]  # never split a whole body
    found: list[tuple[str, bytes]] = []
    name: str | None = None
    parts: list[bytes] = []
    for line in _LINE_BREAK.split(section):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                parts.append(line)
            continue
        if name is not None:
            found.append((name, b"\n".join(parts)))
        field = _FIELD_NAME.match(line)
        if field is None:
            name = None
            continue
        name = field.group(1).decode("ascii")
        parts = [line[field.end() :]]
    if name is not None:
        found.append((name, b"\n".join(parts)))
    return found


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


def _decode_bytes(data: bytes, charset: str) -> str:
    """Decode an encoded word's bytes in its declared charset, guessing when that is unknown."""
    name = charset.split("*", 1)[0].strip().lower()  # RFC 2231 adds "*language"
    name = _CHARSET_SUPERSETS.get(name, name)
    try:
        return data.decode(name, "replace")
    except Exception:  # any label at all reaches here: unknown, or not a text codec ("base64")
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
    across words. An undecodable word is kept as it was written.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_charset: str | None = None

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(_decode_bytes(bytes(pending), pending_charset))
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


def _first_message_id(value: str | None) -> str | None:
    """Return the first id in a Message-ID value; a bare id without brackets is accepted."""
    ids = _message_ids([value]) if value is not None else ()
    return ids[0] if ids else None


def _message_ids(values: list[str]) -> tuple[str, ...]:
    """Extract message ids in order, without duplicates, from References-like values.

    Real headers put comments, phrases and dates between ids, so only ``<...>`` tokens count;
    a value without any ``<`` (some clients drop the brackets) is read as bare ``local@domain``
    tokens, and a lone token without "@" as the id itself.
    """
    found: list[str] = []
    for value in values:
        tokens = _ANGLE_TOKEN.findall(value)
        if not tokens and "<" not in value:
            tokens = _BARE_ID.findall(value) or value.split()[:1]
        found.extend(_clean_id(token) for token in tokens)
    return tuple(dict.fromkeys(token for token in found if token))


def _simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """(name, address) pairs of a plain list such as ``Ann <a@x>, b@y``; None when the value
    has quotes, comments, groups or anything else only the full parser reads correctly."""
    if _NEEDS_FULL_PARSER.search(value):
        return None
    pairs: list[tuple[str, str]] = []
    for part in value.split(","):
        match = _SIMPLE_ADDRESS.fullmatch(part)
        if match is None:
            if part.strip():
                return None
            continue
        name, bracketed, bare = match.groups()
        pairs.append(((name or "").strip(), bracketed or bare))
    return pairs


def _address_pairs(values: list[str]) -> list[tuple[str, str]]:
    """Split address-list values into (decoded display name, lowercase address) pairs."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        parsed = _simple_addresses(value)
        try:
            if parsed is None:
                parsed = getaddresses([value])
        except Exception:  # the stdlib parser has raised on odd input before
            parsed = []
        for name, addr in parsed:
            address = "".join(addr.split()).strip("<>").lower()
            if address.startswith("@") or address.endswith("@"):
                address = ""
            if address or name:
                pairs.append((_display_text(name), address))
    return pairs


def _addresses(values: list[str]) -> tuple[str, ...]:
    """Return the lowercase addresses in address-list values, in order, without duplicates."""
    if not values:
        return ()
    return tuple(dict.fromkeys(addr for _, addr in _address_pairs(values) if addr))


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


def _return_path(value: str | None) -> str | None:
    """Return the Return-Path address, "" for the null sender, or None if the header is absent.

    An empty value counts as the null sender: GMX writes "Return-Path: " on its bounces.
    """
    if value is None:
        return None
    compact = "".join(value.split())
    if not compact or compact.startswith("<>"):
        return ""
    addresses = _addresses([value])
    return addresses[0] if addresses else compact.strip("<>").lower()


def _content_type(value: str | None) -> str:
    """Return the lowercase "type/subtype" of a Content-Type value, or "" if malformed."""
    if not value:
        return ""
    match = _CONTENT_TYPE.fullmatch("".join(value.split(";", 1)[0].split()).lower())
    return match.group(0) if match else ""
