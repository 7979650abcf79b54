"""`replyclock check --connect` against helpdesk APIs: a fake Zendesk and a fake GitHub.

Through the real CLI: each source signs in as its polls do and the check prints whom it
signed in as, the role or permissions, the rate-limit headroom, the repositories and what a
first sync would read; a refused sign-in fails the check without hiding the other sources,
and no secret is ever printed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from servers.fake_api import Answer, FakeApi, FakeRequest

from monitor.cli import main

ZENDESK_TOKEN = "zendesk-cli-token"
GITHUB_TOKEN = "ghp_cliTestToken"
EMAIL = "admin@acme.example"
ADMIN = {"id": 6130907993114, "name": "Zenpy Admin", "email": EMAIL, "role": "admin"}
ANONYMOUS = {"id": None, "name": "Anonymous user", "email": "invalid@example.com"}
TICKETS_UPDATED = 42


def first_sync_days() -> set[str]:
    """The first day a 30-day first sync reads, allowing for midnight passing mid-test."""
    now = datetime.now(UTC)
    return {(now - timedelta(days=30) + timedelta(minutes=m)).date().isoformat() for m in (0, 5)}


class FakeZendesk:
    """users/me (the anonymous user for a token it does not accept, as Zendesk answers) with
    the rate-limit headers of the zenpy recordings, and the search count."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.token = ZENDESK_TOKEN
        self.api.check_auth = lambda r: r.path == "/api/v2/users/me.json" or self.authorized(r)
        self.api.route("/api/v2/users/me.json", self.me)
        self.api.route("/api/v2/search/count.json", self.count)

    def authorized(self, request: FakeRequest) -> bool:
        pair = base64.b64encode(f"{EMAIL}/token:{self.token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {pair}"

    def me(self, request: FakeRequest) -> Answer:
        headers = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "612"}
        return 200, headers, {"user": ADMIN if self.authorized(request) else ANONYMOUS}

    def count(self, request: FakeRequest) -> Answer:
        query = request.param("query") or ""
        days = {f"type:ticket updated>={day}" for day in first_sync_days()}
        return (200, {}, {"count": TICKETS_UPDATED}) if query in days else (400, {}, {})


class FakeGitHub:
    """/user with a fine-grained token's headers, one visible repository and issue search."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.api.check_auth = lambda r: r.headers.get("authorization") == f"Bearer {GITHUB_TOKEN}"
        headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4997"}
        user = {"login": "octocat", "name": "The Octocat", "type": "User"}
        repository = {"full_name": "acme/widgets", "has_issues": True, "open_issues_count": 12}
        self.api.route("/user", lambda r: (200, headers, user))
        self.api.route("/repos/acme/widgets", lambda r: (200, headers, repository))
        self.api.route("/search/issues", self.search)

    def search(self, request: FakeRequest) -> Answer:
        found = re.fullmatch(r"repo:acme/widgets is:issue updated:>=(\S+)", request.param("q", ""))
        if found is None or found.group(1) not in first_sync_days():
            return 422, {}, {"message": "Validation Failed"}
        return 200, {}, {"total_count": 7, "incomplete_results": False, "items": []}


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.api.start()
    yield fake
    fake.api.stop()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.api.start()
    yield fake
    fake.api.stop()


def config(tmp_path: Path, zendesk: FakeZendesk, github: FakeGitHub) -> Path:
    token_file = tmp_path / "github-token"
    token_file.write_text(GITHUB_TOKEN + "\n", encoding="utf-8")
    path = tmp_path / "replyclock.yaml"
    path.write_text(
        f"store: {{path: {tmp_path / 'store.db'}}}\n"
        "team: {addresses: [support@acme.example], domains: [acme.example]}\n"
        "sources:\n"
        "  - type: zendesk\n"
        "    name: helpdesk\n"
        "    subdomain: acme\n"
        f"    email: {EMAIL}\n"
        f"    api_token: {ZENDESK_TOKEN}\n"
        f"    base_url: {zendesk.api.url}\n"
        "  - type: github\n"
        "    name: issues\n"
        "    repositories: [acme/widgets, acme/private]\n"
        f"    token_file: {token_file}\n"
        f"    base_url: {github.api.url}\n",
        encoding="utf-8",
    )
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check", "-c", str(path), "--connect"])
    return code, capsys.readouterr().out


def block(out: str, source: str) -> str:
    """The lines printed for one source."""
    found = re.search(rf"^{source}[ :].*?(?=\n\n|\Z)", out, re.MULTILINE | re.DOTALL)
    assert found, out
    return found.group(0)


def test_check_connect_reports_zendesk_and_github(
    zendesk: FakeZendesk,
    github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = check(config(tmp_path, zendesk, github), capsys)
    assert code == 0, out  # a repository the token cannot see is a warning, not a failure

    helpdesk = block(out, "helpdesk")
    assert helpdesk.startswith(f"helpdesk (zendesk): signed in as Zenpy Admin <{EMAIL}>\n")
    assert re.search(rf"^  api +{re.escape(zendesk.api.url)}$", helpdesk, re.MULTILINE)
    assert re.search(rf"^  signed in with +API token of {EMAIL}$", helpdesk, re.MULTILINE)
    assert re.search(r"^  role +admin$", helpdesk, re.MULTILINE)
    assert re.search(r"^  rate limit +612 of 700 requests a minute left$", helpdesk, re.MULTILINE)
    assert re.search(
        r"^  first sync reads +42 tickets updated since \d{4}-\d\d-\d\d \(since: 30d\), each "
        r"read with its audits$",
        helpdesk,
        re.MULTILINE,
    )
    assert "WARNING" not in helpdesk
    assert "newest inbound" not in helpdesk  # an API source has no mail to date

    issues = block(out, "issues")
    assert issues.startswith("issues (github): signed in as octocat (The Octocat)\n")
    assert re.search(r"^  permissions seen +none sent: a fine-grained token", issues, re.MULTILINE)
    assert re.search(r"^  rate limit +4997 of 5000 requests an hour left$", issues, re.MULTILINE)
    assert re.search(
        r"^  first sync reads +7 issues updated since \d{4}-\d\d-\d\d \(since: 30d\): "
        r"acme/widgets 7$",
        issues,
        re.MULTILINE,
    )
    folders = issues.split("  folders:\n")[1].splitlines()
    assert re.fullmatch(r" +acme/private +- +watched", folders[0])
    assert re.fullmatch(r" +acme/widgets +12 +watched", folders[1])
    assert "  WARNING: repository acme/private is not visible to this token (HTTP 404)" in issues

    assert ZENDESK_TOKEN not in out
    assert GITHUB_TOKEN not in out
    assert {r.method for r in zendesk.api.requests + github.api.requests} == {"GET"}


def test_a_refused_zendesk_token_fails_the_check_and_the_others_still_run(
    zendesk: FakeZendesk,
    github: FakeGitHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    zendesk.token = "the-right-token"
    code, out = check(config(tmp_path, zendesk, github), capsys)
    assert code == 1
    assert (
        f"helpdesk: FAILED: {zendesk.api.url} answered as an anonymous user: it did not accept "
        "the credentials; check email and api_token" in out
    )
    assert "issues (github): signed in as octocat (The Octocat)" in out
    assert ZENDESK_TOKEN not in out
