"""The store's disk and file fail under a running daemon: the disk fills up, turns read-only,
or the file is deleted, replaced, truncated or damaged. A passing fault is retried and costs
nothing once it is over; a file that is gone or damaged stops all writing. Either way
/readyz says why (503), replyclock_store_up says 0, and the log says it once.

The full and read-only disks are real: a small tmpfs mounted for the test (needs root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_server
from harness import wait_for
from harness.mailbox import RULES, ask_question
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer, ImapUser

pytestmark = pytest.mark.imap


@contextlib.contextmanager
def small_disk(path: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the test."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "replyclock-test", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        require_server(f"cannot mount a tmpfs ({mounted.stderr.strip()})", "run make test as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; return the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
    return filler


def store_up(service: Service) -> float:
    return service.metrics()[("replyclock_store_up", frozenset())]


def started_on(service: Service, dovecot: DovecotServer, db: Path | None = None) -> ImapUser:
    """A user with three questions, and the daemon (1 s polls) ready on them."""
    user = dovecot.create_user("storefault")
    for n in range(3):
        ask_question(dovecot, user, f"early{n}", minutes_ago=2)
    service.store_path = db
    service.write(imap_source("support", user, poll="1s"), rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=30), service.log_text()[-2000:]
    return user


def test_a_full_disk_is_reported_and_nothing_is_lost_once_space_returns(
    dovecot: DovecotServer, service: Service
) -> None:
    """With the store's disk full, mail that arrives cannot be stored: /readyz answers 503
    "disk full", the store is reported down, and the failure is logged once. When space
    returns the daemon says so and every message that came meanwhile is stored."""
    with small_disk(service.workdir / "disk") as disk:
        db = disk / "store.db"
        user = started_on(service, dovecot, db)
        filler = fill(disk)
        late = [ask_question(dovecot, user, f"late{n}", minutes_ago=2) for n in range(5)]
        assert wait_for(lambda: service.readyz()[0] == 503, timeout=20), service.log_text()
        _status, reason = service.readyz()
        assert reason.startswith("disk full: the disk holding the store"), reason
        assert store_up(service) == 0
        time.sleep(3)  # several failing polls
        filler.unlink()
        assert wait_for(service.ready, timeout=20), service.log_text()[-2000:]
        assert wait_for(lambda: set(late) <= service.identities(), timeout=20)
        assert store_up(service) == 1
        service.stop()
    log = service.logs[-1]
    assert log.count('msg="store write failed; retrying, nothing is lost"') == 1, [
        line for line in log.splitlines() if "store" in line
    ]
    assert log.count('msg="store writable again"') == 1
    assert "Traceback" not in log


def test_a_read_only_store_directory_is_refused_at_start_with_the_fix(
    dovecot: DovecotServer, service: Service
) -> None:
    """A store on a file system mounted read-only: the daemon exits 1 with one line naming
    the path and the fix, not a traceback. (A file system cannot be made read-only under a
    process that holds files open for writing, so this is the start; a disk that fills up
    under the running daemon is the test above.)"""
    with small_disk(service.workdir / "disk") as disk:
        db = disk / "store.db"
        started_on(service, dovecot, db)
        service.stop()
        remount(disk, "ro")
        try:
            service.start()
            assert service.process is not None
            assert service.process.wait(timeout=20) == 1
        finally:
            remount(disk, "rw")
    text = service.log_text()
    assert f"replyclock: cannot create the lock file {db}.lock next to the store" in text
    assert "set store.path to a location this user can write" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_file_deleted_or_replaced_under_the_daemon_stops_all_writing(
    dovecot: DovecotServer, service: Service, tmp_path: Path, how: str
) -> None:
    """Deleted or replaced by another file under the running daemon, the store is written no
    more: /readyz answers 503 naming what happened, the log says so once, the daemon stays up
    (so /healthz still answers) and no new file appears in its place."""
    user = started_on(service, dovecot)
    if how == "deleted":
        for path in service.workdir.glob("store.db*"):
            if not path.name.endswith(".lock"):
                path.unlink()
    else:
        other = tmp_path / "other.db"
        shutil.copy(service.db, other)
        os.replace(other, service.db)
    ask_question(dovecot, user, "after", minutes_ago=2)
    assert wait_for(lambda: service.readyz()[0] == 503, timeout=20)
    reason = service.readyz()[1]
    what = "was deleted" if how == "deleted" else "was replaced by another file"
    assert reason.startswith(f"store file gone: the store file {service.db} {what}"), reason
    time.sleep(3)
    assert service.alive()
    assert service.readyz()[0] == 503
    assert store_up(service) == 0
    code, _ = service.stop()
    assert code == 0
    log = service.logs[-1]
    assert log.count('msg="store unusable; replyclock stopped writing"') == 1
    assert "Traceback" not in log
    if how == "deleted":
        assert not service.db.exists()


def test_a_store_truncated_while_stopped_is_refused_at_start(
    dovecot: DovecotServer, service: Service
) -> None:
    """A store emptied to 0 bytes while the daemon was stopped is not taken as new (which
    would read all mail again): the daemon exits 1 saying what to do."""
    started_on(service, dovecot)
    service.stop()
    os.truncate(service.db, 0)
    service.start()
    assert service.process is not None
    assert service.process.wait(timeout=20) == 1
    text = service.log_text()
    assert f"replyclock: the store {service.db} exists but is empty (0 bytes)" in text
    assert os.path.getsize(service.db) == 0


def test_a_damaged_store_is_refused_at_start_saying_how_to_recover(
    dovecot: DovecotServer, service: Service
) -> None:
    """A store whose pages were overwritten: the daemon exits 1 with one line saying the store
    is damaged and how to recover, instead of logging a traceback every few seconds."""
    user = started_on(service, dovecot)
    for n in range(300):
        ask_question(dovecot, user, f"bulk{n}", minutes_ago=2)
    assert wait_for(lambda: len(service.identities()) == 303, timeout=30)
    service.stop()
    data = bytearray(service.db.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 + 8 : page * 4096 + 200] = b"\xa5" * 192
    service.db.write_bytes(bytes(data))
    service.start()
    assert service.process is not None
    assert service.process.wait(timeout=20) == 1
    text = service.log_text()
    assert f"replyclock: the store {service.db} is damaged (" in text
    assert "restore the file from a backup, or move it away to start a new store" in text
    assert "Traceback" not in text
