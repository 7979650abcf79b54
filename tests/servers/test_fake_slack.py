"""The fake Slack answers the real slack_sdk clients the way Slack's Web API and webhooks do."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import FixedValueRetryIntervalCalculator, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from servers.fake_slack import (
    DEFAULT_APP_TOKEN,
    DEFAULT_TOKEN,
    HUMAN_USER_ID,
    SPEC_PATH,
    WEBHOOK,
    FakeSlack,
    SlackChannel,
)

SUPPORT = "C0SUPPORT1"
LEADS = "S0LEADS001"
ALERTS = "C0ALERTS01"
TS = re.compile(r"\d{10}\.\d{6}")


class ManualClock:
    """A clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A running fake with the default channels and token."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    """slack_sdk's WebClient with the bot token, pointed at the fake, no retries."""
    return WebClient(token=DEFAULT_TOKEN, base_url=slack.api_url, retry_handlers=[])


def refused(call: Callable[[], object]) -> SlackResponse:
    """The response slack_sdk attaches to the SlackApiError that ``call`` raises."""
    with pytest.raises(SlackApiError) as caught:
        call()
    response: SlackResponse = caught.value.response
    return response


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(label: str) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": "a"}


# -- posting, threading, updating -------------------------------------------------------


def test_post_message_answers_like_slack_and_records_the_message(
    slack: FakeSlack, client: WebClient
) -> None:
    """A post by channel name answers ok with the channel ID, a ts and the message, and is kept."""
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "SLA breached"}}]
    response = client.chat_postMessage(channel="#support", text="SLA breached", blocks=blocks)

    assert response["channel"] == SUPPORT
    assert TS.fullmatch(response["ts"])
    assert response["message"]["text"] == "SLA breached"
    assert response["message"]["blocks"] == blocks
    assert response["message"]["bot_id"] == "B0BOT00001"
    (message,) = slack.messages[SUPPORT]
    assert (message.ts, message.text, message.blocks) == (response["ts"], "SLA breached", blocks)
    assert message.thread_ts is None
    assert message.by_bot


def test_message_timestamps_are_unique_and_increasing(client: WebClient) -> None:
    """Every message gets a new ts, later than the one before, in Slack's 10.6-digit form."""
    stamps = [client.chat_postMessage(channel=SUPPORT, text=str(n))["ts"] for n in range(3)]

    assert stamps == ["1700000000.000100", "1700000000.000200", "1700000000.000300"]


def test_slack_sdk_sends_chat_methods_as_json_and_reads_as_form(
    slack: FakeSlack, client: WebClient
) -> None:
    """slack_sdk 3.47 posts chat.* as JSON (blocks a real array) and other methods form-encoded."""
    client.chat_postMessage(channel=SUPPORT, text="hi", blocks=[section("hi")])
    client.chat_update(channel=SUPPORT, ts="1700000000.000100", text="done")
    client.conversations_info(channel=SUPPORT)
    client.auth_test()

    post, update, info, auth = slack.calls
    assert post.headers["content-type"] == "application/json;charset=utf-8"
    assert json.loads(post.body)["blocks"] == [section("hi")]
    assert update.headers["content-type"] == "application/json;charset=utf-8"
    assert info.headers["content-type"] == "application/x-www-form-urlencoded"
    assert info.body == b"channel=C0SUPPORT1"
    # No arguments, no body. Its content type changed between slack_sdk releases (3.47 said
    # JSON, 3.48 says form), and the fake accepts both.
    assert auth.body == b""
    assert auth.headers["content-type"] in (
        "application/json;charset=utf-8",
        "application/x-www-form-urlencoded",
    )
    assert {call.headers["authorization"] for call in slack.calls} == {f"Bearer {DEFAULT_TOKEN}"}


def test_form_encoded_post_with_blocks_as_a_json_string_is_accepted(
    slack: FakeSlack, client: WebClient
) -> None:
    """A form-encoded chat.postMessage, blocks a JSON string as the spec describes, is accepted."""
    blocks = [section("waiting 4h")]
    client.api_call(
        "chat.postMessage",
        data={"channel": SUPPORT, "text": "waiting 4h", "blocks": json.dumps(blocks)},
    )

    assert slack.calls[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert slack.messages[SUPPORT][0].blocks == blocks


def test_replies_thread_under_the_root_message(slack: FakeSlack, client: WebClient) -> None:
    """Posts with thread_ts become replies of that message, and a reply's ts threads to its root."""
    root = client.chat_postMessage(channel=SUPPORT, text="stage 1")["ts"]
    first = client.chat_postMessage(channel=SUPPORT, text="stage 2", thread_ts=root)
    client.chat_postMessage(channel=SUPPORT, text="stage 3", thread_ts=first["ts"])

    assert first["message"]["thread_ts"] == root
    assert [m.text for m in slack.replies(SUPPORT, root)] == ["stage 2", "stage 3"]
    assert slack.message(SUPPORT, root).thread_ts is None


@pytest.mark.parametrize(
    ("channel", "thread_ts", "error"),
    [
        pytest.param(SUPPORT, "1700000099.000100", "thread_not_found", id="unknown_ts"),
        pytest.param(ALERTS, "1700000000.000100", "thread_not_found", id="other_channel"),
        pytest.param(SUPPORT, "1700000000.0001", "invalid_thread_ts", id="float_formatted"),
    ],
)
def test_thread_ts_must_name_a_message_of_that_channel(
    client: WebClient, channel: str, thread_ts: str, error: str
) -> None:
    """A thread_ts that is malformed or names no message of the channel is refused."""
    client.chat_postMessage(channel=SUPPORT, text="root")

    response = refused(
        lambda: client.chat_postMessage(channel=channel, text="r", thread_ts=thread_ts)
    )

    assert response["error"] == error


def test_invalid_thread_ts_explains_itself(client: WebClient) -> None:
    """A malformed thread_ts is named in response_metadata, as Slack does."""
    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="r", thread_ts="0"))

    assert response.data == {
        "ok": False,
        "error": "invalid_thread_ts",
        "response_metadata": {"messages": ["[ERROR] 0 is not a valid thread_ts"]},
    }


def test_update_edits_the_bots_message_and_keeps_history(
    slack: FakeSlack, client: WebClient
) -> None:
    """chat.update changes text, keeps blocks left out, replaces blocks given, and is recorded."""
    ts = client.chat_postMessage(channel=SUPPORT, text="open", blocks=[section("open")])["ts"]

    first = client.chat_update(channel=SUPPORT, ts=ts, text="answered")
    client.chat_update(channel=SUPPORT, ts=ts, text="answered", blocks=[section("answered")])

    assert (first["channel"], first["ts"], first["text"]) == (SUPPORT, ts, "answered")
    assert first["message"]["blocks"] == [section("open")]
    message = slack.message(SUPPORT, ts)
    assert (message.text, message.blocks) == ("answered", [section("answered")])
    assert [(e.text, e.blocks) for e in message.edits] == [
        ("answered", [section("open")]),
        ("answered", [section("answered")]),
    ]


@pytest.mark.parametrize(
    ("target", "error"),
    [
        pytest.param("unknown_ts", "message_not_found", id="unknown_ts"),
        pytest.param("human_message", "cant_update_message", id="not_the_bots"),
        pytest.param("channel_name", "channel_not_found", id="channel_by_name"),
    ],
)
def test_update_refuses_what_the_bot_cannot_edit(
    slack: FakeSlack, client: WebClient, target: str, error: str
) -> None:
    """chat.update wants a channel ID and a ts of a message the bot itself posted."""
    bot_ts = client.chat_postMessage(channel=SUPPORT, text="open")["ts"]
    channel, ts = {
        "unknown_ts": (SUPPORT, "1700000099.000100"),
        "human_message": (SUPPORT, slack.seed_message(SUPPORT, "customer wrote")),
        "channel_name": ("#support", bot_ts),
    }[target]

    response = refused(lambda: client.chat_update(channel=channel, ts=ts, text="answered"))

    assert response["error"] == error
    assert slack.message(SUPPORT, bot_ts).edits == []


# -- authentication, methods, arguments -------------------------------------------------


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param(None, "not_authed", id="no_token"),
        pytest.param("xoxb-1-revoked", "invalid_auth", id="unknown_token"),
    ],
)
def test_calls_without_a_known_token_are_refused(
    slack: FakeSlack, token: str | None, error: str
) -> None:
    """No token is not_authed, an unknown one invalid_auth, both with HTTP 200 as Slack does."""
    stranger = WebClient(token=token, base_url=slack.api_url)

    response = refused(lambda: stranger.chat_postMessage(channel=SUPPORT, text="hi"))

    assert (response.status_code, response["error"]) == (200, error)
    assert SUPPORT not in slack.messages


def test_unknown_method_is_refused(client: WebClient) -> None:
    """A method outside the spec subset answers unknown_method."""
    response = refused(lambda: client.api_call("chat.delete", json={"channel": SUPPORT}))

    assert response.data == {
        "ok": False,
        "error": "unknown_method",
        "req_method": "chat.delete",
    }


@pytest.mark.parametrize(
    ("method", "args", "message"),
    [
        pytest.param(
            "chat.postMessage",
            {"text": "hi"},
            "[ERROR] missing required field: channel",
            id="post_channel",
        ),
        pytest.param(
            "chat.update",
            {"channel": SUPPORT, "text": "x"},
            "[ERROR] missing required field: ts",
            id="update_ts",
        ),
        pytest.param(
            "chat.postMessage",
            {"channel": SUPPORT, "text": "hi", "metadata": {"event_type": "sla"}},
            "[ERROR] unknown field: metadata (not in the Web API spec)",
            id="unlisted_argument",
        ),
    ],
)
def test_arguments_are_checked_against_the_spec(
    client: WebClient, method: str, args: dict[str, Any], message: str
) -> None:
    """A missing required argument or one the spec does not list is invalid_arguments, explained."""
    response = refused(lambda: client.api_call(method, json=args))

    assert response.data == {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [message]},
    }


def test_conversations_info_needs_a_channel(client: WebClient) -> None:
    """conversations.info without channel is invalid_arguments (the spec omits the requirement)."""
    response = refused(lambda: client.api_call("conversations.info", params={}))

    assert response["response_metadata"]["messages"] == ["[ERROR] missing required field: channel"]


def test_a_message_needs_text_blocks_or_attachments(client: WebClient) -> None:
    """A post with neither text nor blocks nor attachments is no_text."""
    response = refused(lambda: client.api_call("chat.postMessage", json={"channel": SUPPORT}))

    assert response["error"] == "no_text"


def test_text_is_limited_to_40000_characters(slack: FakeSlack, client: WebClient) -> None:
    """40,000 characters of text are accepted, one more is msg_too_long."""
    client.chat_postMessage(channel=SUPPORT, text="x" * 40_000)

    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="x" * 40_001))

    assert response["error"] == "msg_too_long"
    assert len(slack.messages[SUPPORT]) == 1


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        pytest.param("C0NOPE0001", "channel_not_found", id="unknown_id"),
        pytest.param("#nope", "channel_not_found", id="unknown_name"),
        pytest.param("", "channel_not_found", id="empty"),
        pytest.param("G0SECRET01", "channel_not_found", id="private_not_member"),
        pytest.param("#random", "not_in_channel", id="public_not_member"),
        pytest.param("C0OLDTEAM1", "is_archived", id="archived"),
    ],
)
def test_posting_needs_a_channel_the_bot_is_in(client: WebClient, channel: str, error: str) -> None:
    """Unknown or hidden channels are channel_not_found; others without the bot, not_in_channel."""
    response = refused(lambda: client.chat_postMessage(channel=channel, text="hi"))

    assert response["error"] == error


def test_added_channels_accept_posts(slack: FakeSlack, client: WebClient) -> None:
    """A channel added at run time is found by ID and by name."""
    slack.add_channel(SlackChannel(id="C0ONCALL01", name="on-call"))

    assert client.chat_postMessage(channel="#on-call", text="hi")["channel"] == "C0ONCALL01"


# -- Block Kit ---------------------------------------------------------------------------


def _fields(count: int, length: int = 5) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * length}] * count}


BLOCK_LIMITS = [
    pytest.param(
        [{"type": "divider"}] * 51,
        "no more than 50 items allowed [json-pointer:/blocks]",
        id="51_blocks",
    ),
    pytest.param(
        [section("x" * 3001)],
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
        id="section_text_3001",
    ),
    pytest.param(
        [section("")],
        "must be more than 0 characters [json-pointer:/blocks/0/text/text]",
        id="section_text_empty",
    ),
    pytest.param(
        [{"type": "section"}],
        "must provide either text or fields [json-pointer:/blocks/0]",
        id="section_without_text",
    ),
    pytest.param(
        [_fields(11)],
        "no more than 10 items allowed [json-pointer:/blocks/0/fields]",
        id="11_fields",
    ),
    pytest.param(
        [_fields(1, 2001)],
        "must be less than 2001 characters [json-pointer:/blocks/0/fields/0/text]",
        id="field_text_2001",
    ),
    pytest.param(
        [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        id="header_text_151",
    ),
    pytest.param(
        [{"type": "header", "text": {"type": "mrkdwn", "text": "*h*"}}],
        "must be plain_text [json-pointer:/blocks/0/text/type]",
        id="header_mrkdwn",
    ),
    pytest.param(
        [{"type": "actions", "elements": [button("b" * 76)]}],
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]",
        id="button_text_76",
    ),
    pytest.param(
        [{**section("s"), "accessory": button("b" * 76)}],
        "must be less than 76 characters [json-pointer:/blocks/0/accessory/text/text]",
        id="accessory_button_76",
    ),
    pytest.param(
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "no more than 10 items allowed [json-pointer:/blocks/0/elements]",
        id="context_11_elements",
    ),
    pytest.param(
        [{"type": "divider", "block_id": "b" * 256}],
        "must be less than 256 characters [json-pointer:/blocks/0/block_id]",
        id="block_id_256",
    ),
    pytest.param(
        [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
        "duplicate block_id: a [json-pointer:/blocks/1/block_id]",
        id="duplicate_block_id",
    ),
    pytest.param(
        [{"type": "image", "image_url": "https://x/y.png"}],
        "unsupported block type: image [json-pointer:/blocks/0/type]",
        id="unknown_type",
    ),
    pytest.param(
        [{"text": "no type"}],
        "missing required field: type [json-pointer:/blocks/0]",
        id="missing_type",
    ),
]


@pytest.mark.parametrize(("blocks", "problem"), BLOCK_LIMITS)
def test_block_kit_limits_are_enforced(
    slack: FakeSlack, client: WebClient, blocks: list[Any], problem: str
) -> None:
    """Blocks past a Block Kit limit are invalid_blocks, naming the limit and where it broke."""
    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="t", blocks=blocks))

    assert response.data == {
        "ok": False,
        "error": "invalid_blocks",
        "errors": [problem],
        "response_metadata": {"messages": [f"[ERROR] {problem}"]},
    }
    assert SUPPORT not in slack.messages


def test_blocks_at_every_limit_are_accepted(client: WebClient) -> None:
    """Fifty blocks, each exactly at its Block Kit limit, make a valid message."""
    blocks = [
        {
            "type": "header",
            "block_id": "h" * 255,
            "text": {"type": "plain_text", "text": "h" * 150},
        },
        {**section("s" * 3000), "accessory": button("b" * 75)},
        _fields(10, 2000),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
        {"type": "actions", "elements": [button("b" * 75)]},
        {"type": "rich_text", "elements": []},
    ]
    blocks += [{"type": "divider"}] * (50 - len(blocks))

    assert client.chat_postMessage(channel=SUPPORT, text="t", blocks=blocks)["ok"]


def test_every_block_problem_is_reported_at_once(client: WebClient) -> None:
    """All broken blocks are listed in one answer, in block order."""
    blocks = [section(""), {"type": "divider"}, {"type": "video"}]

    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="t", blocks=blocks))

    assert response["errors"] == [
        "must be more than 0 characters [json-pointer:/blocks/0/text/text]",
        "unsupported block type: video [json-pointer:/blocks/2/type]",
    ]


def test_blocks_that_are_not_a_json_array_are_invalid_blocks_format(client: WebClient) -> None:
    """A blocks string that does not parse to an array is invalid_blocks_format."""
    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="t", blocks="{oops"))

    assert response["error"] == "invalid_blocks_format"


def test_updates_are_held_to_block_kit_limits(slack: FakeSlack, client: WebClient) -> None:
    """chat.update checks its blocks like chat.postMessage and leaves the message unchanged."""
    ts = client.chat_postMessage(channel=SUPPORT, text="open")["ts"]

    response = refused(
        lambda: client.chat_update(channel=SUPPORT, ts=ts, text="t", blocks=[section("x" * 3001)])
    )

    assert response["error"] == "invalid_blocks"
    assert slack.message(SUPPORT, ts).text == "open"


# -- responses against the spec ---------------------------------------------------------


def schema_problems(
    value: Any, schema: dict[str, Any], spec: dict[str, Any], at: str = "$"
) -> list[str]:
    """Where ``value`` breaks ``schema`` (the JSON Schema subset Slack's spec uses)."""
    if "$ref" in schema:
        return schema_problems(
            value, spec["definitions"][schema["$ref"].rsplit("/", 1)[1]], spec, at
        )
    if isinstance(schema.get("items"), list) and "type" not in schema:
        # Slack's spec writes "one of" as a list of items.
        options = [schema_problems(value, option, spec, at) for option in schema["items"]]
        return [] if [] in options else min(options, key=len)
    kind = schema.get("type")
    python_types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}
    if kind in python_types and not isinstance(value, python_types[kind]):
        return [f"{at}: {value!r} is not {kind}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: {value!r} not in {schema['enum']}")
    if kind == "string" and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if kind == "array" and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], spec, f"{at}[{index}]")
    if kind == "object":
        properties = schema.get("properties", {})
        problems += [
            f"{at}: missing {key}" for key in schema.get("required", []) if key not in value
        ]
        if schema.get("additionalProperties") is False:
            problems += [f"{at}: unexpected {key}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                problems += schema_problems(item, properties[key], spec, f"{at}.{key}")
    return problems


def test_success_answers_match_the_spec_schemas(slack: FakeSlack, client: WebClient) -> None:
    """Every success answer fits the 200 schema the spec gives for its method."""
    spec = json.loads(SPEC_PATH.read_text())
    slack.add_usergroup(LEADS, [HUMAN_USER_ID, "W0ENTERPRS1"])
    root = client.chat_postMessage(channel=SUPPORT, text="open", blocks=[section("open")])
    answers = {
        "chat.postMessage": [
            root,
            client.chat_postMessage(channel=SUPPORT, text="r", thread_ts=root["ts"]),
        ],
        # Text only: the spec types chat.update's message.blocks as an object, not an array.
        "chat.update": [
            client.chat_update(
                channel=SUPPORT,
                ts=client.chat_postMessage(channel=SUPPORT, text="plain")["ts"],
                text="answered",
            )
        ],
        "auth.test": [client.auth_test()],
        "conversations.info": [client.conversations_info(channel=SUPPORT)],
        "chat.postEphemeral": [
            client.chat_postEphemeral(channel=SUPPORT, user=HUMAN_USER_ID, text="only you")
        ],
        "usergroups.users.list": [client.usergroups_users_list(usergroup=LEADS)],
    }

    for method, responses in answers.items():
        ((_verb, operation),) = spec["paths"][f"/{method}"].items()
        for response in responses:
            assert (
                schema_problems(response.data, operation["responses"]["200"]["schema"], spec) == []
            )


# -- ephemeral messages, user groups, token types ------------------------------------------


def test_ephemeral_message_is_recorded_for_its_user_only(
    slack: FakeSlack, client: WebClient
) -> None:
    """chat.postEphemeral answers message_ts and lands in ``ephemerals`` (for that user, in
    that channel), never among the channel's messages."""
    answer = client.chat_postEphemeral(channel="#support", user=HUMAN_USER_ID, text="only you")

    [note] = slack.ephemerals
    assert (note.channel, note.user, note.text, note.ts) == (
        SUPPORT,
        HUMAN_USER_ID,
        "only you",
        answer["message_ts"],
    )
    assert slack.messages == {}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"channel": SUPPORT, "user": "U0STRANGER"}, "user_not_in_channel", id="user"),
        pytest.param({"channel": "C0NOWHERE1", "user": HUMAN_USER_ID}, "channel_not_found", id="c"),
        pytest.param({"channel": "C0OLDTEAM1", "user": HUMAN_USER_ID}, "is_archived", id="old"),
    ],
)
def test_ephemeral_message_needs_a_user_in_a_live_channel(
    client: WebClient, kwargs: dict[str, str], error: str
) -> None:
    """An ephemeral message to someone not in the workspace, or into a channel the bot cannot
    post to, is refused with Slack's error."""
    response = refused(lambda: client.chat_postEphemeral(text="x", **kwargs))
    assert response["error"] == error


def test_usergroup_members_are_listed_and_unknown_groups_refused(
    slack: FakeSlack, client: WebClient
) -> None:
    """usergroups.users.list answers the members set with add_usergroup; an unknown group is
    no_such_subteam."""
    slack.add_usergroup(LEADS, [HUMAN_USER_ID])

    assert client.usergroups_users_list(usergroup=LEADS)["users"] == [HUMAN_USER_ID]
    assert refused(lambda: client.usergroups_users_list(usergroup="S0NOBODY01"))["error"] == (
        "no_such_subteam"
    )


def test_app_and_bot_tokens_each_open_only_their_methods(slack: FakeSlack) -> None:
    """The app-level token cannot post, and the bot token cannot open a Socket Mode
    connection: both are not_allowed_token_type."""
    app = WebClient(token=DEFAULT_APP_TOKEN, base_url=slack.api_url, retry_handlers=[])
    bot = WebClient(token=DEFAULT_TOKEN, base_url=slack.api_url, retry_handlers=[])

    assert refused(lambda: app.chat_postMessage(channel=SUPPORT, text="x"))["error"] == (
        "not_allowed_token_type"
    )
    assert refused(lambda: bot.apps_connections_open(app_token=DEFAULT_TOKEN))["error"] == (
        "not_allowed_token_type"
    )


# -- what the fake records --------------------------------------------------------------


def test_calls_are_recorded_in_order_with_arguments_and_headers(
    slack: FakeSlack, client: WebClient
) -> None:
    """Each request is kept with its method, arguments, headers, time and answer."""
    client.auth_test()
    ts = client.chat_postMessage(channel=SUPPORT, text="open")["ts"]
    client.chat_update(channel=SUPPORT, ts=ts, text="answered")

    assert [c.method for c in slack.calls] == ["auth.test", "chat.postMessage", "chat.update"]
    assert slack.calls_to("chat.update")[0].args == {
        "channel": SUPPORT,
        "ts": ts,
        "text": "answered",
    }
    assert all(c.headers["user-agent"].startswith("Python/") for c in slack.calls)
    assert [c.status for c in slack.calls] == [200, 200, 200]
    assert slack.calls[1].response["ts"] == ts
    times = [c.time for c in slack.calls]
    assert times == sorted(times)


# -- failures and rate limits ------------------------------------------------------------


def test_injected_error_fails_only_the_next_call(slack: FakeSlack, client: WebClient) -> None:
    """fail_next(kind="error") answers HTTP 200 with that error once, then serves normally."""
    slack.fail_next("chat.postMessage", "error", error="fatal_error")

    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="hi"))
    client.chat_postMessage(channel=SUPPORT, text="hi")

    assert (response.status_code, response["error"]) == (200, "fatal_error")
    assert len(slack.messages[SUPPORT]) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(500, "internal_error", id="500"),
        pytest.param(503, "service_unavailable", id="503"),
    ],
)
def test_injected_server_error_reaches_the_caller(
    slack: FakeSlack, client: WebClient, status: int, error: str
) -> None:
    """Without a retry handler a 5xx answer becomes SlackApiError carrying that status."""
    slack.fail_next("chat.postMessage", "server_error", status=status)

    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="hi"))

    assert (response.status_code, response["error"]) == (status, error)


def test_server_error_is_retried_by_the_server_error_handler(slack: FakeSlack) -> None:
    """slack_sdk's ServerErrorRetryHandler repeats the call after a 500 and the post lands once."""
    handler = ServerErrorRetryHandler(
        max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    client = WebClient(token=DEFAULT_TOKEN, base_url=slack.api_url, retry_handlers=[handler])
    slack.fail_next("chat.postMessage", "server_error")

    client.chat_postMessage(channel=SUPPORT, text="hi")

    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500, 200]
    assert len(slack.messages[SUPPORT]) == 1


def test_rate_limit_answer_carries_retry_after(slack: FakeSlack, client: WebClient) -> None:
    """A rate-limited call is HTTP 429, error ratelimited, with a Retry-After header."""
    slack.fail_next("chat.postMessage", "rate_limited", retry_after=1)

    response = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="hi"))

    assert (response.status_code, response["error"]) == (429, "ratelimited")
    assert response.headers["Retry-After"] == "1"


def test_rate_limit_is_retried_after_the_retry_after_delay(slack: FakeSlack) -> None:
    """RateLimitErrorRetryHandler waits Retry-After plus up to 1 s of jitter, then posts again."""
    client = WebClient(
        token=DEFAULT_TOKEN, base_url=slack.api_url, retry_handlers=[RateLimitErrorRetryHandler()]
    )
    slack.fail_next("chat.postMessage", "rate_limited", retry_after=1)

    started = time.monotonic()
    client.chat_postMessage(channel=SUPPORT, text="hi")
    elapsed = time.monotonic() - started

    limited, accepted = slack.calls_to("chat.postMessage")
    assert (limited.status, accepted.status) == (429, 200)
    assert 1.0 <= accepted.time - limited.time < 2.5
    assert elapsed < 3.0
    assert len(slack.messages[SUPPORT]) == 1


def test_per_channel_rate_limit_allows_one_message_a_second() -> None:
    """With rate_limit_per_channel a second post within a second of the last is refused with 429."""
    clock = ManualClock()
    with FakeSlack(rate_limit_per_channel=True, clock=clock) as slack:
        client = WebClient(token=DEFAULT_TOKEN, base_url=slack.api_url, retry_handlers=[])
        client.chat_postMessage(channel=SUPPORT, text="1")
        client.chat_postMessage(channel=ALERTS, text="other channel, same instant")
        clock.advance(0.999)
        too_soon = refused(lambda: client.chat_postMessage(channel=SUPPORT, text="2"))
        clock.advance(0.001)
        client.chat_postMessage(channel=SUPPORT, text="2")

        assert (too_soon.status_code, too_soon["error"]) == (429, "ratelimited")
        assert too_soon.headers["Retry-After"] == "1"
        assert slack.post_times(SUPPORT) == [5000.0, 5001.0]
        assert slack.post_times(ALERTS) == [5000.0]


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        pytest.param(
            "chat.delete",
            {"kind": "error", "error": "x"},
            "method must be one of apps.connections.open, auth.test, chat.postEphemeral, "
            "chat.postMessage, chat.update, conversations.info, usergroups.users.list, webhook, "
            "got: 'chat.delete'",
            id="unknown_method",
        ),
        pytest.param(
            "chat.update",
            {"kind": "error"},
            "fail_next(kind='error') needs error=<Slack error name>",
            id="error_without_name",
        ),
        pytest.param(
            "chat.update",
            {"kind": "server_error", "status": 502},
            "server_error status must be 500 or 503, got: 502",
            id="bad_status",
        ),
    ],
)
def test_fail_next_rejects_what_it_cannot_inject(
    slack: FakeSlack, method: str, kwargs: dict[str, Any], message: str
) -> None:
    """fail_next refuses unknown methods and incomplete failures with a message naming the value."""
    with pytest.raises(ValueError, match=re.escape(message)):
        slack.fail_next(method, **kwargs)


# -- incoming webhooks -------------------------------------------------------------------


def test_webhook_post_answers_ok_and_is_recorded_apart(slack: FakeSlack) -> None:
    """A webhook post answers 200 "ok" and lands in webhook_posts, not in the Web API messages."""
    blocks = [section("SLA breached")]

    response = WebhookClient(slack.webhook_url).send(text="SLA breached", blocks=blocks)

    assert (response.status_code, response.body) == (200, "ok")
    (post,) = slack.webhook_posts
    assert post.payload == {"text": "SLA breached", "blocks": blocks}
    assert (post.channel, post.status) == (SUPPORT, 200)
    assert post.headers["content-type"] == "application/json;charset=utf-8"
    assert slack.messages == {}


@pytest.mark.parametrize(
    ("target", "payload", "status", "answer"),
    [
        pytest.param("default", {"unfurl_links": False}, 400, "no_text", id="no_text"),
        pytest.param("default", {}, 400, "invalid_payload", id="empty_body_is_json_null"),
        pytest.param(
            "default",
            {"text": "t", "blocks": [section("")]},
            400,
            "invalid_blocks",
            id="invalid_blocks",
        ),
        pytest.param(
            "default",
            {"text": "t", "blocks": "{oops"},
            400,
            "invalid_blocks_format",
            id="invalid_blocks_format",
        ),
        pytest.param("removed", {"text": "t"}, 404, "no_service", id="no_service"),
        pytest.param("C0DELETED1", {"text": "t"}, 404, "channel_not_found", id="channel_not_found"),
        pytest.param(
            "C0OLDTEAM1", {"text": "t"}, 410, "channel_is_archived", id="channel_is_archived"
        ),
    ],
)
def test_webhook_errors_are_plain_text_with_slacks_status(
    slack: FakeSlack, target: str, payload: dict[str, Any], status: int, answer: str
) -> None:
    """A webhook refuses bad payloads and dead destinations with Slack's status and error text."""
    url = {
        "default": slack.webhook_url,
        "removed": f"{slack.url}/services/T000/B999/GONE",
    }.get(target) or slack.add_webhook(target)

    response = WebhookClient(url).send_dict(payload)

    assert (response.status_code, response.body) == (status, answer)
    assert slack.webhook_posts[-1].answer == answer


def test_webhook_block_problems_are_kept_for_the_test(slack: FakeSlack) -> None:
    """Slack only says invalid_blocks to a webhook; the fake keeps what broke in the record."""
    WebhookClient(slack.webhook_url).send(text="t", blocks=[{"type": "video"}])

    assert slack.webhook_posts[0].problems == [
        "unsupported block type: video [json-pointer:/blocks/0/type]"
    ]


def test_webhook_body_that_is_not_json_is_invalid_payload(slack: FakeSlack) -> None:
    """A body that is not a JSON object answers 400 invalid_payload."""
    request = urllib.request.Request(
        slack.webhook_url, data=b"text=hi", headers={"Content-Type": "application/json"}
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert (caught.value.code, caught.value.read()) == (400, b"invalid_payload")


@pytest.mark.parametrize(
    ("kind", "status", "answer"),
    [
        pytest.param("rate_limited", 429, "rate_limited", id="rate_limited"),
        pytest.param("server_error", 500, "rollup_error", id="server_error"),
    ],
)
def test_webhook_failures_can_be_injected(
    slack: FakeSlack, kind: Any, status: int, answer: str
) -> None:
    """fail_next(WEBHOOK, ...) fails the next webhook post with Slack's status and text."""
    slack.fail_next(WEBHOOK, kind)
    webhook = WebhookClient(slack.webhook_url, retry_handlers=[])

    failed = webhook.send(text="hi")
    delivered = webhook.send(text="hi")

    assert (failed.status_code, failed.body) == (status, answer)
    assert (delivered.status_code, delivered.body) == (200, "ok")
