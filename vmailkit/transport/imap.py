"""IMAP transport: imap-tools for connecting, TLS and login; chunked raw FETCH for speed.

The server is never changed: the folder is opened read-only (EXAMINE) and bodies are fetched with
``BODY.PEEK[]``, which does not set ``\\Seen``.
"""
from __future__ import annotations

import imaplib
import types
from collections.abc import Iterable, Iterator

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError, MailboxStarttlsError

from ..accounts import Account
from ..errors import AuthError, MailServerError, ProtocolError
from ..refs import MessageRef, Watermark
from .base import (
    DEFAULT_TIMEOUT,
    GONE,
    FetchedChunk,
    FetchFailure,
    RemoteHeader,
    RemoteMessage,
    SessionBase,
    auth_failed,
    connection_lost,
    decode_server_text,
    end_quietly,
    is_hangup,
    mapped_errors,
    set_nodelay,
    starttls_missing,
    tls_context,
    token_refused,
)
from .sasl import TokenSource, choose, describe_challenge, initial_response, log_in_with_token
from .imap_response import (
    NOT_SENT,
    FetchParseError,
    body_item,
    compress_uids,
    fast_header_items,
    has_attachments,
    number,
    parse_fetch,
    read_bodies,
)

#: Longest response line accepted. imaplib refuses lines over 1 MB; a BODYSTRUCTURE of a message with
#: thousands of parts can exceed that. Literals (the message bytes) are read by length and are not
#: affected. Set per session (see :func:`_long_lines`): the imaplib module stays untouched.
MAX_LINE = 64 * 1024 * 1024


def _long_lines(client: imaplib.IMAP4) -> None:
    """Let this client read response lines up to :data:`MAX_LINE` (imaplib's own limit is 1 MB)."""

    def readline(self: imaplib.IMAP4) -> bytes:
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise self.error(f"got more than {MAX_LINE} bytes")
        return line

    client.readline = types.MethodType(readline, client)  # type: ignore[method-assign]

HEADER_FIELDS = "FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE"
HEADER_CHUNK = 1000
BODY_CHUNK_BYTES = 8 * 1024 * 1024
BODY_CHUNK_MAX = 500


class ImapSession(SessionBase):
    """An open, logged-in IMAP connection with one folder examined (read-only).

    Use as a context manager; every method raises :class:`vmailkit.errors.MailServerError`
    subclasses on failure.
    """

    def __init__(self, account: Account, password: str | TokenSource, *, timeout: float = DEFAULT_TIMEOUT,
                 folder: str | None = None) -> None:
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
            _long_lines(mb.client)
        password = self._take_password()
        if not isinstance(password, str):
            with mapped_errors(acc, "login"):
                self._token_login(mb.client, password)
            self._examine()
            return
        with mapped_errors(acc, "login"):
            try:
                mb.login(acc.login, password, initial_folder=None)
            except MailboxLoginError as exc:
                raise auth_failed(acc, decode_server_text(getattr(exc, "command_result", ("", [b""]))[1])) from None
            except imaplib.IMAP4.abort as exc:
                if is_hangup(exc):
                    raise connection_lost(acc, "login") from None
                raise ProtocolError(acc.name, f"unexpected answer to LOGIN: {decode_server_text(exc.args[0] if exc.args else exc)[:200]}") from None
            except imaplib.IMAP4.error as exc:
                raise auth_failed(acc, str(exc)) from None
            finally:
                del password
        self._examine()

    def _token_login(self, client: imaplib.IMAP4, source: TokenSource) -> None:
        """AUTHENTICATE XOAUTH2 (or OAUTHBEARER) with the account's access token; one retry with a fresh one."""
        acc = self.account
        mechanism = choose([c[len("AUTH="):] for c in client.capabilities if c.upper().startswith("AUTH=")])
        if mechanism is None:
            raise AuthError(acc.name, f"{acc.host} does not offer OAuth2 sign-in over IMAP (XOAUTH2 or OAUTHBEARER); "
                                      "check the host and port of the account")

        def attempt(token: str) -> str | None:
            said: list[bytes] = []

            def respond(challenge: bytes) -> bytes | None:
                if said:  # the server's error challenge: cancel, never send the token again
                    said.append(challenge)
                    return None
                said.append(b"")
                return initial_response(mechanism, source.user, token, acc.host, acc.port)

            try:
                client.authenticate(mechanism, respond)
            except imaplib.IMAP4.abort:
                raise
            except imaplib.IMAP4.error as exc:
                why = describe_challenge(said[1]) if len(said) > 1 else ""
                return why or decode_server_text(exc.args[0] if exc.args else exc)
            return None

        refusal = log_in_with_token(source, attempt)
        if refusal is not None:
            raise token_refused(acc, refusal)

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
            except imaplib.IMAP4.abort:
                raise  # mapped_errors: a lost connection, or an answer that made imaplib give up
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

    def describe(self) -> str:
        """How many messages the examined folder holds."""
        return f"{self.exists} messages in {self.folder}"

    def new_refs(self, watermark: Watermark) -> list[MessageRef]:
        """References past the watermark's UID (every message when the UIDVALIDITY differs), ascending."""
        last = watermark.last_uid if watermark.uidvalidity == self.uidvalidity else 0
        return [self.ref(uid) for uid in self.uids_above(last)]

    def headers(self, refs: Iterable[MessageRef]) -> Iterator[RemoteHeader]:
        """Header fields, size and attachment flag of ``refs``, one UID FETCH per chunk.

        References to another folder or UIDVALIDITY, and UIDs no longer on the server, are skipped.
        """
        uids = sorted({r.uid for r in refs if r.uid is not None and self.check_ref(r) is None})
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
                        yield RemoteHeader(self.ref(uid, size), header=header, has_attachments=attached)
                continue
            for item in self._parse(data):
                uid = number(item.get("UID"))
                if uid is None or uid not in wanted:
                    continue
                yield RemoteHeader(
                    self.ref(uid, number(item.get("RFC822.SIZE")) or 0),
                    header=body_item(item) or b"",
                    has_attachments=has_attachments(item.get("BODYSTRUCTURE")),
                )

    def sizes(self, uids: Iterable[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID still on the server (to plan download chunks)."""
        uids = sorted(set(uids))
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 5000):
            chunk = uids[start:start + 5000]
            wanted = set(chunk)
            for item in self._parse(self._uid("FETCH", compress_uids(chunk), "(UID RFC822.SIZE)")):
                uid = number(item.get("UID"))
                if uid is not None and uid in wanted:
                    sizes[uid] = number(item.get("RFC822.SIZE")) or 0
        return sizes

    # -- download ----------------------------------------------------------------------------
    def fetch(self, refs: Iterable[MessageRef], *, chunk_bytes: int = BODY_CHUNK_BYTES) -> Iterator[FetchedChunk]:
        """Fetch ``refs`` with their exact bytes (``BODY.PEEK[]``) in chunks of about ``chunk_bytes``.

        A reference to another folder or UIDVALIDITY fails with "the mailbox changed", a UID no
        longer on the server with "no longer on the server"; an answer the client does not fully
        understand fails that message. When the connection breaks, the messages that arrived
        complete are returned in an ``interrupted`` chunk and the generator ends.
        """
        by_uid: dict[int, MessageRef] = {}
        failures: list[FetchFailure] = []
        for ref in refs:
            reason = self.check_ref(ref)
            if reason is not None:
                failures.append(FetchFailure(ref, reason))
            elif ref.uid is not None:
                by_uid.setdefault(ref.uid, ref)
        try:
            sizes = self.sizes(by_uid) if by_uid else {}
        except MailServerError as exc:
            yield FetchedChunk(failures=failures, interrupted=exc)
            return
        failures += [FetchFailure(by_uid[u], GONE) for u in sorted(by_uid) if u not in sizes]
        if failures:
            yield FetchedChunk(failures=failures)
        chunk: list[int] = []
        total = 0
        for uid in sorted(sizes):
            chunk.append(uid)
            total += sizes[uid]
            if total >= chunk_bytes or len(chunk) >= BODY_CHUNK_MAX:
                result = self._fetch_chunk(chunk, by_uid)
                yield result
                if result.interrupted is not None:
                    return
                chunk, total = [], 0
        if chunk:
            yield self._fetch_chunk(chunk, by_uid)

    def _fetch_chunk(self, uids: list[int], refs: dict[int, MessageRef]) -> FetchedChunk:
        assert self.mailbox is not None
        client = self.mailbox.client
        client.untagged_responses.pop("FETCH", None)  # nothing left over from an earlier command
        interrupted: MailServerError | None = None
        try:
            data = self._uid("FETCH", compress_uids(uids), "(UID BODY.PEEK[])")
        except MailServerError as exc:
            if not exc.retryable:
                raise
            # what arrived before the break: complete messages only (read_bodies checks every literal)
            data = client.untagged_responses.pop("FETCH", [])
            interrupted = exc
        bodies, problems = read_bodies(data, set(uids))
        chunk = FetchedChunk(
            messages=[RemoteMessage(refs[u], bodies[u]) for u in uids if u in bodies],
            failures=[FetchFailure(refs[u], problems[u]) for u in uids if u in problems],
            interrupted=interrupted,
        )
        if interrupted is None:
            chunk.failures += [FetchFailure(refs[u], NOT_SENT) for u in uids if u not in bodies and u not in problems]
        return chunk

    def _parse(self, data: list) -> list[dict]:
        try:
            return parse_fetch(data)
        except FetchParseError as exc:
            raise ProtocolError(self.account.name, f"unexpected FETCH answer: {exc}") from None


def _quote_folder(folder: str) -> str:
    from imap_tools.imap_utf7 import utf7_encode

    encoded = utf7_encode(folder)
    text = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
