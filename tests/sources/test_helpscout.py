"""The Help Scout source against a fake Mailbox API 2.0: token, threads, checkpoints, failures."""

from __future__ import annotations

import copy
import json
import logging
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest
from test_engine import rulebook

from monitor.config.models import HelpScoutSourceConfig
from monitor.engine import Engine, clock_messages
from monitor.errors import SourceAuthError, SourceError
from monitor.explain import explain
from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import ClockKind, StatusRules, StopReason
from monitor.sla.evaluate import ClockState, ConversationVerdict, evaluate
from monitor.sla.policy import Policy
from monitor.sources.helpscout import (
    HelpScoutSource,
    checkpoint_key,
    classify_thread,
    conversation_events,
    thread_status,
)
from monitor.store import SourceSink, Store

DATA = Path(__file__).resolve().parents[1] / "data" / "helpscout"
NOW = datetime(2024, 6, 3, 16, 0, tzinfo=UTC)
APP_ID = "a1b2c3d4e5"
SECRET = "s3cr3t-app-secret"
TOKEN = json.loads((DATA / "token.json").read_text())["access_token"]
TOKEN_PATH = "/v2/oauth2/token"
LIST_PATH = "/v2/conversations"
ME_PATH = "/v2/users/me"
MAILBOXES_PATH = "/v2/mailboxes"
A, B, C, D = 2391938111, 2391938112, 2391938113, 2391938114
JACK_EMAIL = "jack.sprout@gmail.com"


def load(name: str) -> list[dict[str, Any]]:
    """The conversations of a fixture answer."""
    return json.loads((DATA / name).read_text())["_embedded"]["conversations"]


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def modified(conversation: dict[str, Any]) -> str:
    """The fake's notion of modifiedAt: the latest time the conversation shows."""
    threads = conversation.get("_embedded", {}).get("threads", [])
    times = [conversation.get(k) for k in ("createdAt", "closedAt", "userUpdatedAt")]
    times += [t["createdAt"] for t in threads]
    return max(t for t in times if t)


# GET /v2/users/me as "Get Resource Owner" documents it, for the fixtures' Help Scout user.
ME = {
    "id": 4,
    "firstName": "Jack",
    "lastName": "Sprout",
    "email": JACK_EMAIL,
    "role": "admin",
    "timezone": "America/New_York",
    "createdAt": "2011-04-01T03:18:33Z",
    "updatedAt": "2012-07-24T20:18:33Z",
    "type": "user",
    "mention": "jack",
    "initials": "JS",
    "_links": {"self": {"href": "..."}},
}
# The fixtures' two mailboxes, in the shape of "List Mailboxes".
MAILBOXES = [
    {"id": 85, "name": "Support", "slug": "3f8ac1", "email": "support@mywork.com"},
    {"id": 86, "name": "Billing", "slug": "8d02e4", "email": "billing@mywork.com"},
]
RATE_LIMIT_HEADERS = {"X-RateLimit-Limit-Minute": "400", "X-RateLimit-Remaining-Minute": "396"}


class FakeHelpScout:
    """The Mailbox API's token endpoint and conversation list, over one list of conversations;
    users/me (with the rate-limit headers) and the mailbox list, one mailbox a page."""

    def __init__(self, conversations: list[dict[str, Any]], page_size: int = 2) -> None:
        self.api = FakeApi()
        self.conversations = conversations
        self.page_size = page_size
        self.tokens = 0
        self.secrets = {SECRET}
        self.api.check_auth = lambda r: (
            r.path == TOKEN_PATH or r.headers.get("authorization") == f"Bearer {TOKEN}"
        )
        self.api.route(TOKEN_PATH, self.token)
        self.api.route(LIST_PATH, self.list)
        self.api.route(ME_PATH, lambda r: (200, dict(RATE_LIMIT_HEADERS), ME))
        self.api.route(MAILBOXES_PATH, self.mailboxes)

    def mailboxes(self, request: FakeRequest) -> Answer:
        page = int(request.param("page", "1") or 1)
        body = {
            "_embedded": {"mailboxes": MAILBOXES[page - 1 : page]},
            "page": {"size": 1, "totalElements": 2, "totalPages": 2, "number": page},
        }
        return 200, dict(RATE_LIMIT_HEADERS), body

    def token(self, request: FakeRequest) -> Answer:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        expected = {"grant_type": "client_credentials", "client_id": APP_ID}
        secret = form.pop("client_secret", None)
        if request.method != "POST" or form != expected or secret not in self.secrets:
            return 401, {}, {"error": "invalid_client"}
        self.tokens += 1
        return 200, {}, json.loads((DATA / "token.json").read_text())

    def list(self, request: FakeRequest) -> Answer:
        since = request.param("modifiedSince", "")
        mailboxes = request.param("mailbox")
        wanted = [
            c
            for c in self.conversations
            if modified(c) >= since
            and (mailboxes is None or str(c["mailboxId"]) in mailboxes.split(","))
        ]
        wanted.sort(key=lambda c: (modified(c), c["id"]))
        page = int(request.param("page", "1") or 1)
        total = max(1, -(-len(wanted) // self.page_size))
        body = {
            "_embedded": {
                "conversations": wanted[(page - 1) * self.page_size : page * self.page_size]
            },
            "page": {
                "size": self.page_size,
                "totalElements": len(wanted),
                "totalPages": total,
                "number": page,
            },
        }
        return 200, {}, body

    def lists(self) -> list[FakeRequest]:
        return [r for r in self.api.requests if r.path == LIST_PATH]


class Clock:
    """A settable clock for the source (token expiry, Retry-After dates)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def helpscout() -> Iterator[FakeHelpScout]:
    server = FakeHelpScout(load("conversations.json"))
    server.api.start()
    yield server
    server.api.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def make_source(
    server: FakeHelpScout,
    sleeps: list[float] | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> HelpScoutSource:
    values: dict[str, Any] = {
        "type": "helpscout",
        "name": "helpscout",
        "app_id": APP_ID,
        "app_secret": SECRET,
        "base_url": server.api.url,
    }
    phrases = overrides.pop("closing_phrases", ())
    values.update(overrides)
    return HelpScoutSource(
        HelpScoutSourceConfig.model_validate(values),
        sleep=(sleeps if sleeps is not None else []).append,
        clock=clock or Clock(NOW),
        closing_phrases=phrases,
    )


def rows(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in store.conn.execute(
            "SELECT identity, direction, reason, timestamp, author, status FROM messages "
            "ORDER BY timestamp, identity"
        )
    ]


def at(hhmm: str) -> int:
    return int(stamp(f"2024-06-03T{hhmm}:00Z").timestamp())


def thread(cid: int, tid: int) -> str:
    return f"conversation:{cid}:thread:{tid}"


JACK = "jack.sprout@gmail.com"
VERNON = "vbear@mywork.com"
MICKEY = "mickey@mouse.com"

FIRST_SYNC = [
    (thread(A, 88171881), "inbound", "customer message", at("09:00"), VERNON, None),
    (thread(A, 88171882), "ignored", "note (not a reply)", at("09:20"), JACK, None),
    (
        thread(A, 88171883),
        "ignored",
        "line item: You ran the Assign to Spam workflow",
        at("09:30"),
        JACK,
        None,
    ),
    (thread(A, 88171884), "outbound", "reply by a Help Scout user", at("10:15"), JACK, None),
    (thread(A, 88171885), "inbound", "customer message", at("11:00"), VERNON, None),
    (thread(A, 88171887), "ignored", "line item: Marked as Closed", at("12:00"), JACK, "closed"),
    (thread(B, 88171891), "inbound", "customer message", at("13:00"), MICKEY, None),
    (thread(B, 88171892), "ignored", "note (not a reply)", at("13:10"), JACK, None),
    (
        f"conversation:{B}:status:pending:2024-06-03T13:45:00Z",
        "ignored",
        "conversation is pending (no thread recorded the change)",
        at("13:45"),
        "",
        "pending",
    ),
    (thread(C, 88171901), "inbound", "customer chat message", at("14:00"), VERNON, None),
    (thread(C, 88171902), "outbound", "chat reply by a Help Scout user", at("14:03"), JACK, None),
    (
        f"conversation:{C}:status:closed:2024-06-03T14:10:00Z",
        "ignored",
        "conversation is closed (no thread recorded the change)",
        at("14:10"),
        JACK,
        "closed",
    ),
    (thread(D, 88171911), "inbound", "customer message", at("14:30"), MICKEY, None),
    (thread(D, 88171912), "ignored", "forward (a note, not a reply)", at("14:40"), JACK, None),
]


def test_first_sync_classifies_every_thread(helpscout: FakeHelpScout, store: Store) -> None:
    """Customer threads, replies, chats, notes, forwards, line items and back-filled statuses
    become exactly these events, timed by createdAt; the draft reply is not stored."""
    report = make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    assert rows(store) == FIRST_SYNC
    assert report.new == 14
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 4


def test_events_carry_the_conversation_fields(helpscout: FakeHelpScout, store: Store) -> None:
    """Every event names its conversation's subject, tags, link, mailbox and the author's name."""
    make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    row = store.conn.execute(
        "SELECT author_name, subject, tags, link, attributes, customer, recipients "
        "FROM messages WHERE identity = ?",
        (thread(A, 88171884),),
    ).fetchone()
    assert tuple(row) == (
        "Jack Sprout",
        "I need help!",
        "vip",
        f"https://secure.helpscout.net/conversation/{A}",
        '{"mailbox": "85"}',
        VERNON,
        VERNON,
    )


def test_first_sync_requests(helpscout: FakeHelpScout, store: Store) -> None:
    """One token request with the client credentials, then the conversation list asked again
    from each page's last modification time (inclusive), with every documented filter."""
    make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    token, *lists = helpscout.api.requests
    assert (token.method, token.path, token.headers.get("authorization")) == (
        "POST",
        TOKEN_PATH,
        None,
    )
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert [(r.method, r.path, r.headers["authorization"]) for r in lists] == [
        ("GET", LIST_PATH, f"Bearer {TOKEN}")
    ] * 3
    assert lists[0].query == {
        "status": ["all"],
        "modifiedSince": ["2024-05-04T15:59:59Z"],
        "sortField": ["modifiedAt"],
        "sortOrder": ["asc"],
        "embed": ["threads"],
        "page": ["1"],
    }
    assert [(r.param("modifiedSince"), r.param("page")) for r in lists] == [
        ("2024-05-04T15:59:59Z", "1"),
        ("2024-06-03T13:44:59Z", "1"),
        ("2024-06-03T14:09:59Z", "1"),
    ]
    sink = SourceSink(store, "helpscout")
    assert sink.checkpoint("modified_since:all") == "2024-06-03T14:40:00Z"


def test_incremental_poll_stores_only_what_is_new(helpscout: FakeHelpScout, store: Store) -> None:
    """The second poll asks from the saved checkpoint and stores only the new follow-up and
    reply; an unchanged third poll costs one request (the token is cached)."""
    source = make_source(helpscout)
    sink = SourceSink(store, "helpscout")
    source.poll(sink, NOW)
    [later] = load("conversation-2391938112-later.json")
    helpscout.conversations = [c for c in helpscout.conversations if c["id"] != B] + [later]
    before = len(helpscout.api.requests)
    second = source.poll(sink, NOW + timedelta(minutes=30))
    assert helpscout.api.requests[before].param("modifiedSince") == "2024-06-03T14:39:59Z"
    assert (second.new, second.round_trips) == (2, 1)
    assert rows(store)[-2:] == [
        (thread(B, 88171893), "inbound", "customer message", at("15:00"), MICKEY, None),
        (thread(B, 88171894), "outbound", "reply by a Help Scout user", at("15:20"), JACK, None),
    ]
    assert sink.checkpoint("modified_since:all") == "2024-06-03T15:20:00Z"
    third = source.poll(sink, NOW + timedelta(minutes=35))
    assert (third.new, third.round_trips, helpscout.tokens) == (0, 1, 1)


def test_token_is_renewed_before_it_expires_and_when_the_secret_changes(
    helpscout: FakeHelpScout, store: Store, tmp_path: Path
) -> None:
    """A cached token is used until five minutes before expires_in runs out; a rotated
    app_secret_file gets a new token at the next poll."""
    secret_file = tmp_path / "app-secret"
    secret_file.write_text(SECRET + "\n")
    clock = Clock(NOW)
    source = make_source(helpscout, clock=clock, app_secret=None, app_secret_file=secret_file)
    sink = SourceSink(store, "helpscout")
    source.poll(sink, NOW)
    clock.now = NOW + timedelta(seconds=172800 - 301)
    source.poll(sink, clock.now)
    assert helpscout.tokens == 1
    clock.now = NOW + timedelta(seconds=172800 - 300)
    source.poll(sink, clock.now)
    assert helpscout.tokens == 2
    secret_file.write_text("rotated-secret\n")
    helpscout.secrets = {"rotated-secret"}
    source.poll(sink, clock.now)
    assert helpscout.tokens == 3


def test_failure_on_page_two_keeps_page_one_and_resumes(
    helpscout: FakeHelpScout, store: Store
) -> None:
    """A server failure on the second page keeps the first page's events and checkpoint; the
    next poll asks from that checkpoint and stores each thread once."""
    broken = {"on": True}
    serve = helpscout.list

    def flaky(request: FakeRequest) -> Answer:
        if broken["on"] and request.param("modifiedSince") != "2024-05-04T15:59:59Z":
            return 500, {}, {"error": "Internal Server Error"}
        return serve(request)

    helpscout.api.route(LIST_PATH, flaky)
    sleeps: list[float] = []
    source = make_source(helpscout, sleeps)
    sink = SourceSink(store, "helpscout")
    with pytest.raises(SourceError, match=r"answered HTTP 500"):
        source.poll(sink, NOW)
    assert len(sleeps) == 4  # retried with backoff, without really sleeping
    assert [r[0] for r in rows(store)] == [r[0] for r in FIRST_SYNC[:9]]
    assert sink.checkpoint("modified_since:all") == "2024-06-03T13:45:00Z"
    broken["on"] = False
    report = source.poll(sink, NOW)
    assert helpscout.lists()[-2].param("modifiedSince") == "2024-06-03T13:44:59Z"
    assert rows(store) == FIRST_SYNC
    assert report.new == 5


def test_rate_limit_waits_as_help_scout_asks(helpscout: FakeHelpScout, store: Store) -> None:
    """A 429 with Help Scout's X-RateLimit-Retry-After makes the source wait exactly that long
    (through the injected sleep) and then succeed."""
    helpscout.api.fail_next(LIST_PATH, 429, {"X-RateLimit-Retry-After": "7"})
    sleeps: list[float] = []
    report = make_source(helpscout, sleeps).poll(SourceSink(store, "helpscout"), NOW)
    assert sleeps == [7.0]
    assert report.new == 14


def test_rejected_credentials_name_the_keys_to_fix(helpscout: FakeHelpScout, store: Store) -> None:
    """A token request refused with 401 raises SourceAuthError naming app_id, app_secret and
    the mailbox access the app's user needs; nothing is stored."""
    source = make_source(helpscout, app_secret="wrong")
    with pytest.raises(SourceAuthError) as caught:
        source.poll(SourceSink(store, "helpscout"), NOW)
    assert str(caught.value) == (
        f"source 'helpscout': {helpscout.api.url} rejected the credentials (HTTP 401); "
        "check app_id and app_secret: the App ID and App Secret of an OAuth2 app made under "
        "Your Profile > My Apps; the app acts as the user who made it, and that user must have "
        "access to every mailbox in `mailboxes`"
    )
    assert rows(store) == []
    assert "wrong" not in str(caught.value)


def test_token_refused_with_400_is_an_auth_error(helpscout: FakeHelpScout, store: Store) -> None:
    """An OAuth2 'invalid_client' answered with HTTP 400 is reported as bad credentials too."""
    helpscout.api.fail_next(TOKEN_PATH, 400, {}, {"error": "invalid_client"})
    with pytest.raises(SourceAuthError, match=r"refused the token request \(HTTP 400\); check"):
        make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)


def test_a_revoked_token_is_dropped(helpscout: FakeHelpScout, store: Store) -> None:
    """A 401 on the conversation list drops the cached token, so the next poll asks again."""
    source = make_source(helpscout)
    sink = SourceSink(store, "helpscout")
    source.poll(sink, NOW)
    helpscout.api.fail_next(LIST_PATH, 401, {}, {"error": "invalid_token"})
    with pytest.raises(SourceAuthError):
        source.poll(sink, NOW)
    source.poll(sink, NOW)
    assert helpscout.tokens == 2


def test_secrets_never_reach_logs_or_errors(
    helpscout: FakeHelpScout, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the app secret nor the access token appears in any log line or error."""
    caplog.set_level(logging.DEBUG)
    helpscout.api.fail_next(LIST_PATH, 429, {"X-RateLimit-Retry-After": "1"})
    source = make_source(helpscout)
    source.poll(SourceSink(store, "helpscout"), NOW)
    helpscout.api.fail_next(LIST_PATH, 401)
    with pytest.raises(SourceAuthError) as caught:
        source.poll(SourceSink(store, "helpscout"), NOW)
    text = caplog.text + str(caught.value)
    assert caplog.records
    assert SECRET not in text
    assert TOKEN not in text


def test_mailboxes_filter_the_list_and_key_the_checkpoint(
    helpscout: FakeHelpScout, store: Store
) -> None:
    """Configured mailbox ids are sent comma-separated and get a checkpoint of their own."""
    make_source(helpscout, mailboxes=[86, 85]).poll(SourceSink(store, "helpscout"), NOW)
    assert helpscout.lists()[0].param("mailbox") == "86,85"
    assert checkpoint_key([86, 85]) == "modified_since:85,86"
    assert SourceSink(store, "helpscout").checkpoint("modified_since:85,86") == (
        "2024-06-03T14:40:00Z"
    )


def test_threads_are_listed_when_not_embedded(helpscout: FakeHelpScout, store: Store) -> None:
    """A conversation listed without embedded threads has them read from its threads list."""
    bare = copy.deepcopy([c for c in helpscout.conversations if c["id"] == D])
    del bare[0]["_embedded"]
    helpscout.conversations = bare
    threads = json.loads((DATA / "threads-2391938114.json").read_text())
    helpscout.api.route(f"{LIST_PATH}/{D}/threads", lambda r: (200, {}, threads))
    make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    assert [r[0] for r in rows(store)] == [thread(D, 88171911), thread(D, 88171912)]
    assert helpscout.api.requests[-1].query == {"page": ["1"]}


@pytest.mark.parametrize(
    ("thread_fields", "expected"),
    [
        pytest.param({"type": "customer"}, (Direction.INBOUND, "customer message"), id="customer"),
        pytest.param(
            {"type": "reply", "createdBy": {"type": "user"}},
            (Direction.OUTBOUND, "reply by a Help Scout user"),
            id="reply",
        ),
        pytest.param(
            {"type": "message"},
            (Direction.OUTBOUND, "message by a Help Scout user (the team wrote first)"),
            id="user_message",
        ),
        pytest.param(
            {"type": "chat", "createdBy": {"type": "customer"}},
            (Direction.INBOUND, "customer chat message"),
            id="chat_by_customer",
        ),
        pytest.param(
            {"type": "phone", "createdBy": {"type": "user"}},
            (Direction.OUTBOUND, "phone call logged by a Help Scout user"),
            id="phone_by_user",
        ),
        pytest.param(
            {"type": "phone", "createdBy": {"type": "customer"}},
            (Direction.INBOUND, "customer phone call"),
            id="phone_by_customer",
        ),
        pytest.param({"type": "note"}, (Direction.IGNORED, "note (not a reply)"), id="note"),
        pytest.param(
            {"type": "forwardchild"},
            (Direction.IGNORED, "forward (a note, not a reply)"),
            id="forward",
        ),
        pytest.param({"type": "lineitem"}, (Direction.IGNORED, "line item"), id="bare_lineitem"),
        pytest.param(
            {"type": "newtype"},
            (Direction.IGNORED, "newtype thread (neither a message nor a reply)"),
            id="unknown_type",
        ),
    ],
)
def test_thread_types(thread_fields: dict[str, Any], expected: tuple[Direction, str]) -> None:
    """Each documented thread type has one meaning for the clock."""
    assert classify_thread(thread_fields) == expected


@pytest.mark.parametrize(
    ("thread_fields", "expected"),
    [
        pytest.param({"type": "lineitem", "status": "pending"}, "pending", id="status_field"),
        pytest.param({"type": "note", "status": "active"}, "open", id="active_is_open"),
        pytest.param({"type": "lineitem", "status": "spam"}, "closed", id="spam_is_closed"),
        pytest.param({"type": "lineitem", "status": "nochange"}, None, id="nochange"),
        pytest.param(
            {"type": "lineitem", "status": "nochange", "action": {"text": "Marked as Pending"}},
            "pending",
            id="text_marked_as",
        ),
        pytest.param(
            {"type": "lineitem", "action": {"text": "Jack changed the status to Active"}},
            "open",
            id="text_changed_status",
        ),
        pytest.param(
            {"type": "lineitem", "action": {"text": "You ran the Assign to Spam workflow"}},
            None,
            id="workflow_text_is_no_status",
        ),
        pytest.param(
            {"type": "note", "action": {"text": "Marked as Closed"}}, None, id="text_only_on_items"
        ),
    ],
)
def test_thread_status(thread_fields: dict[str, Any], expected: str | None) -> None:
    """A thread's status field, else a line item's text, says which status it set."""
    assert thread_status(thread_fields) == expected


def conversation(cid: int, **changes: Any) -> dict[str, Any]:
    """A copy of one fixture conversation with some top-level fields changed."""
    [found] = [c for c in load("conversations.json") if c["id"] == cid]
    return {**copy.deepcopy(found), **changes}


def summary(found: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    threads = found.get("_embedded", {}).get("threads", [])
    events = conversation_events("helpscout", found, threads)
    return [(e.identity.split(":", 2)[2], e.reason, e.status) for e in events]


def test_a_draft_conversation_is_not_stored() -> None:
    """A new conversation a user has only drafted yields no event at all."""
    assert summary(conversation(D, state="draft")) == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param(
            {"state": "deleted"},
            "conversation deleted in Help Scout (counted as closed)",
            id="state_deleted",
        ),
        pytest.param(
            {"status": "deleted"},
            "conversation deleted in Help Scout (counted as closed)",
            id="status_deleted",
        ),
        pytest.param(
            {"status": "spam"},
            "conversation marked as spam in Help Scout (counted as closed)",
            id="status_spam",
        ),
    ],
)
def test_a_deleted_or_spam_conversation_stops_its_clock(
    changes: dict[str, Any], reason: str
) -> None:
    """A conversation listed as deleted or as spam gets one closed status event at the latest
    time it shows (here its newest thread and userUpdatedAt, 14:40), naming why."""
    assert summary(conversation(D, **changes))[-1] == (
        "status:closed:2024-06-03T14:40:00Z",
        reason,
        "closed",
    )


def test_spam_closes_a_wait_that_began_after_the_last_user_update() -> None:
    """A workflow marks B as spam after the customer wrote again: userUpdatedAt (13:45) is older
    than the customer's new message, so the closing is timed by that message, the latest time
    the conversation shows, and stops the wait it started."""
    found = conversation(B, status="spam")
    follow_up = copy.deepcopy(found["_embedded"]["threads"][-1])
    follow_up["id"], follow_up["createdAt"] = 88171899, "2024-06-03T15:00:00Z"
    found["_embedded"]["threads"].insert(0, follow_up)
    assert summary(found)[-1] == (
        "status:closed:2024-06-03T15:00:00Z",
        "conversation marked as spam in Help Scout (counted as closed)",
        "closed",
    )


def test_spam_recorded_by_its_newest_thread_needs_no_second_closing() -> None:
    """When the newest thread is the line item that marked the conversation as spam, that
    thread's status already stopped the wait: no second closing is added."""
    found = conversation(D, status="spam")
    spam = {
        "id": 88171913,
        "type": "lineitem",
        "status": "spam",
        "state": "published",
        "action": {"type": "manual", "text": "Marked as Spam"},
        "createdBy": found["_embedded"]["threads"][0]["createdBy"],
        "createdAt": "2024-06-03T14:50:00Z",
    }
    found["_embedded"]["threads"].insert(0, spam)
    assert summary(found)[-1] == ("thread:88171913", "line item: Marked as Spam", "closed")


def test_an_active_conversation_needs_no_status_event() -> None:
    """Active is where every conversation starts: no thread saying so is no reason for an
    event, while a pending conversation whose threads never said it gets one."""
    quiet = conversation(B, status="active")
    assert [s[0] for s in summary(quiet)] == ["thread:88171891", "thread:88171892"]
    assert summary(conversation(B))[-1][2] == "pending"


def test_a_customer_thread_without_creator_email_uses_the_customer() -> None:
    """When createdBy carries no email, a customer thread is authored by its customer."""
    found = conversation(D)
    first = found["_embedded"]["threads"][-1]
    first["createdBy"] = {"id": 15, "type": "customer"}
    event = conversation_events("helpscout", found, found["_embedded"]["threads"])[0]
    assert (event.author, event.author_name) == (MICKEY, "Mickey Mouse")


# --- reply semantics, end to end -------------------------------------------------------------


def verdict(store: Store, identity: str, policy: Policy, now: datetime) -> ConversationVerdict:
    cid = store.conversation_for_message("helpscout", identity)
    assert cid is not None
    messages = clock_messages(store.messages(cid))
    return evaluate(messages, policy, BusinessCalendar.always_open(), now)


POLICY = Policy(name="support", calendar="24x7", first_response=8 * 3600)


@pytest.mark.parametrize("closers", ["ignore", "count"])
def test_clock_stops_at_the_first_reply_not_the_note_or_line_item(
    helpscout: FakeHelpScout, store: Store, closers: str
) -> None:
    """Conversation A's first-response clock runs from the customer's message to Jack's reply
    (75 minutes), through the note and the workflow line item. The customer's "It works now,
    thank you!" after it is a closing message and starts no clock; with ``closers: count`` it
    starts one, which stops as solved when the conversation is marked closed."""
    make_source(helpscout, closers=closers).poll(SourceSink(store, "helpscout"), NOW)
    first, *follow_ups = verdict(store, thread(A, 88171881), POLICY, NOW).clocks
    assert (first.clock.kind, first.clock.stop_reason, first.clock.responder) == (
        ClockKind.FIRST,
        StopReason.REPLY,
        JACK,
    )
    assert (first.clock.stopped_at, first.business_seconds) == (stamp("2024-06-03T10:15Z"), 4500)
    closing = store.conn.execute(
        "SELECT closing FROM messages WHERE identity = ?", (thread(A, 88171885),)
    ).fetchone()[0]
    if closers == "ignore":
        assert (closing, follow_ups) == ("It works now, thank you!", [])
        return
    [follow_up] = follow_ups
    assert (closing, follow_up.clock.kind, follow_up.state, follow_up.clock.stopped_at) == (
        None,
        ClockKind.NEXT,
        ClockState.SOLVED,
        stamp("2024-06-03T12:00Z"),
    )


def test_pending_pauses_the_clock_when_the_policy_says_so(
    helpscout: FakeHelpScout, store: Store
) -> None:
    """Conversation B's back-filled pending status pauses its clock under pause_on: pending and
    leaves it running under the default rules."""
    make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    pausing = Policy(
        name="support",
        calendar="24x7",
        first_response=8 * 3600,
        status_rules=StatusRules(pause_on=frozenset({"pending"})),
    )
    [paused] = verdict(store, thread(B, 88171891), pausing, NOW).clocks
    [running] = verdict(store, thread(B, 88171891), POLICY, NOW).clocks
    assert (paused.state, paused.business_seconds) == (ClockState.PAUSED, 45 * 60)
    assert (running.state, running.business_seconds) == (ClockState.OK, 3 * 3600)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param(
            {"status": "spam"},
            "conversation marked as spam in Help Scout (counted as closed)",
            id="marked_as_spam",
        ),
        pytest.param(
            {"state": "deleted"},
            "conversation deleted in Help Scout (counted as closed)",
            id="deleted",
        ),
    ],
)
def test_a_waiting_customers_clock_stops_when_the_conversation_is_spam_or_deleted(
    helpscout: FakeHelpScout, store: Store, changes: dict[str, Any], reason: str
) -> None:
    """D's customer has waited since 14:30. A user marks D as spam (or deletes it) at 15:30;
    the next poll lists it so and its clock stops there as solved: an hour waited, neither a
    reply nor a breach, and the poll stores nothing else."""
    source, sink = make_source(helpscout), SourceSink(store, "helpscout")
    first = stamp("2024-06-03T15:00Z")
    source.poll(sink, first)
    [waiting] = verdict(store, thread(D, 88171911), POLICY, first).clocks
    assert (waiting.clock.running, waiting.state) == (True, ClockState.OK)
    removed = conversation(D, userUpdatedAt="2024-06-03T15:30:00Z", **changes)
    helpscout.conversations = [c for c in helpscout.conversations if c["id"] != D] + [removed]
    later = stamp("2024-06-03T15:35Z")
    report = source.poll(sink, later)
    assert (report.new, report.duplicates) == (1, 2)
    assert rows(store)[-1] == (
        f"conversation:{D}:status:closed:2024-06-03T15:30:00Z",
        "ignored",
        reason,
        at("15:30"),
        "",
        "closed",
    )
    [stopped] = verdict(store, thread(D, 88171911), POLICY, later).clocks
    assert (
        stopped.clock.stop_reason,
        stopped.clock.stopped_at,
        stopped.clock.responder,
        stopped.state,
        stopped.breached,
        stopped.business_seconds,
    ) == (StopReason.SOLVED, stamp("2024-06-03T15:30Z"), "", ClockState.SOLVED, False, 3600)


def test_a_conversation_gone_while_being_read_is_closed_and_the_poll_goes_on(
    helpscout: FakeHelpScout, store: Store
) -> None:
    """D is listed without its threads, and by the time they are read it is deleted: its
    threads answer 404. The poll does not fail: D's wait stops when the 404 was seen, and B,
    listed with it, is stored as usual."""
    source, sink = make_source(helpscout), SourceSink(store, "helpscout")
    source.poll(sink, stamp("2024-06-03T15:00Z"))
    bare = conversation(D, userUpdatedAt="2024-06-03T15:10:00Z")
    del bare["_embedded"]  # read from its threads list, which the fake answers with 404
    [later_b] = load("conversation-2391938112-later.json")
    helpscout.conversations = [c for c in helpscout.conversations if c["id"] not in (B, D)]
    helpscout.conversations += [bare, later_b]
    seen = stamp("2024-06-03T15:25Z")
    report = source.poll(sink, seen)
    assert (report.new, report.duplicates) == (1 + 2, 2)  # D's closing, B's two new threads
    assert f"{LIST_PATH}/{D}/threads" in [r.path for r in helpscout.api.requests]
    assert rows(store)[-1] == (
        f"conversation:{D}:deleted",
        "ignored",
        "conversation deleted in Help Scout (HTTP 404 while its threads were read; counted "
        "as closed)",
        int(seen.timestamp()),
        "",
        "closed",
    )
    assert thread(B, 88171893) in [r[0] for r in rows(store)]
    [stopped] = verdict(store, thread(D, 88171911), POLICY, seen).clocks
    assert (stopped.clock.stop_reason, stopped.clock.stopped_at, stopped.breached) == (
        StopReason.SOLVED,
        seen,
        False,
    )
    assert stopped.business_seconds == 55 * 60


# --- closing messages --------------------------------------------------------------------------

CLOSER_RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 1h}
"""
SCREENSHOT = {
    "id": 12392,
    "filename": "still-broken.png",
    "mimeType": "image/png",
    "width": 640,
    "height": 480,
    "size": 48213,
    "_links": {
        "data": {"href": "https://api.helpscout.net/v2/conversations/1/attachments/12392/data"}
    },
}


def answered(n: int, answer: str | None, attachments: list[Any] | None = None) -> dict[str, Any]:
    """Conversation A as it stood when the customer answered Jack's reply (10:15) at 11:00 with
    ``answer`` (the HTML body) and ``attachments``: subject "conversation <n>", active. With
    ``answer`` None, only the customer's first thread, which opened the conversation with
    "Thanks!"."""
    [recorded] = [c for c in load("conversations.json") if c["id"] == A]
    conversation = copy.deepcopy(recorded)
    for key in ("closedAt", "closedBy", "closedByUser"):
        conversation.pop(key)
    conversation |= {"id": 5000 + n, "subject": f"conversation {n}", "status": "active"}
    conversation["userUpdatedAt"] = "2024-06-03T10:15:00Z"
    threads = {t["id"]: t for t in conversation["_embedded"]["threads"]}
    opening, reply, follow_up = threads[88171881], threads[88171884], threads[88171885]
    if answer is None:
        opening["body"] = "<div>Thanks!</div>"
        kept = [opening]
    else:
        follow_up["body"] = answer
        follow_up["_embedded"] = {"attachments": attachments or []}
        kept = [follow_up, reply, opening]
    conversation["_embedded"]["threads"] = [dict(t, id=n * 100 + i) for i, t in enumerate(kept)]
    return conversation


def closing_column(store: Store) -> dict[str, str | None]:
    return dict(
        store.conn.execute("SELECT identity, closing FROM messages WHERE direction = 'inbound'")
    )


def waiting_subjects(store: Store, tmp_path: Path) -> list[str]:
    engine = Engine(store, rulebook(tmp_path, "closers", CLOSER_RULES))
    engine.evaluate(NOW)
    return sorted(w.conversation.subject for w in engine.waiting(NOW))


def test_a_customer_thank_you_after_the_reply_starts_no_clock(
    helpscout: FakeHelpScout, store: Store, tmp_path: Path
) -> None:
    """After Jack's reply, the customer's "Thanks, that fixed it!" thread is a closing message:
    no clock, and only its words are kept (the body is not stored). "Thanks, but it still
    fails", a "Thanks!" with a screenshot attached and a conversation the customer opened with
    "Thanks!" (a request, whatever it says) each wait for a reply."""
    helpscout.conversations = [
        answered(1, "<div>Thanks, that fixed it!</div><div><br></div>"),
        answered(2, "<div>Thanks, but it still fails</div>"),
        answered(3, "<div>Thanks!</div>", [SCREENSHOT]),
        answered(4, None),
    ]
    make_source(helpscout).poll(SourceSink(store, "helpscout"), NOW)
    assert closing_column(store) == {
        "conversation:5001:thread:100": "Thanks, that fixed it!",
        "conversation:5001:thread:102": None,
        "conversation:5002:thread:200": None,
        "conversation:5002:thread:202": None,
        "conversation:5003:thread:300": None,
        "conversation:5003:thread:302": None,
        "conversation:5004:thread:400": None,
    }
    assert waiting_subjects(store, tmp_path) == [
        "conversation 2",
        "conversation 3",
        "conversation 4",
    ]
    cid = store.conversation_for_message("helpscout", "conversation:5001:thread:100")
    assert cid is not None
    text = "\n".join(explain(store, rulebook(tmp_path, "closers", CLOSER_RULES), cid, NOW))
    assert "not a clock: closing message ('Thanks, that fixed it!')" in text
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(messages)")}
    assert "body" not in columns


def test_with_closers_count_a_thank_you_starts_a_clock(
    helpscout: FakeHelpScout, store: Store, tmp_path: Path
) -> None:
    """``closers: count``: the customer's "Thanks, that fixed it!" is a message like any other
    and waits for a reply; nothing is marked as closing."""
    helpscout.conversations = [answered(1, "<div>Thanks, that fixed it!</div>")]
    make_source(helpscout, closers="count").poll(SourceSink(store, "helpscout"), NOW)
    assert set(closing_column(store).values()) == {None}
    assert waiting_subjects(store, tmp_path) == ["conversation 1"]


def test_the_rules_files_closing_phrases_make_a_thread_closing(
    helpscout: FakeHelpScout, store: Store
) -> None:
    """Phrases from the rules files (``closing_phrases``; "kiitos paljon" is no built-in one)
    make a customer thread closing too."""
    helpscout.conversations = [answered(1, "<p>Kiitos paljon!</p>")]
    make_source(helpscout, closing_phrases=("kiitos paljon",)).poll(
        SourceSink(store, "helpscout"), NOW
    )
    closing = closing_column(store)
    assert closing["conversation:5001:thread:100"] == "Kiitos paljon!"


# --- check --connect -----------------------------------------------------------------------------


def test_probe_reports_the_user_mailboxes_rate_limit_and_first_sync(
    helpscout: FakeHelpScout,
) -> None:
    """After the token request, the probe names the user the app acts as and its role, lists
    every mailbox that user sees (the configured ones watched, a configured one it cannot see
    warned about), shows the rate-limit headroom and counts what a first sync reads."""
    report = make_source(helpscout, mailboxes=[85, 87]).probe(NOW)
    assert (report.source, report.kind) == ("helpscout", "helpscout")
    assert report.account == "Jack Sprout <jack.sprout@gmail.com>"
    assert dict(report.details) == {
        "api": helpscout.api.url,
        "signed in with": f"OAuth2 app {APP_ID} (client credentials)",
        "role": "admin",
        "rate limit": "396 of 400 requests a minute left",
    }
    assert [(f.name, f.role, f.messages) for f in report.folders] == [
        ("Billing (86)", "", None),
        ("Support (85)", "watched", None),
    ]
    # conversations A, B and D are in mailbox 85; C is in 86
    assert report.first_sync == (
        "3 conversations modified since 2024-05-04 (since: 30d), each read with its threads"
    )
    assert report.warnings == [
        "mailbox 87 in `mailboxes` is not one Jack Sprout <jack.sprout@gmail.com> can see: fix "
        "its id, or give that user access to the mailbox (the app acts as the user who made it)"
    ]
    sent = [
        (r.method, r.path, {k: v[0] for k, v in r.query.items()}) for r in helpscout.api.requests
    ]
    assert sent == [
        ("POST", TOKEN_PATH, {}),
        ("GET", ME_PATH, {}),
        ("GET", MAILBOXES_PATH, {"page": "1"}),
        ("GET", MAILBOXES_PATH, {"page": "2"}),
        (
            "GET",
            LIST_PATH,
            {
                "mailbox": "85,87",
                "status": "all",
                "modifiedSince": "2024-05-04T15:59:59Z",
                "sortField": "modifiedAt",
                "sortOrder": "asc",
                "page": "1",
            },
        ),
    ]


def test_probe_without_mailboxes_watches_every_one(helpscout: FakeHelpScout) -> None:
    report = make_source(helpscout).probe(NOW)
    assert [(f.name, f.role) for f in report.folders] == [
        ("Billing (86)", "watched"),
        ("Support (85)", "watched"),
    ]
    assert dict(report.details)["mailboxes"] == (
        "all 2 that Jack Sprout <jack.sprout@gmail.com> can see (none set)"
    )
    assert report.first_sync.startswith("4 conversations modified since 2024-05-04")
    assert report.warnings == []


@pytest.mark.parametrize("key", ["app_secret", "app_secret_file"])
def test_probe_of_a_refused_secret_names_the_keys_to_fix(
    helpscout: FakeHelpScout, tmp_path: Path, key: str
) -> None:
    """A refused token request fails the probe naming app_id and the secret's key; the probe
    asks nothing else, and neither the secret nor a token shows anywhere."""
    overrides: dict[str, Any] = {"app_secret": "wrong"}
    if key == "app_secret_file":
        secret = tmp_path / "helpscout-secret"
        secret.write_text("wrong\n", encoding="utf-8")
        overrides = {"app_secret": None, "app_secret_file": secret}
    with pytest.raises(SourceAuthError) as caught:
        make_source(helpscout, **overrides).probe(NOW)
    assert str(caught.value).startswith(
        f"source 'helpscout': {helpscout.api.url} rejected the credentials (HTTP 401); "
        f"check app_id and {key}: the App ID and App Secret of an OAuth2 app"
    )
    assert [r.path for r in helpscout.api.requests] == [TOKEN_PATH]


def test_probe_drops_a_token_refused_after_the_token_request(helpscout: FakeHelpScout) -> None:
    """A 401 on users/me (a revoked token) fails the probe and forgets the token."""
    helpscout.api.fail_next(ME_PATH, 401, {}, {"error": "invalid_token"})
    source = make_source(helpscout)
    with pytest.raises(SourceAuthError):
        source.probe(NOW)
    report = source.probe(NOW)
    assert helpscout.tokens == 2
    assert SECRET not in repr(report)
    assert TOKEN not in repr(report)
