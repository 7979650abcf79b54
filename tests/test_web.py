"""The HTTP endpoint: idle or slow clients block nobody, and scrapes do not leak connections."""

from __future__ import annotations

import contextlib
import gc
import http.client
import logging
import os
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from servers.dovecot import _make_certificate

from monitor.errors import StoreError
from monitor.metrics import PolicyInfo, ReplyclockCollector, build_registry
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.policy import DEFAULT_RESPONSE_BUCKETS
from monitor.snapshots import StoreSnapshots
from monitor.store import Store
from monitor.store.sqlite import record_poll
from monitor.web import (
    DeadlineReader,
    HttpServer,
    StartResponse,
    WsgiApp,
    make_app,
    tls_context,
)

CLIENT_TIMEOUT_S = 5.0


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def healthy(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    del environ
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _make_certificate(cert, key)
    return cert, key


@contextmanager
def serving(
    app: WsgiApp | None = None,
    tls: ssl.SSLContext | None = None,
    connection_timeout: float = 10.0,
) -> Iterator[HttpServer]:
    server = HttpServer(app or healthy, "127.0.0.1", 0, tls, connection_timeout=connection_timeout)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(port: int, path: str, cert: Path | None = None) -> tuple[int, bytes]:
    connection: http.client.HTTPConnection
    if cert is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)
    else:
        context = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=CLIENT_TIMEOUT_S, context=context
        )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@contextmanager
def idle_client(port: int) -> Iterator[socket.socket]:
    """A TCP connection that sends nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_S)
    try:
        yield sock
    finally:
        sock.close()


def test_an_idle_client_does_not_block_https_for_others(certificate: tuple[Path, Path]) -> None:
    """While one client holds a TCP connection open without starting TLS, another client's
    HTTPS GET /healthz is answered."""
    cert, key = certificate
    with serving(tls=tls_context(str(cert), str(key))) as server, idle_client(server.port):
        assert get(server.port, "/healthz", cert) == (200, b"ok\n")


def test_an_idle_client_does_not_block_plain_http_for_others() -> None:
    """While one client holds a connection open without sending a request, another client's
    plain HTTP GET /healthz is answered."""
    with serving() as server, idle_client(server.port):
        assert get(server.port, "/healthz") == (200, b"ok\n")


@pytest.mark.parametrize("use_tls", [False, True], ids=["http", "https"])
def test_an_idle_client_is_hung_up_on_after_the_connection_timeout(
    certificate: tuple[Path, Path], use_tls: bool
) -> None:
    """A client that sends nothing is disconnected once the connection timeout passes, so idle
    clients do not keep threads forever."""
    cert, key = certificate
    tls = tls_context(str(cert), str(key)) if use_tls else None
    with serving(tls=tls, connection_timeout=0.2) as server, idle_client(server.port) as idle:
        assert idle.recv(1) == b""  # the server closed it; the client would wait 5 s


def test_a_failed_handshake_is_logged_at_debug_and_prints_nothing(
    certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plain HTTP sent to the HTTPS endpoint is dropped with one debug line, no traceback, and
    the endpoint keeps answering."""
    # An earlier test may have pointed replyclock's logs at standard error (configure_logging).
    monkeypatch.setattr(logging.getLogger("replyclock"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("replyclock"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="replyclock.web")
    cert, key = certificate
    with serving(tls=tls_context(str(cert), str(key))) as server:
        with idle_client(server.port) as client:
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert wait_for(lambda: caplog.records)
        assert get(server.port, "/healthz", cert) == (200, b"ok\n")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "HTTP connection dropped")
    ]
    assert capfd.readouterr().err == ""


def test_a_request_trickled_in_past_the_deadline_is_refused() -> None:
    """Bytes that keep arriving do not extend the connection's deadline."""
    now = [0.0]
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        reader = DeadlineReader(server_end, 10.0, clock=lambda: now[0])
        client_end.sendall(b"G")
        assert reader.read(1) == b"G"
        now[0] = 9.9
        client_end.sendall(b"E")
        assert reader.read(1) == b"E"
        now[0] = 10.0
        client_end.sendall(b"T")
        with pytest.raises(TimeoutError) as caught:
            reader.read(1)
        assert str(caught.value) == "the client did not send its request within 10 s"
        assert server_end.gettimeout() == 10.0  # writing the response keeps its own timeout


def scrape_app(snapshots: StoreSnapshots) -> WsgiApp:
    collector = ReplyclockCollector(
        snapshot=snapshots,
        sources=["inbox"],
        policies=[],
        clock=lambda: datetime(2026, 12, 3, tzinfo=UTC),
    )
    return make_app(build_registry(collector), lambda: (True, "ready"))


def test_scrapes_share_one_store_reader_and_open_no_files(tmp_path: Path) -> None:
    """However many scrapes the endpoint serves (a thread each), the process's open files do
    not grow: one read-only connection serves them all, without waiting for the collector."""
    writer = Store.open(tmp_path / "replyclock.db")
    snapshots = StoreSnapshots(writer)
    gc.disable()  # a connection left to the garbage collector would stay open here
    try:
        with serving(scrape_app(snapshots)) as server:
            for _ in range(3):
                status, body = get(server.port, "/metrics")
                assert (status, b"replyclock_store_up 1.0" in body) == (200, True)
            baseline = open_fds()
            for _ in range(60):
                assert get(server.port, "/metrics")[0] == 200
            # The server closes each connection just after the client has read its response.
            assert wait_for(lambda: open_fds() <= baseline), (baseline, open_fds())
    finally:
        gc.enable()
        snapshots.close()
        writer.close()


def rename_table(db: Path, old: str, new: str) -> None:
    """What a broken store looks like to a reader: a table it reads is gone."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")


def test_a_failed_reader_is_closed_and_a_new_one_opened(tmp_path: Path) -> None:
    """When reading the store fails, the reader is closed (its files released) and the next
    snapshot opens a new one; close() releases the reader too."""
    db = tmp_path / "replyclock.db"
    writer = Store.open(db)
    snapshots = StoreSnapshots(writer)
    writer.close()  # the reader alone, so that closing it really closes its files
    before = open_fds()
    try:
        first = snapshots()
        assert open_fds() > before
        rename_table(db, "delivery_failures", "delivery_failures_away")
        with pytest.raises(StoreError):
            snapshots()
        assert open_fds() == before
        rename_table(db, "delivery_failures_away", "delivery_failures")
        assert snapshots() == first
        snapshots.close()
        assert open_fds() == before
    finally:
        snapshots.close()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


SCRAPES = 10_000
CLIENTS = 4  # concurrent scrapers, as several Prometheus servers and curl would be
# What RSS may grow by over the scrapes after warm-up: the allocator's arenas and the scrape
# text settle within a few hundred scrapes; a leak of one object per scrape (a connection, a
# thread's state, a kept response of about 10 KB) would add tens of megabytes.
RSS_TOLERANCE = 4 * 2**20


def test_ten_thousand_scrapes_leak_no_files_threads_or_memory(tmp_path: Path) -> None:
    """Ten thousand GET /metrics on the real server, over a real store with three sources:
    once warm, open files and threads are back where they were and RSS has not grown beyond
    the allocator's noise."""
    writer = Store.open(tmp_path / "replyclock.db")
    for source in ("inbox", "billing", "help"):
        record_poll(writer, source, ok=True, duration=0.1, error=None, now=datetime.now(UTC))
    snapshots = StoreSnapshots(writer)
    collector = ReplyclockCollector(
        snapshot=snapshots,
        sources=["inbox", "billing", "help"],
        policies=[
            PolicyInfo(
                name="default",
                calendar=BusinessCalendar.always_open(),
                targets={"first_response": 3600, "next_response": 3600},
                buckets=DEFAULT_RESPONSE_BUCKETS,
            )
        ],
        clock=lambda: datetime.now(UTC),
    )
    app = make_app(build_registry(collector), lambda: (True, "ready"))
    threads_before = threading.active_count()

    def scrape(count: int) -> None:
        # A bare HTTP/1.0 client: the server closes each connection after its response.
        request = b"GET /metrics HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", server.port), CLIENT_TIMEOUT_S) as sock:
                sock.sendall(request)
                response = b"".join(iter(lambda: sock.recv(65536), b""))
            assert response.startswith(b"HTTP/1.0 200 OK\r\n"), response[:100]

    def scrape_in_parallel(count: int) -> None:
        with ThreadPoolExecutor(CLIENTS) as pool:
            for done in [pool.submit(scrape, count // CLIENTS) for _ in range(CLIENTS)]:
                done.result()

    try:
        with serving(app) as server:
            scrape_in_parallel(400)  # warm-up: the reader, the kept lines, the allocator
            assert wait_for(lambda: threading.active_count() <= threads_before + 1)
            fds, threads, rss = open_fds(), threading.active_count(), resident_bytes()
            scrape_in_parallel(SCRAPES)
            assert wait_for(lambda: open_fds() <= fds), (fds, open_fds())
            assert wait_for(lambda: threading.active_count() <= threads)
            grown = resident_bytes() - rss
            assert grown < RSS_TOLERANCE, f"RSS grew by {grown / 2**20:.1f} MiB"
    finally:
        snapshots.close()
        writer.close()
