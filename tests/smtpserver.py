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
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


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
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.messages.append(Delivered(
            mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), content=bytes(envelope.original_content),
            login=login, tls=session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
        ))
        return "250 2.0.0 Ok: queued as VMK1"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in one of the modes ``starttls``, ``ssl``, ``plain`` (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(self, cert_dir: Path, *, mode: str = "starttls", users: dict[str, str] | None = None,
                 plain_auth: bool = False, certs: Certs | None = None) -> None:
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
            controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=10, **kwargs)
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
