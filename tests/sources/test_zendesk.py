"""The Zendesk source against a fake Zendesk serving recorded API bodies (tests/data/zendesk)."""

from __future__ import annotations

import base64
import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.fake_api import (
    ZENDESK_TICKET_EVENTS,
    Answer,
    FakeApi,
    FakeRequest,
    RecordingSink,
    ZendeskTicketEvents,
)
from test_engine import rulebook

from monitor.config.models import ZendeskSourceConfig
from monitor.engine import Engine, clock_messages
from monitor.errors import SourceAuthError, SourceError
from monitor.explain import explain
from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import ClockKind, StopReason
from monitor.sla.evaluate import ClockState, evaluate
from monitor.sla.policy import Policy
from monitor.sources.zendesk import (
    TicketFacts,
    ZendeskSource,
    ZendeskUser,
    classify_comment,
    normalize_status,
)
from monitor.store import SourceSink, Store

DATA = Path(__file__).resolve().parents[1] / "data" / "zendesk"
EXPORT = "/api/v2/incremental/tickets/cursor.json"
TICKET_EVENTS = ZENDESK_TICKET_EVENTS
SHOW_TICKETS = "/api/v2/tickets/show_many.json"
SHOW_USERS = "/api/v2/users/show_many.json"
ME = "/api/v2/users/me.json"
COUNT = "/api/v2/search/count.json"
NOW = datetime(2024, 2, 8, 12, 0, tzinfo=UTC)
START_TIME = str(int((NOW - timedelta(days=30)).timestamp()))
LONG_START = str(int((NOW - timedelta(days=200)).timestamp()))  # before every ticket's creation
EVENTS_PARAMS = {"start_time": [START_TIME], "include": ["comment_events"]}
EMAIL = "admin@example.com"
TOKEN = "zendesk-test-token"
AUDIT_PARAMS = {"include": ["users"], "page[size]": ["100"]}
FIRST_CURSOR = "MTcwNzI3MTc0MS4wfHw0MDQ1fA=="  # recorded after_cursor of the first export page
NEXT_CURSOR = "MTcwNzI3NzUwMC4wfHwxfA=="
PAGE_CURSORS = ("MTY5NTA1MjY2My4wfHwyOHw=", "MTY5NTA1MjY2My4wfHwyOXw=", "MTY5NTA1MjY2My4wfHwzMHw=")
STAGED = "2024-02-07T00:11:18Z"  # ticket 1 as it stood after the first reply and the note


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def basic(email: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class FakeZendesk:
    """FakeApi routes that answer like Zendesk from the recorded bodies.

    The export answers by cursor (``None``: the first request, with start_time), with the
    requester, submitter and assignee sideloaded when asked ``include=users``; audits are
    served in pages of ``audit_page_size`` with Zendesk's meta/has_more cursor pagination,
    optionally only up to ``audit_cutoff`` (the ticket as it stood at an earlier poll), and
    answer 404 for the tickets in ``gone`` (deleted since the export listed them). The
    ticket-event export (``events``) serves the same audits, up to the same cutoff, in its own
    wire format; ``show_many`` answers the tickets listed in the export and the users the audits
    sideload.

    ``users/me`` answers ``me`` with the rate-limit headers of the zenpy recordings, and, as
    Zendesk does, the anonymous user (id null) to a request it cannot authenticate; the search
    count counts the exported tickets updated since the query's date.
    """

    api: FakeApi
    token: str = TOKEN
    export_pages: dict[str | None, Any] = field(default_factory=dict)
    audits: dict[int, Any] = field(default_factory=dict)
    audit_page_size: int = 100
    audit_cutoff: str | None = None
    failing: dict[str, int] = field(default_factory=dict)  # export cursor -> 500s left
    me: dict[str, Any] = field(default_factory=lambda: dict(ADMIN))
    gone: set[int] = field(default_factory=set)  # tickets deleted for good: audits answer 404
    events: ZendeskTicketEvents = field(init=False)

    def __post_init__(self) -> None:
        self.api.check_auth = lambda r: r.path == ME or self.authorized(r)
        self.api.route(EXPORT, self._export)
        self.api.route(ME, self._me)
        self.api.route(COUNT, self._count)
        self.events = ZendeskTicketEvents(audits=self._all_audits, base_url=lambda: self.api.url)
        self.api.route(TICKET_EVENTS, self.events)
        self.api.route(SHOW_TICKETS, self._show_tickets)
        self.api.route(SHOW_USERS, self._show_users)

    def _all_audits(self) -> list[dict[str, Any]]:
        return [
            a
            for ticket_id, body in self.audits.items()
            if ticket_id not in self.gone
            for a in body["audits"]
            if self.audit_cutoff is None or a["created_at"] <= self.audit_cutoff
        ]

    def _users(self) -> dict[int, Any]:
        return {u["id"]: u for body in self.audits.values() for u in body.get("users", ())}

    def _tickets(self) -> dict[int, Any]:
        return {t["id"]: t for page in self.export_pages.values() for t in page["tickets"]}

    def _sideload(self, tickets: list[Any]) -> list[Any]:
        users, wanted = self._users(), []
        for ticket in tickets:
            for key in ("requester_id", "submitter_id", "assignee_id"):
                if ticket.get(key) in users and users[ticket[key]] not in wanted:
                    wanted.append(users[ticket[key]])
        return wanted

    def _ids(self, request: FakeRequest) -> list[int] | None:
        text = request.param("ids") or ""
        ids = [int(i) for i in text.split(",") if i.isdigit()]
        return ids if ids and len(ids) <= 100 and len(ids) == len(text.split(",")) else None

    def _show_tickets(self, request: FakeRequest) -> Answer:
        ids = self._ids(request)
        if ids is None or set(request.query) - {"ids", "include"}:
            return 400, {}, {"error": "InvalidValue", "query": request.query}
        known = self._tickets()
        tickets = [known[i] for i in ids if i in known and i not in self.gone]
        body: dict[str, Any] = {"tickets": tickets}
        if request.param("include") == "users":
            body["users"] = self._sideload(tickets)
        return 200, {}, body

    def _show_users(self, request: FakeRequest) -> Answer:
        ids = self._ids(request)
        if ids is None or set(request.query) != {"ids"}:
            return 400, {}, {"error": "InvalidValue", "query": request.query}
        users = self._users()
        return 200, {}, {"users": [users[i] for i in ids if i in users]}

    def authorized(self, request: FakeRequest) -> bool:
        return request.headers.get("authorization") == basic(EMAIL, self.token)

    def export(self, cursor: str | None, body: Any) -> None:
        self.export_pages[cursor] = body

    def ticket(self, ticket_id: int, body: Any | None = None) -> None:
        self.audits[ticket_id] = body or load(f"ticket_{ticket_id}_audits.json")
        self.api.route(
            f"/api/v2/tickets/{ticket_id}/audits.json", lambda r: self._audits(ticket_id, r)
        )

    def _export(self, request: FakeRequest) -> Answer:
        cursor = request.param("cursor")
        extra = set(request.query) - {"cursor" if cursor else "start_time", "include"}
        if extra or request.param("include") not in (None, "users"):
            return 400, {}, {"error": "InvalidValue", "query": request.query}
        if cursor is not None and self.failing.get(cursor, 0) > 0:
            self.failing[cursor] -= 1
            return 500, {}, {"error": "InternalServerError"}
        if cursor not in self.export_pages:
            return 400, {}, {"error": "InvalidCursor", "cursor": cursor}
        page = self.export_pages[cursor]
        if request.param("include") == "users":
            page = {**page, "users": self._sideload(page["tickets"])}
        return 200, {}, page

    def _audits(self, ticket_id: int, request: FakeRequest) -> Answer:
        if ticket_id in self.gone:
            return 404, {}, {"error": "RecordNotFound", "description": "Not found"}
        body = self.audits[ticket_id]
        audits = [
            a
            for a in body["audits"]
            if self.audit_cutoff is None or a["created_at"] <= self.audit_cutoff
        ]
        start = int(request.param("page[after]") or 0)
        end = start + self.audit_page_size
        more = end < len(audits)
        meta = {"has_more": more, "after_cursor": str(end) if more else None}
        return 200, {}, {**body, "audits": audits[start:end], "meta": meta}

    def _me(self, request: FakeRequest) -> Answer:
        user = self.me if self.authorized(request) else ANONYMOUS
        return 200, dict(RATE_LIMIT_HEADERS), {"user": user}

    def _count(self, request: FakeRequest) -> Answer:
        query = request.param("query") or ""
        if not query.startswith("type:ticket updated>="):
            return 400, {}, {"error": "unsupported query in this fake", "query": query}
        day = query.removeprefix("type:ticket updated>=")
        updated = {
            t["id"]: t["updated_at"]
            for page in self.export_pages.values()
            for t in page.get("tickets", ())
        }
        return 200, dict(RATE_LIMIT_HEADERS), {"count": sum(u >= day for u in updated.values())}

    def requests(self) -> list[tuple[str, dict[str, list[str]]]]:
        return [(r.path, r.query) for r in self.api.requests]


# users/me as the Show Self endpoint documents it, for the admin the audits' sideload names.
ADMIN = {
    "id": 6130907993114,
    "url": "https://d3v-zenpydev.zendesk.com/api/v2/users/6130907993114.json",
    "name": "Zenpy Admin",
    "email": EMAIL,
    "role": "admin",
    "role_type": 4,
    "active": True,
    "verified": True,
}
# What users/me answers a request Zendesk cannot authenticate.
ANONYMOUS = {"id": None, "url": None, "name": "Anonymous user", "email": "invalid@example.com"}
# As recorded in the zenpy cassettes (TestTicketsPagination.test_values).
RATE_LIMIT_HEADERS = {
    "X-Rate-Limit": "700",
    "X-Rate-Limit-Remaining": "612",
    "ratelimit-limit": "700",
    "ratelimit-remaining": "612",
    "ratelimit-reset": "22",
}


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    api = FakeApi().start()
    yield FakeZendesk(api)
    api.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def config(fake: FakeZendesk, **overrides: Any) -> ZendeskSourceConfig:
    values: dict[str, Any] = {
        "type": "zendesk",
        "name": "helpdesk",
        "subdomain": "d3v-zenpydev",
        "email": EMAIL,
        "api_token": TOKEN,
        "base_url": fake.api.url,
    }
    values.update(overrides)
    return ZendeskSourceConfig.model_validate(values)


def source(fake: FakeZendesk, sleeps: list[float] | None = None, **overrides: Any) -> ZendeskSource:
    record = sleeps if sleeps is not None else []
    return ZendeskSource(config(fake, **overrides), sleep=record.append, clock=lambda: NOW)


def serve_first_sync(fake: FakeZendesk) -> None:
    fake.export(None, load("incremental_tickets_cursor.json"))
    fake.ticket(1)
    fake.ticket(4036)


def stored(store: Store) -> list[tuple[str, str, str, str, str, str | None]]:
    rows = store.conn.execute(
        "SELECT identity, timestamp, direction, reason, author, status FROM messages "
        "ORDER BY timestamp, identity"
    ).fetchall()
    return [
        (r[0], datetime.fromtimestamp(r[1], UTC).isoformat(), r[2], r[3], r[4], r[5]) for r in rows
    ]


T1 = "+00:00"
TRIGGER = "comment made by trigger 'Notify requester and CCs of received request' (not a reply)"
TICKET_1_BEFORE_FOLLOW_UP = [
    (
        "ticket:1:audit:6130852545178:status",
        "2023-09-09T23:52:05" + T1,
        "ignored",
        "ticket status set to open",
        "admin@example.com",
        "open",
    ),
    (
        "ticket:1:comment:6130852545306",
        "2023-09-09T23:52:05" + T1,
        "inbound",
        "customer comment",
        "customer@example.com",
        None,
    ),
    (
        "ticket:1:comment:6130852547002",
        "2023-09-09T23:52:06" + T1,
        "ignored",
        TRIGGER,
        "admin@example.com",
        None,
    ),
    (
        "ticket:1:audit:6707075401114:status",
        "2024-02-07T00:09:24" + T1,
        "ignored",
        "ticket status set to pending",
        "admin@example.com",
        "pending",
    ),
    (
        "ticket:1:comment:6707050311322",
        "2024-02-07T00:09:24" + T1,
        "outbound",
        "public reply by an agent",
        "admin@example.com",
        None,
    ),
    (
        "ticket:1:comment:6707063839514",
        "2024-02-07T00:11:18" + T1,
        "ignored",
        "private note (not a reply)",
        "admin@example.com",
        None,
    ),
]
TICKET_1_FOLLOW_UPS = [
    (
        "ticket:1:audit:6707110000001:status",
        "2024-02-07T02:00:00" + T1,
        "ignored",
        "ticket status set to open",
        "customer@example.com",
        "open",
    ),
    (
        "ticket:1:comment:6707110000002",
        "2024-02-07T02:00:00" + T1,
        "inbound",
        "customer comment",
        "customer@example.com",
        None,
    ),
    (
        "ticket:1:comment:6707110000012",
        "2024-02-07T02:10:00" + T1,
        "ignored",
        "private note (not a reply)",
        "admin@example.com",
        None,
    ),
    (
        "ticket:1:comment:6707110000022",
        "2024-02-07T03:00:00" + T1,
        "outbound",
        "public reply by an agent",
        "admin@example.com",
        None,
    ),
    (
        "ticket:1:audit:6707110000031:status",
        "2024-02-07T03:30:00" + T1,
        "ignored",
        "ticket status set to open",
        "customer@example.com",
        "open",
    ),
    (
        "ticket:1:comment:6707110000032",
        "2024-02-07T03:30:00" + T1,
        "inbound",
        "customer comment",
        "customer@example.com",
        None,
    ),
    (
        "ticket:1:audit:6707110000041:status",
        "2024-02-07T03:45:00" + T1,
        "ignored",
        "ticket status set to solved",
        "admin@example.com",
        "solved",
    ),
]
TICKET_4036 = [
    (
        "ticket:4036:audit:6314901022746:status",
        "2023-10-29T01:40:58" + T1,
        "ignored",
        "ticket status set to pending",
        "admin@example.com",
        "pending",
    ),
    (
        "ticket:4036:comment:6314901022874",
        "2023-10-29T01:40:58" + T1,
        "outbound",
        "ticket created by an agent (the team spoke first)",
        "admin@example.com",
        None,
    ),
]


def in_time_order(*groups: list[Any]) -> list[Any]:
    return sorted((row for group in groups for row in group), key=lambda r: (r[1], r[0]))


def test_first_sync_turns_comments_and_status_changes_into_events(
    fake: FakeZendesk, store: Store
) -> None:
    """On a plan without the ticket-event export (403), the first poll reads the export from
    `since` ago and each ticket's audits, and stores customer comments, agent replies, notes, a
    trigger's comment and status changes as events."""
    serve_first_sync(fake)
    fake.events.refuse = 403
    src = source(fake)
    report = src.poll(SourceSink(store, "helpdesk"), NOW)
    assert (report.new, report.duplicates, report.round_trips) == (15, 0, 4)
    assert stored(store) == in_time_order(
        TICKET_1_BEFORE_FOLLOW_UP, TICKET_1_FOLLOW_UPS, TICKET_4036
    )
    assert fake.requests() == [
        (TICKET_EVENTS, EVENTS_PARAMS),
        (EXPORT, {"start_time": [START_TIME]}),
        ("/api/v2/tickets/4036/audits.json", AUDIT_PARAMS),
        ("/api/v2/tickets/1/audits.json", AUDIT_PARAMS),
    ]
    assert SourceSink(store, "helpdesk").checkpoint("export_cursor") == FIRST_CURSOR


def test_events_carry_the_ticket_facts_policies_match_on(fake: FakeZendesk, store: Store) -> None:
    """Every event of a ticket carries its subject, priority, tags, group and brand, and the
    agent URL; the conversation is named after the requester."""
    serve_first_sync(fake)
    source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    row = store.conn.execute(
        "SELECT subject, priority, tags, attributes, link, author_name FROM messages "
        "WHERE identity = 'ticket:1:comment:6130852545306'"
    ).fetchone()
    assert tuple(row) == (
        "Sample ticket: Meet the ticket",
        "normal",
        "sample,support,zendesk",
        '{"brand": "6130830354842", "group": "6130852536346"}',
        "https://d3v-zenpydev.zendesk.com/agent/tickets/1",
        "The Customer",
    )
    conversation = store.conversation_for_message("helpdesk", "ticket:1:comment:6130852545306")
    assert conversation is not None
    named = store.conversation(conversation)
    assert named is not None
    assert (named.subject, named.customer, named.customer_name) == (
        "Sample ticket: Meet the ticket",
        "customer@example.com",
        "The Customer",
    )
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 2


def test_incremental_poll_reads_from_the_saved_cursor_and_stores_only_what_is_new(
    fake: FakeZendesk, store: Store
) -> None:
    """The second poll asks the export with the saved cursor and stores only the new comments and
    status changes; a third poll with nothing new costs one request and stores nothing."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_next.json"))
    fake.export(NEXT_CURSOR, load("incremental_tickets_cursor_empty.json"))
    fake.events.refuse = 403
    sink = SourceSink(store, "helpdesk")
    src = source(fake)
    fake.audit_cutoff = STAGED
    first = src.poll(sink, NOW)
    assert (first.new, first.duplicates) == (8, 0)
    assert stored(store) == in_time_order(TICKET_1_BEFORE_FOLLOW_UP, TICKET_4036)

    fake.audit_cutoff = None
    fake.api.requests.clear()
    second = src.poll(sink, NOW + timedelta(minutes=1))
    assert (second.new, second.duplicates, second.round_trips) == (7, 6, 2)
    assert fake.requests() == [
        (EXPORT, {"cursor": [FIRST_CURSOR]}),
        ("/api/v2/tickets/1/audits.json", AUDIT_PARAMS),
    ]
    assert stored(store) == in_time_order(
        TICKET_1_BEFORE_FOLLOW_UP, TICKET_1_FOLLOW_UPS, TICKET_4036
    )
    assert sink.checkpoint("export_cursor") == NEXT_CURSOR

    fake.api.requests.clear()
    third = src.poll(sink, NOW + timedelta(minutes=2))
    assert (third.new, third.duplicates, third.round_trips) == (0, 0, 1)
    assert fake.requests() == [(EXPORT, {"cursor": [NEXT_CURSOR]})]
    assert sink.checkpoint("export_cursor") == NEXT_CURSOR


def test_each_export_page_is_stored_with_its_cursor_and_a_failed_poll_resumes_there(
    fake: FakeZendesk, store: Store
) -> None:
    """Export pages are stored one by one with their after_cursor; when the second page fails
    (HTTP 500, five times) the first page and its cursor are kept, and the next poll resumes at
    the second page without storing anything twice."""
    for page, cursor in enumerate((None, *PAGE_CURSORS[:2]), start=1):
        fake.export(cursor, load(f"incremental_tickets_cursor_per_page_1_page_{page}.json"))
    for ticket in (28, 29, 30):
        fake.ticket(ticket)
    fake.failing[PAGE_CURSORS[0]] = 5
    fake.events.refuse = 403
    sleeps: list[float] = []
    sink = RecordingSink(store, "helpdesk")
    src = source(fake, sleeps)

    with pytest.raises(SourceError) as failed:
        src.poll(sink, NOW)
    url = f"{fake.api.url}{EXPORT}?cursor=MTY5NTA1MjY2My4wfHwyOHw%3D"
    assert str(failed.value) == (
        f"source 'helpdesk': {url} answered HTTP 500 (Internal Server Error)"
    )
    assert len(sleeps) == 4  # five attempts, backing off between them
    assert sink.batches == [
        (
            ["ticket:28:comment:6162870061978", "ticket:28:audit:6162870061850:status"],
            ("export_cursor", PAGE_CURSORS[0]),
        )
    ]
    assert sink.checkpoint("export_cursor") == PAGE_CURSORS[0]
    assert [r[0] for r in stored(store)] == [
        "ticket:28:audit:6162870061850:status",
        "ticket:28:comment:6162870061978",
    ]

    fake.api.requests.clear()
    resumed = src.poll(sink, NOW + timedelta(minutes=1))
    assert (resumed.new, resumed.duplicates) == (4, 0)
    assert fake.requests() == [
        (EXPORT, {"cursor": [PAGE_CURSORS[0]]}),
        ("/api/v2/tickets/29/audits.json", AUDIT_PARAMS),
        (EXPORT, {"cursor": [PAGE_CURSORS[1]]}),
        ("/api/v2/tickets/30/audits.json", AUDIT_PARAMS),
    ]
    assert [checkpoint for _, checkpoint in sink.batches[1:]] == [
        ("export_cursor", PAGE_CURSORS[1]),
        ("export_cursor", PAGE_CURSORS[2]),
    ]
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 6


def test_audits_are_read_page_by_page_with_the_after_cursor(
    fake: FakeZendesk, store: Store
) -> None:
    """A ticket with more audits than one page holds is read through meta.after_cursor until
    has_more is false, and every page's comments are kept."""
    serve_first_sync(fake)
    fake.events.refuse = 403
    fake.audit_page_size = 4
    report = source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert report.new == 15
    audit_requests = [q for p, q in fake.requests() if p == "/api/v2/tickets/1/audits.json"]
    assert audit_requests == [
        AUDIT_PARAMS,
        {**AUDIT_PARAMS, "page[after]": ["4"]},
        {**AUDIT_PARAMS, "page[after]": ["8"]},
    ]


def test_rate_limit_waits_the_retry_after_seconds_then_succeeds(
    fake: FakeZendesk, store: Store
) -> None:
    """A 429 with Retry-After: 7 (the incremental exports allow 10 requests a minute) makes the
    source sleep exactly 7 seconds (through the injected sleep) and retry; the poll then
    succeeds."""
    serve_first_sync(fake)
    fake.api.fail_next(TICKET_EVENTS, 429, {"Retry-After": "7"}, {"error": "TooManyRequests"})
    sleeps: list[float] = []
    report = source(fake, sleeps, since="200d").poll(SourceSink(store, "helpdesk"), NOW)
    assert sleeps == [7.0]
    assert (report.new, report.round_trips) == (15, 3)
    assert [p for p, _ in fake.requests()] == [TICKET_EVENTS, TICKET_EVENTS, EXPORT]


@pytest.mark.parametrize("key", ["api_token", "api_token_file"])
def test_rejected_credentials_name_the_source_and_the_keys_to_fix(
    fake: FakeZendesk,
    store: Store,
    tmp_path: Path,
    key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 401 stops the poll with a SourceAuthError naming the source and the config keys to fix,
    stores nothing, and never writes the token to the log."""
    serve_first_sync(fake)
    fake.token = "the-right-token"
    overrides: dict[str, Any] = {}
    if key == "api_token_file":
        secret = tmp_path / "zendesk-token"
        secret.write_text(TOKEN + "\n", encoding="utf-8")
        overrides = {"api_token": None, "api_token_file": secret}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceAuthError) as failed:
        source(fake, **overrides).poll(SourceSink(store, "helpdesk"), NOW)
    assert str(failed.value) == (
        f"source 'helpdesk': {fake.api.url} rejected the credentials (HTTP 401); check email "
        f"and {key} (the API token of a Zendesk admin: the incremental ticket export is "
        "admin-only, and the admin must see every ticket to monitor)"
    )
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert SourceSink(store, "helpdesk").checkpoint("export_cursor") is None
    assert TOKEN not in caplog.text


def test_token_file_is_read_again_at_every_poll(
    fake: FakeZendesk, store: Store, tmp_path: Path
) -> None:
    """A rotated api_token_file is used from the next poll on, without a restart."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_empty.json"))
    secret = tmp_path / "zendesk-token"
    secret.write_text(TOKEN, encoding="utf-8")
    src = source(fake, api_token=None, api_token_file=secret)
    sink = SourceSink(store, "helpdesk")
    src.poll(sink, NOW)
    fake.token = "rotated-token"
    secret.write_text("rotated-token\n", encoding="utf-8")
    report = src.poll(sink, NOW + timedelta(minutes=1))
    assert report.round_trips == 2  # the ticket events since the last poll, the export
    assert {r.headers["authorization"] for r in fake.api.requests[-2:]} == {
        basic(EMAIL, "rotated-token")
    }


def test_deleted_ticket_closes_its_conversation_without_reading_audits(
    fake: FakeZendesk, store: Store
) -> None:
    """A ticket the export reports as deleted becomes one 'closed' status event, and its audits
    (gone from the API) are not requested."""
    page = load("incremental_tickets_cursor.json")
    page["tickets"] = [copy.deepcopy(t) for t in page["tickets"] if t["id"] == 4036]
    page["tickets"][0]["status"] = "deleted"
    fake.export(None, page)
    report = source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert report.round_trips == 2  # the ticket events, the export: no audits
    assert "/api/v2/tickets/4036/audits.json" not in [p for p, _ in fake.requests()]
    assert stored(store) == [
        (
            "ticket:4036:deleted",
            "2023-10-29T01:40:58" + T1,
            "ignored",
            "ticket deleted in Zendesk (counted as closed)",
            "",
            "closed",
        )
    ]


POLICY = Policy(name="support", calendar="24x7", first_response=3600, next_response=3600)


def test_a_ticket_gone_while_its_audits_are_read_is_closed_and_the_poll_goes_on(
    fake: FakeZendesk, store: Store
) -> None:
    """Ticket 1's customer has waited since 02:00. The export lists the ticket again, but it is
    deleted before its audits are read: they answer 404. The poll does not fail and moves its
    cursor on; the ticket is closed when the 404 was seen, so the clock stops there as solved
    (neither a reply nor a breach). When the export later lists the ticket as deleted, that is
    the same event, not stored twice."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_next.json"))
    deleted = load("incremental_tickets_cursor_next.json")
    deleted["tickets"][0]["status"], deleted["after_cursor"] = "deleted", "after-deletion"
    fake.export(NEXT_CURSOR, deleted)
    fake.export("after-deletion", load("incremental_tickets_cursor_empty.json"))
    fake.audit_cutoff = "2024-02-07T02:10:00Z"  # the customer's follow-up, not answered yet
    fake.events.refuse = 403
    sink, src = SourceSink(store, "helpdesk"), source(fake)
    src.poll(sink, at("2024-02-07T02:15:00Z"))

    fake.gone.add(1)
    seen = at("2024-02-07T02:40:00Z")
    report = src.poll(sink, seen)
    assert (report.new, report.duplicates) == (1, 0)
    assert stored(store)[-1] == (
        "ticket:1:deleted",
        seen.isoformat(),
        "ignored",
        "ticket deleted in Zendesk (HTTP 404 while its audits were read; counted as closed)",
        "",
        "closed",
    )
    assert sink.checkpoint("export_cursor") == NEXT_CURSOR
    conversation = store.conversation_for_message("helpdesk", "ticket:1:deleted")
    assert conversation is not None
    messages = clock_messages(store.messages(conversation))
    verdict = evaluate(messages, POLICY, BusinessCalendar.always_open(), seen)
    last = verdict.clocks[-1]
    assert (
        last.clock.kind,
        last.clock.started_at,
        last.clock.stopped_at,
        last.clock.stop_reason,
        last.business_seconds,
        last.state,
        last.breached,
    ) == (
        ClockKind.NEXT,
        at("2024-02-07T02:00:00Z"),
        seen,
        StopReason.SOLVED,
        2400,
        ClockState.SOLVED,
        False,
    )
    again = src.poll(sink, seen + timedelta(minutes=1))
    assert (again.new, again.duplicates, again.round_trips) == (0, 1, 1)


@pytest.mark.parametrize("mode", ["ticket_events", "audits"])
@pytest.mark.parametrize("closers", ["ignore", "count"])
def test_first_response_stops_at_the_first_public_agent_comment_end_to_end(
    fake: FakeZendesk, store: Store, closers: str, mode: str
) -> None:
    """Through the store and the SLA engine: the first-response clock ignores the trigger's
    comment and the private notes and stops at the first public agent comment; a customer
    follow-up starts a next-response clock. The customer's "That fixed it, thank you!" after
    the next reply is a closing message and starts no clock; with ``closers: count`` it starts
    one, which solving the ticket stops as solved. Read either way, the clocks are the same."""
    serve_first_sync(fake)
    if mode == "audits":
        fake.events.refuse = 403
    source(fake, closers=closers, since="200d").poll(SourceSink(store, "helpdesk"), NOW)
    closing = store.conn.execute(
        "SELECT closing FROM messages WHERE identity = 'ticket:1:comment:6707110000032'"
    ).fetchone()[0]
    assert closing == ("That fixed it, thank you!" if closers == "ignore" else None)
    conversation = store.conversation_for_message("helpdesk", "ticket:1:comment:6130852545306")
    assert conversation is not None
    messages = clock_messages(store.messages(conversation))
    verdict = evaluate(messages, POLICY, BusinessCalendar.always_open(), NOW)
    first_wait = int((at("2024-02-07T00:09:24Z") - at("2023-09-09T23:52:05Z")).total_seconds())
    assert first_wait == 12_961_039  # 150 days, 17 min 19 s
    assert [
        (
            v.clock.kind,
            v.clock.started_at,
            v.clock.stopped_at,
            v.clock.stop_reason,
            v.clock.responder,
            v.business_seconds,
            v.state,
            v.breached,
        )
        for v in verdict.clocks
    ] == [
        (
            ClockKind.FIRST,
            at("2023-09-09T23:52:05Z"),
            at("2024-02-07T00:09:24Z"),
            StopReason.REPLY,
            "admin@example.com",
            first_wait,
            ClockState.ANSWERED,
            True,  # answered, but long after the one-hour target
        ),
        (
            ClockKind.NEXT,
            at("2024-02-07T02:00:00Z"),
            at("2024-02-07T03:00:00Z"),
            StopReason.REPLY,
            "admin@example.com",
            3600,
            ClockState.ANSWERED,
            False,  # a reply at exactly the target is on time
        ),
    ] + (
        [
            (
                ClockKind.NEXT,
                at("2024-02-07T03:30:00Z"),
                at("2024-02-07T03:45:00Z"),
                StopReason.SOLVED,
                "",
                900,
                ClockState.SOLVED,
                False,
            )
        ]
        if closers == "count"
        else []
    )
    agent_created = store.conversation_for_message("helpdesk", "ticket:4036:comment:6314901022874")
    assert agent_created is not None
    created = evaluate(
        clock_messages(store.messages(agent_created)),
        POLICY,
        BusinessCalendar.always_open(),
        NOW,
    )
    assert created.clocks == ()  # the team spoke first: no customer is waiting


# --- closing messages --------------------------------------------------------------------------

CLOSER_RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 1h}
"""
CUSTOMER = {
    "id": 7001,
    "name": "Casey Customer",
    "email": "casey@customer.example",
    "role": "end-user",
}
SCREENSHOT = {
    "id": 9001,
    "file_name": "still-broken.png",
    "content_url": "https://d3v-zenpydev.zendesk.com/attachments/token/x/?name=still-broken.png",
    "content_type": "image/png",
    "size": 48213,
    "inline": False,
}


def comment(
    comment_id: int, author: int, text: str, attachments: list[Any] | None = None
) -> dict[str, Any]:
    """A public Comment event of an audit, in the recorded shape (body, html_body, plain_body)."""
    return {
        "id": comment_id,
        "type": "Comment",
        "author_id": author,
        "body": text,
        "html_body": f'<div class="zd-comment" dir="auto"><p>{text}</p></div>',
        "plain_body": text,
        "public": True,
        "attachments": attachments or [],
        "audit_id": comment_id - 1,
    }


def audit(
    ticket_id: int, audit_id: int, when: datetime, author: int, *items: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": audit_id,
        "ticket_id": ticket_id,
        "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "author_id": author,
        "metadata": {"system": {}, "custom": {}},
        "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
        "events": list(items),
    }


def status(event_id: int, kind: str, value: str) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "field_name": "status", "value": value}


def serve_tickets(
    fake: FakeZendesk,
    answers: dict[int, tuple[str, list[Any]]],
    unanswered: dict[int, str] | None = None,
) -> None:
    """Tickets the customer opened 3 h before NOW, subject "ticket <n>". Those in ``answers``
    an agent answered 2 h before NOW (submitted as pending), and the customer answered 1 h
    before with the text and attachments given; those in ``unanswered`` were opened with the
    text given and have no reply yet."""
    tickets: list[dict[str, Any]] = []
    opening = dict.fromkeys(answers, "My router does not connect. Can you help?")
    for n, first in {**opening, **(unanswered or {})}.items():
        base = n * 100
        tickets.append(
            {
                "id": n,
                "subject": f"ticket {n}",
                "status": "open",
                "priority": "normal",
                "requester_id": CUSTOMER["id"],
                "created_at": (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "updated_at": (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tags": [],
            }
        )
        audits = [
            audit(
                n,
                base + 1,
                NOW - timedelta(hours=3),
                CUSTOMER["id"],
                comment(base + 2, CUSTOMER["id"], first),
                status(base + 3, "Create", "new"),
            )
        ]
        if n in answers:
            text, attachments = answers[n]
            audits += [
                audit(
                    n,
                    base + 11,
                    NOW - timedelta(hours=2),
                    ADMIN["id"],
                    comment(base + 12, ADMIN["id"], "Please restart the router."),
                    status(base + 13, "Change", "pending"),
                ),
                audit(
                    n,
                    base + 21,
                    NOW - timedelta(hours=1),
                    CUSTOMER["id"],
                    comment(base + 22, CUSTOMER["id"], text, attachments),
                    status(base + 23, "Change", "open"),
                ),
            ]
        fake.ticket(n, {"audits": audits, "users": [ADMIN, CUSTOMER]})
    fake.export(None, {"tickets": tickets, "after_cursor": "closers", "end_of_stream": True})


def closing_column(store: Store) -> dict[str, str | None]:
    return dict(
        store.conn.execute("SELECT identity, closing FROM messages WHERE direction = 'inbound'")
    )


def waiting_subjects(store: Store, tmp_path: Path) -> list[str]:
    engine = Engine(store, rulebook(tmp_path, "closers", CLOSER_RULES))
    engine.evaluate(NOW)
    return sorted(w.conversation.subject for w in engine.waiting(NOW))


def test_a_customer_thank_you_after_the_reply_starts_no_clock(
    fake: FakeZendesk, store: Store, tmp_path: Path
) -> None:
    """After an agent's public reply, the customer's "Thanks, that fixed it!" is a closing
    message: no clock, and only its words are kept (the body is not stored). "Thanks, but it
    still fails", a "Thanks!" with a screenshot attached and a ticket opened with "Thanks!"
    (a request, whatever it says) each wait for a reply."""
    serve_tickets(
        fake,
        {
            1: ("Thanks, that fixed it!", []),
            2: ("Thanks, but it still fails", []),
            3: ("Thanks!", [SCREENSHOT]),
        },
        unanswered={4: "Thanks!"},
    )
    source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert closing_column(store) == {
        "ticket:1:comment:102": None,
        "ticket:1:comment:122": "Thanks, that fixed it!",
        "ticket:2:comment:202": None,
        "ticket:2:comment:222": None,
        "ticket:3:comment:302": None,
        "ticket:3:comment:322": None,
        "ticket:4:comment:402": None,
    }
    assert waiting_subjects(store, tmp_path) == ["ticket 2", "ticket 3", "ticket 4"]
    (cid,) = store.conn.execute(
        "SELECT conversation_id FROM messages WHERE identity = 'ticket:1:comment:122'"
    ).fetchone()
    rules = rulebook(tmp_path, "closers", CLOSER_RULES)
    text = "\n".join(explain(store, rules, cid, NOW))
    assert "not a clock: closing message ('Thanks, that fixed it!')" in text
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(messages)")}
    assert not columns & {"body", "html_body", "plain_body"}


def test_with_closers_count_a_thank_you_starts_a_clock(
    fake: FakeZendesk, store: Store, tmp_path: Path
) -> None:
    """``closers: count``: the customer's "Thanks, that fixed it!" is a message like any other
    and waits for a reply; nothing is marked as closing."""
    serve_tickets(fake, {1: ("Thanks, that fixed it!", [])})
    source(fake, closers="count").poll(SourceSink(store, "helpdesk"), NOW)
    assert set(closing_column(store).values()) == {None}
    assert waiting_subjects(store, tmp_path) == ["ticket 1"]


def test_the_rules_files_closing_phrases_count_and_html_is_read_without_plain_text(
    fake: FakeZendesk, store: Store
) -> None:
    """Phrases from the rules files (``closing_phrases``) make a comment closing too; a comment
    with only ``html_body`` is read as HTML."""
    serve_tickets(fake, {1: ("Kiitos paljon!", []), 2: ("Danke!", [])})
    html_only = fake.audits[2]["audits"][2]["events"][0]
    del html_only["body"], html_only["plain_body"]
    html_only["html_body"] = '<div class="zd-comment"><p>Danke!</p><p>Anna</p></div>'
    src = ZendeskSource(config(fake), clock=lambda: NOW, closing_phrases=("kiitos paljon",))
    src.poll(SourceSink(store, "helpdesk"), NOW)
    closing = closing_column(store)
    assert (closing["ticket:1:comment:122"], closing["ticket:2:comment:222"]) == (
        "Kiitos paljon!",
        "Danke! Anna",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("new", "open", id="new_is_open"),
        pytest.param("open", "open", id="open"),
        pytest.param("pending", "pending", id="pending"),
        pytest.param("hold", "on_hold", id="hold_is_on_hold"),
        pytest.param("solved", "solved", id="solved"),
        pytest.param("closed", "closed", id="closed"),
        pytest.param("deleted", "closed", id="deleted_counts_as_closed"),
        pytest.param("archived", None, id="unknown_is_none"),
        pytest.param(None, None, id="missing_is_none"),
    ],
)
def test_status_names_map_to_replyclock_statuses(value: str | None, expected: str | None) -> None:
    """Zendesk's statuses map onto replyclock's open/pending/on_hold/solved/closed."""
    assert normalize_status(value) == expected


AGENT = ZendeskUser(id=10, name="Agent", email="agent@example.com", role="agent")
REQUESTER = ZendeskUser(id=20, name="Req", email="req@example.com", role="end-user")
CC = ZendeskUser(id=30, name="Colleague", email="cc@example.com", role="end-user")
USERS = {u.id: u for u in (AGENT, REQUESTER, CC)}
FACTS = TicketFacts(id=5, requester_id=20)
WEB = {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}}


@pytest.mark.parametrize(
    ("author", "public", "via", "opening", "expected"),
    [
        pytest.param(20, True, WEB, True, (Direction.INBOUND, "customer comment"), id="requester"),
        pytest.param(30, True, WEB, False, (Direction.INBOUND, "customer comment"), id="cc"),
        pytest.param(
            10, True, WEB, False, (Direction.OUTBOUND, "public reply by an agent"), id="agent"
        ),
        pytest.param(
            10,
            True,
            WEB,
            True,
            (Direction.OUTBOUND, "ticket created by an agent (the team spoke first)"),
            id="agent_opens_ticket",
        ),
        pytest.param(
            10, False, WEB, False, (Direction.IGNORED, "private note (not a reply)"), id="note"
        ),
        pytest.param(
            10,
            True,
            {
                "channel": "rule",
                "source": {"from": {"id": 1, "title": "Close after 4 days"}, "rel": "automation"},
            },
            False,
            (Direction.IGNORED, "comment made by automation 'Close after 4 days' (not a reply)"),
            id="automation",
        ),
        pytest.param(
            10,
            True,
            {"channel": "rule", "source": {"from": {}, "rel": "trigger"}},
            False,
            (Direction.IGNORED, "comment made by a trigger (not a reply)"),
            id="untitled_trigger",
        ),
        pytest.param(
            10,
            True,
            {"channel": "ticket_sharing", "source": {"from": {}, "rel": None}},
            False,
            (Direction.IGNORED, "comment from a ticket-sharing partner account (not a reply)"),
            id="ticket_sharing",
        ),
        pytest.param(
            10,
            True,
            {"channel": "answer_bot_for_web_widget", "source": {}},
            False,
            (
                Direction.IGNORED,
                "comment made by a bot (via answer_bot_for_web_widget; not a reply)",
            ),
            id="bot",
        ),
        pytest.param(
            -1,
            True,
            WEB,
            False,
            (Direction.IGNORED, "comment made by the Zendesk system user (not a reply)"),
            id="system_user",
        ),
        pytest.param(
            99,
            True,
            WEB,
            False,
            (
                Direction.IGNORED,
                "comment by user 99, whose role Zendesk did not send (not counted)",
            ),
            id="unknown_user",
        ),
    ],
)
def test_comment_classification_follows_zendesk_reply_rules(
    author: int,
    public: bool,
    via: dict[str, Any],
    opening: bool,
    expected: tuple[Direction, str],
) -> None:
    """Only public comments by agents are replies; end-users' public comments are customer
    messages; notes, rules, bots, ticket sharing and the system user are neither."""
    comment = {"id": 1, "type": "Comment", "author_id": author, "public": public}
    audit = {"id": 2, "author_id": author, "via": via}
    assert classify_comment(comment, audit, FACTS, USERS, opening=opening) == expected


# --- check --connect -----------------------------------------------------------------------------


def test_probe_reports_the_admin_the_rate_limit_and_the_first_sync(fake: FakeZendesk) -> None:
    """The probe signs in as polls do, names the user and role, shows the rate-limit headroom
    from users/me's headers and counts with the search API what a first sync reads."""
    serve_first_sync(fake)
    report = source(fake).probe(NOW)
    assert (report.source, report.kind) == ("helpdesk", "zendesk")
    assert report.account == "Zenpy Admin <admin@example.com>"
    assert dict(report.details) == {
        "api": fake.api.url,
        "signed in with": "API token of admin@example.com",
        "role": "admin",
        "rate limit": "612 of 700 requests a minute left",
    }
    # ticket 4036 was last updated in 2023, ticket 1 on 2024-02-07: one ticket in 30 days
    assert report.first_sync == (
        "1 ticket updated since 2024-01-09 (since: 30d), each read with its audits"
    )
    assert report.warnings == []
    assert fake.requests() == [
        (ME, {}),
        (COUNT, {"query": ["type:ticket updated>=2024-01-09"]}),
    ]
    assert all(r.method == "GET" for r in fake.api.requests)
    assert all(r.headers["authorization"] == basic(EMAIL, TOKEN) for r in fake.api.requests)
    longer = source(fake, since="200d").probe(NOW)
    assert longer.first_sync.startswith("2 tickets updated since 2023-07-23 (since: 200d)")


def test_probe_warns_when_the_token_user_is_no_admin(fake: FakeZendesk) -> None:
    """An agent signs in, but the incremental export is admin-only: a warning, not a failure."""
    fake.me = {**ADMIN, "name": "Agent Smith", "email": "agent@example.com", "role": "agent"}
    report = source(fake).probe(NOW)
    assert dict(report.details)["role"] == "agent"
    assert report.warnings == [
        "Agent Smith <agent@example.com> is an agent, not an admin: the incremental ticket "
        "export is admin-only, so polls will be refused; use the API token with a Zendesk "
        "admin's email"
    ]


def test_probe_names_the_token_file_and_never_shows_the_token(
    fake: FakeZendesk, tmp_path: Path
) -> None:
    secret = tmp_path / "zendesk-token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    report = source(fake, api_token=None, api_token_file=secret).probe(NOW)
    assert dict(report.details)["signed in with"] == f"API token of {EMAIL} from {secret}"
    assert TOKEN not in repr(report)


@pytest.mark.parametrize("key", ["api_token", "api_token_file"])
def test_probe_of_an_anonymous_sign_in_names_the_keys_to_fix(
    fake: FakeZendesk, tmp_path: Path, key: str
) -> None:
    """users/me answers a token it does not accept with the anonymous user (id null): that is
    a refused sign-in, named like a 401, and the search is never asked."""
    fake.token = "the-right-token"
    overrides: dict[str, Any] = {}
    if key == "api_token_file":
        secret = tmp_path / "zendesk-token"
        secret.write_text(TOKEN, encoding="utf-8")
        overrides = {"api_token": None, "api_token_file": secret}
    with pytest.raises(SourceAuthError) as failed:
        source(fake, **overrides).probe(NOW)
    assert str(failed.value) == (
        f"source 'helpdesk': {fake.api.url} answered as an anonymous user: it did not accept "
        f"the credentials; check email and {key} (the API token of a Zendesk admin: the "
        "incremental ticket export is admin-only, and the admin must see every ticket to "
        "monitor)"
    )
    assert TOKEN not in str(failed.value)
    assert [p for p, _ in fake.requests()] == [ME]


def test_probe_of_a_refused_token_is_an_auth_error(fake: FakeZendesk) -> None:
    fake.api.fail_next(ME, 401, {}, {"error": "Couldn't authenticate you"})
    with pytest.raises(
        SourceAuthError, match=r"rejected the credentials \(HTTP 401\); check email"
    ):
        source(fake).probe(NOW)


def test_probe_without_rate_limit_headers_or_count_still_reports(fake: FakeZendesk) -> None:
    """A failed count does not fail the probe: the sign-in worked, and it says so."""
    fake.api.route(ME, lambda r: (200, {}, {"user": ADMIN}))
    fake.api.fail_next(COUNT, 422, {}, {"error": "InvalidQuery"})
    report = source(fake).probe(NOW)
    assert dict(report.details)["rate limit"] == "not reported"
    assert report.first_sync == (
        f"not counted: {fake.api.url}{COUNT}?query=type%3Aticket+updated%3E%3D2024-01-09 "
        "answered HTTP 422 (Unprocessable Entity)"
    )


# --- the ticket-event export ---------------------------------------------------------------------

ALL_TICKET_1_AND_4036 = in_time_order(TICKET_1_BEFORE_FOLLOW_UP, TICKET_1_FOLLOW_UPS, TICKET_4036)
LAST_UPDATE = str(int(at("2024-02-07T03:45:00Z").timestamp()))  # ticket 1 solved


def long_params(**extra: str) -> dict[str, list[str]]:
    return {"start_time": [LONG_START], **{k: [v] for k, v in extra.items()}}


def test_first_sync_through_the_ticket_event_export_costs_two_requests(
    fake: FakeZendesk, store: Store
) -> None:
    """Where the plan has it, the first poll reads the ticket-event export with the comment
    events and the ticket export with its users, one request each, instead of one audits
    request per ticket, and stores the same events; each export's checkpoint is saved."""
    serve_first_sync(fake)
    report = source(fake, since="200d").poll(SourceSink(store, "helpdesk"), NOW)
    assert (report.new, report.duplicates, report.round_trips) == (15, 0, 2)
    assert stored(store) == ALL_TICKET_1_AND_4036
    assert fake.requests() == [
        (TICKET_EVENTS, long_params(include="comment_events")),
        (EXPORT, long_params(include="users")),
    ]
    sink = SourceSink(store, "helpdesk")
    assert sink.checkpoint("export_cursor") == FIRST_CURSOR
    assert sink.checkpoint("ticket_events_time") == LAST_UPDATE
    assert sink.checkpoint("ticket_events_from") == LONG_START


def test_first_sync_reads_the_audits_of_tickets_older_than_its_window(
    fake: FakeZendesk, store: Store
) -> None:
    """Tickets created before `since` ago may have comments older than the window, which the
    ticket-event export does not hold: the first sync reads those tickets' audits, as the audits
    path does, and reads no ticket twice."""
    serve_first_sync(fake)
    report = source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert (report.new, report.round_trips) == (15, 4)
    assert stored(store) == ALL_TICKET_1_AND_4036
    assert [p for p, _ in fake.requests()] == [
        TICKET_EVENTS,
        EXPORT,
        "/api/v2/tickets/4036/audits.json",
        "/api/v2/tickets/1/audits.json",
    ]


def full_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every stored message column a clock or an alert reads, and every conversation."""
    messages = store.conn.execute(
        "SELECT identity, timestamp, direction, reason, author, author_name, status, closing, "
        "subject, priority, tags, attributes, link FROM messages ORDER BY identity"
    ).fetchall()
    conversations = store.conn.execute(
        "SELECT subject, customer, customer_name FROM conversations ORDER BY subject, customer"
    ).fetchall()
    return [tuple(r) for r in messages] + [tuple(r) for r in conversations]


def clocks(store: Store, now: datetime) -> list[tuple[Any, ...]]:
    """Every clock of every conversation, as the SLA engine measures it at ``now``."""
    measured: list[tuple[Any, ...]] = []
    for (cid,) in store.conn.execute("SELECT id FROM conversations ORDER BY id"):
        verdict = evaluate(
            clock_messages(store.messages(cid)), POLICY, BusinessCalendar.always_open(), now
        )
        measured.extend(
            (
                v.clock.kind,
                v.clock.started_at,
                v.clock.stopped_at,
                v.clock.stop_reason,
                v.clock.responder,
                v.business_seconds,
                v.state,
            )
            for v in verdict.clocks
        )
    return measured


def two_polls(fake: FakeZendesk, store: Store) -> list[Any]:
    """Ticket 1 as it stood after the first reply, then the follow-ups: two polls."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_next.json"))
    fake.export(NEXT_CURSOR, load("incremental_tickets_cursor_empty.json"))
    sink, src = SourceSink(store, "helpdesk"), source(fake, since="200d")
    fake.audit_cutoff = STAGED
    reports = [src.poll(sink, NOW)]
    fake.audit_cutoff = None
    reports.append(src.poll(sink, NOW + timedelta(minutes=1)))
    return reports


def test_both_reads_store_the_same_messages_and_clocks(tmp_path: Path) -> None:
    """Over two polls of the same account (ticket 1 answered once, then followed up, answered,
    thanked and solved), the ticket-event export and the per-ticket audits store the same
    messages, conversations and clocks; the export does it in 4 requests, the audits in 6."""
    results = {}
    for mode in ("ticket_events", "audits"):
        api = FakeApi().start()
        try:
            fake = FakeZendesk(api)
            if mode == "audits":
                fake.events.refuse = 403
            opened = Store.open(tmp_path / f"{mode}.db")
            reports = two_polls(fake, opened)
            results[mode] = (
                full_rows(opened),
                clocks(opened, NOW + timedelta(minutes=1)),
                sum(r.round_trips for r in reports),
                sum(r.new for r in reports),
            )
            opened.close()
        finally:
            api.stop()
    events, audits = results["ticket_events"], results["audits"]
    assert events[0] == audits[0]
    assert events[1] == audits[1]
    assert len(events[1]) == 2  # the first response, the next response
    assert (events[2], events[3]) == (4, 15)
    assert (audits[2], audits[3]) == (6, 15)  # a refused probe, then export and audits


def test_a_crash_mid_pages_resumes_from_the_stored_time_without_loss_or_duplicates(
    fake: FakeZendesk, store: Store
) -> None:
    """Pages of three ticket updates: the second page fails (HTTP 500, five times). The first
    page's events are stored with the time that page ends at; a restarted source (nothing
    remembered) asks again from there, reads the tickets it has not seen with show_many, and
    ends with every event once."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_empty.json"))
    fake.events.page_size = 3
    first_page_end = str(int(at("2023-09-09T23:52:06Z").timestamp()))
    failures = {"left": 5}

    def flaky(request: FakeRequest) -> Answer:
        if request.param("start_time") == first_page_end and failures["left"]:
            failures["left"] -= 1
            return 500, {}, {"error": "InternalServerError"}
        return fake.events(request)

    fake.api.route(TICKET_EVENTS, flaky)
    sink = RecordingSink(store, "helpdesk")
    with pytest.raises(SourceError, match=r"answered HTTP 500"):
        source(fake, since="200d").poll(sink, NOW)
    assert sink.batches[-1] == (
        [
            "ticket:1:comment:6130852545306",
            "ticket:1:audit:6130852545178:status",
            "ticket:1:comment:6130852547002",
        ],
        ("ticket_events_time", first_page_end),
    )
    assert sink.checkpoint("ticket_events_time") == first_page_end
    assert len(stored(store)) == 3

    fake.api.requests.clear()
    resumed = source(fake, since="200d").poll(sink, NOW + timedelta(minutes=1))
    assert stored(store) == ALL_TICKET_1_AND_4036
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 15
    requests = fake.requests()
    assert requests[:3] == [
        (TICKET_EVENTS, {"start_time": [first_page_end], "include": ["comment_events"]}),
        (EXPORT, {"cursor": [FIRST_CURSOR], "include": ["users"]}),
        (SHOW_TICKETS, {"ids": ["1,4036"], "include": ["users"]}),
    ]
    assert all(p == TICKET_EVENTS for p, _ in requests[3:])
    assert resumed.new == 12
    ends = [int(c[1]) for _, c in sink.batches if c and c[0] == "ticket_events_time"]
    assert ends == sorted(ends)


@pytest.mark.parametrize("status", [403, 404])
def test_a_plan_without_the_export_falls_back_to_audits_and_says_so_once(
    fake: FakeZendesk, store: Store, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """A refused ticket-event export (403, or 404 on accounts that do not route it) is logged
    once with the reason; this poll and the next read each changed ticket's audits, the next
    without asking the export again, and the events are all stored."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_empty.json"))
    fake.events.refuse = status
    caplog.set_level(logging.INFO, logger="replyclock.sources.zendesk")
    sink, src = SourceSink(store, "helpdesk"), source(fake, since="200d")
    first = src.poll(sink, NOW)
    fake.api.requests.clear()
    second = src.poll(sink, NOW + timedelta(minutes=1))
    assert (first.new, second.round_trips) == (15, 1)
    assert fake.requests() == [(EXPORT, {"cursor": [FIRST_CURSOR]})]
    assert stored(store) == ALL_TICKET_1_AND_4036
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [
        (r.getMessage(), getattr(r, "replyclock_fields", {}).get("status")) for r in warnings
    ] == [
        (
            "the account's plan has no incremental ticket-event export: reading each changed "
            "ticket's audits instead (one request a ticket) until a restart",
            status,
        )
    ]


def test_a_store_written_by_the_audits_reader_polls_once_more_that_way_then_moves_on(
    fake: FakeZendesk, store: Store
) -> None:
    """A store with an export cursor but no ticket-event time (written by a version that read
    audits only) gets one more audits poll; the ticket-event export then starts a minute before
    that poll, so nothing between the two reads is missed."""
    serve_first_sync(fake)
    fake.export(FIRST_CURSOR, load("incremental_tickets_cursor_next.json"))
    fake.export(NEXT_CURSOR, load("incremental_tickets_cursor_empty.json"))
    sink = SourceSink(store, "helpdesk")
    sink.save_checkpoint("export_cursor", FIRST_CURSOR, NOW)
    src = source(fake)
    src.poll(sink, NOW)
    assert fake.requests() == [
        (EXPORT, {"cursor": [FIRST_CURSOR]}),
        ("/api/v2/tickets/1/audits.json", AUDIT_PARAMS),
    ]
    took_over = str(int(NOW.timestamp()) - 60)
    assert sink.checkpoint("ticket_events_time") == took_over
    fake.api.requests.clear()
    later = src.poll(sink, NOW + timedelta(minutes=2))
    assert later.round_trips == 2
    assert fake.requests() == [
        (TICKET_EVENTS, {"start_time": [took_over], "include": ["comment_events"]}),
        (EXPORT, {"cursor": [NEXT_CURSOR], "include": ["users"]}),
    ]


def test_an_answer_without_the_comments_is_completed_from_the_audits(
    fake: FakeZendesk, store: Store
) -> None:
    """If the export answers without the comment_events sideload (only comment_present), the
    comments are not lost: those tickets' audits are read, once each."""
    serve_first_sync(fake)
    fake.events.sideload = False
    report = source(fake, since="200d").poll(SourceSink(store, "helpdesk"), NOW)
    assert stored(store) == ALL_TICKET_1_AND_4036
    assert report.round_trips == 4
    audit_reads = [p for p, _ in fake.requests() if p.endswith("/audits.json")]
    assert sorted(audit_reads) == [
        "/api/v2/tickets/1/audits.json",
        "/api/v2/tickets/4036/audits.json",
    ]


def test_authors_the_export_does_not_name_are_asked_for_once(
    fake: FakeZendesk, store: Store
) -> None:
    """The agent who replied is neither requester, submitter nor assignee, so the ticket
    export's users do not name them: one show_many request asks for them, and the next poll
    remembers them."""
    serve_tickets(fake, {1: ("Thanks, that fixed it!", []), 2: ("Still broken", [])})
    sink, src = SourceSink(store, "helpdesk"), source(fake)
    src.poll(sink, NOW)
    assert (SHOW_USERS, {"ids": [str(ADMIN["id"])]}) in fake.requests()
    assert [p for p, _ in fake.requests()].count(SHOW_USERS) == 1
    replies = store.conn.execute(
        "SELECT COUNT(*) FROM messages WHERE direction = 'outbound' AND author = ?", (EMAIL,)
    ).fetchone()[0]
    assert replies == 2
    n = 2
    fake.audits[n]["audits"].append(
        audit(
            n,
            n * 100 + 31,
            NOW + timedelta(minutes=1),
            ADMIN["id"],
            comment(n * 100 + 32, ADMIN["id"], "Sending a new router."),
        )
    )
    fake.export("closers", {"tickets": [], "after_cursor": "closers", "end_of_stream": True})
    fake.api.requests.clear()
    later = NOW + timedelta(minutes=3)
    fake.events.now = lambda: int(later.timestamp())
    report = src.poll(sink, later)
    assert SHOW_USERS not in [p for p, _ in fake.requests()]
    assert report.new == 1


def test_the_fake_export_checks_what_it_is_asked() -> None:
    """The fake ticket-event export refuses unknown parameters, a missing or non-numeric
    start_time and an unknown sideload (400), and a start_time within the last minute (422);
    without the sideload a comment is only comment_present / comment_public."""
    body = load("ticket_1_audits.json")
    events = ZendeskTicketEvents(
        audits=lambda: body["audits"], base_url=lambda: "https://x.zendesk.com", now=lambda: 2e9
    )

    def ask(**query: str) -> Answer:
        request = FakeRequest(
            method="GET",
            path=TICKET_EVENTS,
            query={k: [v] for k, v in query.items()},
            headers={},
        )
        return events(request)

    assert ask(start_time="0", per_page="5")[0] == 400
    assert ask(include="comment_events")[0] == 400
    assert ask(start_time="soon")[0] == 400
    assert ask(start_time="0", include="users")[0] == 400
    assert ask(start_time=str(int(2e9) - 30))[0] == 422
    status, _, bare = ask(start_time="0")
    first = bare["ticket_events"][0]
    assert status == 200
    assert (first["event_type"], first["updater_id"], first["via"]) == (
        "Audit",
        6130907993114,
        "Sample ticket",
    )
    assert first["child_events"][0] == {
        "id": 6130852545306,
        "via": first["child_events"][0]["via"],
        "via_reference_id": None,
        "comment_present": True,
        "comment_public": True,
        "event_type": "Comment",
    }
    status_set = next(c for c in first["child_events"] if "status" in c)
    assert (status_set["status"], status_set["event_type"]) == ("open", "Create")
    _, _, full = ask(start_time="0", include="comment_events")
    comment_event = full["ticket_events"][0]["child_events"][0]
    assert (comment_event["type"], comment_event["audit_id"], comment_event["public"]) == (
        "Comment",
        6130852545178,
        True,
    )
    assert (full["count"], full["end_of_stream"]) == (10, True)
    assert full["next_page"].endswith(f"start_time={full['end_time']}&include=comment_events")
