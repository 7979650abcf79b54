"""The GitHub source against a fake REST API serving recorded PyGithub traffic (2012-2025)."""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest
from test_engine import rulebook

from monitor.config.models import GitHubSourceConfig
from monitor.engine import Engine, clock_messages
from monitor.errors import SourceAuthError, SourceError
from monitor.explain import explain
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
    ``as_of``; the issues list honours ``since`` and pages by ``page_size`` with Link headers.

    Every issue served so far is the repository's: ``state=open`` lists its open ones (oldest
    first, paged likewise) and ``/issues/{number}`` answers each. ``delete`` makes an issue
    answer 410 Gone (or 404) and leave the lists, ``transfer`` makes it answer 301 Moved
    Permanently to its place in another repository, and ``gone_on_read`` makes its comments
    and events answer that status (deleted between the list and the read)."""

    def __init__(self, *, page_size: int = 3) -> None:
        self.api = FakeApi()
        self.page_size = page_size
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = load("issue-comments.json")
        self.events: list[dict[str, Any]] = load("issue-events.json")
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.all_issues: dict[int, dict[str, Any]] = {}
        self.fates: dict[int, Answer] = {}  # what /issues/{number} answers for a gone issue
        self.gone_on_read: dict[int, int] = {}
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
            self.all_issues[number] = issue
            self.api.route(f"{ISSUES}/{number}", self.get_issue(number))
            self.api.route(f"{ISSUES}/{number}/comments", self.list_comments(issue))
            self.api.route(f"{ISSUES}/{number}/events", self.list_events(number))
            self.api.route(
                f"/repos/{REPO}/pulls/{number}/reviews",
                lambda r, n=number: (200, {}, self.reviews.get(n, [])),
            )

    def get_issue(self, number: int) -> Any:
        def answer(request: FakeRequest) -> Answer:
            return self.fates.get(number) or (200, {}, self.all_issues[number])

        return answer

    def delete(self, number: int, status: int = 410) -> None:
        """Delete the issue: GitHub answers 410 Gone, or 404 to a token without read access."""
        self.issues = [i for i in self.issues if i["number"] != number]
        del self.all_issues[number]
        message = "This issue was deleted" if status == 410 else "Not Found"
        self.fates[number] = (status, {}, {"message": message})

    def transfer(self, number: int, repository: str, to_number: int) -> dict[str, Any]:
        """Transfer the issue: it leaves this repository, and its old URL answers 301 to its
        new one (GitHub's /repositories/{id} form), which answers the moved issue."""
        moved = copy.deepcopy(self.all_issues.pop(number))
        self.issues = [i for i in self.issues if i["number"] != number]
        moved |= {
            "number": to_number,
            "url": f"https://api.github.com/repos/{repository}/issues/{to_number}",
            "repository_url": f"https://api.github.com/repos/{repository}",
            "html_url": f"https://github.com/{repository}/issues/{to_number}",
        }
        location = f"/repositories/4242/issues/{to_number}"
        self.api.route(location, lambda r: (200, {}, moved))
        body = {
            "message": "Moved Permanently",
            "url": f"{self.api.url}{location}",
            "documentation_url": "https://docs.github.com/rest/guides/best-practices-for-using"
            "-the-rest-api#follow-redirects",
        }
        self.fates[number] = (301, {"Location": f"{self.api.url}{location}"}, body)
        return moved

    def list_issues(self, request: FakeRequest) -> Answer:
        since = request.param("since", "")
        if request.param("state") == "open":
            wanted = sorted(
                (i for i in self.all_issues.values() if i["state"] == "open"),
                key=lambda i: i["number"],
            )
        else:
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
            if issue["number"] in self.gone_on_read:
                return self.gone_on_read[issue["number"]], {}, {"message": "Not Found"}
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
            if number in self.gone_on_read:
                return self.gone_on_read[number], {}, {"message": "This issue was deleted"}
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
    phrases = overrides.pop("closing_phrases", ())
    values.update(overrides)
    return GitHubSource(
        GitHubSourceConfig.model_validate(values),
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
        ISSUES,  # the open issues (24, 25, 27, 30), compared with the known ones: first time
        ISSUES,
    ]
    first, again, *open_pages = (r for r in github.api.requests if r.path == ISSUES)
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
    assert [r.query for r in open_pages] == [
        {"state": ["open"], "sort": ["created"], "direction": ["asc"], "per_page": ["100"]},
        {
            "state": ["open"],
            "sort": ["created"],
            "direction": ["asc"],
            "per_page": ["100"],
            "page": ["2"],
        },
    ]
    assert json.loads(SourceSink(store, "github").checkpoint(f"open_issues:{REPO}") or "") == {
        "checked": "2012-05-27T08:00:00Z",
        "numbers": [24, 25, 27, 30],
    }


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
    assert [r.param("since") for r in github.api.requests if r.param("since")][-1] == (
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
    assert (report.new, pull_request_38.paths()) == (0, [ISSUES] * 3)  # since; open, 2 pages
    # the open pull request is not among the open issues watched for deletions and transfers
    assert json.loads(sink.checkpoint(f"open_issues:{REPO}") or "")["numbers"] == [24, 25, 27, 30]
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


# --- closing messages --------------------------------------------------------------------------

CLOSER_RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h, next_response: 1h}
"""
UPLOAD = "https://github.com/user-attachments/assets/4f1c9d2e-8a7b-4c3d-9e0f-1a2b3c4d5e6f"


def serve_issues(github: FakeGitHub, answers: dict[int, str], unanswered: dict[int, str]) -> None:
    """Issues like #27 (bilderbuchi's, NONE), titled "issue <n>" and opened at 05:00 on NOW's
    day. Those in ``answers`` the MEMBER answered at 06:00 and the author answered at 07:00 with
    the Markdown given; those in ``unanswered`` were opened with the text given."""
    [template] = issue("issues-2012-05-27.json", 27)
    [member] = [c for c in load("issue-comments.json") if c["id"] == 5820199]
    [author] = [c for c in load("issue-comments.json") if c["id"] == 5820912]
    issues, comments = [], []
    for n, text in {**answers, **unanswered}.items():
        body = text if n in unanswered else "The router does not connect. Can you help?"
        updated = "2012-05-27T07:00:00Z" if n in answers else "2012-05-27T05:00:00Z"
        issues.append(
            copy.deepcopy(template)
            | {
                "number": n,
                "id": 9_000_000 + n,
                "title": f"issue {n}",
                "body": body,
                "comments": 2 if n in answers else 0,
                "created_at": "2012-05-27T05:00:00Z",
                "updated_at": updated,
                "url": f"https://api.github.com/repos/{REPO}/issues/{n}",
                "html_url": f"https://github.com/{REPO}/issues/{n}",
            }
        )
        if n in answers:
            issue_url = f"https://api.github.com/repos/{REPO}/issues/{9_000_000 + n}"
            for comment, offset, words in ((member, 1, "Please restart it."), (author, 2, text)):
                stamped = f"2012-05-27T0{5 + offset}:00:00Z"
                comments.append(
                    copy.deepcopy(comment)
                    | {
                        "id": n * 10 + offset,
                        "issue_url": issue_url,
                        "body": words,
                        "created_at": stamped,
                        "updated_at": stamped,
                    }
                )
    github.comments, github.events = comments, []
    github.serve(issues, "2012-05-27T07:30:00Z")


def closing_column(store: Store) -> dict[str, str | None]:
    return dict(
        store.conn.execute("SELECT identity, closing FROM messages WHERE direction = 'inbound'")
    )


def waiting_subjects(store: Store, tmp_path: Path) -> list[str]:
    engine = Engine(store, rulebook(tmp_path, "closers", CLOSER_RULES))
    engine.evaluate(NOW)
    return sorted(w.conversation.subject for w in engine.waiting(NOW))


def test_an_authors_thank_you_after_the_reply_starts_no_clock(
    github: FakeGitHub, store: Store, tmp_path: Path
) -> None:
    """After the MEMBER's comment, the author's "Thanks, that fixed it!" is a closing message:
    no clock, and only its words are kept (the body is not stored). "Thanks, but it still
    fails", a "Thanks!" with an uploaded screenshot and an issue opened with "Thanks!" (a
    request, whatever it says) each wait for a reply."""
    serve_issues(
        github,
        {
            101: "Thanks, that fixed it!",
            102: "Thanks, but it still fails",
            103: f"Thanks!\r\n\r\n![still-broken](<{UPLOAD}>)",
        },
        {104: "Thanks!"},
    )
    make_source(github).poll(SourceSink(store, "github"), NOW)
    assert closing_column(store) == {
        key(101, "opened"): None,
        key(101, "comment:1012"): "Thanks, that fixed it!",
        key(102, "opened"): None,
        key(102, "comment:1022"): None,
        key(103, "opened"): None,
        key(103, "comment:1032"): None,
        key(104, "opened"): None,
    }
    assert waiting_subjects(store, tmp_path) == ["issue 102", "issue 103", "issue 104"]
    cid = store.conversation_for_message("github", key(101, "comment:1012"))
    assert cid is not None
    text = "\n".join(explain(store, rulebook(tmp_path, "closers", CLOSER_RULES), cid, NOW))
    assert "not a clock: closing message ('Thanks, that fixed it!')" in text
    columns = {row[1] for row in store.conn.execute("PRAGMA table_info(messages)")}
    assert "body" not in columns


def test_with_closers_count_a_thank_you_starts_a_clock(
    github: FakeGitHub, store: Store, tmp_path: Path
) -> None:
    """``closers: count``: the author's "Thanks, that fixed it!" is a message like any other
    and waits for a reply; nothing is marked as closing."""
    serve_issues(github, {101: "Thanks, that fixed it!"}, {})
    make_source(github, closers="count").poll(SourceSink(store, "github"), NOW)
    assert set(closing_column(store).values()) == {None}
    assert waiting_subjects(store, tmp_path) == ["issue 101"]


def test_closing_phrases_quotes_and_uploads_in_markdown(github: FakeGitHub, store: Store) -> None:
    """Phrases from the rules files (``closing_phrases``; "kiitos paljon" is no built-in one)
    make a comment closing; a Markdown quote of the maintainer's comment is history, not the
    author's words; an uploaded image is an attachment, even alone with "Thanks!"."""
    serve_issues(
        github,
        {
            101: "Kiitos paljon!",
            102: "> Please restart it.\n\nThanks, that fixed it!",
            103: f"Thanks! {UPLOAD}",
        },
        {},
    )
    make_source(github, closing_phrases=("kiitos paljon",)).poll(SourceSink(store, "github"), NOW)
    closing = closing_column(store)
    assert [closing[key(n, f"comment:{n}2")] for n in (101, 102, 103)] == [
        "Kiitos paljon!",
        "Thanks, that fixed it!",
        None,
    ]


# --- deleted and transferred issues ------------------------------------------------------------

T1 = datetime(2012, 5, 18, 12, 0, tzinfo=UTC)  # #27's author has waited an hour for an answer
AS_OF_18 = "2012-05-18T11:06:11Z"  # #27's last update, as the 2012-05-27 recording shows it
OTHER = "PyGithub/Other"  # a second repository of the same owner (synthetic, below)


@pytest.fixture
def waiting_27() -> Iterator[FakeGitHub]:
    """#27 as it stood on 2012-05-18: opened by bilderbuchi (NONE), no comment, no answer."""
    server = FakeGitHub()
    server.serve(issue("issues-2012-05-27.json", 27), AS_OF_18)
    server.api.start()
    yield server
    server.api.stop()


class OtherRepository:
    """A second repository of the same owner on the fake server: its issues list (``since``,
    or ``state=open``) and each issue with its comments and events, in one page each."""

    def __init__(self, server: FakeGitHub) -> None:
        self.server = server
        self.issues: dict[int, dict[str, Any]] = {}
        server.api.route(f"/repos/{OTHER}/issues", self.list)

    def add(self, issue: dict[str, Any], comments: list[Any], events: list[Any]) -> None:
        number = issue["number"]
        self.issues[number] = issue
        base = f"/repos/{OTHER}/issues/{number}"
        self.server.api.route(base, lambda r: (200, {}, issue))
        self.server.api.route(f"{base}/comments", lambda r: (200, {}, comments))
        self.server.api.route(f"{base}/events", lambda r: (200, {}, events))

    def list(self, request: FakeRequest) -> Answer:
        if request.param("state") == "open":
            found = [i for i in self.issues.values() if i["state"] == "open"]
            return 200, {}, sorted(found, key=lambda i: i["number"])
        since = request.param("since", "") or ""
        found = [i for i in self.issues.values() if i["updated_at"] >= since]
        return 200, {}, sorted(found, key=lambda i: (i["updated_at"], i["number"]))


def transferred_event(at: datetime) -> dict[str, Any]:
    """A "transferred" issue event: the recorded 2017 event shape (common properties only, as
    GitHub's issue event types document for it), with a synthetic id and time."""
    [recorded] = [e for e in load("issue-28-2017-events.json") if e["id"] == 15819975]
    return recorded | {
        "id": 900000201,
        "node_id": "synthetic-transferred-event",
        "url": f"https://api.github.com/repos/{OTHER}/issues/events/900000201",
        "event": "transferred",
        "created_at": iso(at),
    }


def maintainer_reply(at: datetime) -> dict[str, Any]:
    """A comment by jacquev6 (MEMBER) on Other#3: the recorded 2017 comment shape."""
    [recorded] = [c for c in load("issue-28-2017-comments.json") if c["id"] == 20227753]
    actor = transferred_event(at)["actor"]
    return recorded | {
        "id": 900000202,
        "url": f"https://api.github.com/repos/{OTHER}/issues/comments/900000202",
        "html_url": f"https://github.com/{OTHER}/issues/3#issuecomment-900000202",
        "issue_url": f"https://api.github.com/repos/{OTHER}/issues/3",
        "user": actor,
        "author_association": "MEMBER",
        "created_at": iso(at),
        "updated_at": iso(at),
        "body": "Moved here: this is where it belongs. Fixed in 0.6.",
    }


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def first_poll(server: FakeGitHub, store: Store, **overrides: Any) -> GitHubSource:
    """Poll at T1, when #27 waits; the open issues are compared for the first time."""
    source = make_source(server, since="30d", **overrides)
    source.poll(SourceSink(store, "github"), T1)
    [running] = verdict(store, 27, T1).clocks
    assert (running.clock.running, running.state) == (True, ClockState.OK)
    return source


def stopped(store: Store, now: datetime) -> tuple[Any, ...]:
    [clock] = verdict(store, 27, now).clocks
    return (clock.clock.stop_reason, clock.clock.stopped_at, clock.state, clock.breached)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(
            410, "issue deleted on GitHub (HTTP 410 Gone; counted as closed)", id="gone_410"
        ),
        pytest.param(
            404,
            "issue no longer visible on GitHub (HTTP 404: deleted, or transferred to a "
            "repository the token cannot read; counted as closed)",
            id="not_found_404",
        ),
    ],
)
def test_a_deleted_issue_stops_its_waiting_authors_clock(
    waiting_27: FakeGitHub, store: Store, status: int, reason: str
) -> None:
    """#27's author has waited since 10:52. A poll five minutes on does not compare the open
    issues yet (one request). Then #27 is deleted: it leaves the issues lists, and the next
    poll due to compare (15 minutes on) misses it among the open issues, asks for it, gets 410
    (404 to a token without access) and closes it then. The poll does not fail, and the clock
    stops as solved: neither a reply nor a breach."""
    source, sink = first_poll(waiting_27, store), SourceSink(store, "github")
    assert source.poll(sink, T1 + timedelta(minutes=5)).round_trips == 1
    waiting_27.delete(27, status)
    seen = T1 + timedelta(minutes=20)
    before = len(waiting_27.api.requests)
    report = source.poll(sink, seen)
    assert waiting_27.paths()[before:] == [ISSUES, ISSUES, f"{ISSUES}/27"]
    assert waiting_27.api.requests[before + 1].param("state") == "open"
    assert (report.new, report.duplicates) == (1, 0)
    assert rows(store)[-1] == (
        key(27, "deleted"),
        "ignored",
        reason,
        int(seen.timestamp()),
        "",
        "closed",
    )
    assert stopped(store, seen) == (StopReason.SOLVED, seen, ClockState.SOLVED, False)
    assert json.loads(sink.checkpoint(f"open_issues:{REPO}") or "") == {
        "checked": iso(seen),
        "numbers": [],
    }


def test_an_issue_transferred_to_an_unwatched_repository_is_closed(
    waiting_27: FakeGitHub, store: Store
) -> None:
    """#27 is transferred to PyGithub/Sandbox, which this source does not read: its old URL
    answers 301 Moved Permanently, followed to the issue in its new place, which names the
    other repository. The issue is closed here when that was seen, naming where it went."""
    source, sink = first_poll(waiting_27, store), SourceSink(store, "github")
    waiting_27.transfer(27, "PyGithub/Sandbox", 3)
    seen = T1 + timedelta(minutes=20)
    before = len(waiting_27.api.requests)
    report = source.poll(sink, seen)
    assert waiting_27.paths()[before:] == [
        ISSUES,
        ISSUES,
        f"{ISSUES}/27",
        "/repositories/4242/issues/3",  # the redirect, followed with the token
    ]
    assert report.new == 1
    assert rows(store)[-1] == (
        key(27, "transferred"),
        "ignored",
        "issue transferred to PyGithub/Sandbox#3, a repository this source does not watch "
        "(counted as closed)",
        int(seen.timestamp()),
        "",
        "closed",
    )
    assert stopped(store, seen) == (StopReason.SOLVED, seen, ClockState.SOLVED, False)


@pytest.mark.parametrize(
    "repositories",
    [pytest.param([REPO, OTHER], id="old_read_first"), pytest.param([OTHER, REPO], id="new_first")],
)
def test_an_issue_transferred_to_a_watched_repository_goes_on_there(
    waiting_27: FakeGitHub, store: Store, repositories: list[str]
) -> None:
    """#27 is transferred to PyGithub/Other, which this source reads too, where it is #3 and a
    maintainer answers it. #27 is not closed: Other#3's events keep #27's key, so the one wait
    is one conversation and one clock, stopped by the reply given there, and no closing is
    counted. Whichever repository is read first: Other#3's "transferred" event has the other
    repositories of its owner compared before it is stored, which finds where it came from."""
    other = OtherRepository(waiting_27)
    source = first_poll(waiting_27, store, repositories=repositories)
    sink = SourceSink(store, "github")
    moved_at, answered_at = T1 + timedelta(minutes=10), T1 + timedelta(minutes=15)
    moved = waiting_27.transfer(27, OTHER, 3)
    moved |= {"updated_at": iso(answered_at), "comments": 1}
    other.add(moved, [maintainer_reply(answered_at)], [transferred_event(moved_at)])
    seen = T1 + timedelta(minutes=20)
    report = source.poll(sink, seen)
    assert (report.new, report.duplicates) == (2, 1)  # the opening is #27's, already stored
    assert [r[:3] for r in rows(store)] == [
        (key(27, "opened"), "inbound", "issue opened"),
        (
            key(27, "event:900000201"),
            "ignored",
            f"issue transferred here, to {OTHER}#3, from {REPO}#27: its wait goes on",
        ),
        (key(27, "comment:900000202"), "outbound", "comment by a maintainer (MEMBER)"),
    ]
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1
    [answered] = verdict(store, 27, seen).clocks
    assert (
        answered.clock.stop_reason,
        answered.clock.responder,
        answered.clock.stopped_at,
        answered.breached,
    ) == (StopReason.REPLY, "jacquev6", answered_at, False)
    assert sink.checkpoint(f"moved:{OTHER}#3") == f"{REPO}#27"
    assert json.loads(sink.checkpoint(f"open_issues:{OTHER}") or "")["numbers"] == [3]
    again = source.poll(sink, seen + timedelta(minutes=20))
    assert (again.new, len(rows(store))) == (0, 3)


def test_an_issue_transferred_in_from_elsewhere_is_a_conversation_of_its_own(
    waiting_27: FakeGitHub, store: Store
) -> None:
    """An issue transferred into PyGithub/Other from a repository this source does not read
    has the other watched repository of its owner compared first (its open issues listed);
    nothing there went to it, so it is a conversation of its own, under its own key, and
    later polls need not look again."""
    other = OtherRepository(waiting_27)
    source = first_poll(waiting_27, store, repositories=[OTHER, REPO])
    sink = SourceSink(store, "github")
    arrived = copy.deepcopy(waiting_27.all_issues[27])
    arrived |= {
        "number": 5,
        "id": 900000301,
        "created_at": iso(T1 + timedelta(minutes=1)),
        "updated_at": iso(T1 + timedelta(minutes=2)),
        "repository_url": f"https://api.github.com/repos/{OTHER}",
        "html_url": f"https://github.com/{OTHER}/issues/5",
    }
    other.add(arrived, [], [transferred_event(T1 + timedelta(minutes=2))])
    before = len(waiting_27.api.requests)
    source.poll(sink, T1 + timedelta(minutes=5))
    assert [(r.path, r.param("state")) for r in waiting_27.api.requests[before:]] == [
        (f"/repos/{OTHER}/issues", "all"),
        (f"/repos/{OTHER}/issues/5/events", None),
        (ISSUES, "open"),  # where could it have come from? not from #27, still open
        (ISSUES, "all"),
    ]
    assert [r[:3] for r in rows(store) if r[0].startswith(OTHER)] == [
        (f"{OTHER}#5:opened", "inbound", "issue opened"),
        (
            f"{OTHER}#5:event:900000201",
            "ignored",
            f"issue transferred here, to {OTHER}#5, from a repository this source does not "
            "watch (or from an issue it never read): its wait is timed here",
        ),
    ]
    assert sink.checkpoint(f"moved:{OTHER}#5") == f"{OTHER}#5"
    assert store.conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 2


def test_an_issue_deleted_between_the_list_and_the_read_is_closed_and_the_poll_goes_on(
    waiting_27: FakeGitHub, store: Store
) -> None:
    """#27 is listed as updated, but deleted before its events are read: they answer 410. The
    poll does not fail, the issue is closed when that was seen, and it is no longer among the
    open issues to compare."""
    source, sink = first_poll(waiting_27, store), SourceSink(store, "github")
    waiting_27.issues[0]["updated_at"] = "2012-05-18T12:05:00Z"
    waiting_27.gone_on_read[27] = 410
    seen = T1 + timedelta(minutes=10)  # not yet due to compare the open issues
    report = source.poll(sink, seen)
    assert (report.new, report.round_trips) == (1, 2)
    assert rows(store)[-1][:4] == (
        key(27, "deleted"),
        "ignored",
        "issue deleted on GitHub (HTTP 410 Gone; counted as closed)",
        int(seen.timestamp()),
    )
    assert stopped(store, seen) == (StopReason.SOLVED, seen, ClockState.SOLVED, False)
    assert json.loads(sink.checkpoint(f"open_issues:{REPO}") or "")["numbers"] == []


def test_a_deleted_issue_never_stored_leaves_nothing(github: FakeGitHub, store: Store) -> None:
    """The open issues compared include ones the first sync did not read (#24: not updated
    within `since`). One of those deleted is dropped from them, and nothing is stored for it."""
    source, sink = make_source(github), SourceSink(store, "github")
    source.poll(sink, NOW)
    assert json.loads(sink.checkpoint(f"open_issues:{REPO}") or "")["numbers"] == [24, 25, 27, 30]
    github.delete(24)
    report = source.poll(sink, NOW + timedelta(minutes=20))
    assert f"{ISSUES}/24" in github.paths()
    assert (report.new, len(rows(store))) == (0, len(FIRST_SYNC))
    assert json.loads(sink.checkpoint(f"open_issues:{REPO}") or "")["numbers"] == [25, 27, 30]


def test_comparing_the_open_issues_failing_does_not_fail_the_poll(
    waiting_27: FakeGitHub, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """When the open issues cannot be listed (HTTP 502 after the retries), the poll still
    succeeds with what it read, warns, and compares them at the next poll."""
    source, sink = first_poll(waiting_27, store), SourceSink(store, "github")
    broken = {"on": True}

    def flaky(request: FakeRequest) -> Answer:
        if broken["on"] and request.param("state") == "open":
            return 502, {}, {"message": "Server Error"}
        return waiting_27.list_issues(request)

    waiting_27.api.route(ISSUES, flaky)
    waiting_27.delete(27)
    report = source.poll(sink, T1 + timedelta(minutes=20))
    assert report.new == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][-1] == (
        "open issues not compared: deleted or transferred issues are found later"
    )
    broken["on"] = False
    seen = T1 + timedelta(minutes=21)
    assert source.poll(sink, seen).new == 1
    assert stopped(store, seen) == (StopReason.SOLVED, seen, ClockState.SOLVED, False)


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
