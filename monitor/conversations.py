"""Which conversation a message belongs to: the pure threading rules.

The rules, strongest first:

1. An explicit key (a helpdesk ticket id) is the conversation.
2. Gmail's thread id (``X-GM-THRID``) where the server offers it: Gmail already threaded the mail.
3. Message-ID, In-Reply-To and References chains (JWZ-style): every id a message names is linked
   to the same conversation. Ids of messages not seen yet are remembered as "ghosts", so a reply
   that arrives before its parent (the Sent folder synced first, a delayed delivery) still joins
   the parent later, and two conversations that turn out to share an id are merged.
4. The normalized subject plus the customer's address, within a time window either side:
   a message that names no other message (a root) joins any message of that pair, and a
   reply joins a root of that pair. Every conversation a message is tied to, by id or by
   subject, is merged into one. Each such tie is found by whichever of its two messages is
   read second, so the conversations come out the same whatever order mail is read in.

The store owns the data and implements ``ThreadLookup``; this module only decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.model import ThreadRef

DEFAULT_SUBJECT_WINDOW = timedelta(days=14)


class ThreadLookup(Protocol):
    """What the threader needs to know about conversations already stored for one source."""

    def conversations_for_keys(self, keys: Sequence[str]) -> list[int]:
        """Ids of the conversations any of ``keys`` already belongs to, without repeats."""
        ...

    def conversations_for_subject(
        self, customer: str, subject_key: str, start: datetime, end: datetime, *, roots_only: bool
    ) -> list[int]:
        """Ids of the conversations holding a message with this customer and normalized
        subject dated from ``start`` to ``end`` (with ``roots_only``, one that names no other
        message), without repeats."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadDecision:
    """Where a message goes: join ``conversation`` (or start a new one when None).

    ``keys`` are registered to that conversation; conversations in ``merge`` turned out to be
    the same thread and are folded into it.
    """

    keys: tuple[str, ...]
    conversation: int | None
    merge: tuple[int, ...] = ()
    by_subject: bool = False


def thread_keys(ref: ThreadRef) -> tuple[str, ...]:
    """The keys that tie a message to others, strongest form first, without repeats."""
    if ref.conversation:
        return (f"key:{ref.conversation}",)
    if ref.gm_thread_id:
        return (f"gm:{ref.gm_thread_id}",)
    ids = [ref.message_id] if ref.message_id else []
    # A referenced id without "@" is not a Message-ID but junk a tool wrote there
    # (git send-email's `--in-reply-to=yes` left "<yes>" in many unrelated LKML series):
    # linking through it would merge strangers' threads.
    ids.extend(mid for mid in (*ref.in_reply_to, *ref.references) if "@" in mid)
    return tuple(dict.fromkeys(f"mid:{mid}" for mid in ids if mid))


def names_other_messages(ref: ThreadRef) -> bool:
    """Whether the message points at earlier messages (a reply), not only at itself."""
    return any("@" in mid for mid in (*ref.in_reply_to, *ref.references))


def decide_thread(
    ref: ThreadRef,
    timestamp: datetime,
    lookup: ThreadLookup,
    subject_window: timedelta = DEFAULT_SUBJECT_WINDOW,
) -> ThreadDecision:
    """Decide which conversation a message joins, and which conversations it proves are one.

    A message may be tied to several conversations at once: by ids (a message read earlier
    named it, or it names messages read earlier) and by subject (rule 4). They are all one
    thread, so they are merged, the oldest keeping its id. Otherwise the order mail is read in
    would decide: a reply that only its subject ties to the question, read after the
    customer's answer to it (INBOX is read before Sent), would leave the question unanswered
    in one conversation and the rest in another.
    """
    keys = thread_keys(ref)
    found = lookup.conversations_for_keys(keys) if keys else []
    by_subject: list[int] = []
    if not (ref.conversation or ref.gm_thread_id) and ref.subject_key and ref.customer:
        by_subject = lookup.conversations_for_subject(
            ref.customer,
            ref.subject_key,
            timestamp - subject_window,
            timestamp + subject_window,
            roots_only=names_other_messages(ref),
        )
    joined = list(dict.fromkeys([*found, *by_subject]))
    if not joined:
        return ThreadDecision(keys=keys, conversation=None)
    target = min(joined)  # the oldest conversation keeps its id; the others fold into it
    return ThreadDecision(
        keys=keys,
        conversation=target,
        merge=tuple(sorted(c for c in joined if c != target)),
        by_subject=not found,
    )
