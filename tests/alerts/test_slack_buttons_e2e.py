"""End to end: `replyclock run` as a subprocess, its alert buttons pressed through Socket Mode.

The daemon reads a Maildir, alerts to ``FakeSlack`` with the real SlackNotifier and opens its
Socket Mode connection (the real slack-sdk client) to ``FakeSocketMode``; the test presses the
buttons of the messages the daemon really posted, as Slack's ``block_actions`` payloads, and
reads the outcome where a team would: Slack, `status`, `explain` and /metrics. Real time: the
policy's targets are seconds long (first response 2m, warning 1m before due, escalation 20s
after the breach), and the daemon's evaluation job runs every 30 s.

The customers' mail lands after the daemon's first sync (alerts found due by a first sync are
summarized instead).

- Ann asked 125 s before: her breach alert goes out at the next poll; a stranger's
  "No reply needed" is refused; the lead's dismisses the clock, whose escalation (due some
  15 s later) then never comes.
- Bob asked 100 s before: his warning goes out; once his breach is due the lead snoozes him
  1h from Slack, and the evaluation the press sets off finds him breached and sends nothing;
  `replyclock snooze` (next to the daemon) shortens the snooze to 5 s, and once it has run out
  the breach comes in his thread.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import mail
from harness import free_port, wait_for
from harness.service import Service
from servers.fake_slack import DEFAULT_APP_TOKEN, DEFAULT_TOKEN, FakeSlack, SlackMessage
from servers.fake_socket_mode import FakeSocketMode, block_actions

from monitor.alerts.slack import NOT_ALLOWED
from monitor.store import Store

ALERTS = "C0ALERTS01"
LEAD = "U0LEAD0001"
STRANGER = "U0OTHER001"
RULES = """
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 2m}
    warning: 1m
    escalation:
      - after: 20s
"""
BREACH_AFTER = timedelta(seconds=122)  # the 2m target, passed
STANDARD = frozenset({("source", "support"), ("policy", "standard"), ("target", "first_response")})


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


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service(workdir=Path(tempfile.mkdtemp(prefix="replyclock-buttons-")), port=free_port())
    yield svc
    svc.kill()


def start(service: Service, slack: FakeSlack) -> None:
    """The daemon on an empty Maildir, alerting to the fakes, until its first sync is done."""
    maildir = service.workdir / "maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (service.workdir / "slack-token").write_text(DEFAULT_TOKEN + "\n")
    (service.workdir / "slack-app-token").write_text(DEFAULT_APP_TOKEN + "\n")
    service.write(
        f"\n  - {{name: support, type: maildir, path: {maildir}, timestamps: date, "
        "poll_interval: 1s}\n",
        rules=RULES,
        extra=(
            "alerts:\n  slack:\n    token_file: slack-token\n    app_token_file: slack-app-token\n"
            f'    allowed_actors: [{LEAD}]\n    channel: "#sla-alerts"\n'
            f"    base_url: {slack.api_url}\n"
        ),
    )
    service.start()
    assert wait_for(service.ready, timeout=20), service.log_text()


def customers_write(service: Service) -> dict[str, datetime]:
    """Ann asked 125 s ago, Bob 100 s ago (mail arriving after the first sync: live alerts);
    returns when each asked."""
    now = datetime.now(UTC).replace(microsecond=0)
    when = {}
    for n, (name, seconds) in enumerate((("Ann Able", 125), ("Bob Baker", 100)), 1):
        asked = when[name] = now - timedelta(seconds=seconds)
        (
            service.workdir / "maildir" / "cur" / f"{int(asked.timestamp())}.q{n}.test:2,S"
        ).write_bytes(
            mail(
                sender=f"{name} <{name.split()[0].lower()}@customer.example>",
                subject=f"Private matter {n}",
                message_id=f"q{n}@customer.example",
                date=asked,
            )
        )
    return when


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """A `replyclock` command on the daemon's config, next to the running daemon."""
    return subprocess.run(
        [sys.executable, "-m", "monitor", args[0], "-c", str(service.config), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def root(slack: FakeSlack, customer: str) -> SlackMessage:
    """The first alert about a customer in #sla-alerts."""
    [message] = [
        m
        for m in slack.messages.get(ALERTS, [])
        if m.thread_ts is None and customer in (m.edits[0].text if m.edits else m.text or "")
    ]
    return message


def press(socket_mode: FakeSocketMode, message: SlackMessage, action_id: str, user: str) -> None:
    envelope = socket_mode.send_interactive(
        block_actions(message, action_id, user_id=user, user_name="ann" if user == LEAD else "x")
    )
    assert socket_mode.wait_acked(envelope) < 3.0


def stored_actions(service: Service) -> int:
    with Store.open(service.db, readonly=True) as store:
        return int(store.conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0])


def breached_now(service: Service) -> float:
    labels = frozenset({("source", "support"), ("policy", "standard"), ("state", "breached")})
    return service.metrics().get(("replyclock_awaiting_reply", labels), -1)


def test_the_buttons_dismiss_and_snooze_a_running_daemons_clocks(
    service: Service, slack: FakeSlack, socket_mode: FakeSocketMode
) -> None:
    """Breach and warning reach Slack with their buttons; a stranger is refused; the lead's
    "No reply needed" stops Ann's clock (Slack edit, status, explain, metric) and her
    escalation never comes; "Snooze 1h" holds Bob's breach until `replyclock snooze` cuts the
    snooze short, and then it comes in his thread. Every envelope is acknowledged in 3 s."""
    start(service, slack)
    socket_mode.wait_connected(1, timeout=20)
    asked = customers_write(service)
    assert wait_for(lambda: len(slack.messages.get(ALERTS, [])) == 2, timeout=20), (
        service.log_text(),
        slack.calls,
    )
    ann, bob = root(slack, "Ann Able"), root(slack, "Bob Baker")
    assert (ann.text or "").startswith("SLA breached: Ann Able")
    assert (bob.text or "").startswith("Bob Baker (customer.example) has waited")

    # A stranger: told they may not, and nothing changes.
    press(socket_mode, ann, "replyclock_dismiss", STRANGER)
    assert wait_for(lambda: slack.ephemerals)
    assert [(e.user, e.channel, e.text) for e in slack.ephemerals] == [
        (STRANGER, ALERTS, NOT_ALLOWED)
    ]
    assert stored_actions(service) == 0
    assert ann.edits == []
    assert "ann@customer.example" in cli(service, "status").stdout

    # The lead: Ann's clock is dismissed, and the alert says by whom.
    press(socket_mode, ann, "replyclock_dismiss", LEAD)
    assert wait_for(lambda: ann.edits, timeout=15), service.log_text()
    assert (ann.edits[-1].text or "").startswith("Dismissed by ann: no reply needed (")
    assert wait_for(
        lambda: service.metrics().get(("replyclock_dismissed_total", STANDARD)) == 1, timeout=15
    )
    status = cli(service, "status")
    explain = cli(service, "explain", "<q1@customer.example>")
    assert "ann@customer.example" not in status.stdout
    assert "bob@customer.example" in status.stdout
    assert "dismiss   ann (Slack U0LEAD0001): no reply needed" in explain.stdout
    assert "dismissed by ann (Slack U0LEAD0001), no reply needed" in explain.stdout

    # Bob, once his breach is due: snoozed for an hour from Slack. The evaluation that follows
    # the press measures him breached (the metric says so), and no alert goes out.
    assert wait_for(lambda: datetime.now(UTC) > asked["Bob Baker"] + BREACH_AFTER, timeout=40)
    press(socket_mode, bob, "replyclock_snooze_1h", LEAD)
    assert wait_for(lambda: bob.edits, timeout=15)
    assert (bob.edits[-1].text or "").startswith("Snoozed by ann until ")
    assert wait_for(lambda: breached_now(service) == 1, timeout=15), service.log_text()
    assert "breached, snoozed until" in cli(service, "status").stdout
    assert not wait_for(lambda: len(slack.calls_to("chat.postMessage")) > 2, timeout=4)

    # `replyclock snooze` next to the daemon cuts it to 5 s: once it has run out, the breach
    # comes in Bob's thread; nothing more ever comes for Ann (her escalation fell due at 16 s).
    shortened = cli(service, "snooze", "<q2@customer.example>", "5s", "--reason", "call back")
    assert shortened.returncode == 0, shortened.stderr
    assert "the running daemon takes it in" in shortened.stdout
    assert wait_for(lambda: slack.replies(ALERTS, bob.ts), timeout=30), service.log_text()
    assert (slack.replies(ALERTS, bob.ts)[0].text or "").startswith(
        "SLA breached: Bob Baker (customer.example)"
    )
    posts = slack.calls_to("chat.postMessage")
    assert [c.args.get("thread_ts") for c in posts[2:]] == [bob.ts] * (len(posts) - 2)
    assert slack.replies(ALERTS, ann.ts) == []

    assert socket_mode.late_acks() == []
    assert socket_mode.problems == []
    code, _ = service.stop()
    assert code == 0
    logs = "\n".join(service.logs)
    assert DEFAULT_TOKEN not in logs
    assert DEFAULT_APP_TOKEN not in logs
    everything = str([(m.text, m.blocks, m.edits) for m in slack.messages[ALERTS]])
    assert "ann@customer.example" not in everything
    assert "Private matter" not in everything
