"""The IMAP source against a real Dovecot: read-only, incremental, and clear when it fails."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import mail
from servers.dovecot import DovecotServer, ImapUser

from monitor.config.models import ImapSourceConfig
from monitor.errors import SourceAuthError, SourceError
from monitor.mail.classify import MailboxIdentity
from monitor.polling import poll_source
from monitor.sla.clocks import ClockMessage, StopReason, segment_clocks
from monitor.sources.imap import ImapSource, uid_batches
from monitor.store import SourceSink, Store

pytestmark = pytest.mark.imap

NOW = datetime.now(UTC).replace(microsecond=0)
TEAM = MailboxIdentity(
    team_addresses=frozenset({"support@acme.example"}), team_domains=frozenset({"acme.example"})
)


def source_config(user: ImapUser, **overrides: Any) -> ImapSourceConfig:
    values: dict[str, Any] = {
        "type": "imap",
        "name": "support",
        "host": user.host,
        "port": user.port,
        "starttls": True,
        "ca_file": user.ca_file,
        "username": user.username,
        "password": user.password,
        "timeout": "10s",
    }
    values.update(overrides)
    return ImapSourceConfig.model_validate(values)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def poll(source: ImapSource, store: Store, now: datetime = NOW) -> Any:
    return source.poll(SourceSink(store, source.name), now)


def customer_mail(n: int, minutes_ago: int, **kw: Any) -> bytes:
    return mail(
        sender=f"Customer {n} <c{n}@customer.example>",
        subject=kw.pop("subject", f"Question {n}"),
        message_id=f"q{n}@customer.example",
        date=NOW - timedelta(minutes=minutes_ago),
        **kw,
    )


def append(
    dovecot: DovecotServer,
    user: ImapUser,
    folder: str,
    message: bytes,
    minutes_ago: int,
    flags: tuple[str, ...] = (),
) -> int:
    return dovecot.append(
        user.username,
        user.password,
        folder,
        message,
        internaldate=NOW - timedelta(minutes=minutes_ago),
        flags=flags,
    )


def all_flags(dovecot: DovecotServer, user: ImapUser) -> dict[tuple[str, int], tuple[bytes, ...]]:
    flags = {}
    with dovecot.session(user.username, user.password) as client:
        for folder in ("INBOX", "Sent"):
            client.select_folder(folder, readonly=True)
            for uid, item in client.fetch(client.search("ALL"), ["FLAGS"]).items():
                # \Recent is session state, not a stored flag: leave it out of the comparison.
                flags[(folder, uid)] = tuple(sorted(f for f in item[b"FLAGS"] if f != b"\\Recent"))
    return flags


def test_first_sync_classifies_threads_and_times_messages(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Inbox mail and Sent replies become one conversation, timed by INTERNALDATE."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 120), 118)
    reply = mail(
        sender="Support <support@acme.example>",
        to="c1@customer.example",
        subject="Re: Question 1",
        message_id="r1@acme.example",
        date=NOW - timedelta(minutes=60),
        in_reply_to="q1@customer.example",
        references="<q1@customer.example>",
    )
    append(dovecot, imap_user, "Sent", reply, 59)
    append(dovecot, imap_user, "INBOX", customer_mail(2, 30), 30)
    source = ImapSource(source_config(imap_user), TEAM)
    report = poll(source, store)
    source.close()
    assert (report.new, report.folders) == (3, {"INBOX": 2, "Sent": 1})
    rows = store.conn.execute(
        "SELECT identity, direction, timestamp, folder, conversation_id FROM messages "
        "ORDER BY timestamp"
    ).fetchall()
    received_q1 = int((NOW - timedelta(minutes=118)).timestamp())
    sent_r1 = int((NOW - timedelta(minutes=60)).timestamp())  # the Sent copy uses its Date header
    assert [r[:4] for r in rows] == [
        ("q1@customer.example", "inbound", received_q1, "INBOX"),
        ("r1@acme.example", "outbound", sent_r1, "Sent"),
        ("q2@customer.example", "inbound", int((NOW - timedelta(minutes=30)).timestamp()), "INBOX"),
    ]
    assert rows[0][4] == rows[1][4] != rows[2][4]


def test_polls_change_no_flag(dovecot: DovecotServer, imap_user: ImapUser, store: Store) -> None:
    """After several polls every message keeps exactly its flags: no \\Seen, nothing else."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 50), 50)
    append(dovecot, imap_user, "INBOX", customer_mail(2, 40), 40, flags=("\\Flagged",))
    append(dovecot, imap_user, "INBOX", customer_mail(3, 30), 30, flags=("\\Seen", "$Important"))
    append(dovecot, imap_user, "Sent", customer_mail(4, 20), 20, flags=("\\Seen",))
    before = all_flags(dovecot, imap_user)
    source = ImapSource(source_config(imap_user, reconcile_interval="1s"), TEAM)
    poll(source, store)
    poll(source, store, NOW + timedelta(seconds=5))
    append(dovecot, imap_user, "INBOX", customer_mail(5, 1), 1)
    poll(source, store, NOW + timedelta(seconds=10))
    source.close()
    after = all_flags(dovecot, imap_user)
    assert {key: after[key] for key in before} == before
    assert after[("INBOX", 4)] == ()
    assert store.source_counts() == {"support": (5, 5)}


def test_unchanged_folder_costs_one_status_per_folder(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """A poll with nothing new sends one STATUS per folder; new mail fetches only the new UIDs."""
    for n in range(1, 4):
        append(dovecot, imap_user, "INBOX", customer_mail(n, 10 * n), 10 * n)
    source = ImapSource(source_config(imap_user), TEAM)
    assert poll(source, store).new == 3
    idle = poll(source, store)
    assert (idle.new, idle.round_trips) == (0, 2)  # INBOX and Sent: one STATUS each
    append(dovecot, imap_user, "INBOX", customer_mail(9, 1), 1)
    busy = poll(source, store)
    source.close()
    assert (busy.new, busy.duplicates) == (1, 0)
    assert SourceSink(store, "support").cursor("INBOX").last_uid == 4


def test_first_sync_reads_only_since_and_in_batches(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Mail older than `since` is skipped; the rest arrives in batches with progress shown."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 60 * 24 * 10), 60 * 24 * 10)
    for n in range(2, 9):
        append(dovecot, imap_user, "INBOX", customer_mail(n, n), n)
    seen: list[tuple[str, int, int]] = []
    source = ImapSource(
        source_config(imap_user, since="3d", batch_size=3),
        TEAM,
        progress=lambda name, folder, done, total: seen.append((folder, done, total)),
    )
    assert poll(source, store).new == 7
    source.close()
    assert seen == [("INBOX", 3, 7), ("INBOX", 6, 7), ("INBOX", 7, 7)]


def test_uidvalidity_change_rereads_without_duplicates(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """A new UIDVALIDITY makes the folder be read again; the same messages are not stored twice."""
    for n in range(1, 4):
        append(dovecot, imap_user, "INBOX", customer_mail(n, n), n)
    source = ImapSource(source_config(imap_user), TEAM)
    poll(source, store)
    source.close()
    new_validity = dovecot.set_uidvalidity(imap_user.username, "INBOX")
    source = ImapSource(source_config(imap_user), TEAM)
    report = poll(source, store)
    source.close()
    assert (report.new, report.duplicates) == (0, 3)
    sink = SourceSink(store, "support")
    assert sink.cursor("INBOX").uidvalidity == new_validity
    assert sink.folder_uids("INBOX", new_validity) == {1, 2, 3}
    assert (
        store.conn.execute("SELECT COUNT(*) FROM messages WHERE removed_at IS NULL").fetchone()[0]
        == 3
    )


def test_expunged_message_closes_its_clock_without_reply(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """A question archived out of the inbox without a reply stops its clock as closed."""
    uid = append(dovecot, imap_user, "INBOX", customer_mail(1, 30), 30)
    append(dovecot, imap_user, "INBOX", customer_mail(2, 20), 20)
    source = ImapSource(source_config(imap_user), TEAM)
    poll(source, store)
    dovecot.expunge(imap_user.username, imap_user.password, "INBOX", [uid])
    later = NOW + timedelta(minutes=1)
    report = poll(source, store, later)  # CONDSTORE: HIGHESTMODSEQ moved, so UIDs are compared
    source.close()
    assert report.removed == 1
    cid = store.conversation_for_message(None, "q1@customer.example")
    clocks = segment_clocks(
        [
            ClockMessage(timestamp=m.timestamp, direction=m.direction, removed_at=m.removed_at)
            for m in store.messages(cid)
        ]
    )
    assert [(c.stop_reason, c.stopped_at) for c in clocks] == [(StopReason.CLOSED, later)]


def test_imaps_and_xoauth2(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store, tmp_path: Path
) -> None:
    """Implicit TLS verified against the CA file, logging in with an XOAUTH2 token file."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 5), 5)
    token = tmp_path / "token"
    token.write_text(imap_user.oauth_token + "\n")
    config = source_config(
        imap_user,
        starttls=False,
        port=imap_user.ssl_port,
        password=None,
        oauth2_token_file=str(token),
    )
    assert config.use_tls
    source = ImapSource(config, TEAM)
    assert poll(source, store).new == 1
    source.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_names_the_fix(imap_user: ImapUser, store: Store) -> None:
    """A server that is not listening gives one clear error naming host, port and what to check."""
    port = closed_port()
    source = ImapSource(source_config(imap_user, port=port), TEAM)
    with pytest.raises(SourceError) as caught:
        poll(source, store)
    assert str(caught.value) == (
        f"source 'support': cannot connect to 127.0.0.1:{port}: Connection refused; "
        "check host and port, and that the server is running"
    )


def test_bad_login_is_an_auth_error(imap_user: ImapUser, store: Store) -> None:
    """A wrong password is reported as an authentication problem, naming the user."""
    source = ImapSource(source_config(imap_user, password="wrong"), TEAM)
    with pytest.raises(SourceAuthError) as caught:
        poll(source, store)
    assert f"login as {imap_user.username!r} was rejected by 127.0.0.1" in str(caught.value)
    assert "check username and password" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_untrusted_certificate_is_refused(imap_user: ImapUser, store: Store) -> None:
    """Without the server's CA, certificate verification fails with a hint to set ca_file."""
    source = ImapSource(source_config(imap_user, ca_file=None), TEAM)
    with pytest.raises(SourceError) as caught:
        poll(source, store)
    assert "could not be verified (self-signed certificate)" in str(caught.value)
    assert "set ca_file" in str(caught.value)


def test_missing_folder_lists_what_exists(imap_user: ImapUser, store: Store) -> None:
    """A watched folder that does not exist is named, with the folders that do."""
    source = ImapSource(source_config(imap_user, folders=["INBOX", "Support"]), TEAM)
    with pytest.raises(SourceError) as caught:
        poll(source, store)
    assert str(caught.value) == (
        "source 'support': folder 'Support' does not exist on 127.0.0.1; folders there: "
        "Archive, Drafts, INBOX, Sent, Trash; fix `folders` in the config"
    )


def test_server_restart_recovers_without_duplicates(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """When the server goes away the poll fails cleanly; after it returns, polling resumes."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 5), 5)
    source = ImapSource(source_config(imap_user), TEAM)
    assert poll(source, store).new == 1
    dovecot.stop_temporarily()
    try:
        with pytest.raises(SourceError):
            poll(source, store)
    finally:
        dovecot.restart()
    append(dovecot, imap_user, "INBOX", customer_mail(2, 1), 1)
    report = poll(source, store)
    source.close()
    assert (report.new, report.duplicates) == (1, 0)


def test_a_connection_that_died_between_polls_is_replaced_without_a_failure(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """A server restarted between two polls leaves the kept connection dead; the next poll
    notices, reconnects once and reads the new mail, instead of marking the source down."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 5), 5)
    source = ImapSource(source_config(imap_user), TEAM)
    assert poll(source, store).new == 1
    dovecot.stop_temporarily()
    dovecot.restart()
    append(dovecot, imap_user, "INBOX", customer_mail(2, 1), 1)
    report = poll(source, store)
    source.close()
    assert (report.new, report.duplicates) == (1, 0)


def test_uid_batches_keep_fetch_lines_short() -> None:
    """Batches hold at most batch_size UIDs and never more than ~7 KB of comma-joined UIDs."""
    assert list(uid_batches([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    big = list(range(1_000_000_000, 1_000_003_000))  # ten-digit UIDs
    batches = list(uid_batches(big, 5000))
    assert [len(b) for b in batches] == [636, 636, 636, 636, 456]
    assert max(len(",".join(map(str, b))) for b in batches) < 7000
    assert [uid for b in batches for uid in b] == big


def test_one_connection_sees_mail_added_to_the_folder_it_read_last(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Polls on one connection see every new inbox message: the inbox is kept open between
    polls and asked with a NOOP, which reports new mail, instead of a STATUS of a stale view."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 10), 10)
    source = ImapSource(source_config(imap_user), TEAM)
    assert poll(source, store).new == 1
    seen = []
    for n in range(2, 6):
        append(dovecot, imap_user, "INBOX", customer_mail(n, 1), 1)
        seen.append(poll(source, store).new)
    idle = poll(source, store)
    source.close()
    assert seen == [1, 1, 1, 1]
    assert (idle.new, idle.round_trips) == (0, 2)


def test_mail_gone_across_a_uidvalidity_change_closes_its_clocks(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Unanswered mail that vanished while the folder's UIDVALIDITY changed (an index rebuilt
    or restored) is marked removed after the re-read, as an expunge would be; the mail that is
    still there keeps its place."""
    uids = [append(dovecot, imap_user, "INBOX", customer_mail(n, 30 + n), 30 + n) for n in range(6)]
    source = ImapSource(source_config(imap_user), TEAM)
    poll(source, store)
    source.close()
    dovecot.expunge(imap_user.username, imap_user.password, "INBOX", uids[:4])
    new_validity = dovecot.set_uidvalidity(imap_user.username, "INBOX")
    source = ImapSource(source_config(imap_user), TEAM)
    report = poll(source, store, NOW + timedelta(minutes=1))
    again = poll(source, store, NOW + timedelta(minutes=2))
    source.close()
    assert (report.new, report.duplicates, report.removed, again.removed) == (0, 2, 4, 0)
    removed = {
        identity
        for (identity,) in store.conn.execute(
            "SELECT identity FROM messages WHERE removed_at IS NOT NULL"
        )
    }
    assert removed == {f"q{n}@customer.example" for n in range(4)}
    assert SourceSink(store, "support").folder_uids("INBOX", new_validity) == set(
        range(uids[4], uids[5] + 1)
    )
    assert (
        store.conn.execute(
            "SELECT COUNT(*) FROM locations WHERE uidvalidity != ?", (new_validity,)
        ).fetchone()[0]
        == 0
    )


def test_mail_dated_far_in_the_future_is_timed_when_it_was_read(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Two messages whose INTERNALDATE is in 2099 are stored as arriving when they were read,
    with the reason saying so, and one warning is logged for the batch; a message a minute
    ahead (a server clock running fast) keeps its own time."""
    future = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
    # Only a file in the Maildir can carry such a date: Dovecot clamps a future APPEND date.
    dovecot.write_maildir(
        imap_user.username, "INBOX", [(customer_mail(n, 0), future) for n in (1, 2)]
    )
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    dovecot.append(
        imap_user.username, imap_user.password, "INBOX", customer_mail(3, 0), internaldate=ahead
    )
    source = ImapSource(source_config(imap_user), TEAM)
    before = datetime.now(UTC).replace(microsecond=0)
    with caplog.at_level("WARNING", logger="replyclock.poll"):
        outcome = poll_source(source, store, before)
    after = datetime.now(UTC)
    source.close()
    assert outcome.ok
    rows = dict(
        store.conn.execute("SELECT identity, timestamp FROM messages ORDER BY identity").fetchall()
    )
    for n in (1, 2):
        assert before.timestamp() <= rows[f"q{n}@customer.example"] <= after.timestamp()
    assert rows["q3@customer.example"] == int(ahead.timestamp())
    reason = store.conn.execute(
        "SELECT reason FROM messages WHERE identity = 'q1@customer.example'"
    ).fetchone()[0]
    assert reason.endswith("; dated 2099-01-01 12:00 UTC, in the future, so timed when it was read")
    warnings = [r for r in caplog.records if "dated in the future" in r.getMessage()]
    assert len(warnings) == 1


class _MailDuringPoll(SourceSink):
    """A real sink that has a message delivered to the inbox while a poll is under way, just
    after the poll stored the inbox's cursor (so after its STATUS of the inbox)."""

    def __init__(self, store: Store, deliver: Any) -> None:
        super().__init__(store, "support")
        self.deliver = deliver

    def save_cursor(self, cursor: Any, now: datetime) -> None:
        super().save_cursor(cursor, now)
        if cursor.folder == "INBOX" and self.deliver is not None:
            deliver, self.deliver = self.deliver, None
            deliver()


def test_mail_delivered_during_a_poll_is_read_by_the_next_quiet_looking_poll(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Mail that lands in the inbox after a poll asked for its status is not lost behind the
    open inbox's NOOP: the next poll reads it, and the poll after that is one NOOP and one
    STATUS."""
    append(dovecot, imap_user, "INBOX", customer_mail(1, 10), 10)
    source = ImapSource(source_config(imap_user), TEAM)
    sink = _MailDuringPoll(
        store, lambda: append(dovecot, imap_user, "INBOX", customer_mail(2, 1), 1)
    )
    first = source.poll(sink, NOW)
    second = source.poll(sink, NOW)
    third = source.poll(sink, NOW)
    source.close()
    assert (first.new, second.new) == (1, 1)
    assert (third.new, third.round_trips) == (0, 2)
    assert sink.cursor("INBOX").last_uid == 2


def test_a_flag_change_in_the_open_inbox_leads_to_a_fresh_status(
    dovecot: DovecotServer, imap_user: ImapUser, store: Store
) -> None:
    """Another client flagging a message in the kept-open inbox is reported at the NOOP; the
    poll then leaves the folder and asks a fresh STATUS (its HIGHESTMODSEQ moved), and no mail
    is read twice."""
    uid = append(dovecot, imap_user, "INBOX", customer_mail(1, 10), 10)
    source = ImapSource(source_config(imap_user), TEAM)
    poll(source, store)
    with dovecot.session(imap_user.username, imap_user.password) as other:
        other.select_folder("INBOX")
        other.add_flags([uid], [b"\\Flagged"])
    changed = poll(source, store)
    quiet = poll(source, store)
    source.close()
    assert (changed.new, changed.duplicates) == (0, 0)
    assert changed.round_trips > 2  # NOOP, UNSELECT, STATUS, then the reconciliation
    assert (quiet.new, quiet.round_trips) == (0, 2)
