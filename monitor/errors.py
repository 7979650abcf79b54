"""The one error tree of replyclock.

Adapters wrap library exceptions (imaplib, sqlite3, SlackApiError, ...) in these with
``raise ... from exc`` so that no library exception leaks into the core. Each error builds its
message from the data it keeps, as a sentence naming the value, the cause and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReplyclockError(Exception):
    """Base of every error replyclock raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a config or rules file, located by file, line and key path."""

    file: str
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{where}: {self.message}"
        )


class ConfigError(ReplyclockError, ValueError):
    """A config or rules file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(ReplyclockError, RuntimeError):
    """A source could not be read; the message names the source and what to fix."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.detail = message
        super().__init__(f"source {source!r}: {message}")


class SourceAuthError(SourceError):
    """A source rejected our credentials."""


class StoreError(ReplyclockError, RuntimeError):
    """The store cannot be opened, migrated, read or written."""

    # Whether the daemon must stop writing (the file is damaged or gone) rather than retry.
    fatal = False
    reason = "store error"  # a few words for /readyz and logs


class StoreUnavailableError(StoreError):
    """The store cannot be written for now (disk full, read-only, I/O error, locked)."""

    def __init__(self, path: str, reason: str, message: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(message)


class StoreCorruptError(StoreError):
    """The store file is damaged: writing on could lose or invent data."""

    fatal = True
    reason = "store damaged"

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"the store {path} is damaged ({detail}); replyclock stopped writing to it. Stop "
            "replyclock, then restore the file from a backup, or move it away to start a new "
            "store (every mailbox is then read again)"
        )


class StoreGoneError(StoreError):
    """The store file was deleted, replaced or truncated under the running daemon."""

    fatal = True
    reason = "store file gone"

    def __init__(self, path: str, what: str) -> None:
        self.path = path
        self.what = what
        super().__init__(
            f"the store file {path} {what} while replyclock was running; replyclock stopped "
            "writing, so nothing is written where no one would read it. Restore the file from "
            "a backup and restart replyclock, or restart it to start a new store (every "
            "mailbox is then read again; alerts for history are summarised)"
        )


class StoreLockedError(StoreError):
    """Another replyclock process already writes to this store."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"another replyclock process ({holder}) is already writing to {path}; "
            "stop it, or point this one at a different store.path"
        )


class AlertDeliveryError(ReplyclockError, RuntimeError):
    """An alert could not be delivered to its channel."""
