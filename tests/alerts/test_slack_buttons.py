"""The alert buttons over Socket Mode: slack-sdk's real SocketModeClient against the fakes.

``FakeSlack`` serves the Web API (``apps.connections.open`` with the app-level token,
``chat.postEphemeral`` and ``usergroups.users.list`` with the bot token) and ``FakeSocketMode``
the WebSocket: hello, ``interactive`` envelopes carrying the ``block_actions`` Slack sends for a
pressed button of a message the real ``SlackNotifier`` posted, and ``disconnect`` requests.
Every envelope must be acknowledged within 3 seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import wait_for
from servers.fake_slack import DEFAULT_APP_TOKEN, DEFAULT_TOKEN, FakeSlack, SlackMessage
from servers.fake_socket_mode import LARGE_BLOCK_ACTIONS, FakeSocketMode, block_actions

from monitor.alerts.content import AlertContent
from monitor.alerts.slack import NOT_ALLOWED, ActionClick, SlackActions, SlackNotifier, clicks_in

ALERTS = "C0ALERTS01"
LEAD = "U0LEAD0001"
STRANGER = "U0OTHER001"
LEADS_GROUP = "S0LEADS001"
KEY = "7:first_response:1794819600"
JAVA_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "slack-java-samples"


class Recorder:
    """``on_click``: keeps each click and answers what the test says."""

    def __init__(self, answer: str | None = None) -> None:
        self.clicks: list[ActionClick] = []
        self.answer = answer
        self.lock = threading.Lock()

    def __call__(self, click: ActionClick) -> str | None:
        with self.lock:
            self.clicks.append(click)
        return self.answer


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_user(LEAD)
        fake.add_user(STRANGER)
        yield fake


@pytest.fixture
def socket_mode(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake.attach(slack)


def alert(slack: FakeSlack) -> SlackMessage:
    """A breach alert with its buttons, posted by the real notifier to #sla-alerts."""
    content = AlertContent(
        kind="breach",
        title=":rotating_light: SLA breached: Ann (customer.example) has waited 1h05m",
        fallback="SLA breached: Ann (customer.example) has waited 1h05m",
        facts=(("Policy", "standard"),),
        clock_key=KEY,
    )
    posted = SlackNotifier(DEFAULT_TOKEN, slack.api_url).post("#sla-alerts", content, None)
    return slack.message(posted.channel_id, posted.ts)


def actions(slack: FakeSlack, on_click: Recorder, allowed: list[str] | None = None) -> SlackActions:
    return SlackActions(
        app_token=DEFAULT_APP_TOKEN,
        bot_token=DEFAULT_TOKEN,
        base_url=slack.api_url,
        allowed=lambda: allowed if allowed is not None else [LEAD],
        on_click=on_click,
    )


@pytest.fixture
def running(
    slack: FakeSlack, socket_mode: FakeSocketMode
) -> Iterator[tuple[SlackActions, Recorder]]:
    recorder = Recorder()
    client = actions(slack, recorder)
    client.start()
    socket_mode.wait_connected(1)
    yield client, recorder
    client.close()


def press(socket_mode: FakeSocketMode, message: SlackMessage, action_id: str, user: str) -> str:
    return socket_mode.send_interactive(
        block_actions(message, action_id, user_id=user, user_name=user.lower())
    )


@pytest.mark.parametrize(
    ("action_id", "action", "seconds"),
    [
        pytest.param("replyclock_dismiss", "dismiss", None, id="no_reply_needed"),
        pytest.param("replyclock_snooze_1h", "snooze", 3600, id="snooze_1h"),
        pytest.param("replyclock_snooze_4h", "snooze", 14400, id="snooze_4h"),
    ],
)
def test_a_pressed_button_reaches_on_click_acknowledged_first(
    slack: FakeSlack,
    socket_mode: FakeSocketMode,
    running: tuple[SlackActions, Recorder],
    action_id: str,
    action: str,
    seconds: int | None,
) -> None:
    """An allowed lead's press arrives as a click naming the clock (the button's value), the
    lead and the message; its envelope is acknowledged within 3 s; nothing ephemeral is sent."""
    _, recorder = running
    message = alert(slack)

    payload = block_actions(message, action_id, user_id=LEAD, user_name="u0lead0001")
    envelope = socket_mode.send_interactive(payload)

    assert socket_mode.wait_acked(envelope) < 3.0
    assert wait_for(lambda: recorder.clicks)
    assert recorder.clicks == [
        ActionClick(
            action=action,
            clock_key=KEY,
            snooze_seconds=seconds,
            user_id=LEAD,
            user_name="u0lead0001",
            channel_id=ALERTS,
            message_ts=message.ts,
            action_ts=payload["actions"][0]["action_ts"],
        )
    ]
    assert slack.ephemerals == []
    assert socket_mode.late_acks() == []
    assert socket_mode.problems == []


def test_the_socket_is_opened_with_the_app_token_only(
    slack: FakeSlack, socket_mode: FakeSocketMode, running: tuple[SlackActions, Recorder]
) -> None:
    """apps.connections.open carries the app-level token, never the bot token, and its ws://
    URL's ticket opens exactly one connection, which Slack greets with hello."""
    [opened] = slack.calls_to("apps.connections.open")
    assert opened.headers["authorization"] == f"Bearer {DEFAULT_APP_TOKEN}"
    assert DEFAULT_TOKEN not in json.dumps(opened.headers) + opened.body.decode()
    assert opened.response["url"].startswith("ws://127.0.0.1:")
    sample = json.loads((JAVA_SAMPLES / "api__apps.connections.open.json").read_text())
    assert set(opened.response) <= set(sample)
    assert [c.ticket in opened.response["url"] for c in socket_mode.connections] == [True]


def test_someone_not_allowed_is_told_so_and_nothing_happens(
    slack: FakeSlack, socket_mode: FakeSocketMode, running: tuple[SlackActions, Recorder]
) -> None:
    """A press by someone outside allowed_actors is acknowledged, never reaches on_click, and
    earns that person alone an ephemeral "not allowed" in the alert's channel."""
    _, recorder = running
    message = alert(slack)

    envelope = press(socket_mode, message, "replyclock_dismiss", STRANGER)

    assert socket_mode.wait_acked(envelope) < 3.0
    assert wait_for(lambda: slack.ephemerals)
    [note] = slack.ephemerals
    assert (note.channel, note.user, note.text) == (ALERTS, STRANGER, NOT_ALLOWED)
    assert recorder.clicks == []


def test_members_of_an_allowed_user_group_may_act(
    slack: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    """With a user group in allowed_actors, its members (read with usergroups.users.list,
    once for several presses) may act and others may not."""
    slack.add_usergroup(LEADS_GROUP, [LEAD])
    recorder = Recorder()
    client = actions(slack, recorder, allowed=[LEADS_GROUP])
    client.start()
    try:
        socket_mode.wait_connected(1)
        message = alert(slack)
        for user in (LEAD, STRANGER, LEAD):
            socket_mode.wait_acked(press(socket_mode, message, "replyclock_snooze_1h", user))
        assert wait_for(lambda: len(recorder.clicks) == 2 and slack.ephemerals)
    finally:
        client.close()

    assert [c.user_id for c in recorder.clicks] == [LEAD, LEAD]
    assert [(e.user, e.text) for e in slack.ephemerals] == [(STRANGER, NOT_ALLOWED)]
    assert len(slack.calls_to("usergroups.users.list")) == 1


def test_why_nothing_was_done_is_told_to_the_one_who_pressed(
    slack: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    """When on_click answers a sentence (the wait is over already), the lead gets it as an
    ephemeral message."""
    recorder = Recorder(answer="Nothing done: the customer was answered.")
    client = actions(slack, recorder)
    client.start()
    try:
        socket_mode.wait_connected(1)
        press(socket_mode, alert(slack), "replyclock_dismiss", LEAD)
        assert wait_for(lambda: slack.ephemerals)
    finally:
        client.close()

    assert [(e.user, e.text) for e in slack.ephemerals] == [
        (LEAD, "Nothing done: the customer was answered.")
    ]


@pytest.mark.parametrize("reason", ["refresh_requested", "too_many_websockets"])
def test_the_client_reconnects_when_slack_asks_and_goes_on_working(
    slack: FakeSlack,
    socket_mode: FakeSocketMode,
    running: tuple[SlackActions, Recorder],
    reason: str,
) -> None:
    """A disconnect message (refresh_requested, or python-slack-sdk's too_many_websockets
    frame verbatim) makes the client fetch a new URL and connect again; once it has let go of
    the old connection, a press on the new one is acknowledged within 3 s and handled.

    (slack-sdk's built-in client reads the new connection only when its reader leaves the old
    one, which can take its 3 s read timeout: see the next test for a press in that gap.)"""
    _, recorder = running
    message = alert(slack)

    socket_mode.disconnect(reason)
    socket_mode.wait_connected(2)
    assert wait_for(lambda: not socket_mode.connections[0].open)
    envelope = press(socket_mode, message, "replyclock_dismiss", LEAD)

    assert socket_mode.wait_acked(envelope) < 3.0
    assert wait_for(lambda: recorder.clicks)
    assert len(slack.calls_to("apps.connections.open")) == 2
    assert [c.number for c in socket_mode.connections] == [1, 2]
    assert socket_mode.late_acks() == []
    assert socket_mode.problems == []


def test_a_press_slack_sends_again_is_handled_once(
    slack: FakeSlack, socket_mode: FakeSocketMode, running: tuple[SlackActions, Recorder]
) -> None:
    """A press sent while the client switches connections, then sent again in a new envelope
    (as Slack re-sends what was not acknowledged in 3 s): both envelopes are acknowledged, the
    press reaches on_click once."""
    _, recorder = running
    payload = block_actions(alert(slack), "replyclock_dismiss", user_id=LEAD, user_name="ann")

    socket_mode.disconnect("refresh_requested")
    socket_mode.wait_connected(2)
    first = socket_mode.send_interactive(payload)
    socket_mode.wait_acked(first, timeout=10)
    again = socket_mode.send_interactive(payload)

    assert socket_mode.wait_acked(again) < 3.0
    assert wait_for(lambda: recorder.clicks)
    assert not wait_for(lambda: len(recorder.clicks) > 1, timeout=0.5)
    assert socket_mode.problems == []


def test_other_interactions_are_acknowledged_and_ignored(
    slack: FakeSlack, socket_mode: FakeSocketMode, running: tuple[SlackActions, Recorder]
) -> None:
    """python-slack-sdk's 67 KB block_actions envelope from a modal (a static_select, not our
    button) is acknowledged in time and does nothing."""
    _, recorder = running

    envelope = socket_mode.send_raw(LARGE_BLOCK_ACTIONS)

    assert envelope is not None
    assert socket_mode.wait_acked(envelope) < 3.0
    assert recorder.clicks == []
    assert slack.ephemerals == []


def test_payload_fields_are_slacks_own() -> None:
    """The block_actions payload the fake builds uses only fields of Slack's published shape
    (java-slack-sdk's all-fields BlockActionPayload sample), and ``clicks_in`` reads it."""
    sample = json.loads(
        (JAVA_SAMPLES / "app-backend__interactive-components__BlockActionPayload.json").read_text()
    )
    message = SlackMessage(
        channel=ALERTS,
        ts="1700000000.000100",
        text="x",
        user="U0BOT00001",
        time=0.0,
        blocks=[
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Snooze 4h"},
                        "action_id": "replyclock_snooze_4h",
                        "value": KEY,
                    }
                ],
            }
        ],
    )

    payload = block_actions(message, "replyclock_snooze_4h", user_id=LEAD, user_name="ann")

    assert set(payload) <= set(sample)
    assert set(payload["container"]) <= set(sample["container"])
    assert set(payload["user"]) <= set(sample["user"])
    assert set(payload["actions"][0]) <= set(sample["actions"][0])
    [click] = clicks_in(payload)
    assert (click.action, click.clock_key, click.snooze_seconds) == ("snooze", KEY, 14400)


def test_a_wrong_app_token_is_logged_with_the_fix_and_no_secret(
    slack: FakeSlack, socket_mode: FakeSocketMode, caplog: pytest.LogCaptureFixture
) -> None:
    """An app token Slack does not know: the connection fails with invalid_auth, logged once
    per try with what to fix; neither token appears in any log record."""
    caplog.set_level(logging.DEBUG)
    wrong = "xapp-1-A0APP00001-9999999999-revoked"
    client = SlackActions(
        app_token=wrong,
        bot_token=DEFAULT_TOKEN,
        base_url=slack.api_url,
        allowed=lambda: [LEAD],
        on_click=Recorder(),
    )
    client.start()
    try:
        assert wait_for(lambda: "slack buttons not connected" in caplog.text)
    finally:
        client.close()

    [record] = [r for r in caplog.records if r.getMessage() == "slack buttons not connected"]
    values = record.__dict__["replyclock_fields"]
    assert (values["error"], values["fix"]) == (
        "invalid_auth",
        "check alerts.slack.app_token: it must be an app-level token (xapp-...)",
    )
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert wrong not in logged
    assert DEFAULT_TOKEN not in logged
    assert socket_mode.connections == []


def test_no_secret_is_logged_while_connected(
    slack: FakeSlack, socket_mode: FakeSocketMode, caplog: pytest.LogCaptureFixture
) -> None:
    """Connecting, a press, an ephemeral and a reconnect log neither token (slack-sdk logs
    included, at debug level)."""
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    client = actions(slack, recorder)
    client.start()
    try:
        socket_mode.wait_connected(1)
        message = alert(slack)
        press(socket_mode, message, "replyclock_dismiss", STRANGER)
        socket_mode.disconnect("refresh_requested")
        socket_mode.wait_connected(2)
        press(socket_mode, message, "replyclock_dismiss", LEAD)
        assert wait_for(lambda: recorder.clicks and slack.ephemerals)
    finally:
        client.close()

    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "slack buttons connected" in logged
    assert DEFAULT_APP_TOKEN not in logged
    assert DEFAULT_TOKEN not in logged
