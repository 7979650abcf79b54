"""IMAP with OAuth2 that replyclock runs itself: msal and google-auth against the fake identity
provider, XOAUTH2 against a real Dovecot whose oauth2 passdb asks that provider about each
token. Nothing here is mocked but the vendors' token services.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import mail
from servers.dovecot import DovecotServer, ImapUser
from servers.fake_identity import GMAIL_SCOPE, FakeIdentityProvider, make_app_certificate

from monitor.config.models import ImapSourceConfig
from monitor.errors import SourceAuthError
from monitor.mail.classify import MailboxIdentity
from monitor.polling import FailureLog, poll_source
from monitor.sources.imap import ImapSource
from monitor.store import SourceSink, Store

pytestmark = pytest.mark.imap

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "sEcReT~not-a-real-one"
TEAM = MailboxIdentity(team_addresses=frozenset(), team_domains=frozenset({"acme.example"}))
NOW = datetime.now(UTC).replace(microsecond=0)


def write_secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n", encoding="utf-8")
    return path


def microsoft(identity: FakeIdentityProvider, tmp_path: Path, **auth: Any) -> dict[str, Any]:
    values = {
        "type": "microsoft",
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "authority_host": identity.host,
        "ca_file": identity.ca_file,
    }
    if not {"client_secret_file", "certificate_file"} & set(auth):
        values["client_secret_file"] = write_secret(tmp_path, "secret", SECRET)
    return {**values, **auth}


def source(user: ImapUser, auth: dict[str, Any]) -> ImapSource:
    config = ImapSourceConfig.model_validate(
        {
            "type": "imap",
            "name": "shared",
            "host": user.host,
            "port": user.port,
            "starttls": True,
            "ca_file": user.ca_file,
            "username": user.username,
            "auth": auth,
            "timeout": "10s",
        }
    )
    return ImapSource(config, TEAM)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = Store.open(tmp_path / "replyclock.db")
    yield opened
    opened.close()


def question(dovecot: DovecotServer, user: ImapUser, n: int) -> None:
    dovecot.append(
        user.username,
        user.password,
        "INBOX",
        mail(
            sender=f"c{n}@customer.example",
            subject=f"Question {n}",
            message_id=f"q{n}@customer.example",
            date=NOW - timedelta(minutes=10),
        ),
        internaldate=NOW - timedelta(minutes=10),
    )


def stored(store: Store) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


def test_a_microsoft_app_reads_the_shared_mailbox_with_its_own_tokens(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    store: Store,
    tmp_path: Path,
) -> None:
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    identity.grant_mailbox(CLIENT_ID, oauth_imap_user.username)
    question(oauth_dovecot, oauth_imap_user, 1)
    imap = source(oauth_imap_user, microsoft(identity, tmp_path))
    report = imap.poll(SourceSink(store, "shared"), NOW)
    imap.close()
    assert (report.new, stored(store)) == (1, 1)
    assert identity.tokens_issued == 1
    (token,) = identity.tokens
    assert (token.principal, token.scope) == (CLIENT_ID, "https://outlook.office365.com/.default")
    # A second connection reuses the cached token: msal renews it only near its end.
    imap.poll(SourceSink(store, "shared"), NOW)
    imap.close()
    assert identity.tokens_issued == 1


def test_a_certificate_signs_the_client_assertion(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    store: Store,
    tmp_path: Path,
) -> None:
    cert = make_app_certificate()
    identity.add_microsoft_app(TENANT, CLIENT_ID, certificate_pem=cert.certificate_pem)
    identity.grant_mailbox(CLIENT_ID, oauth_imap_user.username)
    pem = write_secret(tmp_path, "app.pem", cert.private_key_pem + cert.certificate_pem)
    question(oauth_dovecot, oauth_imap_user, 1)
    imap = source(oauth_imap_user, microsoft(identity, tmp_path, certificate_file=pem))
    assert imap.poll(SourceSink(store, "shared"), NOW).new == 1
    imap.close()
    (call,) = [c for c in identity.calls if c.path.endswith("/oauth2/v2.0/token")]
    assert "client_assertion" in call.form
    assert "client_secret" not in call.form


def test_a_token_the_server_no_longer_takes_is_replaced_once_and_the_poll_succeeds(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server stops taking a token msal still thinks valid (revoked, or a clock that is
    ahead): the login is refused, one fresh token is fetched, the poll goes on."""
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    identity.grant_mailbox(CLIENT_ID, oauth_imap_user.username)
    imap = source(oauth_imap_user, microsoft(identity, tmp_path))
    imap.poll(SourceSink(store, "shared"), NOW)
    imap.close()
    identity.revoke(CLIENT_ID)  # the token msal holds (an hour left) is refused from now on
    question(oauth_dovecot, oauth_imap_user, 2)
    caplog.set_level(logging.INFO)
    outcome = poll_source(imap, store, NOW)
    imap.close()
    assert outcome.ok, outcome.error
    assert (outcome.report.new if outcome.report else 0) == 1
    assert identity.tokens_issued == 2
    assert [r.getMessage() for r in caplog.records].count(
        "OAuth2 token refused; trying once more with a fresh one"
    ) == 1


def test_an_app_without_the_mailbox_fails_once_with_the_exchange_fix(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No FullAccess on the mailbox: a fresh token is refused too; the error names the
    permission and the PowerShell, and a second failing poll adds no error line."""
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    imap = source(oauth_imap_user, microsoft(identity, tmp_path))
    failures = FailureLog()
    caplog.set_level(logging.INFO)
    first = poll_source(imap, store, NOW, failures=failures)
    second = poll_source(imap, store, NOW, failures=failures)
    assert first.error is not None
    assert second.error == first.error
    assert "with a fresh token" in first.error
    assert "IMAP.AccessAsApp" in first.error
    assert f"Add-MailboxPermission -Identity {oauth_imap_user.username}" in first.error
    assert "-AccessRights FullAccess" in first.error
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("replyclock")
    ]
    assert [r.getMessage() for r in errors] == ["source poll failed"]
    assert SECRET not in caplog.text
    assert not any(t.access_token in caplog.text for t in identity.tokens)


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        pytest.param(
            lambda idp: idp.expire_secret(CLIENT_ID),
            r"AADSTS7000222\): the client secret has expired; create a new one",
            id="expired_secret",
        ),
        pytest.param(
            lambda idp: None,
            r"AADSTS7000215\): the client secret is wrong; use the secret's Value",
            id="wrong_secret",
        ),
    ],
)
def test_refused_app_credentials_name_the_fix(
    identity: FakeIdentityProvider,
    oauth_imap_user: ImapUser,
    tmp_path: Path,
    break_it: Any,
    expected: str,
) -> None:
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    break_it(identity)
    wrong = "wrong" in expected
    auth = microsoft(
        identity,
        tmp_path,
        client_secret_file=write_secret(tmp_path, "s", "not-it" if wrong else SECRET),
    )
    with pytest.raises(SourceAuthError) as raised:
        source(oauth_imap_user, auth).connect()
    assert re.search(expected, raised.value.detail), raised.value.detail
    assert SECRET not in raised.value.detail
    assert "not-it" not in raised.value.detail


def test_an_unknown_tenant_is_named(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser, tmp_path: Path
) -> None:
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    auth = microsoft(identity, tmp_path, tenant_id="fabrikam.onmicrosoft.com")
    with pytest.raises(SourceAuthError) as raised:
        source(oauth_imap_user, auth).connect()
    assert "does not know tenant_id 'fabrikam.onmicrosoft.com'" in raised.value.detail
    assert "Directory (tenant) ID" in raised.value.detail


def google(identity: FakeIdentityProvider, tmp_path: Path, key: dict[str, str]) -> dict[str, Any]:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key), encoding="utf-8")
    return {"type": "google", "service_account_file": path, "ca_file": identity.ca_file}


def test_a_google_service_account_acts_as_the_mailbox(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    store: Store,
    tmp_path: Path,
) -> None:
    key = identity.add_google_service_account()
    identity.grant_delegation(key["client_id"], oauth_imap_user.username, [GMAIL_SCOPE])
    question(oauth_dovecot, oauth_imap_user, 1)
    imap = source(oauth_imap_user, google(identity, tmp_path, key))
    assert imap.poll(SourceSink(store, "shared"), NOW).new == 1
    imap.close()
    (token,) = identity.tokens
    assert (token.subject, token.scope) == (oauth_imap_user.username, GMAIL_SCOPE)


def test_google_without_delegation_says_where_to_grant_it(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser, tmp_path: Path
) -> None:
    key = identity.add_google_service_account()
    with pytest.raises(SourceAuthError) as raised:
        source(oauth_imap_user, google(identity, tmp_path, key)).connect()
    detail = raised.value.detail
    assert "Google refused the service account (unauthorized_client)" in detail
    assert f"Domain-wide delegation, add client ID {key['client_id']}" in detail
    assert "https://mail.google.com/" in detail
    assert key["private_key"].splitlines()[1] not in detail


def test_a_deleted_google_key_is_named(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser, tmp_path: Path
) -> None:
    key = identity.add_google_service_account()
    identity.grant_delegation(key["client_id"], oauth_imap_user.username, [GMAIL_SCOPE])
    identity.delete_google_key(key["client_id"])
    with pytest.raises(SourceAuthError) as raised:
        source(oauth_imap_user, google(identity, tmp_path, key)).connect()
    assert "the key was deleted or replaced" in raised.value.detail
