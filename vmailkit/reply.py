"""Reply to a stored mail, incoming or outgoing: compose, send over SMTP, keep the sent copy.

Two steps, so that a notebook can show the draft before anything is sent::

    from vmailkit import Store, compose_reply, send_reply

    store = Store("office.duckdb")
    draft = compose_reply(store, 42, reply_all=True, body="Thank you, confirmed.", user="anna")
    draft.to, draft.cc, draft.subject            # show them; change with draft.edit(...)
    email_id = send_reply(store, draft, user="anna", passwords={"office": pw})

Rules (see ``docs/reply.md``):

* **Recipients.** Reply to an incoming mail: To = its Reply-To, else its From; *reply all* adds its
  other To and Cc recipients as Cc. Reply to an outgoing mail (or one sent from the sending address):
  To = its original To recipients; *reply all* adds its Cc. The sending address is removed, and
  duplicates are dropped (case-insensitive).
* **Subject.** One ``Re: `` in front of the original subject with any leading reply prefixes removed
  (``Re:``, ``RE:``, ``re[2]:``, ``AW:``, ``SV:``, ``Antw:``, ``Odp:``, ``RIF:``). Forward prefixes
  (``Fwd:``, ``WG:``) are kept.
* **Threading.** ``In-Reply-To`` = the original's Message-ID; ``References`` = the original's
  References (else its In-Reply-To) followed by its Message-ID (at most 20 ids: the first and the
  last 19). A new ``Message-ID`` on the sending account's domain and a ``Date`` are set when sending.
* **Body.** The new text, then ``On <date>, <sender> wrote:`` and the original quoted with ``> ``.
  When the original has an HTML body the reply is ``multipart/alternative`` with an HTML part that
  quotes the original HTML *sanitised* (:func:`vmailkit.render.sanitize_html`: no scripts, styles
  sheets, event handlers or ``javascript:`` links) inside a ``<blockquote type="cite">``.
* **MIME.** Pure 7-bit output: non-ASCII headers as RFC 2047 encoded words, non-ASCII attachment
  names as RFC 2231 parameters, bodies quoted-printable or base64, CRLF line ends.
* **Sending.** Through the account's SMTP settings; once the server accepted the message it is
  stored as an ``outgoing`` mail with exactly the bytes sent, linked to every record the original is
  linked to (origin ``auto``, rule ``reply.thread``). A refused or failed send raises and stores
  nothing. Optionally the copy is appended to the IMAP account's Sent folder.
"""
from __future__ import annotations

import html as _html
import logging
import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy as _policy
from email.errors import HeaderParseError
from email.headerregistry import Address as _HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .accounts import Account
from .errors import MailServerError, StoreError, ValidationError, VmailkitError
from .parse import Address, ParsedMessage, parse_message
from .ingest import ensure_identity_rule, mail_record
from .oauth import TokenStore, credential_for
from .secrets import resolve_secret
from .transport.base import DEFAULT_TIMEOUT
from .transport.smtp import SmtpSession, append_to_sent, smtp_server_view

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = [
    "Draft",
    "OutgoingAttachment",
    "OutgoingMessage",
    "REPLY_PREFIXES",
    "as_attachments",
    "build_message",
    "compose_reply",
    "html_to_text",
    "quote_text",
    "reply_subject",
    "send_reply",
    "smtp_password",
]

log = logging.getLogger(__name__)

#: Reply prefixes removed before the one ``Re: `` is added (compared case-insensitively; an optional
#: counter such as ``[2]`` or ``(2)`` may follow). Re (Latin), AW (German), SV (Scandinavian),
#: Antw (Dutch), Odp (Polish), RIF (Italian).
REPLY_PREFIXES: tuple[str, ...] = ("re", "aw", "sv", "antw", "odp", "rif")
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:" + "|".join(REPLY_PREFIXES) + r")\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*)+", re.I
)
_LINEBREAKS = re.compile(r"\s*[\r\n]+\s*")
_MSGID_OK = re.compile(r"[!-;=?-~]+")  # printable ASCII without space, '<' and '>'
_CTYPE_OK = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")
_MAX_REFERENCES = 20

#: The email package policy for outgoing mail: CRLF, 78-character folding, 7-bit (RFC 2047/2231).
_POLICY = _policy.SMTP


# -- small pure helpers ------------------------------------------------------------------------
def reply_subject(subject: str | None) -> str:
    """``"AW: Re: Booking 701"`` → ``"Re: Booking 701"``: exactly one ``Re: `` (``"Re:"`` for no subject)."""
    text = _LINEBREAKS.sub(" ", subject or "").strip()
    rest = _REPLY_PREFIX.sub("", text, count=1).strip()
    return f"Re: {rest}" if rest else "Re:"


def quote_text(text: str) -> str:
    """Quote ``text`` for a plain-text reply: ``> `` before each line (``>`` before empty or quoted lines)."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "\n".join(">" + line if line.startswith(">") else ("> " + line if line.strip() else ">") for line in lines)


_BLOCK_BREAK = re.compile(r"(?i)<br\s*/?>|</(?:p|div|tr|li|h[1-6]|table|blockquote|pre|ul|ol)\s*>")


def html_to_text(html: str | None) -> str:
    """A plain-text rendering of an HTML body (tags, scripts and styles removed; line breaks kept)."""
    import nh3

    if not html:
        return ""
    flat = _BLOCK_BREAK.sub("\n", re.sub(r"\s+", " ", html))
    text = _html.unescape(nh3.clean(flat, tags=set(), clean_content_tags={"script", "style", "head", "title"}))
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _format_address(address: Address) -> str:
    try:
        return str(_HeaderAddress(display_name=address.name or "", addr_spec=address.address))
    except (ValueError, HeaderParseError, IndexError):
        return f"{address.name} <{address.address}>" if address.name else address.address


def _dedupe(addresses: Iterable[Address]) -> list[Address]:
    seen: set[str] = set()
    out: list[Address] = []
    for a in addresses:
        if a.address and a.address not in seen:
            seen.add(a.address)
            out.append(a)
    return out


def _usable(addresses: Iterable[Address]) -> list[Address]:
    return [a for a in addresses if a.address and "@" in a.address]


def _valid_id(value: object) -> str | None:
    return value if isinstance(value, str) and _MSGID_OK.fullmatch(value) else None


# -- attachments -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutgoingAttachment:
    """A file to send with a reply: its name (any Unicode), bytes and MIME type."""

    filename: str
    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: str | Path, content_type: str | None = None) -> "OutgoingAttachment":
        """Read a file; the type is guessed from its name unless given. Raises :class:`ValidationError`."""
        p = Path(path)
        if not p.is_file():
            raise ValidationError("attachments", f"{p} is not a file")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ValidationError("attachments", f"{p} cannot be read: {exc.strerror or exc}") from None
        return cls.make(p.name, data, content_type)

    @classmethod
    def make(cls, filename: str, content: bytes | bytearray | memoryview, content_type: str | None = None) -> "OutgoingAttachment":
        """Validate and normalise: the name loses any directory part and line breaks, the type is
        guessed from the name when missing or malformed. Raises :class:`ValidationError`."""
        name = _LINEBREAKS.sub(" ", str(filename or "")).replace("\\", "/").rsplit("/", 1)[-1].strip()
        if not name:
            raise ValidationError("attachments", "an attachment needs a file name")
        ctype = (content_type or "").strip().lower()
        if not _CTYPE_OK.fullmatch(ctype):
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.split("/", 1)[0] in ("multipart", "message"):
            ctype = "application/octet-stream"  # sent as an opaque file, never re-parsed as MIME
        return cls(filename=name, content=bytes(content), content_type=ctype)


def as_attachments(items: Iterable[Any] | None) -> tuple[OutgoingAttachment, ...]:
    """Normalise attachments given as :class:`OutgoingAttachment`, paths, ``(name, bytes[, type])``
    tuples or mappings with ``name`` and ``content`` (an ipywidgets ``FileUpload`` value item).

    Raises :class:`ValidationError` (field ``attachments``) for anything else or a missing file.
    """
    out: list[OutgoingAttachment] = []
    for item in items or ():
        if isinstance(item, OutgoingAttachment):
            out.append(item)
        elif isinstance(item, (str, Path)):
            out.append(OutgoingAttachment.from_path(item))
        elif isinstance(item, Mapping) and "content" in item:
            out.append(OutgoingAttachment.make(item.get("name") or item.get("filename") or "",
                                               item["content"], item.get("type") or item.get("content_type")))
        elif isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[1], (bytes, bytearray, memoryview)):
            out.append(OutgoingAttachment.make(item[0], item[1], item[2] if len(item) == 3 else None))
        else:
            raise ValidationError("attachments", f"cannot attach {type(item).__name__}: give a path, "
                                                 "(name, bytes) or an OutgoingAttachment")
    return tuple(out)


# -- the draft ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draft:
    """A reply ready to show and send (see :func:`compose_reply`); change it with :meth:`edit`.

    ``to`` and ``cc`` hold display strings such as ``"Hotel Sol <reservas@hotelsol.example>"``;
    ``body`` is the new text only, :attr:`text` and :attr:`html` the full bodies that will be sent.
    """

    original_id: int
    account: str
    from_address: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str = ""
    attachments: tuple[OutgoingAttachment, ...] = ()
    reply_all: bool = False
    from_name: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    attribution: str = ""
    quoted_text: str = field(default="", repr=False)
    quoted_html: str | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The plain-text body: the new text, the attribution line and the quoted original."""
        body = (self.body or "").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
        parts = [body, ""] if body else [""]
        if self.attribution:
            parts.append(self.attribution)
        if (self.quoted_text or "").strip():
            parts.append(quote_text(self.quoted_text))
        return "\n".join(parts) + "\n"

    @property
    def html(self) -> str | None:
        """The HTML body (None when the original had no HTML): escaped new text, sanitised quote."""
        if self.quoted_html is None:
            return None
        body = (self.body or "").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
        new = "<br>\n".join(_html.escape(line) for line in body.split("\n")) if body else ""
        return (
            '<!DOCTYPE html>\n<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            "</head><body>\n"
            f"<div>{new}</div>\n<br>\n"
            f"<div>{_html.escape(self.attribution)}</div>\n"
            '<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">\n'
            f"{self.quoted_html}\n</blockquote>\n</body></html>\n"
        )

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients: every To and Cc address (validated, IDNA domains). Raises :class:`ValidationError`."""
        seen: dict[str, str] = {}
        for a in _header_addresses("to", self.to) + _header_addresses("cc", self.cc):
            seen.setdefault(a.addr_spec.lower(), a.addr_spec)
        return list(seen.values())

    def edit(self, **changes: Any) -> "Draft":
        """A copy with ``changes``: ``to``/``cc`` may be one comma-separated string or a list,
        ``attachments`` anything :func:`as_attachments` accepts; raises :class:`ValidationError`."""
        for key in ("to", "cc"):
            if key in changes:
                value = changes[key]
                if isinstance(value, str):
                    value = [_format_address(Address(address=a, name=n)) for n, a in getaddresses([value]) if a]
                changes[key] = tuple(value or ())
        if "attachments" in changes:
            changes["attachments"] = as_attachments(changes["attachments"])
        if "subject" in changes:
            changes["subject"] = _LINEBREAKS.sub(" ", changes["subject"] or "").strip()
        try:
            return replace(self, **changes)
        except TypeError as exc:
            raise ValidationError("draft", str(exc)) from None


def _header_addresses(field_name: str, values: Sequence[str]) -> list[_HeaderAddress]:
    """Parse display strings into header addresses; ASCII local parts only, IDNA domains."""
    out: list[_HeaderAddress] = []
    for name, addr in getaddresses([v for v in values if v and v.strip()]):
        addr = addr.strip()
        if not addr and not name:
            continue
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or any(c.isspace() or c in "<>,;\"()[]\\" for c in domain):
            raise ValidationError(field_name, f"{addr or name!r} is not an e-mail address")
        if not local.isascii():
            raise ValidationError(field_name, f"{addr}: non-ASCII characters before the @ (SMTPUTF8) are not supported")
        if not domain.isascii():
            try:
                domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValidationError(field_name, f"{addr}: the domain is not a valid host name") from None
        try:
            out.append(_HeaderAddress(display_name=_LINEBREAKS.sub(" ", name).strip(), username=local, domain=domain))
        except (ValueError, HeaderParseError, IndexError):
            raise ValidationError(field_name, f"{addr!r} is not an e-mail address") from None
    return out


# -- composing ---------------------------------------------------------------------------------
def _recipients(parsed: ParsedMessage, direction: str, own: str, reply_all: bool) -> tuple[list[Address], list[Address]]:
    own = own.lower()
    to_, cc_ = _usable(parsed.to), _usable(parsed.cc)
    sender = parsed.from_ if parsed.from_ and parsed.from_.address else None
    if direction == "outgoing" or (sender is not None and sender.address == own):
        to = to_ or cc_
        cc = (cc_ if to_ else []) if reply_all else []
    else:
        to = _usable(parsed.reply_to) or ([sender] if sender else [])
        cc = (to_ + cc_) if reply_all else []
    to = _dedupe(a for a in to if a.address != own) or _dedupe(to)  # a mail to oneself stays to oneself
    taken = {a.address for a in to} | {own}
    return to, [a for a in _dedupe(cc) if a.address not in taken]


def _references(row: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    parent = _valid_id(row.get("message_id"))
    refs = [r for r in (row.get("references") or []) if _valid_id(r)]
    if not refs and _valid_id(row.get("in_reply_to")):
        refs = [row["in_reply_to"]]
    if parent:
        refs.append(parent)
    refs = list(dict.fromkeys(refs))
    if len(refs) > _MAX_REFERENCES:
        refs = refs[:1] + refs[-(_MAX_REFERENCES - 1):]
    return parent, tuple(refs)


def _attribution(parsed: ParsedMessage) -> str:
    who = ""
    if parsed.from_ is not None:
        who = _format_address(parsed.from_) if parsed.from_.address else parsed.from_.name
    who = who or "the sender"
    return f"On {format_datetime(parsed.date)}, {who} wrote:" if parsed.date else f"{who} wrote:"


def _sanitised_quote(html: str) -> str:
    from .render import sanitize_html

    return sanitize_html(html, allow_remote_images=True).html


def _choose_account(store: "Store", email_id: int, row: Mapping[str, Any], parsed: ParsedMessage,
                    account: str | None, user: str | None) -> Account:
    allowed = {a.name: a for a in store.subscribed_accounts(user)} if user else None
    if account:
        acc = store.get_account(account)
        if allowed is not None and acc.name not in allowed:
            raise ValidationError("account", f"user {user!r} does not subscribe to account {acc.name!r}")
        smtp_server_view(acc)
        return acc
    names = store.mail_account_names(email_id)
    candidates = [store.get_account(n) for n in names]
    if allowed is not None:
        candidates = [a for a in candidates if a.name in allowed] or list(allowed.values())
    with_smtp = [a for a in candidates if a.smtp is not None]
    if not with_smtp:
        if not candidates:
            raise ValidationError("account", f"mail {email_id} came through no account"
                                             f"{' ' + repr(user) + ' subscribes to' if user else ''}; name the sending account")
        listed = ", ".join(a.name for a in candidates)
        raise ValidationError("account", f"no SMTP settings for {listed}; set them with "
                                         "`vmailkit account smtp NAME --host HOST --security ... --secret REF` "
                                         "or name another account")
    sent = store.sent_info(email_id)
    preferred = {sent["account"]} if sent else set()
    addressed = {a.address for a in list(parsed.to) + list(parsed.cc)}
    if row.get("direction") == "outgoing" and parsed.from_ is not None:
        addressed.add(parsed.from_.address)
    for acc in with_smtp:
        if acc.name in preferred:
            return acc
    for acc in with_smtp:
        if acc.address.lower() in addressed:
            return acc
    return with_smtp[0]


def compose_reply(
    store: "Store",
    email_id: int,
    *,
    reply_all: bool = False,
    body: str = "",
    attachments: Iterable[Any] | None = None,
    account: str | None = None,
    user: str | None = None,
    from_name: str | None = None,
) -> Draft:
    """Build the reply to stored mail ``email_id`` (nothing is sent or stored).

    ``account`` names the sending account; by default it is chosen among the accounts the mail was
    received in or sent through (only those ``user`` subscribes to, when given) that have SMTP
    settings, preferring the one the mail was sent through or addressed to. ``attachments`` accepts
    what :func:`as_attachments` accepts. Raises :class:`NotFoundError` for an unknown mail, account
    or user, and :class:`ValidationError` when no usable sending account exists or an attachment
    is unreadable.
    """
    with store.session():  # one connection for the handful of lookups
        row = store.get_email(email_id)
        parsed = parse_message(bytes(row["raw"]))
        acc = _choose_account(store, email_id, row, parsed, account, user)
    to, cc = _recipients(parsed, row.get("direction") or "incoming", acc.address, reply_all)
    parent, refs = _references(row)
    original_html = row.get("body_html")
    quoted_text = row.get("body_text") or html_to_text(original_html)
    return Draft(
        original_id=int(email_id),
        account=acc.name,
        from_address=acc.address,
        from_name=from_name,
        to=tuple(_format_address(a) for a in to),
        cc=tuple(_format_address(a) for a in cc),
        subject=reply_subject(row.get("subject")),
        body=body or "",
        attachments=as_attachments(attachments),
        reply_all=reply_all,
        in_reply_to=parent,
        references=refs,
        attribution=_attribution(parsed),
        quoted_text=quoted_text,
        quoted_html=_sanitised_quote(original_html) if original_html else None,
    )


# -- building the message ----------------------------------------------------------------------
class _IdListHeader(str):
    """In-Reply-To / References: ``<id>`` tokens folded between ids, never RFC 2047-encoded.

    The email package would encode a token longer than a line as an encoded word in order to fold
    it, which breaks message ids; a value with a ``name`` attribute is folded by its own ``fold``.
    """

    name: str

    def __new__(cls, name: str, ids: Sequence[str]) -> "_IdListHeader":
        self = super().__new__(cls, " ".join(f"<{i}>" for i in ids))
        self.name = name
        return self

    def fold(self, *, policy: _policy.Policy) -> str:
        limit = policy.max_line_length or 78
        head = f"{self.name}:"
        lines, line = [], head
        for token in self.split():
            if line != head and len(line) + 1 + len(token) > limit:
                lines.append(line)
                line = " " + token
            else:
                line += " " + token
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


@dataclass(frozen=True)
class OutgoingMessage:
    """The exact bytes to submit, with the envelope and the Message-ID (with ``<>``)."""

    raw: bytes
    message_id: str
    sender: str
    recipients: list[str]


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().strip("[]") or "vmailkit.invalid"
    try:
        return domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "vmailkit.invalid"


def build_message(draft: Draft, *, date: datetime | None = None, message_id: str | None = None) -> OutgoingMessage:
    """Render ``draft`` as RFC 5322/MIME bytes (7-bit, CRLF) with a new Message-ID on the sender's domain.

    ``date`` defaults to now (local time with its offset). Raises :class:`ValidationError` for an
    invalid or missing recipient or sender address.
    """
    sender = _header_addresses("from", [draft.from_address])
    if len(sender) != 1:
        raise ValidationError("from", f"{draft.from_address!r} is not one e-mail address")
    from_addr = sender[0]
    if draft.from_name:
        from_addr = _HeaderAddress(display_name=_LINEBREAKS.sub(" ", draft.from_name).strip(),
                                   username=from_addr.username, domain=from_addr.domain)
    to = _header_addresses("to", draft.to)
    cc = _header_addresses("cc", draft.cc)
    if not to and not cc:
        raise ValidationError("to", "the reply has no recipient")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = from_addr
    if to:
        msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = _LINEBREAKS.sub(" ", draft.subject or "").strip()
    msg["Date"] = format_datetime(date or datetime.now().astimezone())
    mid = message_id or make_msgid(domain=_domain(from_addr.addr_spec))
    msg["Message-ID"] = mid
    if draft.in_reply_to and _valid_id(draft.in_reply_to):
        msg["In-Reply-To"] = _IdListHeader("In-Reply-To", [draft.in_reply_to])
    refs = [r for r in draft.references if _valid_id(r)]
    if refs:
        msg["References"] = _IdListHeader("References", refs)
    msg.set_content(draft.text)
    html = draft.html
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for att in draft.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.content, maintype=maintype, subtype=subtype, filename=att.filename,
                           params={"name": att.filename})
    for part in msg.walk():  # the email package adds MIME-Version to parts it creates; it belongs on top only
        if part is not msg and "MIME-Version" in part:
            del part["MIME-Version"]
    raw = msg.as_bytes()
    recipients: dict[str, str] = {}
    for a in to + cc:
        recipients.setdefault(a.addr_spec.lower(), a.addr_spec)
    return OutgoingMessage(raw=raw, message_id=mid, sender=from_addr.addr_spec, recipients=list(recipients.values()))


# -- sending -----------------------------------------------------------------------------------
def smtp_password(account: Account, passwords: Mapping[str, str] | None = None) -> str:
    """The SMTP password of ``account``.

    In order: ``passwords["<account>:smtp"]``; ``passwords["<account>"]`` (the password typed for
    the mailbox) when the SMTP secret is ``prompt:`` or the same reference as the mailbox's; the
    SMTP secret reference. Raises :class:`SecretError` naming the account, never the password, and
    :class:`ValidationError` when the account has no SMTP settings.
    """
    server = smtp_server_view(account)
    smtp = account.smtp
    assert smtp is not None
    key = f"{account.name}:smtp"
    if passwords and passwords.get(key):
        return passwords[key]
    ref = (smtp.secret_ref or "").strip() or "prompt:"
    if passwords and passwords.get(account.name) and ref in ("prompt:", account.secret_ref):
        return passwords[account.name]
    return resolve_secret(f"{server.name} (SMTP)", ref, None)


def send_reply(
    store: "Store",
    draft: Draft,
    *,
    user: str | None = None,
    passwords: Mapping[str, str] | None = None,
    save_to_sent: bool = False,
    sent_folder: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    tokens: TokenStore | None = None,
) -> int:
    """Send ``draft`` through its account's SMTP server, store it and return the new ``email_id``.

    An OAuth2 account signs in to SMTP (and to IMAP for the Sent copy) with its grant from
    ``tokens`` (default: ``$VMAILKIT_TOKEN_STORE``).

    The mail is stored (``direction = 'outgoing'``, ``status = 'read'``, the exact bytes sent) only
    after the server accepted it, with the links of the original copied (origin ``auto``, rule
    ``reply.thread``) and an ``email_sends`` row; ``user`` (who must subscribe to the account) is
    recorded as the sender. With ``save_to_sent`` the copy is then appended to the IMAP account's
    Sent folder (``sent_folder``, default: the folder marked ``\\Sent``, else ``Sent``); a failed
    append does not undo the send: it is logged and recorded in ``email_sends.sent_folder_error``.

    Raises :class:`ValidationError` (bad recipients, no SMTP settings, POP3 with ``save_to_sent``,
    user not subscribed), :class:`NotFoundError`, :class:`SecretError`, :class:`MailServerError`
    subclasses (:class:`AuthError`, :class:`TLSFailure`, :class:`StartTLSNotOffered`,
    :class:`SendError` for a refused sender, recipient or message, ...) with nothing stored, and
    :class:`StoreError` when the mail was sent but could not be stored (the message says so).
    """
    with store.session():  # the checks before sending; the file is not held during SMTP
        account = store.get_account(draft.account)
        server = smtp_server_view(account)
        if draft.from_address.strip().lower() != account.address.lower():
            raise ValidationError("from", f"account {account.name!r} sends as {account.address}, not {draft.from_address}")
        user_id = None
        if user:
            u = store.get_user(user)
            if account.name not in {a.name for a in store.subscribed_accounts(user)}:
                raise ValidationError("account", f"user {user!r} does not subscribe to account {account.name!r}")
            user_id = u.user_id
        if save_to_sent and account.protocol != "imap":
            raise ValidationError("save_to_sent", f"account {account.name!r} is POP3, which has no Sent folder")
        store.mail_account_names(draft.original_id)  # NotFoundError before anything is sent
    message = build_message(draft)
    imap_password = credential_for(account, passwords, tokens) if save_to_sent else ""
    smtp_secret = credential_for(account, passwords, tokens) if account.oauth is not None else smtp_password(account, passwords)
    with SmtpSession(account, smtp_secret, timeout=timeout) as session:
        answer = session.send(message.sender, message.recipients, message.raw)
    log.info("account %s: reply to mail %s accepted by %s:%s (%s)", account.name, draft.original_id,
             server.host, server.port, message.message_id)
    try:
        ensure_identity_rule(store)
        email_id = store.save_outgoing(
            mail=mail_record(message.raw), account_id=int(account.account_id or 0), user_id=user_id,
            envelope_from=message.sender, envelope_to=message.recipients, smtp_host=server.host,
            smtp_port=server.port, smtp_response=answer, in_reply_to_email_id=draft.original_id,
            reply_all=draft.reply_all, linked_by=None,
        )
    except VmailkitError as exc:
        raise StoreError(
            f"the reply was SENT (Message-ID {message.message_id}) but could not be stored: {exc}"
        ) from None
    if save_to_sent:
        try:
            copy = append_to_sent(account, imap_password, message.raw, folder=sent_folder, timeout=timeout)
        except (MailServerError, ValidationError) as exc:
            log.warning("account %s: sent mail %s not copied to the Sent folder: %s", account.name, email_id, exc)
            store.record_sent_copy(email_id, account_id=int(account.account_id or 0), folder=sent_folder or "Sent",
                                   uidvalidity=None, uid=None, user_id=user_id, error=str(exc))
        else:
            store.record_sent_copy(email_id, account_id=int(account.account_id or 0), folder=copy.folder,
                                   uidvalidity=copy.uidvalidity, uid=copy.uid, user_id=user_id)
    return email_id
