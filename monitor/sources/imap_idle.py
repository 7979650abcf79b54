"""IMAP IDLE: new inbound mail seen within seconds instead of a poll interval.

One thread waits on every IDLE connection of every mailbox at once (``selectors``: epoll on
Linux), so a thousand mailboxes cost one waiting thread, not a thousand. The slow parts of a
connection's life (connecting, logging in, selecting the folder, renewing the IDLE) run on a
few worker threads, so a server that is slow to answer never holds up the others' signals.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import imapclient
from imapclient.exceptions import IMAPClientError

from monitor.errors import SourceError
from monitor.logs import fields
from monitor.sources.imap import ImapSource

log = logging.getLogger("replyclock.sources.imap")


class IdleConnectionClosed(SourceError):
    """The server ended the IDLE connection (it stopped, restarted or timed us out)."""


# Reconnecting after a lost IDLE connection: quickly at first, never slower than this, so mail
# is signalled again within about a minute of the server coming back.
RECONNECT_FIRST_S = 2.0
RECONNECT_MAX_S = 60.0
# IDLE is renewed this often, well before the 29 minutes RFC 2177 lets a server wait.
REIDLE_S = 600.0
# A socket that selects readable but yields no complete line this many times in a row has
# been closed by the server (imapclient takes imaplib's "EOF" abort there for "no data").
_EARLY_EMPTY_LIMIT = 3
# Workers that connect, log in and renew IDLE; more would only contend for the same core.
CONNECT_WORKERS = 4
# The waiting thread wakes at least this often to look at deadlines (renewals, reconnects).
_TICK_S = 1.0


@dataclass(eq=False)
class IdleWatch:
    """One folder of one mailbox held in IDLE, and where its connection stands."""

    source: ImapSource
    folder: str
    on_mail: Callable[[], None]
    client: imapclient.IMAPClient | None = None
    busy: bool = False  # a worker has the connection (connecting or renewing)
    due: float = 0.0  # when to connect (while down) or renew (while idling), monotonic
    backoff: float = RECONNECT_FIRST_S
    lost: bool = False  # logged as lost; says "back" once it is
    early_empty: int = 0
    unsupported: bool = False  # the server has no IDLE: left to the regular polls

    @property
    def server(self) -> str:
        """The host:port the connection goes to (losses are told once per server)."""
        config = self.source.config
        return f"{config.host}:{config.effective_port}"


@dataclass
class _Done:
    """A worker's result, handed back to the waiting thread."""

    watch: IdleWatch
    client: imapclient.IMAPClient | None
    error: str | None = None
    arrived: bool = False  # mail was signalled during a renewal
    unsupported: bool = False


@dataclass
class _Outages:
    """Lost IDLE connections by server: the first loss on a server is a warning, the others
    while it lasts debug lines, and "back" is said when the last one is back."""

    lost: dict[str, set[int]] = field(default_factory=dict)

    def down(self, watch: IdleWatch, error: str) -> None:
        watch.lost = True
        ids = self.lost.setdefault(watch.server, set())
        level = logging.WARNING if not ids else logging.DEBUG
        ids.add(id(watch))
        log.log(
            level,
            "IDLE connection lost; polls go on, reconnecting",
            extra=fields(source=watch.source.name, folder=watch.folder, error=error),
        )

    def up(self, watch: IdleWatch) -> None:
        watch.lost = False
        ids = self.lost.get(watch.server, set())
        ids.discard(id(watch))
        if not ids:
            self.lost.pop(watch.server, None)
            log.info(
                "IDLE connection back",
                extra=fields(source=watch.source.name, folder=watch.folder, server=watch.server),
            )


class IdleHub:
    """Waits in IMAP IDLE on many folders of many mailboxes and calls each one's ``on_mail``
    when mail arrives there.

    One connection per folder (IDLE covers only the selected folder), separate from the
    polling connection; all of them are waited on by one thread. A connection the server
    closes is noticed at once, not spun on: the loss is logged once per server, retried with
    a capped, jittered backoff, and when it is back a poll is asked for, since mail may have
    arrived in between. A server without IDLE is left to the regular polls. The hub only
    signals: the poll itself reads the mail.
    """

    def __init__(
        self,
        stop: threading.Event,
        *,
        reidle_s: float = REIDLE_S,
        workers: int = CONNECT_WORKERS,
    ) -> None:
        self.stop = stop
        self.reidle_s = reidle_s
        self.watches: list[IdleWatch] = []
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._outages = _Outages()
        self._thread: threading.Thread | None = None
        self._next_due = 0.0  # no watch is due before this (monotonic): the loop need not look

    def watch(self, source: ImapSource, folder: str, on_mail: Callable[[], None]) -> None:
        """Hold ``folder`` of ``source`` in IDLE once started."""
        self.watches.append(IdleWatch(source=source, folder=folder, on_mail=on_mail))

    @property
    def connected(self) -> int:
        """How many IDLE connections are up now."""
        return sum(1 for w in self.watches if w.client is not None and not w.busy)

    def start(self) -> None:
        """Start the waiting thread (nothing to do without watches)."""
        if not self.watches:
            return
        self._pool = ThreadPoolExecutor(
            max_workers=min(self._workers, len(self.watches)),
            thread_name_prefix="imap-idle-connect",
        )
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="imap-idle", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the waiting thread look at its work now (``stop`` set, a worker done)."""
        # A full buffer means a wake-up is already pending; a closed one, that the hub is done.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def join(self, timeout: float) -> None:
        """Wait for the waiting thread to notice ``stop`` and close the connections."""
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the waiting thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            wait = 0.0
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= self._next_due:  # nothing comes due before: no pass over all
                    wait = self._start_due(now)
                    self._next_due = now + wait
                else:
                    wait = self._next_due - now
                for key, _ in self._selector.select(timeout=wait):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._readable(key.data)
                self._take_done()
        finally:
            self._close_all()

    def _start_due(self, now: float) -> float:
        """Hand watches whose time has come to a worker; return how long to wait next."""
        wait = _TICK_S
        for watch in self.watches:
            if watch.busy or watch.unsupported:
                continue
            if watch.due > now:
                wait = min(wait, watch.due - now)
                continue
            if watch.client is None:
                self._submit(watch, self._connect)
            else:
                self._unregister(watch)
                self._submit(watch, self._renew)
        return max(wait, 0.0)

    def _submit(self, watch: IdleWatch, work: Callable[[IdleWatch], _Done]) -> None:
        assert self._pool is not None
        watch.busy = True

        def run() -> None:
            try:
                done = work(watch)
            except BaseException as exc:
                done = _Done(watch, None, error=str(exc) or type(exc).__name__)
            if self.stop.is_set() and done.client is not None:
                _drop(done.client)  # the hub has closed meanwhile: nobody will wait on it
                done.client = None
            self._done.put(done)
            self.wake()

        try:
            self._pool.submit(run)
        except RuntimeError:  # the pool is shutting down with the daemon
            watch.busy = False

    def _take_done(self) -> None:
        while True:
            try:
                done = self._done.get_nowait()
            except queue.Empty:
                return
            watch = done.watch
            watch.busy = False
            self._next_due = 0.0  # its next deadline is set below: look at the watches again
            if self.stop.is_set():
                if done.client is not None:
                    _drop(done.client)
                continue
            if done.unsupported:
                watch.unsupported = True
                log.info("server has no IDLE; polling only", extra=fields(source=watch.source.name))
                continue
            if done.client is None:
                self._lost(watch, done.error or "connection failed")
                continue
            watch.client = done.client
            watch.backoff = RECONNECT_FIRST_S
            watch.early_empty = 0
            watch.due = time.monotonic() + self.reidle_s
            self._selector.register(done.client.socket(), selectors.EVENT_READ, watch)
            if watch.lost:
                self._outages.up(watch)
                watch.on_mail()  # mail may have come while we were away
            elif done.arrived:
                watch.on_mail()

    def _readable(self, watch: IdleWatch) -> None:
        client = watch.client
        if client is None or watch.busy:
            return
        try:
            responses = client.idle_check(timeout=0)
        except (IMAPClientError, OSError) as exc:
            self._lost(watch, str(exc) or type(exc).__name__)
            return
        if any(r[:1] == (b"BYE",) for r in responses):
            self._lost(watch, "the server said BYE")
            return
        if not responses:
            watch.early_empty += 1
            if watch.early_empty >= _EARLY_EMPTY_LIMIT:
                self._lost(watch, "the server closed the IDLE connection")
            return
        watch.early_empty = 0
        if _mail_arrived(responses):
            watch.on_mail()

    def _lost(self, watch: IdleWatch, error: str) -> None:
        """Close a broken connection; reconnect after a backoff, spread by jitter so the
        mailboxes of one server do not all come back in the same instant."""
        if watch.client is not None:
            self._unregister(watch)
            _drop(watch.client)
            watch.client = None
        if not watch.lost:
            self._outages.down(watch, error)
        else:
            log.debug(
                "IDLE reconnect failed",
                extra=fields(source=watch.source.name, folder=watch.folder, error=error),
            )
        watch.due = time.monotonic() + watch.backoff * random.uniform(0.8, 1.2)  # noqa: S311
        watch.backoff = min(watch.backoff * 2, RECONNECT_MAX_S)
        self._next_due = min(self._next_due, watch.due)

    def _unregister(self, watch: IdleWatch) -> None:
        if watch.client is None:
            return
        # Not registered, or its socket already closed: nothing to undo.
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(watch.client.socket())

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _close_all(self) -> None:
        """Drop every connection without a round trip each (a thousand LOGOUTs to a remote
        server would outlast the stop budget); the server sees them close."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for watch in self.watches:
            if watch.client is not None and not watch.busy:
                self._unregister(watch)
                _drop(watch.client)
                watch.client = None
        self._take_done()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # --- worker side -----------------------------------------------------------------------

    def _connect(self, watch: IdleWatch) -> _Done:
        client = watch.source.connect(for_idle=True)
        try:
            if not client.has_capability("IDLE"):
                _drop(client)
                return _Done(watch, None, unsupported=True)
            client.select_folder(watch.folder, readonly=True)
            client.idle()
        except (IMAPClientError, OSError) as exc:
            _drop(client)
            return _Done(watch, None, error=str(exc) or type(exc).__name__)
        return _Done(watch, client)

    def _renew(self, watch: IdleWatch) -> _Done:
        client = watch.client
        assert client is not None
        try:
            _, responses = client.idle_done()
            client.idle()
        except (IMAPClientError, OSError) as exc:
            _drop(client)
            watch.client = None
            return _Done(watch, None, error=str(exc) or type(exc).__name__)
        return _Done(watch, client, arrived=_mail_arrived(responses))


def _mail_arrived(responses: list[tuple[object, ...]]) -> bool:
    return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)


def _drop(client: imapclient.IMAPClient) -> None:
    """Close a connection at once, without LOGOUT (the server may be gone or in IDLE)."""
    with contextlib.suppress(IMAPClientError, OSError):
        client.shutdown()
