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

With ``closers: ignore`` (the default) a customer's comment (the issue author's follow-up)
that is only a closing phrase ("Thanks, that fixed it!") is marked as a closing message, so it
starts no next-response clock: its Markdown ``body`` is read as plain text by
``monitor.mail.closers.closing_message`` (an image, ``![...]`` or ``<img``, and a link to an
upload, ``github.com/user-attachments`` or ``*.githubusercontent.com``, count as an
attachment), and only the verdict's few words are kept. The issue's own text opens it and is a
request, whatever it says.

Deleted and transferred issues leave the issues list without a word, so each repository's open
issues are compared with the ones it had (kept with the checkpoints; issues opened or closed by
a poll update them) every ``reconcile_interval`` (15 minutes): one list request per hundred open
issues, and a look at each one that is gone. GitHub answers such an issue with 410 Gone
(deleted), 404 (deleted, or transferred where the token cannot see it) or 301 Moved
Permanently to its new place (transferred). A deleted issue, or one transferred to a repository
this source does not watch, gets one ``closed`` status event then, so its waiting customer's
clock stops (counted as closed, not a breach). One transferred to a watched repository is not
closed: its conversation continues there -- the issue's events in its new repository keep the
old issue's key, so the one wait is one clock, stopped by the reply given there. An issue whose
events show it was transferred in has its old repositories (watched, same owner: GitHub only
transfers within an owner) compared at once, so the order repositories are read in does not
matter. An issue that answers 404 or 410 while its comments or events are read is closed then,
without failing the poll.

``probe`` (for ``replyclock check --connect``) asks whom the token belongs to (``/user``), shows
the classic scopes GitHub sends with it (fine-grained tokens send none) and the rate-limit
headroom, looks up each repository, and counts with the search API what a first sync reads.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.models import GitHubSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.closers import closing_quote
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import Response, http_status, source_api
from monitor.sources.probe import FolderFacts, ProbeReport

log = logging.getLogger("replyclock.sources.github")

PAGE_SIZE = 100  # GitHub's maximum per_page
API_VERSION = "2022-11-28"
STATUS_EVENTS = {"closed": "closed", "reopened": "open"}  # issue event -> ticket status
RECONCILE_INTERVAL = timedelta(minutes=15)  # how often open issues are compared for the gone
# What an image or an uploaded file looks like in a comment's Markdown (lowercase).
ATTACHMENT_MARKERS = ("github.com/user-attachments/", "githubusercontent.com/", "![", "<img")

Json = Mapping[str, Any]


def checkpoint_key(repository: str) -> str:
    """The store key of a repository's position: the ``updated_at`` of its last stored issue."""
    return f"issues_since:{repository}"


def open_issues_key(repository: str) -> str:
    """The store key of a repository's open issues, as last compared with GitHub's."""
    return f"open_issues:{repository}"


def moved_key(repository: str, number: int) -> str:
    """The store key naming the conversation an issue transferred into ``repository`` goes on
    in: the old issue's key, or its own when it came from a repository not watched."""
    return f"moved:{repository}#{number}"


@dataclass(slots=True)
class OpenIssues:
    """The open issues of one repository this source knows of, and when they were last
    compared with the ones GitHub lists (None: never)."""

    checked: datetime | None = None
    numbers: set[int] = field(default_factory=set)

    def dump(self) -> str:
        """The checkpoint text."""
        checked = iso(self.checked) if self.checked is not None else None
        return json.dumps({"checked": checked, "numbers": sorted(self.numbers)})

    @classmethod
    def load(cls, text: str | None) -> OpenIssues:
        """A saved checkpoint; an empty one, never compared, when there is none."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            checked = parse_instant(data["checked"], "checked") if data.get("checked") else None
            return cls(checked, {int(n) for n in data.get("numbers", ())})
        except (ValueError, KeyError, TypeError):
            return cls()


@dataclass(frozen=True, slots=True)
class Gone:
    """An issue GitHub answers 410 Gone (deleted) or 404 Not Found for."""

    status: int


@dataclass(frozen=True, slots=True)
class Moved:
    """An issue transferred to another repository, and its number there."""

    repository: str
    number: int


@dataclass(frozen=True, slots=True)
class Stays:
    """An issue still in its repository (closed, or listed while the open list was paged)."""

    open: bool


Fate = Gone | Moved | Stays


def repository_of(issue: Json) -> str | None:
    """``owner/name`` of the repository an issue's JSON places it in."""
    url = issue.get("repository_url")
    if isinstance(url, str) and "/repos/" in url:
        return url.rsplit("/repos/", 1)[1].strip("/") or None
    html = issue.get("html_url")
    if isinstance(html, str) and "/issues/" in html:
        parts = urllib.parse.urlsplit(html).path.strip("/").split("/")
        return "/".join(parts[:2]) if len(parts) >= 2 else None
    return None


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


def comment_closing(comment: Json, extra_phrases: Sequence[str] = ()) -> str | None:
    """The words of a comment that is only a closing phrase ("Thanks!"), else None. Its
    Markdown ``body`` is read as plain text; an image or an uploaded file (GitHub puts uploads
    in the Markdown as links) makes it more than a closing phrase. The body is not kept: only the
    verdict's quote (at most 40 characters)."""
    lower = str(comment.get("body") or "").lower()
    return closing_quote(
        comment,
        (("body", "text/plain"),),
        has_attachment=any(marker in lower for marker in ATTACHMENT_MARKERS),
        extra_phrases=extra_phrases,
    )


def association_of(item: Json) -> str:
    """GitHub's ``author_association`` (NONE when absent, as in payloads from before 2017)."""
    value = item.get("author_association")
    return str(value) if value else "NONE"


class GitHubSource:
    """The issues of one or more GitHub repositories, read with a token."""

    reconcile_interval = RECONCILE_INTERVAL

    def __init__(
        self,
        config: GitHubSourceConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        closing_phrases: Sequence[str] = (),
    ) -> None:
        self.name = config.name
        self.config = config
        self.closing_phrases = tuple(closing_phrases)  # the rules files' extra phrases
        self.rules = ResponseRules(
            mode=config.mode,
            responders=frozenset(config.responders),
            ignore_users=frozenset(u.lower() for u in config.ignore_users),
        )
        self._token: str | None = None
        # Issues stored by this process at the checkpoint's time: `since` is inclusive, so the
        # next listing shows them again; they are skipped without reading their comments.
        self._boundary: dict[str, tuple[datetime, set[int]]] = {}
        self._open: dict[str, OpenIssues] = {}  # each repository's open issues, this poll
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
        """Read every repository's issues updated since its checkpoint, and compare its open
        issues with GitHub's when that is due."""
        self._token = None  # read the secret once per poll, fresh
        self._open = {}  # read again from the store: another replica may have moved them on
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
        self._read_updated(sink, repository, now, report)
        checked = self._open_issues(sink, repository).checked
        if checked is not None and now - checked < self.reconcile_interval:
            return
        try:
            self._reconcile(sink, repository, now, report)
        except SourceAuthError:
            raise
        except SourceError as exc:
            # The updated issues are stored; the comparison is tried again at the next poll.
            log.warning(
                "open issues not compared: deleted or transferred issues are found later",
                extra=fields(source=self.name, repository=repository, error=exc.detail),
            )

    def _read_updated(
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
                    number = int(item["number"])
                    events, exists = self._read_issue(sink, repository, item, now, report)
                    result = sink.accept(
                        events, None, now, checkpoint=(key, iso(max(updated, done)))
                    )
                    report.add(repository, result.new, result.duplicates)
                    self._remember(repository, number, updated)
                    if not is_pull_request(item):  # pull requests are not moved or deleted
                        still_open = exists and item.get("state") == "open"
                        self._track(sink, repository, number, still_open, now)
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

    # --- deleted and transferred issues ------------------------------------------------------

    def _open_issues(self, sink: MessageSink, repository: str) -> OpenIssues:
        """The repository's known open issues, read from the store once a poll."""
        if repository not in self._open:
            self._open[repository] = OpenIssues.load(sink.checkpoint(open_issues_key(repository)))
        return self._open[repository]

    def _track(
        self, sink: MessageSink, repository: str, number: int, is_open: bool, now: datetime
    ) -> None:
        """Note that an issue read by this poll is open (or not any more)."""
        known = self._open_issues(sink, repository)
        if is_open == (number in known.numbers):
            return
        if is_open:
            known.numbers.add(number)
        else:
            known.numbers.discard(number)
        sink.save_checkpoint(open_issues_key(repository), known.dump(), now)

    def _reconcile(
        self, sink: MessageSink, repository: str, now: datetime, report: PollReport
    ) -> None:
        """Compare the repository's known open issues with the ones GitHub lists open, and
        settle each one gone from the list: deleted, transferred, or merely closed."""
        known = self._open_issues(sink, repository)
        listed, names = self._list_open(repository)
        events: list[MessageEvent] = []
        kept: set[int] = set()
        for number in sorted(known.numbers - listed):
            fate = self._fate(repository, number, names)
            if isinstance(fate, Stays):
                if fate.open:  # missed while the list was paged: still open
                    kept.add(number)
                continue
            events.extend(self._settle(sink, repository, number, fate, now))
        known.numbers, known.checked = listed | kept, now
        result = sink.accept(
            events, None, now, checkpoint=(open_issues_key(repository), known.dump())
        )
        if events:
            report.add(repository, result.new, result.duplicates)

    def _list_open(self, repository: str) -> tuple[set[int], set[str]]:
        """The numbers of the repository's open issues (pull requests left out), listed oldest
        first so that an issue opened while the list is paged cannot shift one past us; and
        the names the repository goes by (as configured, and as GitHub names it now, which
        differs once it was renamed)."""
        params = {"state": "open", "sort": "created", "direction": "asc", "per_page": PAGE_SIZE}
        response = self.api.get(f"/repos/{repository}/issues", params)
        numbers: set[int] = set()
        names = {repository.lower()}
        while True:
            for item in _items(response, self.name):
                if not is_pull_request(item) and isinstance(item.get("number"), int):
                    numbers.add(item["number"])
                    names.add((repository_of(item) or repository).lower())
            link = response.link("next")
            if link is None:
                return numbers, names
            response = self.api.get(self._same_origin(link))

    def _fate(self, repository: str, number: int, names: set[str]) -> Fate:
        """What became of an issue: GitHub answers a deleted one with 410 (or 404 where the
        token lacks access) and a transferred one with 301 to its new place, which is followed:
        the issue's JSON then names a repository other than the ``names`` this one goes by."""
        path = f"/repos/{repository}/issues/{number}"
        try:
            data = self.api.get(path).data
        except SourceAuthError:
            raise
        except SourceError as exc:
            status = http_status(exc)
            if status in (404, 410):
                return Gone(status)
            raise
        if not isinstance(data, Mapping):
            raise SourceError(self.name, f"{path} did not answer a JSON object; check base_url")
        where = repository_of(data)
        moved_to = data.get("number")
        if where is None or where.lower() in names or not isinstance(moved_to, int):
            return Stays(open=data.get("state") == "open")
        return Moved(where, moved_to)

    def _settle(
        self, sink: MessageSink, repository: str, number: int, fate: Gone | Moved, now: datetime
    ) -> list[MessageEvent]:
        """The closing of a deleted or transferred issue, at ``now`` (when it was seen), or
        nothing: for an issue never stored, or one whose conversation goes on in a watched
        repository."""
        key = sink.checkpoint(moved_key(repository, number)) or f"{repository}#{number}"
        if isinstance(fate, Moved):
            watched = self._watched(fate.repository)
            if watched is not None:
                target = moved_key(watched, fate.number)
                continues = sink.checkpoint(target)
                if continues in (None, key):
                    sink.save_checkpoint(target, key, now)
                    log.info(
                        "issue transferred to a watched repository: its conversation goes on",
                        extra=fields(source=self.name, issue=key, to=f"{watched}#{fate.number}"),
                    )
                    return []
                why = (
                    f"issue transferred to {watched}#{fate.number}, read there as an issue of "
                    "its own (counted as closed here)"
                )
            else:
                why = (
                    f"issue transferred to {fate.repository}#{fate.number}, a repository this "
                    "source does not watch (counted as closed)"
                )
            identity = f"{key}:transferred"
        else:
            why = (
                "issue deleted on GitHub (HTTP 410 Gone; counted as closed)"
                if fate.status == 410
                else "issue no longer visible on GitHub (HTTP 404: deleted, or transferred to "
                "a repository the token cannot read; counted as closed)"
            )
            identity = f"{key}:deleted"
        if not sink.message_thread_hints([f"{key}:opened"]):
            return []  # never stored: there is no wait to stop
        log.info("issue gone: counted as closed", extra=fields(source=self.name, issue=key))
        return [
            MessageEvent(
                source=self.name,
                identity=identity,
                timestamp=now,
                direction=Direction.IGNORED,
                reason=why,
                thread=ThreadRef(conversation=key),
                status="closed",
                attributes={"repository": repository},
            )
        ]

    def _watched(self, repository: str) -> str | None:
        """The configured spelling of a repository this source reads, or None."""
        wanted = repository.lower()
        return next((r for r in self.config.repositories if r.lower() == wanted), None)

    def _arrival_key(
        self, sink: MessageSink, repository: str, number: int, now: datetime, report: PollReport
    ) -> str:
        """The conversation key of an issue whose events show it was transferred here: the
        old issue's when it came from a watched repository, else its own. The watched
        repositories it may have come from (GitHub transfers within one owner) are compared
        first, so that the key does not depend on which repository was read first."""
        target = moved_key(repository, number)
        found = sink.checkpoint(target)
        if found is None:
            owner = repository.partition("/")[0].lower()
            for other in self.config.repositories:
                if other != repository and other.partition("/")[0].lower() == owner:
                    self._reconcile(sink, other, now, report)
            found = sink.checkpoint(target)
        if found is None:
            found = f"{repository}#{number}"
            sink.save_checkpoint(target, found, now)
        return found

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

    def _read_issue(
        self, sink: MessageSink, repository: str, issue: Json, now: datetime, report: PollReport
    ) -> tuple[list[MessageEvent], bool]:
        """The events of one listed issue, read from the API, and whether it still exists: one
        deleted (410, or 404) since it was listed is closed instead."""
        number = int(issue["number"])
        base = f"/repos/{repository}"
        try:
            comments: list[Json] = []
            if issue.get("comments", 1):  # a count of 0 saves the request
                comments = list(self._all(f"{base}/issues/{number}/comments"))
            history = list(self._all(f"{base}/issues/{number}/events"))
            reviews: list[Json] = []
            if is_pull_request(issue):
                reviews = list(self._all(f"{base}/pulls/{number}/reviews"))
        except SourceAuthError:
            raise
        except SourceError as exc:
            status = http_status(exc)
            if status not in (404, 410):
                raise
            return self._settle(sink, repository, number, Gone(status), now), False
        key = f"{repository}#{number}"
        if not is_pull_request(issue) and any(e.get("event") == "transferred" for e in history):
            key = self._arrival_key(sink, repository, number, now, report)
        try:
            return self.build_events(repository, issue, comments, history, reviews, key=key), True
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
        *,
        key: str | None = None,
    ) -> list[MessageEvent]:
        """Turn an issue and what was read about it into events (pure: no I/O). ``key`` names
        the conversation (default ``repository#number``): an issue transferred here from a
        watched repository keeps its old key, and so its conversation."""
        number = int(issue["number"])
        here = f"{repository}#{number}"
        key = key or here
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
            *,
            closing: str | None = None,
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
                closing=closing,
            )

        opened = parse_instant(issue.get("created_at"), "an issue's created_at")
        events = [event("opened", opened, self.rules.opening(issue), issue.get("user"))]
        for comment in comments:
            when = parse_instant(comment.get("created_at"), "a comment's created_at")
            verdict = self.rules.comment(author, comment, closed=closed_before(when))
            closing = None
            if self.config.closers == "ignore" and verdict[0] is Direction.INBOUND:
                closing = comment_closing(comment, self.closing_phrases)
            events.append(
                event(
                    f"comment:{comment['id']}", when, verdict, comment.get("user"), closing=closing
                )
            )
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
        for item in history:
            if item.get("event") != "transferred":
                continue
            when = parse_instant(item.get("created_at"), "an event's created_at")
            arrived = (
                f"issue transferred here, to {here}, from {key}: its wait goes on"
                if key != here
                else f"issue transferred here, to {here}, from a repository this source does "
                "not watch (or from an issue it never read): its wait is timed here"
            )
            verdict = (Direction.IGNORED, arrived)
            events.append(event(f"event:{item['id']}", when, verdict, item.get("actor")))
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
