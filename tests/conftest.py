"""Shared fixtures: one real Dovecot IMAP server per test session, a fresh user per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# tests/ is not a package: pytest puts it on sys.path, so its helper packages import by name.
from servers.dovecot import DovecotServer, ImapUser, find_dovecot
from servers.prometheus import find_prometheus, find_promtool

IN_CI = os.environ.get("CI") == "true"


def require_server(what: str, install: str) -> None:
    """Skip a test that needs a missing server, or fail it under CI=true, naming the fix."""
    message = f"{what}; make test installs it as root with apt-get ({install})"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A running Dovecot on free loopback ports, stopped (and its files removed) at the end."""
    if find_dovecot() is None:
        require_server("dovecot-imapd is not installed", "apt-get install -y dovecot-imapd")
    if os.geteuid() != 0:
        require_server(
            "the Dovecot test server must start as root (it drops to the dovecot user)",
            "run make test as root",
        )
    server = DovecotServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_user(dovecot: DovecotServer) -> ImapUser:
    """A new user on the session's Dovecot, so each test starts with an empty mailbox."""
    return dovecot.create_user()


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
