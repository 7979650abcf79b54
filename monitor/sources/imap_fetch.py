"""FETCH of message headers and body starts, read straight from imaplib's reply lines.

imapclient turns a FETCH reply into Python values with a general lexer that handles every
IMAP form (nested lists, quoted strings, literals anywhere); on a first sync that costs more
CPU than everything replyclock then does with the message. A header fetch has one common
shape, which servers answer alike::

    * 12 FETCH (UID 40 INTERNALDATE "04-Dec-2026 10:00:00 +0000" BODY[HEADER.FIELDS (...)] {512}
    <512 bytes>)

Each message's reply is read here with two anchored regexes over the line (no backtracking
over the literal, which imaplib has already cut out), and INTERNALDATE's one standard form
without the stdlib date parser. A reply in any other form -- a value as a quoted string, an
item this module does not know, a message named twice, an unsolicited FETCH -- makes the
whole batch go through imapclient's own parser instead, so the result is the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import imapclient
from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import IMAPClientError
from imapclient.response_parser import parse_fetch_response

__all__ = ["FetchedMessage", "fetch_messages", "read_fetch_reply"]


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """What one FETCH returned for a message (None or b"" for what it did not return)."""

    uid: int
    internaldate: datetime | None = None  # with the server's offset, as imapclient gives it
    header: bytes = b""  # BODY[HEADER.FIELDS (...)]
    body: bytes | None = None  # BODY[TEXT]<0>: None when not asked or not sent
    gm_thread_id: int | None = None  # X-GM-THRID


# One simple item: an atom name, then a number, a quoted string without quotes or
# backslashes inside, or a list without nested lists or quotes ("FLAGS (\Seen)", "MODSEQ (12)").
_ITEM = rb'[A-Z][A-Z0-9.-]* (?:\d+|"[^"\\]*"|\([^()"]*\))'
_PREFIX = re.compile(
    rb"(\d+) \(((?:" + _ITEM + rb" )*)"
    rb"(BODY\[(?:HEADER\.FIELDS \([^()]*\)|TEXT)\](?:<0>)?) \{(\d+)\}"
)
_SUFFIX = re.compile(rb"((?: " + _ITEM + rb")*)\)")
_ITEMS = re.compile(rb'([A-Z][A-Z0-9.-]*) (\d+|"[^"\\]*"|\([^()"]*\))')
_INTERNALDATE = re.compile(
    rb"([ \d]\d)-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
        1,
    )
}
_ZONES: dict[bytes, timezone] = {}


def fetch_messages(
    client: imapclient.IMAPClient, uids: Sequence[int], items: Sequence[bytes | str]
) -> dict[int, FetchedMessage]:
    """``UID FETCH`` of ``items`` for ``uids`` in the open folder; the messages the server
    returned, by UID (unsolicited replies for other messages are dropped, as imapclient does).
    Raises imapclient's errors, as ``IMAPClient.fetch`` would."""
    if not uids:
        return {}
    names = " ".join(i.decode() if isinstance(i, bytes) else i for i in items).upper()
    imap = client._imap  # imaplib's public uid(): imapclient has no raw fetch
    typ, data = imap.uid("FETCH", ",".join(str(uid) for uid in uids), f"({names})")
    if typ != "OK":
        raise IMAPClientError(f"fetch failed: {data!r}")
    wanted = set(uids)
    return {uid: msg for uid, msg in read_fetch_reply(data).items() if uid in wanted}


def read_fetch_reply(data: list[Any]) -> dict[int, FetchedMessage]:
    """The messages in imaplib's FETCH reply lines, by UID."""
    if data == [None]:
        return {}
    fast = _read_common_shape(data)
    return fast if fast is not None else _read_with_imapclient(data)


def _read_common_shape(data: list[Any]) -> dict[int, FetchedMessage] | None:
    """Each message as a (line, literal) pair then the rest of its line; None otherwise."""
    found: dict[int, FetchedMessage] = {}
    if len(data) % 2:
        return None
    for index in range(0, len(data), 2):
        head, tail = data[index], data[index + 1]
        if not (isinstance(head, tuple) and len(head) == 2 and isinstance(tail, bytes)):
            return None
        line, literal = head
        prefix = _PREFIX.fullmatch(line)
        suffix = _SUFFIX.fullmatch(tail)
        if prefix is None or suffix is None or len(literal) != int(prefix.group(4)):
            return None
        uid = internaldate = thread = None
        for name, value in _ITEMS.findall(prefix.group(2) + suffix.group(1)):
            if name == b"UID":
                uid = int(value)
            elif name == b"INTERNALDATE":
                internaldate = _internaldate(value[1:-1])
            elif name == b"X-GM-THRID":
                thread = int(value)
        if uid is None or uid in found:
            return None
        if prefix.group(3).startswith(b"BODY[TEXT]"):
            found[uid] = FetchedMessage(uid, internaldate, b"", literal, thread)
        else:
            found[uid] = FetchedMessage(uid, internaldate, literal, None, thread)
    return found


def _internaldate(value: bytes) -> datetime | None:
    match = _INTERNALDATE.fullmatch(value)
    if match is None or (match.group(7) == b"-" and match.group(8, 9) == (b"00", b"00")):
        return _imapclient_internaldate(value)  # another form, or "-0000": zone unknown
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    month_number = _MONTHS.get(month)
    zone = _ZONES.get(sign + off_h + off_m)
    if zone is None:
        minutes = int(off_h) * 60 + int(off_m)
        if month_number is None or minutes >= 24 * 60:
            return _imapclient_internaldate(value)
        zone = timezone(timedelta(minutes=-minutes if sign == b"-" else minutes))
        _ZONES[sign + off_h + off_m] = zone
    if month_number is None:
        return _imapclient_internaldate(value)
    try:
        return datetime(
            int(year), month_number, int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:
        return _imapclient_internaldate(value)


def _imapclient_internaldate(value: bytes) -> datetime | None:
    try:
        parsed: datetime = parse_to_datetime(value, normalise=False)
    except (ValueError, OverflowError):
        return None
    return parsed


def _read_with_imapclient(data: list[Any]) -> dict[int, FetchedMessage]:
    """Any other reply, read by imapclient's general parser (times not made local)."""
    found: dict[int, FetchedMessage] = {}
    for uid, item in parse_fetch_response(data, False, True).items():
        received = item.get(b"INTERNALDATE")
        thread = item.get(b"X-GM-THRID")
        header = b""
        body: bytes | None = None
        for key, value in item.items():
            name = key.upper() if isinstance(key, bytes) else b""
            if name.startswith(b"BODY[HEADER"):
                header = bytes(value or b"")
            elif name.startswith(b"BODY[TEXT]"):
                body = bytes(value or b"")
        found[int(uid)] = FetchedMessage(
            int(uid),
            received if isinstance(received, datetime) else None,
            header,
            body,
            int(thread) if thread is not None else None,
        )
    return found
