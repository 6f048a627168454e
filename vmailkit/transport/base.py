"""What every transport shares: TLS contexts, socket options, error mapping, result records."""
from __future__ import annotations

import imaplib
import poplib
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from imap_tools.errors import ImapToolsError

from ..accounts import Account
from ..errors import (
    AuthError,
    HostError,
    MailServerError,
    MailTimeout,
    ProtocolError,
    StartTLSNotOffered,
    TLSFailure,
)

DEFAULT_TIMEOUT = 30.0

AUTH_HINT = (
    "check the login and password; many providers need IMAP/POP access enabled in the mailbox settings "
    "and an app password when two-factor sign-in is on"
)


@dataclass(frozen=True)
class RemoteHeader:
    """One message as listed by a header check, before download."""

    key: str                 # IMAP UID as text, or POP3 UIDL
    uid: int | None          # IMAP UID, None for POP3
    size: int
    header: bytes            # the header fields fetched (IMAP HEADER.FIELDS, POP3 TOP n 0)
    has_attachments: bool


@dataclass(frozen=True)
class RemoteMessage:
    """One downloaded message: its location key and the exact bytes the server sent."""

    key: str
    uid: int | None
    raw: bytes


class SessionBase:
    """Lifecycle shared by the protocol sessions: ``with`` opens (once) and always closes.

    The password is handed to :meth:`open` exactly once and then forgotten.
    """

    folder = "INBOX"
    uidvalidity = 0

    def __init__(self, account: Account, password: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.account = account
        self._password = password
        self.timeout = timeout

    @property
    def is_open(self) -> bool:
        """True once connected and logged in, until closed."""
        raise NotImplementedError

    def open(self) -> None:  # pragma: no cover - implemented by the protocols
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - implemented by the protocols
        raise NotImplementedError

    def _take_password(self) -> str:
        password, self._password = self._password, ""
        return password

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not self.is_open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tls_context(account: Account) -> ssl.SSLContext:
    """A verifying TLS context: certificates and host names are checked, TLS 1.2 at least.

    The account's CA file, when set, is trusted in addition to the system store.
    """
    ctx = ssl.create_default_context()
    if account.ca_file:
        ctx.load_verify_locations(cafile=account.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def end_quietly(goodbye: Callable[[], object], hang_up: Callable[[], object]) -> None:
    """Say goodbye to the server (QUIT, LOGOUT); when that fails, just close the socket. Never raises.

    A session's close must not hide the result of the work done before it.
    """
    try:
        goodbye()
    except Exception:  # noqa: BLE001
        with suppress(Exception):
            hang_up()


def set_nodelay(sock: socket.socket | None) -> None:
    """Disable Nagle's algorithm: the protocol clients write small commands and wait for answers."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - e.g. a unix socket
        pass


@contextmanager
def mapped_errors(account: Account, stage: str = "") -> Iterator[None]:
    """Turn low-level failures into :class:`MailServerError` subclasses with plain-words messages.

    The original exception is not chained (its frames may hold the password).
    """
    where = f"{account.protocol.upper()} {account.host}:{account.port}"
    try:
        yield
    except MailServerError:
        raise
    except socket.gaierror as exc:
        raise HostError(account.name, f"host {account.host!r} not found ({exc.strerror or exc})") from None
    except ssl.SSLCertVerificationError as exc:
        raise TLSFailure(
            account.name,
            f"TLS certificate of {where} not accepted: {exc.verify_message or exc.reason}"
            " (set the account's CA file for a private certificate authority)",
        ) from None
    except ssl.SSLError as exc:
        raise TLSFailure(account.name, f"TLS failure with {where}: {exc.reason or exc}") from None
    except (TimeoutError, socket.timeout):
        raise MailTimeout(account.name, f"{where} did not answer in time{(' during ' + stage) if stage else ''}") from None
    except ConnectionRefusedError:
        raise HostError(account.name, f"{where} refused the connection (wrong port, or server down)") from None
    except (ConnectionResetError, BrokenPipeError, EOFError) as exc:
        raise ProtocolError(account.name, f"{where} closed the connection{(' during ' + stage) if stage else ''}: {exc or type(exc).__name__}") from None
    except OSError as exc:
        raise HostError(account.name, f"cannot reach {where}: {exc.strerror or exc}") from None
    except (imaplib.IMAP4.error, poplib.error_proto, ImapToolsError) as exc:
        raise ProtocolError(
            account.name,
            f"{where} answered something unexpected{(' during ' + stage) if stage else ''}: "
            f"{decode_server_text(exc.args[0] if exc.args else exc)[:200]}"
            " (is this the right port and protocol?)",
        ) from None


def starttls_missing(account: Account) -> StartTLSNotOffered:
    """The error for a server that does not offer STARTTLS/STLS (never a plaintext fallback)."""
    command = "STARTTLS" if account.protocol == "imap" else "STLS"
    return StartTLSNotOffered(
        account.name,
        f"{account.host}:{account.port} does not offer {command}; refusing to continue without encryption "
        "(use security 'ssl' on the TLS port, or 'plain' only if you accept unencrypted passwords)",
    )


def auth_failed(account: Account, server_text: str) -> AuthError:
    """The error for a rejected login, with the server's words and the usual hint."""
    server_text = server_text.strip()
    return AuthError(
        account.name,
        f"login as {account.login!r} rejected by {account.host}"
        f"{': ' + server_text if server_text else ''}; {AUTH_HINT}",
    )


def decode_server_text(data: object) -> str:
    """Best-effort text of a server response item for error messages."""
    if isinstance(data, (list, tuple)):
        data = data[0] if data else b""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)
