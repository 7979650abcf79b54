"""Config loading: every mistake reported at once, with file, line and key path."""

from __future__ import annotations

import textwrap
import typing
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, SecretStr

from monitor.cli import main
from monitor.config import models
from monitor.config.loader import load_config, validate_document
from monitor.config.models import ImapSourceConfig, MaildirSourceConfig
from monitor.config.yamlsource import load_yaml
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


def imap_password_config(tmp_path: Path, password: str, *, one_line: bool = False) -> Path:
    """c.yaml with one IMAP source whose password is written as ``password``: on line 6, or
    with ``one_line`` on line 2, the source written as one flow mapping."""
    if one_line:
        source = f"  - {{name: a, type: imap, host: h, username: u, password: {password}}}\n"
    else:
        source = (
            "  - name: support\n"
            "    type: imap\n"
            "    host: imap.example.com\n"
            "    username: support@example.com\n"
            f"    password: {password}\n"
        )
    return write(tmp_path, "c.yaml", "sources:\n" + source)


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
            "expected tags: 'imap', 'graph', 'maildir', 'mbox', 'zendesk', 'freshdesk', "
            "'helpscout', 'github'",
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
        f"{path}:2: sources[0]: give exactly one of password, password_file, oauth2_token_file "
        "or auth"
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
        f"{path}:3: sources[1].starttls: unknown key, expected one of: closers, contact_forms, "
        "folders, form_senders, ignore_domains, ignore_senders, mailing_lists, name, path, "
        "poll_interval, sent_folders, since, team, timestamps, type"
    ]
    path.write_text(path.read_text().replace(", starttls: true", ""), encoding="utf-8")
    imap, local = load_config(path, environ={}).config.sources
    assert isinstance(imap, ImapSourceConfig)
    assert isinstance(local, MaildirSourceConfig)
    assert (imap.use_tls, imap.effective_port, imap.folders) == (True, 993, ["INBOX"])
    assert (imap.since, imap.poll_interval, imap.verify_tls) == (30 * 86400, 60, True)
    assert local.path == tmp_path / "mail"


# --- secrets never shown in problems -------------------------------------------------------

# Every SecretStr field of the models, with the YAML that puts the number 7319000 + i there.
SECRET_FIELDS = {
    ("BasicAuthConfig", "password"): "metrics.basic_auth.password",
    ("MetricsConfig", "bearer_token"): "metrics.bearer_token",
    ("ImapSourceConfig", "password"): "sources[0].password",
    ("ZendeskSourceConfig", "api_token"): "sources[1].api_token",
    ("FreshdeskSourceConfig", "api_key"): "sources[2].api_key",
    ("HelpScoutSourceConfig", "app_secret"): "sources[3].app_secret",
    ("GitHubSourceConfig", "token"): "sources[4].token",
    ("SlackConfig", "token"): "alerts.slack.token",
    ("SlackConfig", "app_token"): "alerts.slack.app_token",
    ("WebhookConfig", "url"): "alerts.webhook.url",
    ("MicrosoftAuthConfig", "client_secret"): "sources[5].auth.client_secret",
    ("MicrosoftAuthConfig", "certificate"): "sources[6].auth.certificate",
    ("GoogleAuthConfig", "service_account"): "sources[7].auth.service_account",
}
EVERY_SECRET_AS_A_NUMBER = """
metrics:
  basic_auth: {username: prom, password: 7319000}
  bearer_token: 7319001
alerts:
  slack: {channel: "#support", token: 7319007, app_token: 7319012}
  webhook: {url: 7319008}
sources:
  - {name: a, type: imap, host: h, username: u, password: 7319002}
  - {name: b, type: zendesk, subdomain: acme, email: a@acme.example, api_token: 7319003}
  - {name: c, type: freshdesk, domain: acme, api_key: 7319004}
  - {name: d, type: helpscout, app_id: x, app_secret: 7319005}
  - {name: e, type: github, repositories: [acme/widgets], token: 7319006}
  - {name: f, type: imap, host: h, username: u,
     auth: {type: microsoft, tenant_id: t, client_id: c, client_secret: 7319009}}
  - {name: g, type: imap, host: h, username: u,
     auth: {type: microsoft, tenant_id: t, client_id: c, certificate: 7319010}}
  - {name: h, type: imap, host: h, username: u, auth: {type: google, service_account: 7319011}}
"""


def test_every_secret_field_of_the_models_is_covered_below() -> None:
    """The table of secret fields the next test checks names every SecretStr field there is."""
    found = {
        (model.__name__, name)
        for model in vars(models).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, info in model.model_fields.items()
        if SecretStr in (info.annotation, *typing.get_args(info.annotation))
    }
    assert found == set(SECRET_FIELDS)


def test_no_secret_field_shows_its_value_when_it_is_not_a_string(tmp_path: Path) -> None:
    """A number in any secret field is refused with a fix that shows the key, never the value."""
    path = write(tmp_path, "c.yaml", EVERY_SECRET_AS_A_NUMBER)
    found = problems_of(path)
    expected = [
        f"{path}:{line}: {key_path}: must be a string, got a number (value not shown: it is a "
        f'secret); quote it in the YAML, e.g. {key_path.rsplit(".", 1)[-1]}: "..."'
        for line, key_path in [
            (2, "metrics.basic_auth.password"),
            (3, "metrics.bearer_token"),
            (5, "alerts.slack.token"),
            (5, "alerts.slack.app_token"),
            (6, "alerts.webhook.url"),
            (8, "sources[0].password"),
            (9, "sources[1].api_token"),
            (10, "sources[2].api_key"),
            (11, "sources[3].app_secret"),
            (12, "sources[4].token"),
            (14, "sources[5].auth.client_secret"),
            (16, "sources[6].auth.certificate"),
            (17, "sources[7].auth.service_account"),
        ]
    ]
    assert sorted(found) == sorted(expected)
    assert not [line for line in found if "73190" in line]


@pytest.mark.parametrize(
    ("value", "hidden", "got", "fix"),
    [
        pytest.param("73194628", ["73194628"], "a number", "quote it in the YAML", id="int"),
        pytest.param("7319.4628", ["7319", "4628"], "a number", "quote it in the YAML", id="float"),
        pytest.param("true", ["true", "True"], "a boolean", "quote it in the YAML", id="bool"),
        pytest.param("2031-04-05", ["2031", "04-05"], "a date", "quote it in the YAML", id="date"),
        pytest.param(
            "[hunter, 2]",
            ["hunter", "'2'", "[2"],
            "a list",
            "write the secret as one quoted string",
            id="list",
        ),
        pytest.param(
            "{hunter: 73194628}",
            ["hunter", "73194628"],
            "a mapping",
            "write the secret as one quoted string",
            id="mapping",
        ),
    ],
)
def test_check_never_prints_a_secret_of_the_wrong_type(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
    hidden: list[str],
    got: str,
    fix: str,
) -> None:
    """`replyclock check` says a secret must be a string and how to write it, and no part of
    the value appears on stdout or stderr."""
    path = imap_password_config(tmp_path, value)
    assert main(["check", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"{path}:6: sources[0].password: must be a string, got {got} (value not shown: it is "
        f'a secret); {fix}, e.g. password: "..."'
    ]
    assert captured.err == "1 problem found\n"
    for piece in hidden:
        assert piece not in captured.out + captured.err


def test_a_list_or_mapping_is_never_echoed_where_a_section_was_expected(tmp_path: Path) -> None:
    """A section written as a list is refused by its kind, not its text, as it may hold a secret."""
    path = write(
        tmp_path,
        "c.yaml",
        """
        metrics:
          - bearer_token: s3cret-token
        sources:
          - {name: a, type: maildir, path: x}
        """,
    )
    assert problems_of(path) == [
        f"{path}:1: metrics: Input should be a valid dictionary or instance of MetricsConfig, "
        "got a list"
    ]


class _Password(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["password"]
    password: SecretStr


class _Token(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["token"]
    token: SecretStr


class _Untagged(BaseModel):
    login: _Password | _Token


def test_a_secret_key_stays_hidden_where_the_model_cannot_be_told(tmp_path: Path) -> None:
    """In a union without a tag, a key that is a secret in any of the models hides its value."""
    doc = load_yaml(write(tmp_path, "c.yaml", "login:\n  kind: password\n  password: 73194628\n"))
    _, found = validate_document(doc, _Untagged, {})
    assert "73194628" not in "\n".join(str(p) for p in found)
    assert f"{doc.file}:3: login.password: must be a string, got a number (value not shown: " in (
        "\n".join(str(p) for p in found)
    )


# --- ${...} references -------------------------------------------------------------------

BAD_REFERENCE = (
    "${ does not start an environment reference (value not shown: it may be a secret); "
    "write ${NAME} or ${NAME:-default}, where NAME is letters, digits and underscores "
    "not starting with a digit, or write $${ for a literal ${"
)


@pytest.mark.parametrize(
    "written",
    [
        pytest.param('"${BROKEN"', id="unclosed"),
        pytest.param('"${IMAP_PASSWORD:-fallback"', id="unclosed_default"),
        pytest.param('"${}"', id="empty_name"),
        pytest.param('"${1PASSWORD}"', id="name_starts_with_a_digit"),
        pytest.param('"${IMAP-PASSWORD}"', id="dash_in_name"),
        pytest.param('"hunter2${"', id="trailing"),
        pytest.param('"${IMAP_PASSWORD}hunter2${"', id="good_then_bad"),
    ],
)
def test_a_dollar_brace_that_starts_no_reference_is_a_located_problem(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    written: str,
) -> None:
    """`${` that does not open a `${NAME}` or `${NAME:-default}` reference is refused at its
    key, with the right forms, and `replyclock check` does not print the value."""
    monkeypatch.setenv("IMAP_PASSWORD", "pw")
    path = imap_password_config(tmp_path, written)
    assert problems_of(path, {"IMAP_PASSWORD": "pw"}) == [
        f"{path}:6: sources[0].password: {BAD_REFERENCE}"
    ]
    assert main(["check", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{path}:6: sources[0].password: {BAD_REFERENCE}\n"
    for piece in ("BROKEN", "fallback", "1PASSWORD", "IMAP-PASSWORD", "hunter2"):
        assert piece not in captured.out + captured.err


@pytest.mark.parametrize(
    ("written", "loaded"),
    [
        pytest.param('"$${NOT_EXPANDED}"', "${NOT_EXPANDED}", id="escaped_reference"),
        pytest.param('"pa$${ss"', "pa${ss", id="escaped_unclosed"),
        pytest.param('"${USER_PART}-$${x}"', "alice-${x}", id="reference_then_escape"),
        pytest.param('"pa$$word"', "pa$$word", id="double_dollar_without_brace_stays"),
        pytest.param('"${MISSING:-$$x}"', "$$x", id="default_taken_as_written"),
    ],
)
def test_double_dollar_brace_writes_a_literal_dollar_brace(
    tmp_path: Path, written: str, loaded: str
) -> None:
    """`$${` stands for a literal `${`; other dollars are kept as written."""
    path = imap_password_config(tmp_path, written, one_line=True)
    source = load_config(path, environ={"USER_PART": "alice"}).config.sources[0]
    assert isinstance(source, ImapSourceConfig)
    assert source.password is not None
    assert source.password.get_secret_value() == loaded


@pytest.mark.parametrize(
    ("written", "message"),
    [
        pytest.param(
            "!!int hunter2",
            "the value cannot be read as !!int (value not shown: it may be a secret); "
            "remove the !!int tag, or write a value that fits it",
            id="explicit_tag",
        ),
        pytest.param(
            "2031-13-45",
            "the value cannot be read as !!timestamp (value not shown: it may be a secret); "
            "quote it to make it a string",
            id="looks_like_a_date",
        ),
    ],
)
def test_a_value_its_yaml_type_cannot_read_is_a_problem_without_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str, message: str
) -> None:
    """A scalar PyYAML cannot construct is reported at its key instead of raising, unshown."""
    path = imap_password_config(tmp_path, written, one_line=True)
    assert main(["check", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"{path}:2: sources[0].password: {message}\n"
    assert "hunter2" not in captured.out + captured.err
    assert "2031" not in captured.out + captured.err
