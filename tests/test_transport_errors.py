"""Failures in plain words: host not found, refused, silent server, protocol garbage (no Dovecot needed)."""
from __future__ import annotations

import socket
import threading

import pytest

from vmailkit import HostError, MailTimeout, ProtocolError, make_account
from vmailkit.sync import connect


def account(protocol: str, port: int, host: str = "127.0.0.1", security: str = "plain"):
    return make_account("acc", kind="general", protocol=protocol, host=host, port=port, security=security,
                        address="a@example.test", secret="prompt:")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """Accepts connections and answers with ``greeting`` (or stays silent when None)."""

    def __init__(self, greeting: bytes | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting is not None:
                conn.sendall(self.greeting)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_host_not_found(protocol):
    with pytest.raises(HostError) as info:
        connect(account(protocol, 993, host="mail.nonexistent.invalid"), {"acc": "pw"}, timeout=5)
    assert info.value.reason == "host" and "not found" in str(info.value) and "acc" in str(info.value)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_connection_refused(protocol):
    with pytest.raises(HostError) as info:
        connect(account(protocol, free_port()), {"acc": "pw"}, timeout=5)
    assert "refused" in str(info.value)


@pytest.mark.parametrize("protocol,security", [("imap", "plain"), ("pop3", "plain"), ("imap", "ssl"), ("pop3", "ssl")])
def test_silent_server_times_out(protocol, security):
    server = FakeServer(greeting=None)
    try:
        with pytest.raises(MailTimeout) as info:
            connect(account(protocol, server.port, security=security), {"acc": "pw"}, timeout=0.5)
        assert info.value.reason == "timeout" and "did not answer in time" in str(info.value)
    finally:
        server.close()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_garbage_greeting_is_a_protocol_error(protocol):
    server = FakeServer(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        with pytest.raises(ProtocolError) as info:
            connect(account(protocol, server.port), {"acc": "pw"}, timeout=2)
        assert info.value.reason == "protocol" and "right port and protocol" in str(info.value)
    finally:
        server.close()
