"""The GitHub source: issues (and optionally pull requests) of repositories, through REST.

Read-only: only GET requests, with a token that needs no write permission. For each configured
repository a poll lists the issues updated since the saved time (``sort=updated``, oldest
first), and for each one reads its comments and its events (and, for pull requests, its
reviews). Each issue is stored in one transaction together with its ``updated_at`` as the
repository's checkpoint, so a poll that fails half-way resumes after the last issue it stored.

What counts as a reply depends on ``mode``:

- ``maintainers`` (default): the team is whoever GitHub calls OWNER, MEMBER or COLLABORATOR
  (``responders``). Their comments are replies; the issue author's comments are customer
  follow-ups; anyone else's comment (a drive-by "+1") is neither.
- ``issue-metrics``: github/issue-metrics' "time to first response": any comment or review by
  someone other than the issue's author is a response, whoever they are.

In both modes comments by bots (``type: Bot`` or a login ending in ``[bot]``) and by
``ignore_users`` never count, closing an issue stops a running clock as solved, and an author's
comment on a closed issue is not a new customer message (GitHub does not reopen the issue).

``probe`` (for ``replyclock check --connect``) asks whom the token belongs to (``/user``), shows
the classic scopes GitHub sends with it (fine-grained tokens send none) and the rate-limit
headroom, looks up each repository, and counts with the search API what a first sync reads.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.models import GitHubSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import Response, source_api
from monitor.sources.probe import FolderFacts, ProbeReport

log = logging.getLogger("replyclock.sources.github")

PAGE_SIZE = 100  # GitHub's maximum per_page
API_VERSION = "2022-11-28"
STATUS_EVENTS = {"closed": "closed", "reopened": "open"}  # issue event -> ticket status

Json = Mapping[str, Any]


def checkpoint_key(repository: str) -> str:
    """The store key of a repository's position: the ``updated_at`` of its last stored issue."""
    return f"issues_since:{repository}"


def iso(instant: datetime) -> str:
    """An instant the way GitHub writes and reads them (``2012-05-27T05:40:15Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: object, what: str) -> datetime:
    """An aware UTC datetime from GitHub's ISO 8601 text, or ValueError naming ``what``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is missing or not a time: {value!r}")
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None:
        raise ValueError(f"{what} has no time zone: {value!r}")
    return instant.astimezone(UTC)


def is_pull_request(item: Json) -> bool:
    """Whether an issues-list item is a pull request.

    Current GitHub marks pull requests with a ``pull_request`` object; 2012-era answers gave
    every plain issue one too, with only null URLs, so the URLs decide.
    """
    marker = item.get("pull_request")
    return isinstance(marker, Mapping) and bool(marker.get("url") or marker.get("html_url"))


def login_of(user: object) -> str:
    """A user's login, lowercase; ``ghost`` for a deleted account (GitHub sends null)."""
    login = user.get("login") if isinstance(user, Mapping) else None
    return str(login).lower() if login else "ghost"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseRules:
    """Who responds on an issue and who waits, for one ``mode``."""

    mode: str  # maintainers | issue-metrics
    responders: frozenset[str]  # author_association values of the team (maintainers mode)
    ignore_users: frozenset[str]  # lowercase logins

    def excluded(self, user: object) -> str | None:
        """Why a user's comments never count (a bot, an ignored user), or None."""
        login = login_of(user)
        if login.endswith("[bot]") or (isinstance(user, Mapping) and user.get("type") == "Bot"):
            return "a bot"
        if login in self.ignore_users:
            return "an ignored user (ignore_users)"
        return None

    def opening(self, issue: Json) -> tuple[Direction, str]:
        """What the issue's own text is: the first customer message, or the team speaking."""
        if self.mode == "issue-metrics":
            return Direction.INBOUND, "issue opened (issue-metrics times every issue)"
        excluded = self.excluded(issue.get("user"))
        if excluded is not None:
            return Direction.IGNORED, f"issue opened by {excluded}"
        association = association_of(issue)
        if association in self.responders:
            return Direction.OUTBOUND, f"issue opened by a maintainer ({association})"
        return Direction.INBOUND, "issue opened"

    def comment(
        self, author: str, item: Json, *, closed: bool, what: str = "comment"
    ) -> tuple[Direction, str]:
        """What a comment (or a review) by ``item['user']`` on ``author``'s issue is."""
        user = item.get("user")
        excluded = self.excluded(user)
        if excluded is not None:
            return Direction.IGNORED, f"{what} by {excluded}"
        association = association_of(item)
        login = login_of(user)
        if self.mode == "maintainers" and association in self.responders:
            return Direction.OUTBOUND, f"{what} by a maintainer ({association})"
        if login == author:
            if what == "review":
                return Direction.IGNORED, "review by the pull request's author"
            if closed:
                return Direction.IGNORED, "comment by the issue's author on the closed issue"
            return Direction.INBOUND, "follow-up by the issue's author"
        if self.mode == "issue-metrics":
            return Direction.OUTBOUND, f"{what} by someone other than the author (issue-metrics)"
        return Direction.IGNORED, f"{what} by another user ({association})"


def association_of(item: Json) -> str:
    """GitHub's ``author_association`` (NONE when absent, as in payloads from before 2017)."""
    value = item.get("author_association")
    return str(value) if value else "NONE"


class GitHubSource:
    """The issues of one or more GitHub repositories, read with a token."""

    def __init__(
        self,
        config: GitHubSourceConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = config.name
        self.config = config
        self.rules = ResponseRules(
            mode=config.mode,
            responders=frozenset(config.responders),
            ignore_users=frozenset(u.lower() for u in config.ignore_users),
        )
        self._token: str | None = None
        # Issues stored by this process at the checkpoint's time: `since` is inclusive, so the
        # next listing shows them again; they are skipped without reading their comments.
        self._boundary: dict[str, tuple[datetime, set[int]]] = {}
        key = "token_file" if config.token_file is not None else "token"
        pulls = " and Pull requests" if config.include_pull_requests else ""
        self.api = source_api(
            config,
            headers=self._headers,
            what_to_fix=(
                f"check {key}: a fine-grained token needs read-only access to Issues{pulls} on "
                "every repository in `repositories`; a classic token needs the public_repo "
                "scope (repo for private repositories)"
            ),
            sleep=sleep,
            clock=clock,
        )

    # --- credentials -------------------------------------------------------------------------

    def _read_token(self) -> str:
        """The token, read fresh so that a rotated ``token_file`` is picked up."""
        cfg = self.config
        return read_secret(
            self.name,
            key="token_file",
            value=cfg.token.get_secret_value() if cfg.token else None,
            path=cfg.token_file,
        )

    def _headers(self) -> Mapping[str, str]:
        if self._token is None:
            self._token = self._read_token()
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "replyclock",
        }

    def close(self) -> None:
        """Forget the token; the next poll reads it again (there is no connection to close)."""
        self._token = None

    # --- check --connect ---------------------------------------------------------------------

    def probe(self, now: datetime) -> ProbeReport:
        """Sign in as a poll does and report the token's user, the permissions GitHub shows,
        the rate-limit headroom, each repository (with its open count) and how many issues a
        first sync would read. Only reads; never shows the token."""
        self._token = None  # read the secret fresh, as a poll does
        cfg = self.config
        answer = self.api.get("/user")
        user = answer.data if isinstance(answer.data, Mapping) else {}
        login, name = str(user.get("login") or "an unnamed user"), user.get("name")
        account = f"{login} ({name})" if isinstance(name, str) and name else login
        report = ProbeReport(source=self.name, kind="github", account=account)
        report.detail("api", self.api.base_url)
        report.detail(
            "signed in with",
            "token" + (f" from {cfg.token_file}" if cfg.token_file is not None else ""),
        )
        report.detail("permissions seen", _scopes(answer.headers))
        expires = answer.headers.get("github-authentication-token-expiration")
        if expires:
            report.detail("token expires", expires)
        report.detail("rate limit", _headroom(answer.headers))
        readable = [r for r in cfg.repositories if self._probe_repository(r, report)]
        report.detail(
            "repositories",
            f"{len(readable)} of {len(cfg.repositories)} readable; counts are open issues "
            "and pull requests",
        )
        report.first_sync = self._first_sync(readable, now)
        return report

    def _probe_repository(self, repository: str, report: ProbeReport) -> bool:
        """List one repository in the report; whether the token can read it."""
        facts = FolderFacts(name=repository, role="watched", messages=None)
        report.folders.append(facts)
        try:
            data = self.api.get(f"/repos/{repository}").data
        except SourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, urllib.error.HTTPError) and cause.code == 404:
                report.warnings.append(
                    f"repository {repository} is not visible to this token (HTTP 404): check "
                    "its name in `repositories` and that the token can read it (GitHub answers "
                    "404, not 403, for a private repository a token cannot see)"
                )
            else:
                report.warnings.append(f"repository {repository}: {exc.detail}")
            return False
        if not isinstance(data, Mapping):
            report.warnings.append(f"repository {repository}: the answer is not a JSON object")
            return False
        count = data.get("open_issues_count")
        facts.messages = count if isinstance(count, int) else None
        if data.get("has_issues") is False:
            report.warnings.append(
                f"issues are turned off in {repository}"
                + (
                    ": only its pull requests are read"
                    if self.config.include_pull_requests
                    else ": there is nothing to monitor"
                )
            )
        return True

    def _first_sync(self, repositories: list[str], now: datetime) -> str:
        """How many issues (and pull requests) updated since ``since`` a first sync reads."""
        if not repositories:
            return "nothing: no repository in `repositories` is readable"
        day = (now - timedelta(seconds=self.config.since)).date().isoformat()
        kinds = ("issue", "pr") if self.config.include_pull_requests else ("issue",)
        counts: list[str] = []
        total, incomplete = 0, False
        try:
            for repository in repositories:
                found = 0
                for kind in kinds:
                    query = f"repo:{repository} is:{kind} updated:>={day}"
                    data = self.api.get("/search/issues", {"q": query, "per_page": 1}).data
                    number = data.get("total_count") if isinstance(data, Mapping) else None
                    if not isinstance(number, int):
                        return "not counted: /search/issues answered without a total_count"
                    found += number
                    incomplete = incomplete or bool(data.get("incomplete_results"))
                total += found
                counts.append(f"{repository} {found:,}")
        except SourceError as exc:
            return f"not counted: {exc.detail}"
        noun = "issues and pull requests" if len(kinds) > 1 else "issues"
        return (
            f"{'at least ' if incomplete else ''}{total:,} {noun} updated since {day} (since: "
            f"{format_duration(self.config.since)}): {', '.join(counts)}"
        )

    # --- polling -----------------------------------------------------------------------------

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read every repository's issues updated since its checkpoint."""
        self._token = None  # read the secret once per poll, fresh
        report = PollReport(source=self.name)
        before = self.api.requests
        failures: list[str] = []
        try:
            for repository in self.config.repositories:
                try:
                    self._poll_repository(sink, repository, now, report)
                except SourceAuthError:
                    raise
                except SourceError as exc:  # one bad repository does not hide the others
                    failures.append(exc.detail)
        finally:
            report.round_trips = self.api.requests - before
        if failures:
            raise SourceError(self.name, "; ".join(failures))
        log.info(
            "poll finished",
            extra=fields(source=self.name, new=report.new, requests=report.round_trips),
        )
        return report

    def _poll_repository(
        self, sink: MessageSink, repository: str, now: datetime, report: PollReport
    ) -> None:
        key = checkpoint_key(repository)
        saved = sink.checkpoint(key)
        start = now - timedelta(seconds=self.config.since)
        written = parse_instant(saved, key) if saved else start
        done = since = written
        next_url: str | None = None
        while True:
            if next_url is None:
                response = self._list_issues(repository, since)
            else:
                response = self.api.get(next_url)
            for item in _items(response, self.name):
                updated = self._updated(repository, item)
                if self._wanted(repository, item, updated):
                    events = self.issue_events(repository, item)
                    result = sink.accept(
                        events, None, now, checkpoint=(key, iso(max(updated, done)))
                    )
                    report.add(repository, result.new, result.duplicates)
                    self._remember(repository, int(item["number"]), updated)
                    written = max(updated, done)
                done = max(done, updated)
            if done > written:  # only skipped items at the end of the page
                sink.save_checkpoint(key, iso(done), now)
                written = done
            link = response.link("next")
            if link is None:
                return
            if done > since:
                # Ask again from the last stored time rather than for page N+1: an issue
                # updated while we page moves to the end and would shift one past us.
                since, next_url = done, None
            else:  # a whole page within one second: only the page number can move on
                next_url = self._same_origin(link)

    def _list_issues(self, repository: str, since: datetime) -> Response:
        params = {
            "state": "all",
            "since": iso(since),
            "sort": "updated",
            "direction": "asc",
            "per_page": PAGE_SIZE,
        }
        try:
            return self.api.get(f"/repos/{repository}/issues", params)
        except SourceAuthError:
            raise
        except SourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, urllib.error.HTTPError) and cause.code == 404:
                raise SourceError(
                    self.name,
                    f"repository {repository} was not found (HTTP 404); check its name in "
                    "`repositories` and that the token can read it (GitHub answers 404, not "
                    "403, for a private repository a token cannot see)",
                ) from exc
            raise

    def _updated(self, repository: str, item: Json) -> datetime:
        try:
            return parse_instant(item.get("updated_at"), "updated_at")
        except ValueError as exc:
            number = item.get("number")
            raise SourceError(self.name, f"{repository}#{number}: {exc}") from exc

    def _wanted(self, repository: str, item: Json, updated: datetime) -> bool:
        if is_pull_request(item) and not self.config.include_pull_requests:
            return False
        boundary = self._boundary.get(repository)
        return not (boundary and boundary[0] == updated and item.get("number") in boundary[1])

    def _remember(self, repository: str, number: int, updated: datetime) -> None:
        boundary = self._boundary.get(repository)
        if boundary is not None and boundary[0] == updated:
            boundary[1].add(number)
        elif boundary is None or updated > boundary[0]:
            self._boundary[repository] = (updated, {number})

    def _same_origin(self, url: str) -> str:
        """A pagination URL, if it points at the API we were configured with (the token goes
        along with every request)."""
        if urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(self.api.base_url)[:2]:
            raise SourceError(
                self.name,
                f"a Link header points at another server ({url}); refusing to send the token "
                "there; check base_url",
            )
        return url

    def _all(self, path: str) -> Iterator[Json]:
        """Every item of a paginated list (``per_page=100``, following Link rel="next")."""
        response = self.api.get(path, {"per_page": PAGE_SIZE})
        while True:
            yield from _items(response, self.name)
            link = response.link("next")
            if link is None:
                return
            response = self.api.get(self._same_origin(link))

    # --- one issue ---------------------------------------------------------------------------

    def issue_events(self, repository: str, issue: Json) -> list[MessageEvent]:
        """The opening, comments, reviews and status changes of one issue, read from the API."""
        number = int(issue["number"])
        base = f"/repos/{repository}"
        comments: list[Json] = []
        if issue.get("comments", 1):  # a count of 0 saves the request
            comments = list(self._all(f"{base}/issues/{number}/comments"))
        history = list(self._all(f"{base}/issues/{number}/events"))
        reviews: list[Json] = []
        if is_pull_request(issue):
            reviews = list(self._all(f"{base}/pulls/{number}/reviews"))
        try:
            return self.build_events(repository, issue, comments, history, reviews)
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(
                self.name, f"{repository}#{number} has an unexpected shape ({exc})"
            ) from exc

    def build_events(
        self,
        repository: str,
        issue: Json,
        comments: list[Json],
        history: list[Json],
        reviews: list[Json],
    ) -> list[MessageEvent]:
        """Turn an issue and what was read about it into events (pure: no I/O)."""
        number = int(issue["number"])
        key = f"{repository}#{number}"
        author = login_of(issue.get("user"))
        statuses = sorted(
            (parse_instant(e.get("created_at"), "an event's created_at"), int(e["id"]), e)
            for e in history
            if e.get("event") in STATUS_EVENTS
        )

        def closed_before(instant: datetime) -> bool:
            last = [e for at, _, e in statuses if at < instant]
            return bool(last) and last[-1].get("event") == "closed"

        def event(
            identity: str,
            when: datetime,
            verdict: tuple[Direction, str],
            user: object,
            status: str | None = None,
        ) -> MessageEvent:
            login = user.get("login") if isinstance(user, Mapping) else None
            return MessageEvent(
                source=self.name,
                identity=f"{key}:{identity}",
                timestamp=when,
                direction=verdict[0],
                reason=verdict[1],
                author=login_of(user),
                author_name=str(login or "ghost"),
                subject=str(issue.get("title") or ""),
                thread=ThreadRef(conversation=key, customer=author),
                tags=tuple(str(label["name"]) for label in issue.get("labels") or ()),
                link=issue.get("html_url"),
                status=status,
                attributes={"repository": repository},
            )

        opened = parse_instant(issue.get("created_at"), "an issue's created_at")
        events = [event("opened", opened, self.rules.opening(issue), issue.get("user"))]
        for comment in comments:
            when = parse_instant(comment.get("created_at"), "a comment's created_at")
            verdict = self.rules.comment(author, comment, closed=closed_before(when))
            events.append(event(f"comment:{comment['id']}", when, verdict, comment.get("user")))
        for review in reviews:
            if review.get("state") == "PENDING" or not review.get("submitted_at"):
                continue  # a draft review nobody else can see yet
            when = parse_instant(review["submitted_at"], "a review's submitted_at")
            verdict = self.rules.comment(author, review, closed=False, what="review")
            events.append(event(f"review:{review['id']}", when, verdict, review.get("user")))
        for when, event_id, item in statuses:
            kind = str(item["event"])
            verdict = (Direction.IGNORED, f"issue {kind}")
            events.append(
                event(f"event:{event_id}", when, verdict, item.get("actor"), STATUS_EVENTS[kind])
            )
        if issue.get("state") == "closed" and not any(
            e.get("event") == "closed" for _, _, e in statuses
        ):
            when = parse_instant(issue.get("closed_at"), "a closed issue's closed_at")
            verdict = (Direction.IGNORED, "issue closed (no closed event listed: at closed_at)")
            events.append(event(f"closed:{iso(when)}", when, verdict, issue.get("closed_by")))
        return sorted(events, key=lambda e: (e.timestamp, e.identity))


def _scopes(headers: Mapping[str, str]) -> str:
    """What GitHub says about a token's permissions: a classic token's scopes come in
    ``X-OAuth-Scopes``; a fine-grained token sends no such header."""
    scopes = headers.get("x-oauth-scopes")
    if scopes is None:
        return "none sent: a fine-grained token, whose permissions are set per repository"
    if not scopes.strip():
        return "no scopes: a classic token without scopes reads public repositories only"
    return f"scopes {scopes.strip()} (a classic token)"


def _headroom(headers: Mapping[str, str]) -> str:
    """The token's rate-limit headroom, from an answer's headers."""
    limit, left = headers.get("x-ratelimit-limit"), headers.get("x-ratelimit-remaining")
    if not limit or not left:
        return "not reported"
    text = f"{left} of {limit} requests an hour left"
    try:
        reset = datetime.fromtimestamp(int(headers.get("x-ratelimit-reset", "")), UTC)
    except (ValueError, OverflowError, OSError):
        return text
    return f"{text}, renewed at {reset.strftime('%H:%M UTC')}"


def _items(response: Response, source: str) -> list[Json]:
    if not isinstance(response.data, list):
        raise SourceError(source, f"{response.url} did not answer a JSON list; check base_url")
    return [item for item in response.data if isinstance(item, Mapping)]
