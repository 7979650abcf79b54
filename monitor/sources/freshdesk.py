"""The Freshdesk source: tickets updated since a checkpoint, and each ticket's conversations.

Read-only: only GET requests. Each poll lists the tickets updated since the saved instant
(``updated_since``, oldest first, 100 a page), and for each one reads its conversations. A page's
events are stored together with the new checkpoint in one transaction: the ``updated_at`` of the
last ticket stored and the ids of the tickets stored at exactly that instant (``updated_since``
is inclusive, so those come back and are skipped).

Freshdesk leaves deleted and spam tickets out of that list ("By default, only tickets that have not
been deleted or marked as spam will be returned"), so each poll also lists them the same way
(``filter=deleted``, ``filter=spam``, each with its own checkpoint): a ticket already stored that
was deleted (``"deleted": true``) or marked as spam gets one ``closed`` status event at its
``updated_at``, so a waiting customer's clock stops instead of waiting forever; tickets never
stored are skipped, so spam leaves no conversations behind. A ticket that answers 404 while its
conversations are read was deleted since it was listed: it is closed at that moment, and the poll
goes on. A poll with nothing new is three requests.

With ``closers: ignore`` (the default) an incoming public conversation (the customer's reply)
that is only a closing phrase ("Thanks, that fixed it!") is marked as a closing message, so it
starts no next-response clock: its ``body_text`` (else its HTML ``body``) and ``attachments``
are read by ``monitor.mail.closers.closing_message``, and only the verdict's few words are
kept. The ticket's description opens the ticket and is a request, whatever it says.

Freshdesk keeps no status history: the ticket's current status is stored as one status event,
timed by ``stats.status_updated_at``, so a status seen again is stored once.

``probe`` (for ``replyclock check --connect``) asks who the key belongs to (``agents/me``): the
agent's ticket scope decides which tickets it can see at all. It reads the rate-limit headroom
from that answer's headers and counts with the ticket filter API what a first sync would read.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.models import FreshdeskSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.closers import closing_quote
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import parse_time, source_api, unless_gone
from monitor.sources.probe import ProbeReport

log = logging.getLogger("replyclock.sources.freshdesk")

CHECKPOINT = "updated_since"
# The lists of removed tickets (``filter=...``) and the checkpoint key of each.
REMOVED = {"deleted": "deleted_since", "spam": "spam_since"}
REMOVED_WORDS = {"deleted": "deleted", "spam": "marked as spam"}
TICKETS_PATH = "/api/v2/tickets"
PER_PAGE = 100
MAX_PAGES = 300  # Freshdesk answers no page past 300: continue from the last updated_at
FOLDER = "tickets"
AGENT_PATH = "/api/v2/agents/me"
ROLES_PATH = "/api/v2/roles"
SEARCH_PATH = "/api/v2/search/tickets"
# An agent's ticket_scope: which tickets it can see (and so replyclock, with its key, reads).
TICKET_SCOPES = {
    1: "every ticket (global access)",
    2: "only the tickets of the agent's groups (group access)",
    3: "only the tickets assigned to the agent (restricted access)",
}
GLOBAL_ACCESS = 1

PRIORITIES = {1: "low", 2: "medium", 3: "high", 4: "urgent"}
STATUSES = {2: "open", 3: "pending", 4: "solved", 5: "closed"}
TICKET_SOURCES = {
    1: "email",
    2: "portal",
    3: "phone",
    7: "chat",
    9: "feedback widget",
    10: "outbound email",
}
OUTBOUND_EMAIL = 10
NOTE = 2  # conversation source of notes (public or private)
# A conversation's body fields, in the order they are read to tell a closing message.
BODY_FIELDS = (("body_text", "text/plain"), ("body", "text/html"))

Json = Mapping[str, Any]


def status_from_name(name: str) -> str:
    """A custom status, by its name: waiting on the customer is pending, on a third party is
    on hold, resolved and closed are themselves; anything else means the team is working."""
    text = name.lower()
    if "closed" in text:
        return "closed"
    if "resolved" in text or "solved" in text:
        return "solved"
    if "hold" in text or "third party" in text or "third-party" in text:
        return "on_hold"
    if "pending" in text or ("customer" in text and "wait" in text):
        return "pending"
    return "open"


def iso(instant: datetime) -> str:
    """The instant as Freshdesk writes it: ``2016-05-18T04:36:04Z``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Boundary:
    """How far the ticket list has been stored: the last ``updated_at``, and the tickets
    already stored at exactly that instant."""

    at: datetime
    ids: frozenset[int] = frozenset()

    def covers(self, ticket_id: int, updated: datetime) -> bool:
        """Whether this version of a ticket is already stored."""
        return updated < self.at or (updated == self.at and ticket_id in self.ids)

    def advance(self, ticket_id: int, updated: datetime) -> Boundary:
        """The boundary once this ticket version is stored too."""
        if updated > self.at:
            return Boundary(updated, frozenset({ticket_id}))
        return Boundary(self.at, self.ids | {ticket_id})

    def dump(self) -> str:
        """The checkpoint text."""
        return json.dumps({"updated_since": iso(self.at), "ids": sorted(self.ids)})

    @classmethod
    def load(cls, text: str | None) -> Boundary | None:
        """A saved checkpoint, or None when there is none (or it cannot be read)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            at = parse_time(data["updated_since"])
            ids = frozenset(int(i) for i in data.get("ids", ()))
        except (ValueError, KeyError, TypeError):
            return None
        return cls(at, ids) if at is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Requester:
    """The ticket's requester, from ``include=requester``."""

    id: int | None
    email: str = ""
    name: str = ""

    @property
    def author(self) -> str:
        """The requester's lowercase email, else ``user:<id>``."""
        return self.email or f"user:{self.id}"


def _requester(ticket: Json) -> Requester:
    embedded = ticket.get("requester") or {}
    mail = embedded.get("email")
    return Requester(
        id=ticket.get("requester_id") if isinstance(ticket.get("requester_id"), int) else None,
        email=mail.strip().lower() if isinstance(mail, str) else "",
        name=str(embedded.get("name") or ""),
    )


def classify_conversation(conversation: Json) -> tuple[Direction, str]:
    """Whether a conversation is a customer message, a reply, or neither, and why in words."""
    if conversation.get("private"):
        return Direction.IGNORED, "private note (not a reply)"
    if conversation.get("incoming"):
        return Direction.INBOUND, "customer comment"
    if conversation.get("source") == NOTE:
        return Direction.OUTBOUND, "public note by an agent (Freshdesk counts it as a response)"
    return Direction.OUTBOUND, "public reply by an agent"


def conversation_closing(conversation: Json, extra_phrases: Sequence[str] = ()) -> str | None:
    """The words of a customer's conversation that is only a closing phrase ("Thanks!"), else
    None: its plain text (``body_text``) when Freshdesk sends it, else the HTML (``body``); any
    attachment makes it more than a closing phrase. The body is not kept."""
    return closing_quote(
        conversation,
        BODY_FIELDS,
        has_attachment=bool(conversation.get("attachments")),
        extra_phrases=extra_phrases,
    )


def _sender(conversation: Json, requester: Requester) -> tuple[str, str]:
    """(author, author_name) of a conversation."""
    user_id = conversation.get("user_id")
    if requester.id is not None and user_id == requester.id:
        return requester.author, requester.name
    if conversation.get("incoming") and isinstance(conversation.get("from_email"), str):
        name, address = email.utils.parseaddr(conversation["from_email"])
        if address:
            return address.lower(), name
    return f"user:{user_id}", ""


class FreshdeskSource:
    """One Freshdesk account, read through its API v2 with an agent's API key."""

    max_pages = MAX_PAGES

    def __init__(
        self,
        config: FreshdeskSourceConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        closing_phrases: Sequence[str] = (),
    ) -> None:
        self.name = config.name
        self.config = config
        self.closing_phrases = tuple(closing_phrases)  # the rules files' extra phrases
        self._authorization: str | None = None
        self._status_names: dict[int, str] | None = None  # custom statuses, by code
        self._status_names_fresh = False  # read during this poll: do not ask again
        self._removed_warned: set[str] = set()  # removed lists that failed: warned once
        key = "api_key_file" if config.api_key_file is not None else "api_key"
        self.api = source_api(
            config,
            headers=self._headers,
            what_to_fix=(
                f"check domain and {key} (the API key of a Freshdesk agent who can view every "
                "ticket to monitor)"
            ),
            sleep=sleep,
            clock=clock,
        )

    def _api_key(self) -> str:
        """The key, read fresh so a rotated ``api_key_file`` is picked up."""
        cfg = self.config
        return read_secret(
            self.name,
            key="api_key_file",
            value=cfg.api_key.get_secret_value() if cfg.api_key else None,
            path=cfg.api_key_file,
        )

    def _headers(self) -> Mapping[str, str]:
        if self._authorization is None:
            pair = f"{self._api_key()}:X".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        return {"Authorization": self._authorization}

    def close(self) -> None:
        """Forget the credentials and status names; the next poll reads them again."""
        self._authorization = None
        self._status_names = None

    # --- check --connect ---------------------------------------------------------------------

    def probe(self, now: datetime) -> ProbeReport:
        """Sign in as a poll does and report the agent, which tickets it can see, its role, the
        rate-limit headroom and how many tickets a first sync would read. Only reads."""
        self._authorization = None  # read the secret fresh, as a poll does
        cfg = self.config
        answer = self.api.get(AGENT_PATH)
        agent = answer.data
        if not isinstance(agent, Mapping):
            raise SourceError(
                self.name, f"{AGENT_PATH} answered {type(agent).__name__}, not a JSON object"
            )
        contact = agent.get("contact") or {}
        name, mail = str(contact.get("name") or ""), str(contact.get("email") or "")
        fallback = f"agent {agent.get('id')}"
        account = f"{name} <{mail}>" if name and mail else name or mail or fallback
        report = ProbeReport(source=self.name, kind="freshdesk", account=account)
        report.detail("api", self.api.base_url)
        report.detail(
            "signed in with",
            "API key" + (f" from {cfg.api_key_file}" if cfg.api_key_file is not None else ""),
        )
        scope = _int(agent.get("ticket_scope"))
        report.detail("ticket access", TICKET_SCOPES.get(scope or 0, f"ticket_scope {scope}"))
        if scope != GLOBAL_ACCESS:
            report.warnings.append(
                f"{account} sees {TICKET_SCOPES.get(scope or 0, 'not every ticket')}: tickets it "
                "cannot see are not monitored; use the API key of an agent with global access"
            )
        report.detail("role", self._role(agent))
        report.detail("rate limit", _headroom(answer.headers))
        since = (now - timedelta(seconds=cfg.since)).date().isoformat()
        try:
            found = self.api.get(SEARCH_PATH, {"query": f"\"updated_at:>'{since}'\""}).data
        except SourceError as exc:
            report.first_sync = f"not counted: {exc.detail}"
            return report
        total = found.get("total") if isinstance(found, Mapping) else None
        if not isinstance(total, int):
            report.first_sync = f"not counted: {SEARCH_PATH} answered without a total"
            return report
        report.first_sync = (
            f"{total:,} ticket{'s' if total != 1 else ''} updated since {since} (since: "
            f"{format_duration(cfg.since)}), each read with its conversations"
        )
        return report

    def _role(self, agent: Json) -> str:
        """The agent's role names and whether one is an administrator's, when the key may list
        the roles; otherwise the role ids."""
        ids = [i for i in agent.get("role_ids") or () if _int(i) is not None]
        listed = ", ".join(str(i) for i in ids) or "none"
        try:
            roles = _list(self.api.get(ROLES_PATH).data, self.name, ROLES_PATH)
        except SourceAuthError:  # the key signed in, so this is a permission: an admin's
            return f"role ids {listed}; this key may not list roles, so likely not an admin"
        except SourceError as exc:
            return f"role ids {listed} (roles not readable: {exc.detail})"
        names = [str(r.get("name")) for r in roles if r.get("id") in ids and r.get("name")]
        admin = any("admin" in n.lower() for n in names)
        return f"{', '.join(names) or 'none'} ({'an admin' if admin else 'not an admin'})"

    # --- polling -----------------------------------------------------------------------------

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """List the tickets updated since the checkpoint, page by page, storing each page; then
        the deleted and spam tickets, which that list leaves out."""
        self._authorization = None  # read the secret once per poll, fresh
        self._status_names_fresh = False
        report = PollReport(source=self.name)
        requests_before = self.api.requests
        try:
            self._read_list(sink, now, report, None)
            for kind in REMOVED:
                try:
                    self._read_list(sink, now, report, kind)
                except SourceError as exc:
                    # The tickets themselves were read; a list of removed ones that cannot be
                    # read (a key whose agent may not see the trash) must not take them down.
                    # Its checkpoint stays where it was, so the next poll asks again.
                    level = logging.DEBUG if kind in self._removed_warned else logging.WARNING
                    self._removed_warned.add(kind)
                    log.log(
                        level,
                        f"{kind} tickets not listed: their clocks stop only once this list "
                        "can be read",
                        extra=fields(source=self.name, error=exc.detail),
                    )
                else:
                    self._removed_warned.discard(kind)
        finally:
            report.round_trips = self.api.requests - requests_before
        return report

    def _read_list(
        self, sink: MessageSink, now: datetime, report: PollReport, kind: str | None
    ) -> None:
        """Read one ticket list (the tickets, or with ``kind`` the deleted or spam ones) from
        its checkpoint, storing each page's events with the page's new checkpoint."""
        key = REMOVED[kind] if kind else CHECKPOINT
        boundary = Boundary.load(sink.checkpoint(key)) or Boundary(
            now - timedelta(seconds=self.config.since)
        )
        since, page = boundary.at, 1
        while True:
            answer = self.api.get(TICKETS_PATH, self._list_params(since, page, kind))
            tickets = _list(answer.data, self.name, TICKETS_PATH)
            stored_before = boundary
            fresh: list[tuple[Json, datetime]] = []
            for ticket in tickets:
                updated = parse_time(ticket.get("updated_at"))
                ticket_id = ticket.get("id")
                if updated is None or not isinstance(ticket_id, int):
                    log.warning(
                        "ticket without id or updated_at skipped",
                        extra=fields(source=self.name, ticket=ticket_id),
                    )
                    continue
                if boundary.covers(ticket_id, updated):
                    continue
                fresh.append((ticket, updated))
                boundary = boundary.advance(ticket_id, updated)
            events: list[MessageEvent] = []
            if kind is None:
                for ticket, _ in fresh:
                    events.extend(self._ticket_events(sink, ticket, now))
            else:
                known = _stored_tickets(sink, (int(t["id"]) for t, _ in fresh))
                for ticket, updated in fresh:
                    if int(ticket["id"]) in known:
                        events.append(self._removed_event(ticket, kind, updated))
            if boundary != stored_before:
                result = sink.accept(events, None, now, checkpoint=(key, boundary.dump()))
                report.add(FOLDER, result.new, result.duplicates)
            if answer.link("next") is None and len(tickets) < PER_PAGE:
                return
            if page < self.max_pages:
                page += 1
                continue
            if boundary.at <= since:
                raise SourceError(
                    self.name,
                    f"more than {self.max_pages * PER_PAGE} tickets share the updated_at "
                    f"{iso(since)}; Freshdesk cannot list past them",
                )
            since, page = boundary.at, 1  # past Freshdesk's last page: restart from here

    @staticmethod
    def _list_params(since: datetime, page: int, kind: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "updated_since": iso(since),
            "order_by": "updated_at",
            "order_type": "asc",
            "per_page": PER_PAGE,
            "page": page,
        }
        if kind is None:
            params["include"] = "requester,stats"
        else:  # a removed ticket is closed by its id alone: nothing to embed
            params["filter"] = kind
        return params

    def _common(self, ticket: Json, customer: str) -> dict[str, Any]:
        """The MessageEvent fields every event of one ticket shares."""
        ticket_id = int(ticket["id"])
        attributes = {
            name: str(ticket[key])
            for name, key in (("group", "group_id"), ("type", "type"))
            if ticket.get(key) is not None
        }
        return {
            "source": self.name,
            "subject": str(ticket.get("subject") or ""),
            "thread": ThreadRef(conversation=str(ticket_id), customer=customer),
            "priority": PRIORITIES.get(_int(ticket.get("priority")) or 0),
            "tags": tuple(str(tag) for tag in ticket.get("tags") or ()),
            "attributes": attributes,
            "link": f"https://{self.config.domain}.freshdesk.com/a/tickets/{ticket_id}",
        }

    def _ticket_events(self, sink: MessageSink, ticket: Json, now: datetime) -> list[MessageEvent]:
        ticket_id = int(ticket["id"])
        removed = next((k for k in REMOVED if ticket.get(k) is True), None)
        if removed is not None:  # listed although removed: close it, as the removed lists do
            updated = parse_time(ticket.get("updated_at"))
            if updated is None or ticket_id not in _stored_tickets(sink, [ticket_id]):
                return []
            return [self._removed_event(ticket, removed, updated)]
        conversations = unless_gone(lambda: self._conversations(ticket_id))
        if conversations is None:
            # Deleted (and purged) since the list showed it. Its clock stops now, when the
            # deletion was seen; a ticket never stored is left out, as the removed lists do.
            log.info(
                "ticket gone while being read: counted as closed",
                extra=fields(source=self.name, ticket=ticket_id),
            )
            if ticket_id not in _stored_tickets(sink, [ticket_id]):
                return []
            return [
                MessageEvent(
                    identity=f"ticket:{ticket_id}:deleted",
                    timestamp=now,
                    direction=Direction.IGNORED,
                    reason="ticket deleted in Freshdesk (HTTP 404 while its conversations were "
                    "read; counted as closed)",
                    status="closed",
                    **self._common(ticket, ""),
                )
            ]
        requester = _requester(ticket)
        common = self._common(ticket, requester.author)
        events: list[MessageEvent] = []
        created = parse_time(ticket.get("created_at"))
        if created is not None:
            events.append(self._opening(ticket, requester, created, common))
        for conversation in conversations:
            at = parse_time(conversation.get("created_at"))
            if at is None or not isinstance(conversation.get("id"), int):
                continue
            direction, reason = classify_conversation(conversation)
            author, name = _sender(conversation, requester)
            closing = None
            if self.config.closers == "ignore" and direction is Direction.INBOUND:
                closing = conversation_closing(conversation, self.closing_phrases)
            events.append(
                MessageEvent(
                    identity=f"ticket:{ticket_id}:conversation:{conversation['id']}",
                    timestamp=at,
                    direction=direction,
                    reason=reason,
                    author=author,
                    author_name=name,
                    closing=closing,
                    **common,
                )
            )
        status = self._status_event(ticket, common)
        if status is not None:
            events.append(status)
        return events

    def _removed_event(self, ticket: Json, kind: str, updated: datetime) -> MessageEvent:
        """A deleted or spam ticket's closing, at the update that removed it: nobody will
        answer it, so its clock stops (counted as closed, not a breach)."""
        ticket_id = int(ticket["id"])
        return MessageEvent(
            identity=f"ticket:{ticket_id}:{kind}:{iso(updated)}",
            timestamp=updated,
            direction=Direction.IGNORED,
            reason=f"ticket {REMOVED_WORDS[kind]} in Freshdesk (counted as closed)",
            status="closed",
            **self._common(ticket, ""),
        )

    def _opening(
        self, ticket: Json, requester: Requester, created: datetime, common: dict[str, Any]
    ) -> MessageEvent:
        """The ticket's creation: the customer's first message, unless an agent sent it out."""
        ticket_id = int(ticket["id"])
        channel = TICKET_SOURCES.get(_int(ticket.get("source")) or 0, "an unknown channel")
        if ticket.get("source") == OUTBOUND_EMAIL:
            responder = ticket.get("responder_id")
            return MessageEvent(
                identity=f"ticket:{ticket_id}:created",
                timestamp=created,
                direction=Direction.OUTBOUND,
                reason="ticket created by an agent as an outbound email (the team spoke first)",
                author=f"user:{responder}" if responder is not None else "",
                **common,
            )
        return MessageEvent(
            identity=f"ticket:{ticket_id}:created",
            timestamp=created,
            direction=Direction.INBOUND,
            reason=f"customer comment (opened the ticket via {channel})",
            author=requester.author,
            author_name=requester.name,
            **common,
        )

    def _status_event(self, ticket: Json, common: dict[str, Any]) -> MessageEvent | None:
        code = ticket.get("status")
        if not isinstance(code, int):
            return None
        stats = ticket.get("stats") or {}
        at = parse_time(stats.get("status_updated_at")) or parse_time(ticket.get("updated_at"))
        if at is None:
            return None
        status = STATUSES.get(code)
        reason = f"ticket status set to {status}"
        if status is None:
            name = self._status_name(code)
            status = status_from_name(name)
            reason = f"ticket status set to {status} (Freshdesk: {name})"
        return MessageEvent(
            identity=f"ticket:{ticket['id']}:status:{code}:{iso(at)}",
            timestamp=at,
            direction=Direction.IGNORED,
            reason=reason,
            status=status,
            **common,
        )

    def _status_name(self, code: int) -> str:
        """A custom status's name, from the ticket fields: read when first needed, and again
        (once a poll) when a status appears that the last reading did not name."""
        names = self._status_names
        if names is None or (code not in names and not self._status_names_fresh):
            path = "/api/v2/ticket_fields"
            names = {}
            for item in _list(self.api.get(path, {"type": "default_status"}).data, self.name, path):
                if item.get("name") != "status":
                    continue
                for key, labels in (item.get("choices") or {}).items():
                    label = labels[0] if isinstance(labels, list) and labels else labels
                    if str(key).isdigit() and isinstance(label, str):
                        names[int(key)] = label
            self._status_names, self._status_names_fresh = names, True
        return names.get(code, f"status {code}")

    def _conversations(self, ticket_id: int) -> list[Json]:
        """Every conversation of a ticket (replies, notes, customer messages), page by page."""
        path = f"/api/v2/tickets/{ticket_id}/conversations"
        found: list[Json] = []
        page = 1
        while True:
            answer = self.api.get(path, {"per_page": PER_PAGE, "page": page})
            items = _list(answer.data, self.name, path)
            found.extend(items)
            if answer.link("next") is None and len(items) < PER_PAGE:
                return found
            page += 1


def _headroom(headers: Mapping[str, str]) -> str:
    """The account's rate-limit headroom, from an answer's headers."""
    limit, left = headers.get("x-ratelimit-total"), headers.get("x-ratelimit-remaining")
    if not limit or not left:
        return "not reported"
    return f"{left} of {limit} requests a minute left"


def _stored_tickets(sink: MessageSink, ids: Iterable[int]) -> set[int]:
    """The tickets among ``ids`` whose opening is stored: the ones replyclock monitors."""
    wanted = {f"ticket:{i}:created": i for i in ids}
    if not wanted:
        return set()
    return {wanted[identity] for identity in sink.message_thread_hints(wanted)}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list(data: object, source: str, path: str) -> list[Json]:
    if not isinstance(data, list):
        raise SourceError(
            source, f"{path} answered {type(data).__name__}, not a JSON list; check base_url"
        )
    return [item for item in data if isinstance(item, Mapping)]
