"""The console notifier: alerts as log lines, for the demo and `--dry-run`."""

from __future__ import annotations

import itertools
import logging
import re

from monitor.alerts.base import Posted
from monitor.alerts.content import AlertContent
from monitor.logs import fields

log = logging.getLogger("replyclock.alerts")


class ConsoleNotifier:
    """Writes each alert to the log with the same words a Slack message would carry."""

    name = "console"
    threads = True
    pace_s = 0.0

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        """Log the alert; a thread reply is marked as one."""
        ts = f"console.{next(self._counter)}"
        log.warning(
            content.title,
            extra=fields(
                alert=content.kind,
                channel=channel,
                in_thread=thread.ts if thread else None,
                **{_key(label): value for label, value in content.facts},
                **({"lines": " | ".join(content.lines)} if content.lines else {}),
                **({"link": content.link} if content.link else {}),
            ),
        )
        return Posted(channel_id=channel, ts=ts)

    def update(self, posted: Posted, content: AlertContent) -> None:
        """Log the edit of an earlier alert."""
        log.warning(
            content.title, extra=fields(alert="update", channel=posted.channel_id, of=posted.ts)
        )


def _key(label: str) -> str:
    """A fact's label as a log key: "Waited (business time)" -> waited_business_time."""
    return re.sub(r"\W+", "_", label.lower()).strip("_")
