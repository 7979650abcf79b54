"""Decide what one email means for the reply clock, from its headers and folder alone.

``classify`` walks a fixed ladder and stops at the first rung that matches; the order is the
policy (each rung says why in ``Classification.reason``, shown by ``replyclock explain``):

1. Bounces and reports, in any folder and from any sender, the team's own MTA included:
   Content-Type multipart/report, X-Failed-Recipients, From MAILER-DAEMON/postmaster or From <>.
2. Automated mail (RFC 3834 and vendor markers), in any folder: Auto-Submitted other than "no",
   X-Autoreply, X-Autorespond, X-Apple-Action: vacation, Precedence auto_reply/junk/bulk
   (bulk on list mail is left to the list rung), the null sender (Return-Path <>), and as a
   last resort an auto-reply subject *combined with* In-Reply-To or X-Auto-Response-Suppress
   (iCloud, Request Tracker and Exchange auto-replies in the corpora carry no Auto-Submitted).
   From the team or in the Sent folder this is "our own auto-reply": it must not stop a clock.
3. Contact forms, outside the Sent folder: From a team address, a no-reply address or a
   ``form_senders`` pattern, with exactly one Reply-To outside the team (and not itself a
   no-reply or ignored address). A web form sends the customer's words this way; the
   message is a customer message and the Reply-To address is the customer
   (``contact_forms: false`` turns this off).
4. Senders the mailbox ignores (``ignore_senders`` globs, ``ignore_domains``), in any folder:
   a notification the team's tooling sends as noreply@ must not stop a clock either.
5. Mailing lists, when ``mailing_lists == "ignore"``, in any folder (a Sent copy only carries
   List-Id or List-Unsubscribe when it is a newsletter, not a reply) -- except the team's own
   list (a Google Group used as the support address), whose List-Id is the team address.
6. The Sent folder: outbound.
7. From a team address or team domain: outbound (a teammate replying from their own account).
8. Everything else: a customer message, inbound -- also with no From at all, so nothing is lost.

Subject heuristics alone never ignore a message: a customer may well write "Out of office
replies not working"; only an auto-reply-shaped subject that is also a reply (In-Reply-To) or
carries Microsoft's X-Auto-Response-Suppress counts. X-Auto-Response-Suppress alone does not
count either: it asks others not to auto-reply, which ordinary senders' tools also set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from typing import Literal

from monitor.mail.headers import ParsedHeaders
from monitor.model import Direction, FolderRole

__all__ = ["DEFAULT_IGNORE_SENDERS", "Classification", "MailboxIdentity", "classify"]

# Conservative: addresses that by name or by fact never carry a customer's words.
DEFAULT_IGNORE_SENDERS: tuple[str, ...] = (
    "noreply@*",
    "no-reply@*",
    "no_reply@*",
    "donotreply@*",
    "do-not-reply@*",
    "do_not_reply@*",
    "*-noreply@*",
    "*-no-reply@*",
    "*.noreply@*",
    "notifications@github.com",
    "staff@hotmail.com",  # Outlook.com's junk-mail feedback loop (JMRP) complaints
)

# The no-reply addresses a contact form may send from (the customer is in Reply-To).
NO_REPLY_SENDERS: tuple[str, ...] = tuple(p for p in DEFAULT_IGNORE_SENDERS if "reply" in p)

# Local parts of the addresses MTAs send delivery reports from; "post_master" is Verizon's.
_BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "mailer_daemon", "postmaster", "post_master"})
_REPORT_KINDS = {
    "delivery-status": "bounce",
    "disposition-notification": "read receipt",
    "feedback-report": "abuse report",
}
_REPORT_TYPE = re.compile(r"report-type\s*=\s*\"?([A-Za-z0-9-]+)", re.IGNORECASE)
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "Mailing-List", "X-Mailing-List", "X-MLServer")
# The fields the automated-mail and list rungs read; most mail has none of them, and then
# those rungs have only the subject, the Return-Path and the Sender left to look at.
_MARKER_FIELDS = frozenset(
    name.lower()
    for name in (
        *_LIST_HEADERS,
        "Auto-Submitted",
        "X-Autoreply",
        "X-Autorespond",
        "X-Apple-Action",
        "Precedence",
        "X-Auto-Response-Suppress",
    )
)
# How Outlook, Exchange, RT, iCloud, Zimbra and others label auto-replies, case-folded.
_AUTO_REPLY_SUBJECT = re.compile(
    r"(?:\[[^\]]*\]\s*)*(?:automatic reply|auto reply|auto-reply|autoreply|auto response"
    r"|auto-response|autoresponse|out of (?:the )?office|automatische antwort|abwesenheitsnotiz"
    r"|autosvar|automatisk svar|automatisch antwoord|réponse automatique|risposta automatica"
    r"|respuesta automática|resposta automática|automaattinen vastaus|odpowiedź automatyczna"
    r"|自动回复|自動回覆|自動応答|自動返信)\s?:",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxIdentity:
    """Who the team is and which senders to ignore, for one mailbox source."""

    team_addresses: frozenset[str] = frozenset()  # lowercase, e.g. support@example.com
    team_domains: frozenset[str] = frozenset()  # lowercase; subdomains do NOT match unless listed
    ignore_senders: tuple[str, ...] = DEFAULT_IGNORE_SENDERS  # globs on the lowercase address
    ignore_domains: frozenset[str] = frozenset()  # other internal domains: not customers, not us
    mailing_lists: Literal["ignore", "count"] = "ignore"
    contact_forms: bool = True  # a form's mail (From us or no-reply, Reply-To: customer)
    form_senders: tuple[str, ...] = ()  # more From globs a contact form sends from
    closers: Literal["ignore", "count"] = "ignore"  # "Thanks!" after a reply: no clock
    closing_phrases: tuple[str, ...] = ()  # more closing phrases, from the rules files

    def is_team(self, address: str) -> bool:
        """Tell whether a lowercase address belongs to the team (address or exact domain)."""
        return address in self.team_addresses or _domain(address) in self.team_domains


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """The direction of one message for the reply clock, and why, in a few plain words."""

    direction: Direction
    reason: str
    customer: str | None = None  # who the customer is when not the sender (a contact form)


def classify(headers: ParsedHeaders, role: FolderRole, identity: MailboxIdentity) -> Classification:
    """Classify a message as inbound, outbound or ignored; see the module docstring's ladder."""
    bounce = _bounce_reason(headers)
    if bounce is not None:
        return Classification(direction=Direction.IGNORED, reason=bounce)

    sender = headers.from_addr
    ours = role is FolderRole.SENT or (bool(sender) and identity.is_team(sender))
    marked = not headers.fields.keys().isdisjoint(_MARKER_FIELDS)
    team_list = marked and _is_team_list(headers, identity)
    list_marker = None if team_list else _list_marker(headers, marked=marked)
    automated = _automated_reason(headers, on_list=team_list or list_marker is not None)
    if automated is not None:
        kind, marker = automated
        if ours:
            kind = "our own auto-reply" if kind == "auto-reply" else f"our own {kind}"
        return Classification(direction=Direction.IGNORED, reason=f"{kind} ({marker})")

    customer = _contact_form_customer(headers, role, identity)
    if customer is not None:
        return Classification(
            direction=Direction.INBOUND,
            reason="customer taken from Reply-To (contact form)",
            customer=customer,
        )

    ignored = _ignored_sender_reason(sender, identity)
    if ignored is not None:
        return Classification(direction=Direction.IGNORED, reason=ignored)

    if list_marker is not None and identity.mailing_lists == "ignore":
        return Classification(direction=Direction.IGNORED, reason=f"mailing list ({list_marker})")

    if role is FolderRole.SENT:
        return _IN_SENT

    if sender in identity.team_addresses:
        return Classification(direction=Direction.OUTBOUND, reason=f"from team address {sender}")
    if sender and _domain(sender) in identity.team_domains:
        return Classification(
            direction=Direction.OUTBOUND, reason=f"from team domain {_domain(sender)}"
        )

    if not headers.has("From"):
        return _NO_FROM
    if not sender:
        return _NO_FROM_ADDRESS
    if list_marker is not None:
        return Classification(
            direction=Direction.INBOUND, reason=f"customer message via mailing list ({list_marker})"
        )
    return _CUSTOMER_MESSAGE


# The verdicts that name nothing of the message, made once.
_CUSTOMER_MESSAGE = Classification(direction=Direction.INBOUND, reason="customer message")
_NO_FROM = Classification(direction=Direction.INBOUND, reason="customer message (no From)")
_NO_FROM_ADDRESS = Classification(
    direction=Direction.INBOUND, reason="customer message (no address in From)"
)
_IN_SENT = Classification(direction=Direction.OUTBOUND, reason="in Sent folder")


def _domain(address: str) -> str:
    """Return the part after the last "@", or "" for an address without one."""
    return address.rpartition("@")[2] if "@" in address else ""


def _bounce_reason(headers: ParsedHeaders) -> str | None:
    """Say why the message is a delivery report (bounce, read receipt, abuse report), if it is."""
    if headers.content_type == "multipart/report":
        match = _REPORT_TYPE.search(headers.first("Content-Type") or "")
        report_type = match.group(1).lower() if match else ""
        kind = _REPORT_KINDS.get(report_type, "delivery report")
        suffix = f"; report-type={report_type}" if report_type else ""
        return f"{kind} (Content-Type: multipart/report{suffix})"
    if headers.has("X-Failed-Recipients"):
        return "bounce (X-Failed-Recipients)"
    local_part = headers.from_addr.partition("@")[0]
    if local_part in _BOUNCE_LOCAL_PARTS:
        return f"bounce (From: {headers.from_addr})"
    from_value = headers.first("From")
    if from_value is not None and not headers.from_addr:
        # "From: <>" and "From: MAILER-DAEMON <>": the null sender written into From.
        if "<>" in "".join(from_value.split()):
            return "bounce (From: <>)"
        if headers.from_name.casefold() in _BOUNCE_LOCAL_PARTS:
            return f"bounce (From: {headers.from_name})"
    return None


def _automated_reason(headers: ParsedHeaders, *, on_list: bool) -> tuple[str, str] | None:
    """Return (kind, marker) when a header says a machine wrote the message, else None."""
    if headers.fields.keys().isdisjoint(_MARKER_FIELDS):
        return _automated_by_subject(headers)
    auto_submitted = _keyword(headers.first("Auto-Submitted"))
    if auto_submitted and auto_submitted != "no":
        kind = "auto-reply" if auto_submitted == "auto-replied" else "automated message"
        return kind, f"Auto-Submitted: {headers.first('Auto-Submitted')}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = headers.first(name)
        if value is not None and _keyword(value) != "no":
            return "auto-reply", f"{name}: {value}" if value else name
    if _keyword(headers.first("X-Apple-Action")) == "vacation":
        return "auto-reply", "X-Apple-Action: VACATION"
    precedence = _keyword(headers.first("Precedence"))
    if precedence == "auto_reply":
        return "auto-reply", "Precedence: auto_reply"
    if precedence == "junk" or (precedence == "bulk" and not on_list):
        # List servers stamp "Precedence: bulk" on every post (vger does); on list mail the
        # mailing-list rung decides, so mailing_lists="count" still counts list posts.
        return "bulk mail", f"Precedence: {precedence}"
    return _automated_by_subject(headers)


def _automated_by_subject(headers: ParsedHeaders) -> tuple[str, str] | None:
    """The last automated-mail checks: an auto-reply subject with a reply's marks, and the
    null sender."""
    if _AUTO_REPLY_SUBJECT.match(headers.subject.casefold()):
        if headers.return_path == "":
            return "auto-reply", "auto-reply subject, with Return-Path: <>"
        if _keyword(headers.first("X-Auto-Response-Suppress")) in {"all", "oof", "autoreply"}:
            return "auto-reply", "auto-reply subject, with X-Auto-Response-Suppress"
        if headers.in_reply_to:
            return "auto-reply", "auto-reply subject, with In-Reply-To"
    if headers.return_path == "":
        # RFC 3834 and RFC 5321: only auto-replies and delivery reports use the null sender.
        return "automated message", "Return-Path: <>"
    return None


def _keyword(value: str | None) -> str:
    """Return the first keyword of a header value, lowercase: "auto-generated (failure)" -> ..."""
    if not value:
        return ""
    return re.split(r"[\s;,(]", value.strip(), maxsplit=1)[0].lower()


def _contact_form_customer(
    headers: ParsedHeaders, role: FolderRole, identity: MailboxIdentity
) -> str | None:
    """The Reply-To address when the message is a contact form's (see rung 3), else None."""
    if not identity.contact_forms or role is FolderRole.SENT or len(headers.reply_to) != 1:
        return None
    sender = headers.from_addr
    form = bool(sender) and (
        identity.is_team(sender)
        or _first_match(sender, (*NO_REPLY_SENDERS, *identity.form_senders)) is not None
    )
    (customer,) = headers.reply_to
    if not form or "@" not in customer or identity.is_team(customer):
        return None
    if _ignored_sender_reason(customer, identity) is not None:
        return None
    return customer


def _ignored_sender_reason(sender: str, identity: MailboxIdentity) -> str | None:
    """Say which configured pattern or domain makes the sender one to ignore, if any."""
    if not sender:
        return None
    if _domain(sender) in identity.ignore_domains:
        return f"ignored domain {_domain(sender)}"
    pattern = _first_match(sender, identity.ignore_senders)
    return None if pattern is None else f"ignored sender (matches {pattern})"


def _first_match(address: str, patterns: tuple[str, ...]) -> str | None:
    """The first of the glob ``patterns`` (matched lowercase, as ``fnmatchcase`` does) that
    ``address`` matches, or None: one regex decides whether any does, the usual answer."""
    any_match, each = _compiled_globs(patterns)
    if any_match.match(address) is None:
        return None
    return next(pattern for pattern, glob in each if glob.match(address) is not None)


@lru_cache(maxsize=64)
def _compiled_globs(
    patterns: tuple[str, ...],
) -> tuple[re.Pattern[str], tuple[tuple[str, re.Pattern[str]], ...]]:
    """The regexes ``fnmatchcase`` would use for ``patterns``, each and all in one."""
    each = tuple((pattern, re.compile(translate(pattern.lower()))) for pattern in patterns)
    union = "|".join(f"(?:{glob.pattern})" for _, glob in each) or "(?!)"
    return re.compile(union), each


def _list_marker(headers: ParsedHeaders, *, marked: bool = True) -> str | None:
    """Return the header that shows the message came through a mailing list, if any
    (``marked``: whether the message has any of the ``_MARKER_FIELDS`` at all)."""
    if marked:
        for name in _LIST_HEADERS:
            if headers.has(name):
                value = headers.first(name) or ""
                return f"{name}: {value}" if name == "List-Id" and value else name
        if _keyword(headers.first("Precedence")) == "list":
            return "Precedence: list"
    # List servers that add no list header still resend as the list's robot: majordomo's
    # "owner-LIST@", Mailman 2's "LIST-bounces@" (LKML via kvack.org has only this and
    # "Precedence: bulk").
    robot = headers.sender_addr.partition("@")[0].partition("+")[0]
    if headers.sender_addr != headers.from_addr and (
        robot.startswith("owner-") or robot.endswith(("-owner", "-bounces", "-request"))
    ):
        return f"Sender: {headers.sender_addr}"
    return None


def _is_team_list(headers: ParsedHeaders, identity: MailboxIdentity) -> bool:
    """Tell whether the list is the team's own support address (e.g. a Google Group).

    Such a group stamps List-Id "<support.example.com>" (the address with "@" as ".") and
    Mailing-List "list support@example.com" on every customer message it delivers.
    """
    list_id = headers.first("List-Id") or ""
    match = re.search(r"<([^<>]*)>", list_id)
    list_key = (match.group(1) if match else list_id).strip().lower()
    mailing_list = (headers.first("Mailing-List") or "").lower()
    for address in identity.team_addresses:
        if list_key and list_key == address.replace("@", "."):
            return True
        if f"list {address}" in mailing_list:
            return True
    return False
