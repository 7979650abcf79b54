"""A local HTTP server speaking JSON like a vendor API, for the helpdesk source tests.

Routes map a path to a handler that gets the request and returns (status, headers, body).
Every request is recorded (method, path, query, headers) so tests can check what the client
sent, and ``fail_next`` injects one error answer (a 429 with Retry-After, a 500) ahead of a
route's normal answer. It serves on a free loopback port in a thread of the test process.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.model import FolderCursor, MessageEvent
from monitor.store import IngestResult, SourceSink, Store


@dataclass
class FakeRequest:
    """One request as the fake server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lowercase names
    body: bytes = b""

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON-able body (or bytes)
Handler = Callable[[FakeRequest], Answer]


@dataclass
class FakeApi:
    """Routes, recorded requests and injected failures of one fake API."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[FakeRequest] = field(default_factory=list)
    failures: dict[str, list[Answer]] = field(default_factory=dict)
    check_auth: Callable[[FakeRequest], bool] | None = None
    _server: ThreadingHTTPServer | None = None

    def route(self, path: str, handler: Handler) -> None:
        """Answer GETs of ``path`` (exact, without the query) with ``handler``."""
        self.routes[path] = handler

    def fail_next(
        self, path: str, status: int, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        """Answer the next request to ``path`` with an error instead of the route."""
        self.failures.setdefault(path, []).append((status, headers or {}, body))

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeApi:
        """Serve on a free loopback port until ``stop``."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, method: str) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = FakeRequest(
                    method=method,
                    path=parsed.path,
                    query=urllib.parse.parse_qs(parsed.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                api.requests.append(request)
                status, headers, body = api.answer(request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``requests`` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: stop() returns at once instead of after half a second.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def answer(self, request: FakeRequest) -> Answer:
        """The answer to a request: injected failure, auth failure, route, or 404."""
        pending = self.failures.get(request.path)
        if pending:
            return pending.pop(0)
        if self.check_auth is not None and not self.check_auth(request):
            return 401, {}, {"error": "Couldn't authenticate you"}
        handler = self.routes.get(request.path)
        if handler is None:
            return 404, {}, {"error": "InvalidEndpoint", "path": request.path}
        return handler(request)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class RecordingSink(SourceSink):
    """A SourceSink that also notes each batch and the checkpoint stored with it."""

    def __init__(self, store: Store, source: str) -> None:
        super().__init__(store, source)
        self.batches: list[tuple[list[str], tuple[str, str] | None]] = []

    def accept(
        self,
        events: Sequence[MessageEvent],
        cursor: FolderCursor | None,
        now: datetime,
        *,
        checkpoint: tuple[str, str] | None = None,
    ) -> IngestResult:
        self.batches.append(([e.identity for e in events], checkpoint))
        return super().accept(events, cursor, now, checkpoint=checkpoint)
