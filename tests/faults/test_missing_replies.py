"""A mailbox whose team replies are saved elsewhere explains itself on /metrics and in the log.

The daemon on a real Dovecot mailbox with customer questions this week and an empty Sent
folder (an Exchange shared mailbox whose agents' replies land in their own Sent Items looks
exactly like this): once the first sync is done, `replyclock_replies_missing` is 1 for the
source and one warning line gives the fix; a mailbox with replies shows 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from harness import wait_for
from harness.mailbox import RULES, ask_question
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer

pytestmark = pytest.mark.imap


def missing(service: Service) -> dict[str, float]:
    return {
        dict(labels)["source"]: value
        for (name, labels), value in service.metrics().items()
        if name == "replyclock_replies_missing"
    }


def test_no_team_message_this_week_is_flagged_with_its_fix(
    dovecot: DovecotServer, service: Service
) -> None:
    lost, fine = dovecot.create_user(), dovecot.create_user()
    for user in (lost, fine):
        for n in range(3):
            ask_question(dovecot, user, f"{user.username}-q{n}", minutes_ago=60 + n)
    replied = ask_question(dovecot, fine, "answered", minutes_ago=90)
    dovecot.append(
        fine.username,
        fine.password,
        "Sent",
        b"From: support@acme.example\r\nTo: " + replied.encode() + b"\r\n"
        b"Subject: Re: Question answered\r\nIn-Reply-To: <" + replied.encode() + b">\r\n"
        b"Message-ID: <re-answered@acme.example>\r\n\r\nDone.\r\n",
        internaldate=datetime.now(UTC) - timedelta(minutes=30),
    )
    service.write(imap_source("lost", lost) + imap_source("fine", fine), rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=30)
    assert wait_for(lambda: missing(service) == {"lost": 1.0, "fine": 0.0}, timeout=15), (
        service.metrics()
    )
    service.stop()
    log = service.logs[-1]
    assert log.count('msg="replies missing"') == 1
    assert "source=lost" in log.split('msg="replies missing"')[1].split("\n")[0]
    assert "3 customer messages in the last 7 days but no team message" in log
