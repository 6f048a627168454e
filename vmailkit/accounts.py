"""Users, accounts and their validation.

An :class:`Account` is a mailbox vmailkit reads: ``general`` (shared by the office, no owner) or
``personal`` (owned by one user). It holds a *secret reference*, never a password; see
:mod:`vmailkit.secrets`.
"""
from __future__ import annotations

import re
import ssl
import unicodedata
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

#: Unicode categories refused in names, hosts, logins and addresses: control characters (newline,
#: tab, NUL, DEL, C1), invisible format characters (zero-width, bidi overrides, BOM), lone
#: surrogates (undecodable bytes on the command line) and the line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

#: Plain names of the control characters most often typed or pasted by mistake.
_CHAR_NAMES = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte",
               "\ufeff": "a byte order mark", "\u200b": "a zero-width space"}

#: How much of a CA file is read to say in plain words why it is not a certificate file.
_CA_PEEK_BYTES = 64 * 1024


def check_no_control_characters(value: str, field: str, *, echo: bool = True) -> str:
    """Return ``value`` unchanged when it holds no control or invisible characters.

    Refused: control characters (newline, carriage return, tab, NUL, DEL, C1 controls), invisible
    format characters (zero-width space, bidi overrides, byte order mark), lone surrogates and the
    Unicode line/paragraph separators. Raises :class:`ValidationError` naming ``field`` and the
    first such character by its code point; the value itself is quoted only when ``echo`` is true
    (pass ``echo=False`` for anything that may be a password typed by mistake).
    """
    for position, char in enumerate(value, start=1):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            shown = f"{value!r} " if echo else ""
            raise ValidationError(
                field, f"{shown}may not contain a control or invisible character"
                       f" (found {_CHAR_NAMES.get(char, 'one')}, U+{ord(char):04X}, at position {position})"
            )
    return value


def validate_account_name(name: str | None) -> str:
    """Return the account name trimmed, or raise :class:`ValidationError` (field ``name``).

    An account name may not be empty, start with a space, contain ``:`` (it separates the account
    from the UID in ``--pick ACCOUNT:UID``) or contain control/invisible characters.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError("name", "an account needs a name")
    check_no_control_characters(name, "name")
    if not _NAME_RE.match(name):
        raise ValidationError("name", f"{name!r} may not start with a space or contain ':'")
    return name


def validate_user_name(name: str | None) -> str:
    """Return the user name trimmed, or raise :class:`ValidationError` (field ``name``).

    A user name may not be empty or contain control/invisible characters (a newline, a tab, ...).
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError("name", "a user needs a name")
    return check_no_control_characters(name, "name")


def validate_host(host: str | None, field: str = "host") -> str:
    """Return the mail server's host name (or IP address) trimmed, or raise :class:`ValidationError`.

    Refused, naming ``field``: an empty host, and a host containing a space or any other white
    space or control/invisible character. Used for IMAP/POP3 and SMTP hosts alike.
    """
    host = (host or "").strip()
    if not host:
        raise ValidationError(field, "the host may not be empty")
    check_no_control_characters(host, field)
    if any(c.isspace() for c in host):
        raise ValidationError(field, f"{host!r} is not a host name: it contains a space")
    return host


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


#: OAuth2 providers and what each needs: Microsoft (Entra ID, through msal), Google (google-auth)
#: and any other standard authorization server ("generic", through authlib).
OAUTH_PROVIDERS = ("microsoft", "google", "generic")

#: The scopes each provider needs for IMAP, POP3 and SMTP when the user gives none.
DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {
    "microsoft": ("https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/POP.AccessAsUser.All",
                  "https://outlook.office.com/SMTP.Send", "offline_access"),
    "google": ("https://mail.google.com/",),
    "generic": (),
}
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/auth"
MICROSOFT_LOGIN = "https://login.microsoftonline.com"


@dataclass(frozen=True)
class OAuthSettings:
    """How an account signs in with OAuth2 instead of a password.

    ``client_secret_ref`` is a secret reference (``env:``, ``keyring:``) or None for a public
    client; the grant itself (refresh token) lives in the token store, never here. Build one with
    :func:`make_oauth_settings`, which validates and fills the provider's defaults.
    """

    provider: str
    client_id: str
    scopes: tuple[str, ...]
    client_secret_ref: str | None = None
    tenant: str | None = None
    token_url: str | None = None
    auth_url: str | None = None
    device_url: str | None = None

    @property
    def authority(self) -> str:
        """Microsoft's authority URL for the tenant (``organizations`` when none is given)."""
        return f"{MICROSOFT_LOGIN}/{self.tenant or 'organizations'}"

    @property
    def service(self) -> str:
        """The host people know the sign-in service by (for messages)."""
        from urllib.parse import urlsplit

        if self.provider == "microsoft":
            return "login.microsoftonline.com"
        return urlsplit(self.token_url or GOOGLE_TOKEN_URL).netloc or "the sign-in service"


def _valid_url(value: str | None, field: str, *, required: bool = False) -> str | None:
    from urllib.parse import urlsplit

    value = (value or "").strip() or None
    if value is None:
        if required:
            raise ValidationError(field, "is needed for this provider (the sign-in service's address)")
        return None
    check_no_control_characters(value, field)
    parts = urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or not parts.netloc or (parts.scheme == "http" and not loopback):
        raise ValidationError(field, f"{value!r} is not an https:// address")
    return value


def make_oauth_settings(
    *,
    provider: str,
    client_id: str,
    client_secret: str | None = None,
    tenant: str | None = None,
    token_url: str | None = None,
    auth_url: str | None = None,
    device_url: str | None = None,
    scope: str | None = None,
) -> OAuthSettings:
    """Validate OAuth2 settings and fill the provider's defaults (scopes, endpoints).

    ``client_secret`` is a secret reference (never the secret itself); ``scope`` is a space-separated
    list (default: the provider's scopes for IMAP, POP3 and SMTP). ``generic`` needs ``token_url``;
    addresses must be https (plain http only on the loopback interface, for tests). Raises
    :class:`ValidationError` naming the first invalid field.
    """
    provider = (provider or "").strip().lower()
    if provider not in OAUTH_PROVIDERS:
        raise ValidationError("oauth_provider", f"unknown provider {provider!r}; use one of {', '.join(OAUTH_PROVIDERS)}")
    client_id = check_no_control_characters((client_id or "").strip(), "client_id")
    if not client_id or any(c.isspace() for c in client_id):
        raise ValidationError("client_id", "the application (client) id registered with the provider is needed")
    secret_ref = None
    if client_secret and client_secret.strip():
        check_no_control_characters(client_secret.strip(), "client_secret", echo=False)
        try:
            secret_ref = check_reference(client_secret)
        except ValidationError:
            raise ValidationError("client_secret", "give the client secret as env:VARNAME or keyring:SERVICE/NAME "
                                                   "(the secret itself is never stored)") from None
        if secret_ref.startswith("prompt:"):
            raise ValidationError("client_secret", "give the client secret as env:VARNAME or keyring:SERVICE/NAME")
    tenant = (tenant or "").strip() or None
    if tenant is not None:
        check_no_control_characters(tenant, "tenant")
        if provider != "microsoft":
            raise ValidationError("tenant", "only Microsoft accounts have a tenant")
        if not re.fullmatch(r"[A-Za-z0-9.\-]+", tenant):
            raise ValidationError("tenant", f"{tenant!r} is not a tenant id or domain")
    token_url = _valid_url(token_url, "token_url", required=provider == "generic")
    auth_url = _valid_url(auth_url, "auth_url")
    device_url = _valid_url(device_url, "device_url")
    if provider == "google":
        token_url, auth_url = token_url or GOOGLE_TOKEN_URL, auth_url or GOOGLE_AUTH_URL
    scopes = tuple((scope or "").split()) or DEFAULT_SCOPES[provider]
    for s in scopes:
        check_no_control_characters(s, "scope")
    if not scopes:
        raise ValidationError("scope", "the scopes the mail server needs (for example mail) are needed for this provider")
    return OAuthSettings(provider=provider, client_id=client_id, scopes=scopes, client_secret_ref=secret_ref,
                         tenant=tenant, token_url=token_url, auth_url=auth_url, device_url=device_url)


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
    oauth: OAuthSettings | None = field(default=None, compare=False)

    @property
    def auth(self) -> str:
        """How the account signs in: ``password`` or ``oauth2``."""
        return "oauth2" if self.oauth is not None else "password"

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
    oauth: OAuthSettings | None = None,
) -> Account:
    """Validate the settings and return an :class:`Account` with defaults filled in.

    With ``oauth`` (see :func:`make_oauth_settings`) the account signs in with OAuth2 and
    ``secret`` is not used.

    Raises :class:`ValidationError` naming the first invalid field: an empty name or host, a name,
    host, address, login, owner, folder or secret reference holding a control or invisible character
    (a newline, a tab, ...), a host with a space, an unknown kind/protocol/security, a port outside
    1..65535, a personal account without owner (or a general one with an owner), an address without
    ``@``, a CA file that does not exist or holds no PEM certificate (see :func:`validate_ca_file`).
    """
    name = validate_account_name(name)
    kind = (kind or "").strip().lower()
    if kind not in KINDS:
        raise ValidationError("kind", f"unknown kind {kind!r}; use general or personal")
    protocol = (protocol or "").strip().lower()
    security = (security or "").strip().lower()
    std_port = default_port(protocol, security)
    host = validate_host(host)
    port = _valid_port(port, std_port)
    address = check_no_control_characters((address or "").strip(), "address")
    if "@" not in address:
        raise ValidationError("address", f"{address!r} is not an e-mail address")
    login = check_no_control_characters((login or "").strip(), "login") or address
    secret_ref = check_no_control_characters((secret or "").strip(), "secret", echo=False)
    owner = check_no_control_characters((owner or "").strip(), "owner") or None
    if kind == "personal" and owner is None:
        raise ValidationError("owner", "a personal account needs an owner (a user name)")
    if kind == "general" and owner is not None:
        raise ValidationError("owner", "a general account has no owner")
    ca_file = validate_ca_file(ca_file)
    folder = check_no_control_characters((folder or "INBOX").strip(), "folder") or "INBOX"
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
        login=login,
        secret_ref=secret_ref,
        owner=owner,
        ca_file=ca_file or None,
        folder=folder,
        oauth=oauth,
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


def _existing_file(ca_file: str | None, field: str = "ca_file") -> str | None:
    """The absolute path of an existing file, or None when not given; raises :class:`ValidationError`."""
    if not ca_file:
        return None
    if not Path(ca_file).is_file():
        raise ValidationError(field, f"{ca_file} does not exist")
    return str(Path(ca_file).resolve())


def validate_ca_file(ca_file: str | None, field: str = "ca_file") -> str | None:
    """Return the absolute path of a CA file holding at least one PEM certificate, or None if not given.

    The file is loaded as the connection will load it (``load_verify_locations``), so a bad file is
    refused when the account is added rather than at its first connection. Raises
    :class:`ValidationError` naming ``field`` for a file that does not exist or cannot be read, an
    empty file, a private key without a certificate, or any other file with no PEM certificate in it
    (plain text, a DER file, a certificate revocation list only).
    """
    path = _existing_file(ca_file, field)
    if path is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no system CAs: count only what the file holds
    try:
        context.load_verify_locations(cafile=path)
        loaded = context.cert_store_stats().get("x509", 0)
    except ssl.SSLError:
        loaded = 0
    except OSError as exc:
        raise ValidationError(field, f"{ca_file} cannot be read: {exc.strerror or exc}") from None
    if loaded:
        return path
    try:
        with open(path, "rb") as fh:
            start = fh.read(_CA_PEEK_BYTES)
    except OSError as exc:
        raise ValidationError(field, f"{ca_file} cannot be read: {exc.strerror or exc}") from None
    if not start.strip():
        why = "the file is empty"
    elif b"PRIVATE KEY-----" in start and b"-----BEGIN CERTIFICATE-----" not in start:
        why = "it holds a private key, not a certificate"
    else:
        why = "it holds no certificate in PEM form (a block starting -----BEGIN CERTIFICATE-----)"
    raise ValidationError(field, f"{ca_file} is not a CA certificate file: {why}")


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
    none. Raises :class:`ValidationError` naming the first invalid field: an empty host or one with a
    space, a host or login holding a control or invisible character (a newline, a tab, ...), an
    unknown security, a port outside 1..65535, an empty login, a secret that is not a reference (the
    value is never echoed), a CA file that does not exist.
    """
    host = validate_host(host)
    security = (security or "").strip().lower()
    if security not in SECURITIES:
        raise ValidationError("security", f"unknown security {security!r}; use one of {', '.join(SECURITIES)}")
    port = _valid_port(port, SMTP_DEFAULT_PORTS[security])
    login = check_no_control_characters((login or "").strip(), "login")
    if not login:
        raise ValidationError("login", "the SMTP login may not be empty")
    secret_ref = check_reference(check_no_control_characters((secret or "").strip(), "secret", echo=False))
    ca_file = validate_ca_file(ca_file)
    return SmtpSettings(host=host, port=port, security=security, login=login, secret_ref=secret_ref,
                        ca_file=ca_file or None)
