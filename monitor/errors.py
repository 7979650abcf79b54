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
    """The SQLite store cannot be opened, migrated or written."""


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
