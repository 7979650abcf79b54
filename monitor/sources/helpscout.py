"""The Help Scout source: conversations and their threads, through the Mailbox API 2.0.

Read-only: one POST for an OAuth2 access token (client credentials, cached until shortly
before it expires), otherwise only GET requests. Each poll lists the conversations modified
since the saved time, oldest first, with their threads embedded (``embed=threads``), and stores
each page's events together with the page's latest modification time in one transaction.

What a thread is, by its ``type``: ``customer`` is a customer message; ``reply`` (and a
user's ``message``) is the team's reply; ``chat`` and ``phone`` threads count by who created
them; ``note``, forwards and ``lineitem`` (the activity log) are neither. Drafts and threads
held by collision detection are not stored until they are sent. A status change is read from
the thread's ``status`` (documented as ``nochange`` unless the thread changed the status),
else from a line item's text ("Marked as Pending"); a conversation whose status no thread
recorded gets one status event at ``closedAt`` or ``userUpdatedAt``.

With ``closers: ignore`` (the default) a customer thread after the conversation's first
message that is only a closing phrase ("Thanks, that fixed it!") is marked as a closing
message, so it starts no next-response clock: its HTML ``body`` and ``_embedded.attachments``
are read by ``monitor.mail.closers.closing_message``, and only the verdict's few words are
kept. The thread that opened the conversation is a request, whatever it says.

A conversation nobody will answer any more -- ``state`` deleted, or ``status`` spam (the list
asks for ``status=all``, which includes spam) -- gets one ``closed`` status event at the latest
time it shows, so a waiting customer's clock stops (counted as closed, not a breach). One whose
threads answer 404 while being read was deleted since it was listed: it is closed at that
moment, and the poll goes on.

``probe`` (for ``replyclock check --connect``) gets a token as a poll does, asks whom the app
acts as (``users/me``), lists the mailboxes that user can see against ``mailboxes``, reads the
rate-limit headroom, and counts from one page of the conversation list what a first sync
would read.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.models import HelpScoutSourceConfig
from monitor.durations import format_duration
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.closers import closing_quote
from monitor.model import Direction, MessageEvent, ThreadRef
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.http import source_api, unless_gone
from monitor.sources.probe import FolderFacts, ProbeReport

log = logging.getLogger("replyclock.sources.helpscout")

TOKEN_PATH = "/v2/oauth2/token"  # noqa: S105 - a URL path, not a password
CONVERSATIONS_PATH = "/v2/conversations"
ME_PATH = "/v2/users/me"
MAILBOXES_PATH = "/v2/mailboxes"
FOLDER = "conversations"  # the PollReport bucket; an API source has no folders
TOKEN_MARGIN_S = 300.0  # a cached token is renewed this long before it expires
STATUSES = {
    "active": "open",
    "open": "open",
    "pending": "pending",
    "closed": "closed",
    "spam": "closed",  # nobody will answer spam: its clock stops, not a breach
}
UNSENT_STATES = frozenset({"draft", "underreview"})  # not sent yet: stored once published
_STATUS_TEXT = re.compile(
    r"\b(?:marked\s+as|status\b[^.]*?\bto)\s+(active|open|pending|closed|spam)\b", re.IGNORECASE
)

Json = Mapping[str, Any]


def checkpoint_key(mailboxes: Sequence[int]) -> str:
    """The store key of the position: per set of mailboxes, so adding one reads it from the
    start instead of only from the old position."""
    return "modified_since:" + (",".join(str(m) for m in sorted(mailboxes)) or "all")


def iso(instant: datetime) -> str:
    """An instant the way Help Scout reads them (``2024-06-03T09:00:00Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: object, what: str) -> datetime:
    """An aware UTC datetime from Help Scout's ISO 8601 text, or ValueError naming ``what``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is missing or not a time: {value!r}")
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None:
        raise ValueError(f"{what} has no time zone: {value!r}")
    return instant.astimezone(UTC)


def _optional_instant(value: object) -> datetime | None:
    try:
        return parse_instant(value, "time")
    except ValueError:
        return None


def classify_thread(thread: Json) -> tuple[Direction, str]:
    """What a thread means for the reply clock, and why."""
    kind = str(thread.get("type") or "")
    by_customer = (thread.get("createdBy") or {}).get("type") == "customer"
    if kind == "customer":
        return Direction.INBOUND, "customer message"
    if kind == "reply":
        return Direction.OUTBOUND, "reply by a Help Scout user"
    if kind == "message":
        return Direction.OUTBOUND, "message by a Help Scout user (the team wrote first)"
    if kind in ("chat", "beaconchat"):
        if by_customer:
            return Direction.INBOUND, "customer chat message"
        return Direction.OUTBOUND, "chat reply by a Help Scout user"
    if kind == "phone":
        if by_customer:
            return Direction.INBOUND, "customer phone call"
        return Direction.OUTBOUND, "phone call logged by a Help Scout user"
    if kind == "note":
        return Direction.IGNORED, "note (not a reply)"
    if kind in ("forwardparent", "forwardchild"):
        return Direction.IGNORED, "forward (a note, not a reply)"
    if kind == "lineitem":
        text = str((thread.get("action") or {}).get("text") or "").strip()
        return Direction.IGNORED, f"line item: {text}" if text else "line item"
    return Direction.IGNORED, f"{kind or 'untyped'} thread (neither a message nor a reply)"


def thread_status(thread: Json) -> str | None:
    """The conversation status a thread set (open, pending, closed), or None if it set none."""
    raw = str(thread.get("status") or "").lower()
    if raw in STATUSES:
        return STATUSES[raw]
    if thread.get("type") == "lineitem":
        found = _STATUS_TEXT.search(str((thread.get("action") or {}).get("text") or ""))
        if found:
            return STATUSES[found.group(1).lower()]
    return None


def thread_closing(thread: Json, extra_phrases: Sequence[str] = ()) -> str | None:
    """The words of a customer thread that is only a closing phrase ("Thanks!"), else None.
    Its ``body`` is HTML; any attachment (``_embedded.attachments``) makes it more than a
    closing phrase. The body is not kept: only the verdict's quote (at most 40 characters)."""
    embedded = thread.get("_embedded")
    attachments = embedded.get("attachments") if isinstance(embedded, Mapping) else None
    return closing_quote(
        thread,
        (("body", "text/html"),),
        has_attachment=bool(attachments),
        extra_phrases=extra_phrases,
    )


def modified_at(conversation: Json, threads: Sequence[Json]) -> datetime:
    """When the conversation last changed, as far as its body shows.

    The documented conversation object carries no ``modifiedAt`` (the field ``modifiedSince``
    filters on), so the latest time it does show is used: never later than the real one, so a
    checkpoint built from it can only make the next poll read a conversation again, never skip
    one.
    """
    times = [
        _optional_instant(conversation.get(name))
        for name in ("modifiedAt", "updatedAt", "userUpdatedAt", "closedAt", "createdAt")
    ]
    times.extend(_optional_instant(t.get("createdAt")) for t in threads)
    known = [t for t in times if t is not None]
    if not known:
        raise ValueError(f"conversation {conversation.get('id')} shows no time at all")
    return max(known)


def _email(person: object) -> str:
    return str(person.get("email") or "").lower() if isinstance(person, Mapping) else ""


def _name(person: object) -> str:
    if not isinstance(person, Mapping):
        return ""
    return " ".join(str(person.get(k) or "") for k in ("first", "last")).strip()


def _shared(source: str, conversation: Json) -> dict[str, Any]:
    """The MessageEvent fields every event of one conversation carries."""
    cid = int(conversation["id"])
    customer = conversation.get("primaryCustomer")
    return {
        "source": source,
        "subject": str(conversation.get("subject") or ""),
        "thread": ThreadRef(conversation=str(cid), customer=_email(customer)),
        "tags": tuple(str(t["tag"]) for t in conversation.get("tags") or () if t.get("tag")),
        "link": f"https://secure.helpscout.net/conversation/{cid}",
        "attributes": {"mailbox": str(conversation.get("mailboxId", ""))},
    }


def removal(conversation: Json) -> str | None:
    """``deleted`` or ``spam`` when nobody will answer the conversation any more, else None.

    The Mailbox API puts a deletion in ``state`` (draft, published, deleted) and spam in
    ``status`` (active, pending, closed, spam); a ``status`` of deleted counts too."""
    raw = str(conversation.get("status") or "").lower()
    if conversation.get("state") == "deleted" or raw == "deleted":
        return "deleted"
    return "spam" if raw == "spam" else None


def conversation_events(
    source: str,
    conversation: Json,
    threads: Sequence[Json],
    *,
    closers: str = "ignore",
    closing_phrases: Sequence[str] = (),
) -> list[MessageEvent]:
    """The events of one conversation and its threads (pure: no I/O). With ``closers``
    "ignore", a customer thread after the first message that is only a closing phrase
    (``closing_phrases`` add to the built-in ones) is marked as a closing message."""
    cid = int(conversation["id"])
    customer = conversation.get("primaryCustomer")
    shared = _shared(source, conversation)

    def event(
        identity: str,
        when: datetime,
        verdict: tuple[Direction, str],
        person: object,
        *,
        status: str | None = None,
        recipients: Sequence[str] = (),
        closing: str | None = None,
    ) -> MessageEvent:
        return MessageEvent(
            identity=f"conversation:{cid}:{identity}",
            timestamp=when,
            direction=verdict[0],
            reason=verdict[1],
            author=_email(person),
            author_name=_name(person),
            recipients=tuple(str(r).lower() for r in recipients),
            status=status,
            closing=closing,
            **shared,
        )

    if conversation.get("state") == "draft":
        return []  # a new conversation a user has not sent yet
    events: list[MessageEvent] = []
    said: str | None = None  # the last status a thread recorded
    opened = False  # a message (the customer's or the team's) came before this thread
    published = [t for t in threads if str(t.get("state") or "published") not in UNSENT_STATES]
    ordered = sorted(published, key=lambda t: (str(t.get("createdAt")), int(t["id"])))
    for thread in ordered:
        when = parse_instant(thread.get("createdAt"), f"thread {thread.get('id')} createdAt")
        verdict = classify_thread(thread)
        status = thread_status(thread)
        said = status or said
        person = thread.get("createdBy")
        if verdict[0] is Direction.INBOUND and not _email(person):
            person = thread.get("customer") or customer
        closing = None
        if closers == "ignore" and opened and thread.get("type") == "customer":
            closing = thread_closing(thread, closing_phrases)
        opened = opened or verdict[0] is not Direction.IGNORED
        events.append(
            event(
                f"thread:{thread['id']}",
                when,
                verdict,
                person,
                status=status if verdict[0] is Direction.IGNORED else None,
                recipients=thread.get("to") or (),
                closing=closing,
            )
        )
    removed = removal(conversation)
    if removed is not None:
        # Deleted or spam: nobody will answer, so whatever wait runs stops, as when the
        # conversation is closed (counted, not a breach). It is timed by the latest time the
        # conversation shows, which is no earlier than any of its threads, so it stops a wait
        # that started after a user last touched it too; unless its newest thread closed it.
        if ordered and thread_status(ordered[-1]) == "closed":
            return events
        when = modified_at(conversation, published)
        words = "deleted" if removed == "deleted" else "marked as spam"
        reason = f"conversation {words} in Help Scout (counted as closed)"
        events.append(
            event(
                f"status:closed:{iso(when)}",
                when,
                (Direction.IGNORED, reason),
                None,
                status="closed",
            )
        )
        return events
    raw = str(conversation.get("status") or "").lower()
    current = STATUSES.get(raw)
    if current is not None and current != said and (said, current) != (None, "open"):
        names = ("closedAt", "userUpdatedAt") if current == "closed" else ("userUpdatedAt",)
        found = [_optional_instant(conversation.get(n)) for n in names]
        when_known = next((t for t in found if t is not None), None)
        if when_known is not None:
            events.append(
                event(
                    f"status:{current}:{iso(when_known)}",
                    when_known,
                    (Direction.IGNORED, f"conversation is {raw} (no thread recorded the change)"),
                    conversation.get("closedByUser") if current == "closed" else None,
                    status=current,
                )
            )
    return events


def vanished_event(source: str, conversation: Json, now: datetime) -> MessageEvent:
    """A listed conversation whose threads answered 404: deleted since it was listed. Its wait
    stops at ``now``, when the deletion was seen (counted as closed, not a breach)."""
    return MessageEvent(
        identity=f"conversation:{int(conversation['id'])}:deleted",
        timestamp=now,
        direction=Direction.IGNORED,
        reason="conversation deleted in Help Scout (HTTP 404 while its threads were read; "
        "counted as closed)",
        status="closed",
        **_shared(source, conversation),
    )


class HelpScoutSource:
    """The mailboxes of one Help Scout account, read by an OAuth2 app (client credentials)."""

    def __init__(
        self,
        config: HelpScoutSourceConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        closing_phrases: Sequence[str] = (),
    ) -> None:
        self.name = config.name
        self.config = config
        self.closing_phrases = tuple(closing_phrases)  # the rules files' extra phrases
        self.clock = clock
        self._token: str | None = None
        self._token_until = datetime.min.replace(tzinfo=UTC)
        self._secret_digest = b""  # of the secret the cached token was issued for
        key = "app_secret_file" if config.app_secret_file is not None else "app_secret"
        self.api = source_api(
            config,
            headers=self._headers,
            what_to_fix=(
                f"check app_id and {key}: the App ID and App Secret of an OAuth2 app made "
                "under Your Profile > My Apps; the app acts as the user who made it, and that "
                "user must have access to every mailbox in `mailboxes`"
            ),
            sleep=sleep,
            clock=clock,
        )

    # --- credentials -------------------------------------------------------------------------

    def _read_secret(self) -> str:
        """The app secret, read fresh so that a rotated ``app_secret_file`` is picked up."""
        cfg = self.config
        return read_secret(
            self.name,
            key="app_secret_file",
            value=cfg.app_secret.get_secret_value() if cfg.app_secret else None,
            path=cfg.app_secret_file,
        )

    def _headers(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _ensure_token(self) -> None:
        """Get an access token unless the cached one is still good for this secret."""
        secret = self._read_secret()
        digest = hashlib.sha256(secret.encode()).digest()
        now = self.clock()
        if self._token and digest == self._secret_digest and now < self._token_until:
            return
        self._token = None  # the token request itself carries no bearer
        form = {
            "grant_type": "client_credentials",
            "client_id": self.config.app_id,
            "client_secret": secret,
        }
        try:
            data = self.api.post_form(TOKEN_PATH, form).data
        except SourceAuthError:
            raise
        except SourceError as exc:  # OAuth2 servers may answer bad credentials with 400
            cause = exc.__cause__
            if isinstance(cause, urllib.error.HTTPError) and cause.code == 400:
                raise SourceAuthError(
                    self.name,
                    f"{self.api.base_url} refused the token request (HTTP 400); "
                    f"{self.api.what_to_fix}",
                ) from exc
            raise
        token = data.get("access_token") if isinstance(data, Mapping) else None
        lifetime = data.get("expires_in") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float):
            raise SourceError(
                self.name, f"{TOKEN_PATH} answered without access_token and expires_in"
            )
        margin = min(TOKEN_MARGIN_S, lifetime / 2)
        self._token, self._secret_digest = token, digest
        self._token_until = now + timedelta(seconds=lifetime - margin)

    def close(self) -> None:
        """Forget the access token; the next poll asks for a new one."""
        self._token = None

    # --- check --connect ---------------------------------------------------------------------

    def probe(self, now: datetime) -> ProbeReport:
        """Get a token as a poll does and report the user the app acts as, the mailboxes that
        user sees (the configured ones marked watched), the rate-limit headroom and how many
        conversations a first sync would read. Only reads; never shows the secret or token."""
        try:
            self._ensure_token()
            return self._probe(now)
        except SourceAuthError:
            self._token = None
            raise

    def _probe(self, now: datetime) -> ProbeReport:
        cfg = self.config
        answer = self.api.get(ME_PATH)
        me = answer.data if isinstance(answer.data, Mapping) else {}
        name = " ".join(str(me.get(k) or "") for k in ("firstName", "lastName")).strip()
        mail = str(me.get("email") or "")
        account = f"{name} <{mail}>" if name and mail else name or mail or f"user {me.get('id')}"
        report = ProbeReport(source=self.name, kind="helpscout", account=account)
        report.detail("api", self.api.base_url)
        report.detail(
            "signed in with",
            f"OAuth2 app {cfg.app_id} (client credentials"
            + (f", secret from {cfg.app_secret_file})" if cfg.app_secret_file else ")"),
        )
        report.detail("role", str(me.get("role") or "unknown"))
        report.detail("rate limit", _headroom(answer.headers))
        mailboxes = self._mailboxes()
        wanted = set(cfg.mailboxes)
        for mailbox_id, mailbox_name in sorted(mailboxes.items(), key=lambda m: m[1]):
            report.folders.append(
                FolderFacts(
                    name=f"{mailbox_name} ({mailbox_id})",
                    role="watched" if not wanted or mailbox_id in wanted else "",
                    messages=None,
                )
            )
        if not wanted:
            report.detail("mailboxes", f"all {len(mailboxes)} that {account} can see (none set)")
        for missing in sorted(wanted - set(mailboxes)):
            report.warnings.append(
                f"mailbox {missing} in `mailboxes` is not one {account} can see: fix its id, "
                "or give that user access to the mailbox (the app acts as the user who made it)"
            )
        if not mailboxes:
            report.warnings.append(f"{account} can see no mailbox: there is nothing to read")
        since = now - timedelta(seconds=cfg.since)
        params = {**self._params(since, 1), "embed": None}
        try:
            page = self.api.get(CONVERSATIONS_PATH, params).data
        except SourceError as exc:
            report.first_sync = f"not counted: {exc.detail}"
            return report
        meta = page.get("page") if isinstance(page, Mapping) else None
        total = meta.get("totalElements") if isinstance(meta, Mapping) else None
        if not isinstance(total, int):
            report.first_sync = f"not counted: {CONVERSATIONS_PATH} answered without a total"
            return report
        report.first_sync = (
            f"{total:,} conversation{'s' if total != 1 else ''} modified since "
            f"{since.date().isoformat()} (since: {format_duration(cfg.since)}), each read "
            "with its threads"
        )
        return report

    def _mailboxes(self) -> dict[int, str]:
        """Every mailbox the app's user can see: id -> name."""
        found: dict[int, str] = {}
        page = 1
        while True:
            data = self.api.get(MAILBOXES_PATH, {"page": page}).data
            for item in _embedded(data, "mailboxes", self.name):
                if isinstance(item.get("id"), int):
                    found[item["id"]] = str(item.get("name") or item.get("email") or item["id"])
            if _page_number(data) >= _total_pages(data):
                return found
            page += 1

    # --- polling -----------------------------------------------------------------------------

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read the conversations modified since the checkpoint, page by page."""
        report = PollReport(source=self.name)
        before = self.api.requests
        try:
            self._ensure_token()
            self._read_conversations(sink, now, report)
        except SourceAuthError:
            self._token = None  # revoked or expired early: the next poll asks for a new one
            raise
        finally:
            report.round_trips = self.api.requests - before
        log.info(
            "poll finished",
            extra=fields(source=self.name, new=report.new, requests=report.round_trips),
        )
        return report

    def _read_conversations(self, sink: MessageSink, now: datetime, report: PollReport) -> None:
        key = checkpoint_key(self.config.mailboxes)
        saved = sink.checkpoint(key)
        written = parse_instant(saved, key) if saved else now - timedelta(seconds=self.config.since)
        done = cursor = written
        page = 1
        while True:
            data = self.api.get(CONVERSATIONS_PATH, self._params(cursor, page)).data
            conversations = _embedded(data, "conversations", self.name)
            events: list[MessageEvent] = []
            for conversation in conversations:
                read = unless_gone(functools.partial(self._threads, conversation))
                gone = read is None
                if gone:
                    log.info(
                        "conversation gone while being read: counted as closed",
                        extra=fields(source=self.name, conversation=conversation.get("id")),
                    )
                threads = read or []
                try:
                    if gone:
                        events.append(vanished_event(self.name, conversation, now))
                    else:
                        events.extend(
                            conversation_events(
                                self.name,
                                conversation,
                                threads,
                                closers=self.config.closers,
                                closing_phrases=self.closing_phrases,
                            )
                        )
                    done = max(done, modified_at(conversation, threads))
                except (KeyError, TypeError, ValueError) as exc:
                    raise SourceError(
                        self.name,
                        f"conversation {conversation.get('id')} has an unexpected shape ({exc})",
                    ) from exc
            if events or done > written:
                result = sink.accept(events, None, now, checkpoint=(key, iso(done)))
                report.add(FOLDER, result.new, result.duplicates)
                written = done
            if not conversations or _page_number(data) >= _total_pages(data):
                return
            if done > cursor:
                # Ask again from the last stored time rather than for page N+1: a conversation
                # modified while we page moves to the end and would shift one past us.
                cursor, page = done, 1
            else:  # a whole page within one second: only the page number can move on
                page += 1

    def _params(self, cursor: datetime, page: int) -> dict[str, Any]:
        return {
            "mailbox": ",".join(str(m) for m in self.config.mailboxes) or None,
            "status": "all",
            # One second early: whether modifiedSince includes its instant is not documented.
            "modifiedSince": iso(cursor - timedelta(seconds=1)),
            "sortField": "modifiedAt",
            "sortOrder": "asc",
            "embed": "threads",
            "page": page,
        }

    def _threads(self, conversation: Json) -> list[Json]:
        """The conversation's threads: embedded, or read from its threads list when not."""
        embedded = conversation.get("_embedded")
        if isinstance(embedded, Mapping) and isinstance(embedded.get("threads"), list):
            return [t for t in embedded["threads"] if isinstance(t, Mapping)]
        path = f"{CONVERSATIONS_PATH}/{conversation['id']}/threads"
        threads: list[Json] = []
        page = 1
        while True:
            data = self.api.get(path, {"page": page}).data
            threads.extend(_embedded(data, "threads", self.name))
            if _page_number(data) >= _total_pages(data):
                return threads
            page += 1


def _headroom(headers: Mapping[str, str]) -> str:
    """The account's rate-limit headroom, from an answer's headers."""
    limit = headers.get("x-ratelimit-limit-minute")
    left = headers.get("x-ratelimit-remaining-minute")
    if not limit or not left:
        return "not reported"
    return f"{left} of {limit} requests a minute left"


def _embedded(data: object, name: str, source: str) -> list[Json]:
    """The ``_embedded`` list of a HAL answer (absent when empty)."""
    if not isinstance(data, Mapping):
        raise SourceError(source, f"the API did not answer a JSON object for {name}")
    embedded = data.get("_embedded") or {}
    items = embedded.get(name) if isinstance(embedded, Mapping) else None
    return [item for item in items or () if isinstance(item, Mapping)]


def _page_number(data: object) -> int:
    page = data.get("page") if isinstance(data, Mapping) else None
    return int(page.get("number") or 1) if isinstance(page, Mapping) else 1


def _total_pages(data: object) -> int:
    page = data.get("page") if isinstance(data, Mapping) else None
    return int(page.get("totalPages") or 1) if isinstance(page, Mapping) else 1
