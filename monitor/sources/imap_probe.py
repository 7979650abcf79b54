"""`replyclock check --connect` for an IMAP source: what is on the server, read-only.

Folders and their counts (at most ``MAX_FOLDERS``: Gmail labels can run to thousands), the
Sent folder chosen and why, the server's capabilities, how replyclock signed in (and, for a
Microsoft app, the permissions its token carries), the newest mail each way, what a first
sync would read, and the warning that replies are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import imapclient

from monitor.model import FolderRole
from monitor.sources.imap_limits import add_connection_facts
from monitor.sources.oauth import GoogleTokens, MicrosoftTokens, token_permissions
from monitor.sources.probe import RECENT, FolderFacts, MailTally, ProbeReport

if TYPE_CHECKING:
    from monitor.sources.imap import ImapSource

MAX_FOLDERS = 200
CAPABILITIES = ("IDLE", "CONDSTORE", "QRESYNC", "SPECIAL-USE", "UNSELECT")


def probe_imap(source: ImapSource, client: imapclient.IMAPClient, now: datetime) -> ProbeReport:
    """The report on ``source``, read through ``client`` (signed in by ``source.connect``)."""
    cfg = source.config
    capabilities = {bytes(c).decode("ascii", "replace").upper() for c in client.capabilities()}
    report = ProbeReport(
        source=source.name,
        kind="imap",
        account=cfg.username,
        platform=source.platform(capabilities),
    )
    security = "TLS" if cfg.use_tls else "STARTTLS" if cfg.starttls else "no TLS"
    report.detail("server", f"{cfg.host}:{cfg.effective_port} ({security})")
    report.detail("signed in with", _sign_in_method(source))
    report.detail(
        "capabilities",
        ", ".join(f"{name} {'yes' if name in capabilities else 'no'}" for name in CAPABILITIES)
        + f", Gmail extensions {'yes' if 'X-GM-EXT-1' in capabilities else 'no'}",
    )
    add_connection_facts(report, cfg)
    _list_folders(source, client, report)
    _first_sync(source, client, report, now)
    if not any(role is FolderRole.SENT for role in source.folders.values()):
        report.warnings.append(
            "no Sent folder found: set sent_folders to the folder that holds sent mail"
        )
    return report


def _sign_in_method(source: ImapSource) -> str:
    cfg, tokens = source.config, source.tokens
    if isinstance(tokens, MicrosoftTokens):
        granted = token_permissions(tokens.token())
        seen = (
            f"; permissions in the token: {', '.join(granted) or 'none'}"
            if granted is not None
            else ""
        )
        return f"XOAUTH2, Microsoft Entra app {tokens.client_id} in tenant {tokens.tenant_id}{seen}"
    if isinstance(tokens, GoogleTokens):
        return f"XOAUTH2, Google service account acting as {tokens.subject}"
    if cfg.oauth2_token_file is not None:
        return f"XOAUTH2, token from {cfg.oauth2_token_file}"
    return "password" + (f" from {cfg.password_file}" if cfg.password_file else "")


def _list_folders(source: ImapSource, client: imapclient.IMAPClient, report: ProbeReport) -> None:
    listing = client.list_folders()
    roles = source.folders
    for flags, _, name in listing[:MAX_FOLDERS]:
        folder = str(name)
        selectable = not any(bytes(f).lower() == rb"\noselect" for f in flags)
        messages = None
        if selectable:
            messages = int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
        role = roles.get(folder)
        report.folders.append(
            FolderFacts(
                name=folder,
                role="" if role is None else "sent" if role is FolderRole.SENT else "watched",
                messages=messages,
                why=source.why_sent(folder),
            )
        )
    if len(listing) > MAX_FOLDERS:
        report.detail("folders", f"{len(listing)}; the first {MAX_FOLDERS} are listed")


def _first_sync(
    source: ImapSource, client: imapclient.IMAPClient, report: ProbeReport, now: datetime
) -> None:
    """Count each folder read as a first sync would, and what came within RECENT."""
    tally = MailTally(now, source.config.since)
    for folder, role in source.folders.items():
        client.select_folder(folder, readonly=True)
        uids = client.search(["SINCE", tally.since.date()])
        recent = client.search(["SINCE", (now - RECENT).date()]) if uids else []
        tally.folder(
            folder, role, first=len(uids), recent=len(recent), newest=_newest(client, uids)
        )
    tally.fill(report, source.config.username)


def _newest(client: imapclient.IMAPClient, uids: Sequence[int]) -> datetime | None:
    """The arrival time of the newest of ``uids`` (the highest UID), in UTC."""
    if not uids:
        return None
    value = client.fetch([max(uids)], ["INTERNALDATE"]).get(max(uids), {}).get(b"INTERNALDATE")
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else None
