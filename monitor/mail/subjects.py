"""Reduce an email subject to the key the threading fallback compares.

When a reply carries no usable In-Reply-To or References, threading falls back to "same customer,
same subject". Mail clients decorate the subject of every reply and forward ("Re:", "AW:",
"回复:", "Re[2]:") and lists and helpdesks add tags ("[notmuch]", "[Ticket #1234]"), so the key
is the subject with all of that removed, case-folded and with whitespace collapsed.

Decisions:
* Reply/forward prefixes and bracketed tags are removed only before the first real word: a
  ticket number inside the text ("Order #1234 missing") is content and stays.
* A trailing ticket tag such as "[#123]" or "[Ticket #1234]" is removed too, because some
  helpdesks append their tag instead of prepending it; other trailing brackets stay.
* A subject that is only prefixes and tags normalizes to "" -- callers treat "" as "no key".
* The key is capped at ``MAX_KEY_LENGTH`` characters so a hostile subject cannot blow up storage.
* Every step is linear in the subject's length: the leading run is one regex match, at most
  ``_MAX_UNWRAPS`` wrapped forwards are unwrapped per round (each copies the rest of the
  subject; real subjects have one or two, never dozens), and the trailing pass works on the
  capped key only.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_KEY_LENGTH", "REPLY_FORWARD_PREFIXES", "normalize_subject"]

MAX_KEY_LENGTH = 500

# Case-folded, NFKC-normalized words that mail clients put before a colon on replies and
# forwards, after Wikipedia's "List of email subject abbreviations" and what real clients send.
REPLY_FORWARD_PREFIXES: tuple[str, ...] = (
    # English and international
    "re", "fw", "fwd",
    # German: Antwort / weitergeleitet
    "aw", "antwort", "wg",
    # Dutch: antwoord / doorgestuurd
    "antw", "doorst",
    # Danish, Norwegian, Swedish, Icelandic: svar / videresendt / vidarebefordrat / framsent
    "sv", "vs", "vb", "fs",
    # Finnish: vastaus / välitetty
    "vl",
    # French: référence / transféré; Italian: riferimento, risposta / inoltrato
    "réf", "ref", "tr", "rif", "r", "i",
    # Spanish: reenviado; Portuguese: resposta / encaminhado
    "rv", "res", "enc",
    # Polish: odpowiedź / przekaż dalej; Czech: odpověď / přeposlat; Croatian, Serbian: odgovor
    "odp", "pd", "př", "odg",
    # Hungarian: válasz / továbbítás
    "vá", "tov",
    # Turkish: yanit / iletildi (upper-case dotted "ILT" case-folds to "i" + combining dot)
    "ynt", "ilt", "i̇lt",
    # Latvian, Lithuanian, Welsh, Indonesian, Malay
    "atb", "pārs", "ats", "pers", "persiųsta", "yml", "bls", "trs",
    # Greek: απάντηση / σχετικά / προώθηση
    "απ", "σχετ", "πρθ",
    # Ukrainian (Outlook): відповідь / переслано
    "відп", "пересл",
    # Hebrew, Arabic
    "השב", "הועבר", "رد", "إعادة توجيه",
    # Chinese (simplified, traditional), Japanese, Korean
    "回复", "答复", "转发", "回覆", "答覆", "轉寄", "轉發", "返信", "転送", "회신", "답장", "전달",
)  # fmt: skip

_PREFIX_WORDS = "|".join(
    re.escape(word) for word in sorted(REPLY_FORWARD_PREFIXES, key=len, reverse=True)
)
# One reply/forward prefix: the word, an optional count ("Re[2]:", "Re(3):", "Re^4:"), an
# optional dot ("Réf. :") and the colon; French typography puts a space before the colon.
_PREFIX = rf"(?:{_PREFIX_WORDS})\s?(?:\[[0-9]+\]|\([0-9]+\)|\^[0-9]+)?\s?\.?\s?:"
# A bracketed tag before the first word: list names, ticket tags, "【重要】". A bracket that
# opens with a prefix is an old-style wrapped forward ("[Fwd: subject]"), unwrapped instead.
_TAG = rf"(?:\[(?!\s?{_PREFIX})[^\[\]]*\]|【[^【】]*】)"
# The whole leading run in one match, so "re: re: re: ..." costs one linear pass, not n passes.
_LEADING_RUN = re.compile(rf"(?:\s?(?:{_PREFIX}|{_TAG}))+\s?")
# An old-style forward that wraps the whole subject: "[Fwd: original subject]".
_WRAPPED_FORWARD = re.compile(rf"\[\s?({_PREFIX}[^\[\]]*)\]")
_DIGIT = re.compile(r"[0-9]")
# Unwrapping builds a new string, so unbounded unwrapping would be quadratic on a subject made
# of "[fwd: re:]" repeated. Four more rounds run on the capped key (at most 125 wrapped
# forwards fit in MAX_KEY_LENGTH characters), so the result is still a fixed point.
_MAX_UNWRAPS = 64


def normalize_subject(subject: str) -> str:
    """Return the threading key of a subject: no reply/forward prefixes or tags, case-folded.

    Idempotent, total (never raises on any ``str``) and insensitive to any leading run of the
    prefixes and tags it knows.
    """
    key = _normalize_once(subject)
    # Case folding and NFKC do not commute in every corner of Unicode; a few more rounds make
    # the result a fixed point, which is what keeps the function idempotent.
    for _ in range(4):
        again = _normalize_once(key)
        if again == key:
            break
        key = again
    return key


def _fold(text: str) -> str:
    """Case-fold and NFKC-normalize (a full-width colon becomes ":") until the text is stable."""
    if text.isascii():  # NFKC keeps ASCII as it is, and case-folds it as lower() does
        return " ".join(text.lower().split())
    folded = text
    for _ in range(4):
        nxt = unicodedata.normalize("NFKC", folded.casefold())
        if nxt == folded:
            break
        folded = nxt
    return " ".join(folded.split())


def _normalize_once(subject: str) -> str:
    """Run one round of folding, leading-run removal, truncation and trailing-tag removal."""
    text = _fold(subject)
    unwraps = 0
    while True:
        unwrapped = _WRAPPED_FORWARD.match(text) if unwraps < _MAX_UNWRAPS else None
        if unwrapped is not None:
            text = (unwrapped.group(1) + text[unwrapped.end() :]).strip()
            unwraps += 1
            continue
        leading = _LEADING_RUN.match(text)
        if leading is None or leading.end() == 0:
            break
        text = text[leading.end() :]
    # Truncate before the trailing pass so that pass is bounded by the cap, not the input size.
    text = text[:MAX_KEY_LENGTH].rstrip()
    while True:
        shorter = _strip_trailing_tag(text)
        if shorter == text:
            break
        text = shorter
    return text.strip()


def _strip_trailing_tag(text: str) -> str:
    """Remove one trailing "(fwd)" or ticket tag ("[#123]", "[Ticket #1234]"), if there is one."""
    if text.endswith("(fwd)"):
        return text[: -len("(fwd)")].rstrip()
    if text.endswith("]"):
        start = text.rfind("[")
        inside = text[start + 1 : -1]
        if start >= 0 and "]" not in inside and _has_ticket_number(inside):
            return text[:start].rstrip()
    return text


def _has_ticket_number(text: str) -> bool:
    """Tell whether a "#" is followed, anywhere later, by a digit ("Ticket #1234", "#ABC-123").

    One scan from the first "#": the regex ``#.*[0-9]`` would rescan the rest from every "#".
    (Folded text has no line breaks, so "anywhere later" is what ``.*`` meant.)
    """
    hash_mark = text.find("#")
    return hash_mark >= 0 and _DIGIT.search(text, hash_mark + 1) is not None
