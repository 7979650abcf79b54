"""The Dovecot fixture is a real, usable IMAP server (these tests guard the test harness)."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import imapclient
import pytest
from imapclient.exceptions import LoginError

if TYPE_CHECKING:  # the fixtures hand these over; importing here would depend on the layout
    from tests.servers.dovecot import DovecotServer, ImapUser

pytestmark = pytest.mark.imap

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hello\r\n\r\nbody\r\n"


def _message(subject: str) -> bytes:
    return MESSAGE.replace(b"hello", subject.encode())


def test_capabilities_include_sync_extensions(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    """After login the server offers CONDSTORE, QRESYNC, IDLE, SPECIAL-USE and UIDPLUS."""
    with dovecot.session(imap_user.username, imap_user.password) as client:
        capabilities = set(client.capabilities())
    assert {b"CONDSTORE", b"QRESYNC", b"IDLE", b"SPECIAL-USE", b"UIDPLUS"} <= capabilities


def test_special_folders_carry_their_flags(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    """A new user has Sent, Drafts, Trash and Archive, each listed with its SPECIAL-USE flag."""
    with dovecot.session(imap_user.username, imap_user.password) as client:
        flags_by_name = {name: set(flags) for flags, _, name in client.list_folders()}
        sent = client.find_special_folder(rb"\Sent")
    assert sent == "Sent"
    expected = {
        "Sent": b"\\Sent",
        "Drafts": b"\\Drafts",
        "Trash": b"\\Trash",
        "Archive": b"\\Archive",
    }
    for name, flag in expected.items():
        assert flag in flags_by_name[name]
    assert "INBOX" in flags_by_name


def test_append_returns_increasing_uids_and_keeps_internaldate(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    """Appended messages get increasing UIDs and their INTERNALDATE comes back as given."""
    dates = [
        datetime(2024, 3, 1, 9, 30, 15, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 3, 1, 9, 30, 16, tzinfo=UTC),
        datetime(2023, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
    ]
    uids = [
        dovecot.append(
            imap_user.username,
            imap_user.password,
            "Sent",
            _message(f"m{index}"),
            internaldate=date,
            flags=[b"\\Seen"],
        )
        for index, date in enumerate(dates)
    ]
    assert uids == sorted(uids)
    assert len(set(uids)) == len(uids)

    with dovecot.session(imap_user.username, imap_user.password) as client:
        client.select_folder("Sent", readonly=True)
        fetched = client.fetch(uids, ["INTERNALDATE", "FLAGS"])
    for uid, date in zip(uids, dates, strict=True):
        internaldate = fetched[uid][b"INTERNALDATE"]
        assert internaldate.tzinfo is not None
        assert internaldate == date
        assert b"\\Seen" in fetched[uid][b"FLAGS"]


def test_starttls_verifies_against_ca_file(imap_user: ImapUser) -> None:
    """STARTTLS on the plain port verifies the server certificate against ca_file."""
    client = imapclient.IMAPClient(imap_user.host, port=imap_user.port, ssl=False, timeout=10)
    client.starttls(ssl.create_default_context(cafile=imap_user.ca_file))
    client.login(imap_user.username, imap_user.password)
    assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    client.logout()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_imaps_verifies_against_ca_file(imap_user: ImapUser, host: str) -> None:
    """IMAPS verifies the certificate and hostname for both 127.0.0.1 and localhost."""
    context = ssl.create_default_context(cafile=imap_user.ca_file)
    client = imapclient.IMAPClient(
        host, port=imap_user.ssl_port, ssl=True, ssl_context=context, timeout=10
    )
    client.login(imap_user.username, imap_user.password)
    client.logout()


def test_imaps_rejects_unknown_certificate(imap_user: ImapUser) -> None:
    """Without ca_file the self-signed certificate fails verification (TLS really is checked)."""
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(
            imap_user.host,
            port=imap_user.ssl_port,
            ssl=True,
            ssl_context=ssl.create_default_context(),
            timeout=10,
        )


def test_wrong_password_raises_login_error(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    """Logging in with a wrong password raises imapclient's LoginError."""
    with pytest.raises(LoginError):
        dovecot.client(imap_user.username, imap_user.password + "x")


def test_xoauth2_accepts_the_token_only(imap_user: ImapUser) -> None:
    """XOAUTH2 succeeds with the user's token and fails with the password as token."""
    client = imapclient.IMAPClient(imap_user.host, port=imap_user.port, ssl=False, timeout=10)
    client.oauth2_login(imap_user.username, imap_user.oauth_token)
    client.logout()
    client = imapclient.IMAPClient(imap_user.host, port=imap_user.port, ssl=False, timeout=10)
    with pytest.raises(LoginError):
        client.oauth2_login(imap_user.username, imap_user.password)
    client.shutdown()


def test_users_added_while_running_log_in_at_once(dovecot: DovecotServer) -> None:
    """Users added in quick succession to the running server can all log in immediately."""
    users = [dovecot.create_user("burst") for _ in range(3)]
    for user in users:
        with dovecot.session(user.username, user.password) as client:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0


def test_expunge_removes_only_the_given_uids(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    """expunge() removes exactly the given UIDs and leaves the other messages."""
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    uids = [
        dovecot.append(
            imap_user.username, imap_user.password, "INBOX", _message(s), internaldate=when
        )
        for s in ("a", "b", "c")
    ]
    dovecot.expunge(imap_user.username, imap_user.password, "INBOX", [uids[1]])
    with dovecot.session(imap_user.username, imap_user.password) as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == [uids[0], uids[2]]


def test_set_uidvalidity_changes_only_uidvalidity(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    """set_uidvalidity() gives the folder a new UIDVALIDITY while its messages keep their UIDs."""
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    uid = dovecot.append(
        imap_user.username, imap_user.password, "INBOX", MESSAGE, internaldate=when
    )
    with dovecot.session(imap_user.username, imap_user.password) as client:
        before = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    new = dovecot.set_uidvalidity(imap_user.username, "INBOX")
    with dovecot.session(imap_user.username, imap_user.password) as client:
        after = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
        assert client.search("ALL") == [uid]
    assert after == new != before


def test_restart_keeps_ports_and_mail(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    """While stopped the port refuses connections; after restart the same port serves the mail."""
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    uid = dovecot.append(
        imap_user.username, imap_user.password, "INBOX", MESSAGE, internaldate=when
    )
    port, ssl_port = dovecot.port, dovecot.ssl_port
    dovecot.stop_temporarily()
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((dovecot.host, port), timeout=5).close()
    finally:
        dovecot.restart()
    assert (dovecot.port, dovecot.ssl_port) == (port, ssl_port)
    with dovecot.session(imap_user.username, imap_user.password) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([uid], ["INTERNALDATE"])
    assert fetched[uid][b"INTERNALDATE"] == when
