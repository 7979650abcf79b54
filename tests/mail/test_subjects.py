"""Subject normalization for the threading fallback: prefixes, tags, case, whitespace."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.mail.subjects import MAX_KEY_LENGTH, REPLY_FORWARD_PREFIXES, normalize_subject


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param("Invoice 2024-03 is wrong", "invoice 2024-03 is wrong", id="plain"),
        pytest.param("Re: Fwd: AW: WG: SV: VS: RE: Antw: Antwort: Réf: TR: RV: Fw: FW: Odp: Vá: "
                     "ΑΠ: 回复: 转发: 答复: 返信: Ynt: Login broken", "login broken",
                     id="many-languages-mixed"),
        pytest.param("Re[2]: Re(3): RE^4: Hello", "hello", id="counted-forms"),
        pytest.param("RE : TR : Réf. : Bonjour", "bonjour", id="french-spaces-and-dot"),
        pytest.param("回复\uff1a你好", "你好", id="full-width-colon"),
        pytest.param("\uff32\uff25\uff1a\uff34\uff45\uff53\uff54", "test", id="full-width-letters"),
        pytest.param("Re:Re:RE:no spaces", "no spaces", id="no-spaces"),
        pytest.param("İLT: Sipariş", "sipariş", id="turkish-dotted-capital"),
        pytest.param("[notmuch] Re: [PATCH 1/2] Fix it", "fix it", id="list-and-patch-tags"),
        pytest.param("Re: [Ticket #1234] Re: [#ABC-123] Refund", "refund", id="ticket-tags"),
        pytest.param("【重要】 Re: 請求書", "請求書", id="lenticular-tag"),
        pytest.param("[Fwd: Shipping delay]", "shipping delay", id="wrapped-old-forward"),
        pytest.param("Order #1234 missing", "order #1234 missing", id="ticket-number-in-text-kept"),
        pytest.param("Re: Refund [Ticket #99]", "refund", id="trailing-ticket-tag"),
        pytest.param("Re: Refund [draft]", "refund [draft]", id="trailing-plain-tag-kept"),
        pytest.param("Slides for Monday (fwd)", "slides for monday", id="trailing-fwd"),
        pytest.param("Re: Fwd: the Re: inside stays", "the re: inside stays", id="inner-re-kept"),
        pytest.param("Ref:  order\t 12\n 34", "order 12 34", id="whitespace-collapsed"),
        pytest.param("Straße", "strasse", id="casefold-not-lower"),
        pytest.param("Re: [notmuch]", "", id="only-decoration"),
        pytest.param("", "", id="empty"),
        pytest.param("Reply needed", "reply needed", id="prefix-word-without-colon-kept"),
        pytest.param("Automatic reply: Nyaan", "automatic reply: nyaan",
                     id="auto-reply-is-not-a-prefix"),
    ],
)  # fmt: skip
def test_normalize_subject(subject: str, expected: str) -> None:
    """Known decorations are stripped before the first word; the rest is folded, not changed."""
    assert normalize_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param("Re: " * 250_000, "", id="megabyte-of-prefixes"),
        pytest.param("x" * 1_000_000, "x" * MAX_KEY_LENGTH, id="megabyte-of-text"),
        pytest.param("[#1]" * 250_000, "", id="megabyte-of-ticket-tags"),
        pytest.param("[fwd: re:]" * 100_000, "", id="megabyte-of-wrapped-forwards"),
        pytest.param("x [" + "#" * 100_000 + "]", "x [" + "#" * (MAX_KEY_LENGTH - 3),
                     id="tag-of-hashes-without-a-digit"),
    ],
)  # fmt: skip
def test_long_subjects_are_capped(subject: str, expected: str) -> None:
    """A megabyte of prefixes, tags or text normalizes to a capped key (timed in bench/)."""
    assert normalize_subject(subject) == expected


def decorations() -> st.SearchStrategy[str]:
    """One known prefix or tag as a client would write it: any case, counted, full-width colon."""
    word = st.sampled_from(REPLY_FORWARD_PREFIXES)
    case = st.sampled_from([str.lower, str.upper, str.title])
    count = st.sampled_from(["", "[2]", "(3)", "^4", " [12]"])
    colon = st.sampled_from([":", " :", "\uff1a", ". :"])  # U+FF1A: full-width colon
    prefix = st.builds(lambda w, c, n, k: c(w) + n + k, word, case, count, colon)
    tag_text = st.sampled_from(["notmuch", "Ticket #1234", "#ABC-123", "PATCH 2/7", "EXTERNAL"])
    tag = st.builds(lambda t, b: b[0] + t + b[1], tag_text, st.sampled_from(["[]", "【】"]))
    return st.one_of(prefix, tag)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_idempotent(subject: str) -> None:
    """Normalizing a normalized subject changes nothing."""
    once = normalize_subject(subject)
    assert normalize_subject(once) == once


@settings(max_examples=400, deadline=None)
@given(st.lists(decorations(), min_size=1, max_size=4), st.text())
def test_known_prefixes_do_not_change_the_key(prefixes: list[str], subject: str) -> None:
    """Putting any run of known prefixes and tags in front of a subject keeps its key."""
    decorated = " ".join([*prefixes, subject])
    assert normalize_subject(decorated) == normalize_subject(subject)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_total_on_any_text(subject: str) -> None:
    """Any text, control characters and lone combining marks included, yields a short key."""
    assert len(normalize_subject(subject)) <= MAX_KEY_LENGTH
