"""IMAP IDLE: new inbound mail seen within seconds instead of a poll interval."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import imapclient
from imapclient.exceptions import IMAPClientError

from monitor.errors import SourceError
from monitor.logs import fields
from monitor.sources.imap import ImapSource, quietly_close

log = logging.getLogger("replyclock.sources.imap")


class IdleConnectionClosed(SourceError):
    """The server ended the IDLE connection (it stopped, restarted or timed us out)."""


# Reconnecting after a lost IDLE connection: quickly at first, never slower than this, so mail
# is signalled again within about a minute of the server coming back.
RECONNECT_FIRST_S = 2.0
RECONNECT_MAX_S = 60.0
# idle_check answers nothing *early* only when the socket was readable but held no complete
# line: that is the end of the connection (imapclient swallows imaplib's "EOF" abort there).
_EARLY_EMPTY_LIMIT = 3


class ImapIdleWatcher:
    """Waits in IMAP IDLE on each watched folder and calls ``on_mail`` when mail arrives.

    One connection per folder (IDLE covers only the selected folder), separate from the
    polling connection. IDLE is re-issued every ``reidle_s`` (well before the 29 minutes
    RFC 2177 allows). A connection the server closes is noticed at once, not spun on: it is
    logged once, retried with a capped backoff, and when it is back a poll is asked for, since
    mail may have arrived in between. A server without IDLE is left to the regular polls. The
    watcher only signals: the poll itself reads the mail.
    """

    def __init__(
        self,
        source: ImapSource,
        on_mail: Callable[[], None],
        stop: threading.Event,
        *,
        reidle_s: float = 600.0,
        check_s: float = 1.0,
    ) -> None:
        self.source = source
        self.on_mail = on_mail
        self.stop = stop
        self.reidle_s = reidle_s
        self.check_s = check_s
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """One thread per watched (inbound) folder."""
        for folder in self.source.config.folders:
            thread = threading.Thread(
                target=self._watch,
                args=(folder,),
                name=f"idle-{self.source.name}-{folder}",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)

    def join(self, timeout: float) -> None:
        """Wait for the threads to notice ``stop``."""
        for thread in self.threads:
            thread.join(timeout)

    def _watch(self, folder: str) -> None:
        backoff = RECONNECT_FIRST_S
        lost = False  # logged once per outage, not once per retry
        while not self.stop.is_set():
            client: imapclient.IMAPClient | None = None
            try:
                client = self.source.connect(for_idle=True)
                if not client.has_capability("IDLE"):
                    log.info(
                        "server has no IDLE; polling only", extra=fields(source=self.source.name)
                    )
                    return
                client.select_folder(folder, readonly=True)
                backoff = RECONNECT_FIRST_S
                if lost:
                    lost = False
                    log.info(
                        "IDLE connection back",
                        extra=fields(source=self.source.name, folder=folder),
                    )
                    self.on_mail()  # mail may have come while we were away
                self._idle(client)
            except (SourceError, IMAPClientError, OSError) as exc:
                if not lost:
                    lost = True
                    log.warning(
                        "IDLE connection lost; polls go on, reconnecting",
                        extra=fields(source=self.source.name, folder=folder, error=str(exc)),
                    )
                # Jitter spreads the reconnects of many mailboxes on one server.
                self.stop.wait(backoff * random.uniform(0.8, 1.2))  # noqa: S311 - not crypto
                backoff = min(backoff * 2, RECONNECT_MAX_S)
            finally:
                if client is not None:
                    quietly_close(client)

    def _idle(self, client: imapclient.IMAPClient) -> None:
        """IDLE until stopped; signal new mail; renew the IDLE before the server's limit."""
        while not self.stop.is_set():
            client.idle()
            started = time.monotonic()
            arrived = False
            early_empty = 0
            try:
                while not self.stop.is_set() and time.monotonic() - started < self.reidle_s:
                    asked = time.monotonic()
                    responses = client.idle_check(timeout=self.check_s)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        arrived = True
                        break
                    if any(r[:1] == (b"BYE",) for r in responses):
                        raise IdleConnectionClosed(self.source.name, "the server said BYE")
                    if responses or time.monotonic() - asked >= self.check_s / 2:
                        early_empty = 0
                        continue
                    early_empty += 1
                    if early_empty >= _EARLY_EMPTY_LIMIT:
                        raise IdleConnectionClosed(
                            self.source.name, "the server closed the IDLE connection"
                        )
            finally:
                if not self.stop.is_set():
                    try:
                        client.idle_done()
                    except (IMAPClientError, OSError) as exc:
                        raise IdleConnectionClosed(self.source.name, str(exc)) from exc
            if arrived:
                self.on_mail()
