"""Slack delivery with slack-sdk: the Web API with a bot token, or an incoming webhook.

Web API mode posts with ``chat.postMessage`` (Block Kit plus a plain-text fallback), puts later
stages of the same conversation in the first alert's thread (``thread_ts``) and edits that
first alert with ``chat.update`` once the customer is answered. A webhook can do neither: each
alert is a new message in the webhook's channel and nothing is edited.

Rate limits: slack-sdk's RateLimitErrorRetryHandler waits for ``Retry-After`` (this runs on the
delivery thread, never on the poll path). Server and connection errors come back as
``TemporaryDeliveryError`` and the dispatcher backs off; errors only a person can fix (a wrong
channel, a bot not invited, a revoked token) are ``PermanentDeliveryError`` naming the fix.

The alert buttons ("No reply needed", "Snooze 1h", "Snooze 4h") come back over Socket Mode
(``SlackActions``): slack-sdk's built-in client connects out with the app-level token, so the
daemon needs no public URL. Each envelope is acknowledged first, then handled; only the
configured actors may act, anyone else is told so in an ephemeral message.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
import time
import urllib.error
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.webhook import WebhookClient

from monitor.alerts.base import PermanentDeliveryError, Posted, TemporaryDeliveryError
from monitor.alerts.content import AlertContent
from monitor.errors import ReplyclockError
from monitor.logs import fields

log = logging.getLogger("replyclock.slack")
# slack-sdk's own Socket Mode log says "session established" at every reconnect; only its
# warnings and errors are worth an operator's attention.
_SDK_LOG = logging.getLogger("replyclock.slack.socket_mode")
_SDK_LOG.setLevel(logging.WARNING)

# Block Kit limits (Slack's documentation): headers 150 characters, section text 3000,
# 10 fields of 2000 each, button text 75, 50 blocks.
_HEADER_MAX, _TEXT_MAX, _FIELD_MAX, _FIELDS_MAX, _BUTTON_MAX = 150, 3000, 2000, 10, 75
_FALLBACK_MAX = 3000
# The buttons of an alert about a waiting customer: action_id -> (text, action, snooze seconds).
BUTTONS: dict[str, tuple[str, str, int | None]] = {
    "replyclock_dismiss": ("No reply needed", "dismiss", None),
    "replyclock_snooze_1h": ("Snooze 1h", "snooze", 3600),
    "replyclock_snooze_4h": ("Snooze 4h", "snooze", 4 * 3600),
}

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
    buttons: list[dict[str, Any]] = []
    if content.link:
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open conversation"[:_BUTTON_MAX]},
                "url": content.link,
            }
        )
    if content.clock_key:
        buttons += [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": text[:_BUTTON_MAX]},
                "action_id": action_id,
                "value": content.clock_key,
            }
            for action_id, (text, _, _) in BUTTONS.items()
        ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
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


# --- the alert buttons, over Socket Mode ------------------------------------------------------

NOT_ALLOWED = (
    "You are not allowed to dismiss or snooze replyclock alerts. Ask whoever runs replyclock "
    "to add you (or a user group of yours) to alerts.slack.allowed_actors."
)
SOCKET_FIXES = {
    "invalid_auth": "check alerts.slack.app_token: it must be an app-level token (xapp-...)",
    "not_authed": "set alerts.slack.app_token or alerts.slack.app_token_file",
    "not_allowed_token_type": "alerts.slack.app_token must be an app-level token (xapp-...), "
    "not the bot token",
    "missing_scope": "give the app-level token the connections:write scope",
    "token_revoked": "the app-level token was revoked: create a new one and update the config",
}
_GROUP_TTL_S = 300.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionClick:
    """A person pressed one of an alert's buttons (from a ``block_actions`` payload)."""

    action: str  # dismiss | snooze
    clock_key: str  # the button's value: the clock the alert is about
    snooze_seconds: int | None
    user_id: str
    user_name: str
    channel_id: str
    message_ts: str
    action_ts: str = ""  # Slack's stamp of the press: the same in an envelope Slack re-sends


def clicks_in(payload: Mapping[str, Any]) -> list[ActionClick]:
    """The replyclock buttons pressed in an interactive payload (none for anything else)."""
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user") or {}
    container = payload.get("container") or {}
    channel = (payload.get("channel") or {}).get("id") or container.get("channel_id") or ""
    message_ts = container.get("message_ts") or (payload.get("message") or {}).get("ts") or ""
    clicks = []
    for pressed in payload.get("actions") or []:
        known = BUTTONS.get(str(pressed.get("action_id", "")))
        value = pressed.get("value")
        if known is None or not isinstance(value, str) or not value:
            continue
        _, action, seconds = known
        clicks.append(
            ActionClick(
                action=action,
                clock_key=value,
                snooze_seconds=seconds,
                user_id=str(user.get("id", "")),
                user_name=str(user.get("name") or user.get("username") or ""),
                channel_id=str(channel),
                message_ts=str(message_ts),
                action_ts=str(pressed.get("action_ts", "")),
            )
        )
    return clicks


class SlackActions:
    """Receives the alert buttons over Socket Mode and hands each allowed click to ``on_click``.

    ``on_click`` records the action and returns None, or a sentence for the person (shown to
    them alone) when nothing was done. ``allowed`` names who may act: user ids, and user
    groups (``S...``) whose members are read with ``usergroups.users.list`` (cached 5 minutes).
    The bot token answers (``chat.postEphemeral``); the app token only opens the socket.
    """

    def __init__(
        self,
        *,
        app_token: str,
        bot_token: str,
        base_url: str,
        allowed: Callable[[], Collection[str]],
        on_click: Callable[[ActionClick], str | None],
        timeout: int = 30,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        url = base_url.rstrip("/") + "/"
        retries = [
            ConnectionErrorRetryHandler(max_retry_count=1),
            RateLimitErrorRetryHandler(max_retry_count=2),
        ]
        self.web = WebClient(token=bot_token, base_url=url, timeout=timeout, retry_handlers=retries)
        self.allowed = allowed
        self.on_click = on_click
        self.monotonic = monotonic
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._groups_lock = threading.Lock()  # clicks are handled on several threads at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Presses already handled: Slack re-sends an envelope not acknowledged in 3 s (as can
        # happen while slack-sdk switches to a refreshed connection), the press unchanged.
        self._seen: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=512)
        self._seen_lock = threading.Lock()
        # The socket's own Web API client carries no bot token: apps.connections.open is
        # called with the app token only.
        self.client = SocketModeClient(
            app_token=app_token,
            web_client=WebClient(base_url=url, timeout=timeout, retry_handlers=retries),
            logger=_SDK_LOG,
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self.client.on_message_listeners.append(self._on_frame)

    def start(self) -> None:
        """Connect in the background (retrying with backoff); slack-sdk reconnects after."""
        self._thread = threading.Thread(target=self._connect, name="slack-socket", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Disconnect and stop the client's threads, waiting at most about ``timeout`` seconds
        for each step (slack-sdk's reader may sit up to 3 s in a read; its threads are daemon
        threads).

        slack-sdk's ``connect`` turns auto-reconnect back on when it completes, so a connect
        under way (the first one, started by ``start``) could undo a close: the connecting
        thread is waited for first, and reconnecting is switched off again at the end.
        """
        self._stop.set()
        self.client.auto_reconnect_enabled = False  # at once: the session monitor checks it
        self.client.closed = True
        if self._thread is not None:
            self._thread.join(max(timeout, 5.0))
        closing = threading.Thread(target=self.client.close, name="slack-socket-close", daemon=True)
        closing.start()
        closing.join(timeout)
        self.client.auto_reconnect_enabled = False
        self.client.closed = True

    def _connect(self) -> None:
        delay = 5.0
        while not self._stop.is_set():
            self.client.wss_uri = None  # a Socket Mode URL is good for one connection
            try:
                self.client.connect()
                if self.client.is_connected():
                    return
                problem, fix = "the WebSocket connection failed", "check the network to Slack"
            except SlackApiError as exc:
                error = str(exc.response.get("error", "")) if exc.response is not None else ""
                problem, fix = error or "an error", SOCKET_FIXES.get(error, "see Slack's docs")
            except (SlackClientError, urllib.error.URLError, OSError) as exc:
                problem, fix = f"cannot reach Slack ({exc})", "check the network to Slack"
            log.error(
                "slack buttons not connected",
                extra=fields(error=problem, fix=fix, retry_in_s=round(delay)),
            )
            self._stop.wait(delay)
            delay = min(delay * 2, 300.0)

    def _on_frame(self, raw: str) -> None:
        """Log when Slack says hello (connected) and when it asks to reconnect."""
        if '"hello"' not in raw and '"disconnect"' not in raw:
            return
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if message.get("type") == "hello":
            log.info("slack buttons connected", extra=fields(mode="socket"))
        elif message.get("type") == "disconnect":
            log.info("slack asked to reconnect", extra=fields(reason=message.get("reason")))

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        # Acknowledge first: Slack retries an envelope not acknowledged within 3 seconds.
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        except SlackClientError as exc:
            log.warning("slack envelope not acknowledged", extra=fields(error=str(exc)))
        if request.type != "interactive":
            return
        for click in clicks_in(request.payload):
            self._handle(click)

    def _handle(self, click: ActionClick) -> None:
        press = (click.user_id, click.message_ts, click.action_ts)
        with self._seen_lock:
            if click.action_ts and press in self._seen:
                log.info("slack re-sent a press already handled", extra=fields(action=click.action))
                return
            self._seen.append(press)
        if not self.is_allowed(click.user_id):
            log.warning(
                "slack action refused: not an allowed actor",
                extra=fields(user=click.user_id, action=click.action),
            )
            self._tell(click, NOT_ALLOWED)
            return
        try:
            answer = self.on_click(click)
        except ReplyclockError as exc:
            log.error("slack action failed", extra=fields(action=click.action, error=str(exc)))
            answer = "replyclock could not record that just now; please try again in a minute."
        if answer:
            self._tell(click, answer)

    def is_allowed(self, user_id: str) -> bool:
        """Whether ``user_id`` is an allowed actor, or a member of an allowed user group."""
        actors = self.allowed()
        if user_id in actors:
            return True
        return any(user_id in self._members(g) for g in actors if g.startswith("S"))

    def _members(self, group: str) -> frozenset[str]:
        with self._groups_lock:
            return self._read_members(group)

    def _read_members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached is not None and self.monotonic() - cached[0] < _GROUP_TTL_S:
            return cached[1]
        try:
            users = self.web.usergroups_users_list(usergroup=group).get("users") or []
        except SlackApiError as exc:
            error = str(exc.response.get("error", "")) if exc.response is not None else ""
            log.error(
                "slack user group not readable",
                extra=fields(
                    group=group,
                    error=error,
                    fix="give the bot the usergroups:read scope, and check the group id",
                ),
            )
            return cached[1] if cached is not None else frozenset()
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            log.warning("slack user group not readable", extra=fields(group=group, error=str(exc)))
            return cached[1] if cached is not None else frozenset()
        members = frozenset(str(u) for u in users)
        self._groups[group] = (self.monotonic(), members)
        return members

    def _tell(self, click: ActionClick, text: str) -> None:
        """An ephemeral message to the person who pressed the button, in that channel."""
        try:
            self.web.chat_postEphemeral(channel=click.channel_id, user=click.user_id, text=text)
        except (SlackClientError, urllib.error.URLError, OSError) as exc:
            log.warning("slack ephemeral message failed", extra=fields(error=str(exc)))
