"""`replyclock check --connect` for a Microsoft Graph source: what the app can see, read-only.

The app's permissions (from its token), every folder of the shared mailbox with its count,
the folders read and why, the agents' Sent Items of ``reply_mailboxes``, the newest mail each
way, what a first sync would read (messages received since ``since``), and the warning that
replies are missing. Counts come from Graph's ``$count``; nothing is stored.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.errors import SourceError
from monitor.model import FolderRole
from monitor.sources.http import parse_time
from monitor.sources.oauth import MicrosoftTokens, token_permissions
from monitor.sources.probe import RECENT, FolderFacts, MailTally, ProbeReport

if TYPE_CHECKING:
    from monitor.sources.graph import GraphFolder, GraphSource

MAX_FOLDERS = 200


def probe_graph(source: GraphSource, now: datetime) -> ProbeReport:
    """The report on ``source``; raises SourceError when Graph or Entra refuses."""
    cfg = source.config
    report = ProbeReport(source=source.name, kind="graph", account=cfg.mailbox, platform="exchange")
    tokens = source.tokens
    granted = token_permissions(tokens.token())
    if isinstance(tokens, MicrosoftTokens):
        report.detail("app", f"Microsoft Entra app {tokens.client_id} in tenant {tokens.tenant_id}")
    report.detail(
        "permissions",
        "not readable from the token" if granted is None else ", ".join(granted) or "none",
    )
    if granted is not None and "Mail.Read" not in granted and "Mail.ReadBasic.All" not in granted:
        report.warnings.append(
            "the token carries no Mail.Read: grant the app the Microsoft Graph application "
            "permission Mail.Read with admin consent"
        )
    report.detail("api", cfg.api_url)
    _list_folders(source, report)
    tally = MailTally(now, cfg.since)
    for folder in source.folders():
        url = _messages_url(source, folder)
        first = _count(source, folder, url, tally.since)
        tally.folder(
            folder.store_folder,
            folder.role,
            first=first,
            recent=_count(source, folder, url, now - RECENT) if first else 0,
            newest=_newest(source, folder, url),
        )
    tally.fill(report, cfg.mailbox)
    return report


def _get(source: GraphSource, mailbox: str, url: str, what: str) -> Any:
    return source.api.get(url, mailbox=mailbox, prefer=None, what=what)


def _list_folders(source: GraphSource, report: ProbeReport) -> None:
    cfg = source.config
    base = source._mailbox_url(cfg.mailbox)
    url = f"{base}/mailFolders?$select=displayName,totalItemCount&$top={MAX_FOLDERS}"
    listing = _get(source, cfg.mailbox, url, f"the folders of {cfg.mailbox}").get("value", [])
    ids = {item.get("id"): item for item in listing if isinstance(item, dict)}
    read: dict[str, tuple[str, str]] = {}  # folder id -> (role, why)
    for folder in source.folders():
        segment = source._folder_id(folder)
        one = _get(
            source,
            folder.mailbox,
            f"{source._mailbox_url(folder.mailbox)}/mailFolders/"
            f"{urllib.parse.quote(segment)}?$select=displayName,totalItemCount",
            f"folder {folder.name!r} of {folder.mailbox}",
        )
        if folder.replies_only:
            report.folders.append(
                FolderFacts(
                    name=folder.store_folder,
                    role="agent sent",
                    messages=_int(one.get("totalItemCount")),
                    why="reply_mailboxes: only what is sent as or for the shared mailbox is read",
                )
            )
            continue
        role = "sent" if folder.role is FolderRole.SENT else "watched"
        why = f"named in {'sent_folders' if role == 'sent' else 'folders'} ({folder.name})"
        read[str(one.get("id"))] = (role, why if role == "sent" else "")
        ids.setdefault(one.get("id"), one)
    for folder_id, item in list(ids.items())[:MAX_FOLDERS]:
        role, why = read.get(str(folder_id), ("", ""))
        report.folders.append(
            FolderFacts(
                name=str(item.get("displayName") or folder_id),
                role=role,
                messages=_int(item.get("totalItemCount")),
                why=why,
            )
        )


def _messages_url(source: GraphSource, folder: GraphFolder) -> str:
    segment = urllib.parse.quote(source._folder_id(folder))
    return f"{source._mailbox_url(folder.mailbox)}/mailFolders/{segment}/messages"


def _count(source: GraphSource, folder: GraphFolder, url: str, since: datetime) -> int:
    instant = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    query = urllib.parse.urlencode(
        {"$filter": f"receivedDateTime ge {instant}", "$count": "true", "$top": "1",
         "$select": "receivedDateTime"}
    )  # fmt: skip
    answer = _get(source, folder.mailbox, f"{url}?{query}", f"{folder.store_folder}")
    count = _int(answer.get("@odata.count"))
    if count is None:
        raise SourceError(source.name, f"Microsoft Graph gave no count for {folder.store_folder}")
    return count


def _newest(source: GraphSource, folder: GraphFolder, url: str) -> datetime | None:
    query = urllib.parse.urlencode(
        {"$orderby": "receivedDateTime desc", "$top": "1", "$select": "receivedDateTime"}
    )
    answer = _get(source, folder.mailbox, f"{url}?{query}", f"{folder.store_folder}")
    values = answer.get("value") or []
    return parse_time(values[0].get("receivedDateTime")) if values else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
