"""IMAP IDLE for many mailboxes on one thread, against a real Dovecot.

Every watched folder of every mailbox waits on the same thread: new mail in one mailbox
signals that mailbox alone, within seconds; a server that goes away is told once and each
connection comes back by itself, asking for a poll (mail may have come meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from factories import mail
from harness import wait_for
from servers.dovecot import DovecotServer, ImapUser

from monitor.config.models import ImapSourceConfig
from monitor.mail.classify import MailboxIdentity
from monitor.sources.imap import ImapSource
from monitor.sources.imap_idle import IdleHub

pytestmark = pytest.mark.imap

MAILBOXES = 24
TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@acme.example"}), team_domains=frozenset({"acme.example"})
)


def source_for(user: ImapUser, name: str, **overrides: Any) -> ImapSource:
    values: dict[str, Any] = {
        "type": "imap",
        "name": name,
        "host": user.host,
        "port": user.port,
        "starttls": True,
        "ca_file": user.ca_file,
        "username": user.username,
        "password": user.password,
        "timeout": "5s",
    }
    values.update(overrides)
    return ImapSource(ImapSourceConfig.model_validate(values), TEAM)


class Signals:
    """Which mailbox asked for a poll, and when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.at: dict[str, float] = {}

    def callback(self, name: str) -> Any:
        def on_mail() -> None:
            with self.lock:
                self.calls[name] += 1
                self.at.setdefault(name, time.monotonic())

        return on_mail

    def count(self, name: str) -> int:
        with self.lock:
            return self.calls[name]


@pytest.fixture
def mailboxes(dovecot: DovecotServer) -> list[ImapUser]:
    return [dovecot.create_user("idle") for _ in range(MAILBOXES)]


@pytest.fixture
def hub() -> Iterator[tuple[IdleHub, threading.Event]]:
    stop = threading.Event()
    hub = IdleHub(stop, workers=4)
    yield hub, stop
    stop.set()
    hub.join(5)


def idle_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("imap-idle")]


def deliver(dovecot: DovecotServer, user: ImapUser, tag: str) -> None:
    now = datetime.now(UTC)
    message = mail(
        sender=f"{tag}@customer.example", subject=f"Question {tag}", message_id=tag, date=now
    )
    dovecot.append(user.username, user.password, "INBOX", message, internaldate=now)


def test_many_mailboxes_wait_on_one_thread_and_only_the_one_with_mail_is_signalled(
    dovecot: DovecotServer, mailboxes: list[ImapUser], hub: tuple[IdleHub, threading.Event]
) -> None:
    idle, _ = hub
    signals = Signals()
    before = set(threading.enumerate())
    for n, user in enumerate(mailboxes):
        idle.watch(source_for(user, f"box{n}"), "INBOX", signals.callback(f"box{n}"))
    idle.start()
    assert wait_for(lambda: idle.connected == MAILBOXES, timeout=30), idle.connected
    started = set(threading.enumerate()) - before
    # One waiting thread and at most four that connect: not one per mailbox.
    assert len(started) <= 5, sorted(t.name for t in started)
    assert "imap-idle" in idle_threads()

    sent = time.monotonic()
    deliver(dovecot, mailboxes[7], "seven")
    assert wait_for(lambda: signals.count("box7") >= 1, timeout=5)
    assert signals.at["box7"] - sent < 3.0
    time.sleep(0.5)
    assert set(signals.calls) == {"box7"}, signals.calls


def test_idle_folders_and_idle_off_decide_what_is_held_in_idle(
    dovecot: DovecotServer, mailboxes: list[ImapUser]
) -> None:
    user = mailboxes[0]
    assert source_for(user, "a").config.idle_on == ["INBOX"]
    both = source_for(user, "b", folders=["INBOX", "Escalations"], idle_folders=["Escalations"])
    assert both.config.idle_on == ["Escalations"]
    assert source_for(user, "c", idle=False).config.idle_on == []
    with pytest.raises(ValueError, match="idle_folders names folders not in folders: Spam"):
        source_for(user, "d", idle_folders=["Spam"])


def test_a_server_outage_is_told_once_and_every_connection_comes_back_asking_for_a_poll(
    dovecot: DovecotServer,
    mailboxes: list[ImapUser],
    hub: tuple[IdleHub, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    idle, _ = hub
    signals = Signals()
    watched = mailboxes[:6]
    for n, user in enumerate(watched):
        idle.watch(source_for(user, f"box{n}"), "INBOX", signals.callback(f"box{n}"))
    caplog.set_level(logging.INFO, logger="replyclock.sources.imap")
    idle.start()
    assert wait_for(lambda: idle.connected == len(watched), timeout=30)
    dovecot.stop_temporarily()
    try:
        assert wait_for(lambda: idle.connected == 0, timeout=10)
        time.sleep(3)  # a few reconnect attempts against the stopped server
    finally:
        dovecot.restart()
    assert wait_for(lambda: idle.connected == len(watched), timeout=40), idle.connected
    # Each mailbox asks for a poll once it is back: mail may have come while it was away.
    assert wait_for(lambda: all(signals.count(f"box{n}") >= 1 for n in range(len(watched))))
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "IDLE connection lost" in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert sum("IDLE connection back" in r.getMessage() for r in caplog.records) == 1
