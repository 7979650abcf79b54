"""Contact forms: the website's mail comes From us or a no-reply address, the customer in Reply-To.

Such a message is the customer's, with the Reply-To address as the customer: it starts a
clock, threads with our answer to that address, and policies match on that address. Anything
else with a Reply-To stays what it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_engine import rulebook

from monitor.engine import Engine
from monitor.explain import explain
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.model import Direction, FolderRole
from monitor.store import SourceSink, Store

TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@acme.example", "web@acme.example"}),
    team_domains=frozenset({"acme.example"}),
)
ASKED = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)


def block(sender: str, reply_to: str | None, subject: str = "New message from the contact form",
          mid: str = "form-1@acme.example", refs: str = "") -> bytes:  # fmt: skip
    lines = [
        f"From: Acme website <{sender}>",
        "To: support@acme.example",
        f"Subject: {subject}",
        f"Message-ID: <{mid}>",
        "Date: Tue, 17 Nov 2026 10:00:00 +0000",
    ]
    if reply_to is not None:
        lines.append(f"Reply-To: {reply_to}")
    if refs:
        lines += [f"In-Reply-To: <{refs}>", f"References: <{refs}>"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read(data: bytes, role: FolderRole = FolderRole.INBOX, identity: MailboxIdentity = TEAM):
    context = FolderContext(source="inbox", folder="INBOX", role=role, identity=identity)
    return event_from_headers(context, data, ASKED)


@pytest.mark.parametrize(
    "sender",
    ["web@acme.example", "wordpress@acme.example", "noreply@wix.example", "no-reply@forms.example"],
)
def test_a_form_from_us_or_no_reply_is_the_reply_to_customers_message(sender: str) -> None:
    found = read(block(sender, "Jane Roe <jane@customer.example>"))
    assert found.direction is Direction.INBOUND
    assert found.reason == "customer taken from Reply-To (contact form)"
    assert (found.thread.customer, found.author) == ("jane@customer.example",) * 2


def test_form_senders_names_more_form_addresses() -> None:
    identity = MailboxIdentity(
        team_addresses=TEAM.team_addresses,
        team_domains=TEAM.team_domains,
        form_senders=("submissions@*.formspree.example",),
    )
    data = block("submissions@eu.formspree.example", "jane@customer.example")
    assert read(data, identity=identity).thread.customer == "jane@customer.example"
    # Without the pattern, the same mail is an ordinary customer message from the service.
    assert read(data).thread.customer == "submissions@eu.formspree.example"
    assert read(data).reason == "customer message"


@pytest.mark.parametrize(
    ("sender", "reply_to", "role", "direction", "reason"),
    [
        pytest.param(
            "web@acme.example", "jane@customer.example, joe@customer.example", FolderRole.INBOX,
            Direction.OUTBOUND, "from team address web@acme.example", id="two_reply_to",
        ),
        pytest.param(
            "web@acme.example", "sales@acme.example", FolderRole.INBOX, Direction.OUTBOUND,
            "from team address web@acme.example", id="reply_to_inside_the_team",
        ),
        pytest.param(
            "support@acme.example", "jane@customer.example", FolderRole.SENT, Direction.OUTBOUND,
            "in Sent folder", id="in_the_sent_folder",
        ),
        pytest.param(
            "noreply@wix.example", "no-reply@wix.example", FolderRole.INBOX, Direction.IGNORED,
            "ignored sender (matches noreply@*)", id="reply_to_no_reply",
        ),
        pytest.param(
            "web@acme.example", None, FolderRole.INBOX, Direction.OUTBOUND,
            "from team address web@acme.example", id="no_reply_to",
        ),
        pytest.param(
            "jane@customer.example", "jane.roe@home.example", FolderRole.INBOX,
            Direction.INBOUND, "customer message", id="a_customer_with_another_reply_to",
        ),
    ],
)  # fmt: skip
def test_other_mail_with_a_reply_to_is_unchanged(
    sender: str, reply_to: str | None, role: FolderRole, direction: Direction, reason: str
) -> None:
    found = read(block(sender, reply_to), role)
    assert (found.direction, found.reason) == (direction, reason)


def test_contact_forms_false_turns_it_off() -> None:
    identity = MailboxIdentity(
        team_addresses=TEAM.team_addresses, team_domains=TEAM.team_domains, contact_forms=False
    )
    found = read(block("web@acme.example", "jane@customer.example"), identity=identity)
    assert (found.direction, found.thread.customer) == (Direction.OUTBOUND, "")


RULES = """\
policies:
  - name: vip
    match: {sender_domain: [customer.example]}
    calendar: 24x7
    targets: {first_response: 1h}
  - name: standard
    calendar: 24x7
    targets: {first_response: 4h}
"""


def test_the_form_starts_a_clock_that_our_answer_to_the_customer_stops(tmp_path: Path) -> None:
    """Policies match on the Reply-To's domain; our answer, written to that address, joins the
    form's conversation and stops its clock; explain says where the customer came from."""
    rules = rulebook(tmp_path, "forms", RULES)
    form = read(block("web@acme.example", "Jane Roe <jane@customer.example>"))
    answer = FolderContext(source="inbox", folder="Sent", role=FolderRole.SENT, identity=TEAM)
    reply = event_from_headers(
        answer,
        b"From: support@acme.example\r\nTo: jane@customer.example\r\n"
        b"Subject: Re: New message from the contact form\r\nMessage-ID: <r1@acme.example>\r\n"
        b"Date: Tue, 17 Nov 2026 10:30:00 +0000\r\n\r\n",
        ASKED + timedelta(minutes=30),
    )
    with Store.open(tmp_path / "s.db") as store:
        SourceSink(store, "inbox").accept([form], None, ASKED)
        engine = Engine(store, rules)
        engine.evaluate(ASKED + timedelta(minutes=10))
        (waiting,) = engine.waiting(ASKED + timedelta(minutes=10))
        assert (waiting.policy.name, waiting.conversation.customer) == (
            "vip",
            "jane@customer.example",
        )
        SourceSink(store, "inbox").accept([reply], None, ASKED)
        engine.evaluate(ASKED + timedelta(hours=2))
        assert engine.waiting(ASKED + timedelta(hours=2)) == []
        lines = explain(store, rules, waiting.conversation.id, ASKED + timedelta(hours=2))
    text = "\n".join(lines)
    assert "customer taken from Reply-To (contact form)" in text
    assert "Policy:    vip" in text
    assert text.count("in Sent folder") == 1
