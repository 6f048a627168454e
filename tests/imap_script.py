"""A scripted IMAP4rev1 responder for the FETCH-integrity tests.

``ScriptedImapServer`` serves one read-only mailbox (``INBOX``) built from a
``{uid: raw_bytes}`` dict on a free port of 127.0.0.1 and answers the way a
real server does (Dovecot's answer shapes are the model), except where a test
switches on a *fault*: answer shapes seen in the wild that Dovecot never
sends.  It speaks enough IMAP for :mod:`imaplib` and imap-tools::

    with ScriptedImapServer({1: b"Subject: a\\r\\n\\r\\nx\\r\\n"}, uidvalidity=7) as srv:
        c = imaplib.IMAP4(srv.host, srv.port)
        c.login("any", "thing")
        c.select("INBOX", readonly=True)              # EXAMINE
        c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        # -> ('OK', [(b'1 (UID 1 BODY[] {17}', b'Subject: a\\r\\n\\r\\nx\\r\\n'), b')'])
        srv.commands   # ['CAPABILITY', 'LOGIN any "thing"', 'EXAMINE INBOX', 'UID FETCH ...', ...]

    # imap-tools, as the product connects:
    MailBoxUnencrypted(srv.host, srv.port).login("u", "p", initial_folder=None)

Supported commands: CAPABILITY, NOOP, CHECK, LOGIN, LOGOUT, SELECT, EXAMINE,
STATUS, LIST/LSUB, CLOSE, UNSELECT, SEARCH / UID SEARCH (``ALL``, ``UID <set>``,
``<seq-set>``, ``[UN]SEEN``/``[UN]FLAGGED``/..., ``NOT``, ``OR``, parentheses,
a leading ``CHARSET x``), FETCH / UID FETCH with the items ``UID``, ``FLAGS``,
``INTERNALDATE``, ``RFC822.SIZE``, ``BODYSTRUCTURE``, ``BODY``, ``RFC822``,
``RFC822.HEADER``, ``RFC822.TEXT``, ``BODY[...]`` / ``BODY.PEEK[...]`` with the
sections ``""``, ``HEADER``, ``TEXT``, ``HEADER.FIELDS (...)``,
``HEADER.FIELDS.NOT (...)`` and partials ``<o.n>``, and the macro ``FAST``.
``BODY.PEEK[...]`` is answered as ``BODY[...]``.  A non-PEEK body fetch on a
mailbox opened with SELECT adds ``\\Seen`` to :attr:`ScriptedImapServer.flags`
and reports FLAGS (as RFC 3501 requires); after EXAMINE nothing changes.
Commands that would change the server (STORE, COPY, MOVE, EXPUNGE, APPEND,
CREATE, DELETE, RENAME, ...) are logged and answered ``NO``; anything unknown
gets ``BAD``.  Client literals ``{n}`` / ``{n+}`` are accepted.

UID sets (``1:5,7,9:*``): ``*`` is the highest UID of the mailbox and a range
``a:b`` means ``min(a,b)..max(a,b)``, so -- like every real server --
``UID SEARCH UID n:*`` and ``UID FETCH n:*`` answer the last message even when
its UID is below ``n``.

Answer shape (default): for each message, in UID order,
``* <seq> FETCH (UID <uid> <requested items in request order>)``; body sections
are always literals ``{n}\\r\\n<bytes>``, even when empty.

Faults (constructor keywords, also plain attributes that a test may change at
any time; they take effect at the next command):

``literal8_uids``
    body sections of these UIDs are sent as RFC 3516 ``literal8``:
    ``BODY[] ~{n}\\r\\n<bytes>``.
``nil_body_uids``
    body sections of these UIDs are answered ``BODY[] NIL``.
``missing_body_uids``
    body sections of these UIDs are left out of the answer (for
    ``(UID BODY.PEEK[])`` only ``UID <uid>`` remains).
``fault_sections``
    which body sections the three faults above apply to: ``"full"`` (default:
    only the whole message, ``BODY[]`` / ``RFC822``) or ``"all"`` (also
    ``BODY[HEADER.FIELDS (...)]``, ``BODY[HEADER]``, partials, ...).
``reorder_items``
    items go out in reverse order, so UID comes last
    (``* 1 FETCH (BODY[] {n}\\r\\n... UID 7)``), and every message with an odd
    sequence number also gets an unrequested ``FLAGS (...)`` between them.
``interleave``
    in every UID FETCH, the lines of :attr:`interleave_lines` (default
    ``* 3 EXPUNGE`` and ``* 2 FETCH (FLAGS (\\Seen))``) are sent after the first
    FETCH response (before the tagged OK if nothing matched).  The mailbox
    itself is not changed; the lines are noise the client must tolerate.
``extra_uid``
    every UID FETCH not asking for this UID also answers it (after the first
    requested message, or alone), with the same items.  If the UID is not in
    ``messages``, :attr:`extra_message` is its content and its sequence number
    is one above the last.
``drop_after_bytes``
    after this many bytes of FETCH output on one connection the connection is
    closed abruptly (the cut lands wherever the count ends, typically inside a
    literal).  Counted per connection, cumulatively over the FETCH commands
    selected by ``drop_scope``: ``"body"`` (default; only FETCH commands that
    ask for a whole message: ``BODY[]``, ``BODY.PEEK[]``, ``RFC822``) or
    ``"any"`` (every FETCH/UID FETCH).  :attr:`drops` counts the cuts.
``fetch_hook``
    ``hook(seq, uid, items) -> None | list[bytes] | bytes``, called for every
    FETCH response after the faults above with the encoded items (e.g.
    ``[b"UID 7", b"BODY[] {5}\\r\\nhello"]``).  ``None`` keeps the answer, a list
    replaces the items, ``bytes`` replaces the whole response (it must then be
    complete, ``* n FETCH (...)\\r\\n``; ``b""`` suppresses it).

Other attributes: ``messages`` (the dict; read at every SELECT/EXAMINE, and
NOOP/CHECK report new messages with ``* n EXISTS``), ``uidvalidity`` and
``uidnext`` (read at every SELECT/EXAMINE/STATUS, so a test changes the
UIDVALIDITY between sessions by assigning it), ``flags`` (``{uid: set}``),
``users`` (``None``: any login accepted; else ``{user: password}``, a wrong one
gets ``NO [AUTHENTICATIONFAILED]``), ``commands`` (every command line received,
without tag, in order, all connections; literals inlined), ``logins`` (user
names that logged in), ``connections`` (accepted connection count),
``drops``.  :meth:`command_names` reduces ``commands`` to the verbs, e.g.
``["CAPABILITY", "LOGIN", "EXAMINE", "UID SEARCH", "UID FETCH", "LOGOUT"]``.

With ``ssl_context`` (a server-side :class:`ssl.SSLContext` with a certificate
loaded) every connection is implicit TLS (IMAPS).

What :mod:`imaplib` (CPython 3.11-3.13) makes of the answers -- the shapes the
product's FETCH parser receives from ``IMAP4.uid("FETCH", ...)[1]``:

* normal: ``[(b'1 (UID 1 BODY[] {20}', b'<20 bytes>'), b')', ...]``.
* ``literal8_uids``: imaplib's literal regex is ``.*{(?P<size>\\d+)}$``, so it
  also reads the ``~{n}`` literal correctly by length, but the ``~`` stays in
  the text part: ``[(b'1 (UID 1 BODY[] ~{20}', b'<20 bytes>'), b')']``.  A
  parser that expects the text to end in `` {n}`` sees ``~{20}`` instead.
* ``nil_body_uids``: a plain line, no tuple: ``[b'1 (UID 1 BODY[] NIL)']``.
* ``missing_body_uids``: ``[b'1 (UID 1)']``.
* ``reorder_items``: ``[(b'1 (BODY[] {20}', b'<bytes>'), b' FLAGS () UID 1)']``
  -- the UID is only in the trailing line after the literal.
* ``interleave``: the ``* 2 FETCH (FLAGS (\\Seen))`` line lands in the FETCH data
  as ``b'2 (FLAGS (\\\\Seen))'`` (no UID, no body) between the real answers;
  ``* 3 EXPUNGE`` is not in the data, it is kept in
  ``client.untagged_responses["EXPUNGE"] == [b'3']``.
* ``extra_uid``: one more ``(text, literal), b')'`` group with the extra UID.
* ``drop_after_bytes``: ``imaplib.IMAP4.abort`` (``socket error: EOF``) -- a
  literal cut short is not detected by imaplib itself, the next line read
  fails.
"""
from __future__ import annotations

import re
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["ScriptedImapServer", "parse_uid_set", "DEFAULT_CAPABILITIES"]

#: Capabilities announced by default (in the greeting and to CAPABILITY).
DEFAULT_CAPABILITIES: tuple[str, ...] = ("IMAP4rev1", "LITERAL+", "UIDPLUS", "UNSELECT")

FetchHook = Callable[[int, int, list[bytes]], "list[bytes] | bytes | None"]

_SYSTEM_FLAGS = r"\Answered \Flagged \Deleted \Seen \Draft"
_WRITE_COMMANDS = frozenset(
    {"STORE", "COPY", "MOVE", "EXPUNGE", "APPEND", "CREATE", "DELETE", "RENAME",
     "SUBSCRIBE", "UNSUBSCRIBE", "SETACL", "DELETEACL", "SETQUOTA"}
)
_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n?$")
_QUOTED = re.compile(r'"((?:\\.|[^"\\])*)"')
_UNESCAPE = re.compile(r"\\(.)")
_LITERAL_SPEC = re.compile(r"\{\d+\+?\}")
_ATOM = re.compile(r"[^ ()\"\r\n\[]+(?:\[[^\]]*\][^ ()\"\r\n]*)?")  # BODY.PEEK[HEADER.FIELDS (A B)]<0.9>
_FETCH_ITEM = re.compile(
    r"\s*(?P<name>BODY\.PEEK|BODY|BINARY\.PEEK|BINARY|BINARY\.SIZE)\[(?P<section>[^\]]*)\](?:<(?P<partial>\d+(?:\.\d+)?)>)?"
    r"|\s*(?P<atom>[A-Za-z0-9.]+)",
)


class _Dropped(Exception):
    """The connection was cut on purpose (``drop_after_bytes``)."""


class _Closed(Exception):
    """The client went away or the server is closing."""


class _Bad(Exception):
    """A command the server cannot parse/serve: answered with a tagged BAD."""


# --------------------------------------------------------------------------- helpers
def parse_uid_set(text: str, largest: int | None) -> list[tuple[int, int]]:
    """Parse an IMAP sequence set (``1:5,7,9:*``) into inclusive ``(lo, hi)`` ranges.

    ``*`` becomes ``largest`` (the highest UID / sequence number; with an empty
    mailbox ``*`` matches nothing).  ``a:b`` is normalised to ``lo <= hi``, which
    makes ``n:*`` include the last message even when it is below ``n``.
    Raises ``ValueError`` on bad syntax.
    """
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty element in set {text!r}")
        ends: list[int] = []
        pieces = part.split(":")
        if len(pieces) > 2:
            raise ValueError(f"bad range {part!r}")
        for p in pieces:
            if p == "*":
                if largest is None:
                    break
                ends.append(largest)
            elif p.isdigit() and int(p) > 0:
                ends.append(int(p))
            else:
                raise ValueError(f"bad number {p!r} in set {text!r}")
        else:
            lo, hi = min(ends), max(ends)
            ranges.append((lo, hi))
    return ranges


def _in_ranges(n: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= n <= hi for lo, hi in ranges)


def _split_header(raw: bytes) -> tuple[bytes, bytes]:
    """(header block including the blank line, body) of a message."""
    ends = [i + n for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    if not ends:
        return raw, b""
    cut = min(ends)
    return raw[:cut], raw[cut:]


def _header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header block into ``(lower-case name, raw field incl. folds)``."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields


def _imap_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tokenize(segments: list[bytes | str]) -> list[Any]:
    """Tokens of an IMAP command's arguments: atoms/strings as ``str``, lists for ``(...)``.

    ``segments`` alternates command text (``bytes``) and literal contents
    (``str`` after decoding), as read from the wire.
    """
    root: list[Any] = []
    stack = [root]
    for seg in segments:
        if isinstance(seg, str):  # a literal
            stack[-1].append(seg)
            continue
        text = seg.decode("utf-8", "surrogateescape")
        pos = 0
        while pos < len(text):
            ch = text[pos]
            if ch in " \r\n":
                pos += 1
            elif ch == "(":
                new: list[Any] = []
                stack[-1].append(new)
                stack.append(new)
                pos += 1
            elif ch == ")":
                if len(stack) == 1:
                    raise _Bad("unbalanced ')'")
                stack.pop()
                pos += 1
            elif ch == '"':
                m = _QUOTED.match(text, pos)
                if not m:
                    raise _Bad("unterminated quoted string")
                stack[-1].append(_UNESCAPE.sub(r"\1", m.group(1)))
                pos = m.end()
            elif ch == "{":
                m = _LITERAL_SPEC.match(text, pos)
                if not m:
                    raise _Bad("bad literal")
                pos = m.end()  # the literal itself follows as the next segment
            else:
                m = _ATOM.match(text, pos)
                if not m:
                    raise _Bad(f"unexpected {ch!r}")
                stack[-1].append(m.group(0))
                pos = m.end()
    if len(stack) != 1:
        raise _Bad("unbalanced '('")
    return root


class _FetchItem:
    """One requested FETCH item (parsed)."""

    def __init__(self, kind: str, section: str = "", partial: tuple[int, int | None] | None = None,
                 peek: bool = True) -> None:
        self.kind = kind  # UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY RFC822 RFC822.HEADER RFC822.TEXT SECTION
        self.section = section  # for SECTION: "", "HEADER", "TEXT", "HEADER.FIELDS (A B)", ...
        self.partial = partial
        self.peek = peek

    @property
    def is_body(self) -> bool:
        return self.kind in ("SECTION", "RFC822", "RFC822.HEADER", "RFC822.TEXT")

    @property
    def is_full(self) -> bool:
        return (self.kind == "SECTION" and self.section == "" and self.partial is None) or self.kind == "RFC822"


def _parse_fetch_items(text: str) -> list[_FetchItem]:
    text = text.strip()
    if text.upper() == "FAST":
        text = "(FLAGS INTERNALDATE RFC822.SIZE)"
    if text.startswith("("):
        if not text.endswith(")"):
            raise _Bad("unbalanced FETCH item list")
        text = text[1:-1]
    items: list[_FetchItem] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _FETCH_ITEM.match(text, pos)
        if not m:
            raise _Bad(f"bad FETCH items near {text[pos:pos + 30]!r}")
        pos = m.end()
        if m.group("name"):
            name = m.group("name").upper()
            if name.startswith("BINARY"):
                raise _Bad("BINARY is not supported by this scripted server")
            section = " ".join(m.group("section").upper().split())
            if not re.fullmatch(r"|HEADER|TEXT|HEADER\.FIELDS(\.NOT)? \([^()]*\)", section):
                raise _Bad(f"unsupported section [{section}]")
            partial = None
            if m.group("partial"):
                o, _, n = m.group("partial").partition(".")
                partial = (int(o), int(n) if n else None)
            items.append(_FetchItem("SECTION", section, partial, peek=name == "BODY.PEEK"))
        else:
            atom = m.group("atom").upper()
            if atom in ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODYSTRUCTURE", "BODY", "RFC822.HEADER"):
                items.append(_FetchItem(atom))
            elif atom in ("RFC822", "RFC822.TEXT"):
                items.append(_FetchItem(atom, peek=False))
            else:
                raise _Bad(f"unsupported FETCH item {atom}")
    if not items:
        raise _Bad("empty FETCH item list")
    return items


# --------------------------------------------------------------------------- server
class ScriptedImapServer:
    """A scripted, read-only IMAP4rev1 server on 127.0.0.1 (see the module docstring).

    Starts listening in the constructor; stop it with :meth:`close` or use it as
    a context manager.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        messages: Mapping[int, bytes] | None = None,
        *,
        uidvalidity: int = 1,
        uidnext: int | None = None,
        flags: Mapping[int, Iterable[str]] | None = None,
        users: Mapping[str, str] | None = None,
        capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
        mailbox: str = "INBOX",
        ssl_context: ssl.SSLContext | None = None,
        literal8_uids: Iterable[int] = (),
        nil_body_uids: Iterable[int] = (),
        missing_body_uids: Iterable[int] = (),
        fault_sections: str = "full",
        reorder_items: bool = False,
        interleave: bool = False,
        interleave_lines: Iterable[bytes] = (b"* 3 EXPUNGE", b"* 2 FETCH (FLAGS (\\Seen))"),
        extra_uid: int | None = None,
        extra_message: bytes = b"Subject: unrequested\r\n\r\nnot asked for\r\n",
        drop_after_bytes: int | None = None,
        drop_scope: str = "body",
        fetch_hook: FetchHook | None = None,
        bodystructures: Mapping[int, bytes] | None = None,
        internaldate: str = "01-Jan-2024 00:00:00 +0000",
        idle_timeout: float = 60.0,
    ) -> None:
        """Create and start the server.

        ``messages``: ``{uid: raw}`` (UIDs > 0; the sequence numbers follow UID
        order).  ``uidnext`` defaults to ``max(uid) + 1``.  ``flags`` gives
        initial flags per UID (e.g. ``{1: {"\\\\Seen"}}``).  ``users=None``
        accepts every LOGIN.  ``bodystructures`` overrides the BODYSTRUCTURE
        text per UID (default: one ``TEXT/PLAIN`` part).  The fault keywords
        are described in the module docstring.  ``idle_timeout``: seconds a
        connection may stay silent before the server closes it.
        """
        if fault_sections not in ("full", "all"):
            raise ValueError("fault_sections must be 'full' or 'all'")
        if drop_scope not in ("body", "any"):
            raise ValueError("drop_scope must be 'body' or 'any'")
        self.messages: dict[int, bytes] = dict(messages or {})
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        self.flags: dict[int, set[str]] = {u: set(f) for u, f in (flags or {}).items()}
        self.users: dict[str, str] | None = dict(users) if users is not None else None
        self.capabilities: list[str] = list(capabilities)
        self.mailbox = mailbox
        self.ssl_context = ssl_context
        self.literal8_uids: set[int] = set(literal8_uids)
        self.nil_body_uids: set[int] = set(nil_body_uids)
        self.missing_body_uids: set[int] = set(missing_body_uids)
        self.fault_sections = fault_sections
        self.reorder_items = reorder_items
        self.interleave = interleave
        self.interleave_lines: list[bytes] = list(interleave_lines)
        self.extra_uid = extra_uid
        self.extra_message = extra_message
        self.drop_after_bytes = drop_after_bytes
        self.drop_scope = drop_scope
        self.fetch_hook = fetch_hook
        self.bodystructures: dict[int, bytes] = dict(bodystructures or {})
        self.internaldate = internaldate
        self.idle_timeout = idle_timeout

        self.commands: list[str] = []
        self.logins: list[str] = []
        self.connections = 0
        self.drops = 0

        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"scripted-imap-{self.port}", daemon=True
        )
        self._accept_thread.start()

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port

    def command_names(self) -> list[str]:
        """The verbs of :attr:`commands` (``"UID FETCH"``, ``"EXAMINE"``, ...), upper-case."""
        out = []
        for line in list(self.commands):
            words = line.split()
            if not words:
                continue
            verb = words[0].upper()
            if verb == "UID" and len(words) > 1:
                verb = "UID " + words[1].upper()
            out.append(verb)
        return out

    def close(self) -> None:
        """Stop accepting, cut all connections and join every thread (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(5)
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    def __enter__(self) -> "ScriptedImapServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._closing.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, _addr = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    sock.setblocking(True)
                    with self._lock:
                        if self._closing.is_set():
                            sock.close()
                            return
                        self.connections += 1
                        self._conns.add(sock)
                        t = threading.Thread(
                            target=self._serve, args=(sock,), name=f"scripted-imap-conn-{self.port}", daemon=True
                        )
                        self._threads = [x for x in self._threads if x.is_alive()]
                        self._threads.append(t)
                    t.start()
        finally:
            sel.close()

    def _serve(self, sock: socket.socket) -> None:
        conn_sock: socket.socket = sock
        try:
            sock.settimeout(self.idle_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn_sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._conns.discard(sock)
                    self._conns.add(conn_sock)
            session = _Session(self, conn_sock)
            try:
                session.run()
            finally:
                session.rfile.close()  # else the socket's fd outlives close() until GC
        except (_Closed, _Dropped, OSError, ssl.SSLError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn_sock)
                self._conns.discard(sock)
            for s in {conn_sock, sock}:
                try:
                    s.close()
                except OSError:
                    pass

    # ------------------------------------------------------------------ mailbox helpers
    def _uidnext(self, uids: list[int]) -> int:
        if self.uidnext is not None:
            return self.uidnext
        return (max(uids) + 1) if uids else 1

    def _log(self, line: str) -> None:
        with self._lock:
            self.commands.append(line)


class _Session:
    """One client connection."""

    def __init__(self, server: ScriptedImapServer, sock: socket.socket) -> None:
        self.srv = server
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.state = "NONAUTH"
        self.readonly = True
        self.uids: list[int] = []  # the selected mailbox's view, seq n = uids[n-1]
        self.fetch_bytes = 0  # FETCH output counted for drop_after_bytes
        self.out = bytearray()  # queued response lines

    # ------------------------------------------------------------------ I/O
    def send(self, data: bytes) -> None:
        """Send pending lines and ``data`` now."""
        if self.srv._closing.is_set():
            raise _Closed()
        if self.out:
            data, self.out = bytes(self.out) + data, bytearray()
        if data:
            self.sock.sendall(data)

    def line(self, text: str | bytes) -> None:
        """Queue one response line (sent with the next :meth:`send`/:meth:`flush`)."""
        self.out += (text.encode("utf-8") if isinstance(text, str) else text) + b"\r\n"

    def flush(self) -> None:
        self.send(b"")

    def send_fetch_data(self, data: bytes, counted: bool) -> None:
        """Send FETCH output, cutting the connection when ``drop_after_bytes`` is reached."""
        self.flush()
        limit = self.srv.drop_after_bytes
        if counted and limit is not None:
            room = limit - self.fetch_bytes
            if len(data) >= room:
                if room > 0:
                    self.send(data[:room])
                self.fetch_bytes = limit
                with self.srv._lock:
                    self.srv.drops += 1
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise _Dropped()
            self.fetch_bytes += len(data)
        self.send(data)

    def read_command(self) -> tuple[str, list[bytes | str], str] | None:
        """Read one command: (tag, segments, log text); None at EOF."""
        segments: list[bytes | str] = []
        log_parts: list[str] = []
        while True:
            try:
                raw = self.rfile.readline(1 << 20)
            except (socket.timeout, TimeoutError):
                raise _Closed() from None
            if not raw:
                if segments:
                    raise _Closed()
                return None
            m = _LITERAL_AT_END.search(raw)
            if not m:
                segments.append(raw)
                log_parts.append(raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape"))
                break
            head = raw[: m.start()]
            segments.append(head + m.group(0).rstrip(b"\r\n"))
            size = int(m.group(1))
            if not m.group(2):
                self.line("+ Ready for literal data")
                self.flush()
            data = self.rfile.read(size)
            if len(data) < size:
                raise _Closed()
            text = data.decode("utf-8", "surrogateescape")
            segments.append(text)
            log_parts.append(head.decode("utf-8", "surrogateescape") + _imap_quote(text))
        first = segments[0]
        assert isinstance(first, bytes)
        tag, _, rest = first.partition(b" ")
        segments[0] = rest
        log = "".join(log_parts)
        log = log.split(" ", 1)[1] if " " in log else ""
        return tag.decode("ascii", "replace"), segments, log

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        caps = " ".join(self.srv.capabilities)
        self.line(f"* OK [CAPABILITY {caps}] Scripted IMAP server ready.")
        while True:
            self.flush()
            cmd = self.read_command()
            if cmd is None:
                return
            tag, segments, log = cmd
            if not tag or tag == "*" or tag == "+":
                self.line("* BAD Error in IMAP command received by server.")
                continue
            self.srv._log(log)
            try:
                tokens = _tokenize(segments)
                if not tokens or not isinstance(tokens[0], str):
                    raise _Bad("missing command")
                name = tokens[0].upper()
                if name == "UID":
                    if len(tokens) < 2 or not isinstance(tokens[1], str):
                        raise _Bad("UID needs a command")
                    sub = tokens[1].upper()
                    if sub in _WRITE_COMMANDS:
                        self.refuse(tag, f"UID {sub}")
                        continue
                    if sub not in ("FETCH", "SEARCH"):
                        raise _Bad(f"unknown UID command {sub}")
                    self.need_selected()
                    handler = self.cmd_fetch if sub == "FETCH" else self.cmd_search
                    handler(tag, tokens[2:], segments, by_uid=True)
                    continue
                if name in _WRITE_COMMANDS:
                    self.refuse(tag, name)
                    continue
                method = getattr(self, "cmd_" + name.lower(), None)
                if method is None:
                    raise _Bad(f"unknown command {name}")
                if name in ("FETCH", "SEARCH"):
                    self.need_selected()
                    method(tag, tokens[1:], segments, by_uid=False)
                elif method(tag, tokens[1:]) == "logout":
                    self.flush()
                    return
            except _Bad as exc:
                self.line(f"{tag} BAD {exc}")

    def need_auth(self) -> None:
        if self.state == "NONAUTH":
            raise _Bad("command not allowed before LOGIN")

    def need_selected(self) -> None:
        if self.state != "SELECTED":
            raise _Bad("no mailbox selected")

    def refuse(self, tag: str, name: str) -> None:
        self.line(f"{tag} NO [CANNOT] {name} refused: the scripted server is read-only")

    # ------------------------------------------------------------------ commands
    def cmd_capability(self, tag: str, args: list[Any]) -> None:
        self.line("* CAPABILITY " + " ".join(self.srv.capabilities))
        self.line(f"{tag} OK Capability completed.")

    def cmd_noop(self, tag: str, args: list[Any]) -> None:
        if self.state == "SELECTED":
            new = sorted(u for u in self.srv.messages if not self.uids or u > self.uids[-1])
            if new:
                self.uids.extend(new)
                self.line(f"* {len(self.uids)} EXISTS")
        self.line(f"{tag} OK NOOP completed.")

    def cmd_check(self, tag: str, args: list[Any]) -> None:
        self.need_selected()
        self.cmd_noop(tag, args)

    def cmd_logout(self, tag: str, args: list[Any]) -> str:
        self.line("* BYE Logging out")
        self.line(f"{tag} OK Logout completed.")
        return "logout"

    def cmd_login(self, tag: str, args: list[Any]) -> None:
        if self.state != "NONAUTH":
            raise _Bad("already logged in")
        if len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise _Bad("LOGIN needs user and password")
        user, password = args
        users = self.srv.users
        if users is not None and users.get(user) != password:
            self.line(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
            return
        with self.srv._lock:
            self.srv.logins.append(user)
        self.state = "AUTH"
        caps = " ".join(self.srv.capabilities)
        self.line(f"{tag} OK [CAPABILITY {caps}] Logged in")

    def cmd_authenticate(self, tag: str, args: list[Any]) -> None:
        self.line(f"{tag} NO [CANNOT] use LOGIN")

    def _mailbox_arg(self, args: list[Any]) -> str:
        if len(args) < 1 or not isinstance(args[0], str):
            raise _Bad("mailbox name expected")
        return args[0]

    def _is_our_mailbox(self, name: str) -> bool:
        if name.upper() == "INBOX" and self.srv.mailbox.upper() == "INBOX":
            return True
        return name == self.srv.mailbox

    def cmd_select(self, tag: str, args: list[Any], readonly: bool = False) -> None:
        self.need_auth()
        name = self._mailbox_arg(args)
        self.state = "AUTH"  # a failed SELECT leaves no mailbox selected
        self.uids = []
        if not self._is_our_mailbox(name):
            self.line(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {name}")
            return
        srv = self.srv
        self.uids = sorted(srv.messages)
        self.readonly = readonly
        self.state = "SELECTED"
        self.line(f"* FLAGS ({_SYSTEM_FLAGS})")
        if readonly:
            self.line("* OK [PERMANENTFLAGS ()] Read-only mailbox.")
        else:
            self.line(f"* OK [PERMANENTFLAGS ({_SYSTEM_FLAGS} \\*)] Flags permitted.")
        self.line(f"* {len(self.uids)} EXISTS")
        self.line("* 0 RECENT")
        unseen = [i for i, u in enumerate(self.uids, 1) if "\\Seen" not in srv.flags.get(u, ())]
        if unseen:
            self.line(f"* OK [UNSEEN {unseen[0]}] First unseen.")
        self.line(f"* OK [UIDVALIDITY {srv.uidvalidity}] UIDs valid")
        self.line(f"* OK [UIDNEXT {srv._uidnext(self.uids)}] Predicted next UID")
        if readonly:
            self.line(f"{tag} OK [READ-ONLY] Examine completed.")
        else:
            self.line(f"{tag} OK [READ-WRITE] Select completed.")

    def cmd_examine(self, tag: str, args: list[Any]) -> None:
        self.cmd_select(tag, args, readonly=True)

    def cmd_close(self, tag: str, args: list[Any]) -> None:
        self.need_selected()
        self.state, self.uids = "AUTH", []
        self.line(f"{tag} OK Close completed.")

    cmd_unselect = cmd_close

    def cmd_list(self, tag: str, args: list[Any]) -> None:
        self.need_auth()
        if len(args) != 2:
            raise _Bad("LIST needs reference and pattern")
        pattern = str(args[1])
        name = self.srv.mailbox
        regex = "^" + re.escape(pattern).replace(r"\*", ".*").replace("%", "[^/]*") + "$"
        if pattern == "":
            self.line('* LIST (\\Noselect) "/" ""')
        elif re.match(regex, name, re.I if name.upper() == "INBOX" else 0):
            self.line(f'* LIST (\\HasNoChildren) "/" {_imap_quote(name)}')
        self.line(f"{tag} OK List completed.")

    def cmd_lsub(self, tag: str, args: list[Any]) -> None:
        self.need_auth()
        self.line(f"{tag} OK Lsub completed.")

    def cmd_status(self, tag: str, args: list[Any]) -> None:
        self.need_auth()
        name = self._mailbox_arg(args)
        if len(args) != 2 or not isinstance(args[1], list):
            raise _Bad("STATUS needs a mailbox and an item list")
        if not self._is_our_mailbox(name):
            self.line(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {name}")
            return
        srv = self.srv
        uids = sorted(srv.messages)
        values = {
            "MESSAGES": len(uids),
            "RECENT": 0,
            "UIDNEXT": srv._uidnext(uids),
            "UIDVALIDITY": srv.uidvalidity,
            "UNSEEN": sum(1 for u in uids if "\\Seen" not in srv.flags.get(u, ())),
        }
        out = []
        for item in args[1]:
            key = str(item).upper()
            if key not in values:
                raise _Bad(f"unsupported STATUS item {key}")
            out.append(f"{key} {values[key]}")
        self.line(f"* STATUS {_imap_quote(name)} ({' '.join(out)})")
        self.line(f"{tag} OK Status completed.")

    # ------------------------------------------------------------------ SEARCH
    def cmd_search(self, tag: str, args: list[Any], segments: list[bytes | str], *, by_uid: bool) -> None:
        keys = list(args)
        if keys and isinstance(keys[0], str) and keys[0].upper() == "CHARSET":
            if len(keys) < 2:
                raise _Bad("CHARSET needs a name")
            keys = keys[2:]
        if not keys:
            raise _Bad("missing search criteria")
        result = []
        for seq, uid in enumerate(self.uids, 1):
            if uid not in self.srv.messages:
                continue
            pos = 0
            ok = True
            while pos < len(keys):
                match, pos = self._search_key(keys, pos, seq, uid)
                ok = ok and match
            if ok:
                result.append(uid if by_uid else seq)
        self.line("* SEARCH" + "".join(f" {n}" for n in result))
        self.line(f"{tag} OK Search completed.")

    def _search_key(self, keys: list[Any], pos: int, seq: int, uid: int) -> tuple[bool, int]:
        key = keys[pos]
        if isinstance(key, list):
            ok, p = True, 0
            while p < len(key):
                m, p = self._search_key(key, p, seq, uid)
                ok = ok and m
            return ok, pos + 1
        word = str(key).upper()
        flags = self.srv.flags.get(uid, set())
        simple = {
            "ALL": True,
            "SEEN": "\\Seen" in flags, "UNSEEN": "\\Seen" not in flags,
            "FLAGGED": "\\Flagged" in flags, "UNFLAGGED": "\\Flagged" not in flags,
            "DELETED": "\\Deleted" in flags, "UNDELETED": "\\Deleted" not in flags,
            "ANSWERED": "\\Answered" in flags, "UNANSWERED": "\\Answered" not in flags,
            "DRAFT": "\\Draft" in flags, "UNDRAFT": "\\Draft" not in flags,
            "RECENT": False, "NEW": False, "OLD": True,
        }
        if word in simple:
            return simple[word], pos + 1
        if word == "NOT":
            if pos + 1 >= len(keys):
                raise _Bad("NOT needs a key")
            m, p = self._search_key(keys, pos + 1, seq, uid)
            return not m, p
        if word == "OR":
            if pos + 2 >= len(keys):
                raise _Bad("OR needs two keys")
            m1, p = self._search_key(keys, pos + 1, seq, uid)
            m2, p = self._search_key(keys, p, seq, uid)
            return m1 or m2, p
        if word == "UID":
            if pos + 1 >= len(keys):
                raise _Bad("UID needs a set")
            ranges = self._set(str(keys[pos + 1]), by_uid=True)
            return _in_ranges(uid, ranges), pos + 2
        if re.fullmatch(r"[0-9*:,]+", word):
            return _in_ranges(seq, self._set(word, by_uid=False)), pos + 1
        raise _Bad(f"unsupported search key {word}")

    def _set(self, text: str, *, by_uid: bool) -> list[tuple[int, int]]:
        largest = (self.uids[-1] if by_uid else len(self.uids)) if self.uids else None
        try:
            return parse_uid_set(text, largest)
        except ValueError as exc:
            raise _Bad(str(exc)) from None

    # ------------------------------------------------------------------ FETCH
    def cmd_fetch(self, tag: str, args: list[Any], segments: list[bytes | str], *, by_uid: bool) -> None:
        if any(isinstance(s, str) for s in segments):
            raise _Bad("literals are not allowed in FETCH")
        text = b"".join(s for s in segments if isinstance(s, bytes)).decode("utf-8", "surrogateescape").strip()
        parts = text.split(None, 3 if by_uid else 2)
        # parts: ["UID",] "FETCH", <set>, <items>
        if by_uid:
            if len(parts) != 4:
                raise _Bad("UID FETCH needs a set and items")
            set_text, items_text = parts[2], parts[3]
        else:
            if len(parts) != 3:
                raise _Bad("FETCH needs a set and items")
            set_text, items_text = parts[1], parts[2]
        ranges = self._set(set_text, by_uid=by_uid)
        items = _parse_fetch_items(items_text)
        if by_uid and not any(i.kind == "UID" for i in items):
            items.insert(0, _FetchItem("UID"))
        srv = self.srv
        counted = srv.drop_scope == "any" or any(i.is_full for i in items)

        targets: list[tuple[int, int]] = []  # (seq, uid)
        for seq, uid in enumerate(self.uids, 1):
            if uid in srv.messages and _in_ranges(uid if by_uid else seq, ranges):
                targets.append((seq, uid))

        extra: tuple[int, int] | None = None
        if by_uid and srv.extra_uid is not None and srv.extra_uid not in {u for _, u in targets}:
            eu = srv.extra_uid
            seq = self.uids.index(eu) + 1 if eu in self.uids else len(self.uids) + 1
            extra = (seq, eu)

        responses = 0

        def after_first() -> None:
            if by_uid and srv.interleave:
                for ln in srv.interleave_lines:
                    self.send_fetch_data(ln + b"\r\n", counted)
            if extra is not None:
                self.send_fetch_data(self.fetch_response(extra[0], extra[1], items), counted)

        for seq, uid in targets:
            self.send_fetch_data(self.fetch_response(seq, uid, items), counted)
            responses += 1
            if responses == 1:
                after_first()
        if responses == 0:
            after_first()
        self.line(f"{tag} OK Fetch completed.")

    def fetch_response(self, seq: int, uid: int, items: list[_FetchItem]) -> bytes:
        """Encode one ``* seq FETCH (...)`` response with the configured faults applied."""
        srv = self.srv
        raw = srv.messages.get(uid)
        if raw is None:
            raw = srv.extra_message
        header, body = _split_header(raw)
        encoded: list[bytes] = []
        set_seen = False
        has_flags = any(i.kind == "FLAGS" for i in items)
        for item in items:
            if item.is_body and not item.peek and not self.readonly:
                flags = srv.flags.setdefault(uid, set())
                if "\\Seen" not in flags:
                    flags.add("\\Seen")
                    set_seen = True
        for item in items:
            enc = self.encode_item(item, uid, raw, header, body)
            if enc is not None:
                encoded.append(enc)
        if set_seen and not has_flags:
            encoded.append(self.flags_item(uid))
        if srv.reorder_items:
            encoded.reverse()
            if seq % 2 == 1 and not has_flags and not set_seen and len(encoded) >= 1:
                encoded.insert(max(1, len(encoded) - 1), self.flags_item(uid))
        if srv.fetch_hook is not None:
            out = srv.fetch_hook(seq, uid, list(encoded))
            if isinstance(out, (bytes, bytearray)):
                return bytes(out)
            if out is not None:
                encoded = list(out)
        return b"* %d FETCH (" % seq + b" ".join(encoded) + b")\r\n"

    def flags_item(self, uid: int) -> bytes:
        flags = sorted(self.srv.flags.get(uid, ()))
        return ("FLAGS (" + " ".join(flags) + ")").encode("utf-8")

    def bodystructure(self, uid: int, body: bytes, extensible: bool) -> bytes:
        custom = self.srv.bodystructures.get(uid)
        if custom is not None:
            return custom
        lines = body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)
        base = b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" %d %d' % (len(body), lines)
        return base + (b" NIL NIL NIL NIL)" if extensible else b")")

    def encode_item(self, item: _FetchItem, uid: int, raw: bytes, header: bytes, body: bytes) -> bytes | None:
        srv = self.srv
        kind = item.kind
        if kind == "UID":
            return b"UID %d" % uid
        if kind == "FLAGS":
            return self.flags_item(uid)
        if kind == "INTERNALDATE":
            return b'INTERNALDATE "' + srv.internaldate.encode("ascii") + b'"'
        if kind == "RFC822.SIZE":
            return b"RFC822.SIZE %d" % len(raw)
        if kind == "BODYSTRUCTURE":
            return b"BODYSTRUCTURE " + self.bodystructure(uid, body, True)
        if kind == "BODY":
            return b"BODY " + self.bodystructure(uid, body, False)
        # body sections
        if kind == "RFC822":
            name, data = b"RFC822", raw
        elif kind == "RFC822.HEADER":
            name, data = b"RFC822.HEADER", header
        elif kind == "RFC822.TEXT":
            name, data = b"RFC822.TEXT", body
        else:
            sec = item.section
            if sec == "":
                data = raw
            elif sec == "HEADER":
                data = header
            elif sec == "TEXT":
                data = body
            else:
                names = {n.lower().encode("utf-8") for n in re.findall(r"[^\s()]+", sec.split("(", 1)[1])}
                negate = sec.startswith("HEADER.FIELDS.NOT")
                data = b"".join(f for n, f in _header_fields(header) if (n in names) != negate) + b"\r\n"
            name = b"BODY[" + sec.encode("utf-8") + b"]"
            if item.partial is not None:
                start, count = item.partial
                data = data[start:] if count is None else data[start:start + count]
                name += b"<%d>" % start
        applies = srv.fault_sections == "all" or item.is_full
        if applies and uid in srv.missing_body_uids:
            return None
        if applies and uid in srv.nil_body_uids:
            return name + b" NIL"
        if applies and uid in srv.literal8_uids:
            return name + b" ~{%d}\r\n" % len(data) + data
        return name + b" {%d}\r\n" % len(data) + data
