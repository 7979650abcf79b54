"""Classification: the rule ladder on hand-made headers, then on the real corpora."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from monitor.mail.classify import Classification, MailboxIdentity, classify
from monitor.mail.headers import parse_headers
from monitor.model import Direction, FolderRole

from . import (
    NOTMUCH,
    NOTMUCH_MESSAGES,
    SISIMAI,
    SISIMAI_BOUNCES,
    corpus_id,
    mbox_messages,
    parsed,
)

INBOX, SENT = FolderRole.INBOX, FolderRole.SENT
IN, OUT, IGN = Direction.INBOUND, Direction.OUTBOUND, Direction.IGNORED

TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@example.com"}),
    team_domains=frozenset({"example.com"}),
    ignore_domains=frozenset({"sales.example.net"}),
)
COUNT_LISTS = MailboxIdentity(
    team_addresses=TEAM.team_addresses, team_domains=TEAM.team_domains, mailing_lists="count"
)
CUSTOMER = "From: Carol <carol@customer.org>\nTo: support@example.com\n"
ALICE = "From: Alice <alice@example.com>\nTo: carol@customer.org\n"
SUPPORT = "From: Support <support@example.com>\nTo: carol@customer.org\n"
GROUP = "List-Id: <support.example.com>\nMailing-List: list support@example.com; contact x\n"


def verdict(
    block: str, role: FolderRole = INBOX, identity: MailboxIdentity = TEAM
) -> Classification:
    """Classify a header block written as text."""
    return classify(parse_headers(block.encode()), role, identity)


@pytest.mark.parametrize(
    ("block", "role", "identity", "direction", "reason"),
    [
        # customers
        pytest.param(CUSTOMER, INBOX, TEAM, IN, "customer message", id="customer"),
        pytest.param("To: support@example.com\n", INBOX, TEAM, IN, "customer message (no From)",
                     id="no-from-header-is-kept"),
        pytest.param("From: Carol\n", INBOX, TEAM, IN, "customer message", id="from-name-only"),
        pytest.param("From: bob@mail.example.com\n", INBOX, TEAM, IN, "customer message",
                     id="team-subdomain-is-not-team"),
        pytest.param(CUSTOMER + "Auto-Submitted: no\n", INBOX, TEAM, IN, "customer message",
                     id="auto-submitted-no"),
        pytest.param(CUSTOMER + "Subject: Out of office replies are broken\n", INBOX, TEAM, IN,
                     "customer message", id="auto-reply-subject-alone-is-not-enough"),
        pytest.param(CUSTOMER + "X-Auto-Response-Suppress: All\n", INBOX, TEAM, IN,
                     "customer message", id="auto-response-suppress-alone-is-not-enough"),
        # the team
        pytest.param(CUSTOMER, SENT, TEAM, OUT, "in Sent folder", id="sent-folder"),
        pytest.param(SUPPORT, INBOX, TEAM, OUT, "from team address support@example.com",
                     id="team-address-in-inbox"),
        pytest.param(ALICE + "Cc: support@example.com\n", INBOX, TEAM, OUT,
                     "from team domain example.com", id="teammate-cc-support"),
        # our own automation must never stop a clock
        pytest.param(SUPPORT + "Auto-Submitted: auto-replied\n", INBOX, TEAM, IGN,
                     "our own auto-reply (Auto-Submitted: auto-replied)", id="own-autoresponder"),
        pytest.param(SUPPORT + "Precedence: bulk\n", INBOX, TEAM, IGN,
                     "our own bulk mail (Precedence: bulk)", id="own-bulk"),
        pytest.param(CUSTOMER + "Auto-Submitted: auto-generated\n", SENT, TEAM, IGN,
                     "our own automated message (Auto-Submitted: auto-generated)",
                     id="auto-submitted-in-sent"),
        # bounces and reports, whoever sends them
        pytest.param("From: MAILER-DAEMON@example.com\n", INBOX, TEAM, IGN,
                     "bounce (From: mailer-daemon@example.com)", id="team-mta-bounce"),
        pytest.param("From: MAILER-DAEMON <>\n", INBOX, TEAM, IGN, "bounce (From: <>)",
                     id="null-from"),
        pytest.param(CUSTOMER + "X-Failed-Recipients: x@y.org\n", INBOX, TEAM, IGN,
                     "bounce (X-Failed-Recipients)", id="failed-recipients"),
        pytest.param(CUSTOMER + "Content-Type: multipart/report; "
                     "report-type=disposition-notification\n", INBOX, TEAM, IGN,
                     "read receipt (Content-Type: multipart/report; "
                     "report-type=disposition-notification)", id="read-receipt"),
        pytest.param(ALICE + "Content-Type: multipart/report; report-type=delivery-status\n",
                     SENT, TEAM, IGN, "bounce (Content-Type: multipart/report; "
                     "report-type=delivery-status)", id="report-in-sent"),
        # other people's automation
        pytest.param(CUSTOMER + "X-Autoreply: yes\n", INBOX, TEAM, IGN,
                     "auto-reply (X-Autoreply: yes)", id="x-autoreply"),
        pytest.param(CUSTOMER + "X-Autorespond: \n", INBOX, TEAM, IGN, "auto-reply (X-Autorespond)",
                     id="x-autorespond-empty"),
        pytest.param(CUSTOMER + "Precedence: junk\n", INBOX, TEAM, IGN,
                     "bulk mail (Precedence: junk)", id="precedence-junk"),
        pytest.param(CUSTOMER + "Return-Path: <>\n", INBOX, TEAM, IGN,
                     "automated message (Return-Path: <>)", id="null-return-path"),
        pytest.param(CUSTOMER + "Subject: Automatic reply: Help\nIn-Reply-To: <m@x>\n", INBOX,
                     TEAM, IGN, "auto-reply (auto-reply subject, with In-Reply-To)",
                     id="auto-reply-subject-and-in-reply-to"),
        pytest.param(CUSTOMER + "Subject: Abwesenheitsnotiz: Hilfe\n"
                     "X-Auto-Response-Suppress: All\n", INBOX, TEAM, IGN,
                     "auto-reply (auto-reply subject, with X-Auto-Response-Suppress)",
                     id="german-oof-subject-and-suppress"),
        # configured senders
        pytest.param("From: noreply@shop.example.org\n", INBOX, TEAM, IGN,
                     "ignored sender (matches noreply@*)", id="noreply"),
        pytest.param("From: noreply@example.com\n", INBOX, TEAM, IGN,
                     "ignored sender (matches noreply@*)", id="team-noreply-ignored-not-outbound"),
        pytest.param("From: dan@sales.example.net\n", INBOX, TEAM, IGN,
                     "ignored domain sales.example.net", id="ignore-domain"),
        pytest.param("From: noreply@example.com\n", SENT, TEAM, IGN,
                     "ignored sender (matches noreply@*)", id="noreply-in-sent"),
        # mailing lists
        pytest.param(CUSTOMER + "List-Id: Dev <dev.lists.example.org>\nPrecedence: bulk\n", INBOX,
                     TEAM, IGN, "mailing list (List-Id: Dev <dev.lists.example.org>)",
                     id="list-ignored"),
        pytest.param(CUSTOMER + "List-Id: Dev <dev.lists.example.org>\nPrecedence: bulk\n", INBOX,
                     COUNT_LISTS, IN,
                     "customer message via mailing list (List-Id: Dev <dev.lists.example.org>)",
                     id="list-counted"),
        pytest.param(SUPPORT + "List-Unsubscribe: <mailto:u@example.com>\n", SENT, TEAM, IGN,
                     "mailing list (List-Unsubscribe)", id="newsletter-in-sent"),
        pytest.param(CUSTOMER + "Precedence: list\n", INBOX, TEAM, IGN,
                     "mailing list (Precedence: list)", id="precedence-list"),
        pytest.param(CUSTOMER + "Sender: owner-dev@lists.example.org\n", INBOX, TEAM, IGN,
                     "mailing list (Sender: owner-dev@lists.example.org)", id="majordomo-sender"),
        pytest.param(CUSTOMER + GROUP + "Precedence: list\n", INBOX, TEAM, IN, "customer message",
                     id="own-google-group-customer"),
        pytest.param(ALICE + GROUP, INBOX, TEAM, OUT, "from team domain example.com",
                     id="own-google-group-teammate"),
    ],
)  # fmt: skip
def test_ladder(
    block: str,
    role: FolderRole,
    identity: MailboxIdentity,
    direction: Direction,
    reason: str,
) -> None:
    """Each rung of the ladder gives its direction and its plain-words reason."""
    assert verdict(block, role, identity) == Classification(direction=direction, reason=reason)


# --- sisimai: bounces and auto-replies --------------------------------------------------------

FORWARDED_BOUNCE = SISIMAI / "maildir/bsd/lhost-sendmail-14.eml"
FML_NOTICES = {"sisimai/maildir/bsd/lhost-fml-02.eml", "sisimai/maildir/bsd/lhost-fml-03.eml"}
# The corpus's own senders write from example.jp: the bounces come back to that team.
SISIMAI_TEAM = MailboxIdentity(
    team_addresses=frozenset({"kijitora@example.jp"}), team_domains=frozenset({"example.jp"})
)
# The hardest case: every sender in the corpus is "the team", so nothing may slip to outbound.
EVERYONE_IS_TEAM = MailboxIdentity(
    team_addresses=frozenset(parsed(p).from_addr for p in SISIMAI_BOUNCES),
    team_domains=frozenset(parsed(p).from_addr.rpartition("@")[2] for p in SISIMAI_BOUNCES),
)


def not_ignored(identity: MailboxIdentity, role: FolderRole) -> dict[str, Classification]:
    """The sisimai bounce files that do not classify as ignored, by corpus id."""
    verdicts = {corpus_id(p): classify(parsed(p), role, identity) for p in SISIMAI_BOUNCES}
    return {name: v for name, v in verdicts.items() if v.direction is not IGN}


@pytest.mark.parametrize("role", [INBOX, SENT])
@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(SISIMAI_TEAM, id="team-example.jp"),
        pytest.param(EVERYONE_IS_TEAM, id="every-sender-is-team"),
        pytest.param(MailboxIdentity(), id="no-team"),
    ],
)
def test_every_bounce_and_auto_reply_is_ignored(
    identity: MailboxIdentity, role: FolderRole
) -> None:
    """All 629 sisimai files but one are ignored, in any folder, whoever the team is.

    The exception is a person forwarding a bounce ("Fwd: Returned mail: ..."): no header marks
    it as automated, and a human forward is a message someone should read.
    """
    assert len(SISIMAI_BOUNCES) == 629
    assert set(not_ignored(identity, role)) == {corpus_id(FORWARDED_BOUNCE)}


def test_bounces_with_counted_lists() -> None:
    """With mailing_lists="count" only fml's two list-server notices join the forwarded bounce."""
    identity = MailboxIdentity(team_domains=frozenset({"example.jp"}), mailing_lists="count")
    assert {name: v.reason for name, v in not_ignored(identity, INBOX).items()} == {
        corpus_id(FORWARDED_BOUNCE): "from team domain example.jp",
        "sisimai/maildir/bsd/lhost-fml-02.eml": "customer message via mailing list (Mailing-List)",
        "sisimai/maildir/bsd/lhost-fml-03.eml": "customer message via mailing list (X-MLServer)",
    }


@pytest.mark.parametrize(
    ("identity", "direction", "reason"),
    [
        pytest.param(SISIMAI_TEAM, OUT, "from team domain example.jp", id="teammate-forward"),
        pytest.param(TEAM, IN, "customer message", id="customer-forward"),
    ],
)
def test_forwarded_bounce_is_a_person(
    identity: MailboxIdentity, direction: Direction, reason: str
) -> None:
    """A person's "Fwd: Returned mail" counts like any message from that person."""
    assert classify(parsed(FORWARDED_BOUNCE), INBOX, identity) == Classification(
        direction=direction, reason=reason
    )


def test_bounce_reasons() -> None:
    """The sisimai files spread over the ladder's rungs as counted here (team example.jp)."""
    reasons = Counter(
        classify(parsed(p), INBOX, SISIMAI_TEAM).reason.split(" (")[0] for p in SISIMAI_BOUNCES
    )
    assert reasons == {
        "bounce": 588,
        "abuse report": 13,
        "ignored sender": 9,
        "auto-reply": 7,
        "delivery report": 5,
        "automated message": 4,
        "mailing list": 2,
        "from team domain example.jp": 1,
    }


RFC3834 = {
    "rfc3834-01.eml": "Auto-Submitted: auto-replied",
    "rfc3834-02.eml": "auto-reply subject, with Return-Path: <>",
    "rfc3834-03.eml": "X-Apple-Action: VACATION",
    "rfc3834-04.eml": "auto-reply subject, with Return-Path: <>",
    "rfc3834-05.eml": "Auto-Submitted: auto-replied",
    "rfc3834-06.eml": "Auto-Submitted: auto-replied",
}


@pytest.mark.parametrize(("name", "marker"), RFC3834.items())
def test_out_of_office_is_ignored(name: str, marker: str) -> None:
    """An out-of-office reply is neither a customer message nor, from us, a reply."""
    headers = parsed(SISIMAI / "maildir/bsd" / name)
    ours = MailboxIdentity(team_addresses=frozenset({headers.from_addr}))
    assert classify(headers, INBOX, MailboxIdentity(ignore_senders=())) == Classification(
        direction=IGN, reason=f"auto-reply ({marker})"
    )
    assert classify(headers, INBOX, ours) == Classification(
        direction=IGN, reason=f"our own auto-reply ({marker})"
    )


@pytest.mark.parametrize(
    ("name", "direction", "reason"),
    [
        pytest.param("is-not-bounce-01.eml", IN, "customer message", id="plain-japanese-mail"),
        pytest.param("is-not-bounce-02.eml", IN, "customer message", id="forward-as-attachment"),
        pytest.param("rb-issue-368-bug.eml", IGN, "bounce (From: postmaster@yyyyyy.de)",
                     id="really-a-bounce"),
    ],
)  # fmt: skip
def test_sisimai_not_bounces(name: str, direction: Direction, reason: str) -> None:
    """Two real non-bounces are customer mail; the third "not" file is in fact a bounce."""
    headers = parsed(SISIMAI / "maildir/not" / name)
    assert classify(headers, INBOX, SISIMAI_TEAM) == Classification(
        direction=direction, reason=reason
    )


def test_mbox_bounces() -> None:
    """The 37-message mbox holds 36 ignored bounces and the same forwarded bounce as the maildir."""
    verdicts = [classify(parse_headers(m), INBOX, TEAM).direction for m in mbox_messages()]
    assert Counter(verdicts) == {IGN: 36, IN: 1}


# --- notmuch: real mailing-list mail ------------------------------------------------------------


def notmuch_reasons(identity: MailboxIdentity) -> Counter[str]:
    """How many notmuch messages get each reason (the part before any parenthesis)."""
    return Counter(
        classify(parsed(p), INBOX, identity).reason.split(" (")[0] for p in NOTMUCH_MESSAGES
    )


@pytest.mark.parametrize(
    ("mailing_lists", "expected"),
    [
        pytest.param("ignore", {"mailing list": 219, "customer message": 55, "auto-reply": 1},
                     id="ignore"),
        pytest.param("count", {"customer message via mailing list": 219, "customer message": 55,
                               "auto-reply": 1}, id="count"),
    ],
)  # fmt: skip
def test_notmuch_lists(mailing_lists: str, expected: dict[str, int]) -> None:
    """List posts are ignored or counted as inbound by the mailbox setting; the rest is inbound.

    The 55 are the notmuch "default" messages stripped of list headers and the threading tests;
    the auto-reply is Request Tracker's "[... #33575] AutoReply:" answering a customer.
    """
    identity = MailboxIdentity(mailing_lists="ignore" if mailing_lists == "ignore" else "count")
    assert notmuch_reasons(identity) == expected


def test_notmuch_as_the_teams_own_list() -> None:
    """When notmuch@notmuchmail.org is the team's address, its 17 list posts are customer mail."""
    identity = MailboxIdentity(team_addresses=frozenset({"notmuch@notmuchmail.org"}))
    assert notmuch_reasons(identity) == {
        "mailing list": 202,
        "customer message": 72,
        "auto-reply": 1,
    }


def test_notmuch_teammate_posts_are_outbound() -> None:
    """With Carl Worth on the team and lists counted, his 12 messages are outbound replies."""
    identity = MailboxIdentity(
        team_addresses=frozenset({"cworth@cworth.org"}), mailing_lists="count"
    )
    outbound = [
        p for p in NOTMUCH_MESSAGES if classify(parsed(p), INBOX, identity).direction is OUT
    ]
    assert {parsed(p).from_addr for p in outbound} == {"cworth@cworth.org"}
    assert len(outbound) == 12


def test_rt_auto_reply_is_ignored() -> None:
    """Request Tracker's auto-reply (subject tag + "AutoReply:" + In-Reply-To) is ignored."""
    path: Path = NOTMUCH / "threading/ghost-root/1532672447.R3166642290392477575.len:2,S"
    assert classify(parsed(path), INBOX, MailboxIdentity()) == Classification(
        direction=IGN, reason="auto-reply (auto-reply subject, with In-Reply-To)"
    )
