"""The IMAP server misbehaves under a running daemon: it stops and comes back, or a folder's
UIDVALIDITY changes, with and without mail vanishing. The daemon heals by itself."""

from __future__ import annotations

import time

import pytest
from harness import wait_for
from harness.mailbox import RULES, ask_question
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer, ImapUser

pytestmark = pytest.mark.imap

# What an outage may cost at most: the IDLE watcher reconnects within its capped backoff
# (monitor/sources/imap_idle.py, RECONNECT_MAX_S = 60 s) of the server's return; a short
# outage is over long before the cap is reached.
RECOVERY_BOUND_S = 30.0
# CPU the daemon may burn while its server is down (it once spun one core at 100%).
OUTAGE_CPU_SHARE = 0.05


def closed_without_reply(service: Service) -> float:
    return sum(
        value
        for (name, _), value in service.metrics().items()
        if name == "replyclock_closed_without_reply_total"
    )


def waiting(service: Service) -> float:
    return sum(
        value
        for (name, _), value in service.metrics().items()
        if name == "replyclock_awaiting_reply"
    )


def started_on(service: Service, dovecot: DovecotServer, user: ImapUser, questions: int) -> None:
    """The daemon (1 s polls) ready on ``questions`` questions of five minutes ago."""
    for n in range(questions):
        ask_question(dovecot, user, f"q{n}", minutes_ago=5)
    service.write(imap_source("support", user, poll="1s"), rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=30)


def test_imap_outage_costs_no_cpu_and_new_mail_is_seen_soon_after_it_ends(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """With the server stopped for 12 s the daemon stays idle (no spinning IDLE loop), says
    once that IDLE was lost, and after the server is back a new message is stored within
    RECOVERY_BOUND_S with the default 60 s poll interval: IDLE reconnects and asks for a poll."""
    ask_question(dovecot, imap_user, "before", minutes_ago=5)
    service.write(imap_source("support", imap_user), rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=30)
    assert wait_for(lambda: service.log_text().count("msg=connected") >= 2)  # poll + IDLE
    dovecot.stop_temporarily()
    try:
        cpu_before, started = service.cpu_seconds(), time.monotonic()
        time.sleep(12)
        cpu = service.cpu_seconds() - cpu_before
        elapsed = time.monotonic() - started
    finally:
        dovecot.restart()
    assert cpu < OUTAGE_CPU_SHARE * elapsed, f"{cpu:.2f} s of CPU in {elapsed:.1f} s of outage"
    back = time.monotonic()
    qid = ask_question(dovecot, imap_user, "after")
    assert wait_for(lambda: qid in service.identities(), timeout=RECOVERY_BOUND_S), (
        service.log_text()[-4000:]
    )
    took = time.monotonic() - back
    service.stop()
    log = service.logs[-1]
    assert log.count('msg="IDLE connection lost; polls go on, reconnecting"') == 1
    assert 'msg="IDLE connection back"' in log
    assert took < RECOVERY_BOUND_S


def test_uidvalidity_change_without_vanished_mail_changes_nothing(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """A folder whose UIDVALIDITY changes with all its mail still there is read again: no
    message twice, no clock closed, the same number waiting."""
    started_on(service, dovecot, imap_user, questions=5)
    assert waiting(service) == 5
    dovecot.set_uidvalidity(imap_user.username, "INBOX")
    assert wait_for(lambda: "uidvalidity changed" in service.log_text(), timeout=15)
    time.sleep(2)  # a few more polls
    assert (waiting(service), closed_without_reply(service)) == (5, 0)
    assert len(service.identities()) == 5
    service.stop()


def test_mail_vanished_across_a_uidvalidity_change_closes_its_clocks(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """Ten unanswered messages removed while the inbox's UIDVALIDITY changes (an index rebuilt
    or restored while the daemon was stopped) close as "closed without reply", as a plain
    expunge does; the rest wait on."""
    started_on(service, dovecot, imap_user, questions=14)
    assert waiting(service) == 14
    with dovecot.session(imap_user.username, imap_user.password) as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
    # While the daemon is stopped, so that it cannot see the expunge on its own first.
    service.stop()
    dovecot.expunge(imap_user.username, imap_user.password, "INBOX", uids[:10])
    dovecot.set_uidvalidity(imap_user.username, "INBOX")
    service.start()
    assert wait_for(service.ready, timeout=30)
    assert wait_for(lambda: closed_without_reply(service) == 10, timeout=20), service.metrics()
    assert waiting(service) == 4
    service.stop()
