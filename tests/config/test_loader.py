"""Config loading: every mistake reported at once, with file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config.loader import load_config
from monitor.config.models import ImapSourceConfig, MaildirSourceConfig
from monitor.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return [str(p) for p in caught.value.problems]


def test_three_mistakes_give_three_located_lines(tmp_path: Path) -> None:
    """A config with three mistakes yields exactly three problems, each on its own line number."""
    path = write(
        tmp_path,
        "replyclock.yaml",
        """
        store:
          path: ./var/x.db
          retension: 10d
        sources:
          - name: support
            type: imap
            host: imap.example.com
            username: support@example.com
            password: secret
            since: 30
            folders: INBOX
        """,
    )
    assert problems_of(path) == [
        f"{path}:3: store.retension: unknown key, expected one of: path, retention "
        "(did you mean 'retention'?)",
        f"{path}:10: sources[0].since: a duration needs a unit: write 30s, 30m or 30h "
        "(got the bare number 30)",
        f"{path}:11: sources[0].folders: Input should be a valid list, got: 'INBOX'",
    ]


def test_check_command_prints_problems_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replyclock check` prints FILE:LINE problems on stdout and exits 1."""
    path = write(
        tmp_path,
        "bad.yaml",
        """
        metrics:
          listen: localhost
        sources: []
        """,
    )
    assert main(["check", "-c", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:2: metrics.listen: expected host:port such as 127.0.0.1:9465, got: 'localhost'",
        f"{path}:3: sources: List should have at least 1 item after validation, not 0",
    ]


def test_check_command_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The example config and the shipped rules pass `replyclock check`."""
    assert main(["check", "-c", str(REPO / "examples" / "demo.yaml")]) == 0
    assert "OK (1 source, 1 rules file, 3 policies, 3 calendars)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param(
            "sources:\n  - name: a\n    type: pop3\n",
            ":2: sources[0]: Input tag 'pop3' found using 'type' does not match any of the "
            "expected tags: 'imap', 'maildir', 'mbox', 'zendesk', 'freshdesk', 'helpscout', "
            "'github'",
            id="unknown_source_type",
        ),
        pytest.param(
            "sources:\n  - name: a\n    type: maildir\n    path: x\n  - name: a\n"
            "    type: maildir\n    path: y\n",
            ":1: sources: source name 'a' is used twice; names must be unique",
            id="duplicate_source_name",
        ),
        pytest.param(
            "log:\n  format: xml\nsources:\n  - {name: a, type: maildir, path: x}\n",
            ":2: log.format: Input should be 'logfmt' or 'json', got: 'xml'",
            id="bad_literal",
        ),
        pytest.param(
            "log:\n  level: info\n  level: debug\n"
            "sources:\n  - {name: a, type: maildir, path: x}\n",
            ":3: log.level: duplicate key; each key may appear once in a mapping, "
            "remove one of them",
            id="duplicate_key",
        ),
        pytest.param(
            "sources:\n  - name: a\n    type: maildir\n  path: x\n",
            ":4: YAML syntax error: expected <block end>, but found '?'",
            id="yaml_syntax",
        ),
        pytest.param(
            "team:\n  addresses: [not-an-address]\n"
            "sources:\n  - {name: a, type: maildir, path: x}\n",
            ":2: team.addresses[0]: expected an email address like support@example.com, "
            "got: 'not-an-address'",
            id="bad_address",
        ),
    ],
)
def test_single_mistakes_are_named_precisely(tmp_path: Path, yaml_text: str, expected: str) -> None:
    """Each kind of mistake is reported with its line, key path and an explanation."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    assert problems_of(path) == [f"{path}{expected}"]


def test_imap_credentials_need_exactly_one_secret(tmp_path: Path) -> None:
    """An IMAP source with no password, password_file or token is refused with a clear reason."""
    path = write(
        tmp_path,
        "c.yaml",
        """
        sources:
          - name: support
            type: imap
            host: imap.example.com
            username: support@example.com
        """,
    )
    assert problems_of(path) == [
        f"{path}:2: sources[0]: give exactly one of password, password_file or oauth2_token_file"
    ]


def test_environment_references_are_expanded_and_missing_ones_reported(tmp_path: Path) -> None:
    """`${VAR}` takes the environment's value; an unset variable is an error at its line."""
    path = write(
        tmp_path,
        "c.yaml",
        """
        sources:
          - name: support
            type: imap
            host: ${IMAP_HOST}
            username: support@example.com
            password: ${IMAP_PASSWORD}
        """,
    )
    loaded = load_config(path, environ={"IMAP_HOST": "mail.example.org", "IMAP_PASSWORD": "pw"})
    source = loaded.config.sources[0]
    assert isinstance(source, ImapSourceConfig)
    assert source.host == "mail.example.org"
    assert source.password is not None
    assert source.password.get_secret_value() == "pw"
    assert "pw" not in repr(source)
    assert problems_of(path, {"IMAP_HOST": "h"}) == [
        f"{path}:6: sources[0].password: environment variable IMAP_PASSWORD is not set; set it, "
        "or write ${IMAP_PASSWORD:-default} to give a default"
    ]


def test_password_file_must_exist_and_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    """password_file is resolved next to the config file and must be readable."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "imap").write_text("s3cret\n", encoding="utf-8")
    good = write(
        tmp_path,
        "good.yaml",
        """
        sources:
          - name: support
            type: imap
            host: imap.example.com
            username: u
            password_file: secrets/imap
        """,
    )
    source = load_config(good, environ={}).config.sources[0]
    assert isinstance(source, ImapSourceConfig)
    assert source.password_file == tmp_path / "secrets" / "imap"
    bad = write(tmp_path, "bad.yaml", good.read_text().replace("secrets/imap", "secrets/nope"))
    assert problems_of(bad) == [
        f"{bad}:6: sources[0].password_file: cannot read file {tmp_path}/secrets/nope: "
        "it does not exist or is not a file"
    ]


def test_defaults_fill_what_is_not_written(tmp_path: Path) -> None:
    """An IMAP source gets TLS on port 993, INBOX, 30 days of history and a 60 s interval."""
    path = write(
        tmp_path,
        "c.yaml",
        """
        sources:
          - {name: support, type: imap, host: h, username: u, password: p}
          - {name: local, type: maildir, path: mail, starttls: true}
        """,
    )
    assert problems_of(path) == [
        f"{path}:3: sources[1].starttls: unknown key, expected one of: folders, ignore_domains, "
        "ignore_senders, mailing_lists, name, path, poll_interval, sent_folders, since, team, "
        "timestamps, type"
    ]
    path.write_text(path.read_text().replace(", starttls: true", ""), encoding="utf-8")
    imap, local = load_config(path, environ={}).config.sources
    assert isinstance(imap, ImapSourceConfig)
    assert isinstance(local, MaildirSourceConfig)
    assert (imap.use_tls, imap.effective_port, imap.folders) == (True, 993, ["INBOX"])
    assert (imap.since, imap.poll_interval, imap.verify_tls) == (30 * 86400, 60, True)
    assert local.path == tmp_path / "mail"
