"""The values every layer shares: normalized message events and where they came from.

A source turns what it reads (an email's headers, a helpdesk comment) into a ``MessageEvent``.
Everything after that -- threading, the SLA clock, metrics, alerts -- works on events only.
All instants are aware UTC datetimes; a naive or non-UTC value is rejected here, at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Direction(StrEnum):
    """What a message means for the reply clock."""

    INBOUND = "inbound"  # a customer wrote: starts a clock, or keeps one running
    OUTBOUND = "outbound"  # the team replied: stops the running clock
    IGNORED = "ignored"  # neither: auto-replies, bounces, mailing lists, ignored senders


class FolderRole(StrEnum):
    """Why a mailbox folder is watched: mail arriving to the team, or the team's sent copies."""

    INBOX = "inbox"
    SENT = "sent"


def require_utc(name: str, value: datetime) -> datetime:
    """Return ``value`` converted to UTC, or raise if it carries no time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be a timezone-aware datetime, got naive: {value.isoformat()}"
        )
    if value.utcoffset() == timedelta(0) and value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadRef:
    """What a message says about the conversation it belongs to.

    Mail sources fill the RFC 5322 fields (and Gmail's thread id where the server has it);
    ticket sources set ``conversation`` to the ticket's own key and leave the rest empty.
    """

    message_id: str | None = None  # without angle brackets
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    gm_thread_id: str | None = None
    conversation: str | None = None  # an explicit key (a ticket id) that overrides threading
    subject_key: str = ""  # normalized subject, for the last-resort subject fallback
    customer: str = ""  # the customer's address, for the subject fallback


@dataclass(frozen=True, slots=True, kw_only=True)
class MailLocation:
    """Where a message sits in a mailbox: the triple that IMAP (or a Maildir file name) gives."""

    folder: str
    uidvalidity: int
    uid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent:
    """One message of a conversation, normalized and classified.

    ``identity`` is unique within the source (an email's Message-ID, else a hash of its key
    headers; a ticket comment's id), so the same message seen twice is stored once.
    """

    source: str
    identity: str
    timestamp: datetime  # when the message reached the team (INTERNALDATE), aware UTC
    direction: Direction
    reason: str  # why ``direction``, in words, shown by `replyclock explain`
    author: str = ""  # lowercase address or login
    author_name: str = ""
    subject: str = ""
    recipients: tuple[str, ...] = ()
    thread: ThreadRef = field(default_factory=ThreadRef)
    folder: str = ""
    priority: str | None = None
    tags: tuple[str, ...] = ()
    link: str | None = None  # where a person can open the conversation (helpdesk or Gmail URL)
    status: str | None = None  # a ticket's new status (open, pending, on_hold, solved, closed)
    attributes: Mapping[str, str] = field(default_factory=dict)  # extra values rules may match
    location: MailLocation | None = None
    # A customer message that is only a closing phrase: the words that made it so ("Danke!").
    closing: str | None = None
    # Tells apart two mails that share a Message-ID (a hash of From and Date; "" if none).
    fingerprint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", require_utc("MessageEvent.timestamp", self.timestamp))
        if not self.source:
            raise ValueError("MessageEvent.source must not be empty")
        if not self.identity:
            raise ValueError("MessageEvent.identity must not be empty")

    @property
    def author_domain(self) -> str:
        """The domain part of the author's address, lowercase, or an empty string."""
        return self.author.rpartition("@")[2] if "@" in self.author else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FolderCursor:
    """How far a source has read one folder: IMAP's UIDVALIDITY, last UID and mod-sequence."""

    source: str
    folder: str
    uidvalidity: int
    last_uid: int = 0
    highest_modseq: int | None = None
    last_reconciled: datetime | None = None  # last full UID comparison (expunge detection)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockTotals:
    """Running totals of one source, policy and clock kind's history (for counters)."""

    source: str
    policy: str
    kind: str  # first_response | next_response
    replies_within: int = 0
    replies_late: int = 0
    breaches: int = 0
    closed: int = 0  # closed without reply
    dismissed: int = 0  # a person said no reply is needed
    response_sum: int = 0  # business seconds, over all replies
    buckets: tuple[tuple[int, int], ...] = ()  # (upper bound in seconds or -1 for +Inf, count)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceHealth:
    """How a source's last poll went."""

    source: str
    up: bool
    last_attempt: datetime
    last_success: datetime | None
    last_duration: float  # seconds
    last_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """What the daemon reports of itself: how late its polls are, and if the store writes."""

    scheduler_lag_seconds: float = 0.0
    evaluation_lag_seconds: float = 0.0  # how long stored mail has waited to be evaluated
    store_ok: bool = True
    replies_missing: tuple[tuple[str, bool], ...] = ()  # mail source, replies missing


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSnapshot:
    """Everything a scrape reports, read from the store in one go."""

    awaiting: tuple[tuple[str, str, str, int], ...] = ()  # source, policy, state, conversations
    oldest: tuple[tuple[str, str, datetime], ...] = ()  # source, policy, longest clock's start
    totals: tuple[ClockTotals, ...] = ()
    sources: tuple[SourceHealth, ...] = ()
    alerts_sent: tuple[tuple[str, str, int], ...] = ()  # channel, kind, count
    delivery_failures: tuple[tuple[str, int], ...] = ()  # channel, count
