"""Closing-message decisions on hostile bodies: time per doubling of size, beside real-looking ones.

Times ``closing_message`` (plain text and HTML) and ``extract_message_text`` (MIME) on inputs of
16, 32, 64, 128 and 256 KB for each pathological pattern (long lines, no newlines, many ">"
lines, 16 KB of "On x wrote:"-like lines, header look-alikes, unclosed HTML, thousands of MIME
parts, ...), and in the same run on a real-looking message of the same size (a top-posted
"Thanks!" above a long Gmail quote; an Outlook HTML reply; a multipart/mixed with an attachment),
the baseline. Two passes:

* bounded, as the daemon runs: every time is flat past the caps (MAX_TEXT_CHARS 16 KiB,
  MAX_HTML_CHARS 64 KiB, MAX_BODY_BYTES 256 KiB); reported, the longest single call;
* unbounded, the caps lifted and ``reply_text`` walking every line (no early verdict): the
  scanner itself is linear, so time grows ~2x per doubling, as the baseline's does.

With ``--libraries`` (and mail-parser-reply / quotequail importable, e.g. from a scratch
virtualenv on PYTHONPATH) it also times the two candidate libraries on 1-4 KB of the patterns
that made them blow up, the evidence for writing the scanner by hand.

    python bench/closers.py [--repeat 5] [--libraries]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
import itertools
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from unittest import mock

from monitor.mail import closers
from monitor.mail.closers import closing_message, extract_message_text, reply_text

SIZES = (16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024)
LIFTED = 1 << 40


def fill(unit: str, size: int) -> str:
    """``unit`` repeated to exactly ``size`` characters."""
    return (unit * (size // len(unit) + 1))[:size]


QUOTE_LINE = (
    "> We have looked into the export and found that the scheduled job stopped on Monday.\n"
)


def realistic_text(size: int) -> str:
    """A top-posted thank-you above a Gmail intro and a long quoted thread."""
    head = (
        "Thanks a lot!\n\nAnna\n\nOn Mon, 1 Dec 2026 at 10:00, Support <support@example.com> "
        "wrote:\n\n"
    )
    return head + fill(QUOTE_LINE, size - len(head))


def realistic_html(size: int) -> str:
    """An Outlook-style HTML reply: a style block, the reply, a header block, the history."""
    head = (
        "<html><head><style>p.MsoNormal{margin:0cm;font-family:Calibri}</style></head><body>"
        "<p class=MsoNormal>Thanks a lot!<o:p></o:p></p><p class=MsoNormal>Anna</p>"
        "<div style='border:none;border-top:solid #E1E1E1 1.0pt'><p><b>From:</b> Support "
        "&lt;support@example.com&gt;<br><b>Sent:</b> Monday<br><b>To:</b> Anna<br>"
        "<b>Subject:</b> RE: Export</p></div>"
    )
    para = "<p class=MsoNormal>We have looked into the export and found the job stopped.</p>\n"
    return head + fill(para, size - len(head) - 14) + "</body></html>"


def realistic_mime(size: int) -> bytes:
    """multipart/mixed: a plain and an HTML alternative, then a base64 PDF filling the size."""
    text = realistic_text(2048).replace("\n", "\r\n").encode()
    alternative = (
        b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
        b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Thanks a lot!</p>\r\n"
        b"--alt--\r\n"
    )
    head = (
        b"--mix\r\nContent-Type: multipart/alternative; boundary=alt\r\n\r\n" + alternative + b""
        b"--mix\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Disposition: attachment; filename=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    pdf = base64.encodebytes(b"%PDF-1.4 " * (size // 9)).replace(b"\n", b"\r\n")
    return (head + pdf)[: size - 9] + b"\r\n--mix--"


TEXT_CASES: dict[str, Callable[[int], str]] = {
    "baseline: thanks above a long quote": realistic_text,
    "one long line of words": lambda n: fill("word ", n),
    "no newlines at all": lambda n: "x" * n,
    "many '>' lines": lambda n: fill(">\n", n),
    "one line of '>'": lambda n: ">" * n,
    "quote lines and blank runs": lambda n: "Thanks\n" + fill("> x\n\n\n", n),
    "'On x wrote:' lines": lambda n: fill("On x wrote:\n", n),
    "'On 1 Dec 2026, x wrote:' lines": lambda n: fill("On 1 Dec 2026, x wrote:\n", n),
    "unfinished intros, 3-line joins": lambda n: fill("On 1 Dec 2026, a <a@b.c>\n", n),
    "'Am schrieb schrieb ...' (mpr: cubic)": lambda n: "Am " + fill("schrieb ", n),
    "'2020/1/1 <@<@...' (quotequail: cubic)": lambda n: "2020/1/1 " + fill(" <@", n),
    "'From:' lines": lambda n: fill("From: x\n", n),
    "'From:' 'Sent:' pairs (windows)": lambda n: fill("From: x\nSent: y\n", n),
    "newlines only": lambda n: "\n" * n,
    "whitespace lines": lambda n: fill(" \t\n", n),
    "'--' lines": lambda n: fill("--\n", n),
    "short lines after a signature": lambda n: "Thanks\n--\n" + fill("x\n", n),
    "'1:' lines": lambda n: fill("1:\n", n),
    "intro and quote pairs": lambda n: fill("On 1 Dec 2026 a <a@b.c> wrote:\n> q\n", n),
    "'Sent from my x' lines": lambda n: fill("Sent from my x\n", n),
    "emoji lines": lambda n: "Thanks\n" + fill("🙏\n", n),
    "Disclaimer: mail a mail a ...": lambda n: "Disclaimer: " + fill("mail a ", n),
}  # fmt: skip
HTML_CASES: dict[str, Callable[[int], str]] = {
    "baseline: Outlook HTML reply": realistic_html,
    "only '<'": lambda n: "<" * n,
    "many tags": lambda n: fill("<a>", n),
    "unclosed comment": lambda n: "Danke<!--" + "x" * n,
    "unclosed style": lambda n: "<style>" + "x" * n,
    "nested blockquotes": lambda n: "Merci" + fill("<blockquote>", n),
    "entities": lambda n: fill("&amp;", n),
    "one text run": lambda n: fill("word ", n),
}
MIME_CASES: dict[str, Callable[[int], bytes]] = {
    "baseline: mixed with a PDF": realistic_mime,
    "thousands of empty parts": lambda n: (b"--b\r\n\r\nx\r\n" * (n // 11 + 1))[:n],
    "boundary look-alikes": lambda n: (b"--bx\r\n" * (n // 6 + 1))[:n],
    "nested multiparts": lambda n: b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(n // 50)
    )[:n],
    "part headers without end": lambda n: (b"--b\r\nX-A: " + b"a" * n)[:n],
    "base64 junk": lambda n: b"!" * n,
}
MIME_TYPE = {"base64 junk": "text/plain"}


@contextlib.contextmanager
def bounds_lifted() -> Iterator[None]:
    """Lift the caps of closers.py for the duration, to time the scanner alone."""
    with mock.patch.multiple(
        closers, MAX_TEXT_CHARS=LIFTED, MAX_HTML_CHARS=LIFTED, MAX_BODY_BYTES=LIFTED
    ):
        yield


def timed(work: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``work``."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append(time.perf_counter() - started)
    return runs


class Longest:
    """The longest run seen so far, and which case and size it was."""

    def __init__(self) -> None:
        self.seconds, self.where = 0.0, ""

    def add(self, runs: list[float], name: str, size: int) -> None:
        if max(runs) > self.seconds:
            self.seconds, self.where = max(runs), f"{name}, {size // 1024} KB"

    def __str__(self) -> str:
        return f"{self.seconds * 1000:7.2f} ms  ({self.where})"


def print_header(title: str) -> None:
    sizes = " ".join(f"{size // 1024:>6} KB" for size in SIZES)
    print(f"\n{title:42} {sizes}   growth per doubling")


def print_row(name: str, medians: list[float]) -> None:
    times = " ".join(f"{t * 1000:>9.2f}" for t in medians)
    growth = " ".join(f"{b / a:>4.1f}" if a else "   -" for a, b in itertools.pairwise(medians))
    print(f"{name:42} {times}   {growth}", flush=True)


def work_for(kind: str, name: str, size: int, *, bounded: bool) -> Callable[[], object]:
    """The call to time: the verdict when bounded, the full line walk when unbounded."""
    if kind == "text":
        text = TEXT_CASES[name](size)
        return (lambda: closing_message(text)) if bounded else (lambda: reply_text(text))
    if kind == "html":
        markup = HTML_CASES[name](size)
        if bounded:
            return lambda: closing_message(markup, content_type="text/html")
        return lambda: reply_text(markup, content_type="text/html")
    body = MIME_CASES[name](size)
    ctype = MIME_TYPE.get(name, "multipart/mixed; boundary=" + ("b0" if "nested" in name else "b"))
    ctype = "multipart/mixed; boundary=mix" if name.startswith("baseline") else ctype
    encoding = "base64" if name == "base64 junk" else None
    return lambda: extract_message_text(
        body, content_type=ctype, transfer_encoding=encoding, truncated=True
    )


def run(repeat: int, *, bounded: bool) -> Longest:
    """Print one pass over every case and size; return its longest single call."""
    longest = Longest()
    closing_message("warm up: build the phrase sets once")
    label = "bounded (ms, median)" if bounded else "unbounded (ms, median)"
    for kind, cases in (("text", TEXT_CASES), ("html", HTML_CASES), ("mime", MIME_CASES)):
        print_header(f"{kind}: {label}")
        for name in cases:
            medians = []
            for size in SIZES:
                runs = timed(work_for(kind, name, size, bounded=bounded), repeat)
                medians.append(statistics.median(runs))
                longest.add(runs, f"{kind}: {name}", size)
            print_row(name, medians)
    return longest


LIBRARY_SIZES = (1024, 2048, 4096)
LIBRARY_CASES = {
    "'Am schrieb schrieb ...'": lambda n: "Am " + fill("schrieb ", n),
    "'Den skrev skrev ...'": lambda n: "Den " + fill("skrev ", n),
    "'2020/1/1 <@<@...'": lambda n: "2020/1/1 " + fill(" <@", n),
    "newlines only": lambda n: "\n" * n,
}


def libraries() -> None:
    """Time mail-parser-reply and quotequail on the patterns that blow them up, if installed."""
    found: dict[str, Callable[[str], object]] = {}
    with contextlib.suppress(ImportError):
        parser = importlib.import_module("mailparser_reply").EmailReplyParser(
            languages=["en", "de", "fr", "es", "nl", "sv"]
        )
        found["mail-parser-reply"] = parser.read
    with contextlib.suppress(ImportError):
        found["quotequail"] = importlib.import_module("quotequail").quote
    found["closers (ours)"] = reply_text
    for library, call in found.items():
        print(f"\n{library + ' (ms, one run)':42} " + " ".join(f"{s:>9} B" for s in LIBRARY_SIZES))
        for name, build in LIBRARY_CASES.items():
            times = []
            for size in LIBRARY_SIZES:
                text = build(size)
                started = time.perf_counter()
                call(text)
                times.append(time.perf_counter() - started)
            print(f"{name:42} " + " ".join(f"{t * 1000:>11.2f}" for t in times), flush=True)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("--repeat", type=int, default=5)
    arguments.add_argument("--libraries", action="store_true")
    options = arguments.parse_args()
    print(f"Python {sys.version.split()[0]} on {platform.machine()}, {platform.platform()}")
    started = time.perf_counter()
    closing_message("Thanks!")
    first = time.perf_counter() - started
    started = time.perf_counter()
    closing_message("Thanks!", extra_phrases=[f"phrase number {i}" for i in range(1000)])
    extra = time.perf_counter() - started
    print(f"first call (builds the phrase sets, once per process): {first * 1000:.1f} ms")
    print(f"first call with 1,000 new extra_phrases (cached per tuple): {extra * 1000:.1f} ms")
    longest = run(options.repeat, bounded=True)
    with bounds_lifted():
        run(options.repeat, bounded=False)
    print(f"\nlongest single bounded call: {longest}")
    if options.libraries:
        libraries()


if __name__ == "__main__":
    main()
