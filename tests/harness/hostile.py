"""Hostile mail for the fault suite: Hypothesis strategies for header blocks that once froze
the daemon (huge ids without "@", megabyte References) and the rest of what broken or
malicious senders produce: 8-bit bytes, NUL, broken encoded words, absurd dates, thousands
of addresses, no header at all."""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = (
    b"Message-ID", b"In-Reply-To", b"References", b"Subject", b"From", b"Sender",
    b"Reply-To", b"To", b"Cc", b"Date", b"Return-Path", b"Content-Type", b"Auto-Submitted",
    b"Precedence", b"List-Id", b"X-Priority", b"X-Made-Up",
)  # fmt: skip
JUNK = st.binary(min_size=1, max_size=12).map(
    lambda chunk: chunk.replace(b"\r", b"").replace(b"\n", b"")
) | st.sampled_from([b"a", b"<", b"@", b"=?", b"?=", b"\x00", b"\xff\xfe", b",", b'"', b"("])


@st.composite
def hostile_value(draw: st.DrawFn, huge: bool) -> bytes:
    """One header value: a long run of junk, many ids or addresses, a broken encoded word or
    an impossible date; with ``huge``, up to about a megabyte."""
    most = 60_000 if huge else 400
    kind = draw(st.sampled_from(["junk", "ids", "addresses", "encoded", "date", "8bit"]))
    count = draw(st.integers(1, most))
    if kind == "junk":
        return (
            draw(JUNK).replace(b"\x00", b"") * count
            if draw(st.booleans())
            else (draw(JUNK) * count)
        )
    if kind == "ids":
        return b" ".join(b"<%d.x%d@example.org>" % (i, count) for i in range(count // 4 + 1))
    if kind == "addresses":
        return b", ".join(b"User %d <u%d@example.org>" % (i, i) for i in range(count // 8 + 1))
    if kind == "encoded":
        return (
            b"=?"
            + draw(st.sampled_from([b"utf-8", b"x-nope", b"base64", b""]))
            + b"?B?"
            + (b"////" * count)
        )
    if kind == "date":
        return draw(
            st.sampled_from(
                [
                    b"Mon, 99 Foo 99999 99:99:99 +9999",
                    b"Tue, 1 Jan 1 00:00:00 -0000",
                    b"Fri, 31 Dec 9999 23:59:59 -2359",
                    b"yesterday",
                    b"",
                ]
            )
        )
    return bytes(range(128, 256)) * (count // 64 + 1)


@st.composite
def hostile_message(draw: st.DrawFn, n: int) -> bytes:
    """A message of hostile headers (a huge one for every 25th ``n``), numbered ``n``."""
    huge = n % 25 == 0
    lines = [
        draw(st.sampled_from(NAMES)) + b": " + draw(hostile_value(huge=huge and i == 0))
        for i in range(draw(st.integers(0, 6)))
    ]
    if draw(st.booleans()):  # most such mail still says who it is from
        lines.append(b"From: Mallory %d <mallory%d@evil.example>" % (n, n))
    if n % 50 == 1:  # the case: a 100,000-character Message-ID without "@"
        lines.insert(0, b"Message-ID: " + b"x" * 100_000)
    if n % 50 == 2:  # and a megabyte of References
        lines.insert(
            0, b"References: " + b" ".join(b"<r%d@example.org>" % i for i in range(50_000))
        )
    return b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
