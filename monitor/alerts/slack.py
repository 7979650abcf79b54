"""Slack delivery with slack-sdk: the Web API with a bot token, or an incoming webhook.

Web API mode posts with ``chat.postMessage`` (Block Kit plus a plain-text fallback), puts later
stages of the same conversation in the first alert's thread (``thread_ts``) and edits that
first alert with ``chat.update`` once the customer is answered. A webhook can do neither: each
alert is a new message in the webhook's channel and nothing is edited.

Rate limits: slack-sdk's RateLimitErrorRetryHandler waits for ``Retry-After`` (this runs on the
delivery thread, never on the poll path). Server and connection errors come back as
``TemporaryDeliveryError`` and the dispatcher backs off; errors only a person can fix (a wrong
channel, a bot not invited, a revoked token) are ``PermanentDeliveryError`` naming the fix.
"""

from __future__ import annotations

import itertools
import urllib.error
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from monitor.alerts.base import PermanentDeliveryError, Posted, TemporaryDeliveryError
from monitor.alerts.content import AlertContent

# Block Kit limits (Slack's documentation): headers 150 characters, section text 3000,
# 10 fields of 2000 each, button text 75, 50 blocks.
_HEADER_MAX, _TEXT_MAX, _FIELD_MAX, _FIELDS_MAX, _BUTTON_MAX = 150, 3000, 2000, 10, 75
_FALLBACK_MAX = 3000

FIXES = {
    "channel_not_found": "check the channel name or id in the config (alerts.slack.channel or "
    "the policy's alerts.channel / escalation channel)",
    "not_in_channel": "invite the bot to the channel (/invite @your-app) or give the app the "
    "chat:write.public scope",
    "is_archived": "the channel is archived: unarchive it or choose another channel",
    "invalid_auth": "check alerts.slack.token: it must be the app's bot token (xoxb-...)",
    "not_authed": "set alerts.slack.token or alerts.slack.token_file",
    "token_revoked": "the bot token was revoked: reinstall the app and update the token",
    "account_inactive": "the bot token belongs to a deactivated app: reinstall it",
    "missing_scope": "add the chat:write scope to the Slack app and reinstall it",
    "restricted_action": "the workspace does not let this app post here: ask an admin",
    "invalid_blocks": "replyclock built a message Slack refused: please report it",
    "msg_too_long": "replyclock built a message Slack refused: please report it",
    "channel_is_archived": "the channel is archived: unarchive it or choose another channel",
}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def blocks_for(content: AlertContent) -> list[dict[str, Any]]:
    """Block Kit for an alert, within Slack's limits."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(content.title, _HEADER_MAX),
                "emoji": True,
            },
        }
    ]
    if content.mention:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": " ".join(content.mention)}}
        )
    if content.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", _FIELD_MAX)}
                    for label, value in content.facts[:_FIELDS_MAX]
                ],
            }
        )
    if content.lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("\n".join(content.lines), _TEXT_MAX)},
            }
        )
    if content.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open conversation"[:_BUTTON_MAX]},
                        "url": content.link,
                    }
                ],
            }
        )
    if content.note:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(content.note, _TEXT_MAX)}],
            }
        )
    return blocks


def _temporary(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", 200)
    return status >= 500 or status == 429


class SlackNotifier:
    """Slack's Web API with a bot token: threads and edits."""

    name = "slack"
    threads = True
    pace_s = 1.0  # Slack allows about one message per second per channel

    def __init__(self, token: str, base_url: str, timeout: int = 30) -> None:
        self.client = WebClient(
            token=token,
            base_url=base_url.rstrip("/") + "/",
            timeout=timeout,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=1),
                RateLimitErrorRetryHandler(max_retry_count=2),
            ],
        )

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        """chat.postMessage, in ``thread`` when given."""
        response = self._call(
            channel,
            lambda: self.client.chat_postMessage(
                channel=thread.channel_id if thread else channel,
                text=_clip(content.fallback, _FALLBACK_MAX),
                blocks=blocks_for(content),
                thread_ts=thread.ts if thread else None,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        return Posted(channel_id=str(response["channel"]), ts=str(response["ts"]))

    def update(self, posted: Posted, content: AlertContent) -> None:
        """chat.update of a message this app posted."""
        self._call(
            posted.channel_id,
            lambda: self.client.chat_update(
                channel=posted.channel_id,
                ts=posted.ts,
                text=_clip(content.fallback, _FALLBACK_MAX),
                blocks=blocks_for(content),
            ),
        )

    def _call(self, channel: str, send: Any) -> Any:
        try:
            return send()
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            if _temporary(exc) or error in (
                "ratelimited",
                "internal_error",
                "fatal_error",
                "service_unavailable",
                "request_timeout",
            ):
                raise TemporaryDeliveryError(f"Slack answered {error or exc}") from exc
            raise PermanentDeliveryError(
                channel, error or "an error", FIXES.get(error, "see Slack's documentation")
            ) from exc
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            raise TemporaryDeliveryError(f"cannot reach Slack ({exc})") from exc


class WebhookNotifier:
    """A Slack incoming webhook: one fixed channel, no threads, no edits."""

    name = "webhook"
    threads = False
    pace_s = 1.0

    def __init__(self, url: str, timeout: int = 30) -> None:
        self.client = WebhookClient(
            url,
            timeout=timeout,
            retry_handlers=[
                ConnectionErrorRetryHandler(max_retry_count=1),
                RateLimitErrorRetryHandler(max_retry_count=2),
            ],
        )
        self._counter = itertools.count(1)

    def post(self, channel: str, content: AlertContent, thread: Posted | None) -> Posted:
        """Send to the webhook's channel (``channel`` and ``thread`` cannot be chosen)."""
        del thread
        try:
            response = self.client.send(
                text=_clip(content.fallback, _FALLBACK_MAX),
                blocks=blocks_for(content),
                unfurl_links=False,
                unfurl_media=False,
            )
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            raise TemporaryDeliveryError(f"cannot reach the webhook ({exc})") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TemporaryDeliveryError(f"the webhook answered {response.status_code}")
        if response.status_code != 200:
            error = (response.body or "").strip()
            raise PermanentDeliveryError(
                channel,
                error or f"HTTP {response.status_code}",
                "check alerts.webhook.url: the webhook may be revoked or its channel gone",
            )
        return Posted(channel_id="webhook", ts=f"webhook.{next(self._counter)}")

    def update(self, posted: Posted, content: AlertContent) -> None:
        """Webhooks cannot edit messages; the dispatcher never asks."""
        del content
        raise PermanentDeliveryError(posted.channel_id, "cannot_update", "use a bot token")
