"""A local fake of Slack's Web API and incoming webhooks, for the Slack alert tests.

``FakeSlack`` serves ``POST /api/<method>`` (GET too, as Slack does) for the six methods in
``tests/data/slack/slack_web_openapi_v2.subset.json`` (verbatim from Slack's OpenAPI 2.0 spec,
frozen 2020): ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
``conversations.info``, ``usergroups.users.list``; and ``apps.connections.open``, which is newer
than the spec and described by hand (``HAND_WRITTEN``): it takes only an app-level token
(``xapp-``) and answers the ``ws://`` URL of the attached ``FakeSocketMode`` (see
``servers.fake_socket_mode``). Point ``slack_sdk.WebClient(base_url=fake.api_url)`` at it.
Every answer has Slack's shape:
HTTP 200 with ``{"ok": false, "error": ...}`` for refusals, 429 with ``Retry-After`` for rate
limits. What it checks, in Slack's order:

* the method exists in the spec (``unknown_method``), the body is form-encoded or JSON as the
  spec's ``consumes`` allows (``invalid_post_type``, ``invalid_json``, ``json_not_object``);
* the token: ``Authorization: Bearer xoxb-...`` (or a ``token`` form field) the fake knows
  (``not_authed`` when absent, ``invalid_auth`` when unknown, ``not_allowed_token_type`` for an
  app-level token on a bot method or a bot token on ``apps.connections.open``);
* arguments against the spec: required ones present, none the spec does not list
  (``invalid_arguments`` with ``response_metadata.messages``). Stricter than Slack, which
  ignores unknown arguments; the frozen spec lacks newer ones (``metadata``, ``markdown_text``);
* channels (``channel_not_found``, ``not_in_channel``, ``is_archived``), threads
  (``invalid_thread_ts``, ``thread_not_found``), message content (``no_text``,
  ``msg_too_long`` over 40,000 characters, ``too_many_attachments``, ``invalid_blocks_format``)
  and Block Kit limits, written out here by hand because the spec has no Block Kit schema
  (``invalid_blocks`` with Slack's ``errors`` list, e.g. ``must be less than 3001 characters
  [json-pointer:/blocks/0/text/text]``; wording other than Slack's "must be less than",
  "no more than N items allowed" and "missing required field" is the fake's own).

Incoming webhooks are served at ``/services/...`` (``webhook_url``, ``add_webhook``) and answer
as Slack does: ``ok`` (200) or a plain-text error with 400/404/410/429. Everything is recorded:
``calls`` (every Web API request), ``messages`` (per channel, with threads and edits),
``ephemerals`` (``chat.postEphemeral``: only the named user sees them; ``user_not_in_channel``
for a user not ``add_user``-ed) and ``webhook_posts``. User groups for
``usergroups.users.list`` are set with ``add_usergroup`` (``no_such_subteam`` otherwise).
``fail_next`` injects failures; ``refuse_connections`` closes the port (an outage: nothing is
recorded) until ``accept_connections`` serves on it again;
``rate_limit_per_channel`` enforces Slack's one message per second per channel. ``clock``
(default ``time.monotonic``) stamps records and drives the rate limit, so tests can pass a
manual clock instead of sleeping.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

SPEC_PATH = Path(__file__).resolve().parents[1] / "data/slack/slack_web_openapi_v2.subset.json"
DEFAULT_TOKEN = "xoxb-0000000001-replyclock-test"
DEFAULT_APP_TOKEN = "xapp-1-A0APP00001-0000000001-replyclock-test"
WEBHOOK = "webhook"  # the ``fail_next`` target for incoming webhooks
DEFAULT_WEBHOOK_PATH = "/services/T000/B000/XXXX"
TEAM_ID = "T0TEAM0001"
BOT_USER_ID = "U0BOT00001"
BOT_ID = "B0BOT00001"
HUMAN_USER_ID = "U0HUMAN001"
FIRST_TS_SECOND = 1_700_000_000
RATE_WINDOW = 1.0  # seconds per message per channel (Slack's chat.postMessage limit)

# Block Kit limits (docs.slack.dev/reference/block-kit) and message limits.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BLOCK_ID = 255
MAX_TEXT = 40_000
MAX_ATTACHMENTS = 100
BLOCK_TYPES = ("section", "header", "context", "divider", "actions", "rich_text")

# The spec leaves conversations.info's channel optional; Slack answers invalid_arguments without.
_REQUIRED_BEYOND_SPEC = {"conversations.info": frozenset({"channel"})}
_TS = re.compile(r"\d{10}\.\d{6}")
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
# Status codes of Slack's plain-text incoming-webhook errors.
_WEBHOOK_STATUS = {
    "action_prohibited": 403,
    "invalid_token": 403,
    "no_service": 404,
    "channel_not_found": 404,
    "channel_is_archived": 410,
    "rate_limited": 429,
    "rollup_error": 500,
}

FailureKind = Literal["rate_limited", "server_error", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackChannel:
    """A conversation of the fake workspace; ``member`` says whether the bot is in it."""

    id: str
    name: str
    member: bool = True
    archived: bool = False
    private: bool = False


DEFAULT_CHANNELS = (
    SlackChannel(id="C0SUPPORT1", name="support"),
    SlackChannel(id="C0ALERTS01", name="sla-alerts"),
    SlackChannel(id="C0RANDOM01", name="random", member=False),
    SlackChannel(id="C0OLDTEAM1", name="old-team", archived=True),
    SlackChannel(id="G0SECRET01", name="secret", private=True, member=False),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpecMethod:
    """What the spec says about one Web API method."""

    name: str
    consumes: tuple[str, ...]
    params: frozenset[str]  # every parameter listed, ``token`` included
    required: frozenset[str]  # required ones except ``token`` (checked as authentication)


@dataclass(slots=True, kw_only=True)
class SlackCall:
    """One Web API request as the fake saw it, and its answer."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]  # lowercase names
    time: float
    body: bytes = b""
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class SlackEdit:
    """One successful chat.update: the content it left the message with."""

    text: str | None
    blocks: list[Any] | None
    attachments: list[Any] | None
    time: float


@dataclass(slots=True, kw_only=True)
class SlackMessage:
    """A message in a channel; fields hold its current content, ``edits`` its history."""

    channel: str
    ts: str
    text: str | None
    user: str
    time: float
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    edits: list[SlackEdit] = field(default_factory=list)

    @property
    def by_bot(self) -> bool:
        """True if the fake's bot posted it."""
        return self.user == BOT_USER_ID

    def as_api(self) -> dict[str, Any]:
        """The message object Slack returns (objs_message)."""
        message: dict[str, Any] = {
            "type": "message",
            "text": self.text or "",
            "user": self.user,
            "ts": self.ts,
            "team": TEAM_ID,
        }
        if self.by_bot:
            message["bot_id"] = BOT_ID
        if self.blocks is not None:
            message["blocks"] = self.blocks
        if self.attachments is not None:
            message["attachments"] = self.attachments
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        return message


@dataclass(slots=True, kw_only=True)
class SlackEphemeral:
    """One chat.postEphemeral: a message only ``user`` sees, in ``channel``."""

    channel: str
    user: str
    text: str | None
    blocks: list[Any] | None
    time: float
    ts: str


@dataclass(slots=True, kw_only=True)
class WebhookPost:
    """One request to an incoming webhook, its answer and what was wrong with it."""

    path: str
    channel: str | None
    payload: Any
    headers: dict[str, str]
    time: float
    status: int = 0
    answer: str = ""
    problems: list[str] = field(default_factory=list)


class SlackApiRefusal(Exception):
    """An error answer of the fake: Slack's error name, extra body fields, status, headers."""

    def __init__(
        self, error: str, *, status: int = 200, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body Slack sends with this error."""
        return {"ok": False, "error": self.error, **self.extra}


# Methods newer than the frozen spec, described by hand. apps.connections.open: POST, form or
# JSON, no argument but the token (java-slack-sdk's sample answer: ok, url, warning, ...).
HAND_WRITTEN = {
    "apps.connections.open": SpecMethod(
        name="apps.connections.open",
        consumes=(_FORM, _JSON),
        params=frozenset({"token"}),
        required=frozenset(),
    )
}
APP_TOKEN_METHODS = frozenset(HAND_WRITTEN)  # the methods that take an app-level token only


def load_spec(path: Path = SPEC_PATH) -> dict[str, SpecMethod]:
    """The methods of the (trimmed) OpenAPI 2.0 spec, by Web API method name."""
    spec = json.loads(path.read_text())
    methods = {}
    for route, operations in spec["paths"].items():
        name = route.removeprefix("/")
        ((_verb, operation),) = operations.items()
        params = operation.get("parameters", [])
        required = {p["name"] for p in params if p.get("required")} - {"token"}
        methods[name] = SpecMethod(
            name=name,
            consumes=tuple(operation.get("consumes", [_FORM])),
            params=frozenset(p["name"] for p in params),
            required=frozenset(required | _REQUIRED_BEYOND_SPEC.get(name, frozenset())),
        )
    return methods


def block_kit_problems(blocks: list[Any]) -> list[str]:
    """Every Block Kit limit ``blocks`` breaks, as Slack's ``errors`` strings (empty if none)."""
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        at = f"/blocks/{index}"
        if not isinstance(block, dict):
            problems.append(f"must be an object [json-pointer:{at}]")
            continue
        kind = block.get("type")
        if kind is None:
            problems.append(f"missing required field: type [json-pointer:{at}]")
            continue
        if kind not in BLOCK_TYPES:
            problems.append(f"unsupported block type: {kind} [json-pointer:{at}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > MAX_BLOCK_ID:
                problems.append(_too_long(MAX_BLOCK_ID, f"{at}/block_id"))
            elif block_id in block_ids:
                problems.append(f"duplicate block_id: {block_id} [json-pointer:{at}/block_id]")
            block_ids.add(block_id)
        problems.extend(_block_problems(kind, block, at))
    return problems


def _block_problems(kind: str, block: dict[str, Any], at: str) -> list[str]:
    problems: list[str] = []
    if kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"must provide either text or fields [json-pointer:{at}]")
        if "text" in block:
            problems += _text_problems(block["text"], f"{at}/text", MAX_SECTION_TEXT)
        fields = block.get("fields")
        if fields is not None:
            problems += _list_problems(fields, f"{at}/fields", MAX_SECTION_FIELDS)
            for number, item in enumerate(fields if isinstance(fields, list) else []):
                problems += _text_problems(item, f"{at}/fields/{number}", MAX_FIELD_TEXT)
        if isinstance(block.get("accessory"), dict):
            problems += _element_problems(block["accessory"], f"{at}/accessory")
    elif kind == "header":
        if "text" not in block:
            problems.append(f"missing required field: text [json-pointer:{at}]")
        else:
            problems += _text_problems(block["text"], f"{at}/text", MAX_HEADER_TEXT, plain=True)
    elif kind in ("context", "actions"):
        limit = MAX_CONTEXT_ELEMENTS if kind == "context" else MAX_ACTIONS_ELEMENTS
        elements = block.get("elements")
        if elements is None:
            problems.append(f"missing required field: elements [json-pointer:{at}]")
        else:
            problems += _list_problems(elements, f"{at}/elements", limit)
            for number, element in enumerate(elements if isinstance(elements, list) else []):
                if isinstance(element, dict):
                    problems += _element_problems(element, f"{at}/elements/{number}")
    return problems


def _element_problems(element: dict[str, Any], at: str) -> list[str]:
    if element.get("type") == "button":
        return _text_problems(element.get("text"), f"{at}/text", MAX_BUTTON_TEXT, plain=True)
    return []


def _text_problems(obj: Any, at: str, limit: int, *, plain: bool = False) -> list[str]:
    """Problems of a text object: its type, and 1 to ``limit`` characters of text."""
    if not isinstance(obj, dict):
        return [f"must be a text object [json-pointer:{at}]"]
    allowed = ("plain_text",) if plain else ("plain_text", "mrkdwn")
    problems = []
    if obj.get("type") not in allowed:
        problems.append(f"must be {' or '.join(allowed)} [json-pointer:{at}/type]")
    text = obj.get("text")
    if text is None:
        problems.append(f"missing required field: text [json-pointer:{at}]")
    elif not isinstance(text, str) or not text:
        problems.append(f"must be more than 0 characters [json-pointer:{at}/text]")
    elif len(text) > limit:
        problems.append(_too_long(limit, f"{at}/text"))
    return problems


def _list_problems(value: Any, at: str, limit: int) -> list[str]:
    if not isinstance(value, list):
        return [f"must be an array [json-pointer:{at}]"]
    if len(value) > limit:
        return [f"no more than {limit} items allowed [json-pointer:{at}]"]
    return []


def _too_long(limit: int, at: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{at}]"


def _json_list(args: dict[str, Any], name: str, error: str) -> list[Any] | None:
    """``args[name]`` as a list: a JSON array, or a string holding one (form bodies)."""
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackApiRefusal(error) from None
    if not isinstance(value, list):
        raise SlackApiRefusal(error)
    return value


def message_content(args: dict[str, Any]) -> tuple[str | None, list[Any] | None, list[Any] | None]:
    """Text, blocks and attachments of a message, or the SlackApiRefusal Slack would give."""
    text = args.get("text")
    text = None if text is None else str(text)
    blocks = _json_list(args, "blocks", "invalid_blocks_format")
    attachments = _json_list(args, "attachments", "invalid_attachments")
    if not text and not blocks and not attachments:
        raise SlackApiRefusal("no_text")
    if text is not None and len(text) > MAX_TEXT:
        raise SlackApiRefusal("msg_too_long")
    if attachments is not None and len(attachments) > MAX_ATTACHMENTS:
        raise SlackApiRefusal("too_many_attachments")
    problems = block_kit_problems(blocks or [])
    if problems:
        raise SlackApiRefusal(
            "invalid_blocks",
            errors=problems,
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )
    return text, blocks, attachments


class FakeSlack:
    """Slack's Web API and incoming webhooks on a loopback port; see the module docstring."""

    def __init__(
        self,
        *,
        channels: Iterable[SlackChannel] = DEFAULT_CHANNELS,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        rate_limit_per_channel: bool = False,
        clock: Callable[[], float] = time.monotonic,
        spec_path: Path = SPEC_PATH,
    ) -> None:
        self.spec = {**load_spec(spec_path), **HAND_WRITTEN}
        self.channels = {channel.id: channel for channel in channels}
        self.tokens = set(tokens)
        self.app_tokens = set(app_tokens)
        self.users: set[str] = {HUMAN_USER_ID}
        self.usergroups: dict[str, list[str]] = {}
        self.ephemerals: list[SlackEphemeral] = []
        # Set by FakeSocketMode.attach: issues a fresh ws:// URL for apps.connections.open.
        self.socket_url: Callable[[], str] | None = None
        self.rate_limit_per_channel = rate_limit_per_channel
        self.clock = clock
        self.calls: list[SlackCall] = []
        self.messages: dict[str, list[SlackMessage]] = {}
        self.webhook_posts: list[WebhookPost] = []
        first = next(iter(self.channels), "C0NOWHERE1")
        self.webhooks: dict[str, str] = {DEFAULT_WEBHOOK_PATH: first}
        self._failures: dict[str, deque[SlackApiRefusal]] = {}
        self._last_post: dict[str, float] = {}
        self._ts_count = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0  # chosen by the first start(), kept across refuse/accept_connections
        self._handlers: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "conversations.info": self._conversation_info,
            "usergroups.users.list": self._usergroup_users,
            "apps.connections.open": self._connections_open,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Serve on a free loopback port (or the one served before) until ``stop``."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, verb: str) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, extra, data = fake.answer(verb, parsed.path, parsed.query, headers, body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read ``calls`` and ``webhook_posts`` instead."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_port
        # A short poll interval keeps stop() (which waits for the serve loop) quick.
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def refuse_connections(self) -> None:
        """Close the listening socket: connecting is refused, as when Slack cannot be reached."""
        self.stop()

    def accept_connections(self) -> None:
        """Serve again, on the same port, after ``refuse_connections``."""
        if self._server is None:
            self.start()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:40123``."""
        assert self._port, "start() the fake first"
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for slack_sdk's WebClient (it must end with a slash)."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        """The default incoming webhook, posting to the first channel."""
        return self.url + DEFAULT_WEBHOOK_PATH

    # -- test set-up ----------------------------------------------------------------------

    def add_channel(self, channel: SlackChannel) -> None:
        """Add (or replace) a conversation of the workspace."""
        with self._lock:
            self.channels[channel.id] = channel

    def add_webhook(self, channel_id: str, *, path: str | None = None) -> str:
        """Add an incoming webhook posting to ``channel_id`` (known or not); return its URL."""
        with self._lock:
            path = path or f"/services/T000/B{len(self.webhooks):03d}/XXXX"
            if not path.startswith("/services/"):
                raise ValueError(f"webhook path must start with /services/, got: {path!r}")
            self.webhooks[path] = channel_id
        return self.url + path

    def add_user(self, user_id: str) -> None:
        """A person of the workspace, in every channel (chat.postEphemeral can reach them)."""
        with self._lock:
            self.users.add(user_id)

    def add_usergroup(self, group_id: str, members: Iterable[str]) -> None:
        """A user group (``S...``) and its members, for usergroups.users.list."""
        with self._lock:
            self.usergroups[group_id] = list(members)

    def seed_message(self, channel_id: str, text: str, *, user: str = HUMAN_USER_ID) -> str:
        """Put a message by someone other than the bot into a channel; return its ts."""
        with self._lock:
            ts = self._next_ts()
            now = self.clock()
            message = SlackMessage(channel=channel_id, ts=ts, text=text, user=user, time=now)
            self.messages.setdefault(channel_id, []).append(message)
        return ts

    def fail_next(
        self,
        method: str,
        kind: FailureKind,
        *,
        error: str | None = None,
        status: int | None = None,
        retry_after: int = 1,
    ) -> None:
        """Answer the next request to ``method`` (or ``WEBHOOK``) with a failure.

        ``rate_limited``: HTTP 429, ``Retry-After: retry_after``, error ``ratelimited``;
        ``server_error``: HTTP ``status`` (500 or 503, default 500); ``error``: HTTP 200 with
        ``{"ok": false, "error": error}`` (for webhooks: the plain-text error with its status).
        Failures queue up: call it twice to fail the next two requests.
        """
        if method != WEBHOOK and method not in self.spec:
            known = ", ".join(sorted([*self.spec, WEBHOOK]))
            raise ValueError(f"method must be one of {known}, got: {method!r}")
        webhook = method == WEBHOOK
        if kind == "rate_limited":
            refusal = SlackApiRefusal(
                "rate_limited" if webhook else "ratelimited",
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        elif kind == "server_error":
            code = status or 500
            if code not in (500, 503):
                raise ValueError(f"server_error status must be 500 or 503, got: {code}")
            if code == 503:
                name = "service_unavailable"
            else:
                name = "rollup_error" if webhook else "internal_error"
            refusal = SlackApiRefusal(name, status=code)
        elif kind == "error":
            if not error:
                raise ValueError("fail_next(kind='error') needs error=<Slack error name>")
            code = _WEBHOOK_STATUS.get(error, 400) if webhook else 200
            refusal = SlackApiRefusal(error, status=code)
        else:
            raise ValueError(f"kind must be rate_limited, server_error or error, got: {kind!r}")
        with self._lock:
            self._failures.setdefault(method, deque()).append(refusal)

    # -- reading the record ---------------------------------------------------------------

    def message(self, channel_id: str, ts: str) -> SlackMessage:
        """The message ``ts`` of a channel (KeyError if there is none)."""
        for message in self.messages.get(channel_id, []):
            if message.ts == ts:
                return message
        raise KeyError(f"no message {ts} in {channel_id}")

    def replies(self, channel_id: str, thread_ts: str) -> list[SlackMessage]:
        """The replies in the thread under ``thread_ts``, oldest first."""
        return [m for m in self.messages.get(channel_id, []) if m.thread_ts == thread_ts]

    def calls_to(self, method: str) -> list[SlackCall]:
        """The recorded requests to one Web API method, in order."""
        return [call for call in self.calls if call.method == method]

    def post_times(self, channel_id: str) -> list[float]:
        """When the bot's accepted messages reached a channel (clock time), oldest first."""
        return [m.time for m in self.messages.get(channel_id, []) if m.by_bot]

    # -- serving --------------------------------------------------------------------------

    def answer(
        self, verb: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body answering one HTTP request."""
        if path.startswith("/api/"):
            status, extra, payload = self._answer_api(path, query, headers, body)
            json_type = {"Content-Type": "application/json; charset=utf-8"}
            return status, {**json_type, **extra}, json.dumps(payload).encode()
        if path.startswith("/services/") and verb == "POST":
            status, extra, text = self._answer_webhook(path, headers, body)
            return status, {"Content-Type": "text/html", **extra}, text.encode()
        return 404, {"Content-Type": "text/plain"}, b"Not Found"

    def _answer_api(
        self, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        method = path.removeprefix("/api/")
        with self._lock:
            now = self.clock()
            call = SlackCall(method=method, args={}, headers=headers, time=now, body=body)
            self.calls.append(call)
            try:
                spec = self.spec.get(method)
                if spec is None:
                    raise SlackApiRefusal("unknown_method", req_method=method)
                call.args, parse_error = _parse_args(spec, query, headers, body)
                pending = self._failures.get(method)
                if pending:
                    raise pending.popleft()
                if parse_error is not None:
                    raise parse_error
                self._authenticate(headers, call.args, method)
                _check_arguments(spec, call.args)
                status, extra, payload = (
                    200,
                    {},
                    {"ok": True, **self._handlers[method](call.args, now)},
                )
            except SlackApiRefusal as refusal:
                status, extra, payload = refusal.status, refusal.headers, refusal.body()
            call.status, call.response = status, payload
        return status, extra, payload

    def _authenticate(self, headers: dict[str, str], args: dict[str, Any], method: str) -> None:
        authorization = headers.get("authorization")
        if authorization is None:
            # Slack takes a token form field too; slack_sdk always sends the header.
            token = args.get("token") if _media_type(headers) != _JSON else None
        else:
            scheme, _, token = authorization.partition(" ")
            if scheme != "Bearer":
                raise SlackApiRefusal("invalid_auth")
        if not token:
            raise SlackApiRefusal("not_authed")
        if token not in self.tokens and token not in self.app_tokens:
            raise SlackApiRefusal("invalid_auth")
        if (token in self.app_tokens) != (method in APP_TOKEN_METHODS):
            raise SlackApiRefusal("not_allowed_token_type")

    # -- methods --------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        return {
            "url": "https://replyclock-test.slack.com/",
            "team": "replyclock test",
            "user": "replyclock",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._channel(str(args["channel"]), by_name=True)
        if channel.archived:
            raise SlackApiRefusal("is_archived")
        if not channel.member:
            raise SlackApiRefusal("not_in_channel")
        thread_ts = self._thread_root(channel.id, args.get("thread_ts"))
        self._pace(channel.id, now)
        text, blocks, attachments = message_content(args)
        message = SlackMessage(
            channel=channel.id,
            ts=self._next_ts(),
            text=text,
            user=BOT_USER_ID,
            time=now,
            blocks=blocks,
            attachments=attachments,
            thread_ts=thread_ts,
        )
        self.messages.setdefault(channel.id, []).append(message)
        self._last_post[channel.id] = now
        return {"channel": channel.id, "ts": message.ts, "message": message.as_api()}

    def _update(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._channel(str(args["channel"]), by_name=False)
        ts = str(args["ts"])
        try:
            message = self.message(channel.id, ts)
        except KeyError:
            raise SlackApiRefusal("message_not_found") from None
        if not message.by_bot:
            raise SlackApiRefusal("cant_update_message")
        text, blocks, attachments = message_content(args)
        # Per the spec, blocks and attachments left out of an update are kept.
        message.text = text
        if "blocks" in args:
            message.blocks = blocks
        if "attachments" in args:
            message.attachments = attachments
        edit = SlackEdit(
            text=text, blocks=message.blocks, attachments=message.attachments, time=now
        )
        message.edits.append(edit)
        shown = {k: v for k, v in message.as_api().items() if k != "thread_ts"}
        return {"channel": channel.id, "ts": ts, "text": text or "", "message": shown}

    def _post_ephemeral(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._channel(str(args["channel"]), by_name=True)
        if channel.archived:
            raise SlackApiRefusal("is_archived")
        if not channel.member:
            raise SlackApiRefusal("channel_not_found")
        if str(args["user"]) not in self.users:
            raise SlackApiRefusal("user_not_in_channel")
        text, blocks, _attachments = message_content(args)
        ts = self._next_ts()
        self.ephemerals.append(
            SlackEphemeral(
                channel=channel.id,
                user=str(args["user"]),
                text=text,
                blocks=blocks,
                time=now,
                ts=ts,
            )
        )
        return {"message_ts": ts}

    def _usergroup_users(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        members = self.usergroups.get(str(args["usergroup"]))
        if members is None:
            raise SlackApiRefusal("no_such_subteam")  # Slack's answer; not in the spec's enum
        return {"users": list(members)}

    def _connections_open(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        if self.socket_url is None:
            raise SlackApiRefusal("internal_error")  # the fake's own: no FakeSocketMode attached
        return {"url": self.socket_url()}

    def _conversation_info(self, args: dict[str, Any], now: float) -> dict[str, Any]:
        channel = self._channel(str(args["channel"]), by_name=False)
        topic = {"value": "", "creator": "", "last_set": 0}
        return {
            "channel": {
                "id": channel.id,
                "name": channel.name,
                "name_normalized": channel.name,
                "created": FIRST_TS_SECOND - 86_400,
                "creator": HUMAN_USER_ID,
                "is_archived": channel.archived,
                "is_channel": not channel.private,
                "is_group": channel.private,
                "is_general": False,
                "is_im": False,
                "is_mpim": False,
                "is_org_shared": False,
                "is_shared": False,
                "is_private": channel.private,
                "is_member": channel.member,
                "topic": topic,
                "purpose": dict(topic),
            }
        }

    # -- helpers --------------------------------------------------------------------------

    def _channel(self, ref: str, *, by_name: bool) -> SlackChannel:
        """The channel an ID (or, where Slack allows, a ``#name``) refers to, if the bot sees it."""
        found = self.channels.get(ref)
        if found is None and by_name:
            name = ref.removeprefix("#")
            found = next((c for c in self.channels.values() if c.name == name), None)
        if found is None or (found.private and not found.member):
            raise SlackApiRefusal("channel_not_found")
        return found

    def _thread_root(self, channel_id: str, thread_ts: Any) -> str | None:
        if thread_ts is None:
            return None
        if not isinstance(thread_ts, str) or not _TS.fullmatch(thread_ts):
            raise _invalid_thread_ts(thread_ts)
        try:
            parent = self.message(channel_id, thread_ts)
        except KeyError:
            raise SlackApiRefusal("thread_not_found") from None
        # A reply's ts threads under that reply's parent (the fake's choice; Slack advises
        # passing the parent's ts).
        return parent.thread_ts or parent.ts

    def _pace(self, channel_id: str, now: float) -> None:
        last = self._last_post.get(channel_id)
        if self.rate_limit_per_channel and last is not None and now - last < RATE_WINDOW:
            wait = max(1, math.ceil(RATE_WINDOW - (now - last)))
            raise SlackApiRefusal("ratelimited", status=429, headers={"Retry-After": str(wait)})

    def _next_ts(self) -> str:
        """Unique, increasing message timestamps: 1700000000.000100, 1700000000.000200, ..."""
        self._ts_count += 1
        micros = self._ts_count * 100
        return f"{FIRST_TS_SECOND + micros // 1_000_000}.{micros % 1_000_000:06d}"

    # -- incoming webhooks ----------------------------------------------------------------

    def _answer_webhook(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], str]:
        with self._lock:
            now = self.clock()
            post = WebhookPost(path=path, channel=None, payload=None, headers=headers, time=now)
            self.webhook_posts.append(post)
            try:
                self._webhook_post(post, headers, body, now)
                status, extra, text = 200, {}, "ok"
            except SlackApiRefusal as refusal:
                status, extra, text = refusal.status, refusal.headers, refusal.error
            post.status, post.answer = status, text
        return status, extra, text

    def _webhook_post(
        self, post: WebhookPost, headers: dict[str, str], body: bytes, now: float
    ) -> None:
        post.payload = payload = _webhook_payload(headers, body)
        pending = self._failures.get(WEBHOOK)
        if pending:
            raise pending.popleft()
        channel_id = self.webhooks.get(post.path)
        if channel_id is None:
            raise SlackApiRefusal("no_service", status=404)
        if not isinstance(payload, dict):
            raise SlackApiRefusal("invalid_payload", status=400)
        channel = self.channels.get(channel_id)
        if channel is None:
            raise SlackApiRefusal("channel_not_found", status=404)
        if channel.archived:
            raise SlackApiRefusal("channel_is_archived", status=410)
        try:
            self._pace(channel.id, now)
        except SlackApiRefusal as refusal:
            raise SlackApiRefusal("rate_limited", status=429, headers=refusal.headers) from None
        try:
            message_content(payload)
        except SlackApiRefusal as refusal:
            post.problems = list(refusal.extra.get("errors", []))
            raise SlackApiRefusal(refusal.error, status=400) from None
        post.channel = channel.id
        self._last_post[channel.id] = now


def _invalid_thread_ts(value: Any) -> SlackApiRefusal:
    return SlackApiRefusal(
        "invalid_thread_ts",
        response_metadata={"messages": [f"[ERROR] {value} is not a valid thread_ts"]},
    )


def _media_type(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _parse_args(
    spec: SpecMethod, query: str, headers: dict[str, str], body: bytes
) -> tuple[dict[str, Any], SlackApiRefusal | None]:
    """Query and body arguments merged, and the refusal a malformed body earns (or None)."""
    args: dict[str, Any] = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
    media_type = _media_type(headers)
    if not body:
        return args, None
    if not media_type:
        return args, SlackApiRefusal("missing_post_type")
    if media_type not in spec.consumes:
        return args, SlackApiRefusal("invalid_post_type")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return args, SlackApiRefusal("invalid_charset")
    if media_type == _FORM:
        form = urllib.parse.parse_qs(text, keep_blank_values=True)
        return {**args, **{k: v[0] for k, v in form.items()}}, None
    try:
        data = json.loads(text)
    except ValueError:
        return args, SlackApiRefusal("invalid_json")
    if not isinstance(data, dict):
        return args, SlackApiRefusal("json_not_object")
    return {**args, **data}, None


def _check_arguments(spec: SpecMethod, args: dict[str, Any]) -> None:
    """Refuse missing required arguments and arguments the spec does not list."""
    missing = sorted(spec.required - set(args))
    unknown = sorted(set(args) - spec.params)
    messages = [f"[ERROR] missing required field: {name}" for name in missing]
    messages += [f"[ERROR] unknown field: {name} (not in the Web API spec)" for name in unknown]
    if messages:
        raise SlackApiRefusal("invalid_arguments", response_metadata={"messages": messages})


def _webhook_payload(headers: dict[str, str], body: bytes) -> Any:
    """The JSON payload of a webhook request (a JSON body or a ``payload`` form field)."""
    try:
        text = body.decode("utf-8")
        if _media_type(headers) == _FORM:
            text = urllib.parse.parse_qs(text).get("payload", [""])[0]
        return json.loads(text)
    except ValueError:
        return None
