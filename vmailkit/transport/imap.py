"""IMAP transport: imap-tools for connecting, TLS and login; chunked raw FETCH for speed.

The server is never changed: the folder is opened read-only (EXAMINE) and bodies are fetched with
``BODY.PEEK[]``, which does not set ``\\Seen``.
"""
from __future__ import annotations

import imaplib
from collections.abc import Iterable, Iterator

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError, MailboxStarttlsError

from ..accounts import Account
from ..errors import ProtocolError
from .base import (
    DEFAULT_TIMEOUT,
    RemoteHeader,
    RemoteMessage,
    SessionBase,
    auth_failed,
    decode_server_text,
    end_quietly,
    mapped_errors,
    set_nodelay,
    starttls_missing,
    tls_context,
)
from .imap_response import (
    FetchParseError,
    body_item,
    compress_uids,
    fast_header_items,
    has_attachments,
    parse_fetch,
)

# imaplib refuses response lines over 1 MB; a BODYSTRUCTURE of a message with thousands of parts can
# exceed that. Literals (the message bytes) are read by length and are not affected.
imaplib._MAXLINE = max(getattr(imaplib, "_MAXLINE", 0), 64 * 1024 * 1024)  # type: ignore[attr-defined]

HEADER_FIELDS = "FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE"
HEADER_CHUNK = 1000
BODY_CHUNK_BYTES = 8 * 1024 * 1024
BODY_CHUNK_MAX = 500


class ImapSession(SessionBase):
    """An open, logged-in IMAP connection with one folder examined (read-only).

    Use as a context manager; every method raises :class:`vmailkit.errors.MailServerError`
    subclasses on failure.
    """

    def __init__(self, account: Account, password: str, *, timeout: float = DEFAULT_TIMEOUT, folder: str | None = None) -> None:
        super().__init__(account, password, timeout=timeout)
        self.folder = folder or account.folder
        self.mailbox: MailBox | MailBoxStartTls | MailBoxUnencrypted | None = None
        self.exists = 0

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.mailbox is not None

    def open(self) -> None:
        """Connect, secure, log in and EXAMINE the folder."""
        acc = self.account
        with mapped_errors(acc, "connect"):
            if acc.security == "ssl":
                mb = MailBox(acc.host, acc.port, timeout=self.timeout, ssl_context=tls_context(acc))
            elif acc.security == "starttls":
                mb = self._starttls_mailbox()
            else:
                mb = MailBoxUnencrypted(acc.host, acc.port, timeout=self.timeout)
            self.mailbox = mb
            set_nodelay(mb.client.sock)
        password = self._take_password()
        with mapped_errors(acc, "login"):
            try:
                mb.login(acc.login, password, initial_folder=None)
            except MailboxLoginError as exc:
                raise auth_failed(acc, decode_server_text(getattr(exc, "command_result", ("", [b""]))[1])) from None
            except imaplib.IMAP4.error as exc:
                raise auth_failed(acc, str(exc)) from None
            finally:
                del password
        self._examine()

    def _starttls_mailbox(self) -> MailBoxStartTls:
        acc = self.account
        try:
            return MailBoxStartTls(acc.host, acc.port, timeout=self.timeout, ssl_context=tls_context(acc))
        except MailboxStarttlsError:
            raise starttls_missing(acc) from None
        except imaplib.IMAP4.error as exc:
            # imaplib checks the CAPABILITY list: "TLS not supported by server"
            if "TLS" in str(exc).upper() and "NOT SUPPORTED" in str(exc).upper():
                raise starttls_missing(acc) from None
            raise ProtocolError(acc.name, f"STARTTLS failed: {exc}") from None

    def _examine(self) -> None:
        acc = self.account
        assert self.mailbox is not None
        client = self.mailbox.client
        with mapped_errors(acc, "select folder"):
            typ, data = client.select(_quote_folder(self.folder), readonly=True)
            if typ != "OK":
                raise ProtocolError(acc.name, f"folder {self.folder!r} cannot be opened: {decode_server_text(data)}")
            self.exists = int(data[0] or 0) if data and data[0] else 0
            _, uv = client.response("UIDVALIDITY")
            if not uv or uv[0] is None:
                raise ProtocolError(acc.name, f"server sent no UIDVALIDITY for {self.folder!r}")
            self.uidvalidity = int(uv[0])

    def close(self) -> None:
        """Log out; never raises."""
        mb, self.mailbox = self.mailbox, None
        if mb is None:
            return
        end_quietly(mb.client.logout, mb.client.shutdown)

    # -- listing -----------------------------------------------------------------------------
    def _uid(self, command: str, *args: str) -> list:
        assert self.mailbox is not None
        with mapped_errors(self.account, command.lower()):
            try:
                typ, data = self.mailbox.client.uid(command, *args)
            except imaplib.IMAP4.error as exc:
                raise ProtocolError(self.account.name, f"UID {command} failed: {exc}") from None
        if typ != "OK":
            raise ProtocolError(self.account.name, f"UID {command} failed: {decode_server_text(data)}")
        return data

    def uids_above(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``, ascending.

        ``UID SEARCH UID n:*`` always matches the last message even when its UID is below ``n``, so
        the result is filtered here.
        """
        if self.exists == 0:
            return []
        data = self._uid("SEARCH", f"UID {last_uid + 1}:*" if last_uid > 0 else "ALL")
        uids = [int(x) for chunk in data if chunk for x in chunk.split()]
        return sorted(u for u in uids if u > last_uid)

    def headers(self, uids: Iterable[int]) -> Iterator[RemoteHeader]:
        """Header fields, size and attachment flag for ``uids``, one UID FETCH per chunk."""
        uids = sorted(set(uids))
        for start in range(0, len(uids), HEADER_CHUNK):
            chunk = uids[start:start + HEADER_CHUNK]
            data = self._uid(
                "FETCH",
                compress_uids(chunk),
                f"(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])",
            )
            wanted = set(chunk)
            fast = fast_header_items(data)
            if fast is not None:
                for uid, size, header, attached in fast:
                    if uid in wanted:
                        yield RemoteHeader(key=str(uid), uid=uid, size=size, header=header, has_attachments=attached)
                continue
            for item in self._parse(data):
                uid = _int(item.get("UID"))
                if uid is None or uid not in wanted:
                    continue
                yield RemoteHeader(
                    key=str(uid),
                    uid=uid,
                    size=_int(item.get("RFC822.SIZE")) or 0,
                    header=body_item(item) or b"",
                    has_attachments=has_attachments(item.get("BODYSTRUCTURE")),
                )

    def sizes(self, uids: Iterable[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID (to plan download chunks)."""
        uids = sorted(set(uids))
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 5000):
            chunk = uids[start:start + 5000]
            for item in self._parse(self._uid("FETCH", compress_uids(chunk), "(UID RFC822.SIZE)")):
                uid = _int(item.get("UID"))
                if uid is not None:
                    sizes[uid] = _int(item.get("RFC822.SIZE")) or 0
        return sizes

    # -- download ----------------------------------------------------------------------------
    def fetch(self, uids: Iterable[int], *, chunk_bytes: int = BODY_CHUNK_BYTES) -> Iterator[list[RemoteMessage]]:
        """Yield chunks of messages with their exact bytes (``BODY.PEEK[]``), ascending UID.

        A UID that no longer exists on the server is skipped.
        """
        uids = sorted(set(uids))
        sizes = self.sizes(uids)
        chunk: list[int] = []
        total = 0
        for uid in uids:
            if uid not in sizes:
                continue
            chunk.append(uid)
            total += sizes[uid]
            if total >= chunk_bytes or len(chunk) >= BODY_CHUNK_MAX:
                yield self._fetch_chunk(chunk)
                chunk, total = [], 0
        if chunk:
            yield self._fetch_chunk(chunk)

    def _fetch_chunk(self, uids: list[int]) -> list[RemoteMessage]:
        data = self._uid("FETCH", compress_uids(uids), "(UID BODY.PEEK[])")
        wanted = set(uids)
        out: dict[int, RemoteMessage] = {}
        for item in self._parse(data):
            uid = _int(item.get("UID"))
            raw = item.get("BODY[]")
            if uid is None or uid not in wanted or not isinstance(raw, bytes):
                continue
            out[uid] = RemoteMessage(key=str(uid), uid=uid, raw=raw)
        return [out[u] for u in uids if u in out]

    def _parse(self, data: list) -> list[dict]:
        try:
            return parse_fetch(data)
        except FetchParseError as exc:
            raise ProtocolError(self.account.name, f"unexpected FETCH answer: {exc}") from None


def _int(value: object) -> int | None:
    if isinstance(value, (bytes, str)) and value.isdigit():
        return int(value)
    return None


def _quote_folder(folder: str) -> str:
    from imap_tools.imap_utf7 import utf7_encode

    encoded = utf7_encode(folder)
    text = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
