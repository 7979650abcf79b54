"""Shared fixtures: one real Dovecot IMAP server per test session, a fresh user per test;
a fake identity provider (Entra, Google) and a Dovecot that checks OAuth2 tokens against it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# tests/ is not a package: pytest puts it on sys.path, so its helper packages import by name.
from servers.dovecot import DovecotServer, ImapUser, find_dovecot
from servers.fake_identity import FakeIdentityProvider
from servers.prometheus import find_prometheus, find_promtool

from monitor.store import Store

IN_CI = os.environ.get("CI") == "true"


def require_server(what: str, install: str) -> None:
    """Skip a test that needs a missing server, or fail it under CI=true, naming the fix."""
    message = f"{what}; make test installs it as root with apt-get ({install})"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_dovecot() -> None:
    """Skip (or under CI=true fail) unless Dovecot is installed and we are root."""
    if find_dovecot() is None:
        require_server("dovecot-imapd is not installed", "apt-get install -y dovecot-imapd")
    if os.geteuid() != 0:
        require_server(
            "the Dovecot test server must start as root (it drops to the dovecot user)",
            "run make test as root",
        )


def running(make: Callable[[], DovecotServer]) -> Iterator[DovecotServer]:
    """Start the Dovecot ``make`` builds (once the machine can run one); stop it at the end."""
    require_dovecot()
    server = make()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A running Dovecot on free loopback ports, stopped (and its files removed) at the end."""
    yield from running(DovecotServer)


@pytest.fixture
def imap_user(dovecot: DovecotServer) -> ImapUser:
    """A new user on the session's Dovecot, so each test starts with an empty mailbox."""
    return dovecot.create_user()


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[FakeIdentityProvider]:
    """The fake Entra and Google token services (HTTPS), for the whole session."""
    with FakeIdentityProvider() as provider:
        yield provider


@pytest.fixture
def identity(identity_provider: FakeIdentityProvider) -> FakeIdentityProvider:
    """The session's identity provider with nothing registered, so each test starts clean."""
    identity_provider.reset()
    return identity_provider


@pytest.fixture(scope="session")
def oauth_dovecot(identity_provider: FakeIdentityProvider) -> Iterator[DovecotServer]:
    """A Dovecot whose XOAUTH2 / OAUTHBEARER logins its real oauth2 passdb checks by asking
    the identity provider's introspection endpoint; passwords work as on ``dovecot``."""
    yield from running(
        lambda: DovecotServer(
            oauth2_introspection_url=identity_provider.introspection_url,
            oauth2_ca_file=identity_provider.ca_file,
        )
    )


@pytest.fixture
def oauth_imap_user(oauth_dovecot: DovecotServer) -> ImapUser:
    """A new mailbox (an address at example.com) on the OAuth2-checking Dovecot."""
    return oauth_dovecot.create_user("support", domain="example.com")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """The path of Debian's ``prometheus`` server binary (skips, or fails under CI, without)."""
    found = find_prometheus()
    if found is None:
        require_server("prometheus is not installed", "apt-get install -y prometheus")
    assert found is not None  # require_server does not return
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of Debian's ``promtool`` (skips, or fails under CI, without)."""
    found = find_promtool()
    if found is None:
        require_server("promtool is not installed", "apt-get install -y prometheus")
    assert found is not None  # require_server does not return
    return found


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two empty stores: one filled in some order, one the reference it is compared with."""
    a = Store.open(tmp_path / "a" / "replyclock.db")
    b = Store.open(tmp_path / "b" / "replyclock.db")
    yield a, b
    a.close()
    b.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI and the daemon point the replyclock logger at a test's stderr; undo that
    afterwards, so the next test's records reach its own capture."""
    logger = logging.getLogger("replyclock")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
