"""A loopback OAuth2 authorization server for the OAuth2 sign-in tests (issue 10).

``OAuthProvider()`` runs a small authorization server (standard library
``http.server.ThreadingHTTPServer`` in a thread) on a free port of 127.0.0.1
and signs RS256 JWT access tokens with its own RSA key, which a private
Dovecot validates locally (``DovecotServer(..., oauth2=OAuth2Settings.from_provider(p))``)
and which ``SmtpServer(..., oauth_verify=p.check_token)`` accepts::

    with OAuthProvider() as provider:
        refresh = provider.add_grant("alice", "vmailkit-test")   # a grant obtained "elsewhere"
        # POST provider.token_url  grant_type=refresh_token&refresh_token=...&client_id=vmailkit-test
        #   -> {"access_token": <JWT>, "refresh_token": <rotated>, "expires_in": 3600, ...}

Plain HTTP by default: everything stays on the loopback interface, and RFC 8252
(section 8.3) treats loopback ``http`` as acceptable for native apps, so the
token endpoint needs no certificate.  Some client libraries insist on
``https`` anyway (MSAL's ``authority`` must be ``https://``; oauthlib /
requests-oauthlib want ``OAUTHLIB_INSECURE_TRANSPORT``); for those pass
``tls_dir=...`` (or ``certs=``): the provider then serves HTTPS with a
certificate for 127.0.0.1/localhost from the throw-away CA of ``tests/certs.py``
(``provider.ca_file`` is the CA to trust).

Endpoints (all below ``provider.issuer``, e.g. ``http://127.0.0.1:PORT``):

=====================================  ===================================================
``POST /token``  (``token_url``)       grants ``refresh_token``, ``authorization_code``
                                       (PKCE S256) and ``urn:ietf:params:oauth:grant-type:
                                       device_code`` (RFC 6749, 7636, 8628)
``POST /device`` (``device_url``)      device authorization (RFC 8628 section 3.1)
``GET  /device``                       the "verification_uri" page (text only)
``POST /revoke`` (``revoke_url``)      token revocation (RFC 7009)
``GET  /authorize`` (``auth_url``)     authorization endpoint: auto-approves as
                                       ``provider.authorize_user`` (else ``login_hint``)
                                       and redirects (302) to ``redirect_uri`` with
                                       ``code``, ``state`` and ``iss``
``GET  /jwks`` (``jwks_url``)          the public key as a JWK set
``GET  .../.well-known/openid-configuration``  metadata (any path ending so, which is
                                       what MSAL asks for: ``/<tenant>/v2.0/.well-known/...``);
                                       also ``/.well-known/oauth-authorization-server``
=====================================  ===================================================

Access tokens are JWTs: header ``{"alg": "RS256", "typ": "JWT", "kid": kid}``
(Dovecot 2.3 insists on ``typ: JWT``; RFC 9068's ``at+jwt`` would be refused),
claims ``iss``, ``sub``, ``email`` (the Dovecot user name unless the grant says
otherwise), ``aud`` (``provider.audience``), ``scope`` (the grant's, default
``"mail offline_access"``; Dovecot's ``scope = mail`` needs ``mail``),
``client_id``, ``jti``, ``iat``, ``exp`` (``iat + provider.access_lifetime``).
There is deliberately no ``azp`` claim: Dovecot 2.3 would then look the key
up under ``<azp>/`` instead of ``default/``.

Grants and refresh tokens: ``add_grant(user, client_id)`` returns a refresh
token.  Each ``refresh_token`` request returns a new access token *and* a new
refresh token (``rotate_refresh_tokens``); the old one is retired, and
presenting a retired one again revokes the whole grant (``invalid_grant``,
reuse detection as Microsoft does; ``reuse_revokes_grant``).  With
``rotate_refresh_tokens = False`` the response has no ``refresh_token`` (as
Google answers) and the same one stays valid.

Client authentication (RFC 6749 section 2.3): ``client_id`` is required (form
field or HTTP Basic).  A client registered with a secret (``add_client`` /
``add_grant(..., client_secret=...)``) must send it, as form field
``client_secret`` or with HTTP Basic (not both); otherwise ``401
invalid_client`` with ``WWW-Authenticate: Basic``.  Unknown client ids are
treated as public clients unless ``allow_unknown_clients = False``.

Errors are RFC 6749 JSON bodies ``{"error": ..., "error_description": ...}``
with status 400 (401 for ``invalid_client``).

Test switches: ``fail_with = 503`` makes every POST (token, device, revoke)
answer that status with a JSON error (``temporarily_unavailable`` for 5xx,
``invalid_request`` otherwise) until set back to ``None``; with
``fail_times = n`` as well, only the next n POSTs fail and the switch resets
itself.  ``delay`` sleeps that many seconds before answering any request.
``reset()`` clears all three and the request log.

Device flow (RFC 8628): ``POST /device`` answers ``device_code``,
``user_code`` (``BCDF-GHJK`` style), ``verification_uri``,
``verification_uri_complete``, ``expires_in`` (``device_code_lifetime``),
``interval`` (``device_interval``, default 1 s to keep tests fast) and
``message`` (as Microsoft).  Polls answer ``authorization_pending`` until the
test calls ``approve(user_code, user)`` (or ``deny`` -> ``access_denied``);
after ``expires_in`` ``expired_token``; with ``enforce_device_interval`` a
poll sooner than ``interval`` gets ``slow_down`` (and the interval grows by
5 s).  ``pending_user_codes`` lists the codes waiting for approval.

Authorization code + PKCE: ``GET /authorize`` needs ``client_id``,
``redirect_uri`` (any absolute URI; not registered, but bound to the code),
``response_type=code`` and, unless ``require_pkce = False``,
``code_challenge`` with ``code_challenge_method=S256``.  It signs in as
``authorize_user`` or the ``login_hint`` parameter without any page, or
redirects with ``error=<authorize_error>`` when that is set.  The token
request must repeat ``redirect_uri`` and send the ``code_verifier``; a
replayed code gets ``invalid_grant`` and revokes the grant it produced.
With ``openid`` in the scope, token answers also carry an RS256 ``id_token``
(``aud`` = client_id, ``email``, ``preferred_username``, ``nonce``); with
``client_info=1`` in the form (MSAL) a ``client_info``.

Request log: ``provider.requests`` is a list of dicts, one per HTTP request,
with ``method``, ``path``, ``query``, ``form``, ``headers`` (lower-case
names), ``status`` and ``time``.  Nothing is redacted: client secrets,
refresh tokens and codes appear as sent, because the tests assert on what the
client sent.  Never point a real client with real credentials at it.
``provider.token_requests`` counts POSTs to ``/token``.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import ssl
import string
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certs import Certs, make_certs

__all__ = [
    "DEFAULT_SCOPE",
    "DEVICE_CODE_GRANT",
    "AuthCode",
    "DeviceAuthorization",
    "Grant",
    "OAuthProvider",
    "oauthbearer_string",
    "pkce_pair",
    "xoauth2_string",
]

#: Scope of a grant when neither ``add_grant`` nor the client names one.
DEFAULT_SCOPE = "mail offline_access"
#: RFC 8628 grant type of the device authorization grant.
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Scopes a client may always add on refresh (OpenID Connect, as MSAL does).
_OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
#: RFC 8628 section 6.1: user codes from a base-20 alphabet without vowels.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_TENANT = "vmailkit-test-tenant"


def xoauth2_string(user: str, token: str) -> str:
    """The XOAUTH2 initial client response ``user=U^Aauth=Bearer T^A^A`` (not base64-encoded)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer_string(user: str | None, token: str, host: str | None = None, port: int | None = None) -> str:
    """The OAUTHBEARER (RFC 7628) client response ``n,a=U,^A[host=..^Aport=..^A]auth=Bearer T^A^A``.

    ``user=None`` leaves out the authzid (``n,,``), which RFC 7628 allows but
    Dovecot 2.3 refuses ("Missing username or token").  ``,`` and ``=`` in the
    user name are escaped as ``=2C``/``=3D`` (RFC 5801).
    """
    gs2 = "n,," if user is None else "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
    extra = ""
    if host is not None:
        extra += f"host={host}\x01"
    if port is not None:
        extra += f"port={port}\x01"
    return f"{gs2}\x01{extra}auth=Bearer {token}\x01\x01"


def pkce_pair(verifier: str | None = None) -> tuple[str, str]:
    """``(code_verifier, code_challenge)`` for PKCE S256 (RFC 7636 section 4.2)."""
    verifier = verifier or secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _b64url_json(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class OAuthError(Exception):
    """An RFC 6749 error answer: ``status`` and ``{"error": error, "error_description": description}``."""

    def __init__(self, error: str, description: str = "", status: int = 400,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}


@dataclass
class Grant:
    """One user's consent for one client: the current refresh token and its history."""

    id: str
    user: str
    client_id: str
    scope: str
    email: str
    refresh_token: str
    retired: set[str] = field(default_factory=set)  # rotated-away refresh tokens
    revoked: bool = False
    revoked_reason: str | None = None
    refreshes: int = 0  # successful refresh_token grants
    access_jtis: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)


@dataclass
class DeviceAuthorization:
    """A pending RFC 8628 device authorization (``status``: pending, approved, denied, used)."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: int
    status: str = "pending"
    user: str | None = None
    last_poll: float | None = None
    polls: int = 0


@dataclass
class AuthCode:
    """An authorization code from ``/authorize`` (single use, bound to client and redirect_uri)."""

    code: str
    client_id: str
    redirect_uri: str
    user: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    nonce: str | None = None
    used: bool = False
    grant_id: str | None = None


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that does the TLS handshake in the worker thread, quietly."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 provider: "OAuthProvider", ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(addr, handler)
        self.provider = provider
        self.ssl_context = ssl_context

    def finish_request(self, request: Any, client_address: Any) -> None:  # noqa: D401 - stdlib hook
        if self.ssl_context is not None:
            request.settimeout(10)
            request = self.ssl_context.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # handshake failures, clients hanging up: record, do not spam stderr
        self.provider.errors.append(repr(sys.exc_info()[1]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib hook
        self.server.provider._dispatch(self, "GET")

    def do_POST(self) -> None:  # noqa: N802 - stdlib hook
        self.server.provider._dispatch(self, "POST")


class OAuthProvider:
    """A loopback OAuth2 authorization server (see the module docstring).

    Constructor: ``OAuthProvider(*, tls_dir=None, certs=None, access_lifetime=3600,
    audience="vmailkit-test-mail", kid=None)``.

    Read-only after ``start()``: ``host``, ``port``, ``issuer``, ``token_url``,
    ``device_url``, ``revoke_url``, ``auth_url``, ``jwks_url``,
    ``openid_configuration_url``, ``ca_file`` (None without TLS),
    ``kid``, ``public_key_pem`` (str), ``private_key``.

    Settings (plain attributes, change any time): ``access_lifetime``,
    ``audience``, ``rotate_refresh_tokens``, ``reuse_revokes_grant``,
    ``allow_unknown_clients``, ``device_code_lifetime``, ``device_interval``,
    ``enforce_device_interval``, ``auth_code_lifetime``, ``require_pkce``,
    ``authorize_user``, ``authorize_error``, ``fail_with``, ``fail_times``,
    ``delay``.

    State: ``grants``, ``clients``, ``devices``, ``codes``, ``requests``,
    ``token_requests``, ``errors``.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        tls_dir: Path | str | None = None,
        certs: Certs | None = None,
        access_lifetime: int = 3600,
        audience: str = "vmailkit-test-mail",
        kid: str | None = None,
    ) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key_pem: str = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")
        # a fresh kid per provider: Dovecot caches a key per kid until its auth process restarts
        self.kid: str = kid or f"vmk-{uuid.uuid4().hex[:16]}"
        self.certs: Certs | None = certs or (make_certs(Path(tls_dir)) if tls_dir is not None else None)

        # settings
        self.access_lifetime: int = access_lifetime
        self.audience: str = audience
        self.rotate_refresh_tokens: bool = True
        self.reuse_revokes_grant: bool = True
        self.allow_unknown_clients: bool = True
        self.device_code_lifetime: int = 600
        self.device_interval: int = 1
        self.enforce_device_interval: bool = False
        self.auth_code_lifetime: int = 60
        self.require_pkce: bool = True
        self.authorize_user: str | None = None
        self.authorize_error: str | None = None
        self.fail_with: int | None = None
        self.fail_times: int | None = None
        self.delay: float = 0.0

        # state
        self.clients: dict[str, str | None] = {}  # client_id -> secret (None: public client)
        self.grants: list[Grant] = []
        self.devices: list[DeviceAuthorization] = []
        self.codes: list[AuthCode] = []
        self.requests: list[dict[str, Any]] = []
        self.token_requests: int = 0
        self.errors: list[str] = []
        self.revoked_jtis: set[str] = set()
        self._by_refresh: dict[str, Grant] = {}
        self._jti_grant: dict[str, Grant] = {}
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def scheme(self) -> str:
        """``https`` when started with certificates, else ``http``."""
        return "https" if self.certs else "http"

    @property
    def issuer(self) -> str:
        """``http(s)://127.0.0.1:PORT`` -- also the ``iss`` claim and Dovecot's ``issuers``."""
        if self.port is None:
            raise RuntimeError("OAuthProvider not started")
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    @property
    def device_url(self) -> str:
        return self.issuer + "/device"

    @property
    def revoke_url(self) -> str:
        return self.issuer + "/revoke"

    @property
    def auth_url(self) -> str:
        return self.issuer + "/authorize"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks"

    @property
    def openid_configuration_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def ca_file(self) -> str | None:
        """The CA to trust for the HTTPS mode, None for plain HTTP."""
        return str(self.certs.ca_file) if self.certs else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "OAuthProvider":
        """Bind a free port of 127.0.0.1 and serve in a daemon thread."""
        if self.running:
            return self
        ctx = None
        if self.certs:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.certs.cert_file, self.certs.key_file)
        self._server = _Server((self.host, 0), _Handler, self, ctx)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"oauth-provider-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "OAuthProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.issuer if self.port else "not started"
        return f"<OAuthProvider {where} kid={self.kid} grants={len(self.grants)}>"

    # -------------------------------------------------------- test helpers
    def add_client(self, client_id: str, client_secret: str | None = None) -> None:
        """Register a client; with a secret it becomes confidential and must authenticate."""
        with self._lock:
            self.clients[client_id] = client_secret

    def add_grant(self, user: str, client_id: str, client_secret: str | None = None,
                  scope: str = DEFAULT_SCOPE, *, email: str | None = None) -> str:
        """Create a grant as if ``user`` had consented elsewhere; returns its refresh token.

        ``client_secret`` registers the client as confidential (None leaves an
        existing registration alone).  ``email`` is the token's ``email``
        claim (default: ``user``, the Dovecot login name).
        """
        with self._lock:
            if client_secret is not None:
                self.clients[client_id] = client_secret
            else:
                self.clients.setdefault(client_id, None)
            return self._new_grant(user, client_id, scope, email).refresh_token

    def grant_for(self, refresh_token: str) -> Grant | None:
        """The grant a (current or retired) refresh token belongs to."""
        with self._lock:
            return self._by_refresh.get(refresh_token)

    def approve(self, user_code: str, user: str, scope: str | None = None) -> DeviceAuthorization:
        """Approve a pending device authorization as ``user`` (the next poll gets tokens)."""
        with self._lock:
            dev = self._device_by_user_code(user_code)
            if dev.status != "pending":
                raise ValueError(f"device authorization {user_code} is {dev.status}")
            dev.status, dev.user = "approved", user
            if scope is not None:
                dev.scope = scope
            return dev

    def deny(self, user_code: str) -> DeviceAuthorization:
        """Deny a pending device authorization (the next poll gets ``access_denied``)."""
        with self._lock:
            dev = self._device_by_user_code(user_code)
            dev.status = "denied"
            return dev

    @property
    def pending_user_codes(self) -> list[str]:
        """User codes of device authorizations still waiting for ``approve``/``deny``."""
        with self._lock:
            now = time.time()
            return [d.user_code for d in self.devices if d.status == "pending" and d.expires_at > now]

    def revoke(self, user: str) -> int:
        """Revoke every grant of ``user`` (their refresh tokens then get ``invalid_grant``); returns how many."""
        with self._lock:
            n = 0
            for g in self.grants:
                if g.user == user and not g.revoked:
                    g.revoked, g.revoked_reason = True, "revoked by the test"
                    n += 1
            return n

    def reset(self) -> None:
        """Clear the fault switches (``fail_with``, ``fail_times``, ``delay``) and the request log."""
        with self._lock:
            self.fail_with = None
            self.fail_times = None
            self.delay = 0.0
            self.requests.clear()
            self.token_requests = 0

    def mint_access_token(
        self,
        user: str,
        *,
        email: str | None = None,
        scope: str = DEFAULT_SCOPE,
        lifetime: int | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        client_id: str = "vmailkit-test",
        signing_key: Any = None,
        kid: str | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        iat: int | None = None,
    ) -> str:
        """Sign an access token directly (no grant), e.g. to craft bad ones.

        ``lifetime`` may be negative (already expired); ``signing_key`` an
        other RSA private key (same ``kid`` unless given); ``claims`` are
        merged last (a ``None`` value removes a claim); ``headers`` replace
        header fields (``typ``, ``kid``...).
        """
        now = int(time.time()) if iat is None else iat
        life = self.access_lifetime if lifetime is None else lifetime
        payload: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": self.subject(user),
            "email": email if email is not None else user,
            "aud": audience or self.audience,
            "scope": scope,
            "client_id": client_id,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + life,
        }
        for k, v in (claims or {}).items():
            if v is None:
                payload.pop(k, None)
            else:
                payload[k] = v
        hdr: dict[str, Any] = {"typ": "JWT", "kid": kid or self.kid}
        hdr.update(headers or {})
        return jwt.encode(payload, signing_key or self.private_key, algorithm="RS256", headers=hdr)

    def verify_access_token(self, token: str, user: str | None = None, scope: str | None = "mail") -> dict[str, Any]:
        """Claims of a token this provider signed; raises ``jwt.InvalidTokenError`` otherwise.

        Checks signature (RS256, this key), ``kid``, ``iss``, ``aud``, ``exp``,
        that ``scope`` is among the token's scopes (None: skip) and, when
        ``user`` is given, that the ``email`` claim equals it.
        """
        header = jwt.get_unverified_header(token)
        if header.get("kid") != self.kid:
            raise jwt.InvalidTokenError(f"unknown kid {header.get('kid')!r}")
        claims = jwt.decode(
            token, self.private_key.public_key(), algorithms=["RS256"], audience=self.audience,
            issuer=self.issuer, options={"require": ["exp", "iat", "iss", "sub"]},
        )
        if scope is not None and scope not in str(claims.get("scope", "")).split():
            raise jwt.InvalidTokenError(f"token lacks scope {scope!r}")
        if user is not None and claims.get("email") != user:
            raise jwt.InvalidTokenError(f"token is for {claims.get('email')!r}, not {user!r}")
        return claims

    def check_token(self, user: str, token: str) -> bool:
        """True if ``token`` is valid for ``user`` *and* not revoked (for ``SmtpServer(oauth_verify=...)``).

        Unlike Dovecot's offline JWT check this also consults the provider's
        state, like a server that validates tokens online (Gmail): a token
        whose grant was revoked, or which was revoked itself, fails.
        """
        try:
            claims = self.verify_access_token(token, user)
        except jwt.InvalidTokenError:
            return False
        with self._lock:
            jti = claims.get("jti")
            if jti in self.revoked_jtis:
                return False
            g = self._jti_grant.get(jti)
            return not (g is not None and g.revoked)

    def subject(self, user: str) -> str:
        """The stable ``sub`` claim of ``user``."""
        return "sub-" + hashlib.sha256(user.encode()).hexdigest()[:20]

    def jwks(self) -> dict[str, Any]:
        """The public key as a JWK set (``/jwks``)."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 / OpenID Connect discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.auth_url,
            "token_endpoint": self.token_url,
            "device_authorization_endpoint": self.device_url,
            "revocation_endpoint": self.revoke_url,
            "jwks_uri": self.jwks_url,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "scopes_supported": ["mail", "openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # ------------------------------------------------------------ internals
    def _new_grant(self, user: str, client_id: str, scope: str, email: str | None) -> Grant:
        g = Grant(id=uuid.uuid4().hex, user=user, client_id=client_id, scope=scope,
                  email=email if email is not None else user, refresh_token=self._new_refresh_token())
        self.grants.append(g)
        self._by_refresh[g.refresh_token] = g
        return g

    @staticmethod
    def _new_refresh_token() -> str:
        return "rt." + secrets.token_urlsafe(32)

    def _device_by_user_code(self, user_code: str) -> DeviceAuthorization:
        norm = user_code.replace("-", "").upper()
        for d in self.devices:
            if d.user_code.replace("-", "") == norm:
                return d
        raise KeyError(f"no device authorization with user code {user_code!r}")

    def _dispatch(self, h: _Handler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        entry: dict[str, Any] = {
            "time": time.time(),
            "method": method,
            "path": path,
            "query": {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            "form": {},
            "headers": {k.lower(): v for k, v in h.headers.items()},
            "status": None,
        }
        form_multi: dict[str, list[str]] = {}
        if method == "POST":
            form_multi = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            entry["form"] = {k: v[-1] for k, v in form_multi.items()}
        with self._lock:
            self.requests.append(entry)
            if method == "POST" and path == "/token":
                self.token_requests += 1
        if self.delay:
            time.sleep(self.delay)
        status, headers, payload = 200, {}, b""
        try:
            fault = self._fault_due() if method == "POST" else None
            if fault is not None:
                raise OAuthError("temporarily_unavailable" if fault >= 500 else "invalid_request",
                                 f"fault injected by the test (fail_with={fault})", fault)
            status, headers, payload = self._route(h, method, path, entry, form_multi)
        except OAuthError as e:
            status = e.status
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **e.headers}
            body_obj = {"error": e.error}
            if e.description:
                body_obj["error_description"] = e.description
            payload = json.dumps(body_obj).encode()
        except Exception as e:  # noqa: BLE001 - a bug here must show up as a 500, not a hang
            status, headers = 500, {"Content-Type": "application/json"}
            payload = json.dumps({"error": "server_error", "error_description": repr(e)}).encode()
            self.errors.append(repr(e))
        entry["status"] = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    def _fault_due(self) -> int | None:
        """The status to fail this POST with (``fail_with``), counting down ``fail_times``; None: no fault."""
        with self._lock:
            if self.fail_with is None:
                return None
            if self.fail_times is not None:
                if self.fail_times <= 0:
                    self.fail_with = self.fail_times = None
                    return None
                self.fail_times -= 1
                if self.fail_times == 0:
                    status, self.fail_with, self.fail_times = self.fail_with, None, None
                    return status
            return self.fail_with

    def _route(self, h: _Handler, method: str, path: str, entry: dict[str, Any],
               form_multi: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            if path.endswith("/.well-known/openid-configuration") or path == "/.well-known/oauth-authorization-server":
                return self._json(self.metadata())
            if path == "/jwks":
                return self._json(self.jwks())
            if path == "/authorize":
                return self._authorize(entry["query"])
            if path == "/device":
                text = "vmailkit test provider: the test approves device codes with provider.approve(user_code, user)\n"
                return 200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()
            raise OAuthError("not_found", f"no GET {path}", 404)
        if path not in ("/token", "/device", "/revoke"):
            raise OAuthError("not_found", f"no POST {path}", 404)
        ctype = h.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        dup = sorted(k for k, v in form_multi.items() if len(v) > 1)
        if dup:
            raise OAuthError("invalid_request", f"parameter(s) repeated: {', '.join(dup)}")
        form = entry["form"]
        client_id = self._client_auth(h, form)
        if path == "/device":
            return self._device_authorization(client_id, form)
        if path == "/revoke":
            return self._revoke_endpoint(client_id, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type missing")
        if grant_type == "refresh_token":
            return self._refresh_grant(client_id, form)
        if grant_type == DEVICE_CODE_GRANT:
            return self._device_grant(client_id, form)
        if grant_type == "authorization_code":
            return self._code_grant(client_id, form)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    @staticmethod
    def _json(obj: dict[str, Any], status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}, \
            json.dumps(obj).encode()

    def _client_auth(self, h: _Handler, form: dict[str, str]) -> str:
        """RFC 6749 section 2.3: returns the authenticated client_id or raises invalid_client."""
        basic_id = basic_secret = None
        auth = h.headers.get("Authorization")
        unauthorized = {"WWW-Authenticate": 'Basic realm="vmailkit-test-oauth"'}
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "basic":
                raise OAuthError("invalid_client", f"unsupported Authorization scheme {scheme!r}", 401, unauthorized)
            try:
                raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
                cid, _, sec = raw.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed HTTP Basic credentials", 401, unauthorized) from None
            basic_id, basic_secret = unquote_plus(cid), unquote_plus(sec)
            if "client_secret" in form:
                raise OAuthError("invalid_request", "more than one client authentication method used")
            if form.get("client_id") not in (None, basic_id):
                raise OAuthError("invalid_request", "client_id in the form differs from HTTP Basic")
        client_id = basic_id or form.get("client_id")
        secret = basic_secret if basic_id else form.get("client_secret")
        if not client_id:
            raise OAuthError("invalid_client", "client_id missing", 401, unauthorized)
        with self._lock:
            known = client_id in self.clients
            expected = self.clients.get(client_id)
        if not known and not self.allow_unknown_clients:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401, unauthorized)
        if expected is not None:
            if secret is None:
                raise OAuthError("invalid_client", "client authentication required (client_secret)", 401, unauthorized)
            if not hmac.compare_digest(secret.encode(), expected.encode()):
                raise OAuthError("invalid_client", "client secret is wrong", 401, unauthorized)
        return client_id

    def _check_scope(self, requested: str | None, granted: str) -> str:
        if not requested:
            return granted
        allowed = set(granted.split()) | _OIDC_SCOPES
        extra = [s for s in requested.split() if s not in allowed]
        if extra:
            raise OAuthError("invalid_scope", f"scope(s) not granted: {' '.join(extra)}")
        return " ".join(dict.fromkeys(requested.split()))

    def _token_response(self, g: Grant, scope: str, form: dict[str, str], *, new_refresh: bool,
                        nonce: str | None = None) -> tuple[int, dict[str, str], bytes]:
        token = self.mint_access_token(g.user, email=g.email, scope=scope, client_id=g.client_id)
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        g.access_jtis.append(jti)
        self._jti_grant[jti] = g
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "scope": scope,
        }
        if new_refresh:
            body["refresh_token"] = g.refresh_token
        if "openid" in scope.split():
            now = int(time.time())
            idt: dict[str, Any] = {
                "iss": self.issuer, "sub": self.subject(g.user), "aud": g.client_id, "email": g.email,
                "preferred_username": g.email, "tid": _TENANT, "oid": self.subject(g.user),
                "iat": now, "exp": now + self.access_lifetime,
            }
            if nonce:
                idt["nonce"] = nonce
            body["id_token"] = jwt.encode(idt, self.private_key, algorithm="RS256",
                                          headers={"typ": "JWT", "kid": self.kid})
        if form.get("client_info") == "1":  # MSAL asks for this to build its account cache
            body["client_info"] = _b64url_json({"uid": self.subject(g.user), "utid": _TENANT})
        return self._json(body)

    def _refresh_grant(self, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        rt = form.get("refresh_token")
        if not rt:
            raise OAuthError("invalid_request", "refresh_token missing")
        with self._lock:
            g = self._by_refresh.get(rt)
            if g is None:
                raise OAuthError("invalid_grant", "unknown refresh token")
            if g.client_id != client_id:
                raise OAuthError("invalid_grant", "refresh token was issued to another client")
            if g.revoked:
                raise OAuthError("invalid_grant", f"grant revoked ({g.revoked_reason})")
            if rt != g.refresh_token:
                if self.reuse_revokes_grant:
                    g.revoked, g.revoked_reason = True, "a rotated-away refresh token was replayed"
                    raise OAuthError("invalid_grant", "refresh token already used; the grant is revoked")
                raise OAuthError("invalid_grant", "refresh token already used")
            scope = self._check_scope(form.get("scope"), g.scope)
            if self.rotate_refresh_tokens:
                g.retired.add(g.refresh_token)
                g.refresh_token = self._new_refresh_token()
                self._by_refresh[g.refresh_token] = g
            g.refreshes += 1
            return self._token_response(g, scope, form, new_refresh=self.rotate_refresh_tokens)

    def _device_authorization(self, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
            user_code = user_code[:4] + "-" + user_code[4:]
            dev = DeviceAuthorization(
                device_code="dc." + secrets.token_urlsafe(24), user_code=user_code, client_id=client_id,
                scope=form.get("scope") or DEFAULT_SCOPE, expires_at=time.time() + self.device_code_lifetime,
                interval=self.device_interval,
            )
            self.devices.append(dev)
        uri = self.device_url
        return self._json({
            "device_code": dev.device_code,
            "user_code": dev.user_code,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?{urlencode({'user_code': dev.user_code})}",
            "expires_in": self.device_code_lifetime,
            "interval": dev.interval,
            "message": f"To sign in, open {uri} and enter the code {dev.user_code}.",
        })

    def _device_grant(self, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        code = form.get("device_code")
        if not code:
            raise OAuthError("invalid_request", "device_code missing")
        with self._lock:
            dev = next((d for d in self.devices if d.device_code == code), None)
            if dev is None:
                raise OAuthError("invalid_grant", "unknown device_code")
            if dev.client_id != client_id:
                raise OAuthError("invalid_grant", "device_code was issued to another client")
            now = time.time()
            dev.polls += 1
            if dev.status == "used":
                raise OAuthError("invalid_grant", "device_code already used")
            if now > dev.expires_at:
                raise OAuthError("expired_token", "the device code has expired")
            if dev.status == "denied":
                raise OAuthError("access_denied", "the user denied the request")
            if dev.status == "pending":
                too_fast = dev.last_poll is not None and now - dev.last_poll < dev.interval
                dev.last_poll = now
                if self.enforce_device_interval and too_fast:
                    dev.interval += 5  # RFC 8628 section 3.5
                    raise OAuthError("slow_down", f"poll at most every {dev.interval} s")
                raise OAuthError("authorization_pending", "the user has not approved the request yet")
            assert dev.status == "approved" and dev.user is not None
            dev.status = "used"
            g = self._new_grant(dev.user, client_id, dev.scope, None)
            return self._token_response(g, g.scope, form, new_refresh=True)

    def _authorize(self, q: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if not client_id or not redirect_uri or not urlsplit(redirect_uri).scheme:
            # RFC 6749 4.1.2.1: no redirect to an unverified redirect_uri
            raise OAuthError("invalid_request", "client_id and an absolute redirect_uri are required")
        if not self.allow_unknown_clients and client_id not in self.clients:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}")

        def redirect(params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            if q.get("state") is not None:
                params["state"] = q["state"]
            params["iss"] = self.issuer  # RFC 9207
            p = urlsplit(redirect_uri)
            query = (p.query + "&" if p.query else "") + urlencode(params)
            return 302, {"Location": urlunsplit((p.scheme, p.netloc, p.path, query, "")),
                         "Cache-Control": "no-store"}, b""

        if q.get("response_type") != "code":
            return redirect({"error": "unsupported_response_type"})
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method")
        if challenge is None and self.require_pkce:
            return redirect({"error": "invalid_request", "error_description": "PKCE code_challenge required"})
        if challenge is not None and method != "S256":
            return redirect({"error": "invalid_request", "error_description": "code_challenge_method must be S256"})
        if self.authorize_error:
            return redirect({"error": self.authorize_error, "error_description": "set by the test"})
        user = self.authorize_user or q.get("login_hint")
        if not user:
            return redirect({"error": "access_denied", "error_description": "no provider.authorize_user/login_hint"})
        with self._lock:
            ac = AuthCode(code="ac." + secrets.token_urlsafe(24), client_id=client_id, redirect_uri=redirect_uri,
                          user=user, scope=q.get("scope") or DEFAULT_SCOPE, code_challenge=challenge,
                          code_challenge_method=method, expires_at=time.time() + self.auth_code_lifetime,
                          nonce=q.get("nonce"))
            self.codes.append(ac)
        return redirect({"code": ac.code})

    def _code_grant(self, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code missing")
        with self._lock:
            ac = next((c for c in self.codes if c.code == code), None)
            if ac is None:
                raise OAuthError("invalid_grant", "unknown authorization code")
            if ac.used:
                # RFC 6749 4.1.2: a reused code SHOULD revoke what it produced
                g = next((g for g in self.grants if g.id == ac.grant_id), None)
                if g is not None:
                    g.revoked, g.revoked_reason = True, "authorization code replayed"
                raise OAuthError("invalid_grant", "authorization code already used")
            if time.time() > ac.expires_at:
                raise OAuthError("invalid_grant", "authorization code expired")
            if ac.client_id != client_id:
                raise OAuthError("invalid_grant", "authorization code was issued to another client")
            if form.get("redirect_uri") != ac.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            verifier = form.get("code_verifier")
            if ac.code_challenge is not None:
                if not verifier:
                    raise OAuthError("invalid_grant", "code_verifier missing (PKCE)")
                if not (43 <= len(verifier) <= 128) or any(
                        c not in string.ascii_letters + string.digits + "-._~" for c in verifier):
                    raise OAuthError("invalid_grant", "malformed code_verifier")
                if not hmac.compare_digest(pkce_pair(verifier)[1], ac.code_challenge):
                    raise OAuthError("invalid_grant", "PKCE verification failed")
            elif verifier:
                raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was")
            ac.used = True
            g = self._new_grant(ac.user, client_id, ac.scope, None)
            ac.grant_id = g.id
            return self._token_response(g, g.scope, form, new_refresh=True, nonce=ac.nonce)

    def _revoke_endpoint(self, client_id: str, form: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token missing")
        with self._lock:
            g = self._by_refresh.get(token)
            if g is not None:
                if g.client_id != client_id:
                    raise OAuthError("unauthorized_client", "the token was issued to another client")
                if not g.revoked:
                    g.revoked, g.revoked_reason = True, "revoked at the revocation endpoint"
                return 200, {"Cache-Control": "no-store"}, b""
            with contextlib.suppress(jwt.PyJWTError):
                claims = jwt.decode(token, options={"verify_signature": False})
                if claims.get("jti") in self._jti_grant:
                    self.revoked_jtis.add(claims["jti"])
        # RFC 7009 2.2: unknown tokens are answered 200 as well
        return 200, {"Cache-Control": "no-store"}, b""
