"""The shape of replyclock.yaml and of the rules files it includes, as pydantic models.

Every model forbids unknown keys: a misspelled key is an error, never silently ignored.
Durations are written with units (``30m``) and stored as integer seconds.
Relative paths are resolved against the directory of the file that names them, which the loader
passes in the validation context as ``base_dir``.
"""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.durations import parse_duration

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9-]{1,63}$")


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, (str, int)) else value


def _address(value: str) -> str:
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or not _DOMAIN.match(domain):
        raise ValueError(f"expected an email address like support@example.com, got: {value!r}")
    return text


def _domain(value: str) -> str:
    text = value.strip().lower().lstrip("@")
    if not _DOMAIN.match(text):
        raise ValueError(f"expected a domain like example.com, got: {value!r}")
    return text


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "a name must be 1-63 characters of lowercase letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit, got: {value!r}"
        )
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {value!r}") from exc
    return value


Seconds = Annotated[int, BeforeValidator(_duration), Field(ge=0)]
PositiveSeconds = Annotated[int, BeforeValidator(_duration), Field(gt=0)]
Address = Annotated[str, AfterValidator(_address)]
Domain = Annotated[str, AfterValidator(_domain)]
Name = Annotated[str, AfterValidator(_name)]
Regex = Annotated[str, AfterValidator(_regex)]


def resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    """Resolve a relative path against the directory of the file that named it."""
    base = (info.context or {}).get("base_dir")
    if value is None or value.is_absolute() or base is None:
        return value
    return Path(base) / value


def _readable_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"cannot read file {value}: it does not exist or is not a file")
    return value


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class StoreConfig(Strict):
    """Where the SQLite store lives and how long closed conversations keep their messages."""

    path: Path = Path("./var/replyclock.db")
    retention: PositiveSeconds = 180 * 86400

    _resolve = field_validator("path")(resolve_path)


class BasicAuthConfig(Strict):
    """HTTP basic authentication for /metrics (Prometheus' basic_auth)."""

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None

    _resolve = field_validator("password_file")(resolve_path)
    _readable = field_validator("password_file")(_readable_file)

    @model_validator(mode="after")
    def _one(self) -> BasicAuthConfig:
        if (self.password is None) == (self.password_file is None):
            raise ValueError("give exactly one of password or password_file")
        return self


class TlsConfig(Strict):
    """HTTPS for the endpoint, like Prometheus' web.config tls_server_config."""

    cert_file: Path
    key_file: Path

    _resolve = field_validator("cert_file", "key_file")(resolve_path)
    _readable = field_validator("cert_file", "key_file")(_readable_file)


class MetricsConfig(Strict):
    """The HTTP endpoint Prometheus scrapes."""

    listen: str = "127.0.0.1:9465"
    buckets: list[PositiveSeconds] | None = None  # histogram bounds; default suits support targets
    # false: the response-time histograms per policy only (no source label), fewer series
    histograms_by_source: bool = True
    basic_auth: BasicAuthConfig | None = None  # protects /metrics (not /healthz, /readyz)
    bearer_token: SecretStr | None = None  # or a bearer token (Prometheus' authorization)
    bearer_token_file: Path | None = None
    tls: TlsConfig | None = None

    _resolve = field_validator("bearer_token_file")(resolve_path)
    _readable = field_validator("bearer_token_file")(_readable_file)

    @model_validator(mode="after")
    def _one_auth(self) -> MetricsConfig:
        chosen = [
            name
            for name in ("basic_auth", "bearer_token", "bearer_token_file")
            if getattr(self, name) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(f"choose one way to protect /metrics, got: {', '.join(chosen)}")
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:9465, got: {value!r}")
        del host
        return value


class LogConfig(Strict):
    """How replyclock writes its log lines to standard error."""

    format: Literal["logfmt", "json"] = "logfmt"
    level: Literal["debug", "info", "warning", "error"] = "info"


class TeamConfig(Strict):
    """Who the support team is: mail from these addresses or domains is a reply."""

    addresses: list[Address] = []
    domains: list[Domain] = []


class MailClassificationConfig(Strict):
    """Settings every mail source shares for telling customers, replies and noise apart."""

    team: TeamConfig = TeamConfig()
    ignore_senders: list[str] = []  # glob patterns on the sender address, added to the defaults
    ignore_domains: list[Domain] = []
    mailing_lists: Literal["ignore", "count"] = "ignore"
    contact_forms: bool = True  # From us or no-reply with the customer in Reply-To: a customer
    form_senders: list[str] = []  # more From glob patterns a contact form sends from
    # A customer's "Thanks!" after our reply: starts no clock (ignore), or does (count).
    closers: Literal["ignore", "count"] = "ignore"
    since: PositiveSeconds = 30 * 86400
    poll_interval: PositiveSeconds = 60


def _one_of(model: BaseModel, *keys: str) -> str:
    """The one of ``keys`` that is set; an error names them all when none or several are."""
    given = [key for key in keys if getattr(model, key) is not None]
    if len(given) != 1:
        listed = f"{', '.join(keys[:-1])} or {keys[-1]}"
        raise ValueError(
            f"give exactly one of {listed}" + (f" (got {', '.join(given)})" if given else "")
        )
    return given[0]


class MicrosoftAuthConfig(Strict):
    """App-only OAuth2 with Microsoft Entra (the client-credentials flow, run by msal).

    The app registration's tenant and client ids, and its client secret or certificate; each
    may be given in the config (from ``${ENV}``) or as a ``*_file`` read at each token request.
    """

    type: Literal["microsoft"]
    tenant_id: str | None = Field(default=None, min_length=1)
    tenant_id_file: Path | None = None
    client_id: str | None = Field(default=None, min_length=1)
    client_id_file: Path | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    certificate: SecretStr | None = None  # PEM: the private key and its certificate
    certificate_file: Path | None = None
    authority_host: str = Field(
        default="login.microsoftonline.com", pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
    )  # national clouds: login.microsoftonline.us, login.partner.microsoftonline.cn
    ca_file: Path | None = None  # trust for the identity provider, when not the system's

    _files = ("tenant_id_file", "client_id_file", "client_secret_file", "certificate_file")
    _resolve = field_validator(*_files, "ca_file")(resolve_path)
    _readable = field_validator(*_files, "ca_file")(_readable_file)

    @model_validator(mode="after")
    def _credentials(self) -> MicrosoftAuthConfig:
        _one_of(self, "tenant_id", "tenant_id_file")
        _one_of(self, "client_id", "client_id_file")
        _one_of(self, "client_secret", "client_secret_file", "certificate", "certificate_file")
        return self


class GoogleAuthConfig(Strict):
    """A Google service account with domain-wide delegation, run by google-auth.

    The key is the service account's JSON key file; replyclock signs in as ``subject`` (the
    mailbox; by default the source's username).
    """

    type: Literal["google"]
    service_account: SecretStr | None = None  # the JSON key itself, e.g. from ${ENV}
    service_account_file: Path | None = None
    subject: Address | None = None
    ca_file: Path | None = None

    _resolve = field_validator("service_account_file", "ca_file")(resolve_path)
    _readable = field_validator("service_account_file", "ca_file")(_readable_file)

    @model_validator(mode="after")
    def _credentials(self) -> GoogleAuthConfig:
        _one_of(self, "service_account", "service_account_file")
        return self


AuthConfig = Annotated[MicrosoftAuthConfig | GoogleAuthConfig, Field(discriminator="type")]


class ImapSourceConfig(MailClassificationConfig):
    """An IMAP mailbox, read-only."""

    type: Literal["imap"]
    name: Name
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, gt=0, lt=65536)
    tls: bool | None = None  # implicit TLS (port 993); off when starttls is set
    starttls: bool = False
    verify_tls: bool = True
    ca_file: Path | None = None
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    oauth2_token_file: Path | None = None
    auth: AuthConfig | None = None  # OAuth2 that replyclock runs itself (XOAUTH2)
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    sent_folders: list[str] | None = None  # default: found by SPECIAL-USE \Sent or the name
    batch_size: int = Field(default=500, ge=1, le=5000)
    timeout: PositiveSeconds = 30
    reconcile_interval: PositiveSeconds = 15 * 60
    idle: bool = True
    # The folders held in IDLE (one connection each); default: every folder in ``folders``.
    # Fewer, or ``idle: false``, for servers that cap connections per mailbox.
    idle_folders: list[str] | None = None

    _resolve = field_validator("ca_file", "password_file", "oauth2_token_file")(resolve_path)

    @field_validator("ca_file", "password_file", "oauth2_token_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"cannot read file {value}: it does not exist or is not a file")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ImapSourceConfig:
        _one_of(self, "password", "password_file", "oauth2_token_file", "auth")
        if self.tls and self.starttls:
            raise ValueError("tls and starttls exclude each other; set only starttls: true")
        unknown = [f for f in self.idle_folders or () if f not in self.folders]
        if unknown:
            raise ValueError(
                f"idle_folders names folders not in folders: {', '.join(unknown)}; IDLE only "
                "signals mail in folders that are read (add them to folders, or remove them)"
            )
        return self

    @property
    def idle_on(self) -> list[str]:
        """The folders held in IMAP IDLE: none with ``idle: false``."""
        if not self.idle:
            return []
        return list(self.idle_folders) if self.idle_folders is not None else list(self.folders)

    @property
    def use_tls(self) -> bool:
        """Whether to speak TLS from the first byte (IMAPS)."""
        return self.tls if self.tls is not None else not self.starttls

    @property
    def effective_port(self) -> int:
        """The configured port, or 993 for implicit TLS and 143 otherwise."""
        return self.port or (993 if self.use_tls else 143)


class MaildirSourceConfig(MailClassificationConfig):
    """A Maildir tree on disk (Maildir++ subfolders such as .Sent), read-only."""

    type: Literal["maildir"]
    name: Name
    path: Path
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    sent_folders: list[str] = ["Sent"]
    timestamps: Literal["received", "date"] = "received"  # file time, or the Date header

    _resolve = field_validator("path")(resolve_path)


class MboxSourceConfig(MailClassificationConfig):
    """One or more mbox files, such as an export used to backfill history."""

    type: Literal["mbox"]
    name: Name
    path: Path
    sent_path: Path | None = None

    _resolve = field_validator("path", "sent_path")(resolve_path)


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"expected an http(s) URL like https://example.com, got: {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class ApiSourceConfig(Strict):
    """Settings every helpdesk and issue-tracker source shares."""

    name: Name
    since: PositiveSeconds = 30 * 86400  # how far back the first sync reads
    poll_interval: PositiveSeconds = 60
    timeout: PositiveSeconds = 30
    base_url: HttpUrl | None = None  # the API's address when not the vendor's default
    # A customer's public "Thanks!" after our reply: starts no clock (ignore), or does (count).
    closers: Literal["ignore", "count"] = "ignore"

    @staticmethod
    def _secret_given(model: BaseModel, *pairs: tuple[str, str]) -> None:
        """Exactly one of each (value, file) pair of secrets that is required."""
        for value_key, file_key in pairs:
            _one_of(model, value_key, file_key)


class ZendeskSourceConfig(ApiSourceConfig):
    """A Zendesk Support account, read through the incremental ticket export and audits."""

    type: Literal["zendesk"]
    subdomain: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    email: Address  # the agent the API token belongs to
    api_token: SecretStr | None = None
    api_token_file: Path | None = None

    _resolve = field_validator("api_token_file")(resolve_path)
    _readable = field_validator("api_token_file")(_readable_file)

    @model_validator(mode="after")
    def _secrets(self) -> ZendeskSourceConfig:
        self._secret_given(self, ("api_token", "api_token_file"))
        return self

    @property
    def api_url(self) -> str:
        """Where the API lives."""
        return self.base_url or f"https://{self.subdomain}.zendesk.com"


class FreshdeskSourceConfig(ApiSourceConfig):
    """A Freshdesk account, read through tickets updated since a cursor and conversations."""

    type: Literal["freshdesk"]
    domain: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")  # <domain>.freshdesk.com
    api_key: SecretStr | None = None
    api_key_file: Path | None = None

    _resolve = field_validator("api_key_file")(resolve_path)
    _readable = field_validator("api_key_file")(_readable_file)

    @model_validator(mode="after")
    def _secrets(self) -> FreshdeskSourceConfig:
        self._secret_given(self, ("api_key", "api_key_file"))
        return self

    @property
    def api_url(self) -> str:
        """Where the API lives."""
        return self.base_url or f"https://{self.domain}.freshdesk.com"


class HelpScoutSourceConfig(ApiSourceConfig):
    """Help Scout mailboxes, read through the Mailbox API 2.0 (OAuth2 client credentials)."""

    type: Literal["helpscout"]
    app_id: str = Field(min_length=1)
    app_secret: SecretStr | None = None
    app_secret_file: Path | None = None
    mailboxes: list[int] = []  # mailbox ids; empty: every mailbox the app can read

    _resolve = field_validator("app_secret_file")(resolve_path)
    _readable = field_validator("app_secret_file")(_readable_file)

    @model_validator(mode="after")
    def _secrets(self) -> HelpScoutSourceConfig:
        self._secret_given(self, ("app_secret", "app_secret_file"))
        return self

    @property
    def api_url(self) -> str:
        """Where the API lives."""
        return self.base_url or "https://api.helpscout.net"


class GitHubSourceConfig(ApiSourceConfig):
    """Issues (and optionally pull requests) of GitHub repositories, read through REST."""

    type: Literal["github"]
    repositories: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]] = Field(
        min_length=1
    )
    token: SecretStr | None = None
    token_file: Path | None = None
    responders: list[Literal["OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR"]] = [
        "OWNER",
        "MEMBER",
        "COLLABORATOR",
    ]
    mode: Literal["maintainers", "issue-metrics"] = "maintainers"
    include_pull_requests: bool = False
    ignore_users: list[str] = []  # logins whose comments never count (bots are always ignored)

    _resolve = field_validator("token_file")(resolve_path)
    _readable = field_validator("token_file")(_readable_file)

    @model_validator(mode="after")
    def _secrets(self) -> GitHubSourceConfig:
        self._secret_given(self, ("token", "token_file"))
        return self

    @property
    def api_url(self) -> str:
        """Where the API lives (GitHub Enterprise: https://HOST/api/v3)."""
        return self.base_url or "https://api.github.com"


class GraphSourceConfig(MailClassificationConfig):
    """A Microsoft 365 shared mailbox read through Microsoft Graph (application Mail.Read)."""

    type: Literal["graph"]
    name: Name
    mailbox: Address  # the shared mailbox's address (or user principal name)
    auth: MicrosoftAuthConfig
    # Folders by well-known name (inbox, sentitems, archive, ...) or display name.
    folders: list[str] = Field(default=["inbox"], min_length=1)
    sent_folders: list[str] = ["sentitems"]
    # Agents whose own Sent Items hold the replies they send as the shared mailbox.
    reply_mailboxes: list[Address] = []
    base_url: HttpUrl | None = None  # default https://graph.microsoft.com/v1.0
    ca_file: Path | None = None
    timeout: PositiveSeconds = 30
    page_size: int = Field(default=100, ge=1, le=1000)

    _resolve = field_validator("ca_file")(resolve_path)
    _readable = field_validator("ca_file")(_readable_file)

    @property
    def api_url(self) -> str:
        """Where Graph lives (21Vianet: https://microsoftgraph.chinacloudapi.cn/v1.0)."""
        return (self.base_url or "https://graph.microsoft.com/v1.0").rstrip("/")


SourceConfig = Annotated[
    ImapSourceConfig
    | GraphSourceConfig
    | MaildirSourceConfig
    | MboxSourceConfig
    | ZendeskSourceConfig
    | FreshdeskSourceConfig
    | HelpScoutSourceConfig
    | GitHubSourceConfig,
    Field(discriminator="type"),
]


def _hhmm_range(value: str) -> str:
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise ValueError
        time.fromisoformat(start.strip())
        time.fromisoformat(end.strip())
    except ValueError:
        raise ValueError(f'expected a time range like "20:00-08:00", got: {value!r}') from None
    return value


def _hhmm(value: str) -> str:
    try:
        time.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f'expected a time of day like "09:00", got: {value!r}') from None
    return value.strip()


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'unknown time zone {value!r}; expected an IANA name such as "Europe/Berlin"'
        ) from None
    return value


TimeRange = Annotated[str, AfterValidator(_hhmm_range)]
TimeOfDay = Annotated[str, AfterValidator(_hhmm)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]


def _slack_actor(value: str) -> str:
    if not re.fullmatch(r"[UWS][A-Z0-9]{2,}", value):
        raise ValueError(
            "expected a Slack user id (U0123ABCD, W0123ABCD) or user group id (S0123ABCD), "
            f"got: {value!r}"
        )
    return value


SlackActor = Annotated[str, AfterValidator(_slack_actor)]


class SlackConfig(Strict):
    """Slack through a bot token (chat.postMessage, threads, chat.update), and optionally the
    alert buttons over Socket Mode with an app-level token."""

    token: SecretStr | None = None
    token_file: Path | None = None
    channel: str = Field(min_length=1)  # default channel, "#support-alerts" or an id "C0123"
    base_url: HttpUrl = "https://slack.com/api"
    # An app-level token (xapp-..., scope connections:write): the daemon connects out to Slack
    # over Socket Mode to receive the alerts' "No reply needed" / "Snooze" buttons.
    app_token: SecretStr | None = None
    app_token_file: Path | None = None
    allowed_actors: list[SlackActor] = []  # who may press them: user ids, or user groups S...

    _resolve = field_validator("token_file", "app_token_file")(resolve_path)
    _readable = field_validator("token_file", "app_token_file")(_readable_file)

    @field_validator("app_token")
    @classmethod
    def _app_level(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "expected the Slack app's app-level token (xapp-...), not a bot or user "
                "token; create one under Basic Information > App-Level Tokens with the "
                "connections:write scope"
            )
        return value

    @model_validator(mode="after")
    def _secrets(self) -> SlackConfig:
        ApiSourceConfig._secret_given(self, ("token", "token_file"))
        if self.app_token is not None and self.app_token_file is not None:
            raise ValueError("give one of app_token or app_token_file, not both")
        if self.actions_enabled and not self.allowed_actors:
            raise ValueError(
                "allowed_actors must name who may dismiss and snooze alerts from Slack (user "
                "ids U..., or user groups S...) when app_token or app_token_file is set"
            )
        return self

    @property
    def actions_enabled(self) -> bool:
        """Whether the alert buttons are served (an app-level token is configured)."""
        return self.app_token is not None or self.app_token_file is not None


class WebhookConfig(Strict):
    """A Slack incoming webhook: simpler, one channel, no threads and no updates."""

    url: SecretStr | None = None  # the webhook URL is a secret: anyone holding it can post
    url_file: Path | None = None

    _resolve = field_validator("url_file")(resolve_path)
    _readable = field_validator("url_file")(_readable_file)

    @model_validator(mode="after")
    def _secrets(self) -> WebhookConfig:
        ApiSourceConfig._secret_given(self, ("url", "url_file"))
        return self


class DigestConfig(Strict):
    """A daily summary per channel at a local time."""

    time: TimeOfDay = "09:00"
    channels: list[str] = []  # default: the default channel


class AlertsConfig(Strict):
    """Where and how alerts are delivered."""

    slack: SlackConfig | None = None
    webhook: WebhookConfig | None = None
    include_sender: bool = False  # show the customer's address (name and domain always)
    include_subject: bool = False  # show the subject (alerts may go to wide channels)
    # The team's zone, for due times in alerts, quiet hours and the digest time; without it
    # due times use each policy's calendar zone, and quiet hours and the digest use UTC.
    timezone: TimeZoneName | None = None
    quiet_hours: TimeRange | None = None
    quiet: Literal["hold", "drop"] = "hold"  # held alerts are sent when quiet hours end
    burst: int = Field(default=20, ge=2)  # more alerts than this at once -> one summary
    digest: DigestConfig | None = None

    @model_validator(mode="after")
    def _one_way(self) -> AlertsConfig:
        if self.slack is not None and self.webhook is not None:
            raise ValueError("configure either slack or webhook, not both")
        return self


class Config(Strict):
    """The whole replyclock.yaml."""

    store: StoreConfig = StoreConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    team: TeamConfig = TeamConfig()
    alerts: AlertsConfig | None = None  # no section: alerts are only logged (console)
    rules: list[Path] = []
    sources: list[SourceConfig] = Field(min_length=1)

    _resolve = field_validator("rules", mode="after")(
        lambda value, info: [resolve_path(p, info) for p in value]
    )

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for source in value:
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice; names must be unique")
            seen.add(source.name)
        return value


# --- rules files -------------------------------------------------------------------------------


class HolidaysConfig(Strict):
    """Public holidays from the `holidays` package, by ISO country and optional subdivision."""

    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None


WeekdayHours = list[str] | Literal["closed"]


class CalendarConfig(Strict):
    """Business hours: a time zone, weekly hours, holidays and extra closed or open dates."""

    timezone: str
    hours: dict[str, WeekdayHours] | Literal["24x7"]
    holidays: HolidaysConfig | None = None
    closed: list[date] = []
    open: list[date] | dict[date, list[str]] = []
    ics: Path | None = None

    _resolve = field_validator("ics")(resolve_path)

    @field_validator("ics")
    @classmethod
    def _ics_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"cannot read iCalendar file {value}: it does not exist")
        return value


class Condition(Strict):
    """A match condition: every key given must match; lists match when any value matches."""

    any: list[Condition] | None = None
    all: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")
    source: list[str] | None = None
    folder: list[str] | None = None
    sender: list[str] | None = None  # addresses or glob patterns
    sender_domain: list[Domain] | None = None
    sender_regex: Regex | None = None
    recipient: list[str] | None = None
    subject_regex: Regex | None = None
    priority: list[str] | None = None
    tags: list[str] | None = None
    attributes: dict[str, list[str]] | None = None  # helpdesk fields: {group: [...], brand: [...]}

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


TicketStatus = Literal["open", "pending", "on_hold", "solved", "closed"]


class TargetsConfig(Strict):
    """Reply targets in business time."""

    first_response: PositiveSeconds
    next_response: PositiveSeconds | None = None


def _warning(value: Any) -> Any:
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1]
        try:
            percent = float(number)
        except ValueError:
            raise ValueError(
                f"expected a percentage like 75% or a duration like 15m, got: {value!r}"
            ) from None
        if not 0 < percent < 100:
            raise ValueError(f"a warning percentage must be between 0% and 100%, got: {value!r}")
        return {"percent": percent}
    if isinstance(value, (str, int)):
        return {"before_due": parse_duration(value)}
    return value


class WarningConfig(Strict):
    """When to warn: at a percentage of the target, or a duration before the due time."""

    percent: float | None = None
    before_due: int | None = None


class EscalationStep(Strict):
    """One escalation after a breach: who else to tell, and when."""

    after: Seconds
    mention: list[str] = []
    channel: str | None = None


class PolicyAlertsConfig(Strict):
    """A policy's alerting: on or off, where, whom to mention, and its own quiet hours."""

    enabled: bool = True
    channel: str | None = None  # default: the alerts' default channel
    mention: list[str] = []  # on breach: "<@U0123>", "<!subteam^S0123>"
    quiet_hours: TimeRange | None = None
    quiet: Literal["hold", "drop"] | None = None


class PolicyConfig(Strict):
    """An SLA policy: which conversations it covers, on which calendar, with which targets."""

    name: Name
    match: Condition | None = None  # no match: catches every conversation (a default policy)
    calendar: str
    targets: TargetsConfig
    warning: Annotated[WarningConfig, BeforeValidator(_warning)] = WarningConfig(percent=75.0)
    escalation: list[EscalationStep] = []
    buckets: list[PositiveSeconds] | None = None  # response-time histogram bounds for this policy
    alerts: PolicyAlertsConfig = PolicyAlertsConfig()
    pause_on: list[TicketStatus] = []  # helpdesk statuses that pause the clock
    stop_on: list[TicketStatus] = ["solved", "closed"]  # statuses that stop it (not a breach)


class IgnoreConfig(Strict):
    """Senders whose messages are neither customer messages nor replies."""

    senders: list[str] = []  # glob patterns on the sender address, e.g. "alerts@*"
    domains: list[Domain] = []


class RulesFile(Strict):
    """One file under rules/: calendars, policies and ignore rules."""

    calendars: dict[Name, CalendarConfig] = {}
    policies: list[PolicyConfig] = []
    ignore: IgnoreConfig = IgnoreConfig()
    # More closing phrases ("tusen takk", "谢谢"), added to the built-in ones of six languages.
    closing_phrases: list[Annotated[str, Field(min_length=1, max_length=80)]] = []
