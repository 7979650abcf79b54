"""The HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for orchestrators.

A small WSGI app around prometheus_client's own, served by a threading WSGI server on the
configured address. /healthz answers while the process runs; /readyz answers 200 only once
every source has been read successfully since start and the store accepts writes.

The accept loop only accepts: the TLS handshake and the reading of the request happen on the
connection's own thread, each within ``CONNECTION_TIMEOUT_S``, so a client that connects and
sends nothing (or a byte at a time) holds one thread for a while and blocks nobody else.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import io
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler, gzip_accepted

from monitor.logs import fields
from monitor.metrics import MetricsRegistry

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# How long a client has for the TLS handshake, then for sending its whole request; also the
# timeout of each write of the response.
CONNECTION_TIMEOUT_S = 10.0
# gzip level of compressed scrapes: the text repeats itself so much that level 1 saves nearly
# as much as 9 (prometheus-client's choice), at a fraction of the CPU on a large scrape.
GZIP_LEVEL = 1

log = logging.getLogger("replyclock.web")

INDEX = b"""<html><head><title>replyclock</title></head><body>
<h1>replyclock</h1><p>The SLA clock for shared support inboxes.</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li></ul></body></html>
"""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What /metrics demands: basic auth, or a bearer token (compared in constant time)."""

    username: str | None = None
    password: str | None = None
    bearer: str | None = None

    def allows(self, header: str) -> bool:
        """Whether an Authorization header value carries these credentials."""
        scheme, _, value = header.partition(" ")
        if self.bearer is not None:
            return scheme.lower() == "bearer" and hmac.compare_digest(
                value.strip().encode(), self.bearer.encode()
            )
        if self.username is not None and self.password is not None:
            if scheme.lower() != "basic":
                return False
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            return hmac.compare_digest(user.encode(), self.username.encode()) & hmac.compare_digest(
                password.encode(), self.password.encode()
            )
        return True


def make_app(
    registry: CollectorRegistry,
    ready: Callable[[], tuple[bool, str]],
    credentials: Credentials | None = None,
) -> WsgiApp:
    """The WSGI app serving metrics, liveness, readiness and a small index page. Only /metrics
    is protected: orchestrators probe /healthz and /readyz without credentials."""
    metrics = make_wsgi_app(registry)
    if isinstance(registry, MetricsRegistry):
        metrics = _fast_metrics(registry, metrics)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            if credentials is not None and not credentials.allows(
                environ.get("HTTP_AUTHORIZATION", "")
            ):
                start_response(
                    "401 Unauthorized",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("WWW-Authenticate", 'Basic realm="replyclock"'),
                    ],
                )
                return [b"credentials required\n"]
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            ok, reason = ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _text(start_response, status, reason + "\n")
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [INDEX]
        return _text(start_response, "404 Not Found", f"no such page: {path}\n")

    return app


def _fast_metrics(registry: MetricsRegistry, generic: WsgiApp) -> WsgiApp:
    """/metrics written by replyclock's own exposition; what it does not cover (a filtered
    scrape with ``name[]``, methods other than GET) goes to prometheus-client's app."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "name[]" in parse_qs(
            environ.get("QUERY_STRING", "")
        ):
            return generic(environ, start_response)
        body, content_type = registry.exposition(environ.get("HTTP_ACCEPT"))
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class DeadlineReader(io.RawIOBase):
    """A socket's bytes until a deadline: reads after it raise ``TimeoutError``, so a client
    that trickles its request in cannot keep its thread longer than a silent one."""

    def __init__(
        self,
        sock: socket.socket,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sock = sock
        self._timeout = timeout
        self._clock = clock
        self._deadline = clock() + timeout

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Read what the client sent, waiting no later than the deadline."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            raise TimeoutError(f"the client did not send its request within {self._timeout:g} s")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._timeout)  # writing the response gets the usual timeout


class _Handler(_SilentHandler):
    """Logs nothing per request, reads the request against the connection's deadline, and
    buffers the response: wsgiref writes the status line, each header block and the body
    separately, one system call each unless buffered (``finish`` flushes)."""

    server: _Server
    wbufsize = 64 * 1024

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stream setup() made; the connection stays open
        self.rfile = io.BufferedReader(
            DeadlineReader(self.connection, self.server.connection_timeout)
        )


class _Server(ThreadingWSGIServer):
    """A thread per connection; TLS (when given) is set up on that thread, not in the accept
    loop, and a connection that fails or times out is dropped with a debug log line."""

    tls: ssl.SSLContext | None = None
    connection_timeout: float = CONNECTION_TIMEOUT_S

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """On the connection's own thread: the TLS handshake, then the request."""
        request.settimeout(self.connection_timeout)
        try:
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            self.finish_request(request, client_address)
        except Exception:  # one connection's failure must not end the server
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for what clients do (hang up, time out, fail the handshake); logged otherwise."""
        del request
        error = sys.exc_info()[1]
        client = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        if isinstance(error, OSError):
            log.debug("HTTP connection dropped", extra=fields(client=client, error=str(error)))
        else:
            log.error("HTTP request failed", exc_info=True, extra=fields(client=client))


class HttpServer:
    """Serves a WSGI app on a background thread until ``stop``."""

    def __init__(
        self,
        app: WsgiApp,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        *,
        connection_timeout: float = CONNECTION_TIMEOUT_S,
    ) -> None:
        self._server = make_server(host, port, app, server_class=_Server, handler_class=_Handler)
        assert isinstance(self._server, _Server)
        self._server.tls = tls
        self._server.connection_timeout = connection_timeout
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Start answering requests."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) from a certificate and its key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9465"`` -> ``("127.0.0.1", 9465)``; ``"[::1]:9465"`` works too."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9465" means every address
