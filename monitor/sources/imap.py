"""The IMAP source: reads support mailboxes without ever changing them.

Read-only by construction: folders are opened with EXAMINE, headers fetched with
``BODY.PEEK[HEADER.FIELDS (...)]`` (PEEK never sets ``\\Seen``), no STORE, COPY, MOVE or EXPUNGE
is ever sent. Of a customer's reply in a watched folder the first 4 KiB of its body are read too
(``BODY.PEEK[TEXT]<0.4096>``) to tell a closing message ("Thanks!"); only that decision is kept,
never the text. Incremental: each folder's UIDVALIDITY and last UID are kept in the store, so a
poll of an unchanged folder is one STATUS round trip, or one NOOP for the inbox, which is kept
open between polls. Expunged messages are noticed by a UID
SEARCH diff, run when CONDSTORE's HIGHESTMODSEQ says the folder changed, or at
``reconcile_interval`` on servers without CONDSTORE.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from monitor.config.models import ImapSourceConfig
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.mail.classify import MailboxIdentity
from monitor.mail.events import (
    CLOSING_BODY_BYTES,
    FolderContext,
    event_from_parsed,
    wants_body,
    with_closing_parsed,
)
from monitor.mail.headers import HEADER_FIELDS, ParsedHeaders, parse_headers
from monitor.model import FolderCursor, FolderRole, MailLocation, MessageEvent
from monitor.sources.base import MessageSink, PollReport, read_secret
from monitor.sources.imap_fetch import FetchedMessage, fetch_messages
from monitor.sources.oauth import AccessTokens, access_tokens
from monitor.sources.probe import Platform, ProbeReport

log = logging.getLogger("replyclock.sources.imap")

_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS ({})]".format(" ".join(HEADER_FIELDS)).encode()
_BODY_ITEM = f"BODY.PEEK[TEXT]<0.{CLOSING_BODY_BYTES}>".encode()
_SENT_FLAG = rb"\Sent"  # RFC 6154 SPECIAL-USE
_SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "INBOX.Sent", "INBOX/Sent")

Progress = Callable[[str, str, int, int], None]  # source, folder, done, total


# A folder answering UIDVALIDITY 0 (its index being built) is asked again this often.
_UIDVALIDITY_RETRIES = 10
_UIDVALIDITY_WAIT_S = 0.1

# imapclient sends a UID list comma-joined (it cannot take ranges and still filter the reply),
# so batches are also cut by length: FETCH command lines stay under ~8 KB on every server.
_MAX_UID_LIST_BYTES = 7000

# Untagged responses that tell of a change in the open folder (RFC 3501 7.3-7.4, RFC 7162).
_CHANGE_REPORTS = ("EXISTS", "RECENT", "EXPUNGE", "FETCH", "VANISHED")


class _TokenRefused(SourceError):
    """The server refused an OAuth2 token the identity provider gave: worth one fresh try."""

    def __init__(self, source: str, server: str) -> None:
        super().__init__(source, f"{server} refused the OAuth2 token")
        self.server = server


def uid_batches(uids: Sequence[int], size: int) -> Iterator[list[int]]:
    """Split UIDs into batches of at most ``size``, each short enough for one FETCH line."""
    batch: list[int] = []
    length = 0
    for uid in uids:
        cost = len(str(uid)) + 1
        if batch and (len(batch) >= size or length + cost > _MAX_UID_LIST_BYTES):
            yield batch
            batch, length = [], 0
        batch.append(uid)
        length += cost
    if batch:
        yield batch


class ImapSource:
    """One IMAP mailbox: its watched folders and its sent folders."""

    def __init__(
        self,
        config: ImapSourceConfig,
        identity: MailboxIdentity,
        *,
        progress: Progress | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.identity = identity
        self.progress = progress
        self._client: imapclient.IMAPClient | None = None
        self._gmail = False
        self._condstore = False
        self._unselect = False
        self._selected: str | None = None  # the folder the polling connection has open
        # The open folder whose view, when it was opened, matched its stored cursor: a NOOP
        # that reports nothing then proves that nothing changed in it (see _watch).
        self._watched: str | None = None
        self._folders: dict[str, FolderRole] = {}
        self._why: dict[str, str] = {}  # why each sent folder was chosen, for check --connect
        self._tokens: AccessTokens | None = (
            access_tokens(config.name, config.auth, config.username) if config.auth else None
        )

    # --- connection --------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.config.ca_file) if self.config.ca_file else None
        )
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _secret(self) -> tuple[str, str]:
        """('password' | 'oauth2', secret), read fresh so a rotated file is picked up."""
        cfg = self.config
        if cfg.oauth2_token_file is not None:
            return "oauth2", read_secret(
                self.name, key="oauth2_token_file", value=None, path=cfg.oauth2_token_file
            )
        if cfg.password_file is not None:
            return "password", read_secret(
                self.name, key="password_file", value=None, path=cfg.password_file
            )
        assert cfg.password is not None
        return "password", cfg.password.get_secret_value()

    def connect(self, *, for_idle: bool = False) -> imapclient.IMAPClient:
        """A new logged-in connection (CONDSTORE enabled, folders found); raises SourceError.

        ``for_idle``: a connection for the IDLE watcher, on its own thread: it leaves what
        this source learnt of the server (capabilities, folders) to the polling connection.
        With an ``auth:`` block, a token the server refuses is replaced by a fresh one from
        the identity provider once, on a new connection, before the login counts as refused.
        """
        try:
            return self._connect(for_idle=for_idle, fresh_token=False)
        except _TokenRefused as refused:
            log.info(
                "OAuth2 token refused; trying once more with a fresh one",
                extra=fields(source=self.name, server=refused.server),
            )
            return self._connect(for_idle=for_idle, fresh_token=True)

    def _login(self, client: imapclient.IMAPClient, *, fresh_token: bool) -> None:
        cfg = self.config
        if self._tokens is not None:
            client.oauth2_login(cfg.username, self._tokens.token(fresh=fresh_token))
            return
        kind, secret = self._secret()
        if kind == "oauth2":
            client.oauth2_login(cfg.username, secret)
        else:
            client.login(cfg.username, secret)

    def _refused(self, exc: LoginError, *, fresh_token: bool) -> SourceError:
        cfg = self.config
        where = f"{cfg.host}:{cfg.effective_port}"
        if self._tokens is not None and not fresh_token:
            return _TokenRefused(self.name, where)
        text = f"login as {cfg.username!r} was rejected by {cfg.host} ({_server_text(exc)})"
        if self._tokens is not None:
            return SourceAuthError(
                self.name, f"{text} with a fresh token; {self._tokens.refused_hint(cfg.username)}"
            )
        return SourceAuthError(
            self.name, f"{text}; check username and password (or the OAuth2 token)"
        )

    def _connect(self, *, for_idle: bool, fresh_token: bool) -> imapclient.IMAPClient:
        cfg = self.config
        where = f"{cfg.host}:{cfg.effective_port}"
        try:
            client = imapclient.IMAPClient(
                cfg.host,
                port=cfg.effective_port,
                ssl=cfg.use_tls,
                ssl_context=self._ssl_context() if cfg.use_tls else None,
                timeout=cfg.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise SourceError(self.name, _tls_verify_hint(where, exc)) from exc
        except ssl.SSLError as exc:
            raise SourceError(
                self.name,
                f"TLS handshake with {where} failed ({exc.reason}); check that the port speaks "
                "implicit TLS (usually 993), or set starttls: true for port 143",
            ) from exc
        except TimeoutError as exc:
            raise SourceError(
                self.name,
                f"connecting to {where} timed out after {cfg.timeout}s; check host, "
                "port and firewalls",
            ) from exc
        except OSError as exc:
            raise SourceError(
                self.name,
                f"cannot connect to {where}: {exc.strerror or exc}; check host and port, "
                "and that the server is running",
            ) from exc
        client.normalise_times = False  # keep INTERNALDATE's real offset: no naive local times
        try:
            if cfg.starttls:
                client.starttls(self._ssl_context())
            self._login(client, fresh_token=fresh_token)
            if not for_idle:
                self._gmail = client.has_capability("X-GM-EXT-1")
                self._condstore = client.has_capability("CONDSTORE")
                self._unselect = client.has_capability("UNSELECT")
                if self._condstore:
                    client.enable("CONDSTORE")  # must precede any SELECT/EXAMINE
                self._folders = self._discover_folders(client)
        except LoginError as exc:
            quietly_close(client)
            raise self._refused(exc, fresh_token=fresh_token) from exc
        except SourceError:  # the identity provider refused or could not be reached
            quietly_close(client)
            raise
        except ssl.SSLCertVerificationError as exc:
            quietly_close(client)
            raise SourceError(self.name, _tls_verify_hint(where, exc)) from exc
        except (IMAPClientError, OSError) as exc:
            quietly_close(client)
            raise SourceError(self.name, f"IMAP session with {where} failed: {exc}") from exc
        log.info(
            "connected",
            extra=fields(
                source=self.name,
                server=where,
                purpose="idle" if for_idle else "poll",
                condstore=self._condstore,
                gmail=self._gmail,
                folders=",".join(f"{f}({r.value})" for f, r in self._folders.items()),
            ),
        )
        return client

    def _discover_folders(self, client: imapclient.IMAPClient) -> dict[str, FolderRole]:
        listing = client.list_folders()
        names = [str(name) for _, _, name in listing]
        folders: dict[str, FolderRole] = {}
        for folder in self.config.folders:
            if folder not in names and folder.upper() != "INBOX":
                raise SourceError(
                    self.name,
                    f"folder {folder!r} does not exist on {self.config.host}; folders there: "
                    f"{', '.join(sorted(names))}; fix `folders` in the config",
                )
            folders[folder] = FolderRole.INBOX
        self._why = {}
        if self.config.sent_folders is not None:
            for folder in self.config.sent_folders:
                self._why[folder] = "named in sent_folders"
                if folder not in names:
                    raise SourceError(
                        self.name,
                        f"sent folder {folder!r} does not exist on {self.config.host}; folders "
                        f"there: {', '.join(sorted(names))}; fix `sent_folders` in the config",
                    )
                folders[folder] = FolderRole.SENT
            return folders
        flagged = [str(name) for flags, _, name in listing if _SENT_FLAG in flags]
        by_name = [n for n in _SENT_NAMES if n in names]
        sent = flagged or by_name[:1]
        for folder in sent:
            self._why[folder] = (
                "the server marks it \\Sent (SPECIAL-USE)"
                if folder in flagged
                else f"its name; no folder is marked \\Sent (names tried: {', '.join(_SENT_NAMES)})"
            )
        if not sent:
            log.warning(
                "no sent folder found",
                extra=fields(
                    source=self.name,
                    hint="replies are then only seen when sent from a team address into a "
                    "watched folder; set sent_folders to the folder holding sent mail",
                ),
            )
        for folder in sent:
            folders[folder] = FolderRole.SENT
        return folders

    # --- check --connect ----------------------------------------------------------------------

    def probe(self, now: datetime) -> ProbeReport:
        """Sign in and report the server, the folders and what a first sync would read."""
        from monitor.sources.imap_probe import probe_imap  # noqa: PLC0415 - check --connect only

        client = self.connect()
        try:
            return probe_imap(self, client, now)
        except (IMAPClientError, OSError) as exc:
            raise self._broke(exc) from exc
        finally:
            quietly_close(client)

    @property
    def folders(self) -> dict[str, FolderRole]:
        """The folders read and their roles, as found at the last connection."""
        return dict(self._folders)

    def why_sent(self, folder: str) -> str:
        """Why ``folder`` was taken for sent mail ("" if it was not)."""
        return self._why.get(folder, "")

    @property
    def tokens(self) -> AccessTokens | None:
        """The OAuth2 token provider of an ``auth:`` block."""
        return self._tokens

    def replies_watched(self) -> tuple[Platform, str]:
        """The platform and mailbox, for the daemon's check for missing replies."""
        return self.platform({"X-GM-EXT-1"} if self._gmail else set()), self.config.username

    def platform(self, capabilities: set[str]) -> Platform:
        """Exchange Online, Gmail or another server: whose advice fits missing replies."""
        auth = self.config.auth.type if self.config.auth is not None else None
        if auth == "microsoft" or self.config.host.lower().endswith(
            ("office365.com", "outlook.com")
        ):
            return "exchange"
        if auth == "google" or "X-GM-EXT-1" in capabilities:
            return "gmail"
        return "other"

    def close(self) -> None:
        """Log out; the next poll reconnects."""
        if self._client is not None:
            quietly_close(self._client)
            self._client = None
        self._selected = None
        self._watched = None

    # --- polling -----------------------------------------------------------------------------

    def poll(self, sink: MessageSink, now: datetime) -> PollReport:
        """Read every watched and sent folder from where the last poll stopped.

        A connection kept from an earlier poll may have died meanwhile (the server restarted,
        or closed it as idle): that is not the source being down, so the poll reconnects once
        and goes on. Everything stored before the break stays stored with its cursor.
        """
        report = PollReport(source=self.name)
        reused = self._client is not None
        try:
            self._read_folders(sink, now, report)
        except (IMAPClientAbortError, OSError) as exc:
            self.close()
            if not reused:
                raise self._broke(exc) from exc
            log.info(
                "IMAP connection had closed since the last poll; reconnecting",
                extra=fields(source=self.name, error=str(exc)),
            )
            try:
                self._read_folders(sink, now, report)
            except (IMAPClientAbortError, OSError, IMAPClientError) as again:
                self.close()
                raise self._broke(again) from again
            except BaseException:
                self.close()
                raise
        except IMAPClientError as exc:
            self.close()
            raise self._broke(exc) from exc
        except BaseException:
            self.close()
            raise
        return report

    def _read_folders(self, sink: MessageSink, now: datetime, report: PollReport) -> None:
        if self._client is None:
            self._client = self.connect()
        watched, self._watched = self._watched, None
        saved: dict[str, FolderCursor | None] = {}
        for folder, role in self._folders.items():
            cursor = sink.cursor(folder)
            if (
                folder == watched
                and cursor is not None
                and not self._reconcile_due(cursor, now)
                and self._nothing_reported(self._client, report)
            ):
                saved[folder] = cursor
                continue  # one NOOP was the whole poll of this folder
            saved[folder] = self._poll_folder(
                client=self._client,
                sink=sink,
                folder=folder,
                role=role,
                cursor=cursor,
                now=now,
                report=report,
            )
        self._watch(self._client, saved, report)

    def _reconcile_due(self, cursor: FolderCursor, now: datetime) -> bool:
        return cursor.last_reconciled is None or now - cursor.last_reconciled >= timedelta(
            seconds=self.config.reconcile_interval
        )

    def _nothing_reported(self, client: imapclient.IMAPClient, report: PollReport) -> bool:
        """NOOP on the watched folder: True when the server reports no change at all.

        A server must report new mail (EXISTS) and expunges (EXPUNGE) on the open folder at
        the next command, and reports flag changes (FETCH). Reports that arrived with an
        earlier command wait in imaplib's untagged responses; they count too. Anything at
        all counts as a change: the folder is then left and asked with a fresh STATUS.
        """
        pending = client._imap.untagged_responses  # the reports imapclient kept
        reported = any(key in pending for key in _CHANGE_REPORTS)
        _, responses = client.noop()
        report.round_trips += 1
        return not (reported or responses)

    def _watch(
        self,
        client: imapclient.IMAPClient,
        saved: dict[str, FolderCursor | None],
        report: PollReport,
    ) -> None:
        """Leave the first watched folder open, so that the next poll asks it with a NOOP.

        On Dovecot, STATUS of a large folder this session has read costs several
        milliseconds (the folder's index is opened again), a NOOP on the open folder a
        fraction of one. The NOOP shortcut is only taken when the folder, as opened here,
        matches the cursor just stored: mail that arrived during this poll is then not
        skipped. Servers without UNSELECT are asked with STATUS, as every other folder.
        """
        primary = next((f for f, role in self._folders.items() if role is FolderRole.INBOX), None)
        if primary is None or not self._unselect or saved.get(primary) is None:
            return
        if self._selected != primary:
            opened = client.select_folder(primary, readonly=True)
            self._selected = primary
            report.round_trips += 1
        else:  # left open by a quiet NOOP: its view still matches
            self._watched = primary
            return
        # The EXAMINE's own EXISTS and RECENT are not news: only later reports are.
        for key in _CHANGE_REPORTS:
            client._imap.untagged_responses.pop(key, None)
        cursor = saved[primary]
        uidnext = opened.get(b"UIDNEXT")
        if (
            cursor is not None
            and opened.get(b"UIDVALIDITY") == cursor.uidvalidity
            and isinstance(uidnext, int)
            and uidnext - 1 <= cursor.last_uid
            and opened.get(b"HIGHESTMODSEQ") == cursor.highest_modseq
            and cursor.last_reconciled is not None
        ):
            self._watched = primary

    def _broke(self, exc: Exception) -> SourceError:
        return SourceError(
            self.name, f"IMAP session broke while reading ({exc}); will reconnect next poll"
        )

    def _poll_folder(
        self,
        *,
        client: imapclient.IMAPClient,
        sink: MessageSink,
        folder: str,
        role: FolderRole,
        cursor: FolderCursor | None,
        now: datetime,
        report: PollReport,
    ) -> FolderCursor | None:
        """Read what is new in one folder; returns its cursor as stored (None: none yet)."""
        if self._selected == folder and self._unselect:
            # Leave the open folder: STATUS of it is then answered fresh (RFC 3501 6.3.10).
            client.unselect_folder()
            self._selected = None
            report.round_trips += 1
        status = self._folder_status(client, folder, report)
        uidvalidity = int(status[b"UIDVALIDITY"])
        uidnext = int(status[b"UIDNEXT"])
        modseq = int(status[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in status else None
        if cursor is not None and cursor.uidvalidity != uidvalidity:
            log.warning(
                "uidvalidity changed; re-reading folder",
                extra=fields(
                    source=self.name, folder=folder, old=cursor.uidvalidity, new=uidvalidity
                ),
            )
            sink.reset_folder(folder, now)
            cursor = None
        has_new = cursor is None or uidnext - 1 > cursor.last_uid
        changed = cursor is not None and modseq is not None and modseq != cursor.highest_modseq
        due = cursor is not None and self._reconcile_due(cursor, now)
        if not (has_new or changed or due):
            return cursor  # nothing happened: one STATUS was the whole poll
        client.select_folder(folder, readonly=True)  # EXAMINE: the server keeps every flag as is
        self._selected = folder
        report.round_trips += 1
        context = FolderContext(source=self.name, folder=folder, role=role, identity=self.identity)
        last_uid = cursor.last_uid if cursor else 0
        # A whole read of the folder (first sync, or after a UIDVALIDITY change), or one that a
        # crash cut short: cursors saved batch by batch carry no reconciliation time yet.
        whole_read = cursor is None or cursor.last_reconciled is None
        since = self._first_sync_since(sink, now) if whole_read else None
        if has_new:
            uids = self._new_uids(client, last_uid, since if cursor is None else None)
            report.round_trips += 1
            last_uid = self._fetch_into(
                client=client,
                sink=sink,
                context=context,
                uids=uids,
                uidvalidity=uidvalidity,
                now=now,
                report=report,
            )
            last_uid = max(last_uid, uidnext - 1)
        if since is not None:
            # Messages known under an older UIDVALIDITY that this read did not find again have
            # left the folder: a rebuilt index must close their clocks like an expunge does.
            report.removed += sink.retire_locations(folder, uidvalidity, since, now)
        reconciled = cursor.last_reconciled if cursor else now
        if cursor is not None and (changed or due):
            report.removed += self._reconcile(client, sink, folder, uidvalidity, now)
            report.round_trips += 1
            reconciled = now
        if self._unselect:
            # Leave the folder, so the next poll's STATUS of it is answered fresh.
            client.unselect_folder()
            self._selected = None
            report.round_trips += 1
        stored = FolderCursor(
            source=self.name,
            folder=folder,
            uidvalidity=uidvalidity,
            last_uid=last_uid,
            highest_modseq=modseq,
            last_reconciled=reconciled,
        )
        sink.save_cursor(stored, now)
        return stored

    def _folder_status(
        self, client: imapclient.IMAPClient, folder: str, report: PollReport
    ) -> dict[bytes, Any]:
        """STATUS of one folder, fresh and with a real UIDVALIDITY."""
        what = ["UIDNEXT", "UIDVALIDITY", "MESSAGES"]
        if self._condstore:
            what.append("HIGHESTMODSEQ")
        if self._selected == folder:
            # STATUS on the folder this connection has open answers from the connection's own
            # view, which a server such as Dovecot updates only at the next command that may
            # report changes (RFC 3501 6.3.10: do not rely on it). A NOOP brings it up to date.
            client.noop()
            report.round_trips += 1
        status = client.folder_status(folder, what)
        report.round_trips += 1
        for _ in range(_UIDVALIDITY_RETRIES):
            if int(status[b"UIDVALIDITY"]):
                break
            # 0 is not a UIDVALIDITY (RFC 3501: non-zero). Dovecot answers it while another
            # session is creating the folder's index: ask again instead of taking it as a
            # change, which would make the whole folder be read again.
            time.sleep(_UIDVALIDITY_WAIT_S)
            status = client.folder_status(folder, what)
            report.round_trips += 1
        if not int(status[b"UIDVALIDITY"]):
            raise SourceError(
                self.name,
                f"folder {folder!r} on {self.config.host} reports no UIDVALIDITY; the server "
                "may be rebuilding its index; replyclock tries again at the next poll",
            )
        return dict(status)

    def _first_sync_since(self, sink: MessageSink, now: datetime) -> datetime:
        """How far back a first (or UIDVALIDITY-forced) read goes: ``since``, or further back
        to the oldest conversation still waiting, so a re-read never drops an open clock."""
        since = now - timedelta(seconds=self.config.since)
        oldest = sink.oldest_open_message()
        if oldest is not None and oldest < since:
            since = oldest - timedelta(days=1)
        return since

    def _new_uids(
        self, client: imapclient.IMAPClient, last_uid: int, since: datetime | None
    ) -> list[int]:
        if since is not None:
            found = client.search(["SINCE", since.date()])
        else:
            # "N:*" always matches the highest message even when its UID is below N: filter.
            found = client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in found if uid > last_uid)

    def _fetch_into(
        self,
        *,
        client: imapclient.IMAPClient,
        sink: MessageSink,
        context: FolderContext,
        uids: list[int],
        uidvalidity: int,
        now: datetime,
        report: PollReport,
    ) -> int:
        """Fetch headers batch by batch; each batch is stored with its cursor in one step."""
        last_uid = 0
        items = [b"INTERNALDATE", _HEADER_ITEM]
        if self._gmail:
            items.append(b"X-GM-THRID")
        done = 0
        for batch in uid_batches(uids, self.config.batch_size):
            response = fetch_messages(client, batch, items)
            done += len(batch)
            report.round_trips += 1
            last_uid = self._store_batch(
                client=client,
                sink=sink,
                context=context,
                batch=batch,
                response=response,
                uidvalidity=uidvalidity,
                now=now,
                report=report,
            )
            if self.progress is not None:
                self.progress(self.name, context.folder, done, len(uids))
        return last_uid

    def _store_batch(
        self,
        *,
        client: imapclient.IMAPClient,
        sink: MessageSink,
        context: FolderContext,
        batch: list[int],
        response: dict[int, FetchedMessage],
        uidvalidity: int,
        now: datetime,
        report: PollReport,
    ) -> int:
        """Turn one FETCH response into events and store them with the cursor that covers them."""
        parsed = {uid: parse_headers(response[uid].header) for uid in sorted(response)}
        found = {
            uid: self._event(context, response[uid], headers, uidvalidity, now)
            for uid, headers in parsed.items()
        }
        if context.role is FolderRole.INBOX:
            found = self._closing_messages(client, found, parsed, report)
        events = list(found.values())
        last_uid = max(batch)
        result = sink.accept(
            events,
            FolderCursor(
                source=self.name,
                folder=context.folder,
                uidvalidity=uidvalidity,
                last_uid=last_uid,
                highest_modseq=None,  # set once the whole folder is read
                last_reconciled=None,
            ),
            now,
        )
        report.add(context.folder, result.new, result.duplicates)
        return last_uid

    def _closing_messages(
        self,
        client: imapclient.IMAPClient,
        found: dict[int, MessageEvent],
        parsed: dict[int, ParsedHeaders],
        report: PollReport,
    ) -> dict[int, MessageEvent]:
        """Read the start of each customer reply's body (``BODY.PEEK[TEXT]<0.N>``: no flag is
        set, the body is not kept) to mark the ones that only say "Thanks!"."""
        replies = [uid for uid, event in found.items() if wants_body(event, self.identity)]
        if not replies:
            return found
        bodies = fetch_messages(client, replies, [_BODY_ITEM])
        report.round_trips += 1
        marked = dict(found)
        for uid in replies:
            fetched = bodies.get(uid)
            if fetched is not None and fetched.body is not None:
                marked[uid] = with_closing_parsed(
                    found[uid], parsed[uid], fetched.body, self.identity
                )
        return marked

    def _event(
        self,
        context: FolderContext,
        item: FetchedMessage,
        headers: ParsedHeaders,
        uidvalidity: int,
        now: datetime,
    ) -> MessageEvent:
        uid = item.uid
        received = item.internaldate
        if received is None or received.tzinfo is None:
            # A server bug must not lose the message: keep it, timed when we first saw it.
            log.warning(
                "no usable INTERNALDATE; using the time it was first seen",
                extra=fields(source=self.name, folder=context.folder, uid=uid),
            )
            received = now
        thrid = item.gm_thread_id
        link = None
        if thrid is not None:
            link = f"https://mail.google.com/mail/u/0/#all/{thrid:x}"
        return event_from_parsed(
            context,
            headers,
            received,
            location=MailLocation(folder=context.folder, uidvalidity=uidvalidity, uid=uid),
            gm_thread_id=str(thrid) if thrid is not None else None,
            link=link,
        )

    def _reconcile(
        self,
        client: imapclient.IMAPClient,
        sink: MessageSink,
        folder: str,
        uidvalidity: int,
        now: datetime,
    ) -> int:
        """Compare the UIDs we hold with the server's; note those that were expunged."""
        known = sink.folder_uids(folder, uidvalidity)
        if not known:
            return 0
        present = set(client.search(["UID", f"{min(known)}:{max(known)}"]))
        gone = known - present
        if not gone:
            return 0
        removed = sink.forget_uids(folder, uidvalidity, gone, now)
        log.info(
            "messages left folder",
            extra=fields(source=self.name, folder=folder, expunged=len(gone), removed=removed),
        )
        return removed


def _server_text(exc: Exception) -> str:
    text = str(exc)
    return text.removeprefix("b'").removesuffix("'") or "no reason given"


def _tls_verify_hint(where: str, exc: ssl.SSLCertVerificationError) -> str:
    return (
        f"the TLS certificate of {where} could not be verified ({exc.verify_message}); set "
        "ca_file to the CA that signed it, or fix the server's certificate "
        "(verify_tls: false turns the check off, which is unsafe)"
    )


def quietly_close(client: imapclient.IMAPClient) -> None:
    try:
        client.logout()
    except (IMAPClientError, OSError):
        try:
            client.shutdown()
        except (IMAPClientError, OSError):
            log.debug("connection already closed")
