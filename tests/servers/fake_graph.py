"""A local fake of Microsoft Graph's mail API, answering in Microsoft's published shapes.

It serves what the Graph source reads, under ``/v1.0``:

* ``GET /users/{mailbox}/mailFolders`` and ``.../mailFolders/{id}/childFolders`` (``$select``,
  ``$top``, ``$skip``; ``@odata.nextLink`` paging), seeded with the folders of the docs' example
  (tests/sources/graph_fixtures/beta_user-list-mailfolders__response1.json);
* ``GET /users/{mailbox}/mailFolders/{folder}`` and ``.../messages`` (``$select``, ``$top``,
  ``$filter``, ``$orderby``, ``$count``), which `check --connect` reads;
* ``GET /users/{mailbox}/mailFolders/{folder}/messages/delta`` by well-known name or id, and the
  ``users('{mailbox}')/mailFolders('{folder}')`` form its own links use: rounds of pages with
  ``@odata.context``, ``@odata.nextLink`` (``$skiptoken``) and, on the last page,
  ``@odata.deltaLink`` (``$deltatoken``); a later round lists what was added, changed (flag
  changes carry only ``id`` and ``isRead``, as Graph sends them) and removed
  (``{"id", "@removed": {"reason": ...}}``) since its token.

Every request is checked as the docs describe it, and refused with Graph's error shape
(``{"error": {"code", "message"}}``) when it is wrong: ``Authorization: Bearer`` with a token
this fake accepts (401 InvalidAuthenticationToken otherwise), ``Prefer: odata.maxpagesize`` and
``Prefer: IdType="ImmutableId"`` on delta requests, only the query options delta documents
(``$select``, ``$filter``, ``$top``, ``$expand``, ``$orderby``, ``$skiptoken``,
``$deltatoken``), ``$select`` properties that exist on message, and ``$filter`` only as
``receivedDateTime ge|gt {instant}``. Requests are recorded. ``fail_next`` answers the next
matching request with an error (a 429 with Retry-After, a 503); ``expire_tokens`` makes every
delta and skip token handed out so far answer 410 Gone with ``syncStateNotFound``.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from servers.fake_api import Answer, FakeApi, FakeRequest

FIXTURES = Path(__file__).resolve().parents[1] / "sources" / "graph_fixtures"

# The message properties of the v1.0 message resource (resources/message.md, Properties).
MESSAGE_PROPERTIES = frozenset(
    {
        "bccRecipients", "body", "bodyPreview", "categories", "ccRecipients", "changeKey",
        "conversationId", "conversationIndex", "createdDateTime", "flag", "from",
        "hasAttachments", "id", "importance", "inferenceClassification",
        "internetMessageHeaders", "internetMessageId", "isDeliveryReceiptRequested", "isDraft",
        "isRead", "isReadReceiptRequested", "lastModifiedDateTime", "parentFolderId",
        "receivedDateTime", "replyTo", "sender", "sentDateTime", "subject", "toRecipients",
        "uniqueBody", "webLink",
    }
)  # fmt: skip
FOLDER_PROPERTIES = frozenset(
    {
        "childFolderCount", "displayName", "id", "isHidden", "parentFolderId",
        "totalItemCount", "unreadItemCount",
    }
)  # fmt: skip
DELTA_OPTIONS = frozenset(
    {"$select", "$filter", "$top", "$expand", "$orderby", "$skiptoken", "$deltatoken"}
)
FOLDER_OPTIONS = frozenset({"$select", "$top", "$skip", "includeHiddenFolders"})
_DELTA_PATH = re.compile(
    r"^/v1\.0/users(?:/(?P<m1>[^/()]+)|\('(?P<m2>[^']+)'\))"
    r"/mailfolders(?:/(?P<f1>[^/()]+)|\('(?P<f2>[^']+)'\))/messages/delta$",
    re.IGNORECASE,
)
_FOLDERS_PATH = re.compile(
    r"^/v1\.0/users/(?P<m>[^/]+)/mailfolders(?:/(?P<parent>[^/]+)/childfolders)?$", re.IGNORECASE
)
_MESSAGES_PATH = re.compile(
    r"^/v1\.0/users/(?P<m>[^/]+)/mailfolders/(?P<f>[^/]+)/messages$", re.IGNORECASE
)
_FOLDER_PATH = re.compile(r"^/v1\.0/users/(?P<m>[^/]+)/mailfolders/(?P<f>[^/]+)$", re.IGNORECASE)
# Listing a folder's messages (api/mailfolder-list-messages.md: OData query parameters).
LIST_OPTIONS = frozenset({"$select", "$filter", "$top", "$orderby", "$count", "$skip"})
_FILTER = re.compile(r"^receivedDateTime (ge|gt) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)$")


def load(name: str) -> Any:
    """A fixture's JSON."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    """An answer in Graph's error shape."""
    inner = {"date": "2024-02-08T12:00:00", "request-id": "00000000-0000-0000-0000-000000000000"}
    return status, headers or {}, {"error": {"code": code, "message": message, "innerError": inner}}


@dataclass
class FakeFolder:
    """One mail folder and the changes to its messages, in order."""

    id: str
    display_name: str
    well_known: str | None
    parent: str | None
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> full message JSON
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (version, id, kind)


@dataclass
class _Round:
    """The pages of one delta round, fixed when the round starts (a snapshot, as Graph's is)."""

    mailbox: str
    folder: str  # the URL segment the client used
    entries: list[dict[str, Any]]
    query: dict[str, str]  # $select / $filter, carried in the tokens as Graph encodes them
    version: int  # the change the round's deltaLink continues after


@dataclass
class FakeGraph(FakeApi):
    """Mailboxes, folders and delta tokens of one fake Graph tenant."""

    tokens: set[str] = field(default_factory=lambda: {"graph-token"})
    mailboxes: dict[str, dict[str, FakeFolder]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)  # mailboxes the app may not read (403)
    faults: list[tuple[Callable[[FakeRequest], bool], Answer]] = field(default_factory=list)
    version: int = 0
    _rounds: dict[str, _Round] = field(default_factory=dict)  # skiptoken -> round
    _deltas: dict[str, _Round] = field(default_factory=dict)  # deltatoken -> query/version
    _expired: set[str] = field(default_factory=set)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def base(self) -> str:
        """The service root the source is configured with (``base_url``)."""
        return f"{self.url}/v1.0"

    # --- set-up -------------------------------------------------------------------------------

    def add_mailbox(self, address: str) -> None:
        """A mailbox with the folders of Microsoft's mailFolders example."""
        folders: dict[str, FakeFolder] = {}
        for item in load("beta_user-list-mailfolders__response1.json")["value"]:
            folders[item["id"]] = FakeFolder(
                id=item["id"],
                display_name=item["displayName"],
                well_known=item.get("wellKnownName"),
                parent=None,
            )
        # In the example "Weekly digests" is a search folder under the Inbox.
        inbox = next(f for f in folders.values() if f.well_known == "inbox")
        folders["AAMkADYRAAAZg1yTAAA="].parent = inbox.id
        self.mailboxes[address.lower()] = folders

    def add_folder(self, address: str, name: str, parent: str | None = None) -> str:
        """A user-made folder (under the folder named ``parent``); returns its id."""
        folders = self.mailboxes[address.lower()]
        parent_id = self.folder(address, parent).id if parent else None
        folder_id = f"AAMkADUserFolder{next(self._ids):04d}AAA="
        folders[folder_id] = FakeFolder(
            id=folder_id, display_name=name, well_known=None, parent=parent_id
        )
        return folder_id

    def folder(self, address: str, name: str) -> FakeFolder:
        """A folder by well-known name, id or display name."""
        folders = self.mailboxes[address.lower()]
        for folder in folders.values():
            if name in (folder.id, folder.well_known, folder.display_name):
                return folder
        raise KeyError(name)

    def deliver(self, address: str, folder: str, message: dict[str, Any]) -> None:
        """Put a message (full JSON, with its ``id``) into a folder."""
        self._change(self.folder(address, folder), message["id"], "upsert", message)

    def remove(self, address: str, folder: str, message_id: str, reason: str = "deleted") -> None:
        """Take a message out of a folder (moved away, or deleted)."""
        self._change(self.folder(address, folder), message_id, reason, None)

    def mark_read(self, address: str, folder: str, message_id: str) -> None:
        """Flag a message read: the next round lists it with only what changed."""
        target = self.folder(address, folder)
        target.messages[message_id]["isRead"] = True
        self._change(target, message_id, "read", target.messages[message_id])

    def expire_tokens(self) -> None:
        """Every delta and skip token handed out so far answers 410 Gone from now on."""
        self._expired.update(self._rounds, self._deltas)

    def fail_next(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: Any = None,
        *,
        when: Callable[[FakeRequest], bool] = lambda _: True,
    ) -> None:
        """Answer the next request matching ``when`` with this error instead."""
        self.faults.append((when, (status, headers or {}, body)))

    def delta_requests(self) -> list[FakeRequest]:
        """The delta requests received, in order."""
        return [r for r in self.requests if r.path.lower().endswith("/messages/delta")]

    def _change(
        self, folder: FakeFolder, message_id: str, kind: str, message: dict[str, Any] | None
    ) -> None:
        self.version += 1
        if message is None:
            folder.messages.pop(message_id, None)
        else:
            folder.messages[message_id] = copy.deepcopy(message)
        folder.changes.append((self.version, message_id, kind))

    # --- answers ------------------------------------------------------------------------------

    def answer(self, request: FakeRequest) -> Answer:
        for index, (when, answer) in enumerate(self.faults):
            if when(request):
                del self.faults[index]
                return answer
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer ") :] not in self.tokens:
            return error(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty." if not auth else "Access token validation failure.",
            )
        if request.method != "GET":
            return error(405, "Request_BadRequest", "Only GET is served by this fake.")
        delta = _DELTA_PATH.match(request.path)
        if delta:
            mailbox = urllib.parse.unquote(delta["m1"] or delta["m2"])
            folder = urllib.parse.unquote(delta["f1"] or delta["f2"])
            return self._checked(mailbox, lambda: self._delta(request, mailbox, folder))
        messages = _MESSAGES_PATH.match(request.path)
        if messages:
            mailbox = urllib.parse.unquote(messages["m"])
            name = urllib.parse.unquote(messages["f"])
            return self._checked(mailbox, lambda: self._messages(request, mailbox, name))
        one = _FOLDER_PATH.match(request.path)
        if one:
            mailbox = urllib.parse.unquote(one["m"])
            name = urllib.parse.unquote(one["f"])
            return self._checked(mailbox, lambda: self._one_folder(request, mailbox, name))
        listing = _FOLDERS_PATH.match(request.path)
        if listing:
            mailbox = urllib.parse.unquote(listing["m"])
            parent = urllib.parse.unquote(listing["parent"]) if listing["parent"] else None
            return self._checked(mailbox, lambda: self._folders(request, mailbox, parent))
        return error(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")

    def _checked(self, mailbox: str, then: Callable[[], Answer]) -> Answer:
        if mailbox.lower() not in self.mailboxes:
            return error(404, "ErrorInvalidUser", f"The requested user '{mailbox}' is invalid.")
        if mailbox.lower() in self.forbidden:
            return error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        return then()

    def _folders(self, request: FakeRequest, mailbox: str, parent: str | None) -> Answer:
        for name in request.query:
            if name not in FOLDER_OPTIONS:
                return error(400, "BadRequest", f"Query option '{name}' is not allowed.")
        select = [p for p in (request.param("$select") or "").split(",") if p]
        for prop in select:
            if prop not in FOLDER_PROPERTIES:
                return error(
                    400,
                    "RequestBroker--ParseUri",
                    f"Could not find a property named '{prop}' on type "
                    "'microsoft.graph.mailFolder'.",
                )
        folders = self.mailboxes[mailbox.lower()]
        if parent is not None:
            try:
                parent = self.folder(mailbox, parent).id
            except KeyError:
                return error(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
        items = [f for f in folders.values() if f.parent == parent]
        top, skip = int(request.param("$top") or 10), int(request.param("$skip") or 0)
        body: dict[str, Any] = {
            "@odata.context": f"{self.base}/$metadata#users('{mailbox}')/mailFolders",
            "value": [_folder_json(f, select, folders) for f in items[skip : skip + top]],
        }
        if skip + top < len(items):
            query = urllib.parse.urlencode(
                {**{k: v[0] for k, v in request.query.items()}, "$skip": skip + top}
            )
            body["@odata.nextLink"] = f"{self.url}{request.path}?{query}"
        return 200, {}, body

    def _one_folder(self, request: FakeRequest, mailbox: str, name: str) -> Answer:
        if set(request.query) - {"$select"}:
            return error(400, "BadRequest", "Only $select is allowed on a folder.")
        try:
            folder = self.folder(mailbox, name)
        except KeyError:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        select = [p for p in (request.param("$select") or "").split(",") if p]
        if any(prop not in FOLDER_PROPERTIES for prop in select):
            return error(400, "RequestBroker--ParseUri", "Could not find a property on mailFolder.")
        return 200, {}, _folder_json(folder, select, self.mailboxes[mailbox.lower()])

    def _messages(self, request: FakeRequest, mailbox: str, name: str) -> Answer:
        """A folder's messages, newest first: what `check --connect` asks (counts, newest)."""
        for option in request.query:
            if option not in LIST_OPTIONS:
                return error(400, "BadRequest", f"Query option '{option}' is not allowed.")
        query = {k: v[0] for k, v in request.query.items()}
        problem = _check_query(query)
        if problem is not None:
            return problem
        if query.get("$count") not in (None, "true"):
            return error(400, "BadRequest", "$count takes true.")
        try:
            folder = self.folder(mailbox, name)
        except KeyError:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        found = [m for m in folder.messages.values() if _matches(m, query.get("$filter"))]
        found.sort(key=lambda m: m["receivedDateTime"], reverse=True)
        top = int(query.get("$top") or 10)
        body: dict[str, Any] = {
            "@odata.context": f"{self.base}/$metadata#users('{mailbox}')/mailFolders('{name}')"
            "/messages",
            "value": [_project(m, query) for m in found[:top]],
        }
        if query.get("$count") == "true":
            body["@odata.count"] = len(found)
        return 200, {}, body

    def _delta(self, request: FakeRequest, mailbox: str, segment: str) -> Answer:
        for name in request.query:
            if name not in DELTA_OPTIONS:
                return error(400, "BadRequest", f"Query option '{name}' is not allowed.")
        prefer = _preferences(request.headers.get("prefer", ""))
        size = prefer.get("odata.maxpagesize", "")
        if not size.isdigit() or int(size) < 1 or prefer.get("idtype") != '"ImmutableId"':
            return error(
                400,
                "FakeGraphPreferRequired",
                "This fake requires Prefer: odata.maxpagesize={n} and "
                'Prefer: IdType="ImmutableId".',
            )
        try:
            folder = self.folder(mailbox, segment)
        except KeyError:
            return error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        token = request.param("$skiptoken") or request.param("$deltatoken")
        if token is not None:
            if len(request.query) != 1:
                return error(400, "BadRequest", "A state token carries the query; send it alone.")
            if token in self._expired or (token not in self._rounds and token not in self._deltas):
                return error(
                    410,
                    "syncStateNotFound",
                    "The sync state generation is not found.",
                    {"Location": self._delta_link(mailbox, segment)},
                )
            if request.param("$skiptoken"):
                round_, offset = self._rounds[token], int(token.rsplit(".", 1)[1])
                return 200, {}, self._page(round_, offset, int(size))
            previous = self._deltas[token]
            entries = self._changes_since(folder, previous.version, previous.query)
            round_ = _Round(mailbox, segment, entries, previous.query, self.version)
            return 200, {}, self._page(round_, 0, int(size))
        query = {k: v[0] for k, v in request.query.items()}
        problem = _check_query(query)
        if problem is not None:
            return problem
        entries = [
            _project(m, query)
            for m in sorted(folder.messages.values(), key=lambda m: m.get("receivedDateTime", ""))
            if _matches(m, query.get("$filter"))
        ]
        return (
            200,
            {},
            self._page(_Round(mailbox, segment, entries, query, self.version), 0, int(size)),
        )

    def _changes_since(
        self, folder: FakeFolder, version: int, query: dict[str, str]
    ) -> list[dict[str, Any]]:
        kinds: dict[str, list[str]] = {}
        for changed, message_id, kind in folder.changes:
            if changed > version:
                kinds.setdefault(message_id, []).append(kind)
        entries: list[dict[str, Any]] = []
        for message_id, seen in kinds.items():
            if message_id not in folder.messages:
                reason = seen[-1] if seen[-1] in ("deleted", "changed") else "deleted"
                entries.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": message_id,
                        "@removed": {"reason": reason},
                    }
                )
            elif "upsert" not in seen:  # only a flag changed: Graph lists only that
                message = folder.messages[message_id]
                entries.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "@odata.etag": message.get("@odata.etag", 'W/"CQAAABYAAAA"'),
                        "id": message_id,
                        "isRead": True,
                    }
                )
            elif _matches(folder.messages[message_id], query.get("$filter")):
                entries.append(_project(folder.messages[message_id], query))
        return entries

    def _delta_link(self, mailbox: str, folder: str) -> str:
        return f"{self.base}/users('{mailbox}')/mailFolders('{folder}')/messages/delta"

    def _page(self, round_: _Round, offset: int, size: int) -> dict[str, Any]:
        link = self._delta_link(round_.mailbox, round_.folder)
        end = offset + size
        body: dict[str, Any] = {"@odata.context": f"{self.base}/$metadata#Collection(message)"}
        if end < len(round_.entries):
            token = f"skip{next(self._ids)}.{end}"
            self._rounds[token] = round_
            body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
        else:
            token = f"delta{next(self._ids)}"
            self._deltas[token] = round_
            body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        body["value"] = round_.entries[offset:end]
        return body


def _preferences(header: str) -> dict[str, str]:
    """Prefer preferences (RFC 7240; several in one header, comma-separated), lowercase names."""
    found: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            found[name.strip().lower()] = value.strip()
    return found


def _check_query(query: dict[str, str]) -> Answer | None:
    for prop in (p for p in query.get("$select", "").split(",") if p):
        if prop not in MESSAGE_PROPERTIES:
            return error(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{prop}' on type 'microsoft.graph.message'.",
            )
    given = query.get("$filter")
    if given is not None and not _FILTER.match(given):
        return error(
            400,
            "ErrorInvalidUrlQueryFilter",
            "Delta takes only $filter=receivedDateTime ge|gt {value}.",
        )
    if query.get("$orderby") not in (None, "receivedDateTime desc"):
        return error(
            400, "ErrorInvalidUrlQuery", "Delta takes only $orderby=receivedDateTime desc."
        )
    return None


def _matches(message: dict[str, Any], given: str | None) -> bool:
    if given is None:
        return True
    match = _FILTER.match(given)
    assert match is not None
    received = datetime.fromisoformat(message["receivedDateTime"])
    bound = datetime.fromisoformat(match.group(2))
    return received >= bound if match.group(1) == "ge" else received > bound


def _project(message: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    """A message as delta lists it: its ``$select`` properties (all when none), and its id."""
    select = [p for p in query.get("$select", "").split(",") if p]
    shown = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": message.get("@odata.etag", 'W/"CQAAABYAAAA"'),
    }
    for key, value in message.items():
        if key.startswith("@"):
            continue
        # internetMessageHeaders only when selected (and a Sent Items copy often has none).
        if (not select and key != "internetMessageHeaders") or key in select or key == "id":
            shown[key] = copy.deepcopy(value)
    return shown


def _folder_json(
    folder: FakeFolder, select: list[str], folders: dict[str, FakeFolder]
) -> dict[str, Any]:
    full = {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent or "AQMkADYAAAIBCAAAAA==",
        "childFolderCount": sum(1 for f in folders.values() if f.parent == folder.id),
        "unreadItemCount": sum(1 for m in folder.messages.values() if not m.get("isRead")),
        "totalItemCount": len(folder.messages),
        "isHidden": False,
    }
    return {k: v for k, v in full.items() if not select or k in select or k == "id"}
