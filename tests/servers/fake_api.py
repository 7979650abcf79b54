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


# --- Zendesk's incremental ticket-event export -------------------------------------------------

ZENDESK_TICKET_EVENTS = "/api/v2/incremental/ticket_events.json"
# The ticket event's ``via`` is a label, where an audit's is an object with a channel.
ZENDESK_VIA_LABELS = {
    "web": "Web form",
    "email": "Mail",
    "api": "Web service",
    "rule": "Rule",
    "ticket_sharing": "Ticket sharing",
    "sample_ticket": "Sample ticket",
}
ZENDESK_FORBIDDEN = {
    "error": "Forbidden",
    "description": "You do not have access to this page. Please contact the account owner of "
    "this help desk for further help.",
}


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def zendesk_ticket_event(audit: dict[str, Any], *, comments: bool) -> dict[str, Any]:
    """An audit as the ticket-event export describes it: the update's own fields, each comment
    as a child event in the audit shape (with ``comments``, the comment_events sideload) or only
    as ``comment_present`` / ``comment_public`` (without), and each field set or changed as a
    child event keyed by the field's name."""
    via = audit.get("via") or {}
    children: list[dict[str, Any]] = []
    for event in audit.get("events") or ():
        kind = event.get("type")
        base = {"id": event.get("id"), "via": via, "via_reference_id": None}
        if kind in ("Comment", "VoiceComment"):
            if comments:
                children.append(
                    {
                        **base,
                        **event,
                        "audit_id": audit["id"],
                        "created_at": audit["created_at"],
                        "event_type": kind,
                    }
                )
            else:
                children.append(
                    {
                        **base,
                        "comment_present": True,
                        "comment_public": bool(event.get("public")),
                        "event_type": kind,
                    }
                )
        elif kind in ("Create", "Change") and event.get("field_name"):
            child = {**base, event["field_name"]: event.get("value"), "event_type": kind}
            if kind == "Change":
                child["previous_value"] = event.get("previous_value")
            children.append(child)
        elif kind:
            children.append({**base, "event_type": kind})
    return {
        "id": audit["id"],
        "ticket_id": audit["ticket_id"],
        "timestamp": _unix(audit["created_at"]),
        "created_at": audit["created_at"],
        "updater_id": audit.get("author_id"),
        "via": ZENDESK_VIA_LABELS.get(str(via.get("channel")), "Web service"),
        "system": (audit.get("metadata") or {}).get("system") or {},
        "metadata": (audit.get("metadata") or {}).get("custom") or {},
        "event_type": "Audit",
        "merged_ticket_ids": [],
        "child_events": children,
    }


@dataclass
class ZendeskTicketEvents:
    """The time-based ticket-event export over a set of audits, as Zendesk pages it.

    ``start_time`` is required (a Unix time; with ``now`` set, one older than a minute, and the
    updates of the last minute are held back); ``include`` may only be ``comment_events``; any
    other parameter is refused with 400. A page holds the next ``page_size`` updates at or after
    ``start_time`` (oldest first), ``end_time`` is the time of its last update (so the next
    page repeats that second), and ``end_of_stream`` is true once the rest fits. ``refuse``
    answers every request with that status, as plans without the export do; ``sideload``
    False answers as if comment_events had not been asked for.
    """

    audits: Callable[[], list[dict[str, Any]]]  # every audit of the account, with ticket_id
    base_url: Callable[[], str]
    page_size: int = 1000
    refuse: int | None = None
    now: Callable[[], int] | None = None
    sideload: bool = True

    def __call__(self, request: FakeRequest) -> Answer:
        if self.refuse is not None:
            return self.refuse, {}, ZENDESK_FORBIDDEN
        unknown = set(request.query) - {"start_time", "include"}
        start = request.param("start_time") or ""
        include = request.param("include")
        if unknown or not start.isdigit() or include not in (None, "comment_events"):
            return 400, {}, {"error": "InvalidValue", "query": request.query}
        start_time = int(start)
        newest = None if self.now is None else self.now() - 60
        if newest is not None and start_time > newest:
            return (
                422,
                {},
                {
                    "error": "InvalidValue",
                    "description": "Too recent start_time. Use a start_time older than 1 minute",
                },
            )
        updates = sorted(
            (
                zendesk_ticket_event(audit, comments=self.sideload and include == "comment_events")
                for audit in self.audits()
            ),
            key=lambda e: (e["timestamp"], e["id"]),
        )
        due = [
            e
            for e in updates
            if e["timestamp"] >= start_time and (newest is None or e["timestamp"] <= newest)
        ]
        page = due[: self.page_size]
        end_time = page[-1]["timestamp"] if page else start_time
        query = f"start_time={end_time}" + (f"&include={include}" if include else "")
        return (
            200,
            {},
            {
                "ticket_events": page,
                "next_page": f"{self.base_url()}{ZENDESK_TICKET_EVENTS}?{query}",
                "count": len(page),
                "end_of_stream": len(due) <= self.page_size,
                "end_time": end_time,
            },
        )
