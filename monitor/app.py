"""Wiring shared by the command line and the daemon: config in, sources and store out."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from monitor.alerts.base import Notifier
from monitor.alerts.console import ConsoleNotifier
from monitor.alerts.slack import SlackNotifier, WebhookNotifier
from monitor.config.loader import LoadedConfig
from monitor.config.models import (
    FreshdeskSourceConfig,
    GitHubSourceConfig,
    GraphSourceConfig,
    HelpScoutSourceConfig,
    ImapSourceConfig,
    MailClassificationConfig,
    MaildirSourceConfig,
    MboxSourceConfig,
    ZendeskSourceConfig,
)
from monitor.mail.classify import DEFAULT_IGNORE_SENDERS, MailboxIdentity
from monitor.sources.base import Source
from monitor.sources.files import MaildirSource, MboxSource
from monitor.sources.freshdesk import FreshdeskSource
from monitor.sources.github import GitHubSource
from monitor.sources.graph import GraphSource
from monitor.sources.helpscout import HelpScoutSource
from monitor.sources.imap import ImapSource, Progress
from monitor.sources.zendesk import ZendeskSource
from monitor.store import Store


def mailbox_identity(loaded: LoadedConfig, source: MailClassificationConfig) -> MailboxIdentity:
    """Who the team is for one mail source: global team and ignore rules plus the source's own."""
    team = loaded.config.team
    ignore_senders: list[str] = [*DEFAULT_IGNORE_SENDERS, *source.ignore_senders]
    ignore_domains: list[str] = list(source.ignore_domains)
    for _, rules in loaded.rules:
        ignore_senders.extend(p.lower() for p in rules.ignore.senders)
        ignore_domains.extend(rules.ignore.domains)
    return MailboxIdentity(
        team_addresses=frozenset([*team.addresses, *source.team.addresses]),
        team_domains=frozenset([*team.domains, *source.team.domains]),
        ignore_senders=tuple(dict.fromkeys(ignore_senders)),
        ignore_domains=frozenset(ignore_domains),
        mailing_lists=source.mailing_lists,
        contact_forms=source.contact_forms,
        form_senders=tuple(source.form_senders),
        closers=source.closers,
        closing_phrases=closing_phrases(loaded),
    )


def closing_phrases(loaded: LoadedConfig) -> tuple[str, ...]:
    """The closing phrases the rules files add to the built-in ones."""
    return tuple(dict.fromkeys(p for _, rules in loaded.rules for p in rules.closing_phrases))


def build_sources(loaded: LoadedConfig, progress: Progress | None = None) -> list[Source]:
    """One source object per configured source, in config order."""
    sources: list[Source] = []
    for config in loaded.config.sources:
        if isinstance(config, ImapSourceConfig):
            identity = mailbox_identity(loaded, config)
            sources.append(ImapSource(config, identity, progress=progress))
        elif isinstance(config, GraphSourceConfig):
            sources.append(GraphSource(config, mailbox_identity(loaded, config)))
        elif isinstance(config, MaildirSourceConfig):
            sources.append(MaildirSource(config, mailbox_identity(loaded, config)))
        elif isinstance(config, MboxSourceConfig):
            sources.append(MboxSource(config, mailbox_identity(loaded, config)))
        elif isinstance(config, ZendeskSourceConfig):
            sources.append(ZendeskSource(config, closing_phrases=closing_phrases(loaded)))
        elif isinstance(config, FreshdeskSourceConfig):
            sources.append(FreshdeskSource(config, closing_phrases=closing_phrases(loaded)))
        elif isinstance(config, HelpScoutSourceConfig):
            sources.append(HelpScoutSource(config, closing_phrases=closing_phrases(loaded)))
        elif isinstance(config, GitHubSourceConfig):
            sources.append(GitHubSource(config, closing_phrases=closing_phrases(loaded)))
    return sources


def open_store(loaded: LoadedConfig, *, readonly: bool = False) -> Store:
    """The configured store, as its single writer or as a reader."""
    return Store.open(loaded.config.store.path, readonly=readonly)


def read_secret(value: SecretStr | None, path: Path | None) -> str:
    """A secret given inline (usually ``${ENV}``) or in a file (trailing newline dropped)."""
    if value is not None:
        return value.get_secret_value()
    assert path is not None  # the config allows exactly one of the two
    return path.read_text(encoding="utf-8").strip()


def build_notifier(loaded: LoadedConfig, *, dry_run: bool = False) -> Notifier:
    """Slack, a webhook, or the console (no alerts section, or ``--dry-run``)."""
    alerts = loaded.config.alerts
    if dry_run or alerts is None:
        return ConsoleNotifier()
    if alerts.slack is not None:
        token = read_secret(alerts.slack.token, alerts.slack.token_file)
        return SlackNotifier(token, alerts.slack.base_url)
    if alerts.webhook is not None:
        return WebhookNotifier(read_secret(alerts.webhook.url, alerts.webhook.url_file))
    return ConsoleNotifier()
