"""A real SMTP server on loopback for the reply tests: aiosmtpd with STARTTLS, implicit TLS and AUTH.

``SmtpServer(cert_dir, mode=...)`` listens on a free port of 127.0.0.1 (aiosmtpd cannot bind port 0,
so one is reserved first) and records every accepted message::

    with SmtpServer(tmp_path, mode="starttls", users={"office": "pw"}) as srv:
        ...                          # send to srv.host:srv.port, trusting srv.ca_file
        srv.messages[0].content      # the DATA bytes exactly as received (dot-unstuffed)

Modes: ``starttls`` (STARTTLS offered and required before AUTH and MAIL), ``ssl`` (implicit TLS,
SMTPS), ``plain`` (no TLS; AUTH offered in clear only when ``plain_auth=True``). A recipient in
``srv.reject`` is answered ``550``. Certificates come from :func:`make_certs`: a throw-away CA and a
server certificate for ``127.0.0.1``/``localhost``, made with the ``openssl`` tool like the Dovecot
harness does.

OAuth2 (opt-in): ``SmtpServer(..., oauth_verify=provider.check_token)`` also offers ``AUTH XOAUTH2``
(as Gmail and Outlook do). The client sends ``AUTH XOAUTH2 <base64(user=U^Aauth=Bearer T^A^A)>``
(or ``AUTH XOAUTH2`` and the same after ``334 ``); ``oauth_verify(user, token) -> bool`` decides.
Accepted: ``235 2.7.0``; the message's ``Delivered.login`` is then the XOAUTH2 user and
``srv.oauth_logins`` lists them. Refused, like Gmail: ``334 <base64 JSON>`` with
``{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}``, the client answers with
an empty line, then ``535 5.7.8 Username and Password not accepted``; with
``oauth_failure_challenge=False`` the ``535`` comes at once. A refused user is appended to
``srv.failed_logins``. Malformed XOAUTH2 data gets ``501 5.5.2``. Because a JWT is longer than
aiosmtpd's default 512-byte command and 1001-byte line limits, the OAuth2 server accepts AUTH lines
up to 12288 bytes (RFC 4954 section 4); the DATA line limit stays 1001.
"""
from __future__ import annotations

import base64
import binascii
import collections
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword


from certs import Certs, make_certs  # noqa: E402  (re-exported for the tests)


@dataclass
class Delivered:
    """One accepted message: the envelope, the login used and the DATA bytes as received."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None
    tls: bool




def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class _Handler:
    messages: list[Delivered] = field(default_factory=list)
    reject: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, (LoginPassword, XOAuth2Login)) else None
        self.messages.append(Delivered(
            mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), content=bytes(envelope.original_content),
            login=login, tls=session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
        ))
        return "250 2.0.0 Ok: queued as VMK1"


class XOAuth2Login(NamedTuple):
    """``session.auth_data`` after a successful ``AUTH XOAUTH2``: the user and the bearer token."""

    login: bytes
    token: bytes


#: ``oauth_verify(user, token) -> bool``: is ``token`` a valid access token for ``user``?
OAuthVerifier = Callable[[str, str], bool]

#: The JSON Gmail sends (base64) in its ``334`` challenge when an XOAUTH2 token is refused.
XOAUTH2_FAILURE_JSON = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
#: RFC 4954 section 4: an AUTH command line may be up to 12288 octets.
AUTH_LINE_LIMIT = 12288


@dataclass
class _OAuthHandler(_Handler):
    """``_Handler`` plus the ``AUTH XOAUTH2`` mechanism (aiosmtpd picks up ``auth_*`` methods of handlers)."""

    verify: OAuthVerifier | None = None
    failure_challenge: bool = True
    failed_logins: list[str] = field(default_factory=list)
    oauth_logins: list[str] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd hook
        """RFC 4954 exchange for XOAUTH2 (Google's format ``user=U^Aauth=Bearer T^A^A``)."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:  # "*" or bad base64: aiosmtpd has answered 501 already
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        user = token = None
        for part in blob.split(b"\x01"):
            if part.startswith(b"user="):
                user = part[5:]
            elif part[:12].lower() == b"auth=bearer ":
                token = part[12:]
        if not user or not token:
            await server.push("501 5.5.2 Malformed XOAUTH2 response (need user= and auth=Bearer)")
            return AuthResult(success=False, handled=True)
        try:
            ok = bool(self.verify and self.verify(user.decode("utf-8", "replace"), token.decode("ascii", "replace")))
        except Exception:  # noqa: BLE001 - a verifier error refuses the login
            ok = False
        if ok:
            self.oauth_logins.append(user.decode("utf-8", "replace"))
            return AuthResult(success=True, auth_data=XOAuth2Login(user, token))
        self.failed_logins.append(user.decode("utf-8", "replace"))
        if self.failure_challenge:
            reply = await server.challenge_auth(json.dumps(XOAUTH2_FAILURE_JSON, separators=(",", ":")))
            if reply is MISSING:  # client sent "*": aiosmtpd has answered 501 already
                return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


class _OAuthSMTP(SMTP):
    """aiosmtpd's SMTP with room for long XOAUTH2 lines (JWTs exceed the 512/1001-byte defaults).

    The stream reader gets a 12288+ byte limit (also used for the ``334``
    continuation line) and ``AUTH`` a 12288-byte command limit, in a
    per-instance ``command_size_limits`` (aiosmtpd's is a class attribute
    shared by all servers).  ``line_length_limit`` stays 1001, so DATA lines
    are still limited as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.line_length_limit = AUTH_LINE_LIMIT + 2  # instance attribute, read once by SMTP.__init__
        try:
            super().__init__(*args, **kwargs)
        finally:
            del self.line_length_limit  # back to the class's 1001 for DATA
        default = self.command_size_limit
        self.command_size_limits = collections.defaultdict(lambda: default, {"AUTH": AUTH_LINE_LIMIT})


class _OAuthController(Controller):
    def factory(self) -> SMTP:
        return _OAuthSMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in one of the modes ``starttls``, ``ssl``, ``plain`` (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(self, cert_dir: Path, *, mode: str = "starttls", users: dict[str, str] | None = None,
                 plain_auth: bool = False, certs: Certs | None = None,
                 oauth_verify: OAuthVerifier | None = None, oauth_failure_challenge: bool = True) -> None:
        """``oauth_verify``: offer AUTH XOAUTH2 and accept a token when it returns True (module docstring)."""
        if mode not in ("starttls", "ssl", "plain"):
            raise ValueError(mode)
        self.mode = mode
        self.users = dict(users or {})
        self.certs = certs or (make_certs(cert_dir) if mode != "plain" else None)
        self.handler = _Handler()
        self.plain_auth = plain_auth
        self.port = 0
        self.failed_logins: list[str] = []
        self._controller: Controller | None = None
        self.oauth_verify = oauth_verify
        self.oauth_logins: list[str] = []
        if oauth_verify is not None:
            self.handler = _OAuthHandler(verify=oauth_verify, failure_challenge=oauth_failure_challenge,
                                         failed_logins=self.failed_logins, oauth_logins=self.oauth_logins)

    @property
    def ca_file(self) -> str | None:
        return str(self.certs.ca_file) if self.certs else None

    @property
    def messages(self) -> list[Delivered]:
        return self.handler.messages

    @property
    def reject(self) -> set[str]:
        return self.handler.reject

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=auth_data)
            self.failed_logins.append(login)
        return AuthResult(success=False, handled=False)

    def start(self) -> "SmtpServer":
        ctx = None
        if self.certs:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.certs.cert_file, self.certs.key_file)
        kwargs: dict = dict(authenticator=self._authenticate, auth_required=self.mode != "plain" or self.plain_auth)
        if self.mode == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
        elif self.mode == "ssl":
            kwargs.update(ssl_context=ctx, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=not self.plain_auth)
        last: Exception | None = None
        for _ in range(5):  # the reserved port may be taken between reserving and binding
            self.port = free_port()
            controller_cls = _OAuthController if self.oauth_verify is not None else Controller
            controller = controller_cls(self.handler, hostname=self.host, port=self.port, ready_timeout=10, **kwargs)
            try:
                controller.start()
            except Exception as exc:  # noqa: BLE001 - retry on another port
                last = exc
                time.sleep(0.05)
                continue
            self._controller = controller
            return self
        raise RuntimeError(f"aiosmtpd did not start: {last}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
