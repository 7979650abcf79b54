"""What `replyclock check --connect` finds out about one source, and the missing-replies advice.

Each source's ``probe`` signs in as the daemon would and reports facts an administrator
setting it up needs: who it signed in as, what the server offers, the folders (or the
account, permissions and rate-limit headroom of a helpdesk), which Sent folder was chosen and
why, the newest inbound and outbound mail, and what a first sync would read. It only reads.

``missing_replies`` is the one check that catches the most damaging set-up mistake: customer
mail arriving but no team message in any Sent folder. In Exchange Online a message an agent
sends *as* a shared mailbox is saved in the agent's own Sent Items by default; in Google
Workspace, mail sent from an agent's own account as an alias stays in that account. Every
conversation then looks unanswered. The same advice is logged by the daemon and exported as
``replyclock_replies_missing``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, TextIO

from monitor.durations import format_duration
from monitor.model import FolderRole

Platform = Literal["exchange", "gmail", "other"]

# How far back "recent" customer mail and replies are counted.
RECENT = timedelta(days=7)


@dataclass(slots=True)
class FolderFacts:
    """One folder (or queue) as the probe saw it."""

    name: str
    role: str  # "watched", "sent", "agent sent", or "" for one replyclock does not read
    messages: int | None
    why: str = ""  # why a Sent folder was chosen


@dataclass(slots=True)
class ProbeReport:
    """What one source's probe found; the CLI prints it."""

    source: str
    kind: str
    account: str
    platform: Platform = "other"
    details: list[tuple[str, str]] = field(default_factory=list)
    folders: list[FolderFacts] = field(default_factory=list)
    newest_inbound: datetime | None = None
    newest_outbound: datetime | None = None
    first_sync: str = ""
    recent_inbound: int | None = None  # messages in watched folders within RECENT
    recent_outbound: int | None = None  # messages in Sent folders within RECENT
    warnings: list[str] = field(default_factory=list)

    def detail(self, label: str, value: object) -> None:
        """Add one labelled fact."""
        self.details.append((label, str(value)))


class MailTally:
    """What a mail source's probe counts in the folders it reads: per folder since ``since``
    (what a first sync stores), per role within RECENT, and the newest arrival each way; then
    ``fill`` writes those into the report with the missing-replies advice."""

    def __init__(self, now: datetime, since_s: int) -> None:
        self.now = now
        self.since_s = since_s
        self.since = now - timedelta(seconds=since_s)
        self.folders: dict[str, int] = {}
        self.recent = {FolderRole.INBOX: 0, FolderRole.SENT: 0}
        self.newest: dict[FolderRole, datetime] = {}

    def add(self, folder: str, role: FolderRole, received: datetime) -> None:
        """Count one message of a folder the source reads (files: every message is seen)."""
        self.folders.setdefault(folder, 0)
        if received >= self.since:
            self.folders[folder] += 1
        if received >= self.now - RECENT:
            self.recent[role] += 1
        self._saw(role, received)

    def folder(
        self, folder: str, role: FolderRole, *, first: int, recent: int, newest: datetime | None
    ) -> None:
        """Count a folder from what its server answered (IMAP SEARCH, Graph ``$count``)."""
        self.folders[folder] = self.folders.get(folder, 0) + first
        self.recent[role] += recent
        if newest is not None:
            self._saw(role, newest)

    def _saw(self, role: FolderRole, received: datetime) -> None:
        if role not in self.newest or received > self.newest[role]:
            self.newest[role] = received

    def fill(self, report: ProbeReport, mailbox: str) -> None:
        """The first sync, newest mail each way, recent counts and missing-replies advice."""
        total = sum(self.folders.values())
        per_folder = ", ".join(f"{name} {count:,}" for name, count in self.folders.items())
        report.first_sync = (
            f"{total:,} message{'s' if total != 1 else ''} since {self.since.date().isoformat()}"
            f" (since: {format_duration(self.since_s)}): {per_folder}"
        )
        report.newest_inbound = self.newest.get(FolderRole.INBOX)
        report.newest_outbound = self.newest.get(FolderRole.SENT)
        report.recent_inbound = self.recent[FolderRole.INBOX]
        report.recent_outbound = self.recent[FolderRole.SENT]
        warning = missing_replies(
            report.platform, mailbox, report.recent_inbound, report.recent_outbound
        )
        if warning:
            report.warnings.append(warning)


class Probing(Protocol):
    """A source that can be probed."""

    name: str

    def probe(self, now: datetime) -> ProbeReport:
        """Sign in, look around read-only and report; raises SourceError when it cannot."""
        ...


def missing_replies(
    platform: Platform, mailbox: str, inbound: int | None, outbound: int | None
) -> str | None:
    """The warning when customer mail arrived within RECENT and no team message was sent."""
    if not inbound or outbound is None or outbound > 0:
        return None
    days = RECENT.days
    seen = f"{inbound} customer message{'s' if inbound != 1 else ''} in the last {days} days"
    return f"{seen} but no team message in any Sent folder: replies are missing. " + fix(
        platform, mailbox
    )


def fix(platform: Platform, mailbox: str) -> str:
    """How to make the team's replies visible, per platform."""
    if platform == "exchange":
        return (
            "In Exchange Online, replies sent as or on behalf of a shared mailbox are saved in "
            "each agent's own Sent Items unless the mailbox keeps a copy. Turn that on in "
            "Exchange Online PowerShell: Set-Mailbox -Identity "
            f"{mailbox} -MessageCopyForSentAsEnabled $true -MessageCopyForSendOnBehalfEnabled "
            "$true (it applies to mail sent from then on), or read the agents' Sent Items with a "
            "graph source's reply_mailboxes."
        )
    if platform == "gmail":
        return (
            "In Gmail, replies sent from an agent's own account (with this address as an alias "
            "or a group) carry the Sent label in that agent's account, not here. Have agents "
            "reply from this mailbox (mail delegation), or watch the account they send from; "
            "check that sent_folders names the Sent Mail label ([Gmail]/Sent Mail)."
        )
    return (
        "Set sent_folders to the folder that holds the team's sent mail, or have the mail "
        "client save sent replies into this mailbox."
    )


def _when(instant: datetime | None) -> str:
    return instant.strftime("%Y-%m-%d %H:%M UTC") if instant is not None else "none found"


def print_probe(report: ProbeReport, out: TextIO) -> None:
    """Print one probe report as an indented block."""
    how = "reads" if report.kind in {"maildir", "mbox"} else "signed in as"
    print(f"{report.source} ({report.kind}): {how} {report.account}", file=out)
    rows = list(report.details)
    if report.kind in {"imap", "graph", "maildir", "mbox"}:
        rows += [
            ("newest inbound", _when(report.newest_inbound)),
            ("newest outbound", _when(report.newest_outbound)),
        ]
    if report.first_sync:
        rows.append(("first sync reads", report.first_sync))
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}", file=out)
    if report.folders:
        print("  folders:", file=out)
        name_width = max(len(f.name) for f in report.folders)
        order = {"watched": 0, "sent": 1, "agent sent": 2}
        for folder in sorted(report.folders, key=lambda f: (order.get(f.role, 3), f.name)):
            count = "-" if folder.messages is None else f"{folder.messages:,}"
            role = folder.role + (f" ({folder.why})" if folder.why else "")
            print(f"    {folder.name.ljust(name_width)}  {count:>9}  {role}".rstrip(), file=out)
    for warning in report.warnings:
        print(f"  WARNING: {warning}", file=out)
