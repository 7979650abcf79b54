"""The Microsoft Graph source against a fake Graph that checks every request as documented."""

from __future__ import annotations

import base64
import copy
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest, RecordingSink
from servers.fake_graph import FakeGraph, load

from monitor.app import build_sources
from monitor.config.loader import load_config
from monitor.config.models import GraphSourceConfig
from monitor.errors import SourceAuthError, SourceError
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import FolderContext, event_from_headers
from monitor.model import Direction, FolderCursor, FolderRole, MailLocation, MessageEvent
from monitor.polling import poll_source
from monitor.sla.clocks import ClockMessage, StopReason, segment_clocks
from monitor.sources import graph as graph_module
from monitor.sources.graph import SELECT, DeltaState, GraphSource, graph_uid, header_block
from monitor.store import IngestResult, SourceSink, Store

NOW = datetime(2024, 2, 8, 12, 0, tzinfo=UTC)
SHARED = "support@acme.example"
ALICE = "alice@acme.example"
TOKEN = "graph-token"  # the one FakeGraph accepts
TEAM = MailboxIdentity(team_addresses=frozenset({SHARED}), team_domains=frozenset({"acme.example"}))
SISIMAI = Path(__file__).resolve().parents[1] / "data" / "sisimai" / "maildir"
HINT = "grant the app Mail.Read (the test's hint)"


@dataclass
class Tokens:
    """A token provider of the test's own: ``current`` until asked for a fresh one."""

    current: str = TOKEN
    fresh_value: str = TOKEN
    calls: list[bool] = field(default_factory=list)
    kind: str = "microsoft"

    def token(self, *, fresh: bool = False) -> str:
        self.calls.append(fresh)
        if fresh:
            self.current = self.fresh_value
        return self.current

    def refused_hint(self, mailbox: str) -> str:
        return f"{HINT} for {mailbox}"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    for mailbox in (SHARED, ALICE):
        fake.add_mailbox(mailbox)
    yield fake
    fake.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def config(graph: FakeGraph, **overrides: Any) -> GraphSourceConfig:
    values: dict[str, Any] = {
        "type": "graph",
        "name": "support",
        "mailbox": SHARED,
        "auth": {"type": "microsoft", "tenant_id": "t", "client_id": "c", "client_secret": "s"},
        "base_url": graph.base,
        "page_size": 2,
    }
    values.update(overrides)
    return GraphSourceConfig.model_validate(values)


def source(
    graph: FakeGraph,
    tokens: Tokens | None = None,
    sleeps: list[float] | None = None,
    **overrides: Any,
) -> GraphSource:
    waits = sleeps if sleeps is not None else []
    return GraphSource(
        config(graph, **overrides),
        TEAM,
        tokens=tokens or Tokens(),
        sleep=waits.append,
        clock=lambda: NOW,
    )


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def address(name: str, mailbox: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": mailbox}}


TEMPLATE = load("response-messages-delta.json")["value"][0]  # a real Inbox message's JSON


def message(
    n: int,
    *,
    minutes_ago: int,
    sender: tuple[str, str] | None = None,
    to: tuple[str, str] = ("Support", SHARED),
    subject: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    conversation: str | None = None,
    headers: bool = True,
    sent_as: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A message as Graph holds it: the recorded message with this one's values."""
    name, mailbox = sender or (f"Customer {n}", f"c{n}@customer.example")
    received = NOW - timedelta(minutes=minutes_ago)
    mid = message_id or f"q{n}@customer.example"
    subject = subject or f"Question {n}"
    body = copy.deepcopy(TEMPLATE)
    body.update(
        id=f"AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AbYnJVp{n:04d}AAA=",
        receivedDateTime=iso(received),
        sentDateTime=iso(received - timedelta(seconds=5)),
        internetMessageId=f"<{mid}>",
        subject=subject,
        conversationId=conversation or f"AAQkADconv{n:04d}=",
        toRecipients=[address(*to)],
    )
    body["from"] = address(*(sent_as or (name, mailbox)))
    body["sender"] = address(name, mailbox)
    if headers:
        fields = [
            ("Received", "from mail.customer.example by EX1.outlook.com; Thu, 8 Feb 2024"),
            ("From", f'"{name}" <{mailbox}>'),
            ("To", f"{to[0]} <{to[1]}>"),
            ("Subject", subject),
            ("Date", received.strftime("%a, %d %b %Y %H:%M:%S +0000")),
            ("Message-ID", f"<{mid}>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
        if in_reply_to:
            fields += [("In-Reply-To", f"<{in_reply_to}>"), ("References", f"<{in_reply_to}>")]
        body["internetMessageHeaders"] = [{"name": k, "value": v} for k, v in fields]
    return body


def stored(store: Store) -> list[tuple[str, str, str, str | None]]:
    rows = store.conn.execute(
        "SELECT identity, direction, folder, removed_at FROM messages ORDER BY timestamp, identity"
    ).fetchall()
    return [(r[0], r[1], r[2], None if r[3] is None else "removed") for r in rows]


def poll(src: GraphSource, store: Store, now: datetime = NOW) -> Any:
    return src.poll(SourceSink(store, src.name), now)


def first_sync(graph: FakeGraph, count: int = 5) -> None:
    for n in range(1, count + 1):
        graph.deliver(SHARED, "inbox", message(n, minutes_ago=100 - n))


# --- reading -----------------------------------------------------------------------------------


def test_first_sync_reads_every_page_and_stores_each_with_its_link(
    graph: FakeGraph, store: Store
) -> None:
    """Five questions over three pages of two, and a Sent Items reply without headers: each page
    is stored with the link after it, the last with the deltaLink; the reply joins its question
    by conversationId; the first request carries the documented query and Prefer headers."""
    first_sync(graph)
    reply = message(
        90, minutes_ago=10, sender=("Support", SHARED), to=("Customer 1", "c1@customer.example"),
        subject="RE: Question 1", message_id="r1@acme.example", conversation="AAQkADconv0001=",
        headers=False,
    )  # fmt: skip
    graph.deliver(SHARED, "sentitems", reply)
    src = source(graph)
    sink = RecordingSink(store, "support")
    report = src.poll(sink, NOW)

    assert (report.new, report.duplicates, report.folders) == (6, 0, {"inbox": 5, "sentitems": 1})
    assert [len(ids) for ids, _ in sink.batches] == [2, 2, 1, 1]
    states = [DeltaState.load(checkpoint[1]) for _, checkpoint in sink.batches if checkpoint]
    assert [(s.link is not None and "$skiptoken=" in s.link, s.round_done) for s in states[:3]] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    saved = DeltaState.load(SourceSink(store, "support").checkpoint("delta:inbox"))
    assert saved is not None
    assert (saved.round_done, saved.since, saved.generation) == (True, None, 1)
    assert "$deltatoken=" in (saved.link or "")

    first, second = graph.delta_requests()[:2]
    assert first.path == f"/v1.0/users/{SHARED}/mailFolders/inbox/messages/delta"
    assert first.query == {
        "$select": [",".join(SELECT)],
        "$filter": [f"receivedDateTime ge {iso(NOW - timedelta(days=30))}"],
    }
    assert first.headers["prefer"] == 'odata.maxpagesize=2, IdType="ImmutableId"'
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert second.path == f"/v1.0/users('{SHARED}')/mailFolders('inbox')/messages/delta"
    assert list(second.query) == ["$skiptoken"]
    assert report.round_trips == 4  # three Inbox pages, one Sent Items page

    cid = store.conversation_for_message(None, "q1@customer.example")
    assert cid == store.conversation_for_message(None, "r1@acme.example")
    assert [(m.direction, m.reason) for m in store.messages(cid)] == [
        (Direction.INBOUND, "customer message"),
        (Direction.OUTBOUND, "in Sent folder"),
    ]


def test_second_poll_reads_only_new_mail_from_the_delta_link(
    graph: FakeGraph, store: Store
) -> None:
    """The next poll starts from each folder's deltaLink and stores only what arrived; a
    message marked read comes back with only its flag and is not stored again."""
    first_sync(graph)
    src = source(graph)
    poll(src, store)
    before = len(graph.requests)
    graph.deliver(SHARED, "inbox", message(6, minutes_ago=1))
    graph.mark_read(SHARED, "inbox", message(2, minutes_ago=0)["id"])
    report = poll(src, store, NOW + timedelta(minutes=1))
    idle = poll(src, store, NOW + timedelta(minutes=2))

    assert (report.new, report.duplicates, report.removed) == (1, 0, 0)
    assert (idle.new, idle.round_trips) == (0, 2)  # one request per folder
    again = graph.requests[before:]
    assert [list(r.query) for r in again] == [["$deltatoken"]] * 4
    assert len(stored(store)) == 6


def test_a_removed_message_closes_its_waiting_clock(graph: FakeGraph, store: Store) -> None:
    """A question moved out of the Inbox without a reply (an @removed entry) stops its clock as
    closed, as an IMAP expunge does; the other questions keep waiting."""
    first_sync(graph, 3)
    src = source(graph)
    poll(src, store)
    graph.remove(SHARED, "inbox", message(1, minutes_ago=0)["id"], reason="changed")
    later = NOW + timedelta(minutes=1)
    report = poll(src, store, later)

    assert report.removed == 1
    cid = store.conversation_for_message(None, "q1@customer.example")
    clocks = segment_clocks(
        [
            ClockMessage(timestamp=m.timestamp, direction=m.direction, removed_at=m.removed_at)
            for m in store.messages(cid)
        ]
    )
    assert [(c.stop_reason, c.stopped_at) for c in clocks] == [(StopReason.CLOSED, later)]
    assert [s[3] for s in stored(store)] == ["removed", None, None]


def test_the_documented_delta_rounds_are_followed(store: Store) -> None:
    """Microsoft's own two-round example, served as published: the nextLinks are followed, the
    deltaLink is kept, entries carrying no message (only subject and sender were selected) are
    not stored, and the next round's @removed entry forgets the message with that id."""
    api = FakeApi().start()
    base = f"{api.url}/v1.0"
    try:
        docs = "https://graph.microsoft.com/v1.0"
        names = ("round1_page1_nextLink", "round1_page2_nextLink", "round1_page3_deltaLink")
        pages = [
            json.loads(
                json.dumps(load(f"concepts_delta-query-messages__{n}.json")).replace(
                    docs, f"{api.url}/v1.0"
                )
            )
            for n in (*names, "round2_removed_and_updated")
        ]
        by_token = {
            "GwcBoTmPuoTQWfcsAbkYM": pages[1],
            "GwcBoTmPKILK4jLH7mAd1lLU": pages[2],
            "GwcBoTmPuoGNlgXgF1nyUNMXY": pages[3],
        }

        def follow(request: FakeRequest) -> Answer:
            token = request.param("$skiptoken") or request.param("$deltatoken")
            return 200, {}, by_token[token or ""]

        api.route(
            f"/v1.0/users/{SHARED}/mailFolders/inbox/messages/delta", lambda r: (200, {}, pages[0])
        )
        api.route("/v1.0/me/mailfolders('AQMkADNkNAAAgEMAAAA')/messages/delta", follow)
        removed_id = pages[3]["value"][0]["id"]
        location = MailLocation(folder="inbox", uidvalidity=1, uid=graph_uid(removed_id))
        sink = SourceSink(store, "support")
        sink.accept([customer_event(location)], None, NOW)
        cfg = {"type": "graph", "name": "support", "mailbox": SHARED, "base_url": base}
        auth = {"type": "microsoft", "tenant_id": "t", "client_id": "c", "client_secret": "s"}
        src = GraphSource(
            GraphSourceConfig.model_validate({**cfg, "auth": auth, "sent_folders": []}),
            TEAM,
            tokens=Tokens(),
        )
        first = src.poll(sink, NOW)
        second = src.poll(sink, NOW + timedelta(minutes=1))
    finally:
        api.stop()
    assert [r.query for r in api.requests][1:] == [
        {"$skiptoken": ["GwcBoTmPuoTQWfcsAbkYM"]},
        {"$skiptoken": ["GwcBoTmPKILK4jLH7mAd1lLU"]},
        {"$deltatoken": ["GwcBoTmPuoGNlgXgF1nyUNMXY"]},
    ]
    assert (first.new, first.removed, second.new, second.removed) == (0, 0, 0, 1)
    state = DeltaState.load(sink.checkpoint("delta:inbox"))
    assert state is not None
    folder = "mailfolders('AQMkADNkNAAAgEMAAAA')"
    assert state.link == f"{base}/me/{folder}/messages/delta?$deltatoken=GwcBoTmPuoGNlgXgF1nyUNMXY"


def customer_event(location: MailLocation) -> MessageEvent:
    raw = (
        b"From: Dana <dana@customer.example>\r\nSubject: Holiday\r\n"
        b"Message-ID: <d1@customer.example>\r\n"
    )
    context = FolderContext(source="support", folder="inbox", role=FolderRole.INBOX, identity=TEAM)
    return event_from_headers(context, raw, NOW - timedelta(hours=1), location=location)


# --- limits and failures -----------------------------------------------------------------------


def test_throttling_is_waited_for_as_retry_after_says(graph: FakeGraph, store: Store) -> None:
    """A 429 with Graph's fractional Retry-After, then a 503 with one, are each waited for
    exactly, and the poll then reads everything."""
    first_sync(graph, 3)
    body = load("concepts_throttling__429_TooManyRequests.json")
    graph.fail_next(429, {"Retry-After": "2.128"}, body)
    graph.fail_next(
        503,
        {"Retry-After": "7"},
        {"error": {"code": "serviceNotAvailable", "message": "Try later"}},
    )
    sleeps: list[float] = []
    report = source(graph, sleeps=sleeps).poll(SourceSink(store, "support"), NOW)
    assert sleeps == [2.128, 7.0]
    assert report.new == 3


def test_a_long_throttle_ends_the_poll_and_the_next_continues(
    graph: FakeGraph, store: Store
) -> None:
    """A Retry-After past the bound ends the poll with an error naming the wait; what was stored
    stays, and the next poll continues from the stored page without duplicates."""
    first_sync(graph)
    src = source(graph)
    throttled = load("concepts_throttling__429_TooManyRequests.json")
    graph.fail_next(429, {"Retry-After": "3600"}, throttled, when=lambda r: "$skiptoken" in r.query)
    with pytest.raises(SourceError) as failed:
        poll(src, store)
    assert failed.value.detail == (
        'Microsoft Graph kept answering HTTP 429 TooManyRequests "Please retry again later." for '
        f"folder 'inbox' of {SHARED} and asks to wait 3600s; this poll stops and the next one "
        "continues where it stopped"
    )
    assert len(stored(store)) == 2
    report = poll(src, store, NOW + timedelta(minutes=1))
    assert (report.new, report.duplicates) == (3, 0)


def test_an_expired_delta_token_reads_the_folder_again_without_duplicates(
    graph: FakeGraph, store: Store
) -> None:
    """410 Gone (syncStateNotFound) reads the folder again with the since filter: nothing is
    stored twice, and mail that vanished meanwhile is marked removed once the read is whole."""
    first_sync(graph, 4)
    src = source(graph)
    poll(src, store)
    graph.expire_tokens()
    for n in (1, 2):  # gone while the tokens were unusable: no @removed will ever say so
        graph.folder(SHARED, "inbox").messages.pop(message(n, minutes_ago=0)["id"])
    graph.deliver(SHARED, "inbox", message(5, minutes_ago=1))
    before = len(graph.requests)
    report = poll(src, store, NOW + timedelta(minutes=1))

    assert (report.new, report.duplicates, report.removed) == (1, 2, 2)
    inbox = [r for r in graph.requests[before:] if "/mailFolders" in r.path and "inbox" in r.path]
    assert list(inbox[0].query) == ["$deltatoken"]
    assert sorted(inbox[1].query) == ["$filter", "$select"]
    assert [s[0] for s in stored(store) if s[3]] == ["q1@customer.example", "q2@customer.example"]
    places = store.conn.execute("SELECT DISTINCT uidvalidity FROM locations WHERE folder = 'inbox'")
    assert [v for (v,) in places] == [2]
    saved = DeltaState.load(SourceSink(store, "support").checkpoint("delta:inbox"))
    assert saved is not None
    assert (saved.generation, saved.since, saved.round_done) == (2, None, True)


def test_a_crash_between_pages_resumes_from_the_stored_page(graph: FakeGraph, store: Store) -> None:
    """The store failing after the first page ends the poll; the next poll asks for the stored
    nextLink and nothing is stored twice."""
    first_sync(graph)

    class FailingSink(SourceSink):
        def __init__(self) -> None:
            super().__init__(store, "support")
            self.calls = 0

        def accept(
            self,
            events: Sequence[MessageEvent],
            cursor: FolderCursor | None,
            now: datetime,
            *,
            checkpoint: tuple[str, str] | None = None,
        ) -> IngestResult:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("disk full")
            return super().accept(events, cursor, now, checkpoint=checkpoint)

    src = source(graph)
    with pytest.raises(RuntimeError, match="disk full"):
        src.poll(FailingSink(), NOW)
    stored_link = DeltaState.load(SourceSink(store, "support").checkpoint("delta:inbox"))
    assert stored_link is not None
    before = len(graph.requests)
    report = poll(src, store, NOW + timedelta(minutes=1))
    assert graph.requests[before].query == parse_qs(urlsplit(stored_link.link or "").query)
    assert (report.new, report.duplicates) == (3, 0)
    assert len(stored(store)) == 5


def test_a_refused_token_is_replaced_by_a_fresh_one_once(graph: FakeGraph, store: Store) -> None:
    """A 401 for a token Graph no longer takes gets one fresh token, and the poll goes on."""
    first_sync(graph, 1)
    tokens = Tokens(current="expired-token")
    report = source(graph, tokens).poll(SourceSink(store, "support"), NOW)
    assert report.new == 1
    assert tokens.calls[:3] == [False, True, False]
    assert True not in tokens.calls[2:]


@pytest.mark.parametrize(
    ("refused", "status"),
    [
        pytest.param(
            "token",
            'HTTP 401 InvalidAuthenticationToken "Access token validation failure."',
            id="401_twice",
        ),
        pytest.param(
            "mailbox",
            'HTTP 403 ErrorAccessDenied "Access is denied. Check credentials and try again."',
            id="403_no_permission",
        ),
    ],
)
def test_a_refusal_that_a_fresh_token_does_not_cure_is_an_auth_error(
    graph: FakeGraph, store: Store, refused: str, status: str
) -> None:
    """Refused again with a fresh token: a SourceAuthError with what the admin must change."""
    bad = refused == "token"
    tokens = Tokens(current="bad" if bad else TOKEN, fresh_value="still-bad" if bad else TOKEN)
    if refused == "mailbox":
        graph.forbidden.add(SHARED)
    with pytest.raises(SourceAuthError) as failed:
        poll(source(graph, tokens), store)
    assert failed.value.detail == (
        f"Microsoft Graph refused access to folder 'inbox' of {SHARED} ({status}) with a fresh "
        f"token; {HINT} for {SHARED}"
    )
    assert tokens.calls == [False, True]


def test_an_unknown_mailbox_names_the_key_to_fix(graph: FakeGraph, store: Store) -> None:
    """Graph's 404 for a user it does not know names `mailbox`."""
    with pytest.raises(SourceError) as failed:
        poll(source(graph, mailbox="nobody@acme.example"), store)
    assert failed.value.detail == (
        "Microsoft Graph does not know the mailbox 'nobody@acme.example' (HTTP 404 "
        "ErrorInvalidUser \"The requested user 'nobody@acme.example' is invalid.\"); check "
        "`mailbox`: the address or user principal name of a mailbox in Exchange Online"
    )


def test_requests_past_the_mailbox_budget_end_the_poll(
    graph: FakeGraph, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the request budget for one mailbox in 10 minutes the poll stops; 10 minutes later
    the next poll continues from the stored page."""
    monkeypatch.setattr(graph_module, "REQUEST_BUDGET", 2)
    first_sync(graph)
    clock = [0.0]
    src = GraphSource(config(graph), TEAM, tokens=Tokens(), monotonic=lambda: clock[0])
    with pytest.raises(SourceError) as failed:
        poll(src, store)
    assert failed.value.detail == (
        f"2 requests to {SHARED} in the last 10 minutes: Microsoft Graph allows an app 10,000 "
        "per mailbox, so this poll stops here and the next one continues where it stopped"
    )
    assert len(stored(store)) == 4
    clock[0] = 600.0
    monkeypatch.setattr(graph_module, "REQUEST_BUDGET", 100)
    assert poll(src, store).new == 1


# --- folders and agents' Sent Items -------------------------------------------------------------


def test_folders_by_display_name_and_path_are_found(graph: FakeGraph, store: Store) -> None:
    """A top-level folder by its display name and a subfolder written Inbox/Orders are looked up
    once; an unknown name lists what is there."""
    graph.add_folder(SHARED, "Orders", parent="inbox")
    graph.deliver(SHARED, "Orders", message(1, minutes_ago=5))
    graph.deliver(SHARED, "Archive", message(2, minutes_ago=5))
    src = source(graph, folders=["Inbox/Orders", "Archive"], sent_folders=[])
    report = poll(src, store)
    poll(src, store)
    assert report.folders == {"Inbox/Orders": 1, "Archive": 1}
    listings = [r for r in graph.requests if not r.path.endswith("/delta")]
    assert len(listings) == 1  # Inbox is well-known; its children are listed once
    assert listings[0].query == {"$select": ["id,displayName"], "$top": ["100"]}
    with pytest.raises(SourceError) as failed:
        poll(source(graph, folders=["Support"]), store)
    assert failed.value.detail == (
        f"folder 'Support' is not in {SHARED} (no 'Support' among Archive, Conversation History, "
        "Deleted Items, Drafts, Inbox, Junk Email, Outbox, Sent Items); fix `folders` or "
        "`sent_folders` in the config (well-known names such as inbox, sentitems and archive "
        "work in any language; a subfolder is written Inbox/Orders)"
    )


def test_agents_sent_items_keep_only_replies_of_the_shared_mailbox(
    graph: FakeGraph, store: Store
) -> None:
    """From Alice's own Sent Items: a reply sent as the shared mailbox (Outlook keeps the
    question's conversationId, and a Sent copy has no headers), a new message sent as it, a
    reply from her own address in a conversation of it, and one naming a stored question in
    In-Reply-To under another conversationId are kept, and the replies stop their clocks; her
    mail to a friend is never stored."""
    for n in (1, 2, 3):
        graph.deliver(SHARED, "inbox", message(n, minutes_ago=60))
    agent = ("Alice", ALICE)
    as_shared = {"sender": agent, "sent_as": ("Support", SHARED), "headers": False}
    replies = [
        message(11, minutes_ago=30, subject="RE: Question 1", message_id="a1@acme.example",
                to=("C1", "c1@customer.example"), conversation="AAQkADconv0001=", **as_shared),
        message(15, minutes_ago=30, subject="Your order", message_id="a5@acme.example",
                to=("New", "new@customer.example"), conversation="AAQkADalice05=", **as_shared),
        message(12, minutes_ago=30, sender=agent, subject="RE: Question 2",
                message_id="a2@acme.example", to=("C2", "c2@customer.example"),
                conversation="AAQkADconv0002="),
        message(13, minutes_ago=30, sender=agent, subject="RE: Question 3",
                message_id="a3@acme.example", to=("C3", "c3@customer.example"),
                in_reply_to="q3@customer.example", conversation="AAQkADalice03="),
        message(14, minutes_ago=30, sender=agent, subject="Lunch?", message_id="a4@acme.example",
                to=("Friend", "friend@example.org"), conversation="AAQkADalice04="),
    ]  # fmt: skip
    for reply in replies:
        graph.deliver(ALICE, "sentitems", reply)
    outcome = poll_source(source(graph, reply_mailboxes=[ALICE], page_size=10), store, NOW)
    report = outcome.report  # through the daemon's guarded sink
    assert report is not None

    assert report.folders == {"inbox": 3, "sentitems": 0, f"{ALICE}/sentitems": 4}
    identities = {s[0] for s in stored(store)}
    assert "a4@acme.example" not in identities
    assert "a5@acme.example" in identities
    assert not store.conn.execute("SELECT 1 FROM messages WHERE subject = 'Lunch?'").fetchall()
    for n in (1, 2, 3):
        cid = store.conversation_for_message(None, f"q{n}@customer.example")
        assert [m.direction for m in store.messages(cid)] == [Direction.INBOUND, Direction.OUTBOUND]
    requested = [r.path for r in graph.delta_requests()]
    assert f"/v1.0/users/{ALICE}/mailFolders/sentitems/messages/delta" in requested


# --- classification ----------------------------------------------------------------------------


def graph_headers(raw: bytes) -> list[dict[str, str]]:
    """A message's header section as Graph lists it: every field, unfolded, decoded."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    found: list[list[bytes]] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and found:
            found[-1][1] += line
        elif b":" in line and not line.startswith(b"From "):
            name, _, value = line.partition(b":")
            found.append([name, value.lstrip()])

    def text(value: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("cp1252", "replace")

    return [{"name": text(name).strip(), "value": text(value)} for name, value in found]


def test_classification_equals_imaps_for_the_same_headers(graph: FakeGraph, store: Store) -> None:
    """Every message of the sisimai corpus (bounces, auto-replies, ordinary mail), served with
    its headers as internetMessageHeaders, becomes exactly the event IMAP's path makes of the
    same header block."""
    files = sorted((SISIMAI / "bsd").glob("*.eml")) + sorted((SISIMAI / "not").glob("*.eml"))
    expected: dict[int, MessageEvent] = {}
    context = FolderContext(source="support", folder="inbox", role=FolderRole.INBOX, identity=TEAM)
    for n, path in enumerate(files):
        raw = path.read_bytes()
        received = NOW - timedelta(minutes=n + 1)
        body = {
            "id": f"AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0Asisimai{n:04d}AAA=",
            "receivedDateTime": iso(received),
            "conversationId": f"AAQkADsisimai{n:04d}=",
            "internetMessageHeaders": graph_headers(raw),
        }
        graph.deliver(SHARED, "inbox", body)
        uid = graph_uid(body["id"])
        expected[uid] = event_from_headers(
            context,
            raw,
            received,
            location=MailLocation(folder="inbox", uidvalidity=1, uid=uid),
            gm_thread_id=body["conversationId"],
        )
    seen: dict[int, MessageEvent] = {}

    class Capture(SourceSink):
        def accept(self, events: Sequence[MessageEvent], *args: Any, **kwargs: Any) -> IngestResult:
            seen.update((e.location.uid, e) for e in events if e.location)
            return super().accept(events, *args, **kwargs)

    source(graph, page_size=100, sent_folders=[]).poll(Capture(store, "support"), NOW)
    assert len(seen) == len(files) > 600
    assert [uid for uid in expected if seen[uid] != expected[uid]] == []


def test_headers_are_written_from_the_json_when_graph_has_none() -> None:
    """A Sent Items copy without internetMessageHeaders gets From, Sender, To, Subject, Date and
    Message-ID from its properties; names with commas are quoted."""
    body = message(1, minutes_ago=0, sender=("Moten, David", "david@amsa.example"),
                   sent_as=("Support", SHARED), headers=False)  # fmt: skip
    assert header_block(body).decode().split("\r\n") == [
        "From: Support <support@acme.example>",
        'Sender: "Moten, David" <david@amsa.example>',
        "To: Support <support@acme.example>",
        "Subject: Question 1",
        "Date: Thu, 08 Feb 2024 11:59:55 +0000",
        "Message-ID: <q1@customer.example>",
        "",
    ]


# --- the fake itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "prefer", "answer"),
    [
        pytest.param("$search=%22refund%22", True, (400, "BadRequest"), id="unknown_option"),
        pytest.param(
            "$select=subject,threadId",
            True,
            (400, "RequestBroker--ParseUri"),
            id="no_such_property",
        ),
        pytest.param(
            "$filter=subject%20eq%20%27x%27",
            True,
            (400, "ErrorInvalidUrlQueryFilter"),
            id="filter_delta_does_not_take",
        ),
        pytest.param("$select=subject", False, (400, "FakeGraphPreferRequired"), id="no_prefer"),
    ],
)
def test_the_fake_refuses_what_graph_documents_as_wrong(
    graph: FakeGraph, query: str, prefer: bool, answer: tuple[int, str]
) -> None:
    """The fake checks requests against the delta documentation, so the source cannot pass by
    sending something real Graph would refuse."""
    url = f"{graph.base}/users/{SHARED}/mailFolders/inbox/messages/delta?{query}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if prefer:
        headers["Prefer"] = 'odata.maxpagesize=5, IdType="ImmutableId"'
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)
    body = json.loads(refused.value.read())
    assert (refused.value.code, body["error"]["code"]) == answer


def test_a_graph_source_in_the_config_is_built(tmp_path: Path) -> None:
    """``type: graph`` in replyclock.yaml becomes a GraphSource with the team as its identity,
    tokens for Microsoft Graph, and the shared mailbox's folders then the agents'."""
    path = tmp_path / "replyclock.yaml"
    path.write_text(
        "team:\n  domains: [acme.example]\n"
        "sources:\n"
        "  - type: graph\n    name: support\n    mailbox: Support@acme.example\n"
        "    reply_mailboxes: [alice@acme.example]\n"
        "    auth: {type: microsoft, tenant_id: t, client_id: c, client_secret: s}\n",
        encoding="utf-8",
    )
    (built,) = build_sources(load_config(path))
    assert isinstance(built, GraphSource)
    assert built.identity.team_domains == frozenset({"acme.example"})
    assert built.tokens.kind == "microsoft"
    assert [(f.mailbox, f.name, f.store_folder) for f in built.folders()] == [
        (SHARED, "inbox", "inbox"),
        (SHARED, "sentitems", "sentitems"),
        (ALICE, "sentitems", f"{ALICE}/sentitems"),
    ]


# --- check --connect -------------------------------------------------------------------------


def jwt(claims: dict[str, Any]) -> str:
    """A token shaped like Entra's (header.payload.signature), for the probe to read roles."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_probe_shows_permissions_folders_counts_and_missing_replies(graph: FakeGraph) -> None:
    """check --connect on Graph: the roles in the token, the folders with their counts and
    which are read, the newest mail, the first sync's size; and, with customer mail this
    week and nothing in Sent Items, the Exchange fix for replies saved elsewhere."""
    token = jwt({"roles": ["Mail.Read"], "aud": "https://graph.microsoft.com"})
    graph.tokens.add(token)
    for n in (1, 2, 3):
        graph.deliver(SHARED, "inbox", message(n, minutes_ago=60 * 24 * 3 * n))
    graph.deliver(SHARED, "inbox", message(4, minutes_ago=60 * 24 * 40))  # before `since`
    report = source(graph, Tokens(current=token)).probe(NOW)
    assert (report.kind, report.account, report.platform) == ("graph", SHARED, "exchange")
    assert ("permissions", "Mail.Read") in report.details
    rows = {f.name: (f.role, f.messages) for f in report.folders}
    assert rows["Inbox"] == ("watched", 4)
    assert rows["Sent Items"] == ("sent", 0)
    assert rows["Deleted Items"] == ("", 0)
    assert report.first_sync.startswith("3 messages since ")
    assert report.newest_inbound == NOW - timedelta(days=3)
    assert report.newest_outbound is None
    assert (report.recent_inbound, report.recent_outbound) == (2, 0)
    (warning,) = report.warnings
    assert warning.startswith("2 customer messages in the last 7 days but no team message")
    assert f"Set-Mailbox -Identity {SHARED} -MessageCopyForSentAsEnabled $true" in warning
    assert all(r.method == "GET" for r in graph.requests)


def test_probe_lists_agents_sent_items_and_takes_their_replies_into_account(
    graph: FakeGraph,
) -> None:
    graph.deliver(SHARED, "inbox", message(1, minutes_ago=90))
    graph.deliver(ALICE, "sentitems", message(2, minutes_ago=30, sender=("Alice", ALICE)))
    report = source(graph, reply_mailboxes=[ALICE]).probe(NOW)
    agent = next(f for f in report.folders if f.role == "agent sent")
    assert (agent.name, agent.messages) == (f"{ALICE}/sentitems", 1)
    assert ("permissions", "not readable from the token") in report.details
    assert report.warnings == []


def test_a_customers_thank_you_after_our_reply_is_a_closing_message(
    graph: FakeGraph, store: Store
) -> None:
    """bodyPreview tells a closing message: only the decision and its words are kept."""
    thanks = message(2, minutes_ago=30, in_reply_to="r1@acme.example", subject="Re: Question 1")
    thanks.update(bodyPreview="Thanks, that fixed it!", hasAttachments=False)
    still = message(3, minutes_ago=20, in_reply_to="r1@acme.example", subject="Re: Question 1")
    still.update(bodyPreview="Thanks, but it still fails. What now?", hasAttachments=False)
    attached = message(4, minutes_ago=10, in_reply_to="r1@acme.example", subject="Re: Question 1")
    attached.update(bodyPreview="Thanks!", hasAttachments=True)
    opening = message(5, minutes_ago=5)  # names no earlier mail: never a closer
    opening.update(bodyPreview="Thanks!", hasAttachments=False)
    for item in (thanks, still, attached, opening):
        graph.deliver(SHARED, "inbox", item)
    poll(source(graph), store)
    closing = dict(store.conn.execute("SELECT identity, closing FROM messages"))
    assert closing == {
        "q2@customer.example": "Thanks, that fixed it!",
        "q3@customer.example": None,
        "q4@customer.example": None,
        "q5@customer.example": None,
    }
    select = graph.delta_requests()[0].param("$select") or ""
    assert {"bodyPreview", "hasAttachments"} <= set(select.split(","))
    assert "body" not in select.split(",")
