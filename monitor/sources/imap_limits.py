"""How many IMAP connections replyclock holds, and the server limits they run into.

While the daemon runs, an IMAP source holds one connection for polling and one per folder
held in IDLE (``idle_folders``, every watched folder by default; none with ``idle: false``).
Servers cap connections per mailbox and in all: `check --connect` says how many a source
needs beside the limit its server is known for, and how many all sources on one server need
together, so an operator raises the limits before the daemon meets them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from monitor.config.models import ImapSourceConfig
from monitor.sources.probe import Platform, ProbeReport

# Concurrent IMAP connections a mailbox may have, where the service documents a number.
PER_MAILBOX: dict[Platform, tuple[int, str]] = {
    "exchange": (
        20,
        "Exchange Online allows 20 concurrent IMAP connections per mailbox (Exchange Server: "
        "Set-ImapSettings -MaxConnectionsPerUser, 16 by default)",
    ),
    "gmail": (15, "Gmail allows 15 simultaneous IMAP connections per account"),
}
# Connections the team's own mail programs may need beside replyclock's, on a capped mailbox.
HEADROOM = 4

DOVECOT_LIMITS = (
    "on Dovecot: mail_max_userip_connections (10 per mailbox and IP by default), "
    "default_client_limit (1000), service imap-login and service imap process_limit / "
    "client_limit; on the mail host, fs.inotify.max_user_instances (128 by default) bounds "
    "the IDLE connections Dovecot can watch before it falls back to polling every "
    "mailbox_idle_check_interval"
)


def connections_needed(config: ImapSourceConfig) -> int:
    """Connections one source holds while the daemon runs: polling plus each IDLE folder."""
    return 1 + len(config.idle_on)


def add_connection_facts(report: ProbeReport, config: ImapSourceConfig) -> None:
    """Say how many connections the source holds and what its server allows."""
    idle = config.idle_on
    needed = connections_needed(config)
    held = f"IDLE on {', '.join(idle)}" if idle else "IDLE off"
    report.detail("connections", f"{needed} while the daemon runs (1 polling, {held})")
    cap = PER_MAILBOX.get(report.platform)
    if cap is None:
        report.detail("server limits", DOVECOT_LIMITS)
        return
    limit, words = cap
    report.detail("server limits", words)
    if needed + HEADROOM > limit:
        report.warnings.append(
            f"{needed} connections leave the team's own mail programs fewer than {HEADROOM} of "
            f"the {limit} allowed: set idle_folders to fewer folders, or idle: false"
        )


def per_server(configs: Iterable[object]) -> list[str]:
    """One line per IMAP server that several sources share: how many connections they need
    together, against the limits that apply to all of them."""
    needed: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for config in configs:
        if isinstance(config, ImapSourceConfig):
            where = f"{config.host}:{config.effective_port}"
            needed[where] += connections_needed(config)
            sources[where] += 1
    return [
        f"{where}: {sources[where]} IMAP sources hold {needed[where]} connections together; "
        "the server's limits on all connections must allow that (its server limits above)"
        for where in sorted(needed)
        if sources[where] > 1
    ]
