"""`replyclock run` as a subprocess, the way an operator runs it, with its config, store, port
and logs in one directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from servers.dovecot import ImapUser

from harness.probes import http_get, metric_samples
from monitor.errors import StoreError
from monitor.store import Store

RULES = """
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
"""


def imap_source(name: str, user: ImapUser, *, poll: str = "60s", extra: str = "") -> str:
    """The YAML of one IMAP source on the test Dovecot (STARTTLS against its own CA)."""
    lines = f"""
  - name: {name}
    type: imap
    host: {user.host}
    port: {user.port}
    starttls: true
    ca_file: {user.ca_file}
    username: {user.username}
    password: {user.password}
    poll_interval: {poll}
    timeout: 5s
"""
    return lines + "".join(f"    {line}\n" for line in extra.splitlines() if line.strip())


@dataclass
class Service:
    """A `replyclock run` subprocess with its config, store and logs in ``workdir``."""

    workdir: Path
    port: int
    process: subprocess.Popen[str] | None = None
    logs: list[str] = field(default_factory=list)
    runs: int = 0
    store_path: Path | None = None  # where the store lives, when not in ``workdir``

    @property
    def config(self) -> Path:
        return self.workdir / "replyclock.yaml"

    @property
    def db(self) -> Path:
        return self.store_path or self.workdir / "store.db"

    def write(self, sources: str, *, rules: str = RULES, extra: str = "") -> None:
        """Write the config: the given ``sources:`` items, the rules file and extra sections."""
        (self.workdir / "rules.yaml").write_text(rules)
        self.config.write_text(
            f"store: {{path: {self.db}}}\nmetrics: {{listen: '127.0.0.1:{self.port}'}}\n"
            f"team: {{domains: [acme.example]}}\nrules: [rules.yaml]\n{extra}sources:{sources}"
        )

    def write_config(
        self, users: list[ImapUser], *, poll: str = "60s", extra: str = "", rules: str = RULES
    ) -> None:
        """The config for up to three IMAP users, named support, billing and sales."""
        names = ("support", "billing", "sales")
        self.write(
            "".join(
                imap_source(name, user, poll=poll) for name, user in zip(names, users, strict=False)
            ),
            rules=rules,
            extra=extra,
        )

    @property
    def log_file(self) -> Path:
        return self.workdir / f"replyclock-{self.runs}.log"

    def start(self, env: dict[str, str] | None = None, *args: str) -> None:
        """Start `replyclock run` (more arguments in ``args``), logging to its own file."""
        self.runs += 1
        with self.log_file.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "-c", str(self.config), *args],
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                env={**os.environ, **(env or {})},
            )

    def run_once(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """`replyclock run --once` on the same config, to the end."""
        return subprocess.run(
            [sys.executable, "-m", "monitor", "run", "--once", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def ready(self) -> bool:
        return http_get(self.port, "/readyz")[0] == 200

    def readyz(self) -> tuple[int, str]:
        return http_get(self.port, "/readyz")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, body = http_get(self.port, "/metrics")
        assert status == 200, (status, body)
        return metric_samples(body)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float:
        """User plus system CPU time the daemon process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``sig`` and wait; (exit code, seconds it took)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        took = time.monotonic() - started
        self.logs.append(self.log_text())
        return code, took

    def kill(self) -> None:
        """SIGKILL, if still running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            self.logs.append(self.log_text())

    def identities(self) -> set[str]:
        """The identities of every stored message (empty while there is no store)."""
        try:
            store = Store.open(self.db, readonly=True)
        except StoreError:
            return set()
        try:
            return {row[0] for row in store.conn.execute("SELECT identity FROM messages")}
        except StoreError:
            return set()
        finally:
            store.close()
