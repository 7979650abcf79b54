"""The Microsoft Graph source: a Microsoft 365 shared mailbox, read with application Mail.Read.

Read-only: only GET requests. Each folder is read with a delta query
(``/users/{mailbox}/mailFolders/{folder}/messages/delta``): Inbox and Sent Items by their
well-known names (``inbox``, ``sentitems``: any language), other folders by display name. The
first round lists what the folder received since ``since`` (``$filter`` on receivedDateTime,
the one filter delta takes); later rounds, started from the last round's ``@odata.deltaLink``,
only what was added or removed since. Each page's events are stored together with the link
that continues after it (the ``@odata.nextLink``, or the round's deltaLink), so a poll that
fails half-way resumes at the first page it did not store, and nothing is stored twice.

Ids are asked as immutable ids (``Prefer: IdType="ImmutableId"``), which survive moves between
folders; each maps to a stable 63-bit number that the store keeps as the message's place in the
folder, so an ``@removed`` entry closes a waiting customer's clock as closed without reply, like
an IMAP expunge. An expired delta token (410 Gone) reads the folder again from scratch, under a
new generation of places: the store is idempotent by message identity, and once the new read is
complete the mail it did not find again is marked removed, as IMAP does after a UIDVALIDITY
change. A filtered delta round returns at most 5,000 messages (Graph's documented cap); a whole
read that reaches it marks nothing removed and says so in the log.

Graph's Outlook limits are counted per app and mailbox: 4 concurrent requests, and 10,000
requests in 10 minutes. The source sends one request at a time (never more than one in flight
for any mailbox), asks for pages of ``page_size`` messages (``Prefer: odata.maxpagesize``) with
only the properties it needs (``$select``), and counts its requests per mailbox over a sliding
10 minutes: past ``REQUEST_BUDGET`` (9,000, leaving room for other tools using the same app) it
ends the poll, and the next one continues from the stored link. An unchanged folder costs one
request per poll: a shared mailbox polled every minute costs 20 requests per 10 minutes (Inbox
and Sent Items), each agent of ``reply_mailboxes`` 10. 429, 503 and 504 answers are retried
after their ``Retry-After`` (at most ``MAX_WAIT_S`` each, ``MAX_ATTEMPTS`` tries); past that the
poll fails cleanly, and the next one continues from the checkpoint.

``reply_mailboxes``: replies an agent sends as (or on behalf of) the shared mailbox are saved in
the agent's own Sent Items. Those folders are read the same way, and only messages that belong
to the shared mailbox are kept: sent from its address (``from`` or ``sender``), in a conversation
(conversationId) already stored for this source, or naming a stored message in In-Reply-To or
References. Everything else an agent sent is skipped and never stored.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import random
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from monitor.config.models import MicrosoftAuthConfig
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.classify import MailboxIdentity
from monitor.mail.closers import closing_message
from monitor.mail.events import FolderContext, event_from_headers, wants_body
from monitor.mail.headers import HEADER_FIELDS
from monitor.model import FolderRole, MailLocation, MessageEvent
from monitor.sources.base import MessageSink, PollReport
from monitor.sources.http import parse_time, retry_after_seconds
from monitor.sources.oauth import AccessTokens, access_tokens
from monitor.sources.probe import Platform, ProbeReport

log = logging.getLogger("replyclock.sources.graph")

# What a message is read with: enough to classify and thread it as IMAP would from its headers,
# and to write those headers when Graph has none (Sent Items copies often carry none).
SELECT = (
    "internetMessageHeaders",
    "internetMessageId",
    "receivedDateTime",
    "sentDateTime",
    "conversationId",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "replyTo",
    "subject",
    # to tell a customer's "Thanks!" after our reply (only the decision is kept)
    "bodyPreview",
    "hasAttachments",
)
PREVIEW_CHARS = 255  # Graph's bodyPreview is the first 255 characters of the body
# Folder names Graph resolves in URLs in every mailbox language (mailFolder resource docs).
WELL_KNOWN_FOLDERS = frozenset(
    {
        "archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts",
        "inbox", "junkemail", "localfailures", "msgfolderroot", "outbox",
        "recoverableitemsdeletions", "scheduled", "searchfolders", "sentitems",
        "serverfailures", "syncissues",
    }
)  # fmt: skip
RESYNC_CODES = frozenset({"syncStateNotFound", "resyncRequired", "syncStateInvalid"})
MAILBOX_CODES = frozenset({"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "ResourceNotFound"})
FILTERED_DELTA_LIMIT = 5000  # "Applying $filter in a delta query returns only up to 5,000 messages"
REQUEST_WINDOW_S = 600.0
REQUEST_BUDGET = 9000  # of Graph's 10,000 per app and mailbox in REQUEST_WINDOW_S
MAX_WAIT_S = 120.0  # a longer Retry-After ends the poll; the next one continues
MAX_ATTEMPTS = 4
_UID_MASK = (1 << 63) - 1
_PLACES = 1  # the "uidvalidity" of a folder's first generation of places

Json = Mapping[str, Any]


class GraphSettings(Protocol):
    """What the source needs of a ``type: graph`` config."""

    @property
    def name(self) -> str: ...
    @property
    def mailbox(self) -> str: ...
    @property
    def auth(self) -> MicrosoftAuthConfig: ...
    @property
    def folders(self) -> list[str]: ...
    @property
    def sent_folders(self) -> list[str]: ...
    @property
    def reply_mailboxes(self) -> list[str]: ...
    @property
    def api_url(self) -> str: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def timeout(self) -> int: ...
    @property
    def page_size(self) -> int: ...
    @property
    def since(self) -> int: ...


def graph_uid(message_id: str) -> int:
    """A stable 63-bit number for a Graph (immutable) id: the store's key for its place."""
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big") & _UID_MASK


def _address(value: object) -> tuple[str, str] | None:
    """(name, address) of a Graph recipient ``{"emailAddress": {"name", "address"}}``."""
    box = value.get("emailAddress") if isinstance(value, Mapping) else None
    if not isinstance(box, Mapping) or not isinstance(box.get("address"), str):
        return None
    return str(box.get("name") or ""), box["address"]


def _format_address(pair: tuple[str, str]) -> str:
    try:
        return email.utils.formataddr(pair)
    except (UnicodeError, ValueError):  # an address formataddr cannot write: keep it bare
        return f"<{pair[1]}>"


def synthesized_headers(message: Json) -> list[tuple[str, str]]:
    """Headers written from a message's JSON fields, for one Graph has no headers of."""
    headers: list[tuple[str, str]] = []
    author, sender = _address(message.get("from")), _address(message.get("sender"))
    if author is not None:
        headers.append(("From", _format_address(author)))
    if sender is not None and (author is None or sender[1].lower() != author[1].lower()):
        headers.append(("Sender", _format_address(sender)))
    for name, key in (("Reply-To", "replyTo"), ("To", "toRecipients"), ("Cc", "ccRecipients")):
        listed = message.get(key)
        pairs = [p for p in map(_address, listed if isinstance(listed, list) else ()) if p]
        if pairs:
            headers.append((name, ", ".join(map(_format_address, pairs))))
    if isinstance(message.get("subject"), str):
        headers.append(("Subject", message["subject"]))
    sent = parse_time(message.get("sentDateTime"))
    if sent is not None:
        headers.append(("Date", email.utils.format_datetime(sent)))
    return headers


_FETCHED = frozenset(name.lower() for name in HEADER_FIELDS)


def header_block(message: Json) -> bytes:
    """The header block IMAP's ``HEADER.FIELDS`` fetch gives, from ``internetMessageHeaders``
    (only the fields replyclock reads, in order), or written from the JSON fields when Graph
    has no headers; with the Message-ID from ``internetMessageId`` when the headers lack one."""
    given = message.get("internetMessageHeaders")
    pairs: list[tuple[str, str]] = []
    if isinstance(given, list) and given:
        for header in given:
            name = header.get("name") if isinstance(header, Mapping) else None
            value = header.get("value") if isinstance(header, Mapping) else None
            if (
                isinstance(name, str)
                and isinstance(value, str)
                and name.strip().lower() in _FETCHED
            ):
                pairs.append((name.strip(), value))
    else:
        pairs = synthesized_headers(message)
    message_id = message.get("internetMessageId")
    has_id = any(name.lower() == "message-id" for name, _ in pairs)
    if isinstance(message_id, str) and message_id.strip() and not has_id:
        pairs.append(("Message-ID", message_id.strip()))
    # A line break inside a value is folding (or junk): dropped, as headers._unfold does, so
    # no value can start a header line of its own.
    return b"".join(
        f"{name}: {value.replace(chr(13), '').replace(chr(10), '')}\r\n".encode("utf-8", "replace")
        for name, value in pairs
    )


def has_content(message: Json) -> bool:
    """Whether a delta entry is a message to store, not a change of a flag that carries only
    the properties that changed (Graph sends ``{"id", "isRead"}`` for a message marked read)."""
    return parse_time(message.get("receivedDateTime")) is not None and bool(
        message.get("internetMessageHeaders") or message.get("internetMessageId")
    )


# --- HTTP ------------------------------------------------------------------------------------


class _NotFound(SourceError):
    def __init__(self, source: str, code: str, text: str) -> None:
        super().__init__(source, explain(404, code, text))
        self.code = code
        self.text = text


class _ResyncNeeded(SourceError):
    """Graph no longer knows the delta token: the folder must be read again from scratch."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A bearer token is never carried to wherever a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs  # a 3xx answer then stays an error, reported as such


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read() or b""
    except (OSError, http.client.HTTPException):
        return b""


def explain(status: int, code: str, text: str) -> str:
    """An error answer in words: ``HTTP 429 TooManyRequests "Please retry again later."``."""
    return f"HTTP {status}" + (f" {code}" if code else "") + (f' "{text}"' if text else "")


def _graph_error(body: bytes) -> tuple[str, str]:
    """(code, first line of message) of Graph's ``{"error": {"code", "message"}}`` answer."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, Mapping):
        return "", ""
    text = str(error.get("message") or "").strip()
    return str(error.get("code") or ""), (text.splitlines()[0][:200] if text else "")


class GraphClient:
    """GET JSON from Microsoft Graph one request at a time, with Graph's retry and auth rules."""

    def __init__(
        self,
        *,
        source: str,
        api_url: str,
        tokens: AccessTokens,
        timeout: float,
        ca_file: Path | None,
        sleep: Callable[[float], None],
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.source = source
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.monotonic = monotonic
        self.requests = 0  # for tests and PollReport.round_trips
        self._sent: dict[str, deque[float]] = {}  # mailbox -> when its recent requests went
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirects()
        )
        origin = urllib.parse.urlsplit(self.api_url)
        self._origin = (origin.scheme, origin.netloc.lower())

    def get(self, url: str, *, mailbox: str, prefer: str | None, what: str) -> Json:
        """GET ``url`` (in ``mailbox``), retrying throttling, a refused token once, and errors
        worth retrying; ``what`` names what is read, for error messages."""
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise SourceError(
                self.source,
                f"Microsoft Graph sent a link to {parts.scheme}://{parts.netloc} while reading "
                f"{what}; only {self.api_url} gets the token: check base_url",
            )
        backoff = 1.0
        refreshed = fresh = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._count(mailbox)
            try:
                return self._send(url, prefer, fresh=fresh)
            except urllib.error.HTTPError as exc:
                status = exc.code
                code, text = _graph_error(_error_body(exc))
                headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLCertVerificationError) or attempt == MAX_ATTEMPTS:
                    raise SourceError(self.source, self._unreachable(reason)) from exc
                self.sleep(backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter
                backoff *= 2
                continue
            finally:
                fresh = False
            explained = explain(status, code, text)
            if status in (401, 403) and not refreshed:
                # 403 too: a token issued before an administrator granted Mail.Read lacks it.
                log.info(
                    "Microsoft Graph refused the token; trying once more with a fresh one",
                    extra=fields(source=self.source, mailbox=mailbox, status=status),
                )
                refreshed = fresh = True
                continue
            if status in (401, 403):
                raise SourceAuthError(
                    self.source,
                    f"Microsoft Graph refused access to {what} ({explained}) with a fresh token; "
                    + self.tokens.refused_hint(mailbox),
                )
            if status == 410 or code in RESYNC_CODES:
                raise _ResyncNeeded(self.source, f"the delta token of {what} expired ({code})")
            if status == 404:
                raise _NotFound(self.source, code, text)
            if status in (429, 500, 502, 503, 504):
                wait = retry_after_seconds(headers.get("retry-after"), self.clock())
                wait = backoff if wait is None else wait
                if wait > MAX_WAIT_S or attempt == MAX_ATTEMPTS:
                    raise SourceError(
                        self.source,
                        f"Microsoft Graph kept answering {explained} for {what}"
                        + (f" and asks to wait {wait:.0f}s" if wait > MAX_WAIT_S else "")
                        + "; this poll stops and the next one continues where it stopped",
                    )
                log.warning(
                    "Microsoft Graph asked to wait" if status == 429 else "Graph error; retrying",
                    extra=fields(source=self.source, status=status, wait_s=round(wait, 3)),
                )
                self.sleep(wait)
                backoff *= 2
                continue
            raise SourceError(self.source, f"Microsoft Graph answered {explained} for {what}")
        raise AssertionError("the loop returns or raises")

    def _send(self, url: str, prefer: str | None, *, fresh: bool) -> Json:
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {self.tokens.token(fresh=fresh)}",
        }
        if prefer:
            headers["Prefer"] = prefer
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - origin checked
        self.requests += 1
        with self._opener.open(request, timeout=self.timeout) as answer:
            body = answer.read()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise SourceError(
                self.source, f"{self.api_url} did not answer JSON; check base_url"
            ) from exc
        if not isinstance(data, Mapping):
            raise SourceError(self.source, f"{self.api_url} did not answer a JSON object")
        return data

    def _count(self, mailbox: str) -> None:
        """Note one request to ``mailbox``; refuse it past the budget of Graph's limit."""
        now = self.monotonic()
        sent = self._sent.setdefault(mailbox.lower(), deque())
        while sent and now - sent[0] >= REQUEST_WINDOW_S:
            sent.popleft()
        if len(sent) >= REQUEST_BUDGET:
            raise SourceError(
                self.source,
                f"{len(sent)} requests to {mailbox} in the last 10 minutes: Microsoft Graph "
                "allows an app 10,000 per mailbox, so this poll stops here and the next one "
                "continues where it stopped",
            )
        sent.append(now)

    def _unreachable(self, reason: object) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {self.api_url} could not be verified "
                f"({reason.verify_message}); set ca_file to the CA that signed it"
            )
        return f"cannot reach {self.api_url} ({reason}); check base_url, the network and proxy"


# --- the source ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphFolder:
    """One folder the source reads: in the shared mailbox, or an agent's Sent Items."""

    mailbox: str
    name: str  # as configured: a well-known name, a display name, or a path "Inbox/Orders"
    role: FolderRole
    store_folder: str  # the folder name messages and places are stored under
    replies_only: bool = False  # an agent's Sent Items: keep only the shared mailbox's mail

    @property
    def checkpoint_key(self) -> str:
        """Where the folder's delta state is saved."""
        return f"delta:{self.store_folder}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaState:
    """Where one folder's delta sync stands; saved as its checkpoint with each page."""

    link: str | None = None  # the next page (nextLink), or the next round (deltaLink)
    round_done: bool = False  # ``link`` is a deltaLink
    generation: int = _PLACES  # the places' "uidvalidity"; one more at each resync
    since: str | None = None  # a whole read from this instant is under way (or to be finished)
    seen: int = 0  # messages the whole read has returned so far (Graph caps a filtered read)

    def dump(self) -> str:
        """The checkpoint's text."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def load(cls, text: str | None) -> DeltaState | None:
        """A saved state; None when there is none (or it is unreadable: read again)."""
        try:
            data = json.loads(text) if text else None
            return cls(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None


class GraphSource:
    """One shared mailbox in Microsoft 365 (and its agents' Sent Items), read through Graph."""

    def __init__(
        self,
        config: GraphSettings,
        identity: MailboxIdentity,
        *,
        tokens: AccessTokens | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = config.name
        self.config = config
        self.identity = identity
        self.tokens = tokens or access_tokens(config.name, config.auth, config.mailbox, graph=True)
        self.api = GraphClient(
            source=config.name,
            api_url=config.api_url,
            tokens=self.tokens,
            timeout=config.timeout,
            ca_file=config.ca_file,
            sleep=sleep,
            clock=clock,
            monotonic=monotonic,
        )
        self._folder_ids: dict[tuple[str, str], str] = {}  # (mailbox, name) -> folder id
        self.prefer = f'odata.maxpagesize={config.page_size}, IdType="ImmutableId"'

    def folders(self) -> list[GraphFolder]:
        """Every folder a poll reads, in order: watched, sent, then the agents' Sent Items."""
        cfg = self.config
        found = [
            GraphFolder(mailbox=cfg.mailbox, name=f, role=FolderRole.INBOX, store_folder=f)
            for f in cfg.folders
        ]
        found += [
            GraphFolder(mailbox=cfg.mailbox, name=f, role=FolderRole.SENT, store_folder=f)
            for f in cfg.sent_folders
        ]
        found += [
            GraphFolder(
                mailbox=agent,
                name="sentitems",
                role=FolderRole.SENT,
                store_folder=f"{agent.lower()}/sentitems",
                replies_only=True,
            )
            for agent in cfg.reply_mailboxes
        ]
        return found

    def probe(self, now: datetime) -> ProbeReport:
        """What `check --connect` shows: permissions, folders, counts, newest mail."""
        from monitor.sources.graph_probe import probe_graph  # noqa: PLC0415 - check only

        return probe_graph(self, now)

    def replies_watched(self) -> tuple[Platform, str]:
        """The platform and mailbox, for the daemon's check for missing replies."""
        return "exchange", self.config.mailbox

    def close(self) -> None:
        """Forget resolved folder ids (there is no connection to close)."""
        self._folder_ids.clear()

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read every folder from its stored delta link, storing each page with its link."""
        report = PollReport(source=self.name)
        before = self.api.requests
        try:
            for folder in self.folders():
                self._sync(sink, folder, now, report)
        finally:
            report.round_trips = self.api.requests - before
        return report

    # --- one folder --------------------------------------------------------------------------

    def _sync(
        self, sink: MessageSink, folder: GraphFolder, now: datetime, report: PollReport
    ) -> None:
        key = folder.checkpoint_key
        state = DeltaState.load(sink.checkpoint(key))
        if state is None:
            state = DeltaState(since=self._first_sync_since(sink, now).isoformat())
        elif state.round_done and state.since is not None:
            # A crash came between the last page and this:
            self._finish_whole_read(sink, folder, state=state, now=now, report=report)
            state = replace(state, since=None, seen=0)
        resynced = False
        while True:
            url = state.link or self._first_url(folder, state.since or now.isoformat())
            try:
                page = self.api.get(
                    url, mailbox=folder.mailbox, prefer=self.prefer, what=self._what(folder)
                )
            except _ResyncNeeded as exc:
                if resynced or state.link is None:
                    raise SourceError(
                        self.name,
                        f"Microsoft Graph refused a new delta query of {self._what(folder)} "
                        f"as expired ({exc.detail}); the next poll tries again",
                    ) from exc
                log.warning(
                    "delta token expired; reading the folder again",
                    extra=fields(source=self.name, folder=folder.store_folder),
                )
                state = DeltaState(
                    generation=state.generation + 1,
                    since=self._first_sync_since(sink, now).isoformat(),
                )
                resynced = True
                continue
            except _NotFound as exc:
                raise self._not_found(folder, exc) from exc
            state = self._store_page(sink, folder, state=state, page=page, now=now, report=report)
            if state.round_done:
                break
        if state.since is not None:
            self._finish_whole_read(sink, folder, state=state, now=now, report=report)

    def _store_page(
        self,
        sink: MessageSink,
        folder: GraphFolder,
        *,
        state: DeltaState,
        page: Json,
        now: datetime,
        report: PollReport,
    ) -> DeltaState:
        """Store one delta page with the state after it; forget what it says was removed."""
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        link = next_link if isinstance(next_link, str) else delta_link
        if not isinstance(link, str) or not link:
            raise SourceError(
                self.name,
                f"Microsoft Graph answered a delta page of {self._what(folder)} without "
                "@odata.nextLink or @odata.deltaLink; the next poll starts again from the "
                "last stored page",
            )
        latest: dict[str, Json] = {}  # an item may appear twice in a round: the last one wins
        for entry in page.get("value") or ():
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                latest.pop(entry["id"], None)
                latest[entry["id"]] = entry
        gone = [graph_uid(i) for i, e in latest.items() if "@removed" in e]
        messages = [e for e in latest.values() if "@removed" not in e and has_content(e)]
        after = replace(
            state,
            link=link,
            round_done=not isinstance(next_link, str),
            seen=state.seen + len(messages) if state.since is not None else 0,
        )
        if gone:  # before the page's checkpoint: a crash in between forgets them again
            report.removed += sink.forget_uids(folder.store_folder, state.generation, gone, now)
        events = self._events(sink, folder, messages, state.generation)
        if events or after.dump() != state.dump():
            result = sink.accept(
                events, None, now, checkpoint=(folder.checkpoint_key, after.dump())
            )
            report.add(folder.store_folder, result.new, result.duplicates)
        return after

    def _finish_whole_read(
        self,
        sink: MessageSink,
        folder: GraphFolder,
        *,
        state: DeltaState,
        now: datetime,
        report: PollReport,
    ) -> None:
        """After a whole read: mark removed the mail of older generations not found again."""
        since = parse_time(state.since)
        if state.seen >= FILTERED_DELTA_LIMIT:
            log.warning(
                "first read of the folder reached Graph's 5,000-message cap of a filtered delta "
                "query; older mail was not read and none is marked removed (shorten since)",
                extra=fields(source=self.name, folder=folder.store_folder, read=state.seen),
            )
        elif since is not None:
            report.removed += sink.retire_locations(
                folder.store_folder, state.generation, since, now
            )
        done = replace(state, since=None, seen=0)
        sink.save_checkpoint(folder.checkpoint_key, done.dump(), now)

    def _first_sync_since(self, sink: MessageSink, now: datetime) -> datetime:
        """How far back a whole read goes: ``since``, or further back to the oldest
        conversation still waiting, so a re-read never drops an open clock (as IMAP does)."""
        since = now - timedelta(seconds=self.config.since)
        oldest = sink.oldest_open_message()
        if oldest is not None and oldest < since:
            since = oldest - timedelta(days=1)
        return since.replace(microsecond=0)

    def _first_url(self, folder: GraphFolder, since: str) -> str:
        start = parse_time(since) or datetime.now(UTC)
        query = {
            "$select": ",".join(SELECT),
            "$filter": f"receivedDateTime ge {start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
        }
        encoded = "&".join(f"{k}={urllib.parse.quote(v, safe=',:')}" for k, v in query.items())
        folder_id = urllib.parse.quote(self._folder_id(folder), safe="")
        return (
            f"{self._mailbox_url(folder.mailbox)}/mailFolders/{folder_id}/messages/delta?{encoded}"
        )

    # --- events ------------------------------------------------------------------------------

    def _events(
        self, sink: MessageSink, folder: GraphFolder, messages: Sequence[Json], generation: int
    ) -> list[MessageEvent]:
        context = FolderContext(
            source=self.name, folder=folder.store_folder, role=folder.role, identity=self.identity
        )
        pairs = [(message, self._event(context, message, generation)) for message in messages]
        if not folder.replies_only:
            return [event for _, event in pairs]
        return self._replies_of_the_shared_mailbox(sink, folder, pairs)

    def _event(self, context: FolderContext, message: Json, generation: int) -> MessageEvent:
        received = parse_time(message.get("receivedDateTime"))
        assert received is not None  # has_content checked it
        conversation = message.get("conversationId")
        event = event_from_headers(
            context,
            header_block(message),
            received,
            location=MailLocation(
                folder=context.folder, uidvalidity=generation, uid=graph_uid(message["id"])
            ),
            gm_thread_id=conversation if isinstance(conversation, str) and conversation else None,
        )
        preview = message.get("bodyPreview")
        read = context.role is FolderRole.INBOX and wants_body(event, self.identity)
        if read and isinstance(preview, str):
            verdict = closing_message(
                preview,
                has_attachment=message.get("hasAttachments") is True,
                extra_phrases=self.identity.closing_phrases,
                truncated=len(preview) >= PREVIEW_CHARS,
            )
            if verdict.is_closing:
                event = replace(event, closing=verdict.quote)
        return event

    def _replies_of_the_shared_mailbox(
        self, sink: MessageSink, folder: GraphFolder, pairs: list[tuple[Json, MessageEvent]]
    ) -> list[MessageEvent]:
        """An agent's sent mail that belongs to the shared mailbox; the rest is never stored."""
        shared = self.config.mailbox.lower()
        hints = sink.known_thread_hints(
            {e.thread.gm_thread_id for _, e in pairs if e.thread.gm_thread_id}
        )
        named = sink.message_thread_hints(
            {mid for _, e in pairs for mid in (*e.thread.in_reply_to, *e.thread.references)}
        )
        kept: list[MessageEvent] = []
        for message, event in pairs:
            senders = {
                pair[1].lower()
                for pair in (_address(message.get("from")), _address(message.get("sender")))
                if pair is not None
            } | {event.author}
            ref = event.thread
            if shared in senders or (ref.gm_thread_id and ref.gm_thread_id in hints):
                kept.append(event)
                continue
            replied_to = [mid for mid in (*ref.in_reply_to, *ref.references) if mid in named]
            if replied_to:
                # Join the conversation of the stored message it answers, whatever thread id
                # the agent's mailbox gave it.
                kept.append(replace(event, thread=replace(ref, gm_thread_id=named[replied_to[0]])))
        skipped = len(pairs) - len(kept)
        if skipped:
            log.debug(
                "agent's own mail skipped",
                extra=fields(source=self.name, folder=folder.store_folder, skipped=skipped),
            )
        return kept

    # --- folders and errors ------------------------------------------------------------------

    def _mailbox_url(self, mailbox: str) -> str:
        return f"{self.api.api_url}/users/{urllib.parse.quote(mailbox, safe='@')}"

    def _folder_id(self, folder: GraphFolder) -> str:
        """The URL segment of a folder: its well-known name, or its id looked up by name."""
        if folder.name.lower() in WELL_KNOWN_FOLDERS:
            return folder.name.lower()
        cached = self._folder_ids.get((folder.mailbox, folder.name))
        if cached is not None:
            return cached
        parent: str | None = None
        for part in folder.name.split("/"):
            if parent is None and part.lower() in WELL_KNOWN_FOLDERS:
                parent = part.lower()
                continue
            children = self._child_folders(folder, parent)
            match = children.get(part.casefold())
            if match is None:
                listed = ", ".join(sorted(name for _, name in children.values()))
                raise SourceError(
                    self.name,
                    f"folder {folder.name!r} is not in {folder.mailbox} (no {part!r} among "
                    f"{listed or 'no folders'}); fix `folders` or `sent_folders` in the config "
                    "(well-known names such as inbox, sentitems and archive work in any "
                    "language; a subfolder is written Inbox/Orders)",
                )
            parent = match[0]
        assert parent is not None
        self._folder_ids[(folder.mailbox, folder.name)] = parent
        return parent

    def _child_folders(self, folder: GraphFolder, parent: str | None) -> dict[str, tuple[str, str]]:
        """casefolded display name -> (id, display name) of the folders under ``parent``."""
        base = self._mailbox_url(folder.mailbox) + "/mailFolders"
        url: str | None = (
            base if parent is None else f"{base}/{urllib.parse.quote(parent, safe='')}/childFolders"
        ) + "?$select=id,displayName&$top=100"
        found: dict[str, tuple[str, str]] = {}
        while url:
            try:
                page = self.api.get(url, mailbox=folder.mailbox, prefer=None, what="its folders")
            except _NotFound as exc:
                raise self._not_found(folder, exc) from exc
            for item in page.get("value") or ():
                if isinstance(item, Mapping) and isinstance(item.get("displayName"), str):
                    found[item["displayName"].casefold()] = (str(item["id"]), item["displayName"])
            link = page.get("@odata.nextLink")
            url = link if isinstance(link, str) else None
        return found

    def _what(self, folder: GraphFolder) -> str:
        return f"folder {folder.name!r} of {folder.mailbox}"

    def _not_found(self, folder: GraphFolder, exc: _NotFound) -> SourceError:
        key = "reply_mailboxes" if folder.replies_only else "mailbox"
        why = explain(404, exc.code, exc.text)
        if exc.code in MAILBOX_CODES or not exc.code:
            return SourceError(
                self.name,
                f"Microsoft Graph does not know the mailbox {folder.mailbox!r} ({why}); check "
                f"`{key}`: the address or user principal name of a mailbox in Exchange Online",
            )
        self._folder_ids.pop((folder.mailbox, folder.name), None)
        return SourceError(
            self.name,
            f"folder {folder.name!r} of {folder.mailbox} was not found ({why}); fix `folders` "
            "or `sent_folders` in the config",
        )
