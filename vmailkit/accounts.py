"""Users, accounts and their validation.

An :class:`Account` is a mailbox vmailkit reads: ``general`` (shared by the office, no owner) or
``personal`` (owned by one user). It holds a *secret reference*, never a password; see
:mod:`vmailkit.secrets`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ValidationError
from .secrets import check_reference

PROTOCOLS = ("imap", "pop3")
SECURITIES = ("ssl", "starttls", "plain")
KINDS = ("general", "personal")

#: Default ports by (protocol, security) when the caller gives none.
DEFAULT_PORTS: dict[tuple[str, str], int] = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "plain"): 143,
    ("pop3", "ssl"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "plain"): 110,
}

#: Default SMTP ports by security when the caller gives none (RFC 8314 submissions, RFC 6409, RFC 5321).
SMTP_DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "plain": 25}

_NAME_RE = re.compile(r"^[^\s:][^:]*$")


def default_port(protocol: str, security: str) -> int:
    """Return the standard port for ``protocol`` with ``security``.

    Raises :class:`ValidationError` for an unknown protocol or security.
    """
    protocol, security = protocol.lower(), security.lower()
    if protocol not in PROTOCOLS:
        raise ValidationError("protocol", f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if security not in SECURITIES:
        raise ValidationError("security", f"unknown security {security!r}; use one of {', '.join(SECURITIES)}")
    return DEFAULT_PORTS[(protocol, security)]


@dataclass(frozen=True)
class User:
    """A person using vmailkit."""

    name: str
    email: str | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class SmtpSettings:
    """How an account sends mail: its SMTP submission server.

    The same rules as for fetching apply: certificates and host names are verified (``ssl`` and
    ``starttls``), ``starttls`` never falls back to plaintext, and ``secret_ref`` is a reference
    (``env:``, ``keyring:``, ``prompt:``), never the password. Build one with
    :func:`make_smtp_settings`, which validates and fills the defaults.
    """

    host: str
    port: int
    security: str
    login: str
    secret_ref: str
    ca_file: str | None = None


@dataclass(frozen=True)
class Account:
    """A POP3 or IMAP mailbox.

    ``login`` defaults to ``address``; ``port`` to :func:`default_port`; ``folder`` to INBOX (IMAP only).
    Build one with :func:`make_account`, which validates and fills the defaults.
    """

    name: str
    kind: str
    protocol: str
    host: str
    port: int
    security: str
    address: str
    login: str
    secret_ref: str
    owner: str | None = None
    ca_file: str | None = None
    folder: str = "INBOX"
    account_id: int | None = None
    smtp: SmtpSettings | None = field(default=None, compare=False)

    def with_id(self, account_id: int) -> "Account":
        """Return a copy carrying the store's id."""
        return replace(self, account_id=account_id)

    @property
    def folders(self) -> list[str]:
        """The folders read for this account (POP3 has exactly one, ``INBOX``)."""
        return [self.folder] if self.protocol == "imap" else ["INBOX"]


def make_account(
    name: str,
    *,
    kind: str,
    protocol: str,
    host: str,
    security: str,
    address: str,
    secret: str = "",
    port: int | None = None,
    login: str | None = None,
    owner: str | None = None,
    ca_file: str | None = None,
    folder: str | None = None,
) -> Account:
    """Validate the settings and return an :class:`Account` with defaults filled in.

    Raises :class:`ValidationError` naming the first invalid field: empty name or host, unknown
    kind/protocol/security, a port outside 1..65535, a personal account without owner (or a general
    one with an owner), an address without ``@``, a CA file that does not exist.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError("name", "an account needs a name")
    if not _NAME_RE.match(name):
        raise ValidationError("name", f"{name!r} may not start with a space or contain ':'")
    kind = (kind or "").strip().lower()
    if kind not in KINDS:
        raise ValidationError("kind", f"unknown kind {kind!r}; use general or personal")
    protocol = (protocol or "").strip().lower()
    security = (security or "").strip().lower()
    std_port = default_port(protocol, security)
    host = (host or "").strip()
    if not host:
        raise ValidationError("host", "the host may not be empty")
    port = _valid_port(port, std_port)
    address = (address or "").strip()
    if "@" not in address:
        raise ValidationError("address", f"{address!r} is not an e-mail address")
    owner = (owner or "").strip() or None
    if kind == "personal" and owner is None:
        raise ValidationError("owner", "a personal account needs an owner (a user name)")
    if kind == "general" and owner is not None:
        raise ValidationError("owner", "a general account has no owner")
    ca_file = _valid_ca_file(ca_file)
    folder = (folder or "INBOX").strip() or "INBOX"
    if protocol == "pop3" and folder.upper() != "INBOX":
        raise ValidationError("folder", "POP3 has only the INBOX")
    return Account(
        name=name,
        kind=kind,
        protocol=protocol,
        host=host,
        port=port,
        security=security,
        address=address,
        login=(login or "").strip() or address,
        secret_ref=(secret or "").strip(),
        owner=owner,
        ca_file=ca_file or None,
        folder=folder,
    )


def _valid_port(port: object, default: int) -> int:
    """``port`` as an int in 1..65535 (``default`` when None); raises :class:`ValidationError`."""
    if port is None:
        return default
    try:
        value = int(port)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValidationError("port", f"{port!r} is not a number") from None
    if not 1 <= value <= 65535:
        raise ValidationError("port", f"{value} is out of range 1..65535")
    return value


def _valid_ca_file(ca_file: str | None) -> str | None:
    """The absolute path of an existing CA file, or None; raises :class:`ValidationError`."""
    if not ca_file:
        return None
    if not Path(ca_file).is_file():
        raise ValidationError("ca_file", f"{ca_file} does not exist")
    return str(Path(ca_file).resolve())


def make_smtp_settings(
    *,
    host: str,
    security: str,
    login: str,
    secret: str = "",
    port: int | None = None,
    ca_file: str | None = None,
) -> SmtpSettings:
    """Validate SMTP settings and return :class:`SmtpSettings` with the default port filled in.

    ``port`` defaults to 465 (``ssl``), 587 (``starttls``) or 25 (``plain``); ``secret`` is a secret
    reference (empty means ``prompt:``). The caller passes the account's login when the user gave
    none. Raises :class:`ValidationError` naming the first invalid field: an empty host, an unknown
    security, a port outside 1..65535, an empty login, a secret that is not a reference (the value
    is never echoed), a CA file that does not exist.
    """
    host = (host or "").strip()
    if not host or any(c.isspace() for c in host):
        raise ValidationError("host", f"{host!r} is not a host name")
    security = (security or "").strip().lower()
    if security not in SECURITIES:
        raise ValidationError("security", f"unknown security {security!r}; use one of {', '.join(SECURITIES)}")
    port = _valid_port(port, SMTP_DEFAULT_PORTS[security])
    login = (login or "").strip()
    if not login:
        raise ValidationError("login", "the SMTP login may not be empty")
    secret_ref = check_reference(secret)
    ca_file = _valid_ca_file(ca_file)
    return SmtpSettings(host=host, port=port, security=security, login=login, secret_ref=secret_ref,
                        ca_file=ca_file or None)
