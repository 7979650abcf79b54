"""Tests of the pure mail layer, and the real-world corpora they read.

The corpora live in ``tests/data`` as byte-for-byte copies (see each SOURCE.txt):
``sisimai`` -- 629 bounces and auto-replies (maildir/bsd), 3 non-bounces (maildir/not), an mbox;
``notmuch`` -- 275 real mailing-list and threading-test messages.
"""

from __future__ import annotations

import mailbox
from functools import cache
from pathlib import Path

from monitor.mail.headers import ParsedHeaders, parse_headers

DATA = Path(__file__).resolve().parent.parent / "data"
SISIMAI = DATA / "sisimai"
NOTMUCH = DATA / "notmuch"
_NOT_MESSAGES = frozenset({"SOURCE.txt", "LICENSE", "COPYING", "README", "README.md"})


def message_files(root: Path) -> list[Path]:
    """Every message file under ``root``, sorted, without the provenance and licence files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _NOT_MESSAGES)


SISIMAI_BOUNCES = message_files(SISIMAI / "maildir" / "bsd")
SISIMAI_NOT_BOUNCES = message_files(SISIMAI / "maildir" / "not")
SISIMAI_MBOX = SISIMAI / "mailbox" / "mbox-0"
NOTMUCH_MESSAGES = message_files(NOTMUCH)


def corpus_id(path: Path) -> str:
    """A short, readable test id for a corpus file: its path inside tests/data."""
    return str(path.relative_to(DATA))


@cache
def parsed(path: Path) -> ParsedHeaders:
    """Parse one corpus file once per test session."""
    return parse_headers(path.read_bytes())


def mbox_messages() -> list[bytes]:
    """The raw messages of the sisimai mbox, each with its "From " line stripped by mailbox."""
    box = mailbox.mbox(SISIMAI_MBOX, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()
