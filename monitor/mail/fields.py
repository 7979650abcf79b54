"""Split a raw header block into the fields replyclock fetches, each value cut to its bound.

This is the first step of ``headers.parse_headers``, and the only one that sees the raw
block, so it is where outside input is bounded: at most ``MAX_HEADER_BYTES`` of the section
and ``MAX_FIELDS`` fields are read, and each value is cut to ``MAX_ID_LIST_BYTES`` (References,
In-Reply-To) or ``MAX_VALUE_BYTES`` (every other field). headers.py's docstring says why each
bound is what it is. One regex pass finds the fields, and it never backtracks.
"""

from __future__ import annotations

import re

__all__ = [
    "HEADER_FIELDS",
    "MAX_FIELDS",
    "MAX_HEADER_BYTES",
    "MAX_ID_LIST_BYTES",
    "MAX_VALUE_BYTES",
    "header_fields",
]

MAX_HEADER_BYTES = 256 * 1024
MAX_FIELDS = 1_000
MAX_ID_LIST_BYTES = 64 * 1024
MAX_VALUE_BYTES = 16 * 1024

HEADER_FIELDS: tuple[str, ...] = (
    # identity and threading
    "Message-ID", "In-Reply-To", "References", "Subject",
    # who wrote it, to whom, when
    "From", "Sender", "Reply-To", "To", "Cc", "Delivered-To", "Date",
    # bounces: null envelope sender, delivery reports, failed-recipient lists; and how the
    # body is encoded, to read the start of a customer's reply (is it only "Thanks!"?)
    "Return-Path", "Content-Type", "Content-Transfer-Encoding", "X-Failed-Recipients",
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
# The usual spellings of the names, looked up before lowercasing any other.
_NAMES = {
    spelled.encode("ascii"): name.lower()
    for name in (*HEADER_FIELDS, "Message-Id")
    for spelled in (name, name.lower(), name.upper())
}


def _trie(words: list[str]) -> str:
    """A regex for exactly ``words``, nested by shared prefixes ("re(?:ferences|ply-to)").

    A line that starts no fetched field is then turned away after a character or two, instead
    of being tried against each of the 28 names in turn: half the time on a block of junk lines.
    """
    rests: dict[str, list[str]] = {}
    for word in words:
        if word:
            rests.setdefault(word[0], []).append(word[1:])
    branches = [re.escape(first) + _trie(rest) for first, rest in sorted(rests.items())]
    ends_here = "" in words
    if not branches or (len(branches) == 1 and not ends_here):
        return "".join(branches)
    return "(?:" + "|".join(branches) + ")" + ("?" if ends_here else "")


# One fetched field at the start of a line (the block is read with a line break put in front):
# its name, the obsolete "Name :" form allowed, and its value with every folded line (a line
# break followed by a space or tab). Each part stops at a character the next one cannot start
# with, and the repeats are possessive, so a match never backtracks: one pass over the block.
_FIELD = re.compile(
    rb"[\r\n]("
    + _trie(sorted(_WANTED)).encode("ascii")
    + rb")[ \t]*:([^\r\n]*+(?:(?:\r\n?|\n)[ \t][^\r\n]*+)*+)",
    re.IGNORECASE,
)
# What separates bare ids (ids written without <>): a cut through a list of them stops at one.
_ID_DELIMITER_BYTES = (b" ", b"\t", b"\r", b"\n", b"<", b">", b",", b";", b"(", b")", b'"')


def _header_end(data: bytes) -> int:
    """Where the header section ends: at the first blank line (CRLF, LF or CR), else the end."""
    end = len(data)
    for blank in (b"\r\n\r\n", b"\n\n", b"\r\r"):  # each looked for only before the first found
        found = data.find(blank, 0, end + len(blank) - 1)
        if found >= 0:
            end = found
    return end


def header_fields(data: bytes) -> list[tuple[str, bytes]]:
    """Split the header section into the fetched fields: (lowercase name, raw value), bounded.

    Folded lines stay in the value (the decoding removes the line breaks). A line that is not
    a fetched field -- another header, an mbox "From " separator, or garbage -- is skipped with
    its continuation lines instead of ending the section (the stdlib parser stops there and
    loses every header after it), and the obsolete "Name :" form (RFC 5322 4.5) is read as
    "Name:". Doing this split here also spares the stdlib feed parser, the slowest part of a
    first sync of a large mailbox. At most ``MAX_HEADER_BYTES`` and ``MAX_FIELDS`` are read,
    and each value is cut to its bound.
    """
    head = data[:MAX_HEADER_BYTES]
    end = _header_end(head)
    cut_short = end == len(head) < len(data)  # the bound, not a blank line, ended the section
    section = b"\n" + head[:end]  # never split a whole body
    found: list[tuple[str, bytes]] = []
    names = _NAMES
    for match in _FIELD.finditer(section):
        spelled, value = match.group(1, 2)
        name = names.get(spelled) or spelled.decode("ascii").lower()
        if cut_short and match.end() == len(section):
            value = _whole_end(name, value)
        if len(value) > MAX_VALUE_BYTES:  # the smallest bound: shorter values are kept whole
            value = _bounded_value(name, value)
        found.append((name, value))
        if len(found) >= MAX_FIELDS:
            break
    return found


def _bounded_value(name: str, value: bytes) -> bytes:
    """Cut a raw field value to its bound (see the module docstring); short values are kept."""
    if name == "references":
        return _cut_id_list(value, MAX_ID_LIST_BYTES, keep_end=True)
    if name == "in-reply-to":
        return _cut_id_list(value, MAX_ID_LIST_BYTES, keep_end=False)
    if name == "message-id":
        return _cut_id_list(value, MAX_VALUE_BYTES, keep_end=False)
    if len(value) <= MAX_VALUE_BYTES:
        return value
    return _whole_utf8(value[:MAX_VALUE_BYTES])


def _whole_end(name: str, value: bytes) -> bytes:
    """Drop what a cut at the end of ``value`` may have left half: an id, or a character."""
    if name in ("references", "in-reply-to", "message-id"):
        return _ids_before_cut(value, bracketed=b"<" in value)
    return _whole_utf8(value)


def _whole_utf8(value: bytes) -> bytes:
    """Drop a UTF-8 character that a cut left incomplete at the end of ``value``.

    So a cut value decodes as UTF-8 exactly when the whole value did.
    """
    for back in range(1, min(4, len(value)) + 1):
        byte = value[-back]
        if (byte & 0xC0) != 0x80:  # not a continuation byte: ASCII, or where a character starts
            length = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return value[:-back] if length > back else value
    return value


def _cut_id_list(value: bytes, limit: int, *, keep_end: bool) -> bytes:
    """Cut a list of message ids to ``limit`` bytes: its start, and with ``keep_end`` its end.

    The cut drops the id it went through, so no part of an id is read as an id, and a part
    of the start and a part of the end are never read together as one id.
    """
    if len(value) <= limit:
        return value
    bracketed = b"<" in value  # the reading in _message_ids decides the same way
    size = limit // 2 if keep_end else limit
    start = _ids_before_cut(value[:size], bracketed=bracketed)
    if not keep_end:
        return start
    # One byte of the limit goes to the space between the two parts.
    tail = value[len(value) - (limit - size - 1) :]
    return start + b" " + _ids_after_cut(tail, bracketed=bracketed)


def _ids_before_cut(chunk: bytes, *, bracketed: bool) -> bytes:
    """The start of ``chunk`` up to the end of its last whole id (a cut is at its end)."""
    if bracketed:
        return chunk[: chunk.rfind(b">") + 1]
    return chunk[: max(chunk.rfind(mark) for mark in _ID_DELIMITER_BYTES) + 1]


def _ids_after_cut(chunk: bytes, *, bracketed: bool) -> bytes:
    """The rest of ``chunk`` from the start of its first whole id (a cut is at its start)."""
    if bracketed:
        first = chunk.find(b"<")
    else:
        found = [i for i in (chunk.find(mark) for mark in _ID_DELIMITER_BYTES) if i >= 0]
        first = min(found, default=-1)
    return chunk[first:] if first >= 0 else b""
