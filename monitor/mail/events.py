"""From an email's header block to a classified ``MessageEvent``: shared by every mail source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.mail.classify import Classification, MailboxIdentity, classify
from monitor.mail.closers import closing_message_for_body
from monitor.mail.headers import ParsedHeaders, message_identity, parse_headers
from monitor.mail.subjects import normalize_subject
from monitor.model import Direction, FolderRole, MailLocation, MessageEvent, ThreadRef, require_utc

# A Sent copy's Date header is trusted over its INTERNALDATE (a client may upload the copy
# later), unless the two disagree by more than this: then the Date header is likely wrong.
_SENT_DATE_TOLERANCE = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FolderContext:
    """Where a message was read: its source, folder, and the folder's role."""

    source: str
    folder: str
    role: FolderRole
    identity: MailboxIdentity


def message_instant(headers: ParsedHeaders, received: datetime, role: FolderRole) -> datetime:
    """When the message counts as sent or received for the clock.

    Received mail uses the server's arrival time: a sender's Date header can be wrong.
    """
    received = require_utc("received", received)
    sent_date = headers.date if role is FolderRole.SENT else None
    if sent_date is not None and abs(sent_date - received) <= _SENT_DATE_TOLERANCE:
        return sent_date
    return received


def _customer(headers: ParsedHeaders, verdict: Classification, identity: MailboxIdentity) -> str:
    """The customer's address: the sender of inbound mail (a contact form's Reply-To), a
    reply's first outside recipient."""
    if verdict.customer is not None:
        return verdict.customer
    if verdict.direction is not Direction.OUTBOUND:
        return headers.from_addr
    for address in (*headers.to, *headers.cc):
        domain = address.rpartition("@")[2]
        if address not in identity.team_addresses and domain not in identity.team_domains:
            return address
    return ""


def event_from_headers(
    context: FolderContext,
    header_block: bytes,
    received: datetime,
    *,
    location: MailLocation | None = None,
    gm_thread_id: str | None = None,
    link: str | None = None,
) -> MessageEvent:
    """Parse, classify and normalize one message; never raises on malformed mail."""
    return event_from_parsed(
        context,
        parse_headers(header_block),
        received,
        location=location,
        gm_thread_id=gm_thread_id,
        link=link,
    )


def event_from_parsed(
    context: FolderContext,
    headers: ParsedHeaders,
    received: datetime,
    *,
    location: MailLocation | None = None,
    gm_thread_id: str | None = None,
    link: str | None = None,
) -> MessageEvent:
    """``event_from_headers`` for headers already parsed (kept to judge the body later)."""
    verdict = classify(headers, context.role, context.identity)
    instant = message_instant(headers, received, context.role)
    return MessageEvent(
        source=context.source,
        identity=message_identity(headers, received),
        timestamp=instant,
        direction=verdict.direction,
        reason=verdict.reason,
        # A contact form's author is the customer it names (policies match on the author).
        author=verdict.customer or headers.from_addr,
        author_name="" if verdict.customer else headers.from_name,
        subject=headers.subject,
        recipients=(*headers.to, *headers.cc),
        thread=ThreadRef(
            message_id=headers.message_id,
            in_reply_to=headers.in_reply_to,
            references=headers.references,
            gm_thread_id=gm_thread_id,
            subject_key=normalize_subject(headers.subject),
            customer=_customer(headers, verdict, context.identity),
        ),
        folder=context.folder,
        priority=_priority(headers),
        link=link,
        location=location,
        fingerprint=_fingerprint(headers),
    )


# How much of a customer reply's body is read to tell a closing message ("Thanks!").
CLOSING_BODY_BYTES = 4096


def wants_body(event: MessageEvent, identity: MailboxIdentity) -> bool:
    """Whether a message may be a closing message, so its body's start is worth reading: a
    customer's reply (it names earlier mail), when the source ignores closers."""
    ref = event.thread
    return (
        identity.closers == "ignore"
        and event.direction is Direction.INBOUND
        and bool(ref.in_reply_to or ref.references)
    )


def with_closing(
    event: MessageEvent, header_block: bytes, body: bytes, identity: MailboxIdentity
) -> MessageEvent:
    """``event`` marked as a closing message when the start of its body (at most
    ``CLOSING_BODY_BYTES``, as fetched) holds only a closing phrase. The body is not kept:
    only the few words that made the decision."""
    return with_closing_parsed(event, parse_headers(header_block), body, identity)


def with_closing_parsed(
    event: MessageEvent, headers: ParsedHeaders, body: bytes, identity: MailboxIdentity
) -> MessageEvent:
    """``with_closing`` for the message's headers already parsed."""
    verdict = closing_message_for_body(
        body[:CLOSING_BODY_BYTES],
        content_type=headers.first("Content-Type"),
        transfer_encoding=headers.first("Content-Transfer-Encoding"),
        truncated=len(body) >= CLOSING_BODY_BYTES,
        extra_phrases=identity.closing_phrases,
    )
    return replace(event, closing=verdict.quote) if verdict.is_closing else event


def _fingerprint(headers: ParsedHeaders) -> str:
    """From and Date of a mail with a Message-ID, hashed: two different mails that share one
    Message-ID (a broken mailer's, a reused one) are kept apart by it. "" without one."""
    if not headers.message_id:
        return ""
    date = headers.date.isoformat() if headers.date is not None else ""
    return hashlib.sha256(f"{headers.from_addr}\n{date}".encode()).hexdigest()[:16]


def _priority(headers: ParsedHeaders) -> str | None:
    """``high``/``low`` from X-Priority or Importance, for policies that match on priority."""
    for value in headers.fields.get("x-priority", ()):
        digit = value.strip()[:1]
        if digit in {"1", "2"}:
            return "high"
        if digit in {"4", "5"}:
            return "low"
    for value in headers.fields.get("importance", ()):
        lowered = value.strip().lower()
        if lowered in {"high", "low"}:
            return lowered
    return None
