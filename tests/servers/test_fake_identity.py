"""The fake identity provider speaks Entra's and Google's wire formats to the real msal and
google-auth, and a real Dovecot's oauth2 passdb accepts exactly the live tokens it issued."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google.auth.transport.requests
import imapclient
import jwt
import msal
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from imapclient.exceptions import LoginError

from servers.fake_identity import (
    CLIENT_ASSERTION_TYPE,
    GMAIL_SCOPE,
    GOOGLE_TOKEN_AUDIENCE,
    OUTLOOK_SCOPE,
    FakeIdentityProvider,
    make_app_certificate,
)

if TYPE_CHECKING:  # the fixtures hand these over; importing here would depend on the layout
    from tests.servers.dovecot import DovecotServer, ImapUser

ENTRA_DATA = Path(__file__).resolve().parents[1] / "data/entra"
TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "00001111-aaaa-2222-bbbb-3333cccc4444"
SECRET = "qWgdYAmab0YSkuL1qKv5bPX"
MAILBOX = "support@example.com"
_DESCRIPTION = re.compile(
    r"AADSTS(\d+): [^\r\n]+\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\n"
    r"Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
)


class ManualClock:
    """A clock for the fake's token lifetimes that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _msal_app(
    identity: FakeIdentityProvider,
    credential: str | dict[str, str] = SECRET,
    *,
    client_id: str = CLIENT_ID,
    tenant: str = TENANT,
) -> msal.ConfidentialClientApplication:
    """The application object as replyclock builds it: own http client, no instance discovery."""
    return msal.ConfidentialClientApplication(
        client_id,
        authority=f"https://{identity.host}/{tenant}",
        client_credential=credential,
        http_client=identity.http_session(),
        instance_discovery=False,
    )


def _google_credentials(
    info: dict[str, str], subject: str = MAILBOX
) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(
        info, scopes=[GMAIL_SCOPE], subject=subject
    )


def _refresh(identity: FakeIdentityProvider, credentials: service_account.Credentials) -> None:
    credentials.refresh(google.auth.transport.requests.Request(identity.http_session()))


def _http_example(name: str) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """Method, path, headers and form of a docs example, its "line breaks for clarity" undone."""
    head, _, body = (ENTRA_DATA / name).read_text().partition("\n\n")
    request_line, *header_lines = head.splitlines()
    method, path, _version = request_line.split("//")[0].split()
    headers = dict(line.split(": ", 1) for line in header_lines)
    form = dict(urllib.parse.parse_qsl("".join(line.strip() for line in body.splitlines())))
    return method, path, headers, form


def _example_json(name: str) -> dict[str, Any]:
    return json.loads((ENTRA_DATA / name).read_text())


def _token_call(identity: FakeIdentityProvider) -> Any:
    (call,) = identity.calls_to("/oauth2/v2.0/token")
    return call


# -- Microsoft Entra through msal -------------------------------------------------------


def test_msal_client_secret_flow_gets_a_token(identity: FakeIdentityProvider) -> None:
    """msal's client-credentials grant with a secret returns the token the fake issued."""
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    result = _msal_app(identity).acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    issued = identity.token(result["access_token"])
    assert (issued.provider, issued.principal, issued.tenant, issued.scope) == (
        "microsoft",
        CLIENT_ID,
        TENANT,
        OUTLOOK_SCOPE,
    )
    assert identity.tokens_issued == 1


def test_msal_makes_discovery_then_token_request_as_documented(
    identity: FakeIdentityProvider,
) -> None:
    """msal reads the tenant's openid-configuration once, then posts the docs' form fields."""
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    _msal_app(identity).acquire_token_for_client(scopes=[OUTLOOK_SCOPE])

    assert [(call.method, call.path) for call in identity.calls] == [
        ("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT}/oauth2/v2.0/token"),
    ]
    method, path, headers, example = _http_example("token_request_client_secret.http")
    call = _token_call(identity)
    assert call.method == method
    assert call.path == path.replace("{tenant}", TENANT)
    assert call.headers["content-type"] == headers["Content-Type"]
    # msal adds client_info=1 (for its cache) to exactly the documented fields.
    assert set(call.form) - set(example) == {"client_info"}
    assert set(example) <= set(call.form)
    assert call.form["grant_type"] == example["grant_type"] == "client_credentials"
    assert call.form["scope"] == OUTLOOK_SCOPE
    assert call.form["client_secret"] == SECRET
    assert "authorization" not in call.headers  # the secret travels in the body only


def test_success_body_has_the_documented_shape(identity: FakeIdentityProvider) -> None:
    """The token answer has the docs' keys and types, plus ext_expires_in as Entra sends."""
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    _msal_app(identity).acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
    example, answer = _example_json("token_response_success.json"), _token_call(identity).answer
    assert set(answer) - set(example) == {"ext_expires_in"}
    for key, value in example.items():
        assert type(answer[key]) is type(value), key
    assert answer["access_token"].startswith("eyJ0")  # a JWT, as Entra's are


@pytest.mark.parametrize(
    ("credential_form", "algorithm", "thumbprint_header"),
    [
        pytest.param("public_certificate", "PS256", "x5t#S256", id="certificate_ps256_sha256"),
        pytest.param("sha1_thumbprint", "RS256", "x5t", id="thumbprint_rs256_sha1"),
    ],
)
def test_msal_certificate_flow_gets_a_token(
    identity: FakeIdentityProvider, credential_form: str, algorithm: str, thumbprint_header: str
) -> None:
    """A client assertion signed with the registered certificate's key earns a token."""
    certificate = make_app_certificate()
    identity.add_microsoft_app(TENANT, CLIENT_ID, certificate_pem=certificate.certificate_pem)
    credential = (
        certificate.msal_credential()
        if credential_form == "public_certificate"
        else {"private_key": certificate.private_key_pem, "thumbprint": certificate.sha1_thumbprint}
    )
    result = _msal_app(identity, credential).acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
    assert "access_token" in result, result.get("error_description")

    _method, _path, _headers, example = _http_example(
        "token_request_client_assertion_certificate.http"
    )
    call = _token_call(identity)
    assert set(call.form) - set(example) == {"client_info"}
    assert call.form["client_assertion_type"] == example["client_assertion_type"]
    assert call.form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    header = jwt.get_unverified_header(call.form["client_assertion"])
    assert header["alg"] == algorithm
    assert thumbprint_header in header
    claims = jwt.decode(call.form["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == identity.token_endpoint(TENANT)
    assert claims["iss"] == claims["sub"] == CLIENT_ID


def test_msal_unregistered_certificate_is_refused(identity: FakeIdentityProvider) -> None:
    """An assertion signed with a certificate the app does not have fails with AADSTS700027."""
    identity.add_microsoft_app(
        TENANT, CLIENT_ID, certificate_pem=make_app_certificate().certificate_pem
    )
    other = make_app_certificate()
    result = _msal_app(identity, other.msal_credential()).acquire_token_for_client(
        scopes=[OUTLOOK_SCOPE]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert other.sha256_thumbprint in result["error_description"]


@pytest.mark.parametrize(
    ("case", "error", "code", "status"),
    [
        pytest.param("unknown_tenant", "invalid_request", 90002, 400, id="unknown_tenant"),
        pytest.param("unknown_client", "unauthorized_client", 700016, 400, id="unknown_client"),
        pytest.param("wrong_secret", "invalid_client", 7000215, 401, id="wrong_secret"),
        pytest.param("expired_secret", "invalid_client", 7000222, 401, id="expired_secret"),
        pytest.param("wrong_scope", "invalid_scope", 70011, 400, id="wrong_scope"),
    ],
)
def test_entra_errors_reach_msal_result(
    identity: FakeIdentityProvider, case: str, error: str, code: int, status: int
) -> None:
    """Each refusal arrives in msal's result dict with Entra's error, AADSTS code and shape."""
    identity.add_microsoft_app(
        TENANT, CLIENT_ID, secret=SECRET, secret_expired=case == "expired_secret"
    )
    app = _msal_app(
        identity,
        "not-the-secret" if case == "wrong_secret" else SECRET,
        client_id="99990000-ffff-4444-eeee-1111dddd2222" if case == "unknown_client" else CLIENT_ID,
    )
    if case == "unknown_tenant":
        identity.remove_tenant(TENANT)  # after msal read its discovery document
    scope = "https://graph.microsoft.com/.default" if case == "wrong_scope" else OUTLOOK_SCOPE

    result = app.acquire_token_for_client(scopes=[scope])

    assert result["error"] == error
    assert result["error_codes"] == [code]
    match = _DESCRIPTION.fullmatch(result["error_description"])
    assert match is not None, result["error_description"]
    assert match.group(1) == str(code)
    assert set(result) == set(_example_json("token_response_error_invalid_scope.json"))
    call = _token_call(identity)
    assert call.status == status
    assert result["correlation_id"] == call.headers["client-request-id"]
    assert identity.tokens_issued == 0


def test_docs_error_example_matches_the_description_format() -> None:
    """The docs' own error body fits the error_description pattern the fake is held to."""
    example = _example_json("token_response_error_invalid_scope.json")
    match = _DESCRIPTION.fullmatch(example["error_description"])
    assert match is not None
    assert example["error_codes"] == [int(match.group(1))]


def test_unknown_tenant_fails_while_msal_builds_the_app(identity: FakeIdentityProvider) -> None:
    """An unknown tenant fails discovery (AADSTS90002), so msal raises ValueError at once."""
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        _msal_app(identity, tenant="nowhere.onmicrosoft.com")
    (call,) = identity.calls
    assert call.status == 400
    assert call.answer["error"] == "invalid_tenant"
    assert call.answer["error_codes"] == [90002]


@pytest.mark.parametrize(
    ("expires_in", "requests_made"),
    [
        pytest.param(3599, 1, id="hour_token_cached"),
        pytest.param(299, 2, id="under_five_minutes_not_cached"),
    ],
)
def test_msal_caches_tokens_with_five_minutes_to_spare(
    identity: FakeIdentityProvider, expires_in: int, requests_made: int
) -> None:
    """msal serves a second call from its cache unless the token has under 5 minutes left."""
    identity.microsoft_expires_in = expires_in
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    app = _msal_app(identity)
    first = app.acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
    second = app.acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
    assert identity.tokens_issued == requests_made
    assert (first["access_token"] == second["access_token"]) is (requests_made == 1)


# -- Google through google-auth ---------------------------------------------------------


def test_google_service_account_with_delegation_gets_a_token(
    identity: FakeIdentityProvider,
) -> None:
    """google-auth's JWT-bearer grant for a delegated subject returns a live ya29 token."""
    info = identity.add_google_service_account()
    identity.grant_delegation(info["client_id"], MAILBOX, [GMAIL_SCOPE])
    credentials = _google_credentials(info)
    _refresh(identity, credentials)

    assert credentials.valid
    assert credentials.token.startswith("ya29.")
    issued = identity.token(credentials.token)
    assert (issued.provider, issued.principal, issued.subject) == (
        "google",
        info["client_id"],
        MAILBOX,
    )
    (call,) = identity.calls
    assert (call.method, call.path, call.headers["content-type"]) == (
        "POST",
        "/token",
        "application/x-www-form-urlencoded",
    )
    assert set(call.form) == {"grant_type", "assertion"}
    assert call.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert set(call.answer) == {"access_token", "expires_in", "token_type"}
    claims = jwt.decode(call.form["assertion"], options={"verify_signature": False})
    # google-auth signs Google's own token URI as audience, whatever token_uri says.
    assert claims["aud"] == GOOGLE_TOKEN_AUDIENCE
    assert (claims["iss"], claims["sub"], claims["scope"]) == (
        info["client_email"],
        MAILBOX,
        GMAIL_SCOPE,
    )


@pytest.mark.parametrize(
    ("case", "status", "answer"),
    [
        pytest.param(
            "no_delegation",
            401,
            {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            },
            id="no_delegation",
        ),
        pytest.param(
            "other_scope_delegated",
            401,
            {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            },
            id="other_scope_delegated",
        ),
        pytest.param(
            "deleted_key",
            400,
            {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
            id="deleted_key",
        ),
    ],
)
def test_google_refusals_raise_refresh_error(
    identity: FakeIdentityProvider, case: str, status: int, answer: dict[str, str]
) -> None:
    """Without delegation (for the scope) or with a deleted key, refresh raises RefreshError."""
    info = identity.add_google_service_account()
    if case == "other_scope_delegated":
        identity.grant_delegation(
            info["client_id"], MAILBOX, ["https://www.googleapis.com/auth/gmail.readonly"]
        )
    if case == "deleted_key":
        identity.grant_delegation(info["client_id"], MAILBOX, [GMAIL_SCOPE])
        identity.delete_google_key(info["client_email"])
    credentials = _google_credentials(info)

    with pytest.raises(RefreshError) as raised:
        _refresh(identity, credentials)

    assert raised.value.args == (f"{answer['error']}: {answer['error_description']}", answer)
    assert not raised.value.retryable
    (call,) = identity.calls  # not retried
    assert call.status == status
    assert identity.tokens_issued == 0


# -- the introspection endpoint ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["post", "get", "auth"])
def test_introspection_answers_in_every_dovecot_mode(
    identity: FakeIdentityProvider, mode: str
) -> None:
    """POST form, GET query and Bearer header all say active with the mailbox, or inactive."""
    info = identity.add_google_service_account()
    identity.grant_delegation(info["client_id"], MAILBOX, [GMAIL_SCOPE])
    credentials = _google_credentials(info)
    _refresh(identity, credentials)
    session = identity.http_session()

    def introspect(token: str) -> dict[str, Any]:
        if mode == "post":
            response = session.post(identity.introspection_url, data={"token": token})
        elif mode == "get":
            response = session.get(identity.introspection_url, params={"token": token})
        else:
            response = session.get(
                identity.introspection_url, headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200
        return response.json()

    live = introspect(credentials.token)
    assert (live["active"], live["email"], live["scope"]) == (True, MAILBOX, GMAIL_SCOPE)
    assert introspect("ya29.never-issued") == {"active": False}
    identity.revoke(info["client_email"])
    assert introspect(credentials.token) == {"active": False}


# -- end to end: a real Dovecot's oauth2 passdb -----------------------------------------


def _microsoft_token(identity: FakeIdentityProvider, *mailboxes: str) -> str:
    identity.add_microsoft_app(TENANT, CLIENT_ID, secret=SECRET)
    for mailbox in mailboxes:
        identity.grant_mailbox(CLIENT_ID, mailbox)
    return _msal_app(identity).acquire_token_for_client(scopes=[OUTLOOK_SCOPE])["access_token"]


def _google_token(identity: FakeIdentityProvider, mailbox: str) -> str:
    info = identity.add_google_service_account()
    identity.grant_delegation(info["client_id"], mailbox, [GMAIL_SCOPE])
    credentials = _google_credentials(info, subject=mailbox)
    _refresh(identity, credentials)
    return credentials.token


def _client(user: ImapUser) -> imapclient.IMAPClient:
    return imapclient.IMAPClient(user.host, port=user.port, ssl=False, timeout=10)


@pytest.mark.imap
@pytest.mark.parametrize("vendor", ["microsoft", "google"])
def test_xoauth2_login_with_live_token(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser, vendor: str
) -> None:
    """A live token for the mailbox logs in with XOAUTH2; the passdb posted it for checking."""
    get_token = _microsoft_token if vendor == "microsoft" else _google_token
    token = get_token(identity, oauth_imap_user.username)
    client = _client(oauth_imap_user)
    client.oauth2_login(oauth_imap_user.username, token)
    assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    client.logout()

    (call,) = identity.calls_to("/introspect")
    assert call.method == "POST"
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.headers["user-agent"].startswith("dovecot-oauth2-passdb/")
    assert call.form["token"] == token
    assert call.answer["email"] == oauth_imap_user.username


@pytest.mark.imap
def test_oauthbearer_login_with_live_token(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser
) -> None:
    """OAUTHBEARER (RFC 7628) goes through the same oauth2 passdb and logs in."""
    token = _microsoft_token(identity, oauth_imap_user.username)
    client = _client(oauth_imap_user)
    client.oauthbearer_login(oauth_imap_user.username, token)
    client.logout()


@pytest.mark.imap
def test_password_login_still_works_on_the_oauth2_server(oauth_imap_user: ImapUser) -> None:
    """PLAIN/LOGIN keep their passwd-file passdb next to the oauth2 one."""
    client = _client(oauth_imap_user)
    client.login(oauth_imap_user.username, oauth_imap_user.password)
    client.logout()


@pytest.mark.imap
@pytest.mark.parametrize(
    "case", ["expired", "revoked", "other_mailbox", "no_full_access", "never_issued"]
)
def test_xoauth2_login_refused(
    identity: FakeIdentityProvider,
    oauth_dovecot: DovecotServer,
    oauth_imap_user: ImapUser,
    case: str,
) -> None:
    """An expired, revoked, other mailbox's, mailbox-less or unknown token is refused."""
    clock = ManualClock()
    identity.clock = clock
    identity.microsoft_expires_in = 5
    mailbox = oauth_imap_user.username
    if case == "other_mailbox":
        mailbox = oauth_dovecot.create_user("other", domain="example.com").username
    token = _microsoft_token(identity, *([] if case == "no_full_access" else [mailbox]))
    if case == "expired":
        clock.advance(6)
    elif case == "revoked":
        assert identity.revoke(CLIENT_ID) == 1
    elif case == "never_issued":
        token = "eyJ0." + "x" * 40

    client = _client(oauth_imap_user)
    with pytest.raises(LoginError, match=re.escape("[AUTHENTICATIONFAILED]")):
        client.oauth2_login(oauth_imap_user.username, token)
    client.shutdown()

    (call,) = identity.calls_to("/introspect")
    if case == "other_mailbox":
        assert call.answer["active"] is True
        assert call.answer["email"] == mailbox != oauth_imap_user.username
    elif case == "no_full_access":
        assert call.answer["email"] == f"{CLIENT_ID}@apps.invalid"
    else:
        assert call.answer == {"active": False}


@pytest.mark.imap
def test_app_with_two_mailboxes_gets_a_temporary_failure(
    identity: FakeIdentityProvider, oauth_dovecot: DovecotServer, oauth_imap_user: ImapUser
) -> None:
    """Dovecot 2.3.19 does not tell introspection the login user, so an app granted two
    mailboxes gets no email back and the login fails as temporary, not as a wrong token."""
    other = oauth_dovecot.create_user("other", domain="example.com")
    token = _microsoft_token(identity, oauth_imap_user.username, other.username)
    client = _client(oauth_imap_user)
    with pytest.raises(LoginError, match=re.escape("[UNAVAILABLE]")):
        client.oauth2_login(oauth_imap_user.username, token)
    client.shutdown()
    (call,) = identity.calls_to("/introspect")
    assert set(call.form) == {"token", "client_id", "client_secret"}  # no user=
    assert call.answer["active"] is True
    assert "email" not in call.answer


@pytest.mark.imap
def test_token_expiring_mid_run_stops_new_logins(
    identity: FakeIdentityProvider, oauth_imap_user: ImapUser
) -> None:
    """The same token logs in while live and is refused once the clock passes its expiry."""
    clock = ManualClock()
    identity.clock = clock
    identity.google_expires_in = 3
    token = _google_token(identity, oauth_imap_user.username)

    client = _client(oauth_imap_user)
    client.oauth2_login(oauth_imap_user.username, token)
    client.logout()
    clock.advance(3)
    client = _client(oauth_imap_user)
    with pytest.raises(LoginError):
        client.oauth2_login(oauth_imap_user.username, token)
    client.shutdown()
