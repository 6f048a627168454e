"""POP3 transport through :mod:`poplib`, with implicit TLS, STLS or plain.

The server is never changed: no DELE is ever sent, and QUIT is only sent after reading.
"""
from __future__ import annotations

import base64
import poplib
from collections.abc import Iterable, Iterator

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
    end_quietly,
    mapped_errors,
    set_nodelay,
    starttls_missing,
    tls_context,
    token_refused,
)
from .sasl import TokenSource, choose, describe_challenge, initial_response, log_in_with_token

#: Longest line accepted from the server. poplib's own limit (2,048 bytes) loses real mail with
#: long lines; this one only protects against a server that never ends a line.
MAX_LINE = 256 * 1024 * 1024
FETCH_CHUNK_BYTES = 8 * 1024 * 1024
FETCH_CHUNK_MAX = 200
#: Commands sent ahead of their answers when the server announces PIPELINING.
PIPELINE_WINDOW = 32


class _LongLines:
    """Mixin lifting poplib's 2,048-byte line limit (per instance, the module stays untouched)."""

    file: object

    def _getline(self):  # type: ignore[no-untyped-def]
        line = self.file.readline(MAX_LINE + 1)  # type: ignore[attr-defined]
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:
            raise EOFError("the server closed the connection")  # a lost connection, not a rejection
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


class Pop3Session(SessionBase):
    """An open, logged-in POP3 connection. Use as a context manager."""

    def __init__(self, account: Account, password: str | TokenSource, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(account, password, timeout=timeout)
        self.client: poplib.POP3 | None = None
        self._numbers: dict[str, int] = {}
        self._sizes: dict[int, int] = {}
        self._pipelining = False

    @property
    def is_open(self) -> bool:
        return self.client is not None

    def open(self) -> None:
        """Connect, secure, authenticate and read the UIDL and LIST tables."""
        acc = self.account
        with mapped_errors(acc, "connect"):
            if acc.security == "ssl":
                client: poplib.POP3 = _POP3_SSL(acc.host, acc.port, context=tls_context(acc), timeout=self.timeout)
            else:
                client = _POP3(acc.host, acc.port, timeout=self.timeout)
            self.client = client
            set_nodelay(client.sock)
            caps = _capabilities(client)
            if acc.security == "starttls":
                if "STLS" not in caps:
                    raise starttls_missing(acc)
                client.stls(context=tls_context(acc))
                caps = _capabilities(client)
        password = self._take_password()
        if not isinstance(password, str):
            with mapped_errors(acc, "login"):
                self._token_login(client, caps, password)
                self._pipelining = "PIPELINING" in _capabilities(client)
            self._load_tables()
            return
        with mapped_errors(acc, "login"):
            try:
                client.user(acc.login)
                client.pass_(password)
            except poplib.error_proto as exc:
                raise auth_failed(acc, _text(exc)) from None
            finally:
                del password
            self._pipelining = "PIPELINING" in _capabilities(client)
        self._load_tables()

    def _token_login(self, client: poplib.POP3, caps: dict[str, list[str]], source: TokenSource) -> None:
        """``AUTH XOAUTH2`` (or OAUTHBEARER, RFC 5034) by hand: poplib has no SASL helper.

        The response goes on its own line (a bearer token does not fit the 255-octet command line);
        a ``+ `` challenge carrying the server's error is answered with ``*`` (cancel), never with the
        token again.
        """
        acc = self.account
        mechanism = choose([m for m in caps.get("SASL", [])]) if caps else "XOAUTH2"
        if mechanism is None:
            raise AuthError(acc.name, f"{acc.host} does not offer OAuth2 sign-in over POP3 (XOAUTH2 or OAUTHBEARER); "
                                      "check the host and port of the account")

        def line() -> bytes:
            return client._getline()[0]  # type: ignore[attr-defined, no-any-return]

        def attempt(token: str) -> str | None:
            client._putcmd(f"AUTH {mechanism}")  # type: ignore[attr-defined]
            answer = line()
            if answer.startswith(b"-ERR"):
                return _text(poplib.error_proto(answer))
            if not answer.startswith(b"+"):
                raise ProtocolError(acc.name, f"unexpected answer to AUTH: {_text(poplib.error_proto(answer))[:200]}")
            response = initial_response(mechanism, source.user, token, acc.host, acc.port)
            client._putcmd(base64.b64encode(response).decode("ascii"))  # type: ignore[attr-defined]
            answer = line()
            if answer.startswith(b"+OK"):
                return None
            why = ""
            if answer.startswith(b"+"):  # an error challenge: cancel the exchange
                why = describe_challenge(answer[1:])
                client._putcmd("*")  # type: ignore[attr-defined]
                answer = line()
            if answer.startswith(b"+OK"):
                return None
            return why or _text(poplib.error_proto(answer))

        refusal = log_in_with_token(source, attempt)
        if refusal is not None:
            raise token_refused(acc, refusal)

    def _load_tables(self) -> None:
        assert self.client is not None
        with mapped_errors(self.account, "UIDL"):
            try:
                _, uidl_lines, _ = self.client.uidl()
                _, list_lines, _ = self.client.list()
            except poplib.error_proto as exc:
                raise ProtocolError(self.account.name, f"UIDL/LIST failed: {_text(exc)}") from None
        numbers: dict[str, int] = {}
        for line in uidl_lines:
            num, _, uidl = line.decode("ascii", "replace").partition(" ")
            if num.isdigit() and uidl:
                numbers.setdefault(uidl.strip(), int(num))
        self._numbers = numbers
        sizes: dict[int, int] = {}
        for line in list_lines:
            num, _, size = line.decode("ascii", "replace").partition(" ")
            if num.isdigit():
                sizes[int(num)] = int(size.split()[0]) if size.split() and size.split()[0].isdigit() else 0
        self._sizes = sizes

    def close(self) -> None:
        """Send QUIT (no message is deleted: vmailkit never sends DELE); never raises."""
        client, self.client = self.client, None
        if client is None:
            return
        end_quietly(client.quit, client.close)

    def uidls(self) -> list[str]:
        """Every UIDL on the server, in message-number order (oldest first)."""
        return sorted(self._numbers, key=self._numbers.__getitem__)

    def describe(self) -> str:
        """How many messages the mailbox holds."""
        return f"{len(self._numbers)} messages"

    def new_refs(self, watermark: Watermark) -> list[MessageRef]:
        """References of the messages whose UIDL is not in the watermark, oldest first."""
        return [self.ref(u, self._sizes.get(self._numbers[u], 0)) for u in self.uidls() if u not in watermark.uidls]

    def _answers(self, verb: str, uidls: Iterable[str], extra: str = "") -> Iterator[tuple[str, int, list[bytes] | None, str]]:
        """Send ``VERB n extra`` for each known UIDL; yield (uidl, n, lines, error) as each answer arrives.

        ``lines`` is None and ``error`` the server's words when it answered ``-ERR`` for that
        message. With the server's PIPELINING capability (RFC 2449) commands go out in windows of
        :data:`PIPELINE_WINDOW`, so a thousand messages cost a few round trips instead of a thousand.
        Raises :class:`MailServerError` when the connection fails (after yielding every complete
        answer before it).
        """
        assert self.client is not None
        client = self.client
        todo = [(u, self._numbers[u]) for u in uidls if u in self._numbers]
        window = PIPELINE_WINDOW if self._pipelining else 1
        for start in range(0, len(todo), window):
            batch = todo[start:start + window]
            with mapped_errors(self.account, verb):
                for _, num in batch:
                    client._putcmd(f"{verb} {num}{extra}")  # type: ignore[attr-defined]
            for uidl, num in batch:  # read every answer, even after an -ERR, to stay in step
                with mapped_errors(self.account, verb):
                    try:
                        _, lines, _ = client._getlongresp()  # type: ignore[attr-defined]
                    except poplib.error_proto as exc:
                        yield uidl, num, None, _text(exc)
                        continue
                yield uidl, num, lines, ""

    def headers(self, refs: Iterable[MessageRef]) -> Iterator[RemoteHeader]:
        """Headers (``TOP n 0``) and sizes of ``refs``; UIDLs no longer on the server are skipped.

        POP3 shows no body structure before download: ``has_attachments`` is true for
        ``multipart/mixed`` messages.
        """
        uidls = [r.key for r in refs if self.check_ref(r) is None]
        for uidl, num, lines, _ in self._answers("TOP", uidls, " 0"):
            if lines is None:
                continue  # deleted by another client since the listing
            header = b"\r\n".join(lines) + b"\r\n"
            yield RemoteHeader(self.ref(uidl, self._sizes.get(num, 0)), header=header,
                               has_attachments=_multipart_mixed(header))

    def fetch(self, refs: Iterable[MessageRef], *, chunk_bytes: int = FETCH_CHUNK_BYTES) -> Iterator[FetchedChunk]:
        """Fetch ``refs`` (``RETR``) in chunks, with the bytes as sent, dot-unstuffed, CRLF line ends.

        A UIDL no longer on the server fails with "no longer on the server". When the connection
        breaks, the messages that arrived complete are returned in an ``interrupted`` chunk.
        """
        wanted: dict[str, MessageRef] = {}
        failures: list[FetchFailure] = []
        for ref in refs:
            reason = self.check_ref(ref)
            if reason is None and ref.key not in self._numbers:
                reason = GONE
            if reason is not None:
                failures.append(FetchFailure(ref, reason))
            else:
                wanted.setdefault(ref.key, ref)
        if failures:
            yield FetchedChunk(failures=failures)
        chunk = FetchedChunk()
        total = 0
        try:
            for uidl, _, lines, error in self._answers("RETR", wanted):
                if lines is None:
                    chunk.failures.append(FetchFailure(wanted[uidl], f"the server refused to send it: {error}"[:300]))
                    continue
                raw = b"\r\n".join(lines) + b"\r\n" if lines else b""
                chunk.messages.append(RemoteMessage(wanted[uidl], raw))
                total += len(raw)
                if total >= chunk_bytes or len(chunk.messages) >= FETCH_CHUNK_MAX:
                    yield chunk
                    chunk, total = FetchedChunk(), 0
        except MailServerError as exc:
            if not exc.retryable:
                raise
            chunk.interrupted = exc
        if chunk.messages or chunk.failures or chunk.interrupted is not None:
            yield chunk


def _capabilities(client: poplib.POP3) -> dict[str, list[str]]:
    """CAPA, or nothing for a server without it (RFC 1939 servers)."""
    try:
        return client.capa()
    except poplib.error_proto:
        return {}


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def _multipart_mixed(header: bytes) -> bool:
    from email.parser import BytesHeaderParser
    from email import policy

    try:
        msg = BytesHeaderParser(policy=policy.compat32).parsebytes(header)
        return msg.get_content_type() == "multipart/mixed"
    except Exception:  # noqa: BLE001
        return False
