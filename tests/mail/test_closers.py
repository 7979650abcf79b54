"""Closing messages: phrases per language, real reply mails, MIME bodies, hostile input.

Timing lives in bench/closers.py; here hostile input is checked by what comes out.
"""

from __future__ import annotations

import base64
import email
import quopri
from email import policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.mail.closers import (
    MAX_BODY_BYTES,
    MAX_TEXT_CHARS,
    ClosingVerdict,
    closing_message,
    closing_message_for_body,
    extract_message_text,
    reply_text,
)

DATA = Path(__file__).parent / "closers_data"
GITHUB = DATA / "github-email-reply-parser-emails" / "emails"
ZAPIER = DATA / "zapier-email-reply-parser-emails" / "emails"
TALON = DATA / "mailgun-talon-fixtures" / "fixtures"


def closing(quote: str) -> ClosingVerdict:
    return ClosingVerdict(is_closing=True, reason="closing", quote=quote)


def not_closing(reason: str) -> ClosingVerdict:
    return ClosingVerdict(is_closing=False, reason=reason)


# --- the phrases ---------------------------------------------------------------------------------

CLOSING = [
    pytest.param("Thanks!", id="en-thanks"),
    pytest.param("Thank you", id="en-thank-you"),
    pytest.param("Perfect, thank you so much!", id="en-perfect-thank-you-so-much"),
    pytest.param("Got it, thanks", id="en-got-it"),
    pytest.param("Great, thanks a lot!", id="en-great-thanks-a-lot"),
    pytest.param("Thank you for your help", id="en-thank-you-for-your-help"),
    pytest.param("Much appreciated 👍", id="en-appreciated-thumbs-up"),
    pytest.param("Works now, cheers!", id="en-works-now"),
    pytest.param("OK, will do", id="en-ok-will-do"),
    pytest.param("Thanks team!", id="en-thanks-team"),
    pytest.param("Thanks Sasha :)", id="en-thanks-name-emoticon"),
    pytest.param("Hi Anna, thanks!", id="en-greeting-name-thanks"),
    pytest.param("Thanks!\nAnna", id="en-name-on-last-line"),
    pytest.param("Thanks -Anna", id="en-dash-name"),
    pytest.param("Cheers, Bob", id="en-cheers-name"),
    pytest.param("Thanks!\n\nBest regards,\nAnna Schmidt", id="en-sign-off-full-name"),
    pytest.param("Oh thanks.", id="en-oh-thanks"),
    pytest.param("Danke!", id="de-danke"),
    pytest.param("Danke, Anna", id="de-danke-name"),
    pytest.param("Vielen Dank für die schnelle Antwort!", id="de-vielen-dank-fuer"),
    pytest.param("Super, danke dir!", id="de-super-danke-dir"),
    pytest.param("Alles klar, danke und Grüße, Jan", id="de-alles-klar-gruesse"),
    pytest.param("Dankeschön 😊", id="de-dankeschoen-emoji"),
    pytest.param("Funktioniert jetzt. Danke!", id="de-funktioniert-jetzt"),
    pytest.param("Merci beaucoup 🙏", id="fr-merci-beaucoup"),
    pytest.param("C'est parfait, merci !", id="fr-cest-parfait"),
    pytest.param("Merci pour votre aide", id="fr-merci-pour-votre-aide"),
    pytest.param("Ça marche, merci. Bonne journée", id="fr-ca-marche"),
    pytest.param("¡Muchas gracias!", id="es-muchas-gracias"),
    pytest.param("Gracias por tu ayuda", id="es-gracias-por-tu-ayuda"),
    pytest.param("Vale, perfecto. Saludos", id="es-vale-perfecto"),
    pytest.param("Mil gracias, Lucía", id="es-mil-gracias-name"),
    pytest.param("Bedankt!", id="nl-bedankt"),
    pytest.param("Dank je wel!", id="nl-dank-je-wel"),
    pytest.param("Top, het werkt weer. Groetjes", id="nl-het-werkt-weer"),
    pytest.param("Bedankt voor je hulp", id="nl-bedankt-voor-je-hulp"),
    pytest.param("Tack så mycket!", id="sv-tack-sa-mycket"),
    pytest.param("Tack för hjälpen!", id="sv-tack-for-hjalpen"),
    pytest.param("Toppen, tack! /Erik", id="sv-slash-name"),
    pytest.param("Stort tack, det fungerar nu", id="sv-det-fungerar-nu"),
    pytest.param("👍", id="emoji-only"),
    pytest.param(":+1:", id="github-plus-one"),
]


@pytest.mark.parametrize("text", CLOSING)
def test_closing_phrases_are_closing(text: str) -> None:
    """Closing phrases, greetings, sign-offs, names and friendly emoji in six languages close."""
    assert closing_message(text) == closing(" ".join(text.split()))


NOT_CLOSING = [
    pytest.param("Thanks, but it still fails", "not only closing words", id="but-it-still-fails"),
    pytest.param("Thanks! One more thing: the export", "not only closing words", id="one-more"),
    pytest.param("Danke. Wann kommt das Update?", "question mark", id="de-question"),
    pytest.param("Merci ¿", "question mark", id="inverted-question-mark"),
    pytest.param("", "empty body", id="empty"),
    pytest.param("\n \n\t\n", "empty body", id="blank-lines"),
    pytest.param("-- \nAnna Schmidt", "empty body", id="signature-only"),
    pytest.param("Sent from my iPhone", "empty body", id="sign-off-only"),
    pytest.param("Hello", "no closing phrase", id="greeting-only"),
    pytest.param("Regards, Anna", "no closing phrase", id="sign-off-and-name"),
    pytest.param("Thank you so much for your help!", "more than 6 words", id="7-words"),
    pytest.param(
        "Hi team,\nthanks, but it still fails when I upload.",
        "more than 6 words",
        id="thanks-line-is-no-signature",
    ),  # mail-parser-reply strips it as one
    pytest.param("Thanks in advance", "not only closing words", id="en-in-advance"),
    pytest.param("Vielen Dank im Voraus", "not only closing words", id="de-im-voraus"),
    pytest.param("Merci d'avance", "not only closing words", id="fr-d-avance"),
    pytest.param("Alvast bedankt", "not only closing words", id="nl-alvast"),
    pytest.param("Yes, thanks", "not only closing words", id="yes-is-an-answer"),
    pytest.param("Done, thanks", "not only closing words", id="done-needs-a-check"),
    pytest.param("Thanks for looking into it", "not only closing words", id="still-pending"),
    pytest.param("Thanks!\nBroken", "not only closing words", id="problem-word-on-last-line"),
    pytest.param("Thanks. Cancel.", "not only closing words", id="capital-after-full-stop"),
    pytest.param("Thanks anna", "not only closing words", id="lowercase-is-no-name"),
    pytest.param("Thanks 2 u", "not only closing words", id="digits"),
    pytest.param("Thanks 😡", "a symbol that is not a friendly emoji", id="angry-emoji"),
    pytest.param("Thanks 👎", "a symbol that is not a friendly emoji", id="thumbs-down"),
    pytest.param(
        "Thanks\n\nDear Support,\nthe invoice is wrong",
        "more than 6 words",
        id="text-after-a-thanks",
    ),
    pytest.param(
        "Thanks\n\nOn Monday I wrote:\nthe printer is offline",
        "more than 6 words",
        id="no-date-no-address-no-intro",
    ),
    pytest.param(
        "Thanks!\n> your answer\n\nBut the export fails",
        "not only closing words",
        id="bottom-text-after-quote",
    ),
]


@pytest.mark.parametrize(("text", "reason"), NOT_CLOSING)
def test_other_messages_are_not_closing(text: str, reason: str) -> None:
    """Anything beyond closing words, a question, an empty body: not closing, with the reason."""
    assert closing_message(text) == not_closing(reason)


def test_an_attachment_is_never_closing() -> None:
    """With an attachment even "Thanks!" is a customer message, and so is an empty body."""
    assert closing_message("Thanks!", has_attachment=True) == not_closing("attachment")
    assert closing_message("", has_attachment=True) == not_closing("attachment")


def test_extra_phrases_extend_the_list() -> None:
    """Rules add phrases (any script), folded like the built-in ones."""
    assert closing_message("Takk skal du ha") == not_closing("not only closing words")
    assert closing_message("Takk skal du ha!", extra_phrases=["takk skal du ha"]).is_closing
    assert closing_message("谢谢!", extra_phrases=["谢谢"]) == closing("谢谢!")
    assert closing_message("GRAZIE MILLE", extra_phrases=["Grazie mille"]).is_closing


def test_max_words_is_the_limit() -> None:
    """max_words bounds the words counted after stripping; emoji are not words."""
    text = "Thank you so much for your help!"
    assert closing_message(text, max_words=7) == closing(text)
    assert closing_message(text, max_words=6) == not_closing("more than 6 words")
    assert closing_message("Merci beaucoup 🙏🙏🙏", max_words=2).is_closing


def test_the_quote_is_at_most_40_characters() -> None:
    """The stored reason quotes the words that remained, cut to 40 characters."""
    verdict = closing_message("Vielen herzlichen Dank für die schnelle Antwort!", max_words=7)
    assert verdict == closing("Vielen herzlichen Dank für die schnelle…")
    assert len(verdict.quote) == 40
    assert str(verdict) == 'closing: "Vielen herzlichen Dank für die schnelle…"'
    assert str(not_closing("attachment")) == "not closing: attachment"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {"max_words": 0},
            ValueError,
            "max_words must be between 1 and 20, got: 0",
            id="max-words-0",
        ),
        pytest.param(
            {"max_words": 40},
            ValueError,
            "max_words must be between 1 and 20, got: 40",
            id="max-words-40",
        ),
        pytest.param(
            {"extra_phrases": ["ok", "!!"]},
            ValueError,
            "extra_phrases[1] must be a phrase of at most 100 characters with a word in "
            "it, got: '!!'",
            id="phrase-without-word",
        ),
        pytest.param(
            {"extra_phrases": "danke"},
            TypeError,
            "extra_phrases must be a sequence of phrases, got the string: 'danke'",
            id="a-string-is-no-list",
        ),
    ],
)
def test_bad_arguments_are_rejected(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Arguments from rules are checked, with a message naming the value."""
    with pytest.raises(error) as raised:
        closing_message("Thanks", **kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


# --- quoted history, intros, signatures ----------------------------------------------------------

INTROS = [
    pytest.param("On Mon, 1 Dec 2026 at 10:00, Support <s@example.com> wrote:", id="en-gmail"),
    pytest.param("On 1 Dec 2026, at 10:00, Support <s@example.com> wrote:", id="en-apple"),
    pytest.param("Am Mo., 1. Dez. 2026 um 10:00 Uhr schrieb Support <s@example.com>:", id="de"),
    pytest.param("Am 01.12.2026 um 10:00 schrieb Support <s@example.com>:", id="de-apple"),
    pytest.param("Le lun. 1 déc. 2026 à 10:00, Support <s@example.com> a écrit :", id="fr"),
    pytest.param("El lun, 1 dic 2026 a las 10:00, Support (<s@example.com>) escribió:", id="es"),
    pytest.param("Op ma 1 dec. 2026 om 10:00 schreef Support <s@example.com>:", id="nl"),
    pytest.param(
        "Op 1 dec. 2026 om 10:00 heeft Support <s@example.com> het volgende geschreven:",
        id="nl-apple",
    ),
    pytest.param("Den mån 1 dec. 2026 kl 10:00 skrev Support <s@example.com>:", id="sv"),
    pytest.param("mån 1 dec. 2026 kl. 10:00 skrev Support <s@example.com>:", id="sv-weekday"),
    pytest.param("1 dec. 2026 kl. 10:00 skrev Support <s@example.com>:", id="sv-apple"),
    pytest.param("On Mon, 1 Dec 2026 at 10:00, Support\n<s@example.com>\nwrote:", id="wrapped"),
    pytest.param("--- On Mon, 1/12/26, s@example.com <s@example.com> wrote:", id="yahoo"),
]


@pytest.mark.parametrize("intro", INTROS)
def test_intro_lines_and_quotes_are_history(intro: str) -> None:
    """Each client's "On ... wrote:" line, in six languages, is removed with the quote below."""
    text = f"Thanks!\n\n{intro}\n\n> Hello, we fixed it.\n> Is there anything else?\n"
    assert reply_text(text) == "Thanks!"
    assert closing_message(text) == closing("Thanks!")


HEADER_BLOCKS = [
    pytest.param(
        "From: Support <s@example.com>\nSent: Monday, 1 December 2026 10:00\n"
        "To: Anna\nSubject: RE: Invoice",
        id="en-outlook",
    ),
    pytest.param("*From:* Support <s@example.com>\n*Sent:* Monday\n*To:* Anna", id="en-bold"),
    pytest.param(
        "Von: Support <s@example.com>\nGesendet: Montag, 1. Dezember 2026 10:00\n"
        "An: Anna\nBetreff: AW: Rechnung",
        id="de-outlook",
    ),
    pytest.param(
        "De : Support <s@example.com>\nEnvoyé : lundi 1 décembre 2026 10:00\n"
        "À : Anna\nObjet : RE: Facture",
        id="fr-outlook",
    ),
    pytest.param(
        "De: Support <s@example.com>\nEnviado: lunes, 1 de diciembre de 2026 10:00\n"
        "Para: Anna\nAsunto: RE: Factura",
        id="es-outlook",
    ),
    pytest.param(
        "Van: Support <s@example.com>\nVerzonden: maandag 1 december 2026 10:00\n"
        "Aan: Anna\nOnderwerp: RE: Factuur",
        id="nl-outlook",
    ),
    pytest.param(
        "Från: Support <s@example.com>\nSkickat: den 1 december 2026 10:00\n"
        "Till: Anna\nÄmne: SV: Faktura",
        id="sv-outlook",
    ),
    pytest.param("-----Original Message-----\nFrom: s@example.com", id="original-message"),
    pytest.param("-----Ursprüngliche Nachricht-----", id="de-original"),
    pytest.param("---------- Forwarded message ---------", id="forwarded"),
    pytest.param("Begin forwarded message:", id="apple-forward"),
    pytest.param("##- Please type your reply above this line -##", id="zendesk-marker"),
]


@pytest.mark.parametrize("block", HEADER_BLOCKS)
def test_header_blocks_and_separators_start_history(block: str) -> None:
    """Outlook header blocks, original/forwarded lines and helpdesk markers end the reply."""
    text = f"Danke!\n\n{block}\n\nWhy is the invoice wrong? Please check it.\n"
    assert reply_text(text) == "Danke!"
    assert closing_message(text) == closing("Danke!")


@pytest.mark.parametrize(
    "signoff",
    [
        "Sent from my iPhone", "Von meinem iPhone gesendet", "Envoyé de mon iPhone",
        "Enviado desde mi iPhone", "Verzonden vanaf mijn iPhone", "Verstuurd vanaf mijn iPad",
        "Skickat från min iPhone", "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Sent from Yahoo Mail for Android",
    ],
)  # fmt: skip
def test_mobile_sign_offs_are_dropped(signoff: str) -> None:
    """Mail apps' sign-off lines are no words of the customer's."""
    assert closing_message(f"Thanks!\n\n{signoff}") == closing("Thanks!")


def test_a_line_that_only_looks_like_an_intro_is_kept() -> None:
    """No date, no verb, no address: "On your remote host ..." is the customer's text."""
    assert reply_text("On your remote host you can run:\n\n  telnet x") == (
        "On your remote host you can run:\ntelnet x"
    )


def test_an_intro_without_quote_needs_verb_and_address() -> None:
    """Gmail's unquoted history counts only under "... <address> wrote:"; a dated line with a
    colon and no quote below is the customer's."""
    assert reply_text("Thanks\n\nOn 2 Dec I noted:\nthe printer is offline") == (
        "Thanks\nOn 2 Dec I noted:\nthe printer is offline"
    )
    assert reply_text("Thanks\n\nOn 2 Dec 2026, Anna <a@example.com> wrote:\nold text") == "Thanks"


def test_inline_answers_below_a_quote_are_the_customer_s() -> None:
    """Bottom posting and inline answers: text between quote blocks is read."""
    text = "On Mon, 1 Dec 2026 at 10:00, S <s@example.com> wrote:\n> Works?\nNo.\n> Sure?\nYes."
    assert reply_text(text) == "No.\nYes."
    bottom = "On Mon, 1 Dec 2026 at 10:00, S <s@example.com> wrote:\n> Fixed.\n\nGreat, thanks!"
    assert closing_message(bottom) == closing("Great, thanks!")


# --- real reply mails ----------------------------------------------------------------------------

GITHUB_REPLIES = {
    "correct_sig.txt": "this is an email with a correct -- signature.",
    "email_1_4.txt": "Awesome! I haven't had another problem with it.",
    "email_1_7.txt": ":+1:",
    "email_1_8.txt": "I will reply under this one\nand under this.",
    "email_2_1.txt": "Outlook with a reply",
    "email_2_2.txt": "Outlook with a reply directly above line",
    "email_2_3.txt": "Outlook with a reply directly above line",
    "email_1_6.txt": "I get proper rendering as well.\nSent from a magnificent torch of pixels",
    "email_BlackBerry.txt": "Here is another email",
    "email_iPhone.txt": "Here is another email",
    "email_multi_word_sent_from_my_mobile_device.txt": "Here is another email",
    "email_sent_from_my_not_signature.txt":
        "Here is another email\nSent from my desk, is much easier then my mobile phone.",
    "email_sig_delimiter_in_middle_of_line.txt":
        "Hi there!\nStuff happened.\nAnd here is a fix -- this is not a signature.\nkthxbai",
    "email_one_is_not_on.txt": "Thank, this is really helpful.\nOne outstanding question I had:\n"
                               "Locally (on development), when I run...",
    "pathological.txt": "I think you're onto something. I will try to fix the problem as soon as "
                        "I\nget back to a computer.",
}  # fmt: skip
ZAPIER_REPLIES = {
    "email_2_3.txt": "Outlook with a reply above headers using unusual format",
    "email_gmail.txt": "This is a test for inbox replying to a github message.",
    "email_headers_no_delimiter.txt": "And another reply!",
}


REAL_REPLIES = [
    *(
        pytest.param(GITHUB / name, text, id=f"github-{name}")
        for name, text in GITHUB_REPLIES.items()
    ),
    *(
        pytest.param(ZAPIER / name, text, id=f"zapier-{name}")
        for name, text in ZAPIER_REPLIES.items()
    ),
]


@pytest.mark.parametrize(("path", "expected"), REAL_REPLIES)
def test_real_replies_keep_only_the_reply(path: Path, expected: str) -> None:
    """github/email_reply_parser's and zapier's test mails: quotes, intros (wrapped, CRLF),
    Outlook headers and phone sign-offs go; bullets and "--" inside a line stay."""
    assert reply_text(path.read_text(encoding="utf-8")) == expected


@pytest.mark.parametrize(
    ("path", "reply"),
    [
        pytest.param(
            GITHUB / "email_1_4.txt",
            "Awesome! I haven't had another problem with it.",
            id="github-1-4-apple",
        ),
        pytest.param(
            GITHUB / "email_2_2.txt",
            "Outlook with a reply directly above line",
            id="github-2-2-outlook",
        ),
        pytest.param(GITHUB / "email_iPhone.txt", "Here is another email", id="github-iphone"),
        pytest.param(
            ZAPIER / "email_gmail.txt",
            "This is a test for inbox replying to a github message.",
            id="zapier-gmail",
        ),
        pytest.param(
            ZAPIER / "email_headers_no_delimiter.txt", "And another reply!", id="zapier-headers"
        ),
    ],
)
def test_real_replies_with_a_thank_you_instead_are_closing(path: Path, reply: str) -> None:
    """The same mails with their reply replaced by a thank-you close; as written they do not."""
    text = path.read_text(encoding="utf-8")
    assert not closing_message(text).is_closing
    assert closing_message(text.replace(reply, "Thanks a lot!", 1)) == closing("Thanks a lot!")


@pytest.mark.parametrize(
    "path", [pytest.param(GITHUB / "email_1_3.txt", id="github-1-3-oh-thanks-and-more")]
)
def test_a_thanks_followed_by_more_is_not_closing(path: Path) -> None:
    """ "Oh thanks." above "Having the function would be great." stays a customer message."""
    assert closing_message(path.read_text(encoding="utf-8")) == not_closing("more than 6 words")


def split_message(path: Path) -> tuple[bytes, str | None, str | None]:
    """A stored .eml as the IMAP source sees it: BODY[TEXT] bytes and two header values."""
    raw = path.read_bytes().replace(b"\r\n", b"\n")
    message = email.message_from_bytes(raw, policy=policy.compat32)
    return raw.split(b"\n\n", 1)[1], message["Content-Type"], message["Content-Transfer-Encoding"]


TALON_REPLIES = sorted((TALON / "standard_replies").glob("*.eml"))


@pytest.mark.parametrize("path", TALON_REPLIES, ids=lambda p: f"talon-{p.stem}")
def test_real_client_mails_read_from_mime(path: Path) -> None:
    """talon's mails from 12 clients (base64, quoted-printable, 7bit, multipart): the first
    text part's reply is "Hello", a greeting, so no closing."""
    body, content_type, encoding = split_message(path)
    found = extract_message_text(body, content_type=content_type, transfer_encoding=encoding)
    assert (found.content_type, found.has_attachment, found.truncated) == (
        "text/plain",
        False,
        False,
    )
    assert reply_text(found.text) == "Hello"
    verdict = closing_message_for_body(body, content_type=content_type, transfer_encoding=encoding)
    assert verdict == not_closing("no closing phrase")


@pytest.mark.parametrize("path", TALON_REPLIES, ids=lambda p: f"talon-{p.stem}")
def test_real_client_mails_saying_thanks_are_closing(path: Path) -> None:
    """The same mails with "Hello" replaced by "Thanks a lot!" in the encoded text part."""
    body, content_type, encoding = split_message(path)
    head, _, rest = body.partition(b"\n\n")  # the first part's headers, if multipart
    if b"base64" in head.lower():
        encoded = rest.split(b"\n\n", 1)[0]
        decoded = base64.b64decode(encoded).replace(b"Hello", b"Thanks a lot!", 1)
        body = body.replace(encoded, base64.encodebytes(decoded).rstrip(), 1)
    else:
        body = body.replace(b"Hello", b"Thanks a lot!", 1)
    verdict = closing_message_for_body(body, content_type=content_type, transfer_encoding=encoding)
    assert verdict == closing("Thanks a lot!")


TALON_HTML = sorted((TALON / "html_replies").glob("*.html"))


@pytest.mark.parametrize("path", TALON_HTML, ids=lambda p: f"talon-{p.stem}")
def test_real_html_replies(path: Path) -> None:
    """talon's HTML replies (Gmail, Outlook 2003-2010, Thunderbird, Windows Mail, mail.ru,
    Yandex): "Hi. I am fine." is content; without it "Thanks, Alex" closes."""
    markup = path.read_text(encoding="utf-8")
    assert reply_text(markup, content_type="text/html") == "Hi. I am fine.\nThanks,\nAlex"
    assert closing_message(markup, content_type="text/html") == not_closing(
        "not only closing words"
    )
    thanks_only = markup.replace("Hi. I am fine.", "", 1)
    assert closing_message(thanks_only, content_type="text/html") == closing("Thanks, Alex")


@pytest.mark.parametrize(
    ("name", "reply"),
    [("reply-separated-by-hr.html", "Hi\nthere\nBob"), ("OLK_SRC_BODY_SECTION.html", "Reply")],
)
def test_html_header_blocks_end_the_reply(name: str, reply: str) -> None:
    """An <hr> or Outlook's OLK section before From/To/Sent/Subject lines ends the reply."""
    assert reply_text((TALON / name).read_text(encoding="utf-8"), content_type="text/html") == reply


def test_a_long_unwrapped_paragraph_is_not_closing() -> None:
    """talon's base64 booking reply is one long line: content, never matched as a pattern."""
    body, content_type, encoding = split_message(TALON / "reply-quotations-share-block.eml")
    verdict = closing_message_for_body(body, content_type=content_type, transfer_encoding=encoding)
    assert verdict == not_closing("a line longer than 300 characters")


# --- MIME bodies ---------------------------------------------------------------------------------

CRLF = b"\r\n"


def part(headers: str, payload: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + CRLF + CRLF + payload


def multipart(boundary: str, *parts: bytes, closed: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode() + CRLF + p + CRLF for p in parts)
    return body + (b"--" + boundary.encode() + b"--" + CRLF if closed else b"")


REPLY = (
    "Danke schön!\r\n\r\nAm 1. Dez. 2026 um 10:00 schrieb Support <s@example.com>:\r\n> Hallo\r\n"
)


def test_quoted_printable_and_base64_bodies_decode_with_their_charset() -> None:
    """A single-part body in quoted-printable latin-1 or base64 UTF-8 reads like plain text."""
    qp = quopri.encodestring(REPLY.encode("latin-1"))
    assert closing_message_for_body(
        qp, content_type='text/plain; charset="ISO-8859-1"', transfer_encoding="Quoted-Printable"
    ) == closing("Danke schön!")
    b64 = base64.encodebytes(REPLY.encode("utf-8"))
    found = extract_message_text(b64, content_type="text/plain; charset=utf-8",
                                 transfer_encoding="base64")  # fmt: skip
    assert found.text == REPLY
    utf16 = "Tack så mycket!".encode("utf-16")
    assert closing_message_for_body(utf16, content_type="text/plain; charset=utf-16") == closing(
        "Tack så mycket!"
    )


@pytest.mark.parametrize(
    "charset", ["bogus-123", "base64", "punycode", "x" * 500], ids=["unknown", "bytes-codec",
                                                                    "punycode", "long"]
)  # fmt: skip
def test_charsets_that_are_no_charset_fall_back_to_utf8(charset: str) -> None:
    """An unknown or non-text charset label decodes as UTF-8 (else cp1252), never raises."""
    body = "Merci à vous".encode()
    found = extract_message_text(body, content_type=f"text/plain; charset={charset}")
    assert found.text == "Merci à vous"


def test_a_multipart_with_an_attachment_is_not_closing() -> None:
    """multipart/mixed with an alternative and a PDF: the text is found, the PDF counts."""
    alternative = multipart(
        "alt",
        part("Content-Type: text/plain; charset=utf-8", REPLY.encode()),
        part("Content-Type: text/html", b"<p>Danke sch&ouml;n!</p>"),
    )
    body = multipart(
        "mix",
        part('Content-Type: multipart/alternative; boundary="alt"', alternative),
        part('Content-Type: application/pdf; name="invoice.pdf"\n'
             "Content-Disposition: attachment; filename*=UTF-8''Rechnung.pdf\n"
             "Content-Transfer-Encoding: base64", b"JVBERi0xLjQK"),
    )  # fmt: skip
    found = extract_message_text(body, content_type='multipart/mixed; boundary="mix"')
    assert (found.text, found.content_type, found.has_attachment) == (REPLY, "text/plain", True)
    verdict = closing_message_for_body(body, content_type="multipart/mixed; boundary=mix")
    assert verdict == not_closing("attachment")


@pytest.mark.parametrize(
    ("attachment", "counts"),
    [
        pytest.param(
            "Content-Type: image/png; name=image001.png\nContent-ID: <i1>",
            True,
            id="inline-image-with-name",
        ),
        pytest.param("Content-Type: image/png", True, id="image-without-name"),
        pytest.param("Content-Type: text/plain; name=notes.txt", True, id="text-with-name"),
        pytest.param(
            "Content-Type: text/csv\nContent-Disposition: attachment",
            True,
            id="disposition-attachment",
        ),
        pytest.param("Content-Type: message/rfc822", True, id="forwarded-message"),
        pytest.param(
            "Content-Type: application/pkcs7-signature; name=smime.p7s\n"
            "Content-Disposition: attachment; filename=smime.p7s",
            False,
            id="smime-signature",
        ),
        pytest.param("Content-Type: application/pgp-signature", False, id="pgp-signature"),
        pytest.param("Content-Type: text/html; charset=utf-8", False, id="html-alternative"),
    ],
)
def test_which_parts_are_attachments(attachment: str, counts: bool) -> None:
    """Content-Disposition: attachment, or any other part with a file name, or a non-text part;
    signatures and alternatives are not."""
    body = multipart("b", part("Content-Type: text/plain", b"Thanks!"), part(attachment, b"x"))
    found = extract_message_text(body, content_type="multipart/mixed; boundary=b")
    assert (found.text, found.has_attachment) == ("Thanks!", counts)


def test_a_body_cut_inside_the_text_part_is_read_as_far_as_it_goes() -> None:
    """A cut text part is read up to the cut; a cut above the intro is no verdict of closing."""
    body = multipart("b", part("Content-Type: text/plain", REPLY.encode()), closed=False)
    found = extract_message_text(body[:64], content_type="multipart/alternative; boundary=b",
                                 truncated=True)  # fmt: skip
    assert (found.text, found.truncated) == ("Danke schön!\r\n\r\nAm 1. Dez. 202", True)
    assert closing_message(found.text, truncated=True) == not_closing(
        "cut off before the end of the reply"
    )
    cut_in_quote = extract_message_text(body[:-5], content_type="multipart/alternative; boundary=b",
                                        truncated=True)  # fmt: skip
    assert cut_in_quote.truncated
    assert closing_message(cut_in_quote.text, truncated=True) == closing("Danke schön!")
    short = b"--b\r\nContent-Type: text/plain\r\n\r\nThanks! And then the"
    assert closing_message_for_body(short, content_type="multipart/alternative; boundary=b",
                                    truncated=True) == not_closing(
        "cut off before the end of the reply"
    )  # fmt: skip


def test_a_top_posted_thanks_with_signature_survives_a_cut_quote() -> None:
    """Cut inside the quote below a signed top post: the rest is more quote, the reply is whole."""
    text = "Thanks!\n-- \nAnna\n\nOn Mon, 1 Dec 2026, S <s@example.com> wrote:\n> Hel"
    assert closing_message(text, truncated=True) == closing("Thanks!")
    bottom = "On Mon, 1 Dec 2026, S <s@example.com> wrote:\n> Hel"
    assert closing_message(bottom, truncated=True) == not_closing(
        "cut off before the end of the reply"
    )


def test_a_cut_html_alternative_leaves_the_plain_part_whole() -> None:
    """Cut inside the HTML alternative: the plain part ended at its boundary, so it is whole."""
    body = multipart("b", part("Content-Type: text/plain", b"Thanks!"), closed=False)
    body += b"--b\r\nContent-Type: text/html\r\n\r\n<html><head><style>" + b"p{}" * 1000
    verdict = closing_message_for_body(body, content_type="multipart/alternative; boundary=b",
                                       truncated=True)  # fmt: skip
    assert verdict == closing("Thanks!")


def test_a_cut_mixed_body_may_hide_attachments() -> None:
    """Cut inside multipart/mixed before any part after the text: attachments may follow."""
    body = multipart("m", part("Content-Type: text/plain", b"Thanks!"), closed=False)
    found = extract_message_text(body, content_type="multipart/mixed; boundary=m", truncated=True)
    assert (found.text, found.parts_cut_off, found.has_attachment) == ("Thanks!\r\n", True, False)
    verdict = closing_message_for_body(body, content_type="multipart/mixed; boundary=m",
                                       truncated=True)  # fmt: skip
    assert verdict == not_closing("attachments may follow the cut")


def test_a_cut_inside_part_headers_and_a_missing_text_part() -> None:
    """Part headers cut off, or no text part at all: nothing to read, so no closing."""
    cut = b"--b\r\nContent-Type: text/pl"
    assert closing_message_for_body(
        cut, content_type="multipart/alternative; boundary=b", truncated=True
    ) == not_closing("no text part")
    assert closing_message_for_body(
        cut, content_type="multipart/mixed; boundary=b", truncated=True
    ) == not_closing("attachments may follow the cut")
    assert closing_message_for_body(b"%PDF-1.4", content_type="application/pdf") == not_closing(
        "attachment"
    )


def test_an_html_only_body_is_converted() -> None:
    """No text/plain part: the HTML one is read, blockquotes as quotes."""
    markup = (
        "<html><head><style>p{color:red}</style><title>x</title></head><body>"
        "<div>Merci beaucoup&nbsp;!</div><div class=gmail_quote>Le lun. 1 déc. 2026 à 10:00, "
        "Support &lt;s@example.com&gt; a écrit :<br><blockquote>Bonjour ?</blockquote></div>"
        "<!-- a comment? --></body></html>"
    )
    qp = quopri.encodestring(markup.encode())
    verdict = closing_message_for_body(
        qp, content_type="text/html; charset=utf-8", transfer_encoding="quoted-printable"
    )
    assert verdict == closing("Merci beaucoup !")


def test_missing_or_malformed_content_types_are_plain_text() -> None:
    """RFC 2045: no Content-Type, or a malformed one, is text/plain."""
    for value in (None, "", "text", "garbage; charset=utf-8"):
        assert closing_message_for_body(b"Thanks!", content_type=value) == closing("Thanks!")


def test_graph_previews_and_helpdesk_comments() -> None:
    """Graph's bodyPreview (a cut is 255 characters) and helpdesk HTML comments."""
    preview = "Thanks!\r\n\r\nFrom: Support <s@example.com>\r\nSent: Monday\r\nTo: Anna\r\nSu"
    assert closing_message(preview, truncated=True) == closing("Thanks!")
    cut = "Thanks, and here is what happens when I try the export again " + "x" * 200
    assert closing_message(cut[:255], truncated=True) == not_closing("more than 6 words")
    assert closing_message("Danke", truncated=True) == not_closing(
        "cut off before the end of the reply"
    )
    assert closing_message("<p>Danke!</p><p>Anna</p>", content_type="text/html") == closing(
        "Danke! Anna"
    )


# --- hostile input: bounded, checked by its output (timing: bench/closers.py) --------------------

KIB16 = 16 * 1024


def fill(pattern: str, size: int = KIB16) -> str:
    return (pattern * (size // len(pattern) + 1))[:size]


HOSTILE_TEXT = [
    pytest.param(fill("word "), "a line longer than 300 characters", id="one-long-line"),
    pytest.param("x" * KIB16, "a line longer than 300 characters", id="no-newlines"),
    pytest.param(fill(">\n"), "empty body", id="many-quote-lines"),
    pytest.param(">" * KIB16, "empty body", id="one-line-of-quote-marks"),
    pytest.param("Thanks\n" + fill("> x\n\n"), "closing", id="quote-and-blank-runs"),
    pytest.param(fill("On x wrote:\n"), "more than 6 words", id="on-x-wrote-lines"),
    pytest.param(fill("On 1 Dec 2026, x wrote:\n"), "more than 6 words", id="dated-intro-lines"),
    pytest.param(fill("On 1 Dec 2026, a <a@b.c>\n"), "more than 6 words", id="unfinished-intros"),
    pytest.param(fill("Am schrieb "), "a line longer than 300 characters", id="am-schrieb"),
    pytest.param(fill("From: x\n"), "more than 6 words", id="from-lines"),
    pytest.param(fill("From: x\nSent: y\n"), "more than 6 words", id="two-header-kinds"),
    pytest.param(fill("From: x\nSent: y\nTo: z\n"), "empty body", id="header-blocks"),
    pytest.param(fill("\n"), "empty body", id="newlines-only"),
    pytest.param(fill(" \t\n"), "empty body", id="whitespace-lines"),
    pytest.param(fill("--\n"), "empty body", id="signature-delimiters"),
    pytest.param("Sent from my x\n" * 1000, "more than 24 lines", id="sign-off-lines"),
    pytest.param(
        "Thanks\n-- \n" + "x\n" * 7000 + "> q\nWhy?",
        "question mark",
        id="question-after-a-long-signature",
    ),
    pytest.param("Thanks " + "🙏" * 8000, "a line longer than 300 characters", id="emoji-line"),
    pytest.param("Thanks\n" + "🙏\n" * 8000, "more than 24 lines", id="emoji-lines"),
    pytest.param("\x00" * KIB16, "empty body", id="nul-bytes"),
    pytest.param(
        "Thanks\n\n" + "x" * (MAX_TEXT_CHARS * 64), "a line longer than 300 characters", id="1-mib"
    ),
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE_TEXT)
def test_hostile_text_is_bounded(text: str, reason: str) -> None:
    """Patterns that make regex-based reply parsers backtrack give an ordinary verdict here."""
    assert closing_message(text).reason == reason
    assert len(reply_text(text)) <= MAX_TEXT_CHARS


CUT = "cut off before the end of the reply"
HOSTILE_HTML = [
    pytest.param("<" * 60_000, CUT, id="only-lt"),
    pytest.param("<a>" * 20_000, "empty body", id="many-tags"),
    pytest.param("<p>Danke</p>" + "<a>" * 30_000, CUT, id="over-64-kib"),
    pytest.param("Danke<!--" + "x" * 60_000, CUT, id="unclosed-comment"),
    pytest.param("<style>" + "x" * 60_000, "empty body", id="unclosed-style"),
    pytest.param("Merci" + "<blockquote>" * 5_000 + "x", "closing", id="nested-blockquotes"),
    pytest.param("&amp;" * 12_000, "a line longer than 300 characters", id="entities"),
    pytest.param("<?xml version='1.0'?><p>Danke</p>", "closing", id="xml-declaration"),
]


@pytest.mark.parametrize(("markup", "reason"), HOSTILE_HTML)
def test_hostile_html_is_bounded(markup: str, reason: str) -> None:
    """Unclosed comments and tags, deep nesting, entity floods: linear, ordinary verdicts."""
    assert closing_message(markup, content_type="text/html").reason == reason


def test_hostile_mime_is_bounded() -> None:
    """Thousands of parts, deep nesting, boundary look-alikes, base64 junk: bounded."""
    many = b"--b\r\n\r\nx\r\n" * 20_000
    found = extract_message_text(many, content_type="multipart/mixed; boundary=b", truncated=True)
    assert (found.text, found.parts_cut_off) == ("x", True)
    nested = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                      for i in range(50))  # fmt: skip
    deep = extract_message_text(nested, content_type="multipart/mixed; boundary=b0", truncated=True)
    assert (deep.content_type, deep.has_attachment) == ("", True)
    lookalikes = b"--bx\r\n" * 10_000 + b"--b\r\nContent-Type: text/plain\r\n\r\nThanks!\r\n--b--"
    assert closing_message_for_body(lookalikes, content_type="multipart/mixed; boundary=b") == (
        closing("Thanks!")
    )
    junk = b"!" * MAX_BODY_BYTES * 2
    assert (
        extract_message_text(junk, content_type="text/plain", transfer_encoding="base64").text == ""
    )
    headers_only = b"--b\r\nX-A: " + b"a" * MAX_BODY_BYTES
    assert extract_message_text(headers_only, content_type="multipart/mixed; boundary=b").text == ""


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_a_question_below_any_reply_is_never_closing(text: str) -> None:
    """Whatever the reply, a question line added below it (outside quotes) is not closing."""
    verdict = closing_message(text + "\n\nCan you check the invoice?")
    assert not verdict.is_closing


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=600),
    st.sampled_from(
        ["multipart/mixed; boundary=b", "text/html", "text/plain; charset=utf-16", None]
    ),
)
def test_any_body_gives_a_verdict(body: bytes, content_type: str | None) -> None:
    """No byte string raises; a verdict always comes back with a reason."""
    verdict = closing_message_for_body(b"--b\r\n" + body, content_type=content_type, truncated=True)
    assert verdict.reason
