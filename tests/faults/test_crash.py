"""kill -9 at random instants of a first sync and of steady polling: once restarted, the store
holds exactly what a clean `run --once` of the same mail makes: the same messages, the same
conversations and clocks, the same numbers behind every metric.

The instants are random; the seed is printed with any failure (``REPLYCLOCK_FAULT_SEED=...``
reproduces it).
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from harness import wait_for
from harness.compare import differences, store_facts
from harness.mailbox import RULES, ask_question, message, support_mailbox
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer

pytestmark = pytest.mark.imap

SEED = int(os.environ.get("REPLYCLOCK_FAULT_SEED", str(time.time_ns() % 1_000_000)))


def sources_for(dovecot: DovecotServer, sizes: dict[str, int], now: datetime, **kw: str) -> str:
    """Users on the test Dovecot filled with support mailboxes; the config's sources."""
    text = ""
    for tag, conversations in sizes.items():
        user = dovecot.create_user(tag)
        box = support_mailbox(tag, conversations, now, seed=SEED)
        dovecot.write_maildir(user.username, "INBOX", box.inbox)
        dovecot.write_maildir(user.username, "Sent", box.sent)
        text += imap_source(tag, user, **kw)
    return text


def stored(service: Service) -> int:
    return len(service.identities())


def assert_same_as_clean_run(service: Service, reference: Service, sources: str) -> None:
    reference.write(sources, rules=RULES)
    result = reference.run_once()
    assert result.returncode == 0, result.stderr[-2000:]
    faulty, clean = store_facts(service.db), store_facts(reference.db)
    assert differences(faulty, clean) == [], f"seed {SEED}"
    assert faulty == clean, f"seed {SEED}"


def test_kill_9_during_a_first_sync_loses_and_invents_nothing(
    dovecot: DovecotServer, service: Service, reference: Service
) -> None:
    """Killed three times at random instants while reading three mailboxes from scratch (in
    batches of 100), the daemon restarted each time ends with the store a clean run makes."""
    rng = random.Random(SEED)
    now = datetime.now(UTC).replace(microsecond=0)
    sources = sources_for(
        dovecot, {"big": 2500, "s1": 150, "s2": 200}, now, extra="batch_size: 100"
    )
    service.write(sources, rules=RULES)
    kills = []
    for _ in range(3):
        service.start()
        delay = rng.uniform(0.3, 4.0)
        time.sleep(delay)  # a random instant: startup, migration, mid-batch, evaluation
        kills.append((round(delay, 2), stored(service)))
        service.kill()
    service.start()
    assert wait_for(service.ready, timeout=180, step=0.2), service.log_text()[-2000:]
    code, _ = service.stop()
    assert code == 0
    assert any(count > 0 for _, count in kills), f"no kill landed mid-sync: {kills}"
    assert_same_as_clean_run(service, reference, sources)


def test_kill_9_during_steady_polling_loses_and_invents_nothing(
    dovecot: DovecotServer, service: Service, reference: Service
) -> None:
    """While new questions and replies keep arriving, the daemon is killed four times at
    random instants and restarted; it ends with every message once and the clean run's store."""
    rng = random.Random(SEED + 1)
    now = datetime.now(UTC).replace(microsecond=0)
    user = dovecot.create_user("steady")
    box = support_mailbox("steady", 150, now, seed=SEED)
    dovecot.write_maildir(user.username, "INBOX", box.inbox)
    dovecot.write_maildir(user.username, "Sent", box.sent)
    sources = imap_source("steady", user, poll="1s")
    service.write(sources, rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=60), service.log_text()[-2000:]
    expected = len(service.identities())
    for round_ in range(4):
        for n in range(5):
            tag = f"live{round_}.{n}"
            qid = ask_question(dovecot, user, tag, sender=f"live{n}@shop.example")
            if n % 2:
                replied = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
                dovecot.append(
                    user.username,
                    user.password,
                    "Sent",
                    message(
                        sender="support@acme.example",
                        to=f"live{n}@shop.example",
                        subject=f"Re: Question {tag}",
                        message_id=f"live-reply{round_}.{n}@acme.example",
                        date=replied,
                        refs=(qid,),
                    ),
                    internaldate=replied,
                )
                expected += 1
            expected += 1
        time.sleep(rng.uniform(0.0, 1.5))
        service.stop(signal.SIGKILL)
        service.start()
    assert wait_for(lambda: stored(service) == expected, timeout=60), (
        f"seed {SEED}: {stored(service)} of {expected} stored"
    )
    assert wait_for(service.ready, timeout=60)
    service.stop()
    assert_same_as_clean_run(service, reference, sources)
