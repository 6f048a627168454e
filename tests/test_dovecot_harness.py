"""Proves the private Dovecot harness (tests/dovecot.py) with stdlib clients only.

What Dovecot 2.3 sends for messages that ``deliver()`` wrote byte-for-byte into
the Maildir (checked below):

* IMAP ``BODY[]``/``RFC822.SIZE``: every bare LF becomes CRLF; existing CRLF
  and bare CR are sent unchanged (``b"x\\r\\r\\n"`` stays); a missing final
  newline is *not* added; NUL bytes are replaced by 0x80; 8-bit bytes pass.
* POP3 ``RETR``: the same LF->CRLF conversion (plus dot-stuffing), NUL bytes
  are kept, and a message without a final newline gets a CRLF before the
  terminating ``.`` (so the transfer is 2 bytes longer than ``LIST`` says).
* POP3 ``UIDL`` is the IMAP UID + UIDVALIDITY as 8 *lower-case* hex digits
  each (``pop3_uidl_format = %08Xu%08Xv``; Dovecot's %X is lower-case), so
  it changes with UIDVALIDITY.
* A failed login takes ~0.5s even with ``auth_failure_delay = 0``: Dovecot
  2.3's auth process flushes failures on a 500 ms timer.
"""
from __future__ import annotations

import imaplib
import os
import poplib
import re
import socket
import ssl

import pytest

from dovecot import DovecotServer, _pid_alive

pytestmark = pytest.mark.dovecot


def crlf(raw: bytes) -> bytes:
    """What Dovecot serves for a Maildir file: bare LF -> CRLF, the rest as is."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


def ctx_for(server: DovecotServer) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    return ctx


def fetch_all(server: DovecotServer, user, folder: str = "INBOX") -> dict[int, bytes]:
    c = server.imap(user.name, user.password)
    try:
        typ, _ = c.select(f'"{folder}"', readonly=True)
        assert typ == "OK"
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        out = {}
        for item in data:
            if isinstance(item, tuple):
                out[int(re.search(rb"UID (\d+)", item[0]).group(1))] = item[1]
        return out
    finally:
        c.logout()


def imap_capabilities(conn: imaplib.IMAP4) -> set[str]:
    typ, data = conn.capability()
    assert typ == "OK"
    return set(data[0].decode().upper().split())


# ------------------------------------------------------------------ TLS


def test_imaps_verifies_with_ca_file(dovecot, mailuser):
    c = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ctx_for(dovecot))
    try:
        cert = c.sock.getpeercert()
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
        assert ("DNS", "localhost") in cert["subjectAltName"]
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert c.login(mailuser.name, mailuser.password)[0] == "OK"
    finally:
        c.logout()
    # the DNS name in the SAN verifies too
    c = imaplib.IMAP4_SSL("localhost", dovecot.imaps_port, ssl_context=ctx_for(dovecot))
    c.logout()


def test_tls_fails_without_ca_file_or_for_a_wrong_host(dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=ssl.create_default_context())
    with socket.create_connection((dovecot.host, dovecot.imaps_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="[Hh]ostname mismatch"):
            ctx_for(dovecot).wrap_socket(raw, server_hostname="mail.example.org")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_below_1_2_is_refused(dovecot):
    ctx = ctx_for(dovecot)
    try:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, OSError)):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ctx)


def test_imap_starttls(dovecot, mailuser):
    c = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert "STARTTLS" in imap_capabilities(c)
        assert c.starttls(ssl_context=ctx_for(dovecot))[0] == "OK"
        assert isinstance(c.sock, ssl.SSLSocket)
        assert c.login(mailuser.name, mailuser.password)[0] == "OK"
    finally:
        c.logout()


def test_pop3_stls_and_pop3s(dovecot, mailuser):
    p = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert "STLS" in p.capa()
        p.stls(context=ctx_for(dovecot))
        assert isinstance(p.sock, ssl.SSLSocket)
        p.user(mailuser.name)
        assert p.pass_(mailuser.password).startswith(b"+OK")
        assert p.stat() == (0, 0)
    finally:
        p.quit()
    p = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=ctx_for(dovecot), timeout=10)
    try:
        p.user(mailuser.name)
        assert p.pass_(mailuser.password).startswith(b"+OK")
    finally:
        p.quit()


def test_plain_login_without_tls_and_bad_password(dovecot, mailuser):
    c = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        assert "LOGINDISABLED" not in imap_capabilities(c)
        assert c.login(mailuser.name, mailuser.password)[0] == "OK"
    finally:
        c.logout()
    c = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            c.login(mailuser.name, mailuser.password + "x")
    finally:
        c.shutdown()


def test_notls_server_does_not_offer_starttls(dovecot_notls):
    user = dovecot_notls.new_user()
    assert dovecot_notls.imaps_port is None and dovecot_notls.pop3s_port is None
    assert dovecot_notls.ca_file is None
    c = imaplib.IMAP4(dovecot_notls.host, dovecot_notls.imap_port, timeout=10)
    try:
        assert "STARTTLS" not in imap_capabilities(c)
        with pytest.raises(imaplib.IMAP4.abort, match="TLS not supported"):
            c.starttls(ssl_context=ssl.create_default_context())
        assert c.login(user.name, user.password)[0] == "OK"
    finally:
        c.logout()
    p = poplib.POP3(dovecot_notls.host, dovecot_notls.pop3_port, timeout=10)
    try:
        assert "STLS" not in p.capa()
        with pytest.raises(poplib.error_proto):
            p.stls(context=ssl.create_default_context())
        p.user(user.name)
        assert p.pass_(user.password).startswith(b"+OK")
    finally:
        p.quit()


# ------------------------------------------------------------------ mail


MESSAGES = [
    b"From: a@example.test\nSubject: bare LF\n\nline1\nline2\n",
    b"From: a@example.test\r\nSubject: CRLF\r\n\r\nline1\r\nline2\r\n",
    b"From: a@example.test\r\nSubject: mixed\n\nbare\rCR stays\nx\r\r\n",
    b"Subject: 8bit \xe4\xf6\n\n\xff\xfe no final newline",
]


def test_deliver_imap_fetch_and_pop3_uidl(dovecot, mailuser):
    paths = [dovecot.deliver(mailuser.name, raw) for raw in MESSAGES]
    for path, raw in zip(paths, MESSAGES):
        assert path.parent == dovecot.maildir(mailuser.name) / "new"
        assert path.read_bytes() == raw  # stored unchanged
        assert path.stat().st_uid == dovecot.mail_uid

    got = fetch_all(dovecot, mailuser)
    assert got == {i + 1: crlf(raw) for i, raw in enumerate(MESSAGES)}
    uidvalidity = dovecot.uidvalidity(mailuser.name)

    p = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        p.user(mailuser.name)
        p.pass_(mailuser.password)
        _, uidls, _ = p.uidl()
        # Dovecot's %X is *lower-case* hex
        assert uidls == [b"%d %08x%08x" % (i, i, uidvalidity) for i in range(1, 5)]
        _, lines, _ = p.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == crlf(MESSAGES[0])
    finally:
        p.quit()


def test_nul_bytes_become_0x80_over_imap(dovecot, mailuser):
    dovecot.deliver(mailuser.name, b"Subject: nul\n\na\x00b\n")
    assert fetch_all(dovecot, mailuser) == {1: b"Subject: nul\r\n\r\na\x80b\r\n"}


def test_deliver_to_folder_with_flags_and_date(dovecot, mailuser):
    dovecot.deliver(mailuser.name, b"Subject: seen\n\nx\n", "Archive/2024", flags="S",
                    internaldate=1_000_000_000)
    dovecot.deliver(mailuser.name, b"Subject: umlaut\n\nx\n", "Ablage \u00c4")
    c = dovecot.imap(mailuser.name)
    try:
        _, boxes = c.list()
        names = {b.rsplit(b' "/" ', 1)[1].strip(b'"') for b in boxes}
        assert {b"INBOX", b"Archive/2024", b"Ablage &AMQ-"} <= names
        c.select('"Archive/2024"', readonly=True)
        _, data = c.fetch("1", "(FLAGS INTERNALDATE)")
        assert b"\\Seen" in data[0] and b'"09-Sep-2001 01:46:40 +0000"' in data[0]
    finally:
        c.logout()


def test_append_via_imap(dovecot, mailuser):
    uid = dovecot.append(mailuser.name, mailuser.password, MESSAGES[0], folder="Sent")
    assert uid == 1
    assert dovecot.append(mailuser.name, None, MESSAGES[1]) == 1  # INBOX
    # imaplib converts line endings to CRLF before APPENDing
    assert fetch_all(dovecot, mailuser, "Sent") == {1: crlf(MESSAGES[0])}


def test_users_added_after_start_can_log_in_at_once(dovecot, mailuser):
    dovecot.imap(mailuser.name).logout()  # auth has just read passwd files
    for _ in range(3):
        u = dovecot.new_user()
        assert u.address == f"{u.name}@example.test"
        dovecot.imap(u.name, u.password).logout()


def test_users_do_not_see_each_others_mail(dovecot, mailuser):
    other = dovecot.new_user()
    dovecot.deliver(other.name, MESSAGES[0])
    assert fetch_all(dovecot, mailuser) == {}
    assert len(fetch_all(dovecot, other)) == 1


def test_reset_uidvalidity_keeps_messages(dovecot, mailuser):
    for raw in MESSAGES[:2]:
        dovecot.deliver(mailuser.name, raw)
    before = fetch_all(dovecot, mailuser)
    old = dovecot.uidvalidity(mailuser.name)
    new = dovecot.reset_uidvalidity(mailuser.name)
    assert new != old and new == dovecot.uidvalidity(mailuser.name)
    assert fetch_all(dovecot, mailuser) == before  # same UIDs 1..n, new UIDVALIDITY


def test_delete_folder_and_recreate_changes_uidvalidity(dovecot, mailuser):
    dovecot.deliver(mailuser.name, MESSAGES[0], "Projects")
    old = dovecot.uidvalidity(mailuser.name, "Projects")
    new = dovecot.delete_folder_and_recreate(mailuser.name, "Projects")
    assert new != old
    assert fetch_all(dovecot, mailuser, "Projects") == {}
    with pytest.raises(ValueError):
        dovecot.delete_folder_and_recreate(mailuser.name, "INBOX")


# ------------------------------------------------------------------ lifecycle


def test_stop_kills_the_server(dovecot, tmp_path):
    srv = DovecotServer(tmp_path / "own", tls=False, dovecot_bin=dovecot.dovecot_bin)
    with srv:
        pid, port = srv.pid, srv.imap_port
        assert _pid_alive(pid)
        assert int(srv.pid_file.read_text().split()[0]) == pid
        u = srv.new_user()
        srv.imap(u.name).logout()
    assert srv.pid is None and not srv.running
    assert not _pid_alive(pid)
    with pytest.raises(OSError):
        socket.create_connection((srv.host, port), timeout=2).close()
    srv.stop()  # idempotent
    assert "starting up" in srv.log_file.read_text()


def test_session_server_is_fast_and_quiet(dovecot):
    assert dovecot.running
    assert dovecot.startup_seconds < 10
    log = dovecot.log_file.read_text()
    assert not re.search(r"(Fatal|Panic):", log), dovecot.log_tail()
    if os.geteuid() == 0:
        assert dovecot.mail_uid != 0
