"""A TCP proxy on 127.0.0.1 that cuts connections after N bytes server -> client.

It forwards bytes only (no protocol knowledge), so it works in front of plain,
STARTTLS and implicit-TLS ports alike (the client verifies the real server's
certificate through it; give the client the proxy's port and the usual host
``127.0.0.1``)::

    with CutProxy(dovecot.host, dovecot.imap_port, cut_after_bytes=2000) as proxy:
        c = imaplib.IMAP4(proxy.host, proxy.port)   # greeting, LOGIN, ... pass
        c.uid("FETCH", "1", "(BODY.PEEK[])")          # imaplib.IMAP4.abort: EOF
        proxy.cut_count                               # 1
        proxy.cut_after_bytes = None                  # the next connection is not cut

Counting is per connection: every new connection may receive
``cut_after_bytes`` bytes from the server; when the next chunk would reach the
limit, only the bytes up to the limit are forwarded and both sides are closed
at once (the client sees EOF -- or, with ``reset=True``, a TCP RST:
``ConnectionResetError``).  ``cut_after_bytes`` is read for every chunk, so a
test may change it at any time (``None``: never cut; ``0``: cut before the
first server byte).  Client -> server bytes are never counted nor cut.

Attributes: ``host``, ``port``, ``target_host``, ``target_port``,
``cut_after_bytes``, ``reset``, ``connections`` (accepted connections),
``cut_count`` (connections cut), ``connect_failures`` (the target refused; the
client connection is then closed at once), ``bytes_to_client`` /
``bytes_to_server`` (totals over all connections), ``active`` (connections
open now).  :meth:`close` (or leaving the ``with`` block) stops accepting,
closes every connection and joins all threads.
"""
from __future__ import annotations

import selectors
import socket
import struct
import threading

__all__ = ["CutProxy"]

_CHUNK = 64 * 1024


class _Pair:
    """The two sockets of one proxied connection."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.server: socket.socket | None = None
        self.sent_down = 0
        self.cut = False


class CutProxy:
    """Forward 127.0.0.1:<port> to ``target_host:target_port``, cutting after N bytes (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(
        self,
        target_host: str,
        target_port: int,
        cut_after_bytes: int | None = None,
        *,
        reset: bool = False,
        connect_timeout: float = 10.0,
    ) -> None:
        """Create and start the proxy (listening on a free port of 127.0.0.1).

        ``cut_after_bytes``: bytes server -> client allowed per connection
        (``None``: never cut).  ``reset``: cut with a TCP RST instead of a FIN.
        ``connect_timeout``: seconds to wait for the target per connection.
        """
        if cut_after_bytes is not None and cut_after_bytes < 0:
            raise ValueError("cut_after_bytes must be >= 0 or None")
        self.target_host = target_host
        self.target_port = int(target_port)
        self.cut_after_bytes = cut_after_bytes
        self.reset = reset
        self.connect_timeout = connect_timeout

        self.connections = 0
        self.cut_count = 0
        self.connect_failures = 0
        self.bytes_to_client = 0
        self.bytes_to_server = 0

        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._pairs: set[_Pair] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((self.host, 0))
        self._listener.listen(32)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"cutproxy-{self.port}", daemon=True)
        self._accept_thread.start()

    # ------------------------------------------------------------------ public
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to connect the client to."""
        return self.host, self.port

    @property
    def active(self) -> int:
        """Number of proxied connections currently open."""
        with self._lock:
            return len(self._pairs)

    def close(self) -> None:
        """Stop accepting, close every connection and join all threads (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accept_thread.join(5)
        with self._lock:
            pairs = list(self._pairs)
            threads = list(self._threads)
        for pair in pairs:
            for s in (pair.client, pair.server):
                if s is not None:
                    _shutdown(s, socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    def __enter__(self) -> "CutProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _spawn(self, target, *args) -> threading.Thread:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=target, args=args, name=f"cutproxy-{self.port}-conn", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()
        return t

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
                        client, _addr = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    client.setblocking(True)
                    pair = _Pair(client)
                    with self._lock:
                        if self._closing.is_set():
                            client.close()
                            return
                        self.connections += 1
                        self._pairs.add(pair)
                    self._spawn(self._handle, pair)
        finally:
            sel.close()

    def _handle(self, pair: _Pair) -> None:
        """Connect to the target, pump both directions, close both sockets."""
        try:
            try:
                server = socket.create_connection((self.target_host, self.target_port), timeout=self.connect_timeout)
            except OSError:
                with self._lock:
                    self.connect_failures += 1
                return
            server.settimeout(None)
            pair.server = server
            if self._closing.is_set():
                return
            for s in (pair.client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up = self._spawn(self._pump_up, pair)
            self._pump_down(pair)
            up.join()
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for s in (pair.client, pair.server):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _pump_up(self, pair: _Pair) -> None:
        """Client -> server until EOF, then half-close the server side."""
        assert pair.server is not None
        try:
            while True:
                data = pair.client.recv(_CHUNK)
                if not data or pair.cut:
                    break
                with self._lock:  # counted before sending, so a client that got the answer sees it
                    self.bytes_to_server += len(data)
                pair.server.sendall(data)
        except OSError:
            pass
        if not pair.cut:
            _shutdown(pair.server, socket.SHUT_WR)

    def _pump_down(self, pair: _Pair) -> None:
        """Server -> client, counting bytes and cutting at ``cut_after_bytes``."""
        server = pair.server
        assert server is not None
        try:
            while True:
                limit = self.cut_after_bytes
                if limit is not None and pair.sent_down >= limit:
                    self._cut(pair)
                    return
                data = server.recv(_CHUNK)
                if not data:
                    break
                limit = self.cut_after_bytes
                if limit is not None and pair.sent_down + len(data) >= limit:
                    part = data[: max(0, limit - pair.sent_down)]
                    pair.sent_down += len(part)
                    with self._lock:
                        self.bytes_to_client += len(part)
                    if part:
                        pair.client.sendall(part)
                    self._cut(pair)
                    return
                pair.sent_down += len(data)
                with self._lock:  # counted before sending (see _pump_up)
                    self.bytes_to_client += len(data)
                pair.client.sendall(data)
        except OSError:
            # either side failed: end the whole connection
            _shutdown(pair.client, socket.SHUT_RDWR)
            _shutdown(server, socket.SHUT_RDWR)
            return
        # the server closed: pass the EOF on; the up pump ends when the client closes
        _shutdown(pair.client, socket.SHUT_WR)

    def _cut(self, pair: _Pair) -> None:
        """Close both sides abruptly (FIN, or RST with ``reset``); wakes the up pump."""
        pair.cut = True
        with self._lock:
            self.cut_count += 1
        assert pair.server is not None
        if self.reset:
            for s in (pair.client, pair.server):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            # SHUT_RD wakes the up pump without sending anything; close() then sends the RST
            _shutdown(pair.client, socket.SHUT_RD)
            _shutdown(pair.server, socket.SHUT_RD)
        else:
            _shutdown(pair.client, socket.SHUT_RDWR)
            _shutdown(pair.server, socket.SHUT_RDWR)


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass
