"""The Zendesk source: tickets from the cursor-based incremental export, comments from audits.

Read-only: only GET requests. Each poll asks the incremental ticket export for the tickets that
changed since the saved cursor (the first poll starts ``since`` ago), and for each changed ticket
reads its audits, which hold every comment (public or private, with its author) and every status
change. Each export page's events are stored together with the page's ``after_cursor`` in one
transaction, so a poll that fails half-way resumes at the first page it did not store.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.models import ZendeskSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.closers import closing_quote
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import parse_time, source_api, unless_gone
from monitor.sources.probe import ProbeReport

log = logging.getLogger("replyclock.sources.zendesk")

CHECKPOINT = "export_cursor"  # the export's after_cursor, saved with each page's events
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
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
COMMENT_TYPES = frozenset({"Comment", "VoiceComment"})
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
        """Read every export page from the saved cursor, storing each with its cursor."""
        self._authorization = None  # read the secret once per poll, fresh
        report = PollReport(source=self.name)
        requests_before = self.api.requests
        cursor = sink.checkpoint(CHECKPOINT)
        params: dict[str, Any]
        if cursor:
            params = {"cursor": cursor}
        else:
            start = now - timedelta(seconds=self.config.since)
            params = {"start_time": int(start.timestamp())}
        try:
            while True:
                page = _mapping(self.api.get(EXPORT_PATH, params).data, self.name, EXPORT_PATH)
                tickets = _latest_per_id(page.get("tickets"))
                events = [e for ticket in tickets for e in self._ticket_events(ticket, now)]
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
                if events or (after and after != cursor):
                    result = sink.accept(
                        events, None, now, checkpoint=(CHECKPOINT, after) if after else None
                    )
                    report.add(FOLDER, result.new, result.duplicates)
                    log.debug(
                        "export page stored",
                        extra=fields(source=self.name, tickets=len(tickets), new=result.new),
                    )
                cursor = after
                if end:
                    break
                params = {"cursor": after}
        finally:
            report.round_trips = self.api.requests - requests_before
        return report

    def _ticket_events(self, ticket: Json, now: datetime) -> list[MessageEvent]:
        facts = ticket_facts(ticket, self.config.subdomain)
        if str(ticket.get("status")) == "deleted":
            # A deleted ticket's audits are gone from the API; its deletion closes any wait.
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
        read = unless_gone(lambda: self._audits(facts.id))
        if read is None:
            # Deleted since the export listed it: its clock stops now, when that was seen (the
            # same identity as the export's deletion, so a later listing adds nothing).
            log.info(
                "ticket gone while being read: counted as closed",
                extra=fields(source=self.name, ticket=facts.id),
            )
            return [
                MessageEvent(
                    identity=f"ticket:{facts.id}:deleted",
                    timestamp=now,
                    direction=Direction.IGNORED,
                    reason="ticket deleted in Zendesk (HTTP 404 while its audits were read; "
                    "counted as closed)",
                    status="closed",
                    **_ticket_fields(self.name, facts, ""),
                )
            ]
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
