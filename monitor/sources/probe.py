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

    def saw(self, instant: datetime | None, *, outbound: bool) -> None:
        """Keep the newest arrival seen each way."""
        if instant is None:
            return
        if outbound:
            self.newest_outbound = max(instant, self.newest_outbound or instant)
        else:
            self.newest_inbound = max(instant, self.newest_inbound or instant)


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
