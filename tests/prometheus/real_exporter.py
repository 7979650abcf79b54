"""The real replyclock, run as `replyclock run` against the test Dovecot, as an exporter."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from factories import mail
from harness.service import imap_source
from servers.dovecot import DovecotServer

RULES = """
calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: ["08:00-20:00"], sat: ["10:00-14:00"]}
policies:
  - name: vip
    match: {sender_domain: [bigcorp.example]}
    calendar: 24x7
    targets: {first_response: 1h, next_response: 2h}
  - name: standard
    calendar: office
    targets: {first_response: 4h, next_response: 8h}
"""


@dataclass
class RealExporter:
    """A running replyclock daemon and where its metrics are."""

    url: str
    process: subprocess.Popen[str]
    workdir: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_mail(dovecot: DovecotServer, user: str, password: str) -> None:
    """A few realistic conversations: answered in time, answered late, and waiting."""
    now = datetime.now(UTC).replace(microsecond=0)

    def put(folder: str, minutes_ago: int, **kw: str) -> None:
        when = now - timedelta(minutes=minutes_ago)
        dovecot.append(user, password, folder, mail(date=when, **kw), internaldate=when)

    put(
        "INBOX",
        300,
        sender="Ann <ann@bigcorp.example>",
        message_id="q1@bigcorp.example",
        subject="Invoice",
    )
    put(
        "Sent",
        280,
        sender="Support <support@acme.example>",
        to="ann@bigcorp.example",
        message_id="r1@acme.example",
        subject="Re: Invoice",
        in_reply_to="q1@bigcorp.example",
    )
    put(
        "INBOX",
        240,
        sender="Bob <bob@bigcorp.example>",
        message_id="q2@bigcorp.example",
        subject="Outage",
    )
    put(
        "Sent",
        60,
        sender="Support <support@acme.example>",
        to="bob@bigcorp.example",
        message_id="r2@acme.example",
        subject="Re: Outage",
        in_reply_to="q2@bigcorp.example",
    )
    put(
        "INBOX",
        90,
        sender="Carol <carol@bigcorp.example>",
        message_id="q3@bigcorp.example",
        subject="Access",
    )
    put(
        "INBOX",
        10,
        sender="Dan <dan@shop.example>",
        message_id="q4@shop.example",
        subject="Question",
    )


def start_real_exporter(dovecot: DovecotServer) -> RealExporter:
    """Start `replyclock run` on a fresh Dovecot user and wait until it is ready."""
    user = dovecot.create_user("exporter")
    _load_mail(dovecot, user.username, user.password)
    workdir = Path(tempfile.mkdtemp(prefix="replyclock-exporter-"))
    (workdir / "rules.yaml").write_text(RULES)
    port = _free_port()
    (workdir / "replyclock.yaml").write_text(
        f"""
store: {{path: store.db}}
metrics: {{listen: "127.0.0.1:{port}"}}
team: {{addresses: [support@acme.example], domains: [acme.example]}}
rules: [rules.yaml]
sources:{imap_source("support", user, poll="5s")}"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "-c", str(workdir / "replyclock.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return RealExporter(f"http://127.0.0.1:{port}/metrics", process, workdir)
        except (urllib.error.URLError, OSError):
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    stop_real_exporter(RealExporter("", process, workdir))
    raise RuntimeError(
        f"replyclock did not become ready:\n{process.stderr.read() if process.stderr else ''}"
    )


def stop_real_exporter(exporter: RealExporter) -> None:
    """Stop the daemon (SIGTERM, then kill)."""
    if exporter.process.poll() is None:
        exporter.process.send_signal(signal.SIGTERM)
        try:
            exporter.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            exporter.process.kill()
            exporter.process.wait()
