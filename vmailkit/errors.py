"""One error hierarchy for vmailkit.

Every error the library raises on purpose derives from :class:`VmailkitError`, carries a
message written for the person running the tool, and never contains a secret.
"""
from __future__ import annotations


class VmailkitError(Exception):
    """Base class of every error vmailkit raises on purpose."""


class ValidationError(VmailkitError, ValueError):
    """A setting or an input value is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFoundError(VmailkitError, LookupError):
    """A user, account, mail or CRM record named by the caller does not exist."""


class SecretError(VmailkitError):
    """An account's secret reference cannot be resolved."""


class StoreError(VmailkitError):
    """The DuckDB store cannot be opened or written."""


class StoreLockedError(StoreError):
    """Another process holds the database file for longer than the wait allows."""


class MailServerError(VmailkitError):
    """Talking to a mail server failed; ``reason`` is a plain-words category.

    Reasons: ``host``, ``tls``, ``auth``, ``protocol``, ``timeout``, ``starttls``, ``send``,
    ``connection``, ``signin``. ``retryable`` is True for failures that a new connection may cure
    (a lost connection, a timeout, a host that cannot be reached now).
    """

    reason = "protocol"
    retryable = False

    def __init__(self, account: str, message: str) -> None:
        self.account = account
        super().__init__(f"{account}: {message}")


class HostError(MailServerError):
    """Host not found, refused or unreachable."""

    reason = "host"
    retryable = True


class TLSFailure(MailServerError):
    """The TLS handshake failed (certificate not trusted, wrong host name, ...)."""

    reason = "tls"


class StartTLSNotOffered(TLSFailure):
    """STARTTLS/STLS was requested but the server does not offer it (no plaintext fallback)."""

    reason = "starttls"


class AuthError(MailServerError):
    """The server rejected the login or password."""

    reason = "auth"


class ProtocolError(MailServerError):
    """The server answered something the client could not use."""

    reason = "protocol"


class MailTimeout(MailServerError):
    """The server did not answer in time."""

    reason = "timeout"
    retryable = True


class ConnectionLost(MailServerError):
    """The connection ended while a command was under way (not a rejection by the server)."""

    reason = "connection"
    retryable = True


class SendError(MailServerError):
    """The SMTP server refused a message, its sender or a recipient, or the send broke off.

    Nothing is stored as sent when this is raised; the message says whether the server may still
    have accepted the message (a connection lost after the data was transmitted).
    """

    reason = "send"


class SignInError(MailServerError):
    """OAuth2 sign-in failed: the provider refused the application or the request."""

    reason = "signin"


class SignInExpired(SignInError):
    """The account's OAuth2 grant expired, was revoked, or the account was never signed in."""


class SignInUnavailable(SignInError):
    """The provider's sign-in service did not answer (down, 5xx, timeout): try again later."""

    retryable = True
