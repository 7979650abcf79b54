"""How the daemon watches itself: store health per job, and poll lag, each said once."""

from __future__ import annotations

import logging

import pytest

from monitor.errors import StoreCorruptError, StoreUnavailableError
from monitor.polling import FailureLog
from monitor.sources.probe import Platform
from monitor.supervision import LAG_WARNING_S, PollLag, RepliesWatch, StoreHealth

FULL = StoreUnavailableError("/s.db", "disk full", "the disk holding the store /s.db is full")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_a_passing_failure_is_logged_once_and_healed_by_the_job_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full disk seen by a poll stays a failure while other jobs write fine (a small write
    may still fit); only that poll's next success ends it, and each change is logged once."""
    caplog.set_level(logging.INFO, logger="replyclock.daemon")
    health = StoreHealth()
    health.failed("poll:support", FULL)
    health.failed("poll:support", FULL)
    health.succeeded("evaluate")
    assert (health.ok, health.usable) == (False, True)
    assert health.reason() == "disk full: the disk holding the store /s.db is full"
    health.succeeded("poll:support")
    assert (health.ok, health.reason()) == (True, None)
    assert messages(caplog) == [
        "store write failed; retrying, nothing is lost",
        "store writable again",
    ]


def test_a_fatal_failure_stops_writing_for_good(caplog: pytest.LogCaptureFixture) -> None:
    """A damaged store makes the store unusable; later successes and failures change nothing
    and are not logged again."""
    caplog.set_level(logging.INFO, logger="replyclock.daemon")
    health = StoreHealth()
    health.failed("evaluate", StoreCorruptError("/s.db", "database disk image is malformed"))
    health.failed("poll:a", FULL)
    health.succeeded("evaluate")
    assert (health.ok, health.usable) == (False, False)
    assert health.reason() is not None
    assert health.reason().startswith("store damaged: the store /s.db is damaged")
    assert messages(caplog) == ["store unusable; replyclock stopped writing"]


def test_poll_lag_is_how_late_the_most_overdue_poll_is() -> None:
    """A source whose poll has not started by its due time lags by the difference; a poll
    under way keeps the lag it started with; a poll on time lags 0."""
    lag = PollLag(now=0)
    lag.track(["a", "b"], now=0)
    lag.begin("a", now=0)
    lag.end("a", next_due=60)
    lag.begin("b", now=5)  # started 5 s late
    assert lag.lag(now=50) == (5.0, 0)
    lag.end("b", next_due=65)
    assert lag.lag(now=100) == (40.0, 2)  # a due at 60, b at 65: 40 and 35 s late
    lag.begin("a", now=100)
    lag.end("a", next_due=160)
    lag.wanted_now("b", now=70)  # mail was signalled at 70; b was due at 65 already
    assert lag.lag(now=100) == (35.0, 1)


def test_falling_behind_is_logged_once_and_so_is_catching_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Polls later than the warning threshold log one warning naming the fix; staying late
    logs nothing more; catching up logs once."""
    caplog.set_level(logging.INFO, logger="replyclock.daemon")
    lag = PollLag(now=0)
    lag.track(["a"], now=0)
    assert lag.check(now=LAG_WARNING_S + 1) == LAG_WARNING_S + 1
    lag.check(now=LAG_WARNING_S + 20)
    lag.begin("a", now=LAG_WARNING_S + 30)
    lag.end("a", next_due=LAG_WARNING_S + 90)
    assert lag.check(now=LAG_WARNING_S + 31) == 0
    assert messages(caplog) == [
        "polls are falling behind: replyclock cannot poll every source at its interval",
        "polls caught up",
    ]
    assert caplog.records[0].replyclock_fields["fix"].startswith("raise poll_interval")  # type: ignore[attr-defined]


def test_sources_removed_by_a_reload_are_no_longer_tracked() -> None:
    """After a reload drops a source, its lag and its store failure are forgotten."""
    lag = PollLag(now=0)
    lag.track(["a", "gone"], now=0)
    lag.track(["a"], now=100)
    assert lag.lag(now=100) == (100.0, 1)  # only a, due since 0
    health = StoreHealth()
    health.failed("poll:gone", FULL)
    health.forget(["poll:gone"])
    assert health.ok


def test_missing_replies_are_said_once_a_day_and_when_they_are_seen_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Customer mail and no team message: a warning with the platform's fix, repeated a day
    later while it holds, and one line once replies show up; the gauge follows."""
    caplog.set_level(logging.INFO, logger="replyclock.daemon")
    watch = RepliesWatch()
    mailboxes: dict[str, tuple[Platform, str]] = {
        "shared": ("exchange", "support@acme.example"),
        "fine": ("other", "help@acme.example"),
    }
    watch.update({"shared": (12, 0), "fine": (3, 2)}, mailboxes, now=1000.0)
    assert watch.missing() == (("fine", False), ("shared", True))
    watch.update({"shared": (14, 0)}, mailboxes, now=1000.0 + 3600)  # an hour later: quiet
    watch.update({"shared": (15, 0)}, mailboxes, now=1000.0 + 86400)  # a day later: again
    watch.update({"shared": (15, 1)}, mailboxes, now=1000.0 + 86400 + 600)
    assert watch.missing() == (("fine", False), ("shared", False))
    records = [r for r in caplog.records if r.name == "replyclock.daemon"]
    assert [r.getMessage() for r in records] == [
        "replies missing",
        "replies missing",
        "replies seen again",
    ]
    hint = records[0].__dict__["replyclock_fields"]["hint"]
    assert hint.startswith("12 customer messages in the last 7 days but no team message")
    assert "Set-Mailbox -Identity support@acme.example -MessageCopyForSentAsEnabled $true" in hint
    watch.update({}, {"fine": mailboxes["fine"]}, now=1000.0 + 90000)  # "shared" removed
    assert watch.missing() == (("fine", False),)


def test_a_failing_source_is_said_once_counted_and_said_again_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same error three polls in a row: one error line, then debug lines; the count the
    backoff follows is 3; the next good poll says it recovered and resets the count."""
    caplog.set_level(logging.DEBUG, logger="replyclock.poll")
    failures = FailureLog()
    for _ in range(3):
        failures.failed("support", "cannot connect to imap.example:993")
    assert failures.failing("support") == 3
    failures.succeeded("support")
    assert failures.failing("support") == 0
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "source poll failed"),
        ("DEBUG", "source still failing"),
        ("DEBUG", "source still failing"),
        ("INFO", "source recovered"),
    ]
