"""What every transport shares: TLS contexts, socket options, error mapping, result records."""
from __future__ import annotations

import imaplib
import poplib
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from imap_tools.errors import ImapToolsError

from ..accounts import Account
from ..refs import MessageRef, Watermark
from .sasl import TokenSource
from ..errors import (
    AuthError,
    ConnectionLost,
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

    ref: MessageRef          # where it lies (the size as the server reported it)
    header: bytes            # the header fields fetched (IMAP HEADER.FIELDS, POP3 TOP n 0)
    has_attachments: bool

    @property
    def key(self) -> str:
        """The UID as text (IMAP) or the UIDL (POP3)."""
        return self.ref.key


@dataclass(frozen=True)
class RemoteMessage:
    """One downloaded message: its reference and the exact bytes the server sent."""

    ref: MessageRef
    raw: bytes

    @property
    def key(self) -> str:
        """The UID as text (IMAP) or the UIDL (POP3)."""
        return self.ref.key


@dataclass(frozen=True)
class FetchFailure:
    """A message that was asked for and not received; ``reason`` is in plain words."""

    ref: MessageRef
    reason: str


@dataclass
class FetchedChunk:
    """What one round of fetching brought: complete messages, the ones that failed, and why it stopped.

    ``interrupted`` is set when the connection broke off (or the server gave up) during this round:
    ``messages`` then holds every message that arrived complete before that, and the refs neither in
    ``messages`` nor in ``failures`` were not received (fetch them again on a new connection).
    """

    messages: list[RemoteMessage] = field(default_factory=list)
    failures: list[FetchFailure] = field(default_factory=list)
    interrupted: MailServerError | None = None


#: The plain-words reasons a picked message is not fetched.
MAILBOX_CHANGED = "the mailbox changed since it was listed (it was recreated or renumbered): check again"
GONE = "it is no longer on the server (deleted or moved since it was listed): check again"


class SessionBase:
    """What both protocol sessions offer; ``with`` opens (once) and always closes.

    A session lists message references, fetches header fields and fetches messages by reference;
    the protocol differences (UIDs and UIDVALIDITY, UIDLs) stay inside the session. The password is
    handed to :meth:`open` exactly once and then forgotten. Nothing is ever changed on the server.
    """

    folder = "INBOX"
    uidvalidity = 0

    def __init__(self, account: Account, password: "str | TokenSource", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.account = account
        self._password = password
        self.timeout = timeout

    @property
    def is_open(self) -> bool:
        """True once connected and logged in, until closed."""
        raise NotImplementedError

    def open(self) -> None:  # pragma: no cover - implemented by the protocols
        """Connect, secure, log in and open the folder read-only. Raises :class:`MailServerError`."""
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - implemented by the protocols
        """Say goodbye and close the connection; never raises."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - implemented by the protocols
        """One line saying what the open session sees (for "Test connection")."""
        raise NotImplementedError

    def new_refs(self, watermark: Watermark) -> list[MessageRef]:  # pragma: no cover
        """References of the messages past ``watermark``, oldest first (``Watermark.empty()``: all)."""
        raise NotImplementedError

    def headers(self, refs: Iterable[MessageRef]) -> Iterator[RemoteHeader]:  # pragma: no cover
        """Header fields and attachment hint of ``refs`` that are still on the server."""
        raise NotImplementedError

    def fetch(self, refs: Iterable[MessageRef]) -> Iterator[FetchedChunk]:  # pragma: no cover
        """Fetch ``refs`` in chunks of complete messages with their exact bytes.

        Every ref ends up in a chunk's ``messages`` or ``failures``, unless a chunk comes back
        ``interrupted`` (then the generator ends after it). Never raises for one message's problem.
        """
        raise NotImplementedError

    def ref(self, key: str | int, size: int = 0) -> MessageRef:
        """A reference to message ``key`` (UID or UIDL) in this session's folder."""
        if self.account.protocol == "imap":
            return MessageRef(self.account.name, self.folder, self.uidvalidity, uid=int(key), size=size)
        return MessageRef(self.account.name, "INBOX", 0, uidl=str(key), size=size)

    def check_ref(self, ref: MessageRef) -> str | None:
        """Why ``ref`` cannot be fetched in this session (another account, folder or UIDVALIDITY), or None."""
        if ref.account != self.account.name or ref.is_imap != (self.account.protocol == "imap"):
            return f"it was listed in another account than {self.account.name}"
        if ref.is_imap and (ref.folder != self.folder or ref.uidvalidity != self.uidvalidity):
            return MAILBOX_CHANGED
        return None

    def _take_password(self) -> "str | TokenSource":
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
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        raise connection_lost(account, stage) from None
    except ssl.SSLError as exc:
        raise TLSFailure(account.name, f"TLS failure with {where}: {exc.reason or exc}") from None
    except (TimeoutError, socket.timeout):
        raise MailTimeout(account.name, f"{where} did not answer in time{(' during ' + stage) if stage else ''}") from None
    except ConnectionRefusedError:
        raise HostError(account.name, f"{where} refused the connection (wrong port, or server down)") from None
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, EOFError):
        raise connection_lost(account, stage) from None
    except OSError as exc:
        raise HostError(account.name, f"cannot reach {where}: {exc.strerror or exc}") from None
    except (imaplib.IMAP4.error, poplib.error_proto, ImapToolsError) as exc:
        if isinstance(exc, imaplib.IMAP4.abort) and is_hangup(exc):
            raise connection_lost(account, stage) from None
        raise ProtocolError(
            account.name,
            f"{where} answered something unexpected{(' during ' + stage) if stage else ''}: "
            f"{decode_server_text(exc.args[0] if exc.args else exc)[:200]}"
            " (is this the right port and protocol?)",
        ) from None


def connection_lost(account: Account, stage: str = "") -> ConnectionLost:
    """The error for a connection that ended under way (never blamed on the password)."""
    where = f"{account.protocol.upper()} {account.host}:{account.port}"
    return ConnectionLost(
        account.name,
        f"the connection to {where} was lost{(' during ' + stage) if stage else ''}; try again later",
    )


def is_hangup(exc: BaseException) -> bool:
    """True when imaplib gave up because the connection ended (not because of a strange answer)."""
    text = str(exc.args[0] if exc.args else exc).lower()
    return any(word in text for word in ("socket error", "eof", "connection", "timed out", "bye"))


def starttls_missing(account: Account) -> StartTLSNotOffered:
    """The error for a server that does not offer STARTTLS/STLS (never a plaintext fallback)."""
    command = "STARTTLS" if account.protocol == "imap" else "STLS"
    return StartTLSNotOffered(
        account.name,
        f"{account.host}:{account.port} does not offer {command}; refusing to continue without encryption "
        "(use security 'ssl' on the TLS port, or 'plain' only if you accept unencrypted passwords)",
    )


def token_refused(account: Account, server_text: str) -> AuthError:
    """The error for an OAuth2 token the mail server refused twice (a fresh one included)."""
    server_text = server_text.strip()
    return AuthError(
        account.name,
        f"{account.host} refused the OAuth2 sign-in of {account.login}"
        f"{': ' + server_text if server_text else ''}; make sure the mailbox allows "
        f"{account.protocol.upper()} access and the application has permission for it, then sign in again",
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
