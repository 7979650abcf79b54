"""Hostile header blocks: parse time per doubling of size, beside a realistic block.

Times ``parse_headers`` on header blocks of n, 2n, 4n, 8n and 16n bytes (64 KB to 1 MB) for
each hostile pattern of issue 10 and the others the audit of monitor/mail found, and, in the
same run, on a realistic block of the same sizes (a long thread: folded References, a long
plain Cc list), the baseline. Two passes:

* bounded, as the daemon runs: past the bounds in monitor/mail every time is flat (growth ~1x
  per doubling). Reported: the longest single parse_headers and the longest whole message
  (parse, classify, subject key: what a poll does per message), target well under 50 ms, and
  the longest a second thread had to wait for the GIL meanwhile (what starved /healthz).
* unbounded, every bound lifted: the readers themselves are linear, so time grows ~2x per
  doubling, as the baseline's does.
* before: the regexes and stdlib calls that issue 10's code used, on 4 KB to 32 KB of the
  same input, in the same run: they grow ~4x per doubling (quadratic) or need far more time
  per byte.

    python bench/hostile_headers.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import getaddresses
from unittest import mock

from monitor.mail import fields, headers
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.mail.headers import parse_headers
from monitor.model import FolderRole

SIZES = (64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024)
RECEIVED = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
INBOX = FolderContext(
    source="support",
    folder="INBOX",
    role=FolderRole.INBOX,
    identity=MailboxIdentity(team_addresses=frozenset({"support@example.com"})),
)
REALISTIC_HEAD = (
    b"Message-ID: <CAF=reply.42@mail.example.org>\r\n"
    b"In-Reply-To: <CAF=parent.41@mail.example.org>\r\n"
    b"From: =?utf-8?q?Ren=C3=A9e_Customer?= <renee@example.org>\r\n"
    b"To: Support <support@example.com>\r\n"
    b"Subject: Re: [Ticket #4711] =?utf-8?q?Gr=C3=BC=C3=9Fe?= and an invoice question\r\n"
    b"Date: Thu, 03 Dec 2026 09:00:00 +0100\r\n"
    b"Content-Type: multipart/alternative; boundary=xyz\r\n"
)


def fill(unit: bytes, size: int) -> bytes:
    """``unit`` repeated to exactly ``size`` bytes."""
    return (unit * (size // len(unit) + 1))[:size]


def joined(template: bytes, separator: bytes, size: int) -> bytes:
    """Numbered items from ``template`` joined by ``separator``, about ``size`` bytes long."""
    items: list[bytes] = []
    total = 0
    while total < size:
        item = template.replace(b"%d", str(len(items)).encode())
        items.append(item)
        total += len(item) + len(separator)
    return separator.join(items)


def realistic(size: int) -> bytes:
    """A real-looking block grown to ``size``: a long thread's References and a big Cc list."""
    half = size // 2
    references = joined(b"<CAF=%d.thread@mail.example.org>", b"\r\n ", half)
    cc = joined(b"Person %d <person.%d@example.net>", b",\r\n ", size - half)
    return REALISTIC_HEAD + b"References: " + references + b"\r\nCc: " + cc + b"\r\n\r\n"


def field(name: bytes, value: bytes) -> bytes:
    """A one-field block (after the realistic head, so the message is otherwise ordinary)."""
    return REALISTIC_HEAD + name + b": " + value + b"\r\n\r\n"


# Each pattern: what it is, and a builder of a block of about the given size.
PATTERNS: dict[str, Callable[[int], bytes]] = {
    "Message-ID without @ (issue)": lambda n: field(b"Message-ID", fill(b"a", n)),
    "References of 1 MB ids (issue)": lambda n: field(
        b"References", joined(b"<%d.thread@example.org>", b" ", n)
    ),
    "References without @": lambda n: field(b"References", fill(b"a", n)),
    "In-Reply-To without @": lambda n: field(b"In-Reply-To", fill(b"a", n)),
    "References of only '<'": lambda n: field(b"References", fill(b"<", n)),
    "From: x, spaces, y": lambda n: field(b"From", b"x" + fill(b" ", n) + b"y"),
    "To: plain addresses": lambda n: field(b"To", joined(b"u%d@example.org", b", ", n)),
    "To: quoted names": lambda n: field(b"To", joined(b'"U, %d" <u%d@example.org>', b", ", n)),
    "To: nested '(' (stdlib recursion)": lambda n: field(b"To", fill(b"(", n)),
    "To: one big group": lambda n: field(b"To", b"g:" + joined(b"u%d@x.org", b",", n) + b";"),
    "To: only ';'": lambda n: field(b"To", fill(b";", n)),
    "To: words, no @": lambda n: field(b"To", fill(b"a ", n)),
    "Subject: made-up charsets": lambda n: field(b"Subject", joined(b"=?x%d?q?a?=", b" ", n)),
    "Subject: punycode word": lambda n: field(b"Subject", b"=?punycode?q?-" + fill(b"9", n)),
    "Subject: [fwd: re:] repeated": lambda n: field(b"Subject", fill(b"[fwd: re:]", n)),
    "Subject: 8-bit and NUL": lambda n: field(b"Subject", fill(b"\xc3\xa9\x00\xff", n)),
    "Date: garbage": lambda n: field(b"Date", b"Mon, 1 " + fill(b"1 ", n)),
    "many empty To: lines": lambda n: REALISTIC_HEAD + fill(b"To:\r\n", n) + b"\r\n",
    "many unfetched lines": lambda n: REALISTIC_HEAD + fill(b"X-A: b\r\n", n) + b"\r\n",
}  # fmt: skip

CASES: dict[str, Callable[[int], bytes]] = {"baseline: realistic block": realistic, **PATTERNS}
LIFTED = 1 << 40
BEFORE_SIZES = (4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024)
# What headers.py ran before issue 10, called as it called them.
OLD_BARE_ID = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")
OLD_SIMPLE_ADDRESS = re.compile(
    r"\s*(?:([^<>@,]*?)\s*<([^<>\s@,]+@[^<>\s@,]+)>|([^<>\s@,]+@[^<>\s@,]+))\s*"
)
BEFORE: dict[str, Callable[[int], Callable[[], object]]] = {
    "bare-id regex, Message-ID without @": lambda n: lambda: OLD_BARE_ID.findall("a" * n),
    "simple-address regex, x spaces y": lambda n: (
        lambda: OLD_SIMPLE_ADDRESS.fullmatch("x" + " " * n + "y")
    ),
    "getaddresses, one big group": lambda n: (
        lambda: getaddresses(["g:" + joined(b"u%d@x.org", b",", n).decode() + ";"])
    ),
    "getaddresses, only ';'": lambda n: lambda: getaddresses([";" * n]),
    "punycode decode of an encoded word": lambda n: (
        lambda: (b"-" + fill(b"9", n)).decode("punycode", "replace")
    ),
}


@contextlib.contextmanager
def bounds_lifted() -> Iterator[None]:
    """Lift every bound of fields.py and headers.py for the duration, to time the readers alone."""
    with (
        mock.patch.multiple(
            fields,
            MAX_HEADER_BYTES=LIFTED,
            MAX_FIELDS=LIFTED,
            MAX_ID_LIST_BYTES=LIFTED,
            MAX_VALUE_BYTES=LIFTED,
        ),
        mock.patch.multiple(
            headers,
            MAX_REFERENCES=LIFTED,
            MAX_ADDRESSES=LIFTED,
            MAX_TOKEN_LENGTH=LIFTED,
            _ADDRESS_STEPS=LIFTED,
            _MAX_CHARSETS=LIFTED,
        ),
    ):
        yield


class GilWatch:
    """A second thread that wakes every millisecond and keeps the longest wait for the GIL."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - 0.001)
            last = now

    def __enter__(self) -> GilWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(work: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``work``."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append(time.perf_counter() - started)
    return runs


def row(name: str, medians: list[float]) -> str:
    """One table row: the median time at each size, then the growth at each doubling."""
    times = " ".join(f"{t * 1000:>9.2f}" for t in medians)
    growth = " ".join(f"{b / a:>4.1f}" for a, b in itertools.pairwise(medians))
    return f"{name:36} {times}   {growth}"


def header_row() -> str:
    """The table's column titles."""
    sizes = " ".join(f"{size // 1024:>6} KB" for size in SIZES)
    return f"{'pattern (ms, median)':36} {sizes}   growth per doubling"


class Longest:
    """The longest of the runs seen so far, and which case and size it was."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.where = ""

    def add(self, runs: list[float], name: str, size: int) -> None:
        """Keep the longest of ``runs`` if it is the longest yet."""
        if max(runs) > self.seconds:
            self.seconds, self.where = max(runs), f"{name}, {size // 1024} KB"

    def __str__(self) -> str:
        return f"{self.seconds * 1000:7.2f} ms  ({self.where})"


def run(repeat: int, *, bounded: bool) -> tuple[Longest, Longest]:
    """Print one pass; return its longest parse and its longest whole message (bounded only)."""
    longest_parse, longest_event = Longest(), Longest()
    print(header_row())
    for name, build in CASES.items():
        medians = []
        for size in SIZES:
            block = build(size)
            runs = timed(lambda block=block: parse_headers(block), repeat)
            medians.append(statistics.median(runs))
            longest_parse.add(runs, name, size)
            if bounded:
                whole = timed(
                    lambda block=block: event_from_headers(INBOX, block, RECEIVED), repeat
                )
                longest_event.add(whole, name, size)
        print(row(name, medians), flush=True)
    return longest_parse, longest_event


def longest_gil_wait() -> float:
    """Parse every bounded case once at every size while a second thread keeps waking up."""
    blocks = [build(size) for build in CASES.values() for size in SIZES]
    with GilWatch() as watch:
        for block in blocks:
            event_from_headers(INBOX, block, RECEIVED)
    return watch.longest


def before() -> None:
    """Print how the code before issue 10 grew on the same kinds of input (one run each)."""
    sizes = " ".join(f"{size // 1024:>6} KB" for size in BEFORE_SIZES)
    print(f"{'before issue 10 (ms)':36} {sizes}   growth per doubling")
    for name, make in BEFORE.items():
        medians = [timed(make(size), 1)[0] for size in BEFORE_SIZES]
        print(row(name, medians), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"Hostile header blocks ({machine})\n")
    print("Bounded, as the daemon parses:")
    parse_s, event_s = run(args.repeat, bounded=True)
    gil_s = longest_gil_wait()
    print(f"\nlongest single parse_headers:             {parse_s}")
    print(f"longest whole message (parse + classify): {event_s}")
    print(f"longest GIL wait of a second thread:      {gil_s * 1000:7.2f} ms")
    verdict = "met" if event_s.seconds < 0.050 else "NOT met"
    print(f"target: every message well under 50 ms -> {verdict}\n")
    print("Unbounded (every bound lifted), to show the readers themselves are linear:")
    with bounds_lifted():
        run(max(args.repeat // 2, 1), bounded=False)
    print("\nBefore issue 10, the same kinds of input on the old regexes and stdlib calls:")
    before()
    return 0


if __name__ == "__main__":
    sys.exit(main())
