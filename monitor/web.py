"""The HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for orchestrators.

A small WSGI app around prometheus_client's own, served by a threading WSGI server on the
configured address. /healthz answers while the process runs; /readyz answers 200 only once
every source has been read successfully since start and the store accepts writes.
"""

from __future__ import annotations

import base64
import hmac
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

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


def _text(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class HttpServer:
    """Serves a WSGI app on a background thread until ``stop``."""

    def __init__(
        self, app: WsgiApp, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = make_server(
            host, port, app, server_class=ThreadingWSGIServer, handler_class=_SilentHandler
        )
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
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
