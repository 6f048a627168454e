"""Wiring the test Dovecot to a vmailkit store."""
from __future__ import annotations

import hashlib
import imaplib
import poplib
import ssl
from pathlib import Path

from vmailkit import Store, make_account


def port_for(server, protocol: str, security: str) -> int:
    if protocol == "imap":
        return server.imaps_port if security == "ssl" else server.imap_port
    return server.pop3s_port if security == "ssl" else server.pop3_port


def add_account(store: Store, server, mailuser, *, name: str, protocol: str = "imap", security: str = "ssl",
                kind: str = "general", owner: str | None = None, ca: bool = True, password_env: str | None = None,
                folder: str | None = None):
    """Add an account pointing at ``mailuser`` on ``server``; the password is passed in memory unless
    ``password_env`` names an environment variable."""
    acc = make_account(
        name, kind=kind, owner=owner, protocol=protocol, host=server.host, port=port_for(server, protocol, security),
        security=security, address=mailuser.address, login=mailuser.name,
        secret=f"env:{password_env}" if password_env else "prompt:",
        ca_file=str(server.ca_file) if (ca and server.ca_file) else None, folder=folder,
    )
    return store.add_account(acc)


def server_bytes_imap(server, mailuser, folder: str = "INBOX") -> dict[int, bytes]:
    """UID -> exact BODY.PEEK[] bytes as the server sends them, read with plain imaplib."""
    c = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=ssl.create_default_context(cafile=server.ca_file))
    try:
        c.login(mailuser.name, mailuser.password)
        c.select(f'"{folder}"', readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                uid = int(item[0].split(b"UID ")[1].split()[0])
                out[uid] = item[1]
        return out
    finally:
        c.logout()


def server_flags_imap(server, mailuser) -> dict[int, bytes]:
    c = imaplib.IMAP4_SSL(server.host, server.imaps_port, ssl_context=ssl.create_default_context(cafile=server.ca_file))
    try:
        c.login(mailuser.name, mailuser.password)
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
        return {int(d.split(b"UID ")[1].split()[0]): d for d in data if d}
    finally:
        c.logout()


def server_bytes_pop3(server, mailuser) -> dict[str, bytes]:
    """UIDL -> bytes as RETR sends them (dot-unstuffed, CRLF line ends)."""
    old_limit = poplib._MAXLINE
    poplib._MAXLINE = 10 ** 8  # this independent reader only; restored below
    c = poplib.POP3_SSL(server.host, server.pop3s_port, context=ssl.create_default_context(cafile=server.ca_file))
    try:
        c.user(mailuser.name)
        c.pass_(mailuser.password)
        _, lines, _ = c.uidl()
        out = {}
        for line in lines:
            num, uidl = line.decode().split()
            _, body, _ = c.retr(int(num))
            out[uidl] = b"\r\n".join(body) + b"\r\n"
        return out
    finally:
        c.quit()
        poplib._MAXLINE = old_limit


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(db: Path):
    """The bytes of every file vmailkit keeps for the database ``db``: the file, its WAL and the
    full-text index beside it (a secret must be in none of them)."""
    for p in Path(db).parent.glob(Path(db).name + "*"):
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))):
            if f.is_file():
                yield f.read_bytes()
