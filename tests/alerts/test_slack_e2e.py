"""End to end: mail in a real Dovecot, `replyclock run --once` three times, the fake Slack.

A customer's message waits in the IMAP inbox; each run polls, evaluates, plans and delivers
with the real SlackNotifier against FakeSlack, "now" pinned by patching ``monitor.cli.datetime``
(as tests/test_cli.py does). The whole Slack conversation is asserted: root, thread, edits
(the alerts carry the "No reply needed" / "Snooze" buttons; the answered edit drops them).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import ClassVar

import pytest
from factories import mail
from servers.dovecot import DovecotServer, ImapUser
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack

from monitor import cli
from monitor.alerts.content import AlertContent
from monitor.alerts.slack import blocks_for

pytestmark = pytest.mark.imap

START = datetime.now(UTC).replace(microsecond=0)  # the first run's "now"
ASKED = START - timedelta(minutes=40)  # past the 30m warning, not yet the 1h target
CHANNEL = "C0ALERTS01"  # #sla-alerts

RULES = """\
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 1h}
    warning: 30m
"""


class FrozenDatetime(datetime):
    """``datetime`` whose ``now`` is whatever the test last set: the command line's clock."""

    current: ClassVar[datetime] = START

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        assert tz is UTC, "the command line reads the clock in UTC only"
        return cls.current


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> type[FrozenDatetime]:
    monkeypatch.setattr(cli, "datetime", FrozenDatetime)
    FrozenDatetime.current = START
    return FrozenDatetime


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def write_config(tmp_path: Path, user: ImapUser, slack: FakeSlack) -> Path:
    """A config reading the test user's mailbox and alerting to the fake Slack's #sla-alerts."""
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "slack-token").write_text(DEFAULT_TOKEN + "\n", encoding="utf-8")
    (tmp_path / "imap-password").write_text(user.password, encoding="utf-8")
    config = tmp_path / "replyclock.yaml"
    config.write_text(
        f"""\
store:
  path: var/replyclock.db
team:
  addresses: [support@acme.example]
  domains: [acme.example]
rules:
  - rules.yaml
sources:
  - name: support
    type: imap
    host: {user.host}
    port: {user.port}
    starttls: true
    ca_file: {user.ca_file}
    username: {user.username}
    password_file: imap-password
    timeout: 10s
alerts:
  slack:
    token_file: slack-token
    channel: "#sla-alerts"
    base_url: {slack.api_url}
""",
        encoding="utf-8",
    )
    return config


def test_warning_breach_and_answer_make_one_slack_thread(
    tmp_path: Path,
    dovecot: DovecotServer,
    imap_user: ImapUser,
    slack: FakeSlack,
    frozen: type[FrozenDatetime],
) -> None:
    """Run 1 posts the warning as a root message, run 2 (past the target) the breach in its
    thread, and run 3 (after the team's reply reached Sent) edits the root to say answered, by
    whom and after how long, posting nothing more."""
    config = write_config(tmp_path, imap_user, slack)
    question = mail(
        sender="Ann Example <ann@customer.example>",
        subject="Invoice 2231 is wrong",
        message_id="q1@customer.example",
        date=ASKED,
    )
    dovecot.append(imap_user.username, imap_user.password, "INBOX", question, internaldate=ASKED)
    run = ["run", "-c", str(config), "--once"]

    first = cli.main(run)
    warning_calls = len(slack.calls_to("chat.postMessage"))

    frozen.current = START + timedelta(minutes=25)
    second = cli.main(run)

    answered_at = START + timedelta(minutes=30)
    reply = mail(
        sender="Acme Support <support@acme.example>",
        to="Ann Example <ann@customer.example>",
        subject="Re: Invoice 2231 is wrong",
        message_id="r1@acme.example",
        date=answered_at,
        in_reply_to="q1@customer.example",
        references="<q1@customer.example>",
    )
    dovecot.append(imap_user.username, imap_user.password, "Sent", reply, internaldate=answered_at)
    frozen.current = START + timedelta(minutes=35)
    third = cli.main(run)

    assert (first, second, third) == (0, 0, 0)
    assert warning_calls == 1
    due = (ASKED + timedelta(hours=1)).strftime("%a %d %b %H:%M UTC")
    who = "Ann Example (customer.example)"
    facts = (("Policy", "standard"), ("Due", due), ("Mailbox", "support / INBOX"))
    key = f"1:first_response:{int(ASKED.timestamp())}"  # the buttons' value: the clock
    warning = AlertContent(
        kind="warning",
        title=f":warning: {who} has waited 40m for a first reply: due in 20m",
        fallback=f"{who} has waited 40m for a first reply: due in 20m "
        f"(policy standard, target 1h00m, due {due})",
        facts=(facts[0], ("Waited (business time)", "40m of 1h00m"), *facts[1:]),
        clock_key=key,
    )
    breach = AlertContent(
        kind="breach",
        title=f":rotating_light: SLA breached: {who} has waited 1h05m for a first reply",
        fallback=f"SLA breached: {who} has waited 1h05m for a first reply "
        f"(policy standard, target 1h00m, due {due})",
        facts=(facts[0], ("Waited (business time)", "1h05m of 1h00m"), *facts[1:]),
        clock_key=key,
    )
    done = "Answered by Acme Support after 1h10m (late)"
    answered = AlertContent(
        kind="answered",
        title=f":white_check_mark: {done}",
        fallback=f"{done}. Was: {warning.fallback}",
        facts=warning.facts,
        note=f"was: {warning.title}",
    )

    root, thread_reply = slack.messages[CHANNEL]
    assert list(slack.messages) == [CHANNEL]
    assert (root.thread_ts, root.text, root.blocks) == (
        None,
        answered.fallback,
        blocks_for(answered),
    )
    assert [(e.text, e.blocks) for e in root.edits] == [(answered.fallback, blocks_for(answered))]
    assert (thread_reply.thread_ts, thread_reply.text, thread_reply.blocks) == (
        root.ts,
        breach.fallback,
        blocks_for(breach),
    )
    posts = slack.calls_to("chat.postMessage")
    assert [(c.args["channel"], c.args.get("thread_ts"), c.args["text"]) for c in posts] == [
        ("#sla-alerts", None, warning.fallback),
        (CHANNEL, root.ts, breach.fallback),
    ]
    assert posts[0].args["blocks"] == blocks_for(warning)
    [update] = slack.calls_to("chat.update")
    assert (update.args["channel"], update.args["ts"], update.args["text"]) == (
        CHANNEL,
        root.ts,
        answered.fallback,
    )
    assert [c.method for c in slack.calls] == [
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
    ]
    everything = f"{[(m.text, m.blocks) for m in slack.messages[CHANNEL]]}{root.edits}"
    assert "ann@customer.example" not in everything
    assert "Invoice 2231" not in everything
