"""What every alert channel offers: post a message, and (where it can) thread and edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from monitor.alerts.content import AlertContent
from monitor.errors import AlertDeliveryError


@dataclass(frozen=True, slots=True)
class Posted:
    """Where a message landed: the channel id and Slack's message timestamp (its id)."""

    channel_id: str
    ts: str


class PermanentDeliveryError(AlertDeliveryError):
    """The channel will not take alerts until someone fixes something (named in the message)."""

    def __init__(self, channel: str, error: str, fix: str) -> None:
        self.channel = channel
        self.error = error
        self.fix = fix
        super().__init__(f"alerts to {channel} fail with {error}: {fix}")


class TemporaryDeliveryError(AlertDeliveryError):
    """The channel is unreachable for now (server error, network); try again later."""


class Notifier(Protocol):
    """An alert channel: Slack's Web API, an incoming webhook, or the console."""

    name: str
    threads: bool  # can reply in a thread and edit its messages
    pace_s: float  # least time between two messages to one channel (Slack: 1 per second)

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        """Send one message; raise Permanent- or TemporaryDeliveryError."""
        ...

    def update(self, posted: Posted, content: AlertContent) -> None:
        """Replace a message this notifier posted (only when ``threads`` is true)."""
        ...
