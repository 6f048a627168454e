"""Proves the test tools ``imap_script.ScriptedImapServer`` and ``cutproxy.CutProxy``.

Only stdlib clients (imaplib, poplib, raw sockets) and imap-tools' login are used,
never vmailkit: these tests pin down what the tools send, and what imaplib makes of
it, so that the product's integrity tests can rely on them.
"""
from __future__ import annotations

import imaplib
import poplib
import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted
from imap_tools.errors import MailboxLoginError

from certs import make_certs
from cutproxy import CutProxy
from imap_script import ScriptedImapServer, parse_uid_set

MSG1 = b"From: Ann <ann@example.test>\r\nSubject: one\r\nX-Fold: a\r\n b\r\n\r\nbody one\r\n"
MSG2 = b"Subject: two\r\nTo: bob@example.test\r\n\r\n8-bit \xe4\xf6\xfc, NUL \x00, bare LF\nbare CR\r\r\n"
MSG3 = b"Subject: three\r\n\r\nno final newline"
MSG7 = b"Subject: seven\r\n\r\n" + b"x" * 5000 + b"\r\n"
MESSAGES = {1: MSG1, 2: MSG2, 3: MSG3, 7: MSG7}


def login(srv: ScriptedImapServer, *, examine: bool = True) -> imaplib.IMAP4:
    c = imaplib.IMAP4(srv.host, srv.port, timeout=10)
    c.login("user", "secret")
    if examine:
        typ, _ = c.select("INBOX", readonly=True)
        assert typ == "OK"
    return c


def bodies(data: list) -> dict[int, bytes]:
    """UID -> literal from imaplib FETCH data in the normal ``UID n BODY[] {m}`` shape."""
    out = {}
    for item in data:
        if isinstance(item, tuple):
            out[int(re.search(rb"UID (\d+)", item[0]).group(1))] = item[1]
    return out


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


@pytest.fixture
def scripted():
    with ScriptedImapServer(MESSAGES, uidvalidity=4711) as srv:
        yield srv


# --------------------------------------------------------------------------- scripted IMAP server
def test_parse_uid_set():
    assert parse_uid_set("1:5,7,9:*", 12) == [(1, 5), (7, 7), (9, 12)]
    assert parse_uid_set("20:*", 12) == [(12, 20)]  # n:* always includes the last
    assert parse_uid_set("5:2", None) == [(2, 5)]
    assert parse_uid_set("*", None) == []
    with pytest.raises(ValueError):
        parse_uid_set("1:x", 3)


def test_imaplib_login_examine_and_exact_bytes(scripted):
    c = imaplib.IMAP4(scripted.host, scripted.port, timeout=10)
    assert c.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    assert "IMAP4REV1" in c.capabilities
    assert c.login("user", "secret")[0] == "OK"
    typ, data = c.select('"INBOX"', readonly=True)
    assert (typ, data) == ("OK", [b"4"])
    assert c.response("UIDVALIDITY") == ("UIDVALIDITY", [b"4711"])
    assert c.response("UIDNEXT") == ("UIDNEXT", [b"8"])
    assert c.response("READ-ONLY")[1] == [b""]
    assert c.noop()[0] == "OK"
    typ, data = c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    assert typ == "OK"
    assert data[0] == (b"1 (UID 1 BODY[] {%d}" % len(MSG1), MSG1)
    assert data[1] == b")"
    assert bodies(data) == MESSAGES  # 8-bit, NUL, bare LF/CR, no final newline: all exact
    assert c.logout()[0] == "BYE"
    names = scripted.command_names()
    assert names == ["CAPABILITY", "LOGIN", "EXAMINE", "NOOP", "UID FETCH", "LOGOUT"]
    assert scripted.commands[2] == 'EXAMINE "INBOX"'
    assert "BODY.PEEK[]" in scripted.commands[4]
    assert scripted.logins == ["user"]
    assert scripted.connections == 1


def test_select_is_read_write_and_writes_are_refused(scripted):
    c = login(scripted, examine=False)
    assert c.select("INBOX")[0] == "OK"
    assert c.response("READ-WRITE")[1] == [b""]
    typ, data = c.uid("STORE", "1", "+FLAGS", r"(\Deleted)")
    assert typ == "NO"
    assert c.expunge()[0] == "NO"
    assert c.copy("1", "Trash")[0] == "NO"
    # a non-PEEK fetch on a read-write mailbox sets \Seen and reports it
    typ, data = c.uid("FETCH", "1", "(BODY[])")
    assert data == [(b"1 (UID 1 BODY[] {%d}" % len(MSG1), MSG1), rb" FLAGS (\Seen))"]
    assert scripted.flags[1] == {r"\Seen"}
    assert c.select("Nope")[0] == "NO"
    c.logout()
    assert set(scripted.command_names()) >= {"SELECT", "UID STORE", "EXPUNGE", "COPY"}


def test_examine_never_changes_flags(scripted):
    c = login(scripted)
    typ, data = c.uid("FETCH", "2", "(BODY[] RFC822.TEXT)")
    assert typ == "OK"
    assert data[0] == (b"2 (UID 2 BODY[] {%d}" % len(MSG2), MSG2)  # no FLAGS: nothing changed
    assert data[1][0] == b" RFC822.TEXT {36}" and MSG2.endswith(data[1][1])
    assert scripted.flags == {}
    c.logout()


def test_uid_search_forms(scripted):
    c = login(scripted)
    assert c.uid("SEARCH", "ALL") == ("OK", [b"1 2 3 7"])
    assert c.uid("SEARCH", "CHARSET", "US-ASCII", "ALL") == ("OK", [b"1 2 3 7"])
    assert c.uid("SEARCH", "UID 3:*") == ("OK", [b"3 7"])
    assert c.uid("SEARCH", "UID 2:3") == ("OK", [b"2 3"])
    assert c.uid("SEARCH", "UID 1:2,7") == ("OK", [b"1 2 7"])
    # like real servers: n:* matches the last message even when its UID is below n
    assert c.uid("SEARCH", "UID 100:*") == ("OK", [b"7"])
    assert c.search(None, "2:*") == ("OK", [b"2 3 4"])  # sequence numbers
    assert c.uid("SEARCH", "UNSEEN NOT UID 1") == ("OK", [b"2 3 7"])
    with pytest.raises(imaplib.IMAP4.error):
        c.uid("SEARCH", "BOGUSKEY")
    c.logout()


def test_uid_fetch_sets_and_star_quirk(scripted):
    c = login(scripted)
    data = c.uid("FETCH", "1:2,7", "(UID)")[1]
    assert data == [b"1 (UID 1)", b"2 (UID 2)", b"4 (UID 7)"]
    assert c.uid("FETCH", "50:*", "(UID)")[1] == [b"4 (UID 7)"]
    assert c.uid("FETCH", "4:6", "(UID)")[1] == [None]  # nothing matched
    assert c.fetch("2:3", "(UID)")[1] == [b"2 (UID 2)", b"3 (UID 3)"]
    c.logout()


def test_header_fetch_items_like_the_product_asks(scripted):
    c = login(scripted)
    typ, data = c.uid(
        "FETCH", "1:*",
        "(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE X-FOLD)])",
    )
    assert typ == "OK"
    first, rest = data[0]
    assert first == (
        b'1 (UID 1 RFC822.SIZE %d BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1'
        b" NIL NIL NIL NIL) BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE X-FOLD)] {%d}"
        % (len(MSG1), len(rest))
    )
    assert rest == b"From: Ann <ann@example.test>\r\nSubject: one\r\nX-Fold: a\r\n b\r\n\r\n"
    hdr = dict((int(re.search(rb"UID (\d+)", t[0]).group(1)), t[1]) for t in data if isinstance(t, tuple))
    assert hdr[2] == b"Subject: two\r\nTo: bob@example.test\r\n\r\n"
    typ, data = c.uid("FETCH", "7", "(FLAGS INTERNALDATE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.3> RFC822.HEADER)")
    assert data[0][0].startswith(b'4 (UID 7 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" BODY[HEADER] {18}')
    assert data[0][1] == b"Subject: seven\r\n\r\n"
    assert data[1] == (b" BODY[TEXT]<0> {3}", b"xxx")
    assert data[2] == (b" RFC822.HEADER {18}", b"Subject: seven\r\n\r\n")
    c.logout()


def test_login_checked_when_users_given():
    with ScriptedImapServer(MESSAGES, users={"ann": "pw"}) as srv:
        c = imaplib.IMAP4(srv.host, srv.port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            c.login("ann", "wrong")
        assert c.login("ann", "pw")[0] == "OK"
        c.logout()
        mb = MailBoxUnencrypted(srv.host, srv.port, timeout=10)
        with pytest.raises(MailboxLoginError):
            mb.login("bob", "pw", initial_folder=None)
        mb.client.shutdown()
        assert srv.logins == ["ann"]


def test_imap_tools_login_like_the_product(scripted):
    mb = MailBoxUnencrypted(scripted.host, scripted.port, timeout=10).login("u", "p", initial_folder=None)
    try:
        typ, data = mb.client.select('"INBOX"', readonly=True)
        assert (typ, data) == ("OK", [b"4"])
        assert mb.client.response("UIDVALIDITY")[1] == [b"4711"]
        assert [m.subject for m in mb.fetch(mark_seen=False, bulk=True)] == ["one", "two", "three", "seven"]
        assert mb.folder.status("INBOX")["UIDVALIDITY"] == 4711
    finally:
        mb.logout()
    names = scripted.command_names()
    assert "SELECT" not in names and "EXAMINE" in names


def test_literal8_answer(scripted):
    """imaplib reads ``~{n}`` by length; the ``~`` stays at the end of the text part."""
    scripted.literal8_uids = {2}
    c = login(scripted)
    data = c.uid("FETCH", "1:2", "(UID BODY.PEEK[])")[1]
    assert data == [
        (b"1 (UID 1 BODY[] {%d}" % len(MSG1), MSG1), b")",
        (b"2 (UID 2 BODY[] ~{%d}" % len(MSG2), MSG2), b")",
    ]
    # header sections are not touched with fault_sections="full" (the default) ...
    hdr = c.uid("FETCH", "2", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    assert hdr[0][0].endswith(b"] {16}")
    # ... but are with "all"
    scripted.fault_sections = "all"
    hdr = c.uid("FETCH", "2", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
    assert hdr[0] == (b"2 (UID 2 BODY[HEADER.FIELDS (SUBJECT)] ~{16}", b"Subject: two\r\n\r\n")
    c.logout()


def test_nil_and_missing_body(scripted):
    scripted.nil_body_uids = {1}
    scripted.missing_body_uids = {2}
    c = login(scripted)
    data = c.uid("FETCH", "1:3", "(UID BODY.PEEK[])")[1]
    assert data == [b"1 (UID 1 BODY[] NIL)", b"2 (UID 2)", (b"3 (UID 3 BODY[] {%d}" % len(MSG3), MSG3), b")"]
    data = c.uid("FETCH", "2", "(UID RFC822.SIZE BODY.PEEK[])")[1]
    assert data == [b"2 (UID 2 RFC822.SIZE %d)" % len(MSG2)]
    c.logout()


def test_reordered_items(scripted):
    scripted.reorder_items = True
    c = login(scripted)
    data = c.uid("FETCH", "1:2", "(UID BODY.PEEK[])")[1]
    # odd sequence numbers also get an unrequested FLAGS between the items
    assert data == [
        (b"1 (BODY[] {%d}" % len(MSG1), MSG1), b" FLAGS () UID 1)",
        (b"2 (BODY[] {%d}" % len(MSG2), MSG2), b" UID 2)",
    ]
    c.logout()


def test_interleaved_untagged_responses(scripted):
    scripted.interleave = True
    c = login(scripted)
    data = c.uid("FETCH", "1,2,7", "(UID BODY.PEEK[])")[1]
    assert data[0] == (b"1 (UID 1 BODY[] {%d}" % len(MSG1), MSG1)
    assert data[1] == b")"
    assert data[2] == rb"2 (FLAGS (\Seen))"  # no UID, no body
    assert bodies(data[3:]) == {2: MSG2, 7: MSG7}
    assert c.untagged_responses.get("EXPUNGE") == [b"3"]
    c.logout()


def test_extra_unrequested_uid(scripted):
    scripted.extra_uid = 3
    c = login(scripted)
    data = c.uid("FETCH", "1,7", "(UID BODY.PEEK[])")[1]
    assert bodies(data) == {1: MSG1, 3: MSG3, 7: MSG7}
    assert [t[0][:1] for t in data if isinstance(t, tuple)] == [b"1", b"3", b"4"]
    scripted.extra_uid = 99  # not in the mailbox: extra_message, next sequence number
    data = c.uid("FETCH", "2", "(UID RFC822.SIZE)")[1]
    assert data == [b"2 (UID 2 RFC822.SIZE %d)" % len(MSG2),
                    b"5 (UID 99 RFC822.SIZE %d)" % len(scripted.extra_message)]
    c.logout()


def test_drop_after_bytes_cuts_mid_literal(scripted):
    scripted.drop_after_bytes = 1000
    c = login(scripted)
    # size / header fetches are not counted with drop_scope="body" (the default)
    assert c.uid("FETCH", "1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER])")[0] == "OK"
    with pytest.raises(imaplib.IMAP4.abort):
        c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
    c.shutdown()
    assert scripted.drops == 1

    # on the wire: exactly 1000 bytes of FETCH output, the last one inside MSG7's literal
    with socket.create_connection(scripted.address, timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"a LOGIN u p\r\nb EXAMINE INBOX\r\n")
        while not f.readline().startswith(b"b OK"):
            pass
        s.sendall(b"c UID FETCH 1:* (UID BODY.PEEK[])\r\n")
        got = f.read()
        f.close()
    assert len(got) == 1000
    assert got.startswith(b"* 1 FETCH (UID 1 BODY[] {")
    assert got.endswith(b"xxxx") and b"* 4 FETCH (UID 7 BODY[] {5020}\r\n" in got
    assert scripted.drops == 2

    scripted.drop_after_bytes = None  # the next session works again
    c = login(scripted)
    assert bodies(c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")[1]) == MESSAGES
    c.logout()


def test_drop_scope_any(scripted):
    scripted.drop_after_bytes = 10
    scripted.drop_scope = "any"
    c = login(scripted)
    with pytest.raises(imaplib.IMAP4.abort):
        c.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
    c.shutdown()
    assert scripted.drops == 1


def test_uidvalidity_changes_between_sessions(scripted):
    c = login(scripted)
    assert c.response("UIDVALIDITY")[1] == [b"4711"]
    c.logout()
    scripted.uidvalidity = 4712
    scripted.messages = {1: MSG3}
    c = login(scripted)
    assert c.response("UIDVALIDITY")[1] == [b"4712"]
    assert c.uid("SEARCH", "ALL")[1] == [b"1"]
    assert bodies(c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")[1]) == {1: MSG3}
    c.logout()


def test_noop_reports_new_messages(scripted):
    c = login(scripted)
    scripted.messages[9] = MSG1
    c.noop()
    assert c.response("EXISTS")[1][-1] == b"5"
    assert c.uid("SEARCH", "UID 8:*")[1] == [b"9"]
    c.logout()


def test_fetch_hook(scripted):
    def hook(seq: int, uid: int, items: list[bytes]):
        if uid == 1:
            return items + [b"X-GM-MSGID 123"]
        if uid == 2:
            return b"* 2 FETCH (UID 2 BODY[] {3}\r\nabc)\r\n"
        return None

    scripted.fetch_hook = hook
    c = login(scripted)
    data = c.uid("FETCH", "1:3", "(UID BODY.PEEK[])")[1]
    assert data[1] == b" X-GM-MSGID 123)"
    assert bodies(data) == {1: MSG1, 2: b"abc", 3: MSG3}
    c.logout()


def test_client_literal_and_bad_commands(scripted):
    with socket.create_connection(scripted.address, timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK [CAPABILITY IMAP4rev1")
        s.sendall(b"a LOGIN {3}\r\n")
        assert f.readline() == b"+ Ready for literal data\r\n"
        s.sendall(b"b\xc3\xa4 {2+}\r\npw\r\n")
        assert f.readline() == b"a OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS UNSELECT] Logged in\r\n"
        s.sendall(b"b FROB\r\nc UID FETCH 1 (UID)\r\nd UID FETCH 1 (ENVELOPE)\r\n")
        assert f.readline().startswith(b"b BAD")
        assert f.readline().startswith(b"c BAD")  # nothing selected
        assert f.readline().startswith(b"d BAD")
        s.sendall(b"e LOGOUT\r\n")
        assert f.readline() == b"* BYE Logging out\r\n"
        assert f.readline().startswith(b"e OK")
        assert f.readline() == b""
        f.close()
    assert scripted.logins == ["b\xe4"]
    assert scripted.commands[0] == 'LOGIN "bä" "pw"'


def test_concurrent_sessions(scripted):
    results: list[dict[int, bytes]] = []

    def worker() -> None:
        c = login(scripted)
        results.append(bodies(c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")[1]))
        c.logout()

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert results == [MESSAGES] * 8
    assert scripted.connections == 8


def test_implicit_tls(tmp_path: Path):
    certs = make_certs(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.cert_file, certs.key_file)
    client_ctx = ssl.create_default_context(cafile=str(certs.ca_file))
    with ScriptedImapServer(MESSAGES, ssl_context=server_ctx) as srv:
        c = imaplib.IMAP4_SSL(srv.host, srv.port, ssl_context=client_ctx, timeout=10)
        c.login("u", "p")
        c.select("INBOX", readonly=True)
        assert bodies(c.uid("FETCH", "7", "(UID BODY.PEEK[])")[1]) == {7: MSG7}
        c.logout()
        # a client that does not trust the CA fails the handshake; the server survives it
        with pytest.raises(ssl.SSLError):
            imaplib.IMAP4_SSL(srv.host, srv.port, ssl_context=ssl.create_default_context(), timeout=10)
        c = imaplib.IMAP4_SSL(srv.host, srv.port, ssl_context=client_ctx, timeout=10)
        c.logout()


def test_close_joins_threads_and_frees_the_port():
    srv = ScriptedImapServer(MESSAGES)
    prefix = f"scripted-imap-conn-{srv.port}"
    idle = socket.create_connection(srv.address, timeout=10)  # an idle client must not block close()
    idle.recv(100)
    c = login(srv)
    t0 = time.monotonic()
    srv.close()
    assert time.monotonic() - t0 < 2
    assert not threads_named(f"scripted-imap-{srv.port}") and not threads_named(prefix)
    assert idle.recv(100) == b""
    idle.close()
    with pytest.raises(imaplib.IMAP4.abort):
        c.noop()
    c.shutdown()
    with pytest.raises(OSError):
        socket.create_connection(srv.address, timeout=2)
    srv.close()  # idempotent


# --------------------------------------------------------------------------- cut proxy
def test_proxy_forwards_and_cuts_per_connection(scripted):
    with CutProxy(scripted.host, scripted.port) as proxy:
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        c.login("u", "p")
        c.select("INBOX", readonly=True)
        assert bodies(c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")[1]) == MESSAGES
        used = proxy.bytes_to_client  # the single connection's count
        proxy.cut_after_bytes = used + 100
        with pytest.raises(imaplib.IMAP4.abort):
            c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        c.shutdown()
        assert proxy.cut_count == 1
        assert proxy.bytes_to_client == used + 100

        # a new connection gets cut_after_bytes afresh: login and EXAMINE pass, the fetch is cut
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        c.login("u", "p")
        c.select("INBOX", readonly=True)
        with pytest.raises(imaplib.IMAP4.abort):
            c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
            c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        c.shutdown()
        assert proxy.cut_count == 2

        proxy.cut_after_bytes = None
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        c.login("u", "p")
        c.select("INBOX", readonly=True)
        assert bodies(c.uid("FETCH", "1:*", "(UID BODY.PEEK[])")[1]) == MESSAGES
        c.logout()
        assert proxy.connections == 3 and proxy.cut_count == 2
        assert proxy.bytes_to_server > 0


def test_proxy_exact_cut_point_and_reset(scripted):
    with CutProxy(scripted.host, scripted.port, cut_after_bytes=10) as proxy:
        with socket.create_connection(proxy.address, timeout=10) as s:
            got = b""
            while chunk := s.recv(100):
                got += chunk
        assert got == b"* OK [CAPA"
        proxy.cut_after_bytes = 0
        with socket.create_connection(proxy.address, timeout=10) as s:
            assert s.recv(100) == b""
        proxy.reset = True
        proxy.cut_after_bytes = 5
        with socket.create_connection(proxy.address, timeout=10) as s:
            with pytest.raises(ConnectionResetError):
                got = b""
                while True:
                    chunk = s.recv(100)
                    if not chunk:
                        break
                    got += chunk
        assert proxy.cut_count == 3


def test_proxy_target_down():
    with socket.socket() as tmp:
        tmp.bind(("127.0.0.1", 0))
        dead_port = tmp.getsockname()[1]
    with CutProxy("127.0.0.1", dead_port) as proxy:
        with socket.create_connection(proxy.address, timeout=10) as s:
            assert s.recv(100) == b""
        assert proxy.connect_failures == 1 and proxy.connections == 1


def test_proxy_close_joins_threads(scripted):
    proxy = CutProxy(scripted.host, scripted.port)
    c = login_via(proxy)
    t0 = time.monotonic()
    proxy.close()
    assert time.monotonic() - t0 < 2
    assert not threads_named(f"cutproxy-{proxy.port}")
    assert proxy.active == 0
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        c.noop()
    c.shutdown()
    with pytest.raises(OSError):
        socket.create_connection(proxy.address, timeout=2)
    proxy.close()


def login_via(proxy: CutProxy) -> imaplib.IMAP4:
    c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
    c.login("u", "p")
    return c


# --------------------------------------------------------------------------- cut proxy + Dovecot
BIG = b"Subject: big\r\nFrom: a@example.test\r\n\r\n" + b"".join(
    b"line %06d of a long message body ..................................\r\n" % i for i in range(4000)
)


def ctx_for(server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.ca_file))


@pytest.mark.dovecot
def test_proxy_cuts_dovecot_imap_fetch(dovecot, mailuser):
    dovecot.deliver(mailuser.name, BIG)
    with CutProxy(dovecot.host, dovecot.imap_port) as proxy:
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        c.login(mailuser.name, mailuser.password)
        c.select("INBOX", readonly=True)
        proxy.cut_after_bytes = proxy.bytes_to_client + 50_000
        with pytest.raises(imaplib.IMAP4.abort):
            c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        c.shutdown()
        assert proxy.cut_count == 1

        # the next connection is counted afresh: LOGIN passes, the big FETCH is cut again
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        assert c.login(mailuser.name, mailuser.password)[0] == "OK"
        c.select("INBOX", readonly=True)
        with pytest.raises(imaplib.IMAP4.abort):
            c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        c.shutdown()
        assert proxy.cut_count == 2

        proxy.cut_after_bytes = None
        c = imaplib.IMAP4(proxy.host, proxy.port, timeout=10)
        c.login(mailuser.name, mailuser.password)
        c.select("INBOX", readonly=True)
        assert bodies(c.uid("FETCH", "1", "(UID BODY.PEEK[])")[1]) == {1: BIG}
        c.logout()


@pytest.mark.dovecot
def test_proxy_cuts_dovecot_pop3_retr(dovecot, mailuser):
    dovecot.deliver(mailuser.name, BIG)
    with CutProxy(dovecot.host, dovecot.pop3_port, cut_after_bytes=20_000) as proxy:
        p = poplib.POP3(proxy.host, proxy.port, timeout=10)
        p.user(mailuser.name)
        assert p.pass_(mailuser.password).startswith(b"+OK")
        assert p.stat() == (1, len(BIG))
        with pytest.raises(poplib.error_proto, match="EOF"):
            p.retr(1)
        p.close()
        assert proxy.cut_count == 1

        proxy.cut_after_bytes = None
        p = poplib.POP3(proxy.host, proxy.port, timeout=10)
        p.user(mailuser.name)
        p.pass_(mailuser.password)
        resp, lines, octets = p.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == BIG
        p.quit()
        assert proxy.connections == 2


@pytest.mark.dovecot
def test_proxy_passes_tls_through(dovecot, mailuser):
    dovecot.deliver(mailuser.name, BIG)
    with CutProxy(dovecot.host, dovecot.imaps_port) as proxy:
        c = imaplib.IMAP4_SSL(proxy.host, proxy.port, ssl_context=ctx_for(dovecot), timeout=10)
        c.login(mailuser.name, mailuser.password)
        c.select("INBOX", readonly=True)
        assert bodies(c.uid("FETCH", "1", "(UID BODY.PEEK[])")[1]) == {1: BIG}
        proxy.cut_after_bytes = proxy.bytes_to_client + 30_000
        with pytest.raises((imaplib.IMAP4.abort, OSError)):  # EOF or an SSL error, mid-record
            c.uid("FETCH", "1", "(UID BODY.PEEK[])")
        c.shutdown()
        assert proxy.cut_count == 1

    with CutProxy(dovecot.host, dovecot.pop3s_port) as proxy:
        p = poplib.POP3_SSL(proxy.host, proxy.port, context=ctx_for(dovecot), timeout=10)
        p.user(mailuser.name)
        assert p.pass_(mailuser.password).startswith(b"+OK")
        p.quit()
