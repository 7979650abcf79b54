"""Decide whether a customer's message is only a closing phrase ("Thanks!", "Danke, Anna").

Issue 12: a message whose first text part, once quoted history, signatures and the mail
client's "On ... wrote:" lines are removed, is at most a few words, has no question mark and no
attachment, and whose words are only closing phrases, greetings, sign-offs, the sender's name
and friendly emoji, starts no next-response clock. The body is never stored: only the
``ClosingVerdict`` (its reason, and for a closing message the few words that remained, at most
40 characters).

The policy is conservative on purpose. A false "closing" hides a real customer's wait, which is
worse than a clock that runs for a thank-you, so whatever is not understood counts as content:
an unknown word, a digit, a symbol that is not a friendly emoji, a header line cut by the byte
limit, a body cut off before its end, a name anywhere but beside a greeting, a closing phrase or
alone on the last line, and every attachment. Phrases are given in English, German, French,
Spanish, Dutch and Swedish; rules add more through ``extra_phrases``.

How the reply is found, in one pass over the lines (linear in the input, which is first cut to
``MAX_TEXT_CHARS``; no line longer than ``MAX_LINE_CHARS`` is ever matched against a pattern,
and the verdict is settled as soon as the reply passes ``max_words`` words or
``MAX_REPLY_LINES`` lines, so the costlier checks run on a few dozen lines at most):

* lines starting with ">" are quoted history; text after a quote block is the customer's again
  (bottom posting and inline answers), text before it too (top posting);
* an intro line ("On Mon, 1 Dec 2026 at 10:00, Support <s@x.com> wrote:", "Am ... schrieb ...:",
  "Le ... a écrit :", "El ... escribió:", "Op ... schreef ...:", "Den ... skrev ...:", Apple's
  date-first and Russian forms), up to 3 wrapped lines ending in ":", with a date and a verb or an
  address, hides itself when a quote follows; with a verb and an address and no quote after it
  (Outlook-style unquoted history) everything below is history;
* a forwarded or original message line ("-----Original Message-----", "Begin forwarded
  message:", in the six languages), a helpdesk "reply above this line" marker, or an
  Outlook-style header block (a From-like line with at least two other header names among the
  next 8 lines: Sent/Date, To, Subject, Cc in the six languages) starts history to the end;
* "-- " starts a signature, up to the next quote; mobile sign-off lines ("Sent from my
  iPhone", "Von meinem iPhone gesendet", "Envoyé de mon iPhone", "Enviado desde mi iPhone",
  "Verzonden vanaf mijn iPhone", "Skickat från min iPhone", "Get Outlook for iOS") are dropped.

Why no library (the README paragraph): four were weighed, each downloaded and read.
mail-parser-reply 1.36 (2025-12, MIT, pure Python, no dependencies, the best language coverage
on paper) builds its patterns from nested lazy quantifiers: 51 s for one 4 KiB line "Am schrieb
schrieb ...", 36 s for "Den skrev skrev ...", 2.6 s for 4 KiB of newlines (cubic and quadratic),
so it needs its input cut to a few short lines to stay bounded; it also misses Gmail's Spanish
and Dutch intro lines and the German, French and Dutch iPhone sign-offs, and its signature rule
cuts everything after a line starting "Thanks,"/"Gracias,"/"Bedankt,", so that "Hi team,\\nthanks,
but it still fails" becomes "Hi team," -- exactly the false closing this module must not make.
quotequail 0.5.4 (2026-09, MIT, maintained by Close) is line-based and has a line limit, but its
old Gmail pattern ``(.* <.*@.*>)$`` is cubic in the line (218 s for a 16 KiB line), it strips no
signatures and finds Outlook header blocks only in ``unwrap``, and it requires lxml (a C
extension) for an HTML path we would not use. email-reply-parser 0.5.12 (2020, English only)
and talon 1.4.4 (2017, unmaintained, numpy/scipy/scikit-learn) were ruled out on maintenance
alone. Above all ``monitor.mail`` is the pure core, which imports only the standard library
(tests/test_layers.py): a library here would break the layering, and moving the decision into
an adapter would put reply classification outside the core where DESIGN.md keeps it. The
patterns are therefore written here, as a line scanner that is linear by construction (string
methods and set lookups; the only regular expressions that see outside input are an anchored
tag name of at most 16 characters and an alternation of six literals), tested on those
projects' public test mails. No dependency is added.

Bounds (bench/closers.py has the figures): text 16 KiB (``MAX_TEXT_CHARS``), HTML 64 KiB,
MIME bodies 64 KiB, at most 100 parts nested 8 deep, part headers 16 KiB, parameter values
4 KiB; past a bound the input counts as cut off, which is never "closing" where the reply
could continue.

``extract_message_text`` reads the partial MIME body the IMAP source fetches (the first N bytes
of ``BODY.PEEK[TEXT]`` with the message's Content-Type and Content-Transfer-Encoding): it walks
multipart bodies by their boundaries (a part cut off is read as far as it goes), decodes base64
and quoted-printable and the part's charset, returns the first text/plain part (else the first
text/html part) and says whether an attachment is visible. ``closing_message`` also takes
Graph's ``bodyPreview`` (pass ``truncated=True`` when it is 255 characters long) and helpdesk
comment bodies, plain text or HTML.
"""

from __future__ import annotations

import binascii
import codecs
import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HTML_CHARS",
    "MAX_LINE_CHARS",
    "MAX_TEXT_CHARS",
    "ClosingVerdict",
    "MessageText",
    "closing_message",
    "closing_message_for_body",
    "extract_message_text",
    "reply_text",
]

MAX_TEXT_CHARS = 16 * 1024  # text read per message; a closing phrase sits at the top
MAX_HTML_CHARS = 64 * 1024  # HTML carries a lot of markup (Outlook's style block) per word
MAX_BODY_BYTES = 64 * 1024  # raw MIME body read; the caller fetches less (16 KiB)
MAX_LINE_CHARS = 300  # longer lines are never intro, header or separator lines
MAX_REPLY_LINES = 24  # a closing phrase, a name and some emoji never need more
MAX_WORDS_LIMIT = 20
MAX_EXTRA_PHRASES = 1_000
MAX_QUOTE_CHARS = 40
_MAX_PARTS = 100
_MAX_DEPTH = 8
_MAX_HEADER_BLOCK = 16 * 1024
_MAX_PARAM_VALUE = 4 * 1024


def _wordset(words: str) -> frozenset[str]:
    """A set of the space-separated words of a constant (word lists read best as one string)."""
    return frozenset(words.split())


_QUESTION_MARKS = frozenset("?¿\uff1f⁇⁈⁉❓❔؟⸮")  # \uff1f is the fullwidth question mark
# NUL and other controls become spaces; invisible format characters go; odd line ends become \n.
_CLEAN: dict[int, str | None] = {c: " " for c in range(32) if c not in (9, 10, 13)}
_CLEAN |= {0xA0: " ", 0x2007: " ", 0x202F: " ", 0x2028: "\n", 0x2029: "\n", 0x85: "\n"}
_CLEAN |= dict.fromkeys((0xAD, 0x200B, 0x200E, 0x200F, 0x2060, 0xFEFF, *range(0x202A, 0x202F)))
_CLEAN |= dict.fromkeys(range(0x2066, 0x206A))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosingVerdict:
    """Whether a message is only a closing phrase, and why; ``quote`` only when it is."""

    is_closing: bool
    reason: str  # "closing", or why not: "attachment", "question mark", "empty body", ...
    quote: str = ""  # the words that remained, at most MAX_QUOTE_CHARS characters

    def __str__(self) -> str:
        return f'closing: "{self.quote}"' if self.is_closing else f"not closing: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageText:
    """The first text part of a (possibly partial) MIME body, and what else the body showed."""

    text: str = ""
    content_type: str = ""  # "text/plain", "text/html", or "" when no text part was seen
    truncated: bool = False  # the text part's end was not seen
    has_attachment: bool = False  # an attachment part was seen
    parts_cut_off: bool = False  # cut inside a multipart that carries attachments after its text


def closing_message(
    text: str,
    *,
    content_type: str = "text/plain",
    has_attachment: bool = False,
    extra_phrases: Sequence[str] = (),
    max_words: int = 6,
    truncated: bool = False,
) -> ClosingVerdict:
    """Decide whether ``text`` (plain or HTML) is only a closing phrase; pure and bounded.

    ``truncated`` says the text is only the start of the message (a byte limit, a 255-character
    preview): the verdict is then "not closing" wherever the unseen rest could be the customer's.
    """
    if not 1 <= max_words <= MAX_WORDS_LIMIT:
        raise ValueError(f"max_words must be between 1 and {MAX_WORDS_LIMIT}, got: {max_words}")
    if isinstance(extra_phrases, str):
        raise TypeError(
            f"extra_phrases must be a sequence of phrases, got the string: {extra_phrases!r:.60}"
        )
    book = _phrase_book(tuple(extra_phrases))
    if has_attachment:
        return ClosingVerdict(is_closing=False, reason="attachment")
    if "html" in content_type.lower():
        text, cut = _html_to_text(text)
        truncated = truncated or cut
    reply = _strip(text, truncated=truncated, word_limit=max_words)
    if reply.problem:
        return ClosingVerdict(is_closing=False, reason=reply.problem)
    tokens, emoji = _tokenize(reply.lines)
    if tokens is None:
        return ClosingVerdict(is_closing=False, reason="a symbol that is not a friendly emoji")
    if reply.cut_off:
        return ClosingVerdict(is_closing=False, reason="cut off before the end of the reply")
    if not tokens and not emoji:
        return ClosingVerdict(is_closing=False, reason="empty body")
    if len(tokens) > max_words:
        return ClosingVerdict(is_closing=False, reason=f"more than {max_words} words")
    if tokens and not _covered(tokens, book, need_closing=True):
        reason = "no closing phrase" if _covered(tokens, book) else "not only closing words"
        return ClosingVerdict(is_closing=False, reason=reason)
    quote = " ".join(" ".join(reply.lines).split())
    if len(quote) > MAX_QUOTE_CHARS:
        quote = quote[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return ClosingVerdict(is_closing=True, reason="closing", quote=quote)


def closing_message_for_body(
    body: bytes,
    *,
    content_type: str | None,
    transfer_encoding: str | None = None,
    truncated: bool = False,
    extra_phrases: Sequence[str] = (),
    max_words: int = 6,
) -> ClosingVerdict:
    """``closing_message`` for a raw (partial) MIME body, as ``extract_message_text`` reads it."""
    found = extract_message_text(
        body, content_type=content_type, transfer_encoding=transfer_encoding, truncated=truncated
    )
    if found.parts_cut_off and not found.has_attachment:
        return ClosingVerdict(is_closing=False, reason="attachments may follow the cut")
    if not found.content_type and not found.has_attachment:
        return ClosingVerdict(is_closing=False, reason="no text part")
    return closing_message(
        found.text,
        content_type=found.content_type or "text/plain",
        has_attachment=found.has_attachment,
        extra_phrases=extra_phrases,
        max_words=max_words,
        truncated=found.truncated,
    )


def reply_text(text: str, *, content_type: str = "text/plain", truncated: bool = False) -> str:
    """The customer's own lines of ``text``, history and signatures removed (tests, diagnosis).

    Never store the result: only verdicts are kept.
    """
    if "html" in content_type.lower():
        text, _ = _html_to_text(text)
    return "\n".join(_strip(text, truncated=truncated, word_limit=None).lines)


# --- finding the reply -------------------------------------------------------------------------


@dataclass(slots=True)
class _Reply:
    lines: list[str] = field(default_factory=list)
    problem: str = ""  # a reason that settles "not closing" early
    cut_off: bool = False


_TOP, _QUOTE, _AFTER, _SIGNATURE = range(4)


def _strip(text: str, *, truncated: bool, word_limit: int | None) -> _Reply:
    """Walk the lines once, keeping the customer's own (see the module docstring)."""
    if len(text) > MAX_TEXT_CHARS:
        text, truncated = text[:MAX_TEXT_CHARS], True
    lines = text.translate(_CLEAN).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    reply = _Reply()
    state, words, words_before_quote = _TOP, 0, 0
    reply_lines = 0  # lines of the reply, kept or dropped as sign-off and rule lines
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line[0] == ">":
            if state != _QUOTE:
                words_before_quote, state = words, _QUOTE
            continue
        # In a signature only a quote ends it (and text after a quote is read again); not
        # looking for history there can only leave more text to read, never less.
        if state == _SIGNATURE or line == "--":  # RFC 3676's "-- ", stripped
            state = _SIGNATURE
            continue
        short = len(line) <= MAX_LINE_CHARS
        if short:
            boundary = _boundary(lines, i - 1, line)
            if boundary < 0:
                return reply
            if boundary:
                i += boundary - 1
                continue
        if state == _QUOTE:
            state = _AFTER
        reply_lines += 1
        if word_limit is not None and reply_lines > MAX_REPLY_LINES:
            reply.problem = f"more than {MAX_REPLY_LINES} lines"
            return reply
        if (short and _is_mobile_signoff(line)) or not line.strip("-_=*~#.+ "):
            continue  # a sign-off line, or a rule line such as Outlook's "_____" above history
        reply.lines.append(line)
        if word_limit is None:  # reply_text: every line, nothing settled early
            continue
        if not short:
            reply.problem = f"a line longer than {MAX_LINE_CHARS} characters"
            return reply
        if not _QUESTION_MARKS.isdisjoint(line):
            reply.problem = "question mark"
            return reply
        words += sum(1 for raw in line.split() if any(c.isalnum() for c in raw))
        if words > word_limit:
            reply.problem = f"more than {word_limit} words"
            return reply
    in_reply = state in (_TOP, _AFTER) or (state == _QUOTE and not words_before_quote)
    reply.cut_off = truncated and in_reply
    return reply


def _boundary(lines: list[str], index: int, line: str) -> int:
    """-1 if history starts here and runs to the end; n > 0 for an intro of n lines above a
    quote; 0 for an ordinary line."""
    intro = _intro(lines, index)
    if intro is not None:
        length, history_follows = intro
        return -1 if history_follows else length
    return -1 if _is_separator(line) or _starts_header_block(lines, index, line) else 0


_INTRO_STARTS = _wordset(
    "on am le el op den em il dne dnia в"  # en de fr es nl sv/da pt it cs pl ru
)
_WEEKDAYS = _wordset(
    "mon tue tues wed thu thur thurs fri sat sun monday tuesday wednesday thursday friday "
    "saturday sunday mo di mi do fr sa so montag dienstag mittwoch donnerstag freitag samstag "
    "sonntag lun mar mer jeu ven sam dim lundi mardi mercredi jeudi vendredi samedi dimanche "
    "mie jue vie sab dom lunes martes miercoles jueves viernes sabado domingo ma wo vr za zo "
    "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag man tis ons tor tors fre lor "
    "son mandag tisdag onsdag torsdag fredag lordag sondag "
    "пн вт ср чт пт сб вс"  # noqa: RUF001 - Russian weekdays, Cyrillic on purpose
)
_VERBS = _wordset(
    "wrote writes schrieb schreibt ecrit escribio schreef geschreven skrev skriver escreveu "
    "scritto scrisse kirjoitti napisal napsal написал написала пишет"
)


def _intro(lines: list[str], index: int) -> tuple[int, bool] | None:
    """An "On ... wrote:" intro at ``index``: (lines it spans, whether history follows to the end).

    None when the line is no intro, or one whose quote does not follow and which lacks the
    verb and the address that make unquoted history below it certain.
    """
    parts: list[str] = []
    for j in range(index, min(index + 3, len(lines))):  # an intro wraps over at most 3 lines
        part = lines[j].strip()
        if not part or len(part) > MAX_LINE_CHARS or (parts and part[0] == ">"):
            return None
        parts.append(part)
        if part.rstrip(" *").endswith(":"):
            break
    else:
        return None
    head = parts[0].lstrip("-_*=~ ")
    if not head or not head[0].isalnum():
        return None
    first = _fold(head.split(None, 1)[0].rstrip(",.:"))
    if not (head[0].isdigit() or first in _INTRO_STARTS or first in _WEEKDAYS):
        return None
    folded = _fold(" ".join(parts))
    has_verb = not _VERBS.isdisjoint(_words(folded))
    if not any(c.isdigit() for c in folded) or not (has_verb or "@" in folded):
        return None
    length = len(parts)
    for j in range(index + length, min(index + length + 16, len(lines))):
        following = lines[j].strip()
        if following:
            if following[0] == ">":
                return length, False
            break
    return (length, True) if has_verb and "@" in folded else None


_SEPARATORS = frozenset(
    (
        "original message", "forwarded message", "begin forwarded message",
        "ursprungliche nachricht", "original nachricht", "originalnachricht",
        "weitergeleitete nachricht", "anfang der weitergeleiteten nachricht",
        "anfang der weitergeleiteten e mail", "message d'origine", "message original",
        "message transfere", "debut du message reexpedie", "debut du message transfere",
        "mensaje original", "mensaje reenviado", "inicio del mensaje reenviado",
        "oorspronkelijk bericht", "origineel bericht", "doorgestuurd bericht",
        "begin doorgestuurd bericht", "ursprungligt meddelande", "vidarebefordrat meddelande",
        "vidarebefordrat brev", "oprindelig meddelelse", "videresendt meddelelse",
        "mensagem original", "messaggio originale", "пересылаемое сообщение",
        "исходное сообщение",
    )
)  # fmt: skip
_REPLY_ABOVE = (
    "reply above this line", "write above this line", "oberhalb dieser zeile",
    "au dessus de cette ligne", "encima de esta linea", "boven deze regel", "boven deze lijn",
    "ovanfor denna rad", "ovanfor den har raden",
)  # fmt: skip


_REPLY_ABOVE_HINT = re.compile("above|oberhalb|dessus|encima|boven|ovanf")  # literals only


def _is_separator(line: str) -> bool:
    """A forwarded/original message line, or a helpdesk's "reply above this line" marker."""
    core = line.strip("-_*=#:~ ")
    if not core:
        return False
    framed = line[0] in "-_*=#" or line.rstrip(" *").endswith(":")
    hinted = _REPLY_ABOVE_HINT.search(core.lower()) is not None
    if not (framed or hinted):  # the common case, without folding the line
        return False
    words = " ".join(_words(_fold(core)))
    return (hinted and any(m in words for m in _REPLY_ABOVE)) or (framed and words in _SEPARATORS)


_HEADER_NAMES = {
    "from": "from von de van fran fra da od от",
    "to": "to an a para aan till til кому",
    "date": "sent date datum gesendet envoye enviado fecha verzonden skickat sendt data inviato "
    "отправлено дата",
    "subject": "subject betreff objet sujet asunto onderwerp amne emne oggetto тема",
    "cc": "cc bcc kopie kopia copie cco копия",
}
# Header names (folded) of Outlook-style history blocks, to their kind.
_HEADER_KINDS = {name: kind for kind, names in _HEADER_NAMES.items() for name in names.split()}
_HEADER_KINDS["enviado el"] = "date"


def _header_kind(line: str) -> str | None:
    colon = line.find(":", 0, 32)
    if colon <= 0:
        return None
    return _HEADER_KINDS.get(" ".join(_words(_fold(line[:colon].strip(" *_\t")))))


def _starts_header_block(lines: list[str], index: int, line: str) -> bool:
    """An Outlook-style header block: From plus two other kinds within 8 non-blank lines."""
    if _header_kind(line) is None:
        return False
    kinds: set[str] = set()
    seen = 0
    for raw in lines[index : index + 16]:
        line = raw.strip().lstrip("> ")
        if not line:
            continue
        kind = _header_kind(line) if len(line) <= MAX_LINE_CHARS else None
        if kind:
            kinds.add(kind)
            if len(kinds) >= 3 and "from" in kinds:
                return True
        seen += 1
        if seen >= 8:
            break
    return False


_SIGNOFF_PREFIXES = (
    "sent from my ", "sent from ", "sent with ", "sent via ", "sent using ", "get outlook for ",
    "von meinem ", "gesendet von ", "gesendet mit ", "gesendet vom ", "envoye de mon ",
    "envoye depuis mon ", "envoye depuis ", "envoye de ", "envoye avec ", "obtenir outlook pour ",
    "enviado desde mi ", "enviado desde ", "enviado con ", "obtener outlook para ",
    "verzonden vanaf mijn ", "verstuurd vanaf mijn ", "verzonden vanaf ", "verzonden met ",
    "verstuurd met ", "download outlook voor ", "skickat fran min ", "skickat fran ",
    "hamta outlook for ", "sendt fra min ",
)  # fmt: skip
# Sign-offs whatever follows them: the possessive ones ("Sent from my ...") and Outlook's.
_SURE_PREFIXES = tuple(
    p for p in _SIGNOFF_PREFIXES if p.split()[-1] in {"my", "mon", "mi", "mijn", "min"}
) + tuple(p for p in _SIGNOFF_PREFIXES if "outlook" in p)
_APP_WORDS = _wordset(
    "outlook mail yahoo gmail proton protonmail samsung iphone ipad android blackberry windows "
    "thunderbird spark airmail sparrow superhuman hey aol gmx web.de t-online icloud mobile "
    "galaxy huawei xiaomi"
)


def _is_mobile_signoff(line: str) -> bool:
    """ "Sent from my iPhone" and its kin in the six languages, with at most 5 words after."""
    if len(line) > 120:
        return False
    text = line
    while text[-1:] in ">)" and ("<" in text or "(" in text):  # a trailing <url> or (url)
        text = text[: text.rfind("<" if text[-1] == ">" else "(")].rstrip()
    folded = _fold(text).rstrip(". ")
    if not folded.startswith(_SIGNOFF_PREFIXES):  # one C call decides the usual case
        return False
    prefix = next(p for p in _SIGNOFF_PREFIXES if folded.startswith(p))
    rest = folded[len(prefix) :]
    words = rest.split()
    if not 1 <= len(words) <= 5 or any(c in rest for c in ",;:!?"):
        return False
    if prefix == "von meinem ":
        return words[-1] == "gesendet"
    return prefix in _SURE_PREFIXES or words[0] in _APP_WORDS


# --- words -------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _fold(text: str) -> str:
    """Case-fold and drop accents: "Grüße" -> "grusse", "Envoyé" -> "envoye"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(folded: str) -> list[str]:
    """The letter-and-digit words of an already folded string ("d'accord" stays one word)."""
    out: list[str] = []
    current: list[str] = []
    for c in folded:
        if c.isalnum() or (c == "'" and current):
            current.append(c)
        elif current:
            out.append("".join(current).rstrip("'"))
            current = []
    if current:
        out.append("".join(current).rstrip("'"))
    return out


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as written
    norm: str  # folded
    line_start: bool  # first word of its line
    after_stop: bool  # ".", "!", ";", ":" or "…" since the previous word
    after_dash: bool  # a hyphen, an en or em dash, or "/" right before it ("-Anna", "/Anna")
    last_line: bool


# Friendly emoji only: an angry or sad face, a thumbs down or a warning sign is content.
_FRIENDLY_EMOJI = frozenset(
    "🙏👍👌👏🙌💪🤝🙂😊😀😃😄😁☺😉😍🥰🤗😎😇🥳🎉🎊❤♥💙💚💛💜🧡🖤🤍🤎💖💕💗💯✅✔☑✨🌟⭐🫶🙇😌👋🌞🌻🌷🍀"
)
_EMOJI_JOINERS = frozenset("\ufe0f\ufe0e\u200d\u20e3\u2640\u2642🏻🏼🏽🏾🏿")
_EMOTICONS = _wordset(
    ":) :-) :)) :))) :] =) :d :-d =d ;) ;-) ^^ ^_^ <3 <33 :+1: +1 (y) :o) :* xd "
    ":thumbsup: :pray: :smile: :tada: :heart: :ok_hand: :raised_hands: :clap: :blush:"
)
_STOPS = frozenset(".!;:…")
_APOSTROPHES = "'\u2019"
_DASHES = frozenset("-\u2013\u2014/")


def _tokenize(lines: list[str]) -> tuple[list[_Token] | None, int]:
    """Words and friendly emoji of the reply; None for the words if another symbol appears."""
    tokens: list[_Token] = []
    emoji = 0
    last = len(lines) - 1
    for number, line in enumerate(lines):
        line_start, after_stop, after_dash = True, False, False
        for raw in line.split():
            if raw.casefold().rstrip(",.!") in _EMOTICONS:
                emoji += 1
                continue
            current: list[str] = []
            for c in [*raw, " "]:
                if c.isalnum() or (c in _APOSTROPHES and current) or unicodedata.combining(c):
                    current.append(c)
                    continue
                if current:
                    word = "".join(current).rstrip(_APOSTROPHES)
                    tokens.append(
                        _Token(
                            word, _fold(word), line_start, after_stop, after_dash, number == last
                        )
                    )
                    current = []
                    line_start, after_stop, after_dash = False, False, False
                if c in _FRIENDLY_EMOJI or c in _EMOJI_JOINERS:
                    emoji += c in _FRIENDLY_EMOJI
                elif unicodedata.category(c) in ("So", "Co", "Cn"):
                    return None, emoji
                after_stop = after_stop or c in _STOPS
                after_dash = after_dash or c in _DASHES
    return tokens, emoji


# --- phrases -------------------------------------------------------------------------------------

# "(a|b)" is one of the alternatives, "(|a)" an optional word; everything is folded when loaded.
_THANKS_FOR = (
    "(help|reply|quick reply|response|quick response|answer|support|assistance|fix|update|info|"
    "information|explanation|feedback|patience|replies)"
)
_DE_FOR = (
    "(hilfe|antwort|schnelle antwort|rasche antwort|schnelle hilfe|rückmeldung|rueckmeldung|"
    "unterstützung|info|infos|information|informationen|erklärung|lösung|mühe|geduld)"
)
_CLOSING_SPECS = (
    # English
    "(thanks|thank you|thankyou|thx|thnx|thanx|ty|tyvm|tysm|cheers|many thanks|much thanks|"
    "big thanks|huge thanks|thanks much)",
    "(thanks|thank you) (so much|very much|a lot|a bunch|a million|a ton|again|once again|"
    "so much again|indeed|kindly|so very much|both)",
    "(thanks|thank you|many thanks|thanks again|thanks so much|thank you so much|thanks a lot|"
    "thank you very much) for (the|your|all the|all your|the quick|your quick|the fast|"
    f"your fast|the prompt|your prompt|the great|your great|the kind|your kind) {_THANKS_FOR}",
    "(thanks|thank you) for (that|this|everything|all|the heads up|fixing it|fixing this|"
    "sorting it out|sorting this out|your time)",
    "(|much|really|greatly|truly|very much) appreciated",
    "(i|we) (|really|truly|greatly) appreciate (it|that|this|your help|the help)",
    "appreciate it",
    "(got it|gotcha|perfect|great|awesome|excellent|wonderful|brilliant|fantastic|amazing|"
    "terrific|superb|super|cool|nice|lovely|sweet|splendid|fabulous|outstanding|ok|okay|okey|k|"
    "kk|alright|all right|fine|good|very good|all good|all set|sounds good|sounds great|"
    "sounds perfect|will do|noted|understood|makes sense|good to know|that helps|that helped|"
    "very helpful|super helpful|really helpful|that works|that works for me|works for me|works|"
    "works now|working now|it works|it works now|it's working|it is working|all working now|"
    "that did it|that did the trick|did the trick|problem solved|solved|resolved|sorted|"
    "that fixed it|that fixed the problem|that fixed the issue|that solved it|"
    "that solved the problem|that resolved it|that sorted it|that worked|it's fixed|"
    "it is fixed|all fixed|fixed now|it's working now|it is working now|"
    "all sorted|fixed|no problem|no worries|np|great stuff|good stuff|nice one|great job|"
    "good job|well done|you rock|you're the best|you are the best|you're a star|lifesaver)",
    # German
    "(danke|dankeschön|dankeschoen|danke schön|danke schoen|danke sehr|danke vielmals|"
    "vielen dank|vielen lieben dank|vielen herzlichen dank|vielen vielen dank|herzlichen dank|"
    "besten dank|lieben dank|tausend dank|merci|nochmals danke)",
    "(danke|vielen dank|herzlichen dank|lieben dank) (dir|ihnen|euch|nochmal|nochmals|auch)",
    "(danke|vielen dank|herzlichen dank|besten dank|lieben dank|vielen lieben dank|"
    "vielen herzlichen dank|danke schön|dankeschön) (für|fuer) (die|ihre|deine|eure|"
    "die schnelle|ihre schnelle|deine schnelle|die rasche|ihre rasche|die tolle|die nette|"
    f"ihre nette|die freundliche|ihre freundliche) {_DE_FOR}",
    "(danke|vielen dank) (für|fuer) (alles|das|die info|die infos)",
    "(super|perfekt|prima|toll|klasse|spitze|top|wunderbar|sehr gut|gut|alles klar|alles gut|"
    "alles bestens|bestens|ok|okay|passt|passt so|passt schon|verstanden|alles verstanden|"
    "funktioniert|es funktioniert|funktioniert jetzt|funktioniert wieder|jetzt funktioniert es|"
    "klappt|es klappt|klappt jetzt|klappt wieder|hat geklappt|hat funktioniert|läuft|"
    "läuft wieder|geht wieder|geht jetzt|gelöst|problem gelöst|in ordnung|alles in ordnung|"
    "geht klar|wird gemacht|mach ich|sehr hilfreich|hilfreich|das hilft|hat geholfen|genial|"
    "cool)",
    # French
    "(merci|merci beaucoup|merci bien|merci encore|encore merci|merci infiniment|"
    "merci mille fois|mille mercis|mille merci|un grand merci|grand merci|merci à vous|"
    "merci à toi|merci à tous|merci pour tout|merci encore une fois)",
    "(merci|merci beaucoup|merci bien|un grand merci|merci infiniment|encore merci) (pour|"
    "de) (votre|ta|la|cette|vos|votre rapide|la rapide) (aide|réponse|réponse rapide|rapidité|"
    "retour|retour rapide|assistance|explication|information|informations|soutien|intervention|"
    "réactivité|patience)",
    "(merci|merci beaucoup|un grand merci) (pour|de) (l'aide|l'information|l'info|l'explication|"
    "l'intervention)",
    "(parfait|c'est parfait|super|génial|excellent|top|au top|nickel|impeccable|très bien|bien|"
    "d'accord|ok|okay|entendu|compris|bien compris|bien reçu|reçu|c'est noté|noté|ça marche|"
    "ça marche maintenant|ça fonctionne|ça fonctionne maintenant|ça fonctionne bien|c'est bon|"
    "tout est bon|résolu|problème résolu|c'est réglé|réglé|cool|formidable|magnifique|"
    "très utile)",
    # Spanish
    "(gracias|muchas gracias|muchísimas gracias|mil gracias|muchas muchas gracias|"
    "gracias de nuevo|gracias otra vez|de nuevo gracias|nuevamente gracias|gracias nuevamente|"
    "gracias a ti|gracias a usted|gracias a vosotros|gracias a todos|gracias por todo)",
    "(gracias|muchas gracias|mil gracias) por (tu|su|la|vuestra|tu rápida|su rápida|la rápida|"
    "tu pronta|su pronta|la pronta) (ayuda|respuesta|rapidez|atención|asistencia|explicación|"
    "información|gestión|paciencia|colaboración|solución)",
    "(te lo agradezco|se lo agradezco|os lo agradezco|se agradece|lo agradezco|muy amable|"
    "muy amables|perfecto|genial|excelente|estupendo|fantástico|maravilloso|súper|vale|"
    "de acuerdo|ok|okay|entendido|comprendido|muy bien|bien|listo|recibido|funciona|ya funciona|"
    "funciona ahora|ahora funciona|todo bien|todo correcto|todo perfecto|solucionado|resuelto|"
    "problema resuelto|problema solucionado|muy útil|qué bien)",
    # Dutch
    "(bedankt|dank je|dank je wel|dankjewel|dankje|dank u|dank u wel|dankuwel|dank jullie|"
    "dank jullie wel|hartelijk dank|hartelijk bedankt|heel erg bedankt|erg bedankt|"
    "heel hartelijk bedankt|super bedankt|top bedankt|nogmaals bedankt|nogmaals dank|"
    "bedankt nogmaals|dank)",
    "(bedankt|dank je wel|dank u wel|hartelijk dank|heel erg bedankt) voor (je|jullie|uw|de|het|"
    "je snelle|jullie snelle|uw snelle|de snelle|het snelle) (hulp|reactie|antwoord|"
    "ondersteuning|info|informatie|uitleg|moeite|oplossing)",
    "(super|perfect|top|prima|geweldig|uitstekend|fantastisch|mooi|fijn|goed|heel goed|"
    "helemaal goed|oké|ok|okay|duidelijk|helder|begrepen|het werkt|werkt|werkt weer|"
    "het werkt weer|werkt nu|het werkt nu|opgelost|probleem opgelost|in orde|akkoord|komt goed|"
    "prima zo|top zo|heel fijn|wat fijn|wat goed|helemaal top|gelukt|het is gelukt)",
    # Swedish (and Danish, Norwegian)
    "(tack|tackar|tack så mycket|tack så hemskt mycket|tack så jättemycket|"
    "tack så väldigt mycket|stort tack|tusen tack|tack tack|tack igen|tack ska du ha|"
    "tack ska ni ha|tack för det|tack för allt|tak|mange tak|tusind tak|takk|tusen takk)",
    "(tack|tack så mycket|stort tack|tusen tack|tackar) för (hjälpen|svaret|snabbt svar|"
    "det snabba svaret|ditt svar|ert svar|din hjälp|er hjälp|informationen|infon|förklaringen|"
    "stödet|snabb hjälp)",
    "(perfekt|toppen|super|bra|jättebra|mycket bra|utmärkt|kanon|strålande|fint|okej|ok|okay|"
    "uppfattat|förstått|jag förstår|det fungerar|fungerar|fungerar nu|det fungerar nu|funkar|"
    "det funkar|funkar nu|löst|problemet löst|problemet är löst|allt bra|allt är bra|härligt|"
    "grymt|schysst)",
)
_GREETING_SPECS = (
    "(hi|hello|hey|hiya|heya|howdy|dear|good morning|good afternoon|good evening|morning|"
    "greetings)",
    "(hallo|moin|moin moin|servus|grüß gott|grüezi|guten morgen|guten tag|guten abend|liebe|"
    "lieber|sehr geehrte|sehr geehrter|sehr geehrte damen und herren)",
    "(bonjour|bonsoir|salut|coucou|cher|chère|chers|madame|monsieur)",
    "(hola|buenas|buenos días|buenas tardes|buenas noches|estimado|estimada|estimados|querido|"
    "querida)",
    "(hoi|goedemorgen|goedemiddag|goedenavond|beste|geachte)",
    "(hej|hejsan|hallå|tjena|god morgon|god dag|god eftermiddag|kära|bästa)",
)
_SIGNOFF_SPECS = (
    "(regards|best regards|kind regards|warm regards|warmest regards|kindest regards|"
    "best wishes|many regards|with regards|with kind regards|with best regards|sincerely|"
    "yours sincerely|sincerely yours|yours truly|yours faithfully|best|all the best|all best|br|"
    "kr|rgds|brgds|take care|have a nice day|have a great day|have a good day|"
    "have a nice weekend|have a great weekend|have a good weekend|have a good one|speak soon|"
    "talk soon|love|x|xx|xo|xoxo)",
    "(mit freundlichen grüßen|mit freundlichen gruessen|mit freundlichem gruß|freundliche grüße|"
    "freundliche gruesse|viele grüße|viele gruesse|liebe grüße|liebe gruesse|beste grüße|"
    "beste gruesse|herzliche grüße|schöne grüße|grüße|gruesse|gruß|lg|vg|mfg|bg|glg|schönen tag|"
    "schönen tag noch|schönes wochenende|einen schönen tag|ein schönes wochenende|bis bald|ciao|"
    "tschüss)",
    "(cordialement|bien cordialement|très cordialement|bien à vous|salutations|"
    "sincères salutations|meilleures salutations|salutations distinguées|bonne journée|"
    "bonne soirée|bon weekend|bon week-end|bonne fin de journée|bonne continuation|à bientôt|"
    "amicalement|amitiés|bises|belle journée|excellente journée)",
    "(saludos|un saludo|saludos cordiales|un cordial saludo|cordiales saludos|atentamente|"
    "cordialmente|un abrazo|abrazos|buen día|que tengas un buen día|que tenga un buen día|"
    "buen fin de semana|hasta luego|hasta pronto)",
    "(met vriendelijke groet|met vriendelijke groeten|vriendelijke groet|vriendelijke groeten|"
    "groet|groeten|groetjes|hartelijke groet|hartelijke groeten|met groet|mvg|gr|grt|fijne dag|"
    "fijne dag nog|fijn weekend|prettige dag|tot ziens|tot snel)",
    "(med vänliga hälsningar|vänliga hälsningar|vänlig hälsning|hälsningar|hälsning|"
    "bästa hälsningar|med vänlig hälsning|mvh|vh|ha det bra|ha en bra dag|ha en trevlig dag|"
    "trevlig helg|ha en trevlig helg|kram|kramar|hej hej|hejdå|vi hörs)",
)
# Whom a greeting or a thank-you addresses: "Hi team", "Thanks all", "Danke euch allen".
_ADDRESSEE_SPECS = (
    "(team|all|everyone|everybody|there|guys|folks|support|support team|you all|y'all|zusammen|"
    "alle|allen|allerseits|ihr|tous|à tous|l'équipe|équipe|todos|a todos|equipo|allemaal|"
    "iedereen|alla|allihop|allihopa)",
)
_FILLER_SPECS = ("(oh|ah|aha|wow|yay|woohoo|hooray|and|also|und|auch|juhu|et|y|en|och|oj|åh)",)
# Capitalized at a line's start or after a full stop, these are not a name: "Thanks!\nStill broken".
_NOT_NAMES = _wordset(
    "but and or not no yes still please one more also however although though just only why "
    "what how when where who which can could would should will is are was it its this that these "
    "there here now again then so if because problem issue error broken fails failed failing "
    "help urgent wrong cancel stop refund nothing never unfortunately sadly actually wait same "
    "another other any i we you he she they me my our your us attached attachment see below "
    "aber oder nicht nein ja kein keine noch immer bitte leider warum wieso weshalb wie was wann "
    "wo wer welche jetzt dann nur doch schon fehler hilfe dringend storno kundigung ich wir sie "
    "es das der die dies mais ou pas non oui toujours encore pourquoi comment quand qui que quoi "
    "svp stp probleme erreur aide je nous vous il elle ce cela ca pero o si todavia aun sigue por "
    "favor porque como cuando donde quien que problema ayuda urgente yo usted maar niet nee nog "
    "steeds alsjeblieft alstublieft waarom hoe wanneer waar wie wat probleem fout hulp ik wij "
    "het dit dat men inte nej fortfarande annu snalla varfor hur nar var vem vad fel hjalp "
    "bradskande jag vi du det den"
)

_KINDS = ("closing", "greeting", "signoff", "addressee", "filler")


@dataclass(frozen=True, slots=True)
class _PhraseBook:
    phrases: dict[str, frozenset[tuple[str, ...]]]  # kind -> word tuples
    longest: int


def _expand(spec: str) -> list[str]:
    """All phrases a spec stands for: "thanks (so|very) much" -> two phrases."""
    parts = re.split(r"(\([^()]*\))", spec)  # our own constant specs, never outside input
    choices = [p[1:-1].split("|") if p.startswith("(") else [p] for p in parts]
    return [" ".join("".join(pick).split()) for pick in product(*choices)]


def _phrase_words(phrase: str) -> tuple[str, ...]:
    return tuple(_words(_fold(phrase)))


@lru_cache(maxsize=1)
def _builtin_phrases() -> dict[str, frozenset[tuple[str, ...]]]:
    specs = {
        "closing": _CLOSING_SPECS,
        "greeting": _GREETING_SPECS,
        "signoff": _SIGNOFF_SPECS,
        "addressee": _ADDRESSEE_SPECS,
        "filler": _FILLER_SPECS,
    }
    return {
        kind: frozenset({_phrase_words(p) for spec in kind_specs for p in _expand(spec)} - {()})
        for kind, kind_specs in specs.items()
    }


@lru_cache(maxsize=64)
def _phrase_book(extra: tuple[str, ...]) -> _PhraseBook:
    """The phrase sets, with the rules' ``extra_phrases`` added to the closing phrases."""
    if len(extra) > MAX_EXTRA_PHRASES:
        raise ValueError(f"at most {MAX_EXTRA_PHRASES} extra_phrases, got: {len(extra)}")
    phrases = dict(_builtin_phrases())
    added: set[tuple[str, ...]] = set()
    for number, phrase in enumerate(extra):
        if not isinstance(phrase, str) or len(phrase) > 100 or not _phrase_words(phrase):
            raise ValueError(
                f"extra_phrases[{number}] must be a phrase of at most 100 characters with a "
                f"word in it, got: {phrase!r:.120}"
            )
        added.add(_phrase_words(phrase))
    phrases["closing"] = phrases["closing"] | added
    longest = max(len(p) for kind_phrases in phrases.values() for p in kind_phrases)
    return _PhraseBook(phrases, longest)


def _is_name(token: _Token) -> bool:
    text = token.text
    if token.norm in _NOT_NAMES or not text.isalpha() or len(text) > 20:
        return False
    return (text[0].isupper() and (len(text) == 1 or text[1:].islower())) or (
        text.isupper() and len(text) <= 3
    )


def _covered(tokens: list[_Token], book: _PhraseBook, *, need_closing: bool = False) -> bool:
    """Whether the words are a sequence of phrases and names (with a closing phrase if needed).

    Names (at most 3) come right after a greeting, closing phrase, sign-off or name on the same
    line with no full stop between ("Danke, Anna", "Hi Anna,"), or fill the last line alone
    ("Thanks!\\nAnna", "-Anna"). Tokens number at most MAX_WORDS_LIMIT, so the memo stays small.
    """
    norms = [t.norm for t in tokens]
    memo: dict[tuple[int, str, int, bool], bool] = {}

    def cover(i: int, previous: str, names: int, closed: bool) -> bool:
        if i == len(tokens):
            return closed or not need_closing
        key = (i, previous, names, closed)
        if key not in memo:
            memo[key] = _try(i, previous, names, closed)
        return memo[key]

    def _try(i: int, previous: str, names: int, closed: bool) -> bool:
        for length in range(min(book.longest, len(tokens) - i), 0, -1):
            words = tuple(norms[i : i + length])
            for kind in _KINDS:
                if words not in book.phrases[kind]:
                    continue
                if kind == "addressee" and (
                    previous not in ("greeting", "closing") or tokens[i].after_stop
                ):
                    continue
                if cover(i + length, kind, names, closed or kind == "closing"):
                    return True
        token = tokens[i]
        if names >= 3 or not _is_name(token):
            return False
        beside = previous in ("greeting", "closing", "signoff", "name", "addressee")
        if beside and not token.after_stop and not token.line_start:
            return cover(i + 1, "name", names + 1, closed)
        signs_off = token.line_start or token.after_dash
        rest = tokens[i:]
        if signs_off and len(rest) <= 3 - names and all(t.last_line and _is_name(t) for t in rest):
            return (closed or not need_closing) and previous != ""
        return False

    return cover(0, "", 0, False)


# --- HTML ---------------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SKIP_TAGS = _wordset("script style head title noscript template xml svg object")
_BLOCK_TAGS = _wordset(
    "p div br li tr table ul ol h1 h2 h3 h4 h5 h6 hr pre section article header footer dd dt "
    "dl center address form fieldset"
)
_CELL_TAGS = frozenset(("td", "th"))
_TAG_NAME = re.compile(r"(/?)([a-z][a-z0-9]{0,15})")  # anchored, bounded: linear
_INTERESTING_TAGS = _SKIP_TAGS | _BLOCK_TAGS | _CELL_TAGS | {"blockquote", "pre"}


class _TextWriter:
    """Lines of text out of HTML: whitespace runs are one space, blockquotes "> " prefixes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.has_text = False
        self.depth = self.line_depth = self.pre = 0

    def newline(self) -> None:
        text = "".join(self.current).strip()
        self.lines.append("> " * self.line_depth + text if text else "")
        self.current, self.has_text = [], False

    def add(self, chunk: str) -> None:
        text = html.unescape(chunk)
        if self.pre:
            pieces = text.split("\n")
        else:  # every whitespace run is one space, line breaks included
            lead = " " if text[:1].isspace() else ""
            trail = " " if text[-1:].isspace() else ""
            pieces = [lead + " ".join(text.split()) + trail]
        for number, piece in enumerate(pieces):
            if number:
                self.newline()
            if not self.has_text and piece.strip():
                self.line_depth, self.has_text = self.depth, True
            self.current.append(piece)

    def tag(self, name: str, *, closing: bool) -> None:
        if name == "blockquote":
            self.newline()
            self.depth = max(self.depth - 1, 0) if closing else min(self.depth + 1, 8)
        elif name == "pre":
            self.newline()
            self.pre = max(self.pre - 1, 0) if closing else self.pre + 1
        elif name in _BLOCK_TAGS:
            self.newline()
        elif name in _CELL_TAGS:
            self.current.append(" ")


def _html_to_text(markup: str) -> tuple[str, bool]:
    """Crude, linear HTML to text: blocks become lines, blockquotes "> " lines; (text, cut).

    Every step moves forward with str.find; an unterminated comment or tag counts as a cut.
    """
    cut = len(markup) > MAX_HTML_CHARS
    markup = markup[:MAX_HTML_CHARS]
    lower = markup.translate(_ASCII_LOWER)  # same length: indexes stay valid
    out = _TextWriter()
    pos, end = 0, len(markup)
    while pos < end:
        lt = markup.find("<", pos)
        if lt < 0:
            out.add(markup[pos:])
            break
        if lt > pos:
            out.add(markup[pos:lt])
        close = (
            markup.find("-->", lt + 4) if markup.startswith("<!--", lt) else markup.find(">", lt)
        )
        if close < 0:
            cut = True
            break
        if markup.startswith("<!--", lt):
            pos = close + 3
            continue
        pos = close + 1
        found = _TAG_NAME.match(lower, lt + 1, close)
        if found is None:  # <!DOCTYPE>, <![endif]>, <?xml ...?>, "< " in text
            continue
        slash, name = found.groups()
        if name not in _INTERESTING_TAGS:
            continue
        closing = slash == "/"
        if name in _SKIP_TAGS and not closing and markup[close - 1] != "/":
            skip_to = lower.find("</" + name, pos)
            skip_end = lower.find(">", skip_to) if skip_to >= 0 else -1
            pos = end if skip_end < 0 else skip_end + 1
            continue
        out.tag(name, closing=closing)
    out.newline()
    return "\n".join(out.lines), cut


# --- MIME ---------------------------------------------------------------------------------------

_SIGNATURE_TYPES = frozenset(
    ("application/pgp-signature", "application/pkcs7-signature",
     "application/x-pkcs7-signature", "application/pgp-encrypted")
)  # fmt: skip
_REPORT_TYPES = frozenset(("message/delivery-status", "message/disposition-notification"))
# Multiparts whose later parts are alternatives or signatures, never attachments.
_NO_ATTACHMENT_MULTIPARTS = frozenset(("multipart/alternative", "multipart/signed"))
_NOT_BASE64 = bytes(c for c in range(256) if not (chr(c).isalnum() and c < 128) and c not in b"+/")
_CHARSET_SUPERSETS = {"iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
                      "gb2312": "gb18030", "gbk": "gb18030", "shift_jis": "cp932",
                      "ks_c_5601-1987": "cp949", "euc-kr": "cp949"}  # fmt: skip


@dataclass(slots=True)
class _Found:
    plain: tuple[bytes, dict[str, str], str, bool] | None = None  # payload, params, cte, done
    html: tuple[bytes, dict[str, str], str, bool] | None = None
    attachment: bool = False
    parts_cut_off: bool = False
    parts: int = 0


def extract_message_text(
    body: bytes,
    *,
    content_type: str | None,
    transfer_encoding: str | None = None,
    truncated: bool = False,
) -> MessageText:
    """The first text/plain part (else text/html) of a possibly cut MIME body, and attachments.

    ``content_type`` and ``transfer_encoding`` are the message's header values; ``truncated``
    says ``body`` holds only the first bytes of the message. Linear in ``body``, which is read
    up to MAX_BODY_BYTES; at most 100 parts, nested at most 8 deep.
    """
    if len(body) > MAX_BODY_BYTES:
        body, truncated = body[:MAX_BODY_BYTES], True
    found = _Found()
    ctype, params = _parse_value(content_type or "text/plain")
    _walk(body, _media_type(ctype), params, (transfer_encoding or "").strip().lower(), "",
          complete=not truncated, depth=0, found=found)  # fmt: skip
    chosen, kind = (found.plain, "text/plain") if found.plain else (found.html, "text/html")
    if chosen is None:
        return MessageText(has_attachment=found.attachment, parts_cut_off=found.parts_cut_off)
    payload, part_params, cte, complete = chosen
    return MessageText(
        text=_decode_text(payload, part_params.get("charset", ""), cte),
        content_type=kind,
        truncated=not complete,
        has_attachment=found.attachment,
        parts_cut_off=found.parts_cut_off,
    )


def _walk(
    data: bytes,
    ctype: str,
    params: dict[str, str],
    cte: str,
    disposition: str,
    *,
    complete: bool,
    depth: int,
    found: _Found,
) -> None:
    found.parts += 1
    if found.parts > _MAX_PARTS:
        found.parts_cut_off = True
        return
    if ctype.startswith("multipart/"):
        boundary = params.get("boundary", "")
        if not 1 <= len(boundary) <= 200 or depth >= _MAX_DEPTH:
            found.attachment = True  # an unreadable container: its parts count as unknown files
            return
        parts, closed = _split_multipart(data, boundary.encode("utf-8", "replace"))
        for part, part_complete in parts:
            head_end, body_start = _header_end(part)
            if head_end < 0:  # cut inside the part's headers
                break
            headers = _part_headers(part[:head_end])
            sub_type, sub_params = _parse_value(headers.get("content-type", "") or "text/plain")
            disp, disp_params = _parse_value(headers.get("content-disposition", ""))
            if "filename" in disp_params:
                sub_params.setdefault("name", disp_params["filename"])
            _walk(part[body_start:], _media_type(sub_type), sub_params,
                  headers.get("content-transfer-encoding", "").strip().lower(), disp,
                  complete=complete or part_complete, depth=depth + 1, found=found)  # fmt: skip
        if not closed and not complete and ctype not in _NO_ATTACHMENT_MULTIPARTS:
            found.parts_cut_off = True
        return
    has_name = "name" in params
    is_text = ctype.startswith("text/")
    if ctype in _SIGNATURE_TYPES:  # S/MIME's smime.p7s is "attachment" too, but no content
        return
    if disposition == "attachment" or has_name:
        found.attachment = True
    elif ctype.startswith("message/") and ctype not in _REPORT_TYPES:
        found.attachment = True  # a forwarded message is content
    elif ctype == "text/plain" and found.plain is None:
        found.plain = (data, params, cte, complete)
    elif ctype == "text/html" and found.html is None:
        found.html = (data, params, cte, complete)
    elif not is_text and not ctype.startswith("message/"):
        found.attachment = True  # a bare image or application part without a name


def _media_type(value: str) -> str:
    """A parsed Content-Type, or text/plain for a missing or malformed one (RFC 2045 5.2)."""
    kind, slash, sub = value.partition("/")
    return value if slash and kind and sub else "text/plain"


def _split_multipart(data: bytes, boundary: bytes) -> tuple[list[tuple[bytes, bool]], bool]:
    """The parts between ``--boundary`` lines: [(part, complete)], and whether "--boundary--"
    closed the body. One forward scan with bytes.find."""
    delimiter = b"--" + boundary
    parts: list[tuple[bytes, bool]] = []
    start = _next_delimiter(data, delimiter, 0)
    while start >= 0 and len(parts) < _MAX_PARTS:
        after = start + len(delimiter)
        if data.startswith(b"--", after):
            return parts, True
        line_end = data.find(b"\n", after)
        if line_end < 0:
            break
        part_start = line_end + 1
        nxt = _next_delimiter(data, delimiter, part_start)
        if nxt < 0:
            parts.append((data[part_start:], False))
            break
        part_end = nxt - 1 if nxt > part_start else part_start  # the line break is the delimiter's
        if part_end > part_start and data[part_end - 1 : part_end] == b"\r":
            part_end -= 1
        parts.append((data[part_start:part_end], True))
        start = nxt
    return parts, False


def _next_delimiter(data: bytes, delimiter: bytes, pos: int) -> int:
    """The offset of the next line that is ``delimiter`` (optionally ``--`` and blanks), or -1."""
    while True:
        if pos == 0 and data.startswith(delimiter):
            at = 0
        else:
            found = data.find(b"\n" + delimiter, max(pos - 1, 0))
            if found < 0:
                return -1
            at = found + 1
        tail = data[at + len(delimiter) : at + len(delimiter) + 2]
        if tail in (b"", b"--") or tail[:1] in (b"\r", b"\n", b" ", b"\t"):
            return at
        pos = at + len(delimiter)


def _header_end(part: bytes) -> tuple[int, int]:
    """(end of the part's header block, start of its body), or (-1, -1) if cut inside it."""
    if part.startswith((b"\r\n", b"\n")):
        return 0, 2 if part.startswith(b"\r\n") else 1
    window = part[:_MAX_HEADER_BLOCK]
    ends = [(i, i + len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := window.find(sep)) >= 0]
    return min(ends) if ends else (-1, -1)


def _part_headers(block: bytes) -> dict[str, str]:
    """The three MIME headers of a part, unfolded; names lowercase."""
    wanted = ("content-type", "content-transfer-encoding", "content-disposition")
    headers: dict[str, str] = {}
    name = ""
    for line in block.decode("latin-1").replace("\r\n", "\n").split("\n")[:200]:
        if line[:1] in (" ", "\t") and name:
            if len(headers[name]) < _MAX_PARAM_VALUE:
                headers[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        name = key.strip().lower() if colon else ""
        if name in wanted and name not in headers:
            headers[name] = value.strip()[:_MAX_PARAM_VALUE]
        else:
            name = ""
    return headers


def _parse_value(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype" or disposition, lowercase; {param: value}) of a header value; linear.

    RFC 2231 names ("filename*", "filename*0*") count under their base name.
    """
    value = value[:_MAX_PARAM_VALUE]
    # Without a quote nothing is quoted or escaped, and every ";" separates (the usual case,
    # "text/plain; charset=utf-8"): no walk one character at a time is needed.
    pieces = _split_outside_quotes(value) if '"' in value else value.split(";")
    main = "".join(pieces[0].split()).lower()
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        key, equals, val = piece.partition("=")
        key = key.strip().lower().split("*", 1)[0]
        if equals and key and key not in params:
            val = val.strip()
            params[key] = val.split("''", 1)[1] if "''" in val else val
    return main, params


def _split_outside_quotes(value: str) -> list[str]:
    """``value`` split at the semicolons outside quoted strings, quotes and escapes removed."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for c in value:
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
            continue
        elif c == '"':
            quoted = not quoted
            continue
        elif c == ";" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(c)
    pieces.append("".join(current))
    return pieces


def _decode_text(payload: bytes, charset: str, cte: str) -> str:
    if cte == "base64":
        # Postel, as headers.py does: drop what is not base64 (padding too), drop an impossible
        # last sextet (a cut body), pad again; a cut multi-byte character becomes U+FFFD.
        alphabet = payload.translate(None, _NOT_BASE64)
        if len(alphabet) % 4 == 1:
            alphabet = alphabet[:-1]
        try:
            payload = binascii.a2b_base64(alphabet + b"=" * (-len(alphabet) % 4))
        except binascii.Error:
            payload = b""
    elif cte == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    name = charset.strip().strip('"').lower()[:64]
    name = _CHARSET_SUPERSETS.get(name, name)
    try:
        if name and codecs.lookup(name).name not in ("punycode", "idna"):
            return payload.decode(name, "replace")
    except (LookupError, ValueError):  # unknown labels, and bytes codecs such as "base64"
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("cp1252", "replace")


def closing_quote(
    item: Mapping[str, object],
    body_fields: Sequence[tuple[str, str]],
    *,
    has_attachment: bool,
    extra_phrases: Sequence[str] = (),
) -> str | None:
    """The words of a helpdesk comment that is only a closing phrase ("Thanks!"), else None.

    ``body_fields`` are (key, content type) pairs in the order to try: the first non-empty
    string is read (a vendor's plain text before its HTML). No body reads as a customer
    message. Only the verdict's quote (at most ``MAX_QUOTE_CHARS``) leaves this function.
    """
    for key, content_type in body_fields:
        text = item.get(key)
        if isinstance(text, str) and text.strip():
            verdict = closing_message(
                text,
                content_type=content_type,
                has_attachment=has_attachment,
                extra_phrases=extra_phrases,
            )
            return verdict.quote if verdict.is_closing else None
    return None
