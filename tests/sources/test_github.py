"""The GitHub source against a fake REST API serving recorded PyGithub traffic (2012-2025)."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest

from monitor.config.models import GitHubSourceConfig
from monitor.engine import clock_messages
from monitor.errors import SourceAuthError, SourceError
from monitor.model import Direction
from monitor.sla.calendar import BusinessCalendar
from monitor.sla.clocks import ClockKind, StopReason
from monitor.sla.evaluate import ClockState, ConversationVerdict, evaluate
from monitor.sla.policy import Policy
from monitor.sources.github import GitHubSource, ResponseRules, is_pull_request
from monitor.store import SourceSink, Store

DATA = Path(__file__).resolve().parents[1] / "data" / "github"
REPO = "PyGithub/PyGithub"
ISSUES = f"/repos/{REPO}/issues"
TOKEN = "ghp_replyclockTestToken"
NOW = datetime(2012, 5, 27, 8, 0, tzinfo=UTC)  # just after the 2012-05-27 recordings
LATER = datetime(2012, 5, 29, 19, 0, tzinfo=UTC)  # just after the 2012-05-29 recordings
AS_OF_27 = "2012-05-27T07:11:23Z"  # Date header of the issue-events recording
AS_OF_29 = "2012-05-29T18:39:46Z"  # Date header of the issues?since= recording


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def epoch(value: str) -> int:
    return int(stamp(value).timestamp())


class FakeGitHub:
    """GitHub's issues, comments, events and reviews lists for one repository, as they stood at
    ``as_of``; the issues list honours ``since`` and pages by ``page_size`` with Link headers."""

    def __init__(self, *, page_size: int = 3) -> None:
        self.api = FakeApi()
        self.page_size = page_size
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = load("issue-comments.json")
        self.events: list[dict[str, Any]] = load("issue-events.json")
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.as_of = AS_OF_27
        self.scopes: str | None = None  # X-OAuth-Scopes: None for a fine-grained token
        self.repository = dict(REPOSITORY)
        self.api.check_auth = lambda r: r.headers.get("authorization") == f"Bearer {TOKEN}"
        self.api.route(ISSUES, self.list_issues)
        self.api.route("/user", lambda r: (200, self.token_headers(), USER))
        self.api.route(f"/repos/{REPO}", lambda r: (200, self.token_headers(), self.repository))
        self.api.route("/search/issues", self.search_issues)

    def token_headers(self) -> dict[str, str]:
        """What GitHub sends about the token with every answer (recorded 2025, Issue.setUp)."""
        headers = dict(TOKEN_HEADERS)
        if self.scopes is not None:  # a classic token's scopes; a fine-grained one sends none
            headers = {"X-OAuth-Scopes": self.scopes, "X-Accepted-OAuth-Scopes": "repo"}
            headers |= {k: v for k, v in TOKEN_HEADERS.items() if k.startswith("X-RateLimit")}
        return headers

    def search_issues(self, request: FakeRequest) -> Answer:
        """GitHub's issue search for the one query shape the source sends."""
        found = re.fullmatch(
            r"repo:(\S+) is:(issue|pr) updated:>=(\d{4}-\d\d-\d\d)", request.param("q", "") or ""
        )
        if found is None or found.group(1) != REPO:
            return 422, {}, {"message": "Validation Failed", "q": request.param("q")}
        kind, day = found.group(2), found.group(3)
        matches = [
            i
            for i in self.issues
            if i["updated_at"][:10] >= day and is_pull_request(i) == (kind == "pr")
        ]
        body = {"total_count": len(matches), "incomplete_results": False, "items": matches[:1]}
        return 200, self.token_headers(), body

    def serve(self, issues: list[dict[str, Any]], as_of: str) -> None:
        """Answer with these issues (and what they had gathered by ``as_of``) from now on."""
        self.issues, self.as_of = issues, as_of
        for issue in issues:
            number = issue["number"]
            self.api.route(f"{ISSUES}/{number}/comments", self.list_comments(issue))
            self.api.route(f"{ISSUES}/{number}/events", self.list_events(number))
            self.api.route(
                f"/repos/{REPO}/pulls/{number}/reviews",
                lambda r, n=number: (200, {}, self.reviews.get(n, [])),
            )

    def list_issues(self, request: FakeRequest) -> Answer:
        since = request.param("since", "")
        wanted = sorted(
            (i for i in self.issues if i["updated_at"] >= since),
            key=lambda i: (i["updated_at"], i["number"]),
        )
        page = int(request.param("page", "1") or 1)
        last = max(1, -(-len(wanted) // self.page_size))
        headers = {}
        if page < last:
            query = {k: v[0] for k, v in request.query.items()}
            links = [
                f"<{self.api.url}{ISSUES}?{urllib.parse.urlencode({**query, 'page': n})}>; "
                f'rel="{rel}"'
                for n, rel in ((page + 1, "next"), (last, "last"))
            ]
            headers["Link"] = ", ".join(links)
        return 200, headers, wanted[(page - 1) * self.page_size : page * self.page_size]

    def list_comments(self, issue: dict[str, Any]) -> Any:
        def answer(request: FakeRequest) -> Answer:
            mine = [
                c
                for c in self.comments
                if c["issue_url"].rsplit("/", 1)[1] in (str(issue["id"]), str(issue["number"]))
                and c["created_at"] <= self.as_of
            ]
            return 200, {}, mine

        return answer

    def list_events(self, number: int) -> Any:
        def answer(request: FakeRequest) -> Answer:
            mine = [
                {k: v for k, v in e.items() if k != "issue"}
                for e in self.events
                if e.get("issue", {}).get("number", number) == number
                and e["created_at"] <= self.as_of
            ]
            return 200, {}, mine

        return answer

    def paths(self) -> list[str]:
        return [r.path for r in self.api.requests]


# GET /user for the fixtures' maintainer (the login and name are his; the shape is GitHub's).
USER = {"login": "jacquev6", "id": 327146, "type": "User", "name": "Vincent Jacques"}
# GET /repos/PyGithub/PyGithub as recorded in 2025 (Issue.setUp), the fields the probe reads.
REPOSITORY = {
    "id": 3544490,
    "name": "PyGithub",
    "full_name": REPO,
    "private": False,
    "visibility": "public",
    "has_issues": True,
    "archived": False,
    "open_issues_count": 373,
    "open_issues": 373,
    "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
}
# The token headers of that 2025 recording: a fine-grained token (an expiry, no scopes).
TOKEN_HEADERS = {
    "github-authentication-token-expiration": "2025-11-13 21:31:56 +0100",
    "x-accepted-github-permissions": "metadata=read",
    "X-RateLimit-Limit": "5000",
    "X-RateLimit-Remaining": "4997",
    "X-RateLimit-Reset": "1755375998",
    "X-RateLimit-Used": "3",
    "X-RateLimit-Resource": "core",
}


class Clock:
    """A settable clock for the source (rate-limit reset times)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    server.serve(load("issues-2012-05-27.json"), AS_OF_27)
    server.api.start()
    yield server
    server.api.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def make_source(
    server: FakeGitHub,
    sleeps: list[float] | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> GitHubSource:
    values: dict[str, Any] = {
        "type": "github",
        "name": "github",
        "repositories": [REPO],
        "token": TOKEN,
        "since": "7d",
        "base_url": server.api.url,
    }
    values.update(overrides)
    return GitHubSource(
        GitHubSourceConfig.model_validate(values),
        sleep=(sleeps if sleeps is not None else []).append,
        clock=clock or Clock(NOW),
    )


def rows(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in store.conn.execute(
            "SELECT identity, direction, reason, timestamp, author, status FROM messages "
            "ORDER BY timestamp, identity"
        )
    ]


def key(number: int, rest: str) -> str:
    return f"{REPO}#{number}:{rest}"


MEMBER_COMMENT = "comment by a maintainer (MEMBER)"
OWN_ISSUE = "issue opened by a maintainer (MEMBER)"
FIRST_SYNC = [
    (key(15, "opened"), "outbound", OWN_ISSUE, epoch("2012-03-13T06:24:05Z"), "jacquev6", None),
    (
        key(26, "opened"),
        "inbound",
        "issue opened",
        epoch("2012-05-17T12:02:05Z"),
        "bilderbuchi",
        None,
    ),
    (
        key(26, "comment:5780183"),
        "outbound",
        MEMBER_COMMENT,
        epoch("2012-05-18T05:27:40Z"),
        "jacquev6",
        None,
    ),
    (
        key(26, "comment:5781803"),
        "inbound",
        "follow-up by the issue's author",
        epoch("2012-05-18T08:34:04Z"),
        "bilderbuchi",
        None,
    ),
    (key(28, "opened"), "outbound", OWN_ISSUE, epoch("2012-05-19T10:38:23Z"), "jacquev6", None),
    (
        key(26, "comment:5820199"),
        "outbound",
        MEMBER_COMMENT,
        epoch("2012-05-21T11:17:12Z"),
        "jacquev6",
        None,
    ),
    (
        key(26, "event:15883398"),
        "ignored",
        "issue closed",
        epoch("2012-05-21T11:17:12Z"),
        "jacquev6",
        "closed",
    ),
    (
        key(26, "comment:5820912"),
        "ignored",
        "comment by the issue's author on the closed issue",
        epoch("2012-05-21T12:09:57Z"),
        "bilderbuchi",
        None,
    ),
    (
        key(15, "comment:5924198"),
        "outbound",
        MEMBER_COMMENT,
        epoch("2012-05-25T06:31:42Z"),
        "jacquev6",
        None,
    ),
    (key(29, "opened"), "outbound", OWN_ISSUE, epoch("2012-05-25T11:47:59Z"), "jacquev6", None),
    (
        key(15, "event:16292758"),
        "ignored",
        "issue closed",
        epoch("2012-05-25T17:32:31Z"),
        "jacquev6",
        "closed",
    ),
    (
        key(29, "event:16292760"),
        "ignored",
        "issue closed",
        epoch("2012-05-25T17:32:32Z"),
        "jacquev6",
        "closed",
    ),
    (
        key(28, "event:16333959"),
        "ignored",
        "issue closed",
        epoch("2012-05-26T14:59:34Z"),
        "jacquev6",
        "closed",
    ),
    (key(30, "opened"), "outbound", OWN_ISSUE, epoch("2012-05-27T05:40:15Z"), "jacquev6", None),
]


def test_first_sync_stores_exact_events(github: FakeGitHub, store: Store) -> None:
    """The five issues updated in the last 7 days become openings, comments and closings with
    the recorded times and logins; 2012's null pull_request URLs mark plain issues."""
    report = make_source(github).poll(SourceSink(store, "github"), NOW)
    assert rows(store) == FIRST_SYNC
    assert report.new == 14
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 5


def test_first_sync_requests(github: FakeGitHub, store: Store) -> None:
    """The issues list is asked with the documented filters, and again from the last stored
    issue's updated_at; comments are read only for issues that have some, events for all."""
    source = make_source(github)
    source.poll(SourceSink(store, "github"), NOW)
    assert github.paths() == [
        ISSUES,
        f"{ISSUES}/26/comments",
        f"{ISSUES}/26/events",
        f"{ISSUES}/15/comments",
        f"{ISSUES}/15/events",
        f"{ISSUES}/29/events",
        ISSUES,
        f"{ISSUES}/28/events",
        f"{ISSUES}/30/events",
    ]
    first, again = (r for r in github.api.requests if r.path == ISSUES)
    assert first.query == {
        "state": ["all"],
        "since": ["2012-05-20T08:00:00Z"],
        "sort": ["updated"],
        "direction": ["asc"],
        "per_page": ["100"],
    }
    assert again.param("since") == "2012-05-25T17:32:32Z"
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["x-github-api-version"] == "2022-11-28"
    assert SourceSink(store, "github").checkpoint(f"issues_since:{REPO}") == (
        "2012-05-27T05:40:15Z"
    )


def test_incremental_poll_stores_only_what_is_new(github: FakeGitHub, store: Store) -> None:
    """Two days later the poll sends the checkpoint as since, skips the issue it already stored
    at that time, and stores the new issues and comments of the 2012-05-29 recording; an
    unchanged poll after that is one request."""
    source = make_source(github)
    sink = SourceSink(store, "github")
    source.poll(sink, NOW)
    github.serve(load("issues-2012-05-29.json"), AS_OF_29)
    before = len(github.api.requests)
    report = source.poll(sink, LATER)
    assert github.api.requests[before].param("since") == "2012-05-27T05:40:15Z"
    assert f"{ISSUES}/30/events" not in github.paths()[before:]
    assert (report.new, report.duplicates) == (16, 0)
    new = [r[0] for r in rows(store) if r[0] not in {f[0] for f in FIRST_SYNC}]
    assert sorted(new) == sorted(
        [key(n, "opened") for n in (3, 4, 9, 12, 18, 33, 35, 36, 37)]
        + [key(3, "comment:5965812")]
        + [key(33, f"comment:{c}") for c in (5965724, 5965891, 5966555, 5966633)]
        + [key(36, f"comment:{c}") for c in (5981084, 5991965)]
    )
    assert sink.checkpoint(f"issues_since:{REPO}") == "2012-05-29T18:38:53Z"
    unchanged = source.poll(sink, LATER + timedelta(minutes=5))
    assert (unchanged.new, unchanged.round_trips) == (0, 1)


def test_failure_on_page_two_keeps_page_one_and_resumes(github: FakeGitHub, store: Store) -> None:
    """A 502 on the second issues page (after retries) keeps the first page's issues and their
    checkpoint; the next poll asks from there and stores the rest, nothing twice."""
    broken = {"on": True}

    def flaky(request: FakeRequest) -> Answer:
        if broken["on"] and request.param("since") != "2012-05-20T08:00:00Z":
            return 502, {}, {"message": "Server Error"}
        return github.list_issues(request)

    github.api.route(ISSUES, flaky)
    sleeps: list[float] = []
    source = make_source(github, sleeps)
    sink = SourceSink(store, "github")
    with pytest.raises(SourceError, match=r"answered HTTP 502"):
        source.poll(sink, NOW)
    assert len(sleeps) == 4
    stored = {r[0] for r in rows(store)}
    assert stored == {r[0] for r in FIRST_SYNC if r[0].split(":")[0].endswith(("15", "26", "29"))}
    assert sink.checkpoint(f"issues_since:{REPO}") == "2012-05-25T17:32:32Z"
    broken["on"] = False
    report = source.poll(sink, NOW)
    assert [r.param("since") for r in github.api.requests if r.path == ISSUES][-1] == (
        "2012-05-25T17:32:32Z"
    )
    assert (report.new, report.duplicates) == (3, 0)
    assert rows(store) == FIRST_SYNC


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        pytest.param(
            403,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW.timestamp()) + 42)},
            [42.0],
            id="primary_limit_403_until_reset",
        ),
        pytest.param(
            429,
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW.timestamp()) + 9)},
            [9.0],
            id="primary_limit_429_until_reset",
        ),
        pytest.param(403, {"Retry-After": "60"}, [60.0], id="secondary_limit_403_retry_after"),
    ],
)
def test_rate_limits_wait_as_github_asks(
    github: FakeGitHub,
    store: Store,
    status: int,
    headers: dict[str, str],
    expected: list[float],
) -> None:
    """GitHub's primary limit (remaining 0 until x-ratelimit-reset) and its secondary limit
    (403 with Retry-After) make the injected sleep wait exactly that long, then the poll
    succeeds."""
    github.api.fail_next(ISSUES, status, headers, {"message": "API rate limit exceeded"})
    sleeps: list[float] = []
    report = make_source(github, sleeps).poll(SourceSink(store, "github"), NOW)
    assert sleeps == expected
    assert report.new == 14


@pytest.mark.parametrize(
    ("overrides", "fix"),
    [
        pytest.param(
            {},
            "check token: a fine-grained token needs read-only access to Issues on every "
            "repository in `repositories`; a classic token needs the public_repo scope (repo "
            "for private repositories)",
            id="token",
        ),
        pytest.param(
            {"token": None, "include_pull_requests": True},
            "check token_file: a fine-grained token needs read-only access to Issues and Pull "
            "requests on every repository in `repositories`; a classic token needs the "
            "public_repo scope (repo for private repositories)",
            id="token_file_with_pull_requests",
        ),
    ],
)
def test_rejected_token_names_the_key_and_permission(
    github: FakeGitHub, store: Store, tmp_path: Path, overrides: dict[str, Any], fix: str
) -> None:
    """A 401 raises SourceAuthError naming the source, the key to fix and the permission the
    token needs; nothing is stored."""
    token_file = tmp_path / "github-token"
    token_file.write_text("ghp_expired\n")
    values = {"token": "ghp_expired", **overrides}
    if values["token"] is None:
        values["token_file"] = token_file
    with pytest.raises(SourceAuthError) as caught:
        make_source(github, **values).poll(SourceSink(store, "github"), NOW)
    assert str(caught.value) == (
        f"source 'github': {github.api.url} rejected the credentials (HTTP 401); {fix}"
    )
    assert rows(store) == []
    assert "ghp_expired" not in str(caught.value)


def test_token_file_is_read_at_every_poll(github: FakeGitHub, store: Store, tmp_path: Path) -> None:
    """A rotated token_file is used from the next poll on, without a restart."""
    token_file = tmp_path / "github-token"
    token_file.write_text("ghp_old\n")
    source = make_source(github, token=None, token_file=token_file)
    with pytest.raises(SourceAuthError):
        source.poll(SourceSink(store, "github"), NOW)
    token_file.write_text(f"  {TOKEN}\n")
    assert source.poll(SourceSink(store, "github"), NOW).new == 14


def test_unknown_repository_says_what_to_check(github: FakeGitHub, store: Store) -> None:
    """A 404 for a repository names it and explains GitHub's 404 for invisible private ones;
    the other repositories are still read."""
    source = make_source(github, repositories=["PyGithub/missing", REPO])
    with pytest.raises(SourceError) as caught:
        source.poll(SourceSink(store, "github"), NOW)
    assert str(caught.value) == (
        "source 'github': repository PyGithub/missing was not found (HTTP 404); check its name "
        "in `repositories` and that the token can read it (GitHub answers 404, not 403, for a "
        "private repository a token cannot see)"
    )
    assert len(rows(store)) == 14


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param({"number": 1}, False, id="issue_without_marker"),
        pytest.param(
            {"pull_request": {"html_url": None, "diff_url": None, "patch_url": None}},
            False,
            id="issue_2012_null_urls",
        ),
        pytest.param(
            {"pull_request": {"url": "https://api.github.com/repos/o/r/pulls/1"}},
            True,
            id="pull_request",
        ),
    ],
)
def test_pull_request_marker(item: dict[str, Any], expected: bool) -> None:
    """Only a pull_request object with URLs marks a pull request."""
    assert is_pull_request(item) is expected


MAINTAINERS = ResponseRules(
    mode="maintainers",
    responders=frozenset({"OWNER", "MEMBER", "COLLABORATOR"}),
    ignore_users=frozenset({"helper-account"}),
)
METRICS = ResponseRules(
    mode="issue-metrics", responders=MAINTAINERS.responders, ignore_users=frozenset()
)


@pytest.mark.parametrize(
    ("rules", "user", "association", "expected"),
    [
        pytest.param(
            MAINTAINERS,
            {"login": "renovate[bot]", "type": "Bot"},
            "MEMBER",
            (Direction.IGNORED, "comment by a bot"),
            id="bot_member",
        ),
        pytest.param(
            MAINTAINERS,
            {"login": "mybot[bot]"},
            "NONE",
            (Direction.IGNORED, "comment by a bot"),
            id="bot_by_login",
        ),
        pytest.param(
            MAINTAINERS,
            {"login": "Helper-Account"},
            "COLLABORATOR",
            (Direction.IGNORED, "comment by an ignored user (ignore_users)"),
            id="ignored_user",
        ),
        pytest.param(
            MAINTAINERS,
            {"login": "owner"},
            "OWNER",
            (Direction.OUTBOUND, "comment by a maintainer (OWNER)"),
            id="owner",
        ),
        pytest.param(
            MAINTAINERS,
            {"login": "someone"},
            "CONTRIBUTOR",
            (Direction.IGNORED, "comment by another user (CONTRIBUTOR)"),
            id="contributor_is_not_the_team",
        ),
        pytest.param(
            MAINTAINERS,
            {"login": "Reporter"},
            "NONE",
            (Direction.INBOUND, "follow-up by the issue's author"),
            id="author",
        ),
        pytest.param(
            METRICS,
            {"login": "someone"},
            "NONE",
            (Direction.OUTBOUND, "comment by someone other than the author (issue-metrics)"),
            id="metrics_anyone_else",
        ),
        pytest.param(
            METRICS,
            {"login": "github-actions[bot]", "type": "Bot"},
            "NONE",
            (Direction.IGNORED, "comment by a bot"),
            id="metrics_bot",
        ),
        pytest.param(
            METRICS,
            None,
            "NONE",
            (Direction.OUTBOUND, "comment by someone other than the author (issue-metrics)"),
            id="metrics_deleted_user",
        ),
    ],
)
def test_who_responds(
    rules: ResponseRules,
    user: dict[str, Any] | None,
    association: str,
    expected: tuple[Direction, str],
) -> None:
    """Comments on an issue opened by "reporter" count by mode, association, bots and
    ignore_users."""
    comment = {"user": user, "author_association": association}
    assert rules.comment("reporter", comment, closed=False) == expected


# --- reply semantics, end to end -------------------------------------------------------------

POLICY = Policy(name="oss", calendar="24x7", first_response=7 * 86400)


def verdict(store: Store, number: int, now: datetime) -> ConversationVerdict:
    cid = store.conversation_for_message("github", key(number, "opened"))
    assert cid is not None
    messages = clock_messages(store.messages(cid))
    return evaluate(messages, POLICY, BusinessCalendar.always_open(), now)


def issue(name: str, number: int) -> list[dict[str, Any]]:
    return [i for i in load(name) if i["number"] == number]


@pytest.fixture
def issue_26_with_bystanders(github: FakeGitHub) -> FakeGitHub:
    """Issue #26 with two added comments before the maintainer's: a bot's and a drive-by's."""
    github.comments = github.comments + load("added.json")["comments_on_26"]
    github.serve(issue("issues-2012-05-27.json", 26), AS_OF_27)
    return github


@pytest.mark.parametrize(
    ("mode", "responder", "stopped", "seconds"),
    [
        pytest.param("maintainers", "jacquev6", "2012-05-18T05:27:40Z", 62735, id="maintainers"),
        pytest.param(
            "issue-metrics", "drive-by-user", "2012-05-17T20:15:00Z", 29575, id="issue_metrics"
        ),
    ],
)
def test_first_response_by_mode(
    issue_26_with_bystanders: FakeGitHub,
    store: Store,
    mode: str,
    responder: str,
    stopped: str,
    seconds: int,
) -> None:
    """On the same issue the bot's comment never stops the clock; the drive-by user's comment
    stops it only in issue-metrics mode, the MEMBER's in maintainers mode: the documented
    difference between the two first-response times."""
    make_source(issue_26_with_bystanders, mode=mode).poll(SourceSink(store, "github"), NOW)
    first, follow_up = verdict(store, 26, NOW).clocks
    assert (first.clock.kind, first.clock.stop_reason, first.clock.responder) == (
        ClockKind.FIRST,
        StopReason.REPLY,
        responder,
    )
    assert (first.clock.stopped_at, first.business_seconds) == (stamp(stopped), seconds)
    assert (follow_up.clock.started_at, follow_up.clock.stopped_at) == (
        stamp("2012-05-18T08:34:04Z"),
        stamp("2012-05-21T11:17:12Z"),
    )


def test_closing_the_issue_stops_the_clock_as_solved(github: FakeGitHub, store: Store) -> None:
    """On #23 the reporter's follow-up gets no reply; closing the issue stops that clock as
    solved, not as a breach."""
    github.serve(issue("issues-2012-05-27.json", 23), AS_OF_27)
    make_source(github, since="60d").poll(SourceSink(store, "github"), NOW)
    first, follow_up = verdict(store, 23, NOW).clocks
    assert (first.clock.stop_reason, first.clock.stopped_at) == (
        StopReason.REPLY,
        stamp("2012-04-17T21:10:15Z"),
    )
    assert (follow_up.clock.stop_reason, follow_up.state, follow_up.clock.stopped_at) == (
        StopReason.SOLVED,
        ClockState.SOLVED,
        stamp("2012-04-23T20:23:29Z"),
    )


@pytest.fixture
def issue_28_today(github: FakeGitHub) -> FakeGitHub:
    """Issue #28 in current shapes: the 2025 recording, its comments and events from 2017."""
    github.comments = load("issue-28-2017-comments.json")
    github.events = load("issue-28-2017-events.json")
    github.serve([load("issue-28-2025.json")], "2025-08-16T19:36:44Z")
    return github


def test_current_shapes_of_a_maintainers_own_issue(
    issue_28_today: FakeGitHub, store: Store
) -> None:
    """In maintainers mode the MEMBER's own issue has no clock: the team spoke first, and the
    CONTRIBUTORs' later comments are neither questions nor replies."""
    now = datetime(2025, 8, 16, 20, 0, tzinfo=UTC)
    make_source(issue_28_today).poll(SourceSink(store, "github"), now)
    assert [(r[0], r[1], r[2]) for r in rows(store)] == [
        (key(28, "opened"), "outbound", OWN_ISSUE),
        (key(28, "event:16333959"), "ignored", "issue closed"),
        (key(28, "comment:20227753"), "ignored", "comment by another user (CONTRIBUTOR)"),
        (key(28, "comment:415570895"), "ignored", "comment by another user (CONTRIBUTOR)"),
        (key(28, "comment:415762819"), "ignored", "comment by another user (CONTRIBUTOR)"),
    ]
    assert verdict(store, 28, now).clocks == ()
    row = store.conn.execute(
        "SELECT subject, tags, link, attributes FROM messages WHERE identity = ?",
        (key(28, "opened"),),
    ).fetchone()
    assert tuple(row) == (
        "Issue created by PyGithub",
        "bug,question",
        "https://github.com/PyGithub/PyGithub/issues/28",
        '{"repository": "PyGithub/PyGithub"}',
    )


def test_issue_metrics_mode_stops_at_the_close_not_a_year_later(
    issue_28_today: FakeGitHub, store: Store
) -> None:
    """issue-metrics would time #28's first response to the 2013 comment; in issue-metrics
    mode replyclock stops the clock as solved when the issue was closed in 2012."""
    now = datetime(2025, 8, 16, 20, 0, tzinfo=UTC)
    make_source(issue_28_today, mode="issue-metrics").poll(SourceSink(store, "github"), now)
    [only] = verdict(store, 28, now).clocks
    assert (only.clock.started_at, only.clock.stopped_at, only.clock.stop_reason) == (
        stamp("2012-05-19T10:38:23Z"),
        stamp("2012-05-26T14:59:34Z"),
        StopReason.SOLVED,
    )


@pytest.fixture
def pull_request_38(github: FakeGitHub) -> FakeGitHub:
    added = load("added.json")
    github.reviews[38] = added["reviews_on_38"]
    github.serve([added["pull_request_38"]], AS_OF_29)
    return github


def test_pull_requests_are_skipped_by_default(pull_request_38: FakeGitHub, store: Store) -> None:
    """A pull request in the issues list is skipped (no further requests) unless configured,
    and the checkpoint still moves past it."""
    sink = SourceSink(store, "github")
    report = make_source(pull_request_38).poll(sink, LATER)
    assert (report.new, pull_request_38.paths()) == (0, [ISSUES])
    assert sink.checkpoint(f"issues_since:{REPO}") == "2012-05-29T12:00:00Z"


def test_reviews_respond_to_pull_requests_in_issue_metrics_mode(
    pull_request_38: FakeGitHub, store: Store
) -> None:
    """With include_pull_requests, a submitted review by someone other than the author is the
    response; a pending review is not stored."""
    source = make_source(pull_request_38, mode="issue-metrics", include_pull_requests=True)
    source.poll(SourceSink(store, "github"), LATER)
    assert [(r[0], r[1], r[2], r[4]) for r in rows(store)] == [
        (
            key(38, "opened"),
            "inbound",
            "issue opened (issue-metrics times every issue)",
            "drive-by-user",
        ),
        (
            key(38, "review:900000101"),
            "outbound",
            "review by someone other than the author (issue-metrics)",
            "jacquev6",
        ),
    ]
    [first] = verdict(store, 38, LATER).clocks
    assert (first.clock.stop_reason, first.business_seconds) == (StopReason.REPLY, 5400)


# --- check --connect -----------------------------------------------------------------------------


def test_probe_reports_the_user_permissions_rate_limit_repositories_and_first_sync(
    github: FakeGitHub,
) -> None:
    """The probe names the token's user, says a fine-grained token shows no scopes, reads the
    rate-limit headroom and the token's expiry, lists each repository with its open count
    (warning about one it cannot see) and counts with the search API what a first sync reads."""
    report = make_source(github, repositories=[REPO, "PyGithub/gone"]).probe(NOW)
    assert (report.source, report.kind) == ("github", "github")
    assert report.account == "jacquev6 (Vincent Jacques)"
    assert dict(report.details) == {
        "api": github.api.url,
        "signed in with": "token",
        "permissions seen": "none sent: a fine-grained token, whose permissions are set per "
        "repository",
        "token expires": "2025-11-13 21:31:56 +0100",
        "rate limit": "4997 of 5000 requests an hour left, renewed at 20:26 UTC",
        "repositories": "1 of 2 readable; counts are open issues and pull requests",
    }
    assert [(f.name, f.role, f.messages) for f in report.folders] == [
        (REPO, "watched", 373),
        ("PyGithub/gone", "watched", None),
    ]
    # issues 26, 15, 29, 28 and 30 were updated on or after 2012-05-20
    assert report.first_sync == f"5 issues updated since 2012-05-20 (since: 7d): {REPO} 5"
    assert report.warnings == [
        "repository PyGithub/gone is not visible to this token (HTTP 404): check its name in "
        "`repositories` and that the token can read it (GitHub answers 404, not 403, for a "
        "private repository a token cannot see)"
    ]
    sent = [(r.method, r.path, {k: v[0] for k, v in r.query.items()}) for r in github.api.requests]
    assert sent == [
        ("GET", "/user", {}),
        ("GET", f"/repos/{REPO}", {}),
        ("GET", "/repos/PyGithub/gone", {}),
        (
            "GET",
            "/search/issues",
            {"q": f"repo:{REPO} is:issue updated:>=2012-05-20", "per_page": "1"},
        ),
    ]


@pytest.mark.parametrize(
    ("scopes", "seen"),
    [
        pytest.param("repo, user", "scopes repo, user (a classic token)", id="classic"),
        pytest.param(
            "",
            "no scopes: a classic token without scopes reads public repositories only",
            id="classic_without_scopes",
        ),
    ],
)
def test_probe_shows_a_classic_tokens_scopes(github: FakeGitHub, scopes: str, seen: str) -> None:
    github.scopes = scopes
    details = dict(make_source(github).probe(NOW).details)
    assert details["permissions seen"] == seen
    assert "token expires" not in details


def test_probe_counts_pull_requests_when_they_are_read(github: FakeGitHub) -> None:
    """With include_pull_requests the first sync counts pull requests too, by a second search;
    a repository with issues turned off is warned about."""
    github.repository["has_issues"] = False
    report = make_source(github, include_pull_requests=True).probe(NOW)
    assert report.first_sync == (
        f"5 issues and pull requests updated since 2012-05-20 (since: 7d): {REPO} 5"
    )
    queries = [r.param("q") for r in github.api.requests if r.path == "/search/issues"]
    assert queries == [
        f"repo:{REPO} is:issue updated:>=2012-05-20",
        f"repo:{REPO} is:pr updated:>=2012-05-20",
    ]
    assert report.warnings == [f"issues are turned off in {REPO}: only its pull requests are read"]


def test_probe_reads_nothing_when_no_repository_is_visible(github: FakeGitHub) -> None:
    report = make_source(github, repositories=["PyGithub/gone"]).probe(NOW)
    assert report.first_sync == "nothing: no repository in `repositories` is readable"
    assert "/search/issues" not in github.paths()


@pytest.mark.parametrize("key", ["token", "token_file"])
def test_probe_of_a_refused_token_names_the_key(
    github: FakeGitHub, tmp_path: Path, key: str
) -> None:
    """A 401 on /user fails the probe naming the key and the permission the token needs."""
    values: dict[str, Any] = {"token": "ghp_expired"}
    if key == "token_file":
        token_file = tmp_path / "github-token"
        token_file.write_text("ghp_expired\n")
        values = {"token": None, "token_file": token_file}
    with pytest.raises(SourceAuthError) as caught:
        make_source(github, **values).probe(NOW)
    assert str(caught.value) == (
        f"source 'github': {github.api.url} rejected the credentials (HTTP 401); check {key}: "
        "a fine-grained token needs read-only access to Issues on every repository in "
        "`repositories`; a classic token needs the public_repo scope (repo for private "
        "repositories)"
    )
    assert "ghp_expired" not in str(caught.value)
    assert github.paths() == ["/user"]
