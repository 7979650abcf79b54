"""OAuth2 access tokens that replyclock gets and renews itself: Microsoft Entra and Google.

An ``auth:`` block on a source names the app (Microsoft: tenant, client id, secret or
certificate, through msal's client-credentials flow) or the service account (Google: a JSON
key with domain-wide delegation, through google-auth's JWT-bearer grant). Tokens are kept in
memory and renewed before they expire: msal hands out a cached token until five minutes
before its end, google-auth until three minutes 45 seconds before. When the mail server
refuses a token that was thought valid, the caller asks for a fresh one once
(``token(fresh=True)``) and tries again; if that is refused too, ``refused_hint`` says
what an administrator most likely has to change.

Every failure is a ``SourceError`` (``SourceAuthError`` when the credentials themselves are
refused) whose text names the key to fix. No secret or token ever appears in a message or a
log line: errors quote the identity provider's error code and the first line of its
description, never the request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from monitor.config.models import GoogleAuthConfig, MicrosoftAuthConfig
from monitor.errors import SourceAuthError, SourceError
from monitor.logs import fields
from monitor.sources.base import read_secret

log = logging.getLogger("replyclock.sources.oauth")

IMAP_MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GMAIL_SCOPE = "https://mail.google.com/"
PUBLIC_AUTHORITY = "login.microsoftonline.com"
GOOGLE_TOKEN_HOST = "oauth2.googleapis.com"  # noqa: S105 - a host name, not a password
# The Entra hosts msal knows (public and national clouds): for any other host (a test
# identity provider, a proxy) msal's instance discovery, which always asks the public
# cloud, is turned off.
_KNOWN_AUTHORITIES = frozenset(
    {
        PUBLIC_AUTHORITY,
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)
_TIMEOUT_S = 30.0
_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z ]+)-----\s.*?-----END \1-----", re.DOTALL
)  # one PEM block, any kind


class AccessTokens(Protocol):
    """Where a source gets the bearer token it signs in with."""

    @property
    def kind(self) -> str:
        """ "microsoft" or "google", for logs and `check --connect`."""
        ...

    def token(self, *, fresh: bool = False) -> str:
        """A token valid for a few minutes at least; ``fresh`` skips the cache."""
        ...

    def refused_hint(self, mailbox: str) -> str:
        """What to change when the server refuses a token the identity provider just gave."""
        ...


class _Session(requests.Session):
    """A requests session that trusts ``ca_file`` when one is given.

    requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` from the environment override a
    session's ``verify`` (psf/requests#3829), so a configured ``ca_file`` would be ignored on
    machines that set them. Proxies and the rest still come from the environment.
    """

    def __init__(self, ca_file: Path | None) -> None:
        super().__init__()
        self.ca_file = str(ca_file) if ca_file is not None else None

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.ca_file is not None:
            settings["verify"] = self.ca_file
        return settings


def _session(ca_file: Path | None) -> requests.Session:
    return _Session(ca_file)


def _first_line(text: object, limit: int = 300) -> str:
    """The first line of an identity provider's description, bounded, for an error."""
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line[:limit]


# --- Microsoft Entra --------------------------------------------------------------------------

# AADSTS codes (https://learn.microsoft.com/entra/identity-platform/reference-error-codes)
# and the fix each one points to.
_ENTRA_FIXES: dict[int, str] = {
    90002: "tenant_id is not a Microsoft Entra tenant; copy the Directory (tenant) ID from the "
    "app registration's Overview page",
    900023: "tenant_id is not a valid tenant id or domain; copy the Directory (tenant) ID from "
    "the app registration's Overview page",
    700016: "no app with this client_id in the tenant; copy the Application (client) ID from "
    "the app registration's Overview page, and check that tenant_id is the app's tenant",
    7000215: "the client secret is wrong; use the secret's Value (shown once when it is "
    "created), not its Secret ID",
    7000222: "the client secret has expired; create a new one under Certificates & secrets "
    "and put it in client_secret_file",
    700027: "the certificate does not match one uploaded to the app; upload its public part "
    "under Certificates & secrets",
    700024: "the certificate's signature was refused (the clock of this machine may be wrong)",
    70011: "the scope was refused; the app needs the application permission for this API "
    "with admin consent",
    7000112: "the app is disabled in the tenant; enable its enterprise application",
    7000229: "the app has no service principal in the tenant; an administrator must consent "
    "to it (Enterprise applications) first",
}


def _read(source: str, value: Any, path: Path | None, key: str) -> str:
    """A value given in the config, or read fresh from its ``*_file`` twin."""
    plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return read_secret(source, key=key, value=plain, path=path)


def certificate_credential(source: str, pem: str) -> dict[str, str]:
    """msal's client credential for a PEM holding a private key and its certificate."""
    blocks = {match.group(1): match.group(0) for match in _PEM_BLOCK.finditer(pem)}
    key = next((blocks[k] for k in blocks if k.endswith("PRIVATE KEY")), None)
    cert = blocks.get("CERTIFICATE")
    if key is None or cert is None:
        raise SourceError(
            source,
            "auth.certificate must be PEM holding both the private key and its certificate "
            f"(found: {', '.join(sorted(blocks)) or 'no PEM block'}); join the two files",
        )
    try:
        serialization.load_pem_private_key(key.encode(), password=None)
        x509.load_pem_x509_certificate(cert.encode())
    except (ValueError, TypeError) as exc:
        raise SourceError(
            source,
            f"auth.certificate cannot be read ({type(exc).__name__}); it must be an unencrypted "
            "PEM private key and a PEM certificate",
        ) from exc
    return {"private_key": key, "public_certificate": cert}


class MicrosoftTokens:
    """App-only tokens from Microsoft Entra for one scope, through msal."""

    kind = "microsoft"

    def __init__(self, source: str, config: MicrosoftAuthConfig, scope: str) -> None:
        self.source = source
        self.config = config
        self.scope = scope
        self._lock = threading.Lock()
        self._app: Any = None
        self._app_key = ""  # a hash of what the app was built from: a rotated secret rebuilds it
        self.client_id = ""
        self.tenant_id = ""

    def _credentials(self) -> tuple[str, str, str | dict[str, str]]:
        cfg, name = self.config, self.source
        tenant = _read(name, cfg.tenant_id, cfg.tenant_id_file, "auth.tenant_id_file")
        client = _read(name, cfg.client_id, cfg.client_id_file, "auth.client_id_file")
        credential: str | dict[str, str]
        if cfg.client_secret is not None or cfg.client_secret_file is not None:
            credential = _read(
                name, cfg.client_secret, cfg.client_secret_file, "auth.client_secret_file"
            )
        else:
            pem = _read(name, cfg.certificate, cfg.certificate_file, "auth.certificate_file")
            credential = certificate_credential(name, pem)
        return tenant, client, credential

    def _application(self) -> Any:
        import msal  # noqa: PLC0415 - only sources with an auth block pay for importing it

        tenant, client, credential = self._credentials()
        key = hashlib.sha256(
            json.dumps([tenant, client, credential], sort_keys=True).encode()
        ).hexdigest()
        if self._app is not None and key == self._app_key:
            return self._app
        host = self.config.authority_host
        try:
            self._app = msal.ConfidentialClientApplication(
                client,
                client_credential=credential,
                authority=f"https://{host}/{tenant}",
                http_client=_session(self.config.ca_file),
                timeout=_TIMEOUT_S,
                instance_discovery=host.lower() in _KNOWN_AUTHORITIES,
            )
        except ValueError as exc:  # msal could not read the tenant's OpenID configuration
            raise SourceAuthError(
                self.source,
                f"Microsoft Entra at {host} does not know tenant_id {tenant!r} "
                f"({_first_line(exc, 120)}); copy the Directory (tenant) ID from the app "
                "registration's Overview page",
            ) from exc
        except requests.RequestException as exc:
            raise SourceError(self.source, _unreachable(host, exc)) from exc
        self._app_key, self.client_id, self.tenant_id = key, client, tenant
        return self._app

    def token(self, *, fresh: bool = False) -> str:
        """A token for the scope; ``fresh`` drops msal's cached one first."""
        with self._lock:
            try:
                app = self._application()
                if fresh:
                    app.remove_tokens_for_client()
                result = app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise SourceError(
                    self.source, _unreachable(self.config.authority_host, exc)
                ) from exc
        if "access_token" in result:
            if result.get("token_source") == "identity_provider":
                log.info(
                    "access token obtained",
                    extra=fields(
                        source=self.source,
                        provider="microsoft",
                        expires_in=result.get("expires_in"),
                        fresh=fresh,
                    ),
                )
            return str(result["access_token"])
        raise self._refused(result)

    def _refused(self, result: dict[str, Any]) -> SourceError:
        codes = [int(c) for c in result.get("error_codes") or () if str(c).isdigit()]
        fix = next((_ENTRA_FIXES[c] for c in codes if c in _ENTRA_FIXES), None)
        error = str(result.get("error") or "error")
        what = f"Microsoft Entra refused the app's credentials ({error}"
        what += f", AADSTS{codes[0]})" if codes else ")"
        if fix is None:
            fix = _first_line(result.get("error_description")) or "check the auth block"
        return SourceAuthError(self.source, f"{what}: {fix}")

    def refused_hint(self, mailbox: str) -> str:
        """Exchange took the app's token but refused it for this mailbox: what to set up."""
        app = self.client_id or "<client id>"
        if self.scope == GRAPH_SCOPE:
            return (
                f"Microsoft Graph refused the app for {mailbox}: grant the app the application "
                "permission Mail.Read with admin consent, and if an application access policy "
                f"limits it, add {mailbox} to the policy's group"
            )
        return (
            f"Exchange Online refused the app's token for {mailbox}: give the app the "
            "application permission IMAP.AccessAsApp (Office 365 Exchange Online) with admin "
            "consent, register its service principal in Exchange (New-ServicePrincipal -AppId "
            f"{app} -ObjectId <enterprise app object id>) and give it the mailbox "
            f"(Add-MailboxPermission -Identity {mailbox} -User <service principal id> "
            "-AccessRights FullAccess)"
        )


def _unreachable(host: str, exc: Exception) -> str:
    return (
        f"cannot reach the identity provider {host} ({type(exc).__name__}); check the network, "
        "proxy and auth.ca_file"
    )


# --- Google -----------------------------------------------------------------------------------


class GoogleTokens:
    """Tokens for a Workspace mailbox from a service account with domain-wide delegation."""

    kind = "google"

    def __init__(self, source: str, config: GoogleAuthConfig, subject: str, scope: str) -> None:
        self.source = source
        self.config = config
        self.subject = config.subject or subject
        self.scope = scope
        self._lock = threading.Lock()
        self._credentials: Any = None
        self._key_hash = ""
        self.client_id = ""
        self.token_host = GOOGLE_TOKEN_HOST

    def _load(self) -> Any:
        from google.oauth2 import service_account  # noqa: PLC0415 - only when configured

        cfg = self.config
        text = _read(
            self.source, cfg.service_account, cfg.service_account_file, "auth.service_account_file"
        )
        key_hash = hashlib.sha256(text.encode()).hexdigest()
        if self._credentials is not None and key_hash == self._key_hash:
            return self._credentials
        try:
            info = json.loads(text)
            if not isinstance(info, dict) or info.get("type") != "service_account":
                raise ValueError("not a service account key")
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[self.scope], subject=self.subject
            )
        except (ValueError, KeyError) as exc:
            raise SourceError(
                self.source,
                "auth.service_account is not a service account's JSON key "
                f"({type(exc).__name__}); create a key for the service account (IAM & Admin > "
                "Service accounts > Keys > Add key > JSON) and give that file",
            ) from exc
        self._credentials, self._key_hash = credentials, key_hash
        self.client_id = str(info.get("client_id") or "")
        self.token_host = urlsplit(str(info.get("token_uri") or "")).netloc or self.token_host
        return credentials

    def token(self, *, fresh: bool = False) -> str:
        """A token for the mailbox; renewed when within google-auth's threshold of expiry."""
        from google.auth.exceptions import RefreshError, TransportError  # noqa: PLC0415
        from google.auth.transport.requests import Request  # noqa: PLC0415

        with self._lock:
            credentials = self._load()
            if fresh or not credentials.valid:
                try:
                    credentials.refresh(Request(_session(self.config.ca_file)))
                except RefreshError as exc:
                    raise self._refused(exc) from exc
                except TransportError as exc:
                    raise SourceError(self.source, _unreachable(self.token_host, exc)) from exc
                log.info(
                    "access token obtained",
                    extra=fields(source=self.source, provider="google", fresh=fresh),
                )
            return str(credentials.token)

    def _refused(self, exc: Exception) -> SourceAuthError:
        # google-auth puts the endpoint's JSON answer in args[1] and "error: description" in [0].
        answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(answer.get("error") or "")
        description = str(answer.get("error_description") or "")
        client = self.client_id or "<the service account's client id>"
        if error == "unauthorized_client":
            fix = (
                "domain-wide delegation is not granted: in the Google Admin console, Security > "
                f"Access and data control > API controls > Domain-wide delegation, add client ID "
                f"{client} with the scope {self.scope}"
            )
        elif error == "invalid_grant" and "signature" in description.lower():
            fix = (
                "the key was deleted or replaced; create a new JSON key for the service account "
                "and give that file"
            )
        elif error == "invalid_grant" and (
            "email" in description.lower() or "user" in description.lower()
        ):
            fix = f"{self.subject} is not a user of the Workspace domain; check auth.subject"
        else:
            fix = _first_line(description) or "check the auth block"
        return SourceAuthError(
            self.source, f"Google refused the service account ({error or 'error'}): {fix}"
        )

    def refused_hint(self, mailbox: str) -> str:
        """Gmail took the token but refused it: what an administrator has to check."""
        return (
            f"Gmail refused the service account's token for {mailbox}: check that IMAP is on "
            "for the user (Admin console > Apps > Google Workspace > Gmail > End User Access) "
            f"and that the delegation of client ID {self.client_id or '<client id>'} includes "
            f"{self.scope}"
        )


def token_permissions(token: str) -> list[str] | None:
    """The permissions a JWT access token carries (Entra's ``roles``, or ``scp``/``scope``).

    Only the payload is decoded, to show an administrator what was granted; the token is not
    verified (the server it is for does that) and never shown. None for an opaque token.
    """
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 16_384:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict):
        return None
    roles = claims.get("roles")
    if isinstance(roles, list):
        return sorted(str(role) for role in roles)
    scopes = claims.get("scp") or claims.get("scope")
    return sorted(str(scopes).split()) if scopes else []


def access_tokens(
    source: str,
    config: MicrosoftAuthConfig | GoogleAuthConfig,
    mailbox: str,
    *,
    graph: bool = False,
) -> AccessTokens:
    """The token provider an ``auth:`` block describes, for IMAP (or Microsoft Graph)."""
    if isinstance(config, MicrosoftAuthConfig):
        return MicrosoftTokens(source, config, GRAPH_SCOPE if graph else IMAP_MICROSOFT_SCOPE)
    return GoogleTokens(source, config, mailbox, GMAIL_SCOPE)
