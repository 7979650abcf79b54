"""The daemon's own first sync of real mailboxes equals `run --once` on the same mail, exactly.

Six mailboxes on the real Dovecot, one of about 19,000 messages and five small ones, read by
`replyclock run` on an empty store: the small ones finish first, so their evaluations (and the
30-second evaluation job) run while the large one is still being read, which is what once lost
replies by the thousand. A second store is filled by `replyclock run --once` from the same
mailboxes; conversations, clocks, totals and what the metrics are made of must be identical.
Slack (the fake) hears of the history's overdue conversations as one summary per mailbox,
not one message each.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import free_port, wait_for
from harness.compare import differences, store_facts
from harness.mailbox import RULES, support_mailbox
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack

from monitor.store import Store

pytestmark = pytest.mark.imap

SIZES = {"big": 8000, "s1": 120, "s2": 150, "s3": 180, "s4": 90, "s5": 160}


@pytest.fixture
def workdirs() -> Iterator[tuple[Path, Path]]:
    a = Path(tempfile.mkdtemp(prefix="replyclock-first-sync-daemon-"))
    b = Path(tempfile.mkdtemp(prefix="replyclock-first-sync-once-"))
    yield a, b
    shutil.rmtree(a, ignore_errors=True)
    shutil.rmtree(b, ignore_errors=True)


def pending_alerts(service: Service) -> int:
    store = Store.open(service.db, readonly=True)
    try:
        return int(
            store.conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        )
    finally:
        store.close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_daemon_first_sync_equals_run_once(
    dovecot: DovecotServer, workdirs: tuple[Path, Path], slack: FakeSlack
) -> None:
    """A daemon reading six mailboxes from scratch, evaluating while it reads, ends with the
    same conversations, clocks, totals and waiting counts as `run --once` on the same mail,
    and sends the overdue history to Slack as one summary per mailbox."""
    now = datetime.now(UTC).replace(microsecond=0)
    sources = ""
    waiting = 0
    for tag, conversations in SIZES.items():
        user = dovecot.create_user(tag)
        box = support_mailbox(tag, conversations, now)
        dovecot.write_maildir(user.username, "INBOX", box.inbox)
        dovecot.write_maildir(user.username, "Sent", box.sent)
        waiting += box.waiting
        sources += imap_source(tag, user, poll="60s")
    alerts = (
        f'alerts:\n  slack: {{token: {DEFAULT_TOKEN}, channel: "#sla-alerts", '
        f"base_url: {slack.api_url!r}}}\n"
    )
    daemon = Service(workdir=workdirs[0], port=free_port())
    daemon.write(sources, rules=RULES, extra=alerts)
    once = Service(workdir=workdirs[1], port=free_port())
    once.write(sources, rules=RULES, extra=alerts)

    daemon.start()
    try:
        assert wait_for(daemon.ready, timeout=300, step=0.5), daemon.log_text()[-3000:]
        assert wait_for(lambda: pending_alerts(daemon) == 0, timeout=30)
        time.sleep(3)  # a delivery round or two more: nothing else may follow
    finally:
        code, _ = daemon.stop()
    assert code == 0
    posts = [call.args for call in slack.calls_to("chat.postMessage")]
    # One summary per delivery round in which first syncs ended: at most one per mailbox.
    assert 1 <= len(posts) <= len(SIZES), [p.get("text") for p in posts]
    assert all("First read of the mailbox" in str(p.get("text")) for p in posts)
    result = once.run_once("--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]

    first, second = store_facts(daemon.db), store_facts(once.db)
    assert differences(first, second) == []
    assert first == second
    assert sum(n for _, _, _, n in first["awaiting"]) == waiting
    # The large mailbox was still being read when other evaluations ran.
    log = daemon.logs[-1]
    big_done = re.search(r'.*msg="source polled" source=big .*', log)
    assert big_done is not None
    assert "msg=evaluated" in log[: big_done.start()]
