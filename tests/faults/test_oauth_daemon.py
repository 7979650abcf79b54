"""The daemon on a shared mailbox with its own OAuth2: tokens that expire while it runs cost no
poll, and a credential taken away shows as one clear error, not a log line per poll.

A real `replyclock run` with an `auth: {type: microsoft}` IMAP source, msal inside it talking
to the fake Entra, and a real Dovecot checking every XOAUTH2 login with that fake. Tokens
live two seconds (msal then fetches one for each login); every connection is kicked every
second, so each poll and IDLE session signs in again with tokens that expire meanwhile.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import wait_for
from harness.mailbox import RULES, ask_question
from harness.service import Service
from servers.dovecot import DovecotServer, ImapUser
from servers.fake_identity import FakeIdentityProvider

pytestmark = pytest.mark.imap

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "0a8f7a4c-5d4e-4c3b-9b57-1f2e3d4c5b6a"
SECRET = "oauth-daemon-test-secret"


def shared_source(user: ImapUser, identity: FakeIdentityProvider, secret_file: Path) -> str:
    return f"""
  - name: shared
    type: imap
    host: {user.host}
    port: {user.port}
    starttls: true
    ca_file: {user.ca_file}
    username: {user.username}
    poll_interval: 1s
    timeout: 5s
    auth:
      type: microsoft
      tenant_id: {TENANT}
      client_id: {CLIENT_ID}
      client_secret_file: {secret_file}
      authority_host: {identity.host}
      ca_file: {identity.ca_file}
"""


def kick(dovecot: DovecotServer, user: ImapUser) -> None:
    dovecot._doveadm("kick", user.username)


@pytest.fixture
def started(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    service: Service,
) -> Service:
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    identity.grant_mailbox(CLIENT_ID, oauth_imap_user.username)
    identity.microsoft_expires_in = 2
    secret_file = service.workdir / "entra-secret"
    secret_file.write_text(SECRET)
    ask_question(oauth_dovecot, oauth_imap_user, "first", minutes_ago=5)
    service.write(shared_source(oauth_imap_user, identity, secret_file), rules=RULES)
    service.start()
    assert wait_for(service.ready, timeout=30), service.log_text()[-3000:]
    return service


def test_tokens_expiring_mid_run_cost_no_login(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    started: Service,
) -> None:
    issued = identity.tokens_issued
    asked = []
    for n in range(8):
        asked.append(ask_question(oauth_dovecot, oauth_imap_user, f"q{n}", minutes_ago=1))
        kick(oauth_dovecot, oauth_imap_user)
        time.sleep(1)
    assert wait_for(lambda: set(asked) <= started.identities(), timeout=15)
    assert identity.tokens_issued >= issued + 4  # the run signed in again with new tokens
    assert any(not identity.is_live(t.access_token) for t in identity.tokens)  # some expired
    started.stop()
    log = started.logs[-1]
    # A kick in the middle of a FETCH may fail that poll ("IMAP session broke"); no poll may
    # fail for want of a token: no login is refused, none is even retried with a fresh token.
    failed = [line for line in log.splitlines() if 'msg="source poll failed"' in line]
    assert not [line for line in failed if "rejected" in line or "token" in line], failed
    assert "trying once more with a fresh one" not in log
    assert SECRET not in log
    assert not any(t.access_token in log for t in identity.tokens)


def test_a_mailbox_permission_taken_away_is_one_error_with_the_fix(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    started: Service,
) -> None:
    identity.remove_mailbox(CLIENT_ID, oauth_imap_user.username)
    kick(oauth_dovecot, oauth_imap_user)
    up = ("replyclock_source_up", frozenset({("source", "shared")}))
    assert wait_for(lambda: started.metrics().get(up) == 0.0, timeout=15)
    time.sleep(3)  # three more failing polls
    started.stop()
    log = started.logs[-1]
    assert log.count('msg="source poll failed"') == 1, log[-3000:]
    assert "Add-MailboxPermission" in log
    assert 'msg="source still failing"' not in log  # debug lines stay out of the info log
