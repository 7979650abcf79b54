"""The daemon as a service, against the test Dovecot: IDLE, stop, reload, recovery, crashes."""

from __future__ import annotations

import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import mail
from harness import free_port, http_get, wait_for
from harness.service import Service
from servers.dovecot import DovecotServer, ImapUser

from monitor.store import Store

pytestmark = pytest.mark.imap


@pytest.fixture
def service() -> Iterator[Service]:
    workdir = Path(tempfile.mkdtemp(prefix="replyclock-service-"))
    svc = Service(workdir=workdir, port=free_port())
    yield svc
    svc.kill()


def question(dovecot: DovecotServer, user: ImapUser, n: int, minutes_ago: int = 1) -> None:
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    dovecot.append(
        user.username,
        user.password,
        "INBOX",
        mail(sender=f"c{n}@customer.example", message_id=f"q{n}@customer.example", date=when),
        internaldate=when,
    )


def test_ready_after_first_poll_and_sigterm_exits_cleanly(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """/readyz turns 200 once the source was read; SIGTERM exits 0 well within 10 s and
    everything read is stored."""
    for n in range(3):
        question(dovecot, imap_user, n)
    service.write_config([imap_user])
    service.start()
    assert wait_for(service.ready)
    assert http_get(service.port, "/healthz") == (200, "ok\n")
    code, took = service.stop()
    assert (code, took < 10) == (0, True)
    assert service.identities() == {f"q{n}@customer.example" for n in range(3)}
    assert "msg=stopped" in service.logs[-1]


def test_idle_sees_new_mail_within_three_seconds(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """With a 10-minute poll interval, a message APPENDed to the inbox is stored in under 3 s
    because IMAP IDLE signals it."""
    service.write_config([imap_user], poll="10m")
    service.start()
    assert wait_for(service.ready)
    # Two sessions: the poll's and the IDLE watcher's (which must be in place first).
    assert wait_for(lambda: service.log_text().count("msg=connected") == 2)
    started = time.monotonic()
    question(dovecot, imap_user, 1, minutes_ago=0)
    assert wait_for(lambda: "q1@customer.example" in service.identities(), timeout=3.0)
    assert time.monotonic() - started < 3.0
    service.stop()


def test_sighup_reloads_a_good_config_and_keeps_the_old_on_a_bad_one(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """SIGHUP with a new source starts polling it; SIGHUP with an invalid config logs every
    problem and the daemon goes on with the config it had."""
    second = dovecot.create_user("billing")
    question(dovecot, second, 7)
    service.write_config([imap_user], poll="1s")
    service.start()
    assert wait_for(service.ready)
    service.write_config([imap_user, second], poll="1s")
    assert service.process is not None
    service.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "q7@customer.example" in service.identities())
    service.config.write_text(
        service.config.read_text().replace("poll_interval: 1s", "poll_interval: 1")
    )
    service.process.send_signal(signal.SIGHUP)
    question(dovecot, imap_user, 8, minutes_ago=0)
    assert wait_for(lambda: "q8@customer.example" in service.identities())
    assert service.ready()
    code, _ = service.stop()
    assert code == 0
    logs = service.logs[-1]
    assert 'msg="config reloaded"' in logs
    assert "sources[0].poll_interval: a duration needs a unit" in logs
    assert 'msg="config not reloaded; the running config stays"' in logs


def test_source_recovers_after_its_server_restarts_without_duplicates(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """When the IMAP server goes away the source is marked down; when it is back, polling
    resumes and no message is stored twice."""
    question(dovecot, imap_user, 1)
    service.write_config([imap_user], poll="1s")
    service.start()
    assert wait_for(service.ready)
    dovecot.stop_temporarily()
    try:
        assert wait_for(
            lambda: (
                'replyclock_source_up{source="support"} 0.0'
                in http_get(service.port, "/metrics")[1]
            )
        )
    finally:
        dovecot.restart()
    question(dovecot, imap_user, 2, minutes_ago=0)
    assert wait_for(lambda: "q2@customer.example" in service.identities(), timeout=20)
    assert wait_for(
        lambda: (
            'replyclock_source_up{source="support"} 1.0' in http_get(service.port, "/metrics")[1]
        )
    )
    service.stop()
    store = Store.open(service.db, readonly=True)
    try:
        assert store.source_counts() == {"support": (2, 2)}
    finally:
        store.close()
    assert 'msg="source down"' in service.logs[-1]
    assert 'msg="source recovered"' in service.logs[-1]


def test_kill_9_and_restart_loses_nothing(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """A daemon killed with SIGKILL mid-life restarts on the same store with every message it
    had stored, and reads the rest without duplicates."""
    for n in range(5):
        question(dovecot, imap_user, n)
    service.write_config([imap_user], poll="1s")
    service.start()
    assert wait_for(lambda: len(service.identities()) == 5)
    service.kill()
    for n in range(5, 8):
        question(dovecot, imap_user, n, minutes_ago=0)
    service.start()  # the lock died with the process: a new writer may start
    assert wait_for(lambda: len(service.identities()) == 8)
    service.stop()
    store = Store.open(service.db, readonly=True)
    try:
        assert store.source_counts() == {"support": (8, 8)}
    finally:
        store.close()


def test_systemd_notify_ready_watchdog_and_stopping(
    imap_user: ImapUser, service: Service, tmp_path: Path
) -> None:
    """Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC) the daemon sends READY=1, watchdog pings
    and STOPPING=1 over the sd_notify datagram socket."""
    path = Path(tempfile.mkdtemp()) / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        service.write_config([imap_user])
        service.start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"})
        received = [sock.recv(1024).decode() for _ in range(3)]
        service.stop()
        sock.settimeout(2)
        try:
            while True:
                received.append(sock.recv(1024).decode())
        except TimeoutError:
            pass
    assert received[0] == "READY=1"
    assert "WATCHDOG=1" in received[1:3]
    assert "STOPPING=1" in received


def test_metrics_can_require_a_bearer_token(
    imap_user: ImapUser, service: Service, tmp_path: Path
) -> None:
    """With bearer_token_file, /metrics answers 401 without the token and 200 with it, while
    the probes stay open."""
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    service.write_config([imap_user])
    text = service.config.read_text().replace(
        "metrics: {listen:", f"metrics: {{bearer_token_file: {token}, listen:"
    )
    service.config.write_text(text)
    service.start()
    assert wait_for(service.ready)
    assert http_get(service.port, "/metrics")[0] == 401
    assert http_get(service.port, "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    status, body = http_get(service.port, "/metrics", {"Authorization": "Bearer s3cret-token"})
    assert status == 200
    assert "replyclock_build_info" in body
    service.stop()


def counter_samples(port: int) -> dict[str, float]:
    status, body = http_get(port, "/metrics")
    assert status == 200
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("replyclock_")
        and line.split("{")[0].endswith(("_total", "_bucket", "_count", "_sum"))
    }


def test_counters_are_equal_after_a_restart(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service
) -> None:
    """Restarting the daemon leaves every counter and histogram exactly where it was: totals
    come from the store, so history is neither lost nor counted twice."""
    asked = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=90)
    for n in range(3):
        question(dovecot, imap_user, n, minutes_ago=90 - n)
    reply = mail(
        sender="Support <support@acme.example>",
        to="c0@customer.example",
        subject="Re: Help",
        message_id="r0@acme.example",
        date=asked + timedelta(minutes=20),
        in_reply_to="q0@customer.example",
    )
    dovecot.append(
        imap_user.username,
        imap_user.password,
        "Sent",
        reply,
        internaldate=asked + timedelta(minutes=20),
    )
    service.write_config([imap_user])
    service.start()
    assert wait_for(service.ready)
    before = counter_samples(service.port)
    assert (
        before[
            'replyclock_replies_total{policy="standard",source="support",target="first_response",within_sla="true"}'
        ]
        == 1
    )
    assert (
        before[
            'replyclock_sla_breaches_total{policy="standard",source="support",target="first_response"}'
        ]
        == 2
    )
    service.stop()
    service.start()
    assert wait_for(service.ready)
    after = counter_samples(service.port)
    service.stop()
    assert after == before
