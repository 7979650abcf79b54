"""`replyclock run` without --once: polls on its schedule until stopped."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from harness import free_port, http_get, wait_for

from monitor.errors import StoreError
from monitor.store import Store

REPO = Path(__file__).resolve().parents[1]


def stored_messages(db: Path) -> int:
    try:
        store = Store.open(db, readonly=True)
    except StoreError:
        return 0
    try:
        return sum(messages for messages, _ in store.source_counts().values())
    finally:
        store.close()


def test_run_polls_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    """The scheduler polls the source at start, and SIGTERM stops it with exit code 0."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    config = tmp_path / "examples" / "demo.yaml"
    port = free_port()
    config.write_text(config.read_text() + f"\nmetrics:\n  listen: 127.0.0.1:{port}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: stored_messages(tmp_path / "var" / "demo.db") == 16)
        assert wait_for(lambda: http_get(port, "/readyz") == (200, "ready\n"))
        assert http_get(port, "/healthz") == (200, "ok\n")
        status, body = http_get(port, "/metrics")
        assert status == 200
        assert 'replyclock_source_up{source="acme-support"} 1.0' in body
        second = subprocess.run(
            [sys.executable, "-m", "monitor", "run", "-c", str(config), "--once"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert second.returncode == 1
        assert "is already writing to" in second.stderr
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    logs = process.stderr.read() if process.stderr else ""
    assert 'msg="source polled" source=acme-support new=16' in logs
    assert "msg=stopping signal=SIGTERM" in logs
