"""The HTTP endpoint: /metrics for Prometheus, /healthz and /readyz for orchestrators.

A small WSGI app around prometheus_client's own, served by a threading WSGI server on the
configured address. /healthz answers while the process runs; /readyz answers 200 only once
every source has been read successfully since start and the store accepts writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
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


def make_app(registry: CollectorRegistry, ready: Callable[[], tuple[bool, str]]) -> WsgiApp:
    """The WSGI app serving metrics, liveness, readiness and a small index page."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
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

    def __init__(self, app: WsgiApp, host: str, port: int) -> None:
        self._server = make_server(
            host, port, app, server_class=ThreadingWSGIServer, handler_class=_SilentHandler
        )
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


def split_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:9465"`` -> ``("127.0.0.1", 9465)``; ``"[::1]:9465"`` works too."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9465" means every address
