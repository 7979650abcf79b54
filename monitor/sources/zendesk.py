"""The Zendesk source: tickets from the cursor-based incremental export, comments from the
incremental ticket-event export (or, on plans without it, from each changed ticket's audits).

Read-only: only GET requests. Each poll asks the incremental ticket export for the tickets that
changed since the saved cursor (the first poll starts ``since`` ago), with their users, for the
facts every event carries (subject, priority, tags, group, brand, requester). The comments
(public or private, with their author) and status changes come from the ticket-event export
with the ``comment_events`` sideload (``monitor.sources.zendesk_events``): one request a page of
up to 1,000 ticket updates, instead of one audits request per changed ticket. Authors the
sideload does not name, and tickets this process has not seen in the export, are asked for 100
at a time (``show_many``) and kept in bounded caches.

Each page is stored together with the checkpoint that follows it in one transaction: an export
page with its ``after_cursor`` (``export_cursor``), a ticket-event page with its ``end_time``
(``ticket_events_time``). A poll that fails half-way resumes at the first page it did not
store; updates read twice are stored once.

Where the plan refuses the ticket-event export (HTTP 403 or 404) the source says so once in the
log and reads each changed ticket's audits instead, until a restart; the stored events are the
same either way. A store written by a version that read audits only gets one more poll that way,
then the ticket-event export takes over from that poll's time.

A ticket the export lists as deleted gets one ``closed`` status event (its audits are gone), so
a waiting customer's clock stops instead of waiting forever; one whose audits answer 404 was
deleted since the export listed it, and is closed when that is seen, without failing the poll.

Zendesk's own rules are followed: a reply is a public comment by an agent (role ``agent`` or
``admin``); comments made by triggers and automations, by bots, by the Zendesk system user or
through ticket sharing are neither customer messages nor replies.

With ``closers: ignore`` (the default) a public customer comment after the ticket's first one
that is only a closing phrase ("Thanks, that fixed it!") is marked as a closing message, so it
starts no next-response clock: its ``plain_body`` (else ``body``, else ``html_body``) is read
with its ``attachments`` by ``monitor.mail.closers.closing_message``, and only the verdict's few
words are kept. The comment that opened the ticket is a request, whatever it says.

``probe`` (for ``replyclock check --connect``) asks who the token signs in as (``users/me``),
reads the rate-limit headroom from that answer's headers, and counts with the search API the
tickets a first sync would read.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from monitor.config.models import ZendeskSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.closers import closing_quote
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import Response, http_status, parse_time, source_api, unless_gone
from monitor.sources.probe import ProbeReport
from monitor.sources.zendesk_events import (
    COMMENT_TYPES,
    HELD_BACK_S,
    TICKET_EVENTS_PAGE,
    TICKET_EVENTS_PATH,
    TICKET_EVENTS_SIDELOAD,
    audit_from_ticket_event,
    comment_left_out,
    people_named,
)

log = logging.getLogger("replyclock.sources.zendesk")

CHECKPOINT = "export_cursor"  # the export's after_cursor, saved with each page's events
EVENTS_CHECKPOINT = "ticket_events_time"  # the ticket-event export's end_time, likewise
# Since when the ticket-event export has been read: a ticket created earlier may have history
# the store lacks, so its audits are read instead (once per change, until such tickets are old).
HISTORY_CHECKPOINT = "ticket_events_from"
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SHOW_TICKETS_PATH = "/api/v2/tickets/show_many.json"
SHOW_USERS_PATH = "/api/v2/users/show_many.json"
SHOW_MANY = 100  # ids per show_many request, Zendesk's maximum
CACHED_TICKETS = 20_000  # ticket facts kept between polls: a day or two of changed tickets
CACHED_USERS = 50_000
AUDIT_PAGE_SIZE = 100
ME_PATH = "/api/v2/users/me.json"
COUNT_PATH = "/api/v2/search/count.json"
FOLDER = "tickets"  # the PollReport bucket; an API source has no folders

TEAM_ROLES = frozenset({"agent", "admin"})
STATUSES = {
    "new": "open",
    "open": "open",
    "pending": "pending",
    "hold": "on_hold",
    "solved": "solved",
    "closed": "closed",
    "deleted": "closed",  # a deleted ticket will get no reply: its clock stops, not a breach
}
SHARING_CHANNELS = frozenset({"ticket_sharing"})
RULE_CHANNELS = frozenset({"rule", "automation"})
BOT_CHANNEL_PREFIXES = ("answer_bot", "ai_agent")
# A comment's body fields, in the order they are read to tell a closing message ("Thanks!").
BODY_FIELDS = (("plain_body", "text/plain"), ("body", "text/plain"), ("html_body", "text/html"))

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZendeskUser:
    """A user as the ``include=users`` sideload describes them."""

    id: int
    name: str = ""
    email: str | None = None
    role: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketFacts:
    """What every event of one ticket carries: the ticket's key, subject and rule attributes."""

    id: int
    requester_id: int | None
    subject: str = ""
    priority: str | None = None
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    link: str | None = None
    created_at: datetime | None = None


def normalize_status(value: object) -> str | None:
    """Zendesk's ticket status as replyclock's (``hold`` -> ``on_hold``); None if unknown."""
    return STATUSES.get(str(value).lower()) if value is not None else None


def parse_users(items: object) -> dict[int, ZendeskUser]:
    """The sideloaded users by id."""
    users: dict[int, ZendeskUser] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("id"), int):
            email = item.get("email")
            users[item["id"]] = ZendeskUser(
                id=item["id"],
                name=str(item.get("name") or ""),
                email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
                role=str(item.get("role") or ""),
            )
    return users


def ticket_facts(ticket: Json, subdomain: str) -> TicketFacts:
    """The facts of an exported ticket that policies match on and people click."""
    ticket_id = int(ticket["id"])
    attributes = {
        name: str(ticket[key])
        for name, key in (("group", "group_id"), ("brand", "brand_id"))
        if ticket.get(key) is not None
    }
    priority = ticket.get("priority")
    requester = ticket.get("requester_id")
    return TicketFacts(
        id=ticket_id,
        requester_id=requester if isinstance(requester, int) else None,
        subject=str(ticket.get("subject") or ticket.get("raw_subject") or ""),
        priority=str(priority).lower() if priority else None,
        tags=tuple(str(tag) for tag in ticket.get("tags") or ()),
        attributes=attributes,
        link=f"https://{subdomain}.zendesk.com/agent/tickets/{ticket_id}",
        created_at=parse_time(ticket.get("created_at")),
    )


def _who(user_id: object, users: Mapping[int, ZendeskUser]) -> tuple[str, str]:
    """(author, author_name): the user's lowercase email when known, else ``user:<id>``."""
    user = users.get(user_id) if isinstance(user_id, int) else None
    if user is None:
        return f"user:{user_id}", ""
    return user.email or f"user:{user.id}", user.name


def classify_comment(
    comment: Json,
    audit: Json,
    facts: TicketFacts,
    users: Mapping[int, ZendeskUser],
    *,
    opening: bool,
) -> tuple[Direction, str]:
    """Whether a comment is a customer message, a reply, or neither, and why in words."""
    via = comment.get("via") or audit.get("via") or {}
    channel = str(via.get("channel") or "")
    source = via.get("source") or {}
    rel = str(source.get("rel") or "")
    if channel in RULE_CHANNELS or rel in ("trigger", "automation"):
        kind = "automation" if "automation" in (channel, rel) else "trigger"
        title = (source.get("from") or {}).get("title")
        named = f"{kind} {title!r}" if title else f"a {kind}"
        return Direction.IGNORED, f"comment made by {named} (not a reply)"
    if channel in SHARING_CHANNELS:
        return Direction.IGNORED, "comment from a ticket-sharing partner account (not a reply)"
    if channel.startswith(BOT_CHANNEL_PREFIXES):
        return Direction.IGNORED, f"comment made by a bot (via {channel}; not a reply)"
    author_id = comment.get("author_id", audit.get("author_id"))
    if not isinstance(author_id, int) or author_id <= 0:
        return Direction.IGNORED, "comment made by the Zendesk system user (not a reply)"
    if comment.get("public") is False:
        return Direction.IGNORED, "private note (not a reply)"
    user = users.get(author_id)
    if user is None:
        if author_id == facts.requester_id:
            return Direction.INBOUND, "customer comment"
        return Direction.IGNORED, (
            f"comment by user {author_id}, whose role Zendesk did not send (not counted)"
        )
    if user.role in TEAM_ROLES:
        if opening:
            return Direction.OUTBOUND, "ticket created by an agent (the team spoke first)"
        return Direction.OUTBOUND, "public reply by an agent"
    return Direction.INBOUND, "customer comment"


def comment_closing(comment: Json, extra_phrases: Sequence[str] = ()) -> str | None:
    """The words of a customer comment that is only a closing phrase ("Thanks!"), else None:
    its plain text (``plain_body``, else ``body``) when Zendesk sends it, else the HTML
    (``html_body``); any attachment makes it more than a closing phrase. The body is not kept."""
    return closing_quote(
        comment,
        BODY_FIELDS,
        has_attachment=bool(comment.get("attachments")),
        extra_phrases=extra_phrases,
    )


def _ticket_fields(source: str, facts: TicketFacts, customer: str) -> dict[str, Any]:
    """The MessageEvent fields every event of one ticket shares."""
    return {
        "source": source,
        "subject": facts.subject,
        "thread": ThreadRef(conversation=str(facts.id), customer=customer),
        "priority": facts.priority,
        "tags": facts.tags,
        "attributes": facts.attributes,
        "link": facts.link,
    }


def events_from_audits(
    source: str,
    facts: TicketFacts,
    audits: Sequence[Json],
    users: Mapping[int, ZendeskUser],
    *,
    closers: str = "ignore",
    closing_phrases: Sequence[str] = (),
) -> list[MessageEvent]:
    """A ticket's comments and status changes as message events, oldest first. With
    ``closers`` "ignore", a customer's later public comment that is only a closing phrase
    (``closing_phrases`` add to the built-in ones) is marked as a closing message."""
    customer = _who(facts.requester_id, users)[0] if facts.requester_id is not None else ""
    common = _ticket_fields(source, facts, customer)
    events: list[MessageEvent] = []
    for audit in sorted(audits, key=lambda a: (str(a.get("created_at")), a.get("id") or 0)):
        at = parse_time(audit.get("created_at"))
        if at is None or not isinstance(audit.get("id"), int):
            log.warning(
                "audit without id or created_at skipped",
                extra=fields(source=source, ticket=facts.id, audit=audit.get("id")),
            )
            continue
        items = [e for e in audit.get("events") or () if isinstance(e, Mapping)]
        opening = any(e.get("type") == "Create" for e in items)
        for item in items:
            kind = item.get("type")
            if kind in COMMENT_TYPES and isinstance(item.get("id"), int):
                direction, reason = classify_comment(item, audit, facts, users, opening=opening)
                author, name = _who(item.get("author_id", audit.get("author_id")), users)
                closing = None
                if (
                    closers == "ignore"
                    and direction is Direction.INBOUND
                    and kind == "Comment"
                    and not opening
                ):
                    closing = comment_closing(item, closing_phrases)
                events.append(
                    MessageEvent(
                        identity=f"ticket:{facts.id}:comment:{item['id']}",
                        timestamp=at,
                        direction=direction,
                        reason=reason,
                        author=author,
                        author_name=name,
                        closing=closing,
                        **common,
                    )
                )
            elif kind in ("Create", "Change") and item.get("field_name") == "status":
                status = normalize_status(item.get("value"))
                if status is None:
                    continue
                raw = str(item.get("value"))
                author, name = _who(audit.get("author_id"), users)
                events.append(
                    MessageEvent(
                        identity=f"ticket:{facts.id}:audit:{audit['id']}:status",
                        timestamp=at,
                        direction=Direction.IGNORED,
                        reason=f"ticket status set to {status}"
                        + (f" (Zendesk: {raw})" if raw != status else ""),
                        author=author,
                        author_name=name,
                        status=status,
                        **common,
                    )
                )
    return events


class ZendeskSource:
    """One Zendesk Support account, read through its API with an admin's API token."""

    def __init__(
        self,
        config: ZendeskSourceConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        closing_phrases: Sequence[str] = (),
    ) -> None:
        self.name = config.name
        self.config = config
        self.closing_phrases = tuple(closing_phrases)  # the rules files' extra phrases
        self._authorization: str | None = None
        key = "api_token_file" if config.api_token_file is not None else "api_token"
        self.api = source_api(
            config,
            headers=self._headers,
            what_to_fix=(
                f"check email and {key} (the API token of a Zendesk admin: the incremental "
                "ticket export is admin-only, and the admin must see every ticket to monitor)"
            ),
            sleep=sleep,
            clock=clock,
        )
        self._events_refused: str | None = None  # why the ticket-event export is not used
        self._facts: dict[int, TicketFacts] = {}  # by ticket id, from the latest listing
        self._deleted: dict[int, bool] = {}  # tickets the export listed as deleted
        self._users: dict[int, ZendeskUser] = {}
        self._history_from = datetime.fromtimestamp(0, UTC)  # see HISTORY_CHECKPOINT
        # Ticket-event ids stored already: each page repeats the last second of the one before.
        self._seen_updates: dict[int, bool] = {}

    # --- credentials -------------------------------------------------------------------------

    def _api_token(self) -> str:
        """The token, read fresh so a rotated ``api_token_file`` is picked up."""
        cfg = self.config
        return read_secret(
            self.name,
            key="api_token_file",
            value=cfg.api_token.get_secret_value() if cfg.api_token else None,
            path=cfg.api_token_file,
        )

    def _headers(self) -> Mapping[str, str]:
        if self._authorization is None:
            pair = f"{self.config.email}/token:{self._api_token()}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return {"Authorization": self._authorization}

    def close(self) -> None:
        """Forget the credentials; the next poll reads them again (there is no connection)."""
        self._authorization = None

    # --- check --connect ---------------------------------------------------------------------

    def probe(self, now: datetime) -> ProbeReport:
        """Sign in as a poll does and report the user and role, the rate-limit headroom and how
        many tickets a first sync would read. Only reads; never shows the token."""
        self._authorization = None  # read the secret fresh, as a poll does
        answer = self.api.get(ME_PATH)
        user = _mapping(answer.data, self.name, ME_PATH).get("user")
        if not isinstance(user, Mapping) or user.get("id") is None:
            # Zendesk answers users/me without credentials it accepts as the anonymous user.
            raise SourceAuthError(
                self.name,
                f"{self.api.base_url} answered as an anonymous user: it did not accept the "
                f"credentials; {self.api.what_to_fix}",
            )
        name, email = str(user.get("name") or ""), str(user.get("email") or "")
        account = f"{name} <{email}>" if name and email else name or email or f"user {user['id']}"
        role = str(user.get("role") or "unknown")
        cfg = self.config
        report = ProbeReport(source=self.name, kind="zendesk", account=account)
        report.detail("api", self.api.base_url)
        report.detail(
            "signed in with",
            f"API token of {cfg.email}"
            + (f" from {cfg.api_token_file}" if cfg.api_token_file is not None else ""),
        )
        report.detail("role", role)
        report.detail("rate limit", _headroom(answer.headers))
        if role != "admin":
            report.warnings.append(
                f"{account} is {'an' if role[:1] in 'aeiou' else 'a'} {role}, not an admin: the "
                "incremental ticket export is admin-only, so polls will be refused; use the API "
                "token with a Zendesk admin's email"
            )
        since = (now - timedelta(seconds=cfg.since)).date().isoformat()
        try:
            counted = self.api.get(COUNT_PATH, {"query": f"type:ticket updated>={since}"})
            count = _mapping(counted.data, self.name, COUNT_PATH).get("count")
        except SourceError as exc:
            report.first_sync = f"not counted: {exc.detail}"
            return report
        if not isinstance(count, int):
            report.first_sync = f"not counted: {COUNT_PATH} answered without a count"
            return report
        report.first_sync = (
            f"{count:,} ticket{'s' if count != 1 else ''} updated since {since} (since: "
            f"{format_duration(cfg.since)}), each read with its audits"
        )
        return report

    # --- polling -----------------------------------------------------------------------------

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read what changed since the saved checkpoints: through the ticket-event export where
        the account's plan has it, else through each changed ticket's audits."""
        self._authorization = None  # read the secret once per poll, fresh
        report = PollReport(source=self.name)
        requests_before = self.api.requests
        try:
            first = self._first_events_page(sink, now)
            if first is None:
                try:
                    self._poll_audits(sink, now, report)
                except SourceAuthError:
                    self._events_refused = None  # credentials, not the plan: ask again next time
                    raise
                # The audits read every update up to now: the ticket-event export can take over
                # from here (a minute early: the store keeps what comes twice once).
                start = str(int(now.timestamp()) - HELD_BACK_S)
                sink.save_checkpoint(EVENTS_CHECKPOINT, start, now)
                if sink.checkpoint(HISTORY_CHECKPOINT) is None:
                    sink.save_checkpoint(HISTORY_CHECKPOINT, start, now)
            else:
                self._poll_ticket_events(sink, now, report, first)
        finally:
            report.round_trips = self.api.requests - requests_before
        return report

    def _export_pages(self, sink: MessageSink, now: datetime, **extra: str) -> Iterator[Page]:
        """The incremental ticket export from the saved cursor (the first poll: ``since``
        ago), page by page, each with the cursor that follows it; stop at end_of_stream."""
        cursor = sink.checkpoint(CHECKPOINT)
        params: dict[str, Any]
        if cursor:
            params = {"cursor": cursor, **extra}
        else:
            start = now - timedelta(seconds=self.config.since)
            params = {"start_time": int(start.timestamp()), **extra}
        while True:
            page = _mapping(self.api.get(EXPORT_PATH, params).data, self.name, EXPORT_PATH)
            after = page.get("after_cursor")
            end = bool(page.get("end_of_stream", True))
            if not isinstance(after, str) or not after:
                if not end:
                    raise SourceError(
                        self.name,
                        "the incremental export answered a page without after_cursor; "
                        "the next poll starts again from the saved cursor",
                    )
                after = cursor
            yield Page(data=page, cursor=after, moved=bool(after and after != cursor))
            cursor = after
            if end:
                return
            params = {"cursor": after, **extra}

    def _store(
        self,
        sink: MessageSink,
        now: datetime,
        report: PollReport,
        events: list[MessageEvent],
        *,
        checkpoint: tuple[str, str | None],
        moved: bool,
    ) -> None:
        """One page's events and the checkpoint that follows them, in one transaction."""
        key, value = checkpoint
        if not events and not moved:
            return
        result = sink.accept(events, None, now, checkpoint=(key, value) if value else None)
        report.add(FOLDER, result.new, result.duplicates)
        log.debug(
            "page stored",
            extra=fields(source=self.name, checkpoint=key, events=len(events), new=result.new),
        )

    def _poll_audits(self, sink: MessageSink, now: datetime, report: PollReport) -> None:
        """Every export page, each changed ticket read with its audits (one request a ticket)."""
        for page in self._export_pages(sink, now):
            tickets = _latest_per_id(page.data.get("tickets"))
            events = [e for ticket in tickets for e in self._ticket_events(ticket, now)]
            self._store(
                sink, now, report, events, checkpoint=(CHECKPOINT, page.cursor), moved=page.moved
            )

    # --- the ticket-event export -------------------------------------------------------------

    def _events_params(self, start_time: int) -> dict[str, Any]:
        return {"start_time": start_time, "include": TICKET_EVENTS_SIDELOAD}

    def _first_events_page(self, sink: MessageSink, now: datetime) -> EventsStart | None:
        """The ticket-event export's first page of this poll, its start_time and whether this is
        the first sync; None when this poll reads audits: the plan refused the export, or the
        store was written by a version that read audits only (one more poll that way, then the
        export takes over)."""
        if self._events_refused is not None:
            return None
        saved = sink.checkpoint(EVENTS_CHECKPOINT)
        if saved is None and sink.checkpoint(CHECKPOINT):
            return None
        latest = int(now.timestamp()) - HELD_BACK_S
        first_sync = saved is None or not saved.isdigit()
        if first_sync:
            start_time = int((now - timedelta(seconds=self.config.since)).timestamp())
            sink.save_checkpoint(HISTORY_CHECKPOINT, str(start_time), now)
        else:
            start_time = min(int(str(saved)), latest)
        history = sink.checkpoint(HISTORY_CHECKPOINT) or str(start_time)
        self._history_from = datetime.fromtimestamp(int(history) if history.isdigit() else 0, UTC)
        try:
            answer = self.api.get(TICKET_EVENTS_PATH, self._events_params(start_time))
        except SourceError as exc:
            status = http_status(exc)
            if status not in (403, 404):
                raise
            self._events_refused = f"HTTP {status}"
            log.warning(
                "the account's plan has no incremental ticket-event export: reading each "
                "changed ticket's audits instead (one request a ticket) until a restart",
                extra=fields(source=self.name, status=status, path=TICKET_EVENTS_PATH),
            )
            return None
        return EventsStart(start_time=start_time, answer=answer, first_sync=first_sync)

    def _older_than_history(self, facts: TicketFacts) -> bool:
        """Whether a ticket was created before the ticket-event export was first read, so that
        the store may lack its earlier comments."""
        return facts.created_at is None or facts.created_at < self._history_from

    def _poll_ticket_events(
        self,
        sink: MessageSink,
        now: datetime,
        report: PollReport,
        first: EventsStart,
    ) -> None:
        """The export's tickets (their facts, users and deletions; on the first sync, the
        audits of tickets older than the window, as the audits path reads them), then every
        page of ticket events from the saved time, each stored with the time it ends at."""
        start_time, answer = first.start_time, first.answer
        read_in_full: set[int] = set()
        for page in self._export_pages(sink, now, include="users"):
            self._learn_users(page.data.get("users"))
            events = []
            for ticket in _latest_per_id(page.data.get("tickets")):
                facts = self._learn_ticket(ticket)
                if facts.id in self._deleted:
                    events.extend(self._deleted_events(ticket, facts))
                elif first.first_sync and self._older_than_history(facts):
                    events.extend(self._audits_events(facts, now))
                    read_in_full.add(facts.id)
            self._store(
                sink, now, report, events, checkpoint=(CHECKPOINT, page.cursor), moved=page.moved
            )
        while True:
            body = _mapping(answer.data, self.name, TICKET_EVENTS_PATH)
            listed = [i for i in body.get("ticket_events") or () if isinstance(i, Mapping)]
            items = [
                i
                for i in listed
                if i.get("id") not in self._seen_updates and i.get("ticket_id") not in read_in_full
            ]
            events = self._events_from_ticket_events(items, now, read_in_full)
            end_time = body.get("end_time")
            follows = (
                end_time if isinstance(end_time, int) and end_time > start_time else start_time
            )
            end = body.get("end_of_stream")
            if not isinstance(end, bool):
                end = len(listed) < TICKET_EVENTS_PAGE
            self._store(
                sink,
                now,
                report,
                events,
                checkpoint=(EVENTS_CHECKPOINT, str(follows)),
                moved=follows != start_time,
            )
            for item in listed:
                if isinstance(item.get("id"), int):
                    _remember(self._seen_updates, item["id"], True, CACHED_USERS)
            if end:
                return
            if follows == start_time:
                raise SourceError(
                    self.name,
                    f"the ticket-event export answered a full page that ends where it began "
                    f"(start_time {start_time}): more than {TICKET_EVENTS_PAGE:,} ticket updates "
                    "in one second; the next poll asks again from there",
                )
            start_time = follows
            answer = self.api.get(TICKET_EVENTS_PATH, self._events_params(start_time))

    def _events_from_ticket_events(
        self, items: list[Json], now: datetime, read_in_full: set[int]
    ) -> list[MessageEvent]:
        """One page of ticket events as message events, ticket by ticket, as the audits path
        would store them: tickets and users not known yet are asked for 100 at a time. A
        ticket whose audits are read instead is added to ``read_in_full``, so that the later
        pages of this poll skip it."""
        audits: dict[int, list[dict[str, Any]]] = {}
        left_out: set[int] = set()
        for item in items:
            ticket_id = item.get("ticket_id")
            if not isinstance(ticket_id, int):
                continue
            audits.setdefault(ticket_id, []).append(audit_from_ticket_event(item))
            if comment_left_out(item):
                left_out.add(ticket_id)
        self._fetch_tickets([t for t in audits if t not in self._facts])
        named = {u for ticket_audits in audits.values() for u in people_named(ticket_audits)}
        named.update(f.requester_id for t in audits if (f := self._facts.get(t)) and f.requester_id)
        self._fetch_users(sorted(u for u in named if u not in self._users))
        events: list[MessageEvent] = []
        for ticket_id, ticket_audits in audits.items():
            facts = self._facts.get(ticket_id)
            if ticket_id in self._deleted:
                continue  # its deletion is stored from the export; its audits are gone
            if facts is None:
                events.append(self._gone_event(TicketFacts(id=ticket_id, requester_id=None), now))
            elif ticket_id in left_out or self._older_than_history(facts):
                # The answer came without the comments, or the ticket is older than what the
                # export has been read for: its audits hold what the store may lack.
                events.extend(self._audits_events(facts, now))
                read_in_full.add(ticket_id)
            else:
                events.extend(
                    events_from_audits(
                        self.name,
                        facts,
                        ticket_audits,
                        self._users,
                        closers=self.config.closers,
                        closing_phrases=self.closing_phrases,
                    )
                )
        return events

    def _learn_ticket(self, ticket: Json) -> TicketFacts:
        facts = ticket_facts(ticket, self.config.subdomain)
        _remember(self._facts, facts.id, facts, CACHED_TICKETS)
        if str(ticket.get("status")) == "deleted":
            _remember(self._deleted, facts.id, True, CACHED_TICKETS)
        else:
            self._deleted.pop(facts.id, None)
        return facts

    def _learn_users(self, items: object) -> None:
        for user_id, user in parse_users(items).items():
            _remember(self._users, user_id, user, CACHED_USERS)

    def _fetch_tickets(self, ticket_ids: Sequence[int]) -> None:
        """Tickets whose facts this process has not seen (a restart, or updates older than the
        export's window), 100 a request with their users; deleted ones are not answered."""
        for chunk in _chunks(ticket_ids):
            data = self.api.get(SHOW_TICKETS_PATH, {"ids": chunk, "include": "users"}).data
            page = _mapping(data, self.name, SHOW_TICKETS_PATH)
            self._learn_users(page.get("users"))
            for ticket in _latest_per_id(page.get("tickets")):
                self._learn_ticket(ticket)

    def _fetch_users(self, user_ids: Sequence[int]) -> None:
        """Users the export's sideload did not name (other agents, CCs), 100 a request."""
        for chunk in _chunks(user_ids):
            data = self.api.get(SHOW_USERS_PATH, {"ids": chunk}).data
            self._learn_users(_mapping(data, self.name, SHOW_USERS_PATH).get("users"))

    # --- one ticket at a time ----------------------------------------------------------------

    def _deleted_events(self, ticket: Json, facts: TicketFacts) -> list[MessageEvent]:
        """A ticket the export lists as deleted: one closed event at its last update."""
        at = parse_time(ticket.get("updated_at"))
        if at is None:
            return []
        return [
            MessageEvent(
                identity=f"ticket:{facts.id}:deleted",
                timestamp=at,
                direction=Direction.IGNORED,
                reason="ticket deleted in Zendesk (counted as closed)",
                status="closed",
                **_ticket_fields(self.name, facts, ""),
            )
        ]

    def _gone_event(self, facts: TicketFacts, now: datetime) -> MessageEvent:
        """A ticket deleted since it was listed: its clock stops now, when that was seen (the
        same identity as the export's deletion, so a later listing adds nothing)."""
        log.info(
            "ticket gone while being read: counted as closed",
            extra=fields(source=self.name, ticket=facts.id),
        )
        return MessageEvent(
            identity=f"ticket:{facts.id}:deleted",
            timestamp=now,
            direction=Direction.IGNORED,
            reason="ticket deleted in Zendesk (HTTP 404 while its audits were read; "
            "counted as closed)",
            status="closed",
            **_ticket_fields(self.name, facts, ""),
        )

    def _ticket_events(self, ticket: Json, now: datetime) -> list[MessageEvent]:
        facts = ticket_facts(ticket, self.config.subdomain)
        if str(ticket.get("status")) == "deleted":
            # A deleted ticket's audits are gone from the API; its deletion closes any wait.
            return self._deleted_events(ticket, facts)
        return self._audits_events(facts, now)

    def _audits_events(self, facts: TicketFacts, now: datetime) -> list[MessageEvent]:
        read = unless_gone(lambda: self._audits(facts.id))
        if read is None:
            return [self._gone_event(facts, now)]
        audits, users = read
        return events_from_audits(
            self.name,
            facts,
            audits,
            users,
            closers=self.config.closers,
            closing_phrases=self.closing_phrases,
        )

    def _audits(self, ticket_id: int) -> tuple[list[Json], dict[int, ZendeskUser]]:
        """Every audit of a ticket (cursor pagination) and the users they name."""
        path = f"/api/v2/tickets/{ticket_id}/audits.json"
        params: dict[str, Any] = {"include": "users", "page[size]": AUDIT_PAGE_SIZE}
        audits: list[Json] = []
        users: dict[int, ZendeskUser] = {}
        while True:
            page = _mapping(self.api.get(path, params).data, self.name, path)
            audits.extend(a for a in page.get("audits") or () if isinstance(a, Mapping))
            users.update(parse_users(page.get("users")))
            meta = page.get("meta") or {}
            after = meta.get("after_cursor")
            if not meta.get("has_more") or not after:
                return audits, users
            params = {**params, "page[after]": after}


@dataclass(frozen=True, slots=True)
class EventsStart:
    """The ticket-event export's first page of a poll and where it started."""

    start_time: int
    answer: Response
    first_sync: bool  # no ticket-event time stored yet: the poll reads the export from since


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the incremental ticket export and the cursor that follows it."""

    data: Json
    cursor: str | None
    moved: bool  # the cursor moved on: worth storing even without events


K = TypeVar("K")
V = TypeVar("V")


def _remember(cache: dict[K, V], key: K, value: V, limit: int) -> None:
    """Put ``key`` last in a bounded cache, dropping the entries seen longest ago."""
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > limit:
        del cache[next(iter(cache))]


def _chunks(ids: Sequence[int]) -> Iterator[str]:
    """Ids as the comma-separated lists show_many takes, 100 at a time."""
    for at in range(0, len(ids), SHOW_MANY):
        yield ",".join(str(i) for i in ids[at : at + SHOW_MANY])


def _latest_per_id(items: object) -> list[Json]:
    """Exported tickets, one per id: the last listing of a ticket wins and sets its place."""
    latest: dict[int, Json] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("id"), int):
            latest.pop(item["id"], None)  # re-insert so order follows the latest update
            latest[item["id"]] = item
    return list(latest.values())


def _headroom(headers: Mapping[str, str]) -> str:
    """The account's rate-limit headroom from an answer's headers (both spellings Zendesk
    sends: ``X-Rate-Limit`` and the newer ``ratelimit-limit``)."""
    limit = headers.get("x-rate-limit") or headers.get("ratelimit-limit")
    left = headers.get("x-rate-limit-remaining") or headers.get("ratelimit-remaining")
    if not limit or not left:
        return "not reported"
    return f"{left} of {limit} requests a minute left"


def _mapping(data: object, source: str, path: str) -> Json:
    if not isinstance(data, Mapping):
        raise SourceError(
            source, f"{path} answered {type(data).__name__}, not a JSON object; check base_url"
        )
    return data
