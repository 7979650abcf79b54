"""Slack misbehaves while alerts fall due: connections refused, 500s, 429s, then it is back.
The running daemon delivers every alert exactly once, each Slack thread in stage order, and a
stage made untrue meanwhile (a warning once its breach is due) is not sent at all."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness import wait_for
from harness.mailbox import ask_question
from harness.service import Service, imap_source
from servers.dovecot import DovecotServer, ImapUser
from servers.fake_slack import DEFAULT_TOKEN, FakeSlack, SlackMessage

pytestmark = pytest.mark.imap

ALERTS = "C0ALERTS01"  # #sla-alerts
# Seconds, so the whole life of a clock fits in a test: warning at 15 s, breach after 30 s,
# escalation 20 s after that.
FAST = """
policies:
  - name: standard
    calendar: 24x7
    targets: {first_response: 30s}
    warning: 15s
    escalation:
      - after: 20s
"""
RANK = {"warning": 0, "breach": 1, "escalation-1": 2}


def stage_of(text: str | None) -> str:
    text = text or ""
    if "Escalation 1" in text:
        return "escalation-1"
    if "SLA breached" in text:
        return "breach"
    return "warning"


def threads(slack: FakeSlack) -> dict[str, list[str]]:
    """Each conversation's Slack thread as the list of stages posted in it, in order."""
    messages = [m for m in slack.messages.get(ALERTS, []) if m.by_bot]
    roots: dict[str, SlackMessage] = {m.ts: m for m in messages if m.thread_ts is None}
    found: dict[str, list[str]] = {}
    for root in roots.values():
        who = (root.text or "").split(" has waited")[0].split(": ")[-1]
        replies = sorted(
            (m for m in messages if m.thread_ts == root.ts), key=lambda m: (m.time, m.ts)
        )
        found[who] = [stage_of(root.text), *(stage_of(m.text) for m in replies)]
    return found


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def test_alerts_survive_a_slack_outage_once_each_and_in_order(
    dovecot: DovecotServer, imap_user: ImapUser, service: Service, slack: FakeSlack
) -> None:
    """Three customers wait while Slack refuses connections, then answers 500 and 429, then
    recovers: every breach and escalation reaches Slack exactly once, each thread opens on its
    lowest stage still true and never goes back to a lower one, no failure is counted (all
    were temporary), and the channel was not retried every round."""
    service.write(
        imap_source("support", imap_user, poll="2s"),
        rules=FAST,
        extra=(
            f'alerts:\n  slack: {{token: {DEFAULT_TOKEN}, channel: "#sla-alerts", '
            f"base_url: {slack.api_url!r}}}\n"
        ),
    )
    service.start()
    assert wait_for(service.ready, timeout=30)
    for n in range(3):
        ask_question(dovecot, imap_user, f"q{n}", sender=f"Customer {n} <c{n}@shop{n}.example>")
        time.sleep(4)  # staggered, so the outage catches each clock at another stage
    slack.refuse_connections()
    time.sleep(20)  # warnings and first breaches fall due and fail
    refused = len(slack.calls)
    for _ in range(2):
        slack.fail_next("chat.postMessage", "server_error")
    for _ in range(3):
        slack.fail_next("chat.postMessage", "rate_limited", retry_after=1)
    slack.accept_connections()
    everything = {f"Customer {n} (shop{n}.example)": ["breach", "escalation-1"] for n in range(3)}

    def delivered() -> bool:
        got = threads(slack)
        return all(
            all(stage in got.get(who, []) for stage in stages) for who, stages in everything.items()
        )

    assert wait_for(delivered, timeout=120, step=0.5), threads(slack)
    time.sleep(4)  # nothing more may follow
    got = threads(slack)
    metrics = service.metrics()
    service.stop()
    assert refused == 0  # nothing got through during the outage
    for who, stages in got.items():
        assert len(stages) == len(set(stages)), (who, stages)  # each stage once
        assert [RANK[s] for s in stages] == sorted(RANK[s] for s in stages), (who, stages)
        assert stages[-2:] == ["breach", "escalation-1"], (who, stages)
    assert set(got) == set(everything)
    failures = sum(v for (n, _), v in metrics.items() if n.endswith("delivery_failures_total"))
    assert failures == 0
    posts = slack.calls_to("chat.postMessage")
    # Backoff: far fewer tries than one per 2-second delivery round over the run.
    assert len(posts) < 30, len(posts)
    assert "Traceback" not in service.logs[-1]
