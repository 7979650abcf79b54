"""A local fake of Microsoft Entra's and Google's token services, for the IMAP OAuth2 tests.

``FakeIdentityProvider`` is an HTTPS server on a free loopback port (a thread of the test
process) that the real ``msal`` and ``google-auth`` libraries talk to in their published wire
formats, and that a real Dovecot's ``oauth2`` passdb asks whether a token is live. Its
certificate is self-signed (``ca_file``; made by the Dovecot fixture's ``_make_certificate``).

Microsoft Entra (v2.0 endpoints; point msal at ``authority(tenant)`` with
``instance_discovery=False`` and an ``http_client`` that verifies against ``ca_file``):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: the tenant's discovery document,
  which msal reads when the application object is built (an unknown tenant is a 400
  ``invalid_tenant`` AADSTS90002 body, and msal raises ValueError);
* ``POST /{tenant}/oauth2/v2.0/token``: the client credentials grant, form-encoded as in the
  Entra docs, with ``client_secret`` or a ``client_assertion`` JWT signed with a registered
  certificate (signature checked with the certificate's public key; header ``x5t`` or
  ``x5t#S256`` must be the certificate's thumbprint; ``aud`` the token endpoint, ``iss`` and
  ``sub`` the client id, ``exp`` in the future). Answers have Entra's shape: success
  ``{"token_type", "expires_in", "ext_expires_in", "access_token"}``, errors ``{"error",
  "error_description": "AADSTSnnnn: ...\\r\\nTrace ID: ...", "error_codes", "timestamp",
  "trace_id", "correlation_id"}`` with Entra's codes: unknown tenant AADSTS90002 (400
  invalid_request), app not in the tenant AADSTS700016 (400 unauthorized_client), wrong
  secret AADSTS7000215 and expired secret AADSTS7000222 (401 invalid_client), scope not
  registered AADSTS70011 (400 invalid_scope), no credential AADSTS7000218, unknown
  certificate AADSTS700027, expired assertion AADSTS700024, iss/sub not the client
  AADSTS700021, wrong audience AADSTS50013, missing parameter AADSTS900144, other grants
  AADSTS70003. Only AADSTS70011's wording is checked against the docs' example; the other
  texts are Entra's as commonly reported, so tests should match codes, not wording.

Google (``google.oauth2.service_account.Credentials`` from ``add_google_service_account``):

* ``POST /token``: the JWT-bearer grant (RFC 7523) with an RS256 ``assertion`` signed by the
  service account's key; ``iss`` must be the account's ``client_email``, ``aud`` Google's
  token URI (google-auth always signs ``https://oauth2.googleapis.com/token``, whatever the
  key file's ``token_uri`` says), ``scope`` non-empty, ``iat``/``exp`` at most an hour
  apart and current. With ``sub`` (domain-wide delegation) the subject needs
  ``grant_delegation``, otherwise Google's 401 ``unauthorized_client``; a deleted key is
  400 ``invalid_grant`` "Invalid JWT Signature.".

Tokens and Dovecot: every access token is remembered (``tokens``) with its principal,
scope, mailbox and expiry (``clock`` + ``microsoft_expires_in`` / ``google_expires_in``,
changeable at any time). ``POST /introspect`` (RFC 7662: form ``token=``; ``GET
/introspect?token=`` and ``Authorization: Bearer`` are accepted too) answers ``{"active":
true, "email": <mailbox>, ...}`` for a live token and ``{"active": false}`` for an
expired, revoked or unknown one. Dovecot lets the login in when ``email`` is the login
user, so ``email`` is the mailbox the token opens: a Google token's delegation subject, or
for a Microsoft app token the mailbox granted with ``grant_mailbox`` (Exchange's
FullAccess). Dovecot 2.3.19 posts only ``token=&client_id=&client_secret=``, not the login
user, so give each Microsoft app ONE mailbox: with several the answer has no ``email`` and
Dovecot refuses with a temporary failure (a Dovecot that sends ``user=``, as later ones do,
gets that user when the app may open it); with none, ``email`` is the app's own identity
and the login is refused, as Exchange refuses an app without FullAccess. Dovecot's oauth2
passdb reaches the endpoint over HTTPS with ``tls_ca_cert_file = ca_file``, like a real
identity provider: one port, and the same TLS code path as production.

Every request is recorded in ``calls`` (method, path, headers, form, status, answer).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from servers.dovecot import _make_certificate

HOST = "127.0.0.1"
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"
GMAIL_SCOPE = "https://mail.google.com/"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
# Google's older token URI, which Google still accepts as an assertion audience.
GOOGLE_LEGACY_AUDIENCE = "https://accounts.google.com/o/oauth2/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_EXPIRES_IN = 3599  # what both services answer for a fresh token
MAX_GOOGLE_ASSERTION_LIFETIME = 3600
CLOCK_SKEW = 300  # seconds of client clock error either service tolerates

Provider = Literal["microsoft", "google"]
_FORM = "application/x-www-form-urlencoded"
_TENANT_PATH = re.compile(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request as the fake saw it, with the answer it gave."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lowercase names
    form: dict[str, str]  # the form-encoded body (first value of each field)
    body: bytes
    status: int
    answer: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    """An access token the fake handed out, and what it is good for."""

    access_token: str
    provider: Provider
    principal: str  # the Microsoft app's client id, or the Google service account's
    tenant: str | None  # Microsoft only
    scope: str
    subject: str | None  # Google's delegation subject: the one mailbox the token opens
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCertificate:
    """A self-signed certificate and its RSA key, as registered for an Entra app."""

    certificate_pem: str
    private_key_pem: str
    sha1_thumbprint: str  # upper-case hex, as the Azure portal shows it
    sha256_thumbprint: str

    def msal_credential(self) -> dict[str, str]:
        """msal's ``client_credential`` for this certificate (PS256, ``x5t#S256`` header)."""
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}


def make_app_certificate(common_name: str = "replyclock-test") -> AppCertificate:
    """A fresh RSA-2048 certificate valid for a day, for the certificate credential flow."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return AppCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=_private_pem(key),
        sha1_thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex().upper(),
    )


@dataclass(slots=True, kw_only=True)
class _MicrosoftApp:
    tenant: str
    client_id: str
    secret: str | None
    secret_expired: bool
    certificates: list[x509.Certificate]
    scopes: frozenset[str]


@dataclass(slots=True, kw_only=True)
class _ServiceAccount:
    client_id: str
    client_email: str
    keys: dict[str, rsa.RSAPublicKey]  # private_key_id -> public key
    delegations: dict[str, frozenset[str]] = field(default_factory=dict)  # subject -> scopes


class EntraError(Exception):
    """An error answer of the Entra token service (status, OAuth error, AADSTS code)."""

    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code, self.message = status, error, code, message


class GoogleError(Exception):
    """An error answer of Google's token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description


def _missing(parameter: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


class FakeIdentityProvider:
    """Entra's and Google's token endpoints plus an introspection endpoint; see the module."""

    def __init__(
        self,
        *,
        microsoft_expires_in: int = DEFAULT_EXPIRES_IN,
        google_expires_in: int = DEFAULT_EXPIRES_IN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare (not start) the fake; ``clock`` stamps tokens and decides their expiry.

        Assertions the libraries sign are checked against the real time, whatever ``clock``.
        """
        self.microsoft_expires_in = microsoft_expires_in
        self.google_expires_in = google_expires_in
        self.clock = clock
        self._defaults = (microsoft_expires_in, google_expires_in, clock)
        self.calls: list[RecordedRequest] = []
        self.port = 0
        self._root: Path | None = None
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._tenants: set[str] = set()
        self._apps: dict[str, _MicrosoftApp] = {}  # client id -> app
        self._accounts: dict[str, _ServiceAccount] = {}  # client id -> service account
        self._mailboxes: dict[str, set[str]] = {}  # principal -> mailboxes (FullAccess)
        self._tokens: dict[str, IssuedToken] = {}
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._signing_kid = secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"<FakeIdentityProvider {self.url if self._server else 'stopped'}>"

    def __enter__(self) -> FakeIdentityProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle and addresses ----------------------------------------------------------

    def start(self) -> FakeIdentityProvider:
        """Make the certificate and serve HTTPS on a free loopback port until ``stop``."""
        if self._server is not None:
            return self
        # Dovecot's auth process (not root) reads ca_file: a directory others can enter.
        self._root = Path(tempfile.mkdtemp(prefix="fake-identity-"))
        self._root.chmod(0o755)
        _make_certificate(self.ca_file, self._root / "key.pem")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, self._root / "key.pem")
        self._server = _TlsServer((HOST, 0), _handler_for(self), context)
        self.port = self._server.server_port
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the certificate."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    @property
    def ca_file(self) -> Path:
        """The PEM to verify the fake's certificate with (it is its own CA)."""
        if self._root is None:
            raise RuntimeError("the fake identity provider is not started")
        return self._root / "cert.pem"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the authority host msal wants."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{self.host}"

    @property
    def introspection_url(self) -> str:
        """The RFC 7662 endpoint for Dovecot's oauth2 passdb (``introspection_mode = post``)."""
        return f"{self.url}/introspect"

    @property
    def google_token_uri(self) -> str:
        """Google's token endpoint on the fake (the key files' ``token_uri``)."""
        return f"{self.url}/token"

    def http_session(self) -> requests.Session:
        """A ``requests.Session`` that trusts ``ca_file``, for msal and google-auth.

        ``trust_env`` is off: with it on, requests lets ``REQUESTS_CA_BUNDLE`` or
        ``CURL_CA_BUNDLE`` from the environment override ``Session.verify`` (psf/requests
        #3829), and an ``HTTPS_PROXY`` would catch loopback requests.
        """
        session = requests.Session()
        session.verify = str(self.ca_file)
        session.trust_env = False
        return session

    def authority(self, tenant: str) -> str:
        """The msal ``authority`` of ``tenant``."""
        return f"{self.url}/{tenant}"

    def token_endpoint(self, tenant: str) -> str:
        """Entra's v2.0 token endpoint of ``tenant`` (also a client assertion's ``aud``)."""
        return f"{self.url}/{tenant}/oauth2/v2.0/token"

    # -- registrations --------------------------------------------------------------------

    def add_microsoft_app(
        self,
        tenant: str,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_pem: str | None = None,
        secret_expired: bool = False,
        scopes: Iterable[str] = (OUTLOOK_SCOPE,),
    ) -> None:
        """Register an app (its service principal) in ``tenant``, creating the tenant.

        ``secret`` and/or ``certificate_pem`` are its credentials; ``scopes`` the
        ``.default`` scopes it has application permissions for (IMAP.AccessAsApp).
        """
        if secret is None and certificate_pem is None:
            raise ValueError(f"app {client_id!r} needs a secret or a certificate_pem")
        certificates = [] if certificate_pem is None else [_load_certificate(certificate_pem)]
        with self._lock:
            if client_id in self._apps or client_id in self._accounts:
                raise ValueError(f"principal {client_id!r} exists already")
            self._tenants.add(tenant)
            self._apps[client_id] = _MicrosoftApp(
                tenant=tenant,
                client_id=client_id,
                secret=secret,
                secret_expired=secret_expired,
                certificates=certificates,
                scopes=frozenset(scopes),
            )

    def add_tenant(self, tenant: str) -> None:
        """Make ``tenant`` known (an app registration creates its tenant anyway)."""
        with self._lock:
            self._tenants.add(tenant)

    def remove_tenant(self, tenant: str) -> None:
        """Forget ``tenant`` and its apps: its endpoints answer AADSTS90002 from now on."""
        with self._lock:
            self._tenants.discard(tenant)
            for client_id in [c for c, app in self._apps.items() if app.tenant == tenant]:
                del self._apps[client_id]

    def expire_secret(self, client_id: str) -> None:
        """Let the app's client secret pass its end date (AADSTS7000222 from now on)."""
        with self._lock:
            self._app(client_id).secret_expired = True

    def add_google_service_account(
        self, name: str = "replyclock-reader", *, project_id: str = "replyclock-test"
    ) -> dict[str, str]:
        """Create a service account with a fresh RSA key; return its JSON key file's content.

        The dict is what Google Cloud's console downloads, with ``token_uri`` pointing at
        the fake: pass it to ``Credentials.from_service_account_info``.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        client_email = f"{name}@{project_id}.iam.gserviceaccount.com"
        client_id = str(100_000_000_000_000_000_000 + secrets.randbelow(10**20))
        private_key_id = secrets.token_hex(20)
        with self._lock:
            if any(a.client_email == client_email for a in self._accounts.values()):
                raise ValueError(f"service account {client_email!r} exists already")
            self._accounts[client_id] = _ServiceAccount(
                client_id=client_id,
                client_email=client_email,
                keys={private_key_id: key.public_key()},
            )
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": private_key_id,
            "private_key": _private_pem(key),
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.google_token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": (
                "https://www.googleapis.com/robot/v1/metadata/x509/"
                + urllib.parse.quote(client_email)
            ),
            "universe_domain": "googleapis.com",
        }

    def delete_google_key(self, principal: str, private_key_id: str | None = None) -> None:
        """Delete the account's key (all its keys without ``private_key_id``)."""
        with self._lock:
            account = self._account(principal)
            if private_key_id is None:
                account.keys.clear()
            else:
                account.keys.pop(private_key_id, None)

    def grant_delegation(self, principal: str, subject: str, scopes: Iterable[str]) -> None:
        """Domain-wide delegation: the service account may act as ``subject`` for ``scopes``.

        The subject is then also the mailbox the account's tokens for it may open.
        """
        with self._lock:
            self._account(principal).delegations[subject.lower()] = frozenset(scopes)

    def remove_delegation(self, principal: str, subject: str) -> None:
        """Undo ``grant_delegation`` (tokens already issued stay live until they expire)."""
        with self._lock:
            self._account(principal).delegations.pop(subject.lower(), None)

    def grant_mailbox(self, principal: str, mailbox: str) -> None:
        """Exchange's FullAccess: the Microsoft app's tokens may open ``mailbox``.

        For a Google service account use ``grant_delegation``: the delegation subject is
        the mailbox.
        """
        with self._lock:
            resolved = self._principal(principal)
            if resolved in self._accounts:
                raise ValueError(
                    f"{principal!r} is a Google service account: its mailbox is the subject "
                    "of grant_delegation"
                )
            self._mailboxes.setdefault(resolved, set()).add(mailbox.lower())

    def remove_mailbox(self, principal: str, mailbox: str) -> None:
        """Undo ``grant_mailbox``; takes effect at the next introspection."""
        with self._lock:
            self._mailboxes.get(self._principal(principal), set()).discard(mailbox.lower())

    def revoke(self, principal: str) -> int:
        """Revoke every token issued so far to the app or service account; return how many.

        New tokens can still be obtained (the registration stays).
        """
        with self._lock:
            resolved = self._principal(principal)
            revoked = [
                t for t in self._tokens.values() if t.principal == resolved and not t.revoked
            ]
            for token in revoked:
                self._tokens[token.access_token] = replace(token, revoked=True)
            return len(revoked)

    def revoke_token(self, access_token: str) -> None:
        """Revoke one token."""
        with self._lock:
            token = self._tokens[access_token]
            self._tokens[access_token] = replace(token, revoked=True)

    def reset(self) -> None:
        """Forget every registration, grant, token and call; restore the constructor's
        lifetimes and ``clock``. Port and certificate stay, so a Dovecot keeps working."""
        with self._lock:
            for registry in (self._tenants, self._apps, self._accounts, self._mailboxes):
                registry.clear()
            self._tokens.clear()
            self.calls.clear()
            self.microsoft_expires_in, self.google_expires_in, self.clock = self._defaults

    # -- what happened --------------------------------------------------------------------

    @property
    def tokens(self) -> list[IssuedToken]:
        """Every token issued, oldest first (with its current revocation state)."""
        with self._lock:
            return list(self._tokens.values())

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the fake has issued."""
        with self._lock:
            return len(self._tokens)

    def token(self, access_token: str) -> IssuedToken:
        """What the fake knows about ``access_token`` (KeyError if it never issued it)."""
        with self._lock:
            return self._tokens[access_token]

    def calls_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path (without the query) ends with ``path``."""
        return [call for call in list(self.calls) if call.path.endswith(path)]

    def is_live(self, access_token: str) -> bool:
        """True while the token is known, not revoked and not expired by ``clock``."""
        with self._lock:
            token = self._tokens.get(access_token)
            return token is not None and not token.revoked and self.clock() < token.expires_at

    # -- request handling (called from the server's threads) ------------------------------

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parsed = urllib.parse.urlsplit(raw_path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        form: dict[str, str] = {}
        if content_type == _FORM:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            for name, value in pairs:
                form.setdefault(name, value)
        status, answer = self._route(method, path, query, headers, form, content_type)
        self.calls.append(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                headers=headers,
                form=form,
                body=body,
                status=status,
                answer=answer,
            )
        )
        return status, answer

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        form: dict[str, str],
        content_type: str,
    ) -> tuple[int, dict[str, Any]]:
        if path == "/introspect":
            return self._introspect(query, headers, form)
        if path == "/token":
            try:
                if method != "POST":
                    raise GoogleError(405, "invalid_request", "Method not allowed.")
                return 200, self._google_token(form, content_type)
            except GoogleError as error:
                return error.status, {"error": error.error, "error_description": error.description}
        match = _TENANT_PATH.fullmatch(path)
        if match is None:
            return 404, {"error": "not_found", "error_description": f"No such endpoint: {path}"}
        tenant, endpoint = match.groups()
        correlation_id = headers.get("client-request-id") or str(uuid.uuid4())
        try:
            if endpoint.startswith("v2.0"):
                return 200, self._openid_configuration(method, tenant)
            return 200, self._entra_token(method, tenant, form, content_type)
        except EntraError as error:
            return error.status, _entra_error_body(error, correlation_id)

    def _openid_configuration(self, method: str, tenant: str) -> dict[str, Any]:
        if method != "GET":
            raise EntraError(400, "invalid_request", 900561, "The endpoint only accepts GET.")
        self._require_tenant(tenant, error="invalid_tenant")
        base = f"{self.url}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "email"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def _require_tenant(self, tenant: str, *, error: str = "invalid_request") -> None:
        if tenant not in self._tenants:
            raise EntraError(
                400,
                error,
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant "
                "ID and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for "
                "the tenant.",
            )

    def _entra_token(
        self, method: str, tenant: str, form: dict[str, str], content_type: str
    ) -> dict[str, Any]:
        if method != "POST":
            raise EntraError(
                400,
                "invalid_request",
                900561,
                f"The endpoint only accepts POST, OPTIONS requests. Received a {method} request.",
            )
        with self._lock:
            self._require_tenant(tenant)
            if content_type != _FORM or not form.get("grant_type"):
                raise _missing("grant_type")
            grant_type = form["grant_type"]
            if grant_type != "client_credentials":
                raise EntraError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{grant_type}'.",
                )
            client_id = form.get("client_id")
            if not client_id:
                raise _missing("client_id")
            scope = form.get("scope")
            if not scope:
                raise _missing("scope")
            app = self._apps.get(client_id)
            if app is None or app.tenant != tenant:
                raise EntraError(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the "
                    f"directory '{tenant}'. This can happen if the application has not been "
                    "installed by the administrator of the tenant or consented to by any "
                    "user in the tenant. You may have sent your authentication request to "
                    "the wrong tenant.",
                )
            if form.get("client_assertion") or form.get("client_assertion_type"):
                self._check_client_assertion(app, form, self.token_endpoint(tenant))
            elif "client_secret" in form:
                _check_client_secret(app, form["client_secret"])
            else:
                raise EntraError(
                    401,
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: "
                    "'client_assertion' or 'client_secret'.",
                )
            if scope not in app.scopes:
                raise EntraError(
                    400,
                    "invalid_scope",
                    70011,
                    "The provided value for the input parameter 'scope' is not valid. "
                    f"The scope {scope} is not valid.",
                )
            now = self.clock()
            access_token = self._microsoft_access_token(app, scope, now)
            self._tokens[access_token] = IssuedToken(
                access_token=access_token,
                provider="microsoft",
                principal=client_id,
                tenant=tenant,
                scope=scope,
                subject=None,
                issued_at=now,
                expires_at=now + self.microsoft_expires_in,
            )
        return {
            "token_type": "Bearer",
            "expires_in": self.microsoft_expires_in,
            "ext_expires_in": self.microsoft_expires_in,
            "access_token": access_token,
        }

    def _check_client_assertion(
        self, app: _MicrosoftApp, form: dict[str, str], audience: str
    ) -> None:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _missing("client_assertion_type")
        assertion = form.get("client_assertion")
        if not assertion:
            raise _missing("client_assertion")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise EntraError(
                401, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from None
        certificate = _certificate_for(app, header)
        if certificate is None:
            thumbprint = header.get("x5t#S256") or header.get("x5t") or ""
            raise EntraError(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application. [Reason - The key was not found., Thumbprint of "
                f"key used by client: '{_thumbprint_hex(thumbprint)}', Please visit the "
                f"Azure Portal to see configured keys for app Id '{app.client_id}'.]",
            )
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            raise EntraError(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        if claims.get("aud") != audience:
            raise EntraError(
                401,
                "invalid_client",
                50013,
                "Assertion audience claim does not match the required value. The audience "
                f"in the assertion was '{claims.get('aud')}' and the expected audience is "
                f"'{audience}'.",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise EntraError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
        if not isinstance(exp, int | float) or exp + CLOCK_SKEW < now or nbf - CLOCK_SKEW > now:
            raise EntraError(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: "
                f"{_entra_time(now)}, expiry time of assertion {_entra_time(exp or 0)}.",
            )

    def _microsoft_access_token(self, app: _MicrosoftApp, scope: str, now: float) -> str:
        # A JWT like Entra's app-only tokens (opaque to clients; only the fake validates it).
        claims = {
            "aud": scope.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{app.tenant}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.microsoft_expires_in),
            "appid": app.client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "roles": ["IMAP.AccessAsApp"],
            "tid": app.tenant,
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
        }
        return jwt.encode(
            claims,
            self._signing_key,
            algorithm="RS256",
            headers={"x5t": self._signing_kid, "kid": self._signing_kid},
            sort_headers=False,  # Entra's order, "typ" first: tokens start "eyJ0eXAi"
        )

    def _google_token(self, form: dict[str, str], content_type: str) -> dict[str, Any]:
        grant_type = form.get("grant_type", "") if content_type == _FORM else ""
        if grant_type != JWT_BEARER_GRANT:
            raise GoogleError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion")
        if not assertion:
            raise GoogleError(400, "invalid_request", "Missing required parameter: assertion")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise GoogleError(400, "invalid_grant", "Invalid JWT Signature.") from None
        with self._lock:
            account = next(
                (a for a in self._accounts.values() if a.client_email == unverified.get("iss")),
                None,
            )
            if account is None:
                raise GoogleError(400, "invalid_grant", "Invalid grant: account not found")
            key = account.keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != "RS256":
                raise GoogleError(400, "invalid_grant", "Invalid JWT Signature.")
            try:
                claims = jwt.decode(
                    assertion,
                    key,
                    algorithms=["RS256"],
                    options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
                )
            except jwt.InvalidTokenError:
                raise GoogleError(400, "invalid_grant", "Invalid JWT Signature.") from None
            audiences = {GOOGLE_TOKEN_AUDIENCE, GOOGLE_LEGACY_AUDIENCE, self.google_token_uri}
            if claims.get("aud") not in audiences:
                raise GoogleError(
                    400,
                    "invalid_grant",
                    "Invalid JWT: Failed audience check. The right audience is "
                    f"{GOOGLE_TOKEN_AUDIENCE}",
                )
            _check_google_times(claims)
            scopes = str(claims.get("scope", "")).split()
            if not scopes:
                raise GoogleError(
                    400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."
                )
            subject = claims.get("sub")
            if isinstance(subject, str) and subject.lower() != account.client_email:
                delegated = account.delegations.get(subject.lower())
                if delegated is None or not set(scopes) <= delegated:
                    raise GoogleError(
                        401,
                        "unauthorized_client",
                        "Client is unauthorized to retrieve access tokens using this method, "
                        "or client not authorized for any of the scopes requested.",
                    )
                subject = subject.lower()
            else:
                subject = None
            now = self.clock()
            access_token = "ya29." + secrets.token_urlsafe(48)
            self._tokens[access_token] = IssuedToken(
                access_token=access_token,
                provider="google",
                principal=account.client_id,
                tenant=None,
                scope=" ".join(scopes),
                subject=subject,
                issued_at=now,
                expires_at=now + self.google_expires_in,
            )
        return {
            "access_token": access_token,
            "expires_in": self.google_expires_in,
            "token_type": "Bearer",
        }

    def _introspect(
        self,
        query: dict[str, list[str]],
        headers: dict[str, str],
        form: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        authorization = headers.get("authorization", "")
        if form.get("token"):
            access_token = form["token"]
        elif query.get("token"):
            access_token = query["token"][0]
        elif authorization[:7].lower() == "bearer ":
            access_token = authorization[7:].strip()
        else:
            return 400, {"error": "invalid_request", "error_description": "token is missing"}
        user = form.get("user") or (query.get("user") or [""])[0]
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None or token.revoked or self.clock() >= token.expires_at:
                return 200, {"active": False}
            answer: dict[str, Any] = {
                "active": True,
                "scope": token.scope,
                "client_id": token.principal,
                "token_type": "Bearer",
                "iat": int(token.issued_at),
                "exp": int(token.expires_at),
                "sub": token.subject or token.principal,
                "iss": self.url if token.tenant is None else f"{self.url}/{token.tenant}/v2.0",
            }
            mailbox = self._mailbox_for(token, user.lower())
            if mailbox is not None:
                answer["email"] = mailbox
            return 200, answer

    def _mailbox_for(self, token: IssuedToken, user: str) -> str | None:
        """The mailbox the token opens: Google's subject; for Microsoft the granted one."""
        if token.provider == "google":
            if token.subject is None:
                account = self._accounts.get(token.principal)
                return account.client_email if account else None
            return token.subject
        granted = self._mailboxes.get(token.principal, set())
        if user:  # a Dovecot that names the login user (2.3.19 does not)
            return user if user in granted else f"{token.principal}@apps.invalid"
        if len(granted) == 1:
            return next(iter(granted))
        if granted:
            return None  # several, and no way to tell which one the login is for
        # No FullAccess anywhere: the app's own identity, which no login user matches.
        return f"{token.principal}@apps.invalid"

    # -- lookups (hold the lock) ----------------------------------------------------------

    def _principal(self, principal: str) -> str:
        if principal in self._apps or principal in self._accounts:
            return principal
        for account in self._accounts.values():
            if account.client_email == principal:
                return account.client_id
        raise KeyError(f"no app or service account {principal!r} is registered")

    def _app(self, client_id: str) -> _MicrosoftApp:
        app = self._apps.get(client_id)
        if app is None:
            raise KeyError(f"no Microsoft app {client_id!r} is registered")
        return app

    def _account(self, principal: str) -> _ServiceAccount:
        account = self._accounts.get(self._principal(principal))
        if account is None:
            raise KeyError(f"{principal!r} is not a Google service account")
        return account


def _check_client_secret(app: _MicrosoftApp, secret: str) -> None:
    if app.secret is None or not secrets.compare_digest(secret, app.secret):
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            "the client secret value, not the client secret ID, for a secret added to app "
            f"'{app.client_id}'.",
        )
    if app.secret_expired:
        raise EntraError(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{app.client_id}' are expired. Visit "
            "the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
            "or consider using certificate credentials for added security: "
            "https://aka.ms/certCreds.",
        )


def _check_google_times(claims: dict[str, Any]) -> None:
    iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
    if (
        not isinstance(iat, int | float)
        or not isinstance(exp, int | float)
        or exp - iat > MAX_GOOGLE_ASSERTION_LIFETIME
        or iat - CLOCK_SKEW > now
        or exp + CLOCK_SKEW < now
    ):
        raise GoogleError(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim.",
        )


def _certificate_for(app: _MicrosoftApp, header: dict[str, Any]) -> x509.Certificate | None:
    """The registered certificate whose thumbprint the header's x5t#S256 or x5t names."""
    for certificate in app.certificates:
        sha256 = _b64url(certificate.fingerprint(hashes.SHA256()))
        sha1 = _b64url(certificate.fingerprint(hashes.SHA1()))
        named_sha256 = str(header.get("x5t#S256", "")).rstrip("=")
        named_sha1 = str(header.get("x5t", "")).rstrip("=")
        if named_sha256 == sha256 or named_sha1 == sha1:
            return certificate
    return None


def _entra_error_body(error: EntraError, correlation_id: str) -> dict[str, Any]:
    trace_id = str(uuid.uuid4())
    timestamp = _entra_time(time.time())
    return {
        "error": error.error,
        "error_description": (
            f"AADSTS{error.code}: {error.message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }


def _entra_time(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _b64url(data: bytes) -> str:
    # msal encodes thumbprints with padding (base64.urlsafe_b64encode); compare without it.
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _thumbprint_hex(encoded: str) -> str:
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex().upper()
    except ValueError:
        return encoded


def _load_certificate(pem: str) -> x509.Certificate:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ValueError("Entra app certificates must have an RSA key")
    return certificate


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class _TlsServer(ThreadingHTTPServer):
    """TLS per connection in the request's own thread, so a slow handshake blocks no one."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
    ) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust the certificate (a test of that) or left
        tls.settimeout(10)
        self.RequestHandlerClass(tls, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about connections a client dropped."""


def _handler_for(fake: FakeIdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = fake._handle(self.command, self.path, headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store, no-cache")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``calls`` instead."""

    return Handler
