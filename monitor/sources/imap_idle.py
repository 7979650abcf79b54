"""IMAP IDLE: new inbound mail seen within seconds instead of a poll interval."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import imapclient
from imapclient.exceptions import IMAPClientError

from monitor.errors import SourceError
from monitor.logs import fields
from monitor.sources.imap import ImapSource, quietly_close

log = logging.getLogger("replyclock.sources.imap")


class ImapIdleWatcher:
    """Waits in IMAP IDLE on each watched folder and calls ``on_mail`` when mail arrives.

    One connection per folder (IDLE covers only the selected folder), separate from the
    polling connection. IDLE is re-issued every ``reidle_s`` (well before the 29 minutes
    RFC 2177 allows), a broken connection is retried with backoff, and a server without IDLE
    is left to the regular polls. The watcher only signals: the poll itself reads the mail.
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
        backoff = 5.0
        while not self.stop.is_set():
            client: imapclient.IMAPClient | None = None
            try:
                client = self.source.connect()
                if not client.has_capability("IDLE"):
                    log.info(
                        "server has no IDLE; polling only", extra=fields(source=self.source.name)
                    )
                    return
                client.select_folder(folder, readonly=True)
                backoff = 5.0
                self._idle(client)
            except (SourceError, IMAPClientError, OSError) as exc:
                log.warning(
                    "IDLE connection lost; polls go on",
                    extra=fields(
                        source=self.source.name, folder=folder, error=str(exc), retry_in_s=backoff
                    ),
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 300.0)
            finally:
                if client is not None:
                    quietly_close(client)

    def _idle(self, client: imapclient.IMAPClient) -> None:
        """IDLE until stopped; signal new mail; renew the IDLE before the server's limit."""
        while not self.stop.is_set():
            client.idle()
            started = time.monotonic()
            arrived = False
            try:
                while not self.stop.is_set() and time.monotonic() - started < self.reidle_s:
                    responses = client.idle_check(timeout=self.check_s)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        arrived = True
                        break
            finally:
                client.idle_done()
            if arrived:
                self.on_mail()
