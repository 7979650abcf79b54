"""Realistic support mailboxes, made to order: questions in INBOX, replies in Sent, follow-ups,
out-of-office answers and conversations still waiting, all dated relative to ``now``.

Conversations still waiting are dated at ages kept well away from every threshold of
``RULES`` (the warning, the target, each policy), so two runs minutes apart see the same
states: a comparison of a daemon's first sync with `run --once` must not depend on when each
ran. Everything is fixed by the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from servers.dovecot import DovecotServer, ImapUser

RULES = """
policies:
  - name: vip
    match: {sender_domain: [bigcorp.example]}
    calendar: 24x7
    targets: {first_response: 4h, next_response: 4h}
    warning: 15m
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 2h}
    warning: 15m
"""
# Ages at which a waiting customer is at least 10 minutes from every threshold above (45 and
# 60 minutes; 105 and 120; 225 and 240).
SAFE_AGES = (
    timedelta(minutes=10),
    timedelta(minutes=25),
    timedelta(minutes=80),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(days=2),
    timedelta(days=9),
)
DOMAINS = ("shop.example", "bigcorp.example", "mail.example", "clinic.example", "school.example")
TEAM = "Acme Support <support@acme.example>"


@dataclass
class Mailbox:
    """The folders' messages, each with its arrival time (INTERNALDATE)."""

    inbox: list[tuple[bytes, datetime]] = field(default_factory=list)
    sent: list[tuple[bytes, datetime]] = field(default_factory=list)
    waiting: int = 0  # conversations whose customer waits for a reply at the end

    @property
    def size(self) -> int:
        return len(self.inbox) + len(self.sent)

    def receive(self, sender: str, date: datetime, **fields: Any) -> None:
        """A message from ``sender`` to the team, in INBOX from the time it is dated; the other
        fields as ``message`` takes them."""
        self.inbox.append((message(sender=sender, to=TEAM, date=date, **fields), date))

    def send(self, to: str, date: datetime, **fields: Any) -> None:
        """The team's message to ``to``, in Sent from the time it is dated."""
        self.sent.append((message(sender=TEAM, to=to, date=date, **fields), date))


def message(
    *,
    sender: str,
    to: str,
    subject: str,
    message_id: str,
    date: datetime,
    refs: tuple[str, ...] = (),
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """One RFC 5322 message with the headers replyclock reads and a short body."""
    headers = [
        ("Return-Path", f"<{sender.rsplit('<', 1)[-1].rstrip('>')}>"),
        ("From", sender),
        ("To", to),
        ("Subject", subject),
        ("Date", format_datetime(date)),
        ("Message-ID", f"<{message_id}>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    if refs:
        headers += [
            ("In-Reply-To", f"<{refs[-1]}>"),
            ("References", " ".join(f"<{r}>" for r in refs)),
        ]
    headers += list(extra)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\nHello,\r\n\r\nthanks for writing.\r\n").encode()


def support_mailbox(
    tag: str, conversations: int, now: datetime, *, seed: int = 0, days: int = 25
) -> Mailbox:
    """``conversations`` conversations of one support mailbox; ``tag`` keeps ids unique."""
    rng = random.Random(f"{tag}:{seed}")
    box = Mailbox()
    for n in range(conversations):
        domain = DOMAINS[n % len(DOMAINS)]
        customer = f"customer{n % 997}@{domain}"
        subject = f"Order {tag}-{n}: delivery problem"
        qid = f"{tag}.q{n}@{domain}"
        kind = rng.random()
        if kind < 0.12:  # never answered: waiting now
            asked = now - rng.choice(SAFE_AGES)
            box.receive(customer, asked, subject=subject, message_id=qid)
            box.waiting += 1
            continue
        # Conversations with a follow-up start at least 4 days back, so the follow-up and
        # its answer fit before now.
        earliest = 4 * 86400 if 0.20 <= kind < 0.45 else 8 * 3600
        asked = now - timedelta(seconds=rng.randint(earliest, days * 86400))
        replied = asked + timedelta(seconds=rng.randint(300, 6 * 3600))
        rid = f"{tag}.r{n}@acme.example"
        box.receive(customer, asked, subject=subject, message_id=qid)
        box.send(customer, replied, subject=f"Re: {subject}", message_id=rid, refs=(qid,))
        if kind < 0.20:  # an out-of-office answer to our reply: no new clock
            away = replied + timedelta(seconds=rng.randint(5, 60))
            box.receive(
                customer,
                away,
                subject=f"Out of office: Re: {subject}",
                message_id=f"{tag}.ooo{n}@{domain}",
                refs=(qid, rid),
                extra=(("Auto-Submitted", "auto-replied"),),
            )
        elif kind < 0.45:  # a follow-up, answered or (for some) still waiting
            waiting = kind < 0.27
            if waiting:
                followed = now - rng.choice([age for age in SAFE_AGES if now - age > replied])
            else:
                followed = replied + timedelta(seconds=rng.randint(600, 2 * 86400))
            fid = f"{tag}.f{n}@{domain}"
            box.receive(
                customer, followed, subject=f"Re: {subject}", message_id=fid, refs=(qid, rid)
            )
            if waiting:
                box.waiting += 1
                continue
            again = followed + timedelta(seconds=rng.randint(300, 4 * 3600))
            aid = f"{tag}.again{n}@acme.example"
            box.send(
                customer, again, subject=f"Re: {subject}", message_id=aid, refs=(qid, rid, fid)
            )
    return box


def ask_question(
    dovecot: DovecotServer,
    user: ImapUser,
    tag: str,
    *,
    minutes_ago: int = 0,
    sender: str | None = None,
) -> str:
    """Append a customer's question "Question ``tag``" to ``user``'s INBOX over IMAP, dated and
    arrived ``minutes_ago`` minutes ago (to the second); return its Message-ID,
    ``tag@customer.example``, which is also the sender unless ``sender`` says otherwise."""
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    qid = f"{tag}@customer.example"
    question = message(
        sender=sender or qid,
        to="support@acme.example",
        subject=f"Question {tag}",
        message_id=qid,
        date=when,
    )
    dovecot.append(user.username, user.password, "INBOX", question, internaldate=when)
    return qid
