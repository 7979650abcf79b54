"""The Freshdesk source against a fake Freshdesk serving recorded API bodies."""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest, RecordingSink
from test_engine import rulebook

from monitor.config.models import FreshdeskSourceConfig
from monitor.engine import Engine, clock_messages
from monitor.errors import SourceAuthError, SourceError
from monitor.explain import explain
from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import ClockKind, StopReason
from monitor.sla.evaluate import ClockState, evaluate
from monitor.sla.policy import Policy
from monitor.sources.freshdesk import FreshdeskSource, classify_conversation, status_from_name
from monitor.store import SourceSink, Store

DATA = Path(__file__).resolve().parents[1] / "data" / "freshdesk"
TICKETS = "/api/v2/tickets"
AGENT_ME = "/api/v2/agents/me"
ROLES = "/api/v2/roles"
SEARCH = "/api/v2/search/tickets"
NOW = datetime(2016, 5, 21, 12, 0, tzinfo=UTC)
FIRST_SINCE = "2016-04-21T12:00:00Z"  # NOW - since (30 days)
API_KEY = "freshdesk-test-key"
CONVERSATION_PARAMS = {"per_page": ["100"], "page": ["1"]}


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:X".encode()).decode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def list_params(since: str, page: int = 1) -> dict[str, list[str]]:
    return {
        "updated_since": [since],
        "order_by": ["updated_at"],
        "order_type": ["asc"],
        "per_page": ["100"],
        "page": [str(page)],
        "include": ["requester,stats"],
    }


def removed_params(kind: str, since: str, page: int = 1) -> dict[str, list[str]]:
    """The list of deleted or spam tickets: the same list with ``filter``, nothing embedded."""
    params = {k: v for k, v in list_params(since, page).items() if k != "include"}
    return params | {"filter": [kind]}


def removed_requests(since: str) -> list[tuple[str, dict[str, list[str]]]]:
    """The two requests after the ticket list: deleted, then spam tickets, both from ``since``
    (a poll's first-sync start while neither list ever showed a ticket)."""
    return [(TICKETS, removed_params(kind, since)) for kind in ("deleted", "spam")]


def first_since(now: datetime) -> str:
    return (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeFreshdesk:
    """FakeApi routes that answer like Freshdesk from the recorded bodies.

    The ticket list filters by ``updated_since`` (inclusive), sorts by ``updated_at`` and pages
    by ``page_size`` with a Link rel="next" header, as Freshdesk does; conversations likewise.
    As Freshdesk documents, the list leaves out tickets marked ``deleted`` or ``spam`` unless
    ``filter=deleted`` or ``filter=spam`` asks for exactly those (``lists_removed`` makes the
    plain list show them too, flags and all); ``remove`` deletes or spams a ticket, ``purge``
    makes its conversations answer 404, and ``refused_filters`` answers a filter 403.
    ``agents/me`` answers ``agent`` with Freshdesk's rate-limit headers, the roles list answers
    403 unless ``roles_readable`` (as to a key that is not an admin's), and the ticket filter
    counts the tickets updated on or after the date in its query.
    """

    api: FakeApi
    key: str = API_KEY
    tickets: list[Any] = field(default_factory=list)
    conversations: dict[int, list[Any]] = field(default_factory=dict)
    page_size: int = 100
    conversation_page_size: int = 100
    failing_pages: dict[int, int] = field(default_factory=dict)  # ticket list page -> 500s left
    agent: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(AGENT))
    roles_readable: bool = True
    lists_removed: bool = False
    purged: set[int] = field(default_factory=set)
    refused_filters: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.api.check_auth = lambda r: r.headers.get("authorization") == basic(self.key)
        self.api.route(TICKETS, self._tickets)
        self.api.route("/api/v2/ticket_fields", lambda r: (200, {}, load("ticket_fields.json")))
        self.api.route(AGENT_ME, lambda r: (200, dict(RATE_LIMIT_HEADERS), self.agent))
        self.api.route(ROLES, self._roles)
        self.api.route(SEARCH, self._search)

    def _roles(self, request: FakeRequest) -> Answer:
        if not self.roles_readable:
            return 403, {}, {"code": "access_denied", "message": "You are not authorized."}
        return 200, dict(RATE_LIMIT_HEADERS), ROLES_BODY

    def _search(self, request: FakeRequest) -> Answer:
        query = request.param("query") or ""
        found = re.fullmatch(r"\"updated_at:>'(\d{4}-\d\d-\d\d)'\"", query)
        if found is None:
            return 400, {}, {"description": "Validation failed", "query": query}
        matches = [t for t in self.tickets if t["updated_at"][:10] >= found.group(1)]
        return 200, dict(RATE_LIMIT_HEADERS), {"total": len(matches), "results": matches[:30]}

    def ticket(self, body: Any, conversations: list[Any]) -> None:
        self.tickets = [t for t in self.tickets if t["id"] != body["id"]] + [body]
        self.conversations[body["id"]] = conversations
        path = f"/api/v2/tickets/{body['id']}/conversations"
        self.api.route(path, lambda r: self._conversations(body["id"], path, r))

    def remove(self, ticket_id: int, kind: str, at: str) -> None:
        """Delete the ticket or mark it as spam (``kind``) at ``at``, its new updated_at."""
        [found] = [t for t in self.tickets if t["id"] == ticket_id]
        found[kind], found["updated_at"] = True, at

    def _page(self, items: list[Any], size: int, request: FakeRequest) -> Answer:
        page = int(request.param("page") or 1)
        chunk = items[(page - 1) * size : page * size]
        headers = {}
        if page * size < len(items):
            query = {k: v[0] for k, v in request.query.items()} | {"page": str(page + 1)}
            url = f"{self.api.url}{request.path}?{urllib.parse.urlencode(query)}"
            headers["Link"] = f'<{url}>; rel="next"'
        return 200, headers, chunk

    def _tickets(self, request: FakeRequest) -> Answer:
        page = int(request.param("page") or 1)
        if self.failing_pages.get(page, 0) > 0:
            self.failing_pages[page] -= 1
            return 500, {}, {"code": "internal_error"}
        kind = request.param("filter")
        if kind in self.refused_filters:
            return 403, {}, {"code": "access_denied", "message": "You are not authorized."}
        since = at(request.param("updated_since") or "1970-01-01T00:00:00Z")

        def listed(ticket: Any) -> bool:
            if kind is not None:
                return bool(ticket.get(kind))
            return self.lists_removed or not (ticket.get("deleted") or ticket.get("spam"))

        found = sorted(
            (t for t in self.tickets if at(t["updated_at"]) >= since and listed(t)),
            key=lambda t: (at(t["updated_at"]), t["id"]),
        )
        return self._page(found, self.page_size, request)

    def _conversations(self, ticket_id: int, path: str, request: FakeRequest) -> Answer:
        if ticket_id in self.purged:
            return 404, {}, {"code": "not_found", "message": "Ticket not found"}
        return self._page(self.conversations[ticket_id], self.conversation_page_size, request)

    def requests(self) -> list[tuple[str, dict[str, list[str]]]]:
        return [(r.path, r.query) for r in self.api.requests]


# agents/me ("View Me"): python-freshdesk's agent_1.json, with the role_ids and group_ids its
# contact_1_agent.json sample carries and the type the API documents.
AGENT = {
    "available": True,
    "occasional": False,
    "signature": None,
    "id": 1,
    "ticket_scope": 1,
    "group_ids": [1],
    "role_ids": [2],
    "type": "support_agent",
    "created_at": "2015-08-18T16:18:05Z",
    "updated_at": "2015-08-18T16:18:05Z",
    "available_since": None,
    "contact": {
        "active": True,
        "email": "rachel@freshdesk.com",
        "job_title": None,
        "language": "en",
        "last_login_at": "2015-08-21T14:54:46+05:30",
        "mobile": 1234,
        "name": "Rachel",
        "phone": 5678,
        "time_zone": "Chennai",
        "created_at": "2015-08-18T16:18:05Z",
        "updated_at": "2015-08-25T08:50:20Z",
    },
}
# python-freshdesk's roles.json (ids and names; the other fields are not read).
ROLES_BODY = [
    {"id": 1, "name": "Agent", "description": "Can log, view, reply, update and resolve tickets."},
    {"id": 2, "name": "Administrator", "description": "Can configure all features."},
]
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Total": "400",
    "X-RateLimit-Remaining": "398",
    "X-RateLimit-Used-CurrentRequest": "1",
}


@pytest.fixture
def fake() -> Iterator[FakeFreshdesk]:
    api = FakeApi().start()
    yield FakeFreshdesk(api)
    api.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def source(
    fake: FakeFreshdesk, sleeps: list[float] | None = None, **overrides: Any
) -> FreshdeskSource:
    values: dict[str, Any] = {
        "type": "freshdesk",
        "name": "helpdesk",
        "domain": "acme",
        "api_key": API_KEY,
        "base_url": fake.api.url,
    }
    phrases = overrides.pop("closing_phrases", ())
    values.update(overrides)
    record = sleeps if sleeps is not None else []
    config = FreshdeskSourceConfig.model_validate(values)
    return FreshdeskSource(config, sleep=record.append, clock=lambda: NOW, closing_phrases=phrases)


def stored(store: Store) -> list[tuple[str, str, str, str, str, str | None]]:
    rows = store.conn.execute(
        "SELECT identity, timestamp, direction, reason, author, status FROM messages "
        "ORDER BY timestamp, identity"
    ).fetchall()
    return [
        (r[0], datetime.fromtimestamp(r[1], UTC).isoformat(), r[2], r[3], r[4], r[5]) for r in rows
    ]


def checkpoint(store: Store) -> Any:
    text = SourceSink(store, "helpdesk").checkpoint("updated_since")
    return json.loads(text) if text else None


Z = "+00:00"
TICKET_1_FIRST = [
    (
        "ticket:1:created",
        "2016-05-18T04:36:04" + Z,
        "inbound",
        "customer comment (opened the ticket via portal)",
        "dummyname@example.com",
        None,
    ),
    (
        "ticket:1:conversation:1",
        "2016-05-19T05:36:12" + Z,
        "ignored",
        "private note (not a reply)",
        "user:1",
        None,
    ),
    (
        "ticket:1:conversation:2",
        "2016-05-19T05:36:14" + Z,
        "outbound",
        "public reply by an agent",
        "user:1",
        None,
    ),
    (
        "ticket:1:status:3:2016-05-19T05:36:14Z",
        "2016-05-19T05:36:14" + Z,
        "ignored",
        "ticket status set to pending",
        "",
        "pending",
    ),
]
TICKET_1_LATER = [
    (
        "ticket:1:conversation:3",
        "2016-05-20T08:00:00" + Z,
        "inbound",
        "customer comment",
        "dummyname@example.com",
        None,
    ),
    (
        "ticket:1:status:4:2016-05-20T09:00:00Z",
        "2016-05-20T09:00:00" + Z,
        "ignored",
        "ticket status set to solved",
        "",
        "solved",
    ),
]
TICKET_2 = [
    (
        "ticket:2:created",
        "2016-05-18T04:36:04" + Z,
        "outbound",
        "ticket created by an agent as an outbound email (the team spoke first)",
        "user:6010396333",
        None,
    ),
    (
        "ticket:2:status:2:2016-05-18T04:36:04Z",
        "2016-05-18T04:36:04" + Z,
        "ignored",
        "ticket status set to open",
        "",
        "open",
    ),
    (
        "ticket:2:conversation:4",
        "2016-05-19T06:00:00" + Z,
        "inbound",
        "customer comment",
        "second@example.com",
        None,
    ),
]


def serve_ticket_1(fake: FakeFreshdesk) -> None:
    fake.ticket(load("ticket_1.json"), load("conversations_ticket_1.json"))


def serve_ticket_2(fake: FakeFreshdesk) -> None:
    fake.ticket(load("ticket_2_outbound_email.json"), load("conversations_ticket_2.json"))


def serve_ticket_1_update(fake: FakeFreshdesk) -> None:
    fake.ticket(load("ticket_1_updated.json"), load("conversations_ticket_1_follow_up.json"))


def test_first_sync_turns_the_ticket_and_its_conversations_into_events(
    fake: FakeFreshdesk, store: Store
) -> None:
    """The first poll lists tickets updated since `since` ago and reads their conversations:
    the ticket's description is the customer's first message, the private note is ignored,
    the agent's reply is outbound, and the current status is one status event. Then the
    deleted and the spam tickets are listed, which the ticket list leaves out."""
    serve_ticket_1(fake)
    report = source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert (report.new, report.duplicates, report.round_trips) == (4, 0, 4)
    assert stored(store) == TICKET_1_FIRST
    assert fake.requests() == [
        (TICKETS, list_params(FIRST_SINCE)),
        ("/api/v2/tickets/1/conversations", CONVERSATION_PARAMS),
        *removed_requests(FIRST_SINCE),
    ]
    assert checkpoint(store) == {"updated_since": "2016-05-19T05:36:14Z", "ids": [1]}


def test_events_carry_the_ticket_facts_policies_match_on(fake: FakeFreshdesk, store: Store) -> None:
    """Every event carries the ticket's subject, priority name, tags, type and agent URL; the
    conversation is named after the requester."""
    serve_ticket_1(fake)
    source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    row = store.conn.execute(
        "SELECT subject, priority, tags, attributes, link, author_name FROM messages "
        "WHERE identity = 'ticket:1:created'"
    ).fetchone()
    assert tuple(row) == (
        "This is a sample ticket",
        "low",
        "foo,bar",
        '{"type": "Question"}',
        "https://acme.freshdesk.com/a/tickets/1",
        "Dummyname",
    )
    conversation = store.conversation_for_message("helpdesk", "ticket:1:created")
    assert conversation is not None
    named = store.conversation(conversation)
    assert named is not None
    assert (named.subject, named.customer, named.customer_name) == (
        "This is a sample ticket",
        "dummyname@example.com",
        "Dummyname",
    )


def test_incremental_poll_asks_from_the_checkpoint_and_stores_only_what_is_new(
    fake: FakeFreshdesk, store: Store
) -> None:
    """The second poll lists tickets updated since the last stored updated_at and stores only
    the customer's follow-up and the new status; a poll with nothing new is three requests
    (the tickets, the deleted ones, the spam)."""
    serve_ticket_1(fake)
    src = source(fake)
    sink = SourceSink(store, "helpdesk")
    src.poll(sink, NOW)

    serve_ticket_1_update(fake)
    fake.api.requests.clear()
    second = src.poll(sink, NOW + timedelta(minutes=1))
    assert (second.new, second.duplicates, second.round_trips) == (2, 3, 4)
    assert fake.requests() == [
        (TICKETS, list_params("2016-05-19T05:36:14Z")),
        ("/api/v2/tickets/1/conversations", CONVERSATION_PARAMS),
        *removed_requests(first_since(NOW + timedelta(minutes=1))),
    ]
    assert stored(store) == TICKET_1_FIRST + TICKET_1_LATER
    assert checkpoint(store) == {"updated_since": "2016-05-20T09:00:00Z", "ids": [1]}

    fake.api.requests.clear()
    third = src.poll(sink, NOW + timedelta(minutes=2))
    assert (third.new, third.duplicates, third.round_trips) == (0, 0, 3)
    assert fake.requests() == [
        (TICKETS, list_params("2016-05-20T09:00:00Z")),
        *removed_requests(first_since(NOW + timedelta(minutes=2))),
    ]


def test_each_page_is_stored_with_its_checkpoint_and_a_failed_poll_resumes_there(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Ticket and conversation pages are followed by their Link header; each ticket page is
    stored with its checkpoint, so when page 2 fails (HTTP 500, five times) page 1 is kept and
    the next poll resumes after it without storing anything twice."""
    serve_ticket_1(fake)
    serve_ticket_2(fake)
    fake.page_size = 1
    fake.conversation_page_size = 1
    fake.failing_pages[2] = 5
    sleeps: list[float] = []
    sink = RecordingSink(store, "helpdesk")
    src = source(fake, sleeps)

    with pytest.raises(SourceError) as failed:
        src.poll(sink, NOW)
    query = urllib.parse.urlencode({k: v[0] for k, v in list_params(FIRST_SINCE, 2).items()})
    assert str(failed.value) == (
        f"source 'helpdesk': {fake.api.url}{TICKETS}?{query} answered HTTP 500 "
        "(Internal Server Error)"
    )
    assert len(sleeps) == 4
    assert fake.requests() == [
        (TICKETS, list_params(FIRST_SINCE)),
        ("/api/v2/tickets/1/conversations", CONVERSATION_PARAMS),
        ("/api/v2/tickets/1/conversations", {"per_page": ["100"], "page": ["2"]}),
        *[(TICKETS, list_params(FIRST_SINCE, 2))] * 5,
    ]
    assert sink.batches == [
        (
            [
                "ticket:1:created",
                "ticket:1:conversation:1",
                "ticket:1:conversation:2",
                "ticket:1:status:3:2016-05-19T05:36:14Z",
            ],
            ("updated_since", '{"updated_since": "2016-05-19T05:36:14Z", "ids": [1]}'),
        )
    ]
    assert stored(store) == TICKET_1_FIRST

    fake.api.requests.clear()
    resumed = src.poll(sink, NOW + timedelta(minutes=1))
    assert (resumed.new, resumed.duplicates) == (3, 0)
    assert fake.requests() == [
        (TICKETS, list_params("2016-05-19T05:36:14Z")),
        (TICKETS, list_params("2016-05-19T05:36:14Z", 2)),
        ("/api/v2/tickets/2/conversations", CONVERSATION_PARAMS),
        *removed_requests(first_since(NOW + timedelta(minutes=1))),
    ]
    assert sink.batches[1:] == [
        (
            [
                "ticket:2:created",
                "ticket:2:conversation:4",
                "ticket:2:status:2:2016-05-18T04:36:04Z",
            ],
            ("updated_since", '{"updated_since": "2016-05-19T06:00:00Z", "ids": [2]}'),
        )
    ]
    assert stored(store) == sorted(TICKET_1_FIRST + TICKET_2, key=lambda r: (r[1], r[0]))


def test_past_the_last_page_freshdesk_allows_the_list_restarts_from_the_last_updated_at(
    fake: FakeFreshdesk, store: Store
) -> None:
    """After the last page Freshdesk serves (300; here 1 for the test), the list starts again at
    page 1 with updated_since set to the last ticket's updated_at, skipping what is stored."""
    serve_ticket_1(fake)
    serve_ticket_2(fake)
    third = copy.deepcopy(load("ticket_2_outbound_email.json"))  # a third ticket, made from #2
    third["id"], third["updated_at"] = 3, "2016-05-19T07:00:00Z"
    fake.ticket(third, [])
    fake.page_size = 2
    src = source(fake)
    src.max_pages = 1
    report = src.poll(SourceSink(store, "helpdesk"), NOW)
    assert report.new == 9
    assert [(p, q) for p, q in fake.requests() if p == TICKETS] == [
        (TICKETS, list_params(FIRST_SINCE)),
        (TICKETS, list_params("2016-05-19T06:00:00Z")),
        *removed_requests(FIRST_SINCE),
    ]
    assert checkpoint(store) == {"updated_since": "2016-05-19T07:00:00Z", "ids": [3]}


def test_a_full_last_page_at_one_instant_fails_clearly_instead_of_looping(
    fake: FakeFreshdesk, store: Store
) -> None:
    """When every ticket of the last allowed page shares one updated_at, restarting cannot move
    forward: the poll fails with a message instead of asking the same page forever."""
    serve_ticket_1(fake)
    twin = copy.deepcopy(load("ticket_1.json"))
    twin["id"] = 5
    fake.ticket(twin, [])
    fake.page_size = 1
    src = source(fake)
    src.max_pages = 1
    with pytest.raises(SourceError) as failed:
        src.poll(SourceSink(store, "helpdesk"), NOW)
    assert str(failed.value) == (
        "source 'helpdesk': more than 100 tickets share the updated_at 2016-05-19T05:36:14Z; "
        "Freshdesk cannot list past them"
    )
    assert checkpoint(store) == {"updated_since": "2016-05-19T05:36:14Z", "ids": [1]}


def test_rate_limit_waits_the_retry_after_seconds_then_succeeds(
    fake: FakeFreshdesk, store: Store
) -> None:
    """A 429 with Retry-After: 7 makes the source sleep exactly 7 seconds (through the injected
    sleep) and retry; the poll then succeeds."""
    serve_ticket_1(fake)
    fake.api.fail_next(TICKETS, 429, {"Retry-After": "7"}, {"code": "rate_limited"})
    sleeps: list[float] = []
    report = source(fake, sleeps).poll(SourceSink(store, "helpdesk"), NOW)
    assert sleeps == [7.0]
    assert (report.new, report.round_trips) == (4, 5)


@pytest.mark.parametrize("key", ["api_key", "api_key_file"])
def test_rejected_credentials_name_the_source_and_the_keys_to_fix(
    fake: FakeFreshdesk,
    store: Store,
    tmp_path: Path,
    key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 401 stops the poll with a SourceAuthError naming the source and the config keys to fix,
    stores nothing, and never writes the key to the log."""
    serve_ticket_1(fake)
    fake.key = "the-right-key"
    overrides: dict[str, Any] = {}
    if key == "api_key_file":
        secret = tmp_path / "freshdesk-key"
        secret.write_text(API_KEY + "\n", encoding="utf-8")
        overrides = {"api_key": None, "api_key_file": secret}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceAuthError) as failed:
        source(fake, **overrides).poll(SourceSink(store, "helpdesk"), NOW)
    assert str(failed.value) == (
        f"source 'helpdesk': {fake.api.url} rejected the credentials (HTTP 401); check domain "
        f"and {key} (the API key of a Freshdesk agent who can view every ticket to monitor)"
    )
    assert store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert checkpoint(store) is None
    assert API_KEY not in caplog.text


def test_custom_statuses_are_named_from_the_ticket_fields_read_once(
    fake: FakeFreshdesk, store: Store
) -> None:
    """A custom status is mapped by its name from the ticket fields (waiting on the customer is
    pending, on a third party is on hold); the fields are read once for all tickets, and again
    at a later poll only when a status they did not name appears (which then counts as open)."""
    first = load("ticket_1.json")
    first["status"] = 6
    second = load("ticket_2_outbound_email.json")
    second["status"] = 7
    fake.ticket(first, [])
    fake.ticket(second, [])
    src = source(fake)
    src.poll(SourceSink(store, "helpdesk"), NOW)
    rows = store.conn.execute(
        "SELECT identity, reason, status FROM messages WHERE status IS NOT NULL ORDER BY identity"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        (
            "ticket:1:status:6:2016-05-19T05:36:14Z",
            "ticket status set to pending (Freshdesk: Waiting on Customer)",
            "pending",
        ),
        (
            "ticket:2:status:7:2016-05-18T04:36:04Z",
            "ticket status set to on_hold (Freshdesk: Waiting on Third Party)",
            "on_hold",
        ),
    ]
    assert [q for p, q in fake.requests() if p == "/api/v2/ticket_fields"] == [
        {"type": ["default_status"]}
    ]

    first["status"], first["updated_at"] = 9, "2016-05-20T10:00:00Z"
    first["stats"]["status_updated_at"] = "2016-05-20T10:00:00Z"
    fake.ticket(first, [])
    fake.api.requests.clear()
    src.poll(SourceSink(store, "helpdesk"), NOW + timedelta(minutes=1))
    assert [p for p, _ in fake.requests()].count("/api/v2/ticket_fields") == 1
    assert store.conn.execute(
        "SELECT reason, status FROM messages WHERE identity = ?",
        ("ticket:1:status:9:2016-05-20T10:00:00Z",),
    ).fetchone() == ("ticket status set to open (Freshdesk: status 9)", "open")


POLICY = Policy(name="support", calendar="24x7", first_response=3600, next_response=3600)


def clocks_of(store: Store, identity: str, now: datetime) -> list[tuple[Any, ...]]:
    conversation = store.conversation_for_message("helpdesk", identity)
    assert conversation is not None
    messages = clock_messages(store.messages(conversation))
    verdict = evaluate(messages, POLICY, BusinessCalendar.always_open(), now)
    return [
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
    ]


def test_first_response_stops_at_the_public_reply_not_the_note_end_to_end(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Through the store and the SLA engine: the first-response clock ignores the private note
    and stops at the agent's reply two seconds later; the customer's follow-up starts a
    next-response clock, which the ticket's resolution stops as solved."""
    serve_ticket_1(fake)
    src = source(fake)
    sink = SourceSink(store, "helpdesk")
    src.poll(sink, NOW)
    serve_ticket_1_update(fake)
    src.poll(sink, NOW + timedelta(minutes=1))
    assert clocks_of(store, "ticket:1:created", NOW) == [
        (
            ClockKind.FIRST,
            at("2016-05-18T04:36:04Z"),
            at("2016-05-19T05:36:14Z"),
            StopReason.REPLY,
            "user:1",
            90_010,  # one day, one hour and ten seconds: answered, but late
            ClockState.ANSWERED,
            True,
        ),
        (
            ClockKind.NEXT,
            at("2016-05-20T08:00:00Z"),
            at("2016-05-20T09:00:00Z"),
            StopReason.SOLVED,
            "",
            3600,
            ClockState.SOLVED,
            False,
        ),
    ]


def test_outbound_email_ticket_has_no_first_response_clock(
    fake: FakeFreshdesk, store: Store
) -> None:
    """A ticket an agent opened as an outbound email starts with the team speaking: the
    customer's answer starts a next-response clock, and no first-response clock exists."""
    serve_ticket_2(fake)
    source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert stored(store) == TICKET_2
    assert clocks_of(store, "ticket:2:created", NOW) == [
        (
            ClockKind.NEXT,
            at("2016-05-19T06:00:00Z"),
            None,
            None,
            "",
            194_400,  # two days and six hours, still waiting
            ClockState.BREACHED,
            True,
        )
    ]


# --- closing messages --------------------------------------------------------------------------

CLOSER_RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 1h}
"""
ANSWERED = "2016-05-21T11:00:00Z"  # the customer's answer to the agent's reply, 1 h before NOW
SCREENSHOT = {
    "id": 5001,
    "content_type": "image/png",
    "size": 48213,
    "name": "still-broken.png",
    "attachment_url": "https://cdn.freshdesk.com/data/helpdesk/attachments/production/5001/"
    "original/still-broken.png",
    "created_at": ANSWERED,
    "updated_at": ANSWERED,
}


def serve_answered(
    fake: FakeFreshdesk,
    answers: dict[int, tuple[str, list[Any]]],
    unanswered: dict[int, str] | None = None,
) -> None:
    """Copies of ticket 1 (subject "ticket <n>", reopened by the customer's answer): the note
    and the agent's reply as recorded, then, for those in ``answers``, the customer's incoming
    conversation with the text and attachments given. Those in ``unanswered`` have only their
    description, the text given, and no conversation."""
    recorded = load("conversations_ticket_1.json")
    for n, description in {
        **dict.fromkeys(answers, "The router does not connect. Can you help?"),
        **(unanswered or {}),
    }.items():
        ticket = load("ticket_1.json")
        ticket |= {"id": n, "subject": f"ticket {n}", "status": 2, "updated_at": ANSWERED}
        ticket["description_text"] = description
        ticket["description"] = f"<div>{description}</div>"
        ticket["stats"]["status_updated_at"] = ANSWERED
        conversations: list[Any] = []
        if n in answers:
            text, attachments = answers[n]
            conversations = [dict(c, ticket_id=n) for c in copy.deepcopy(recorded)]
            conversations.append(
                {
                    **conversations[-1],
                    "body": f"<div>{text}</div>",
                    "body_text": text,
                    "id": 3,
                    "incoming": True,
                    "user_id": ticket["requester_id"],
                    "to_emails": ["support@example.freshdesk.com"],
                    "from_email": "Dummyname <dummyname@example.com>",
                    "created_at": ANSWERED,
                    "updated_at": ANSWERED,
                    "attachments": attachments,
                }
            )
        fake.ticket(ticket, conversations)


def closing_column(store: Store) -> dict[str, str | None]:
    return dict(
        store.conn.execute("SELECT identity, closing FROM messages WHERE direction = 'inbound'")
    )


def waiting_subjects(store: Store, tmp_path: Path) -> list[str]:
    engine = Engine(store, rulebook(tmp_path, "closers", CLOSER_RULES))
    engine.evaluate(NOW)
    return sorted(w.conversation.subject for w in engine.waiting(NOW))


def test_a_customer_thank_you_after_the_reply_starts_no_clock(
    fake: FakeFreshdesk, store: Store, tmp_path: Path
) -> None:
    """After the agent's public reply, the customer's incoming "Thanks, that fixed it!" is a
    closing message: no clock, and only its words are kept (the body is not stored). "Thanks,
    but it still fails", a "Thanks!" with a screenshot attached and a ticket whose description
    is "Thanks!" (it opens the ticket: a request, whatever it says) each wait for a reply."""
    serve_answered(
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
        "ticket:1:created": None,
        "ticket:1:conversation:3": "Thanks, that fixed it!",
        "ticket:2:created": None,
        "ticket:2:conversation:3": None,
        "ticket:3:created": None,
        "ticket:3:conversation:3": None,
        "ticket:4:created": None,
    }
    assert waiting_subjects(store, tmp_path) == ["ticket 2", "ticket 3", "ticket 4"]
    (cid,) = store.conn.execute(
        "SELECT conversation_id FROM messages WHERE identity = 'ticket:1:conversation:3'"
    ).fetchone()
    text = "\n".join(explain(store, rulebook(tmp_path, "closers", CLOSER_RULES), cid, NOW))
    assert "not a clock: closing message ('Thanks, that fixed it!')" in text
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(messages)")}
    assert not columns & {"body", "body_text", "description"}


def test_with_closers_count_a_thank_you_starts_a_clock(
    fake: FakeFreshdesk, store: Store, tmp_path: Path
) -> None:
    """``closers: count``: the customer's "Thanks, that fixed it!" is a message like any other
    and waits for a reply; nothing is marked as closing."""
    serve_answered(fake, {1: ("Thanks, that fixed it!", [])})
    source(fake, closers="count").poll(SourceSink(store, "helpdesk"), NOW)
    assert set(closing_column(store).values()) == {None}
    assert waiting_subjects(store, tmp_path) == ["ticket 1"]


def test_the_rules_files_closing_phrases_count_and_html_is_read_without_plain_text(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Phrases from the rules files (``closing_phrases``; "kiitos paljon" is no built-in one)
    make a conversation closing too; one without ``body_text`` is read from its HTML."""
    serve_answered(fake, {1: ("Kiitos paljon!", []), 2: ("Danke!", [])})
    html_only = fake.conversations[2][-1]
    del html_only["body_text"]
    html_only["body"] = '<div dir="ltr">Danke!<br>Anna</div><div class="freshdesk_quote"></div>'
    source(fake, closing_phrases=("kiitos paljon",)).poll(SourceSink(store, "helpdesk"), NOW)
    closing = closing_column(store)
    assert (closing["ticket:1:conversation:3"], closing["ticket:2:conversation:3"]) == (
        "Kiitos paljon!",
        "Danke! Anna",
    )


# --- deleted and spam tickets --------------------------------------------------------------------

WAITING_SINCE = at("2016-05-19T06:00:00Z")  # ticket 2's customer comment, not answered
BEFORE = at("2016-05-19T06:10:00Z")  # a poll while the customer waits
AFTER = at("2016-05-19T06:31:00Z")  # a poll after the ticket was removed at 06:30


def waiting_on_ticket_2(fake: FakeFreshdesk, store: Store) -> tuple[FreshdeskSource, SourceSink]:
    """Ticket 2 stored at 06:10 with its customer waiting (10 minutes of a 1 hour target)."""
    serve_ticket_2(fake)
    src, sink = source(fake), SourceSink(store, "helpdesk")
    src.poll(sink, BEFORE)
    assert [(c[2], c[6]) for c in clocks_of(store, "ticket:2:created", BEFORE)] == [
        (None, ClockState.OK)
    ]
    return src, sink


def stopped_at(instant: datetime, seconds: int) -> list[tuple[Any, ...]]:
    """Ticket 2's clock, stopped as solved at ``instant``: no reply, no breach."""
    return [
        (
            ClockKind.NEXT,
            WAITING_SINCE,
            instant,
            StopReason.SOLVED,
            "",
            seconds,
            ClockState.SOLVED,
            False,
        )
    ]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        pytest.param("deleted", "ticket deleted in Freshdesk (counted as closed)", id="deleted"),
        pytest.param(
            "spam", "ticket marked as spam in Freshdesk (counted as closed)", id="marked_as_spam"
        ),
    ],
)
def test_a_deleted_or_spam_ticket_stops_its_waiting_customers_clock(
    fake: FakeFreshdesk, store: Store, kind: str, reason: str
) -> None:
    """An agent deletes ticket 2 (or marks it as spam) at 06:30 while its customer waits. The
    ticket list leaves it out from then on; the list with filter=deleted (or filter=spam) shows
    it, and it gets one closed status event at that update, without its conversations being
    read. The clock stops there as solved: not a reply, not a breach; read again, nothing is
    stored twice."""
    src, sink = waiting_on_ticket_2(fake, store)
    fake.remove(2, kind, "2016-05-19T06:30:00Z")
    fake.api.requests.clear()
    report = src.poll(sink, AFTER)
    assert (report.new, report.duplicates, report.round_trips) == (1, 0, 3)
    assert fake.requests() == [
        (TICKETS, list_params("2016-05-19T06:00:00Z")),
        *removed_requests(first_since(AFTER)),
    ]
    assert stored(store)[-1] == (
        f"ticket:2:{kind}:2016-05-19T06:30:00Z",
        "2016-05-19T06:30:00" + Z,
        "ignored",
        reason,
        "",
        "closed",
    )
    assert clocks_of(store, "ticket:2:created", AFTER) == stopped_at(
        at("2016-05-19T06:30:00Z"), 1800
    )
    assert json.loads(sink.checkpoint(f"{kind}_since") or "") == {
        "updated_since": "2016-05-19T06:30:00Z",
        "ids": [2],
    }
    again = src.poll(sink, AFTER + timedelta(minutes=1))
    assert (again.new, again.duplicates) == (0, 0)
    assert len(stored(store)) == len(TICKET_2) + 1


def test_a_removed_ticket_never_stored_leaves_nothing_behind(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Spam that arrived and was marked as spam between two polls was never stored: the spam
    list moves its checkpoint past it and stores nothing, so spam leaves no conversations."""
    spam = copy.deepcopy(load("ticket_1.json"))
    spam["id"], spam["spam"] = 7, True
    fake.ticket(spam, [])
    report = source(fake).poll(SourceSink(store, "helpdesk"), NOW)
    assert (report.new, report.duplicates) == (0, 0)
    assert stored(store) == []
    assert json.loads(SourceSink(store, "helpdesk").checkpoint("spam_since") or "") == {
        "updated_since": "2016-05-19T05:36:14Z",
        "ids": [7],
    }


def test_a_deleted_ticket_the_list_still_shows_is_closed_once(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Should the ticket list itself show a ticket with "deleted": true, the ticket is closed
    from it as from the deleted list (its conversations are not read), and the two sightings
    are one stored event."""
    src, sink = waiting_on_ticket_2(fake, store)
    fake.lists_removed = True
    fake.remove(2, "deleted", "2016-05-19T06:30:00Z")
    fake.api.requests.clear()
    report = src.poll(sink, AFTER)
    assert (report.new, report.duplicates) == (1, 1)
    assert "/api/v2/tickets/2/conversations" not in [p for p, _ in fake.requests()]
    assert clocks_of(store, "ticket:2:created", AFTER) == stopped_at(
        at("2016-05-19T06:30:00Z"), 1800
    )


def test_a_ticket_gone_while_being_read_is_closed_and_the_poll_goes_on(
    fake: FakeFreshdesk, store: Store
) -> None:
    """Ticket 2 is updated, then deleted for good between the list and the read: its
    conversations answer 404. The poll does not fail: ticket 2 is closed at the moment the 404
    was seen, ticket 1 on the same page is stored as usual, and a ticket never stored that is
    gone as well (5) is left out."""
    src, sink = waiting_on_ticket_2(fake, store)
    serve_ticket_1(fake)
    fake.tickets[-1]["updated_at"] = "2016-05-19T06:25:00Z"
    [ticket_2] = [t for t in fake.tickets if t["id"] == 2]
    ticket_2["updated_at"] = "2016-05-19T06:20:00Z"
    stranger = copy.deepcopy(ticket_2)
    stranger["id"] = 5
    fake.ticket(stranger, [])
    fake.purged |= {2, 5}
    report = src.poll(sink, AFTER)
    assert (report.new, report.duplicates) == (1 + 4, 0)  # the deletion, and ticket 1
    assert stored(store)[-1] == (
        "ticket:2:deleted",
        AFTER.isoformat(),
        "ignored",
        "ticket deleted in Freshdesk (HTTP 404 while its conversations were read; counted as "
        "closed)",
        "",
        "closed",
    )
    assert store.conversation_for_message("helpdesk", "ticket:1:created") is not None
    assert not [r for r in stored(store) if r[0].startswith("ticket:5:")]
    assert clocks_of(store, "ticket:2:created", AFTER) == stopped_at(AFTER, 1860)
    assert checkpoint(store) == {"updated_since": "2016-05-19T06:25:00Z", "ids": [1]}


def test_a_removed_list_that_cannot_be_read_does_not_fail_the_poll(
    fake: FakeFreshdesk, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A key whose agent may not list deleted tickets (HTTP 403) still polls the tickets: the
    poll succeeds, one warning says what is not seen (later polls log it quietly), the deleted
    list keeps its checkpoint, and the spam list is read."""
    serve_ticket_1(fake)
    fake.refused_filters = {"deleted"}
    src, sink = source(fake), SourceSink(store, "helpdesk")
    caplog.set_level(logging.DEBUG, logger="replyclock.sources.freshdesk")
    report = src.poll(sink, NOW)
    assert report.new == 4
    src.poll(sink, NOW + timedelta(minutes=1))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "deleted tickets not listed: their clocks stop only once this list can be read"
    ]
    assert sink.checkpoint("deleted_since") is None
    assert [q.get("filter") for p, q in fake.requests() if p == TICKETS] == [
        None,
        ["deleted"],
        ["spam"],
        None,
        ["deleted"],
        ["spam"],
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("Waiting on Customer", "pending", id="waiting_on_customer"),
        pytest.param("Awaiting customer reply", "pending", id="awaiting_customer"),
        pytest.param("Pending approval", "pending", id="pending_word"),
        pytest.param("Waiting on Third Party", "on_hold", id="third_party"),
        pytest.param("On hold", "on_hold", id="on_hold"),
        pytest.param("Resolved - no answer", "solved", id="resolved"),
        pytest.param("Closed as duplicate", "closed", id="closed"),
        pytest.param("In Progress", "open", id="in_progress_is_open"),
        pytest.param("Escalated to L2", "open", id="unknown_is_open"),
    ],
)
def test_custom_status_names_map_to_replyclock_statuses(name: str, expected: str) -> None:
    """A custom status counts as open unless its name says the ticket waits on the customer,
    on a third party, or is resolved or closed."""
    assert status_from_name(name) == expected


@pytest.mark.parametrize(
    ("conversation", "expected"),
    [
        pytest.param(
            {"incoming": True, "private": False, "source": 0},
            (Direction.INBOUND, "customer comment"),
            id="customer_reply",
        ),
        pytest.param(
            {"incoming": False, "private": False, "source": 0},
            (Direction.OUTBOUND, "public reply by an agent"),
            id="agent_reply",
        ),
        pytest.param(
            {"incoming": False, "private": False, "source": 2},
            (Direction.OUTBOUND, "public note by an agent (Freshdesk counts it as a response)"),
            id="public_note",
        ),
        pytest.param(
            {"incoming": False, "private": True, "source": 2},
            (Direction.IGNORED, "private note (not a reply)"),
            id="private_note",
        ),
        pytest.param(
            {"incoming": True, "private": True, "source": 2},
            (Direction.IGNORED, "private note (not a reply)"),
            id="private_incoming_note",
        ),
    ],
)
def test_conversation_classification_follows_freshdesk_response_rules(
    conversation: dict[str, Any], expected: tuple[Direction, str]
) -> None:
    """Incoming public conversations are customer messages; agents' replies and public notes are
    responses (as Freshdesk counts them); private notes are neither."""
    assert classify_conversation(conversation) == expected


# --- check --connect -----------------------------------------------------------------------------


def test_probe_reports_the_agent_its_access_role_rate_limit_and_first_sync(
    fake: FakeFreshdesk,
) -> None:
    """The probe signs in as polls do and reports whom the key belongs to, which tickets that
    agent sees, its role, the rate-limit headroom and how many tickets a first sync reads."""
    serve_ticket_1(fake)
    serve_ticket_2(fake)
    report = source(fake).probe(NOW)
    assert (report.source, report.kind) == ("helpdesk", "freshdesk")
    assert report.account == "Rachel <rachel@freshdesk.com>"
    assert dict(report.details) == {
        "api": fake.api.url,
        "signed in with": "API key",
        "ticket access": "every ticket (global access)",
        "role": "Administrator (an admin)",
        "rate limit": "398 of 400 requests a minute left",
    }
    assert report.first_sync == (
        "2 tickets updated since 2016-04-21 (since: 30d), each read with its conversations"
    )
    assert report.warnings == []
    assert fake.requests() == [
        (AGENT_ME, {}),
        (ROLES, {}),
        (SEARCH, {"query": ["\"updated_at:>'2016-04-21'\""]}),
    ]
    assert all(r.method == "GET" for r in fake.api.requests)


def test_probe_warns_when_the_agent_cannot_see_every_ticket(fake: FakeFreshdesk) -> None:
    """Group access hides other groups' tickets from the key, and so from replyclock; a key
    that may not list roles is most likely not an admin's."""
    fake.agent["ticket_scope"] = 2
    fake.agent["role_ids"] = [1]
    fake.roles_readable = False
    report = source(fake).probe(NOW)
    details = dict(report.details)
    assert details["ticket access"] == "only the tickets of the agent's groups (group access)"
    assert details["role"] == "role ids 1; this key may not list roles, so likely not an admin"
    assert report.first_sync.startswith("0 tickets updated since 2016-04-21")
    assert report.warnings == [
        "Rachel <rachel@freshdesk.com> sees only the tickets of the agent's groups (group "
        "access): tickets it cannot see are not monitored; use the API key of an agent with "
        "global access"
    ]


def test_probe_names_a_plain_agent_role(fake: FakeFreshdesk) -> None:
    fake.agent["role_ids"] = [1]
    assert dict(source(fake).probe(NOW).details)["role"] == "Agent (not an admin)"


@pytest.mark.parametrize("key", ["api_key", "api_key_file"])
def test_probe_of_a_refused_key_names_the_keys_to_fix(
    fake: FakeFreshdesk, tmp_path: Path, key: str
) -> None:
    fake.key = "the-right-key"
    overrides: dict[str, Any] = {}
    if key == "api_key_file":
        secret = tmp_path / "freshdesk-key"
        secret.write_text(API_KEY + "\n", encoding="utf-8")
        overrides = {"api_key": None, "api_key_file": secret}
    with pytest.raises(SourceAuthError) as failed:
        source(fake, **overrides).probe(NOW)
    assert str(failed.value) == (
        f"source 'helpdesk': {fake.api.url} rejected the credentials (HTTP 401); check domain "
        f"and {key} (the API key of a Freshdesk agent who can view every ticket to monitor)"
    )
    assert API_KEY not in str(failed.value)
    assert fake.requests() == [(AGENT_ME, {})]


def test_probe_names_the_key_file(fake: FakeFreshdesk, tmp_path: Path) -> None:
    secret = tmp_path / "freshdesk-key"
    secret.write_text(API_KEY, encoding="utf-8")
    report = source(fake, api_key=None, api_key_file=secret).probe(NOW)
    assert dict(report.details)["signed in with"] == f"API key from {secret}"
    assert API_KEY not in repr(report)
