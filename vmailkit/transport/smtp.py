"""SMTP transport: submit one message through an account's SMTP server; append the sent copy to IMAP.

The same rules as for fetching apply (see :mod:`vmailkit.transport.base`): certificates and host
names are verified, ``starttls`` that the server does not offer is :class:`StartTLSNotOffered`
(never a plaintext fallback), failures are mapped to :class:`vmailkit.errors.MailServerError`
subclasses raised ``from None``, and the password is forgotten right after login (smtplib keeps it
on the client object; it is cleared there too).

Sending is all or nothing as far as SMTP allows: every recipient is offered with ``RCPT TO`` first,
and when the server refuses any of them the transaction is reset before ``DATA``, so nothing is
sent to anybody. The message bytes are sent unchanged (apart from SMTP dot-stuffing, which the
server undoes), so the server receives exactly the bytes the caller stores.
"""
from __future__ import annotations

import contextlib
import imaplib
import re
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..accounts import Account
from ..errors import AuthError, ProtocolError, SendError, StartTLSNotOffered, ValidationError
from .base import DEFAULT_TIMEOUT, end_quietly, mapped_errors, set_nodelay, tls_context, token_refused
from .sasl import TokenSource, choose, describe_challenge, initial_response, log_in_with_token

SMTP_AUTH_HINT = (
    "check the SMTP login and password; many providers need SMTP AUTH enabled for the mailbox and an "
    "app password when two-factor sign-in is on"
)

_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.I)


def smtp_server_view(account: Account) -> Account:
    """The account as seen by the shared TLS and error helpers: its SMTP host, port, security, login, CA.

    Raises :class:`ValidationError` (field ``smtp``) when the account has no SMTP settings.
    """
    s = account.smtp
    if s is None:
        raise ValidationError(
            "smtp",
            f"account {account.name!r} has no SMTP settings; set them with "
            f"`vmailkit account smtp {account.name} --host HOST --security ssl|starttls|plain --secret REF`",
        )
    return replace(account, protocol="smtp", host=s.host, port=s.port, security=s.security, login=s.login,
                   ca_file=s.ca_file)


#: SASL mechanisms in the order they are preferred (the connection is encrypted unless 'plain' was chosen).
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def _mechanism(advertised: str) -> str | None:
    offered = {m.upper() for m in advertised.split()}
    return next((m for m in AUTH_MECHANISMS if m in offered), None)


def _text(resp: object) -> str:
    if isinstance(resp, bytes):
        return resp.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ").strip()
    return str(resp).strip()


class SmtpSession:
    """An open, secured and logged-in SMTP connection for one account.

    ``SmtpSession(account, password)`` is used as a context manager. Every method raises
    :class:`vmailkit.errors.MailServerError` subclasses: :class:`HostError`, :class:`TLSFailure`
    (certificate or host name not accepted), :class:`StartTLSNotOffered`, :class:`AuthError`,
    :class:`MailTimeout`, :class:`ProtocolError`, :class:`SendError`. None of them carries the password.
    """

    def __init__(self, account: Account, password: str | TokenSource, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.account = account
        self.server = smtp_server_view(account)
        self.timeout = timeout
        self._password = password
        self.client: smtplib.SMTP | None = None

    def __enter__(self) -> "SmtpSession":
        if self.client is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """``SMTP host:port`` for messages."""
        return f"SMTP {self.server.host}:{self.server.port}"

    def open(self) -> None:
        """Connect, secure (``ssl``: implicit TLS; ``starttls``: required upgrade) and log in."""
        srv = self.server
        try:
            with mapped_errors(srv, "connect"):
                try:
                    if srv.security == "ssl":
                        client: smtplib.SMTP = smtplib.SMTP_SSL(srv.host, srv.port, timeout=self.timeout,
                                                                context=tls_context(srv))
                    else:
                        client = smtplib.SMTP(srv.host, srv.port, timeout=self.timeout)
                    self.client = client
                    set_nodelay(client.sock)
                    client.ehlo_or_helo_if_needed()
                    if srv.security == "starttls":
                        if not client.has_extn("starttls"):
                            raise self._starttls_missing()
                        client.starttls(context=tls_context(srv))
                        client.ehlo()
                except smtplib.SMTPNotSupportedError:
                    raise self._starttls_missing() from None
                except smtplib.SMTPServerDisconnected as exc:
                    raise ProtocolError(srv.name, f"{self.where} closed the connection while connecting: {exc}") from None
                except smtplib.SMTPResponseException as exc:
                    raise ProtocolError(
                        srv.name, f"{self.where} refused the session: {exc.smtp_code} {_text(exc.smtp_error)}"
                    ) from None
            self._login()
        except BaseException:
            self.close()
            raise

    def _starttls_missing(self) -> StartTLSNotOffered:
        return StartTLSNotOffered(
            self.server.name,
            f"{self.server.host}:{self.server.port} does not offer STARTTLS; refusing to send the password "
            "and the mail without encryption (use security 'ssl' on port 465, or 'plain' only if you accept "
            "unencrypted passwords)",
        )

    def _login(self) -> None:
        srv = self.server
        client = self.client
        assert client is not None
        password, self._password = self._password, ""
        if not isinstance(password, str):
            with mapped_errors(srv, "login"):
                if not client.has_extn("auth"):
                    raise AuthError(srv.name, f"{self.where} offers no SMTP AUTH; cannot sign in")
                self._token_login(client, password)
            return
        try:
            with mapped_errors(srv, "login"):
                if not client.has_extn("auth"):
                    raise AuthError(
                        srv.name,
                        f"{self.where} offers no SMTP AUTH{' on an unencrypted connection' if srv.security == 'plain' else ''}; "
                        "cannot log in (check the port and security: submission is usually 587 with starttls "
                        "or 465 with ssl)",
                    )
                mechanism = _mechanism(client.esmtp_features.get("auth", ""))
                if mechanism is None:
                    raise AuthError(srv.name, f"{self.where} offers no authentication mechanism vmailkit supports "
                                              f"(PLAIN, LOGIN, CRAM-MD5): {client.esmtp_features.get('auth', '').strip()}")
                try:
                    # one attempt with one mechanism: smtplib.login() would retry a rejected password with
                    # every mechanism, doubling the failures that lock accounts
                    client.user, client.password = srv.login, password
                    code, resp = client.auth(mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_")))
                    if code not in (235, 503):
                        raise smtplib.SMTPAuthenticationError(code, resp)
                except smtplib.SMTPAuthenticationError as exc:
                    raise AuthError(
                        srv.name,
                        f"SMTP login as {srv.login!r} rejected by {srv.host}: {exc.smtp_code} "
                        f"{_text(exc.smtp_error)}; {SMTP_AUTH_HINT}",
                    ) from None
                except smtplib.SMTPServerDisconnected as exc:
                    raise ProtocolError(srv.name, f"{self.where} closed the connection during login: {exc}") from None
                except smtplib.SMTPResponseException as exc:
                    raise AuthError(
                        srv.name, f"SMTP login as {srv.login!r} failed at {srv.host}: {exc.smtp_code} "
                        f"{_text(exc.smtp_error)}; {SMTP_AUTH_HINT}",
                    ) from None
                except smtplib.SMTPException as exc:  # no common authentication mechanism
                    raise AuthError(srv.name, f"SMTP login at {srv.host} impossible: {exc}") from None
        finally:
            del password
            # smtplib keeps the credentials on the client for its auth callbacks; drop them now
            client.user = client.password = None  # type: ignore[assignment]

    def _token_login(self, client: smtplib.SMTP, source: TokenSource) -> None:
        """AUTH XOAUTH2 (or OAUTHBEARER) with the account's access token; one retry with a fresh one.

        The server's error challenge (334 with a JSON body) gets the empty response XOAUTH2 asks for,
        never the token again.
        """
        srv = self.server
        mechanism = choose(client.esmtp_features.get("auth", "").split())
        if mechanism is None:
            raise AuthError(srv.name, f"{self.where} does not offer OAuth2 sign-in (XOAUTH2 or OAUTHBEARER): "
                                      f"{client.esmtp_features.get('auth', '').strip()}")

        def attempt(token: str) -> str | None:
            said: list[str] = []

            def respond(challenge: bytes | None = None) -> str:
                if said:
                    said.append(describe_challenge(challenge or b""))
                    return "" if mechanism == "XOAUTH2" else "\x01"
                said.append("")
                return initial_response(mechanism, source.user, token, srv.host, srv.port).decode()

            try:
                code, resp = client.auth(mechanism, respond, initial_response_ok=True)
            except smtplib.SMTPServerDisconnected as exc:
                raise ProtocolError(srv.name, f"{self.where} closed the connection during sign-in: {exc}") from None
            except smtplib.SMTPAuthenticationError as exc:
                return (said[1] if len(said) > 1 and said[1] else f"{exc.smtp_code} {_text(exc.smtp_error)}")
            if code not in (235, 503):
                return f"{code} {_text(resp)}"
            return None

        refusal = log_in_with_token(source, attempt)
        if refusal is not None:
            raise token_refused(srv, refusal)

    def close(self) -> None:
        """Say QUIT and close; never raises."""
        client, self.client = self.client, None
        if client is None:
            return
        end_quietly(client.quit, client.close)

    def send(self, sender: str, recipients: Sequence[str], raw: bytes) -> str:
        """Submit ``raw`` from ``sender`` to every address in ``recipients``; return the server's answer.

        All addresses must be ASCII addr-specs. Every recipient is offered before the data; if the
        server refuses the sender, any recipient or the data, :class:`SendError` names them and
        nothing was sent. A connection lost after the data went out raises :class:`SendError`
        saying the message may have been delivered.
        """
        client = self.client
        srv = self.server
        if client is None:
            raise ProtocolError(srv.name, "the SMTP session is not open")
        if not recipients:
            raise SendError(srv.name, "no recipient to send to")
        data_started = False
        with mapped_errors(srv, "send"):
            try:
                options: list[str] = []
                if client.has_extn("size"):
                    limit = (client.esmtp_features.get("size") or "").strip()
                    if limit.isdigit() and int(limit) and len(raw) > int(limit):
                        raise SendError(
                            srv.name,
                            f"the message has {len(raw):,} bytes; {self.where} accepts at most {int(limit):,} "
                            "(remove or shrink attachments); nothing was sent",
                        )
                    options.append(f"SIZE={len(raw)}")
                code, resp = client.mail(sender, options)
                if code != 250:
                    self._reset()
                    raise SendError(srv.name, f"{self.where} refused the sender {sender}: {code} {_text(resp)}; nothing was sent")
                refused: list[str] = []
                for rcpt in recipients:
                    code, resp = client.rcpt(rcpt)
                    if code not in (250, 251):
                        refused.append(f"{rcpt} ({code} {_text(resp)})")
                if refused:
                    self._reset()
                    raise SendError(
                        srv.name,
                        f"{self.where} refused the recipient{'s' if len(refused) > 1 else ''} {', '.join(refused)}; "
                        "nothing was sent",
                    )
                data_started = True
                try:
                    code, resp = client.data(raw)
                except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
                    self._reset()
                    raise SendError(
                        srv.name, f"{self.where} refused the message: {exc.smtp_code} {_text(exc.smtp_error)}; "
                        "nothing was sent",
                    ) from None
                if code != 250:
                    self._reset()
                    raise SendError(srv.name, f"{self.where} refused the message: {code} {_text(resp)}; nothing was sent")
                return f"{code} {_text(resp)}"
            except SendError:
                raise
            except smtplib.SMTPResponseException as exc:
                raise SendError(srv.name, f"{self.where}: {exc.smtp_code} {_text(exc.smtp_error)}; nothing was sent") from None
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                if data_started:
                    raise SendError(
                        srv.name,
                        f"the connection to {self.where} broke off while sending the message "
                        f"({type(exc).__name__}: {exc}); the server may or may not have accepted it: check "
                        "with a recipient before sending again. Nothing was stored as sent",
                    ) from None
                if isinstance(exc, smtplib.SMTPServerDisconnected):
                    raise ProtocolError(srv.name, f"{self.where} closed the connection: {exc}") from None
                raise

    def _reset(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.rset()


# -- the copy in the IMAP Sent folder ----------------------------------------------------------
@dataclass(frozen=True)
class SentCopy:
    """Where an IMAP APPEND put the sent message (``uid`` is None when the server has no UIDPLUS)."""

    folder: str
    uidvalidity: int | None
    uid: int | None


def append_to_sent(account: Account, password: str | TokenSource, raw: bytes, *, folder: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> SentCopy:
    """Append ``raw`` (flagged ``\\Seen``) to the account's Sent folder over IMAP and return where it went.

    ``folder`` defaults to the folder the server marks ``\\Sent`` (RFC 6154), else ``Sent``, which is
    created when the server says it does not exist (TRYCREATE); a folder named by the caller is
    never created. Raises :class:`ValidationError` for a POP3 account and
    :class:`MailServerError` subclasses when connecting, logging in or appending fails.
    """
    from .imap import ImapSession  # IMAP only when a copy is wanted

    if account.protocol != "imap":
        raise ValidationError("save_to_sent", f"account {account.name!r} is POP3, which has no Sent folder")
    with ImapSession(account, password, timeout=timeout, folder="INBOX") as session:
        assert session.mailbox is not None
        client = session.mailbox.client
        with mapped_errors(account, "append to Sent"):
            chosen = folder is None
            if folder is None:
                folder = _special_sent_folder(session) or "Sent"
            try:
                typ, data = _append(client, folder, raw)
                if typ != "OK" and chosen and b"TRYCREATE" in _first(data).upper():
                    # the default Sent folder does not exist yet: create it, as mail clients do
                    # (a folder named by the caller is never created: a typo must not make folders)
                    client.create(_quote_mailbox(folder))
                    typ, data = _append(client, folder, raw)
            except imaplib.IMAP4.error as exc:
                raise ProtocolError(account.name, f"APPEND to {folder!r} failed: {exc}") from None
            answer = _first(data)
            if typ != "OK":
                raise ProtocolError(account.name, f"APPEND to {folder!r} refused: {_text(answer)}")
            m = _APPENDUID.search(answer)
            return SentCopy(folder=folder, uidvalidity=int(m.group(1)) if m else None, uid=int(m.group(2)) if m else None)


def _append(client: imaplib.IMAP4, folder: str, raw: bytes) -> tuple[str, list]:
    return client.append(_quote_mailbox(folder), "(\\Seen)", imaplib.Time2Internaldate(time.time()), raw)


def _first(data: object) -> bytes:
    return data[0] if isinstance(data, list) and data and isinstance(data[0], bytes) else b""


def _special_sent_folder(session: object) -> str | None:
    try:
        folders = session.mailbox.folder.list()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - fall back to the usual name
        return None
    for f in folders:
        if any(flag.lower() == "\\sent" for flag in f.flags):
            return f.name
    return None


def _quote_mailbox(folder: str) -> str:
    from imap_tools.imap_utf7 import utf7_encode

    encoded = utf7_encode(folder)
    text = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
