"""Never lose a mail, never merge two, never hang (issue 11).

Against the scripted IMAP responder (answers Dovecot never gives: literal8, NIL bodies, items in
another order, unsolicited responses, unrequested UIDs, a connection cut mid-literal), the real
Dovecot, a TCP proxy that cuts every connection after N bytes, and servers that hang up during login.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from cutproxy import CutProxy
from helpers import add_account, server_bytes_imap
from imap_script import ScriptedImapServer
from mailfactory import make_mail
from vmailkit import ConnectionLost, Store, check, download, make_account
from vmailkit.cli import main
from vmailkit.errors import AuthError
from vmailkit.refs import MessageRef
from vmailkit.sync import connect


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "vmail.duckdb")
    s.add_user("anna", "anna@tour.example")
    return s


def scripted_account(store: Store, server: ScriptedImapServer, name: str = "office"):
    store.add_account(make_account(name, kind="general", protocol="imap", host=server.host, port=server.port,
                                   security="plain", address="office@tour.example", secret="prompt:"))
    store.subscribe("anna", name)
    return {name: "pw"}


def stored(store: Store) -> dict[int, bytes]:
    """UID -> stored bytes (through the locations)."""
    rows = store.query("SELECT l.uid, e.raw FROM email_locations l JOIN emails e USING (email_id) ORDER BY l.uid")
    return {int(u): bytes(r) for u, r in zip(rows["uid"], rows["raw"])}


def watermark(store: Store, account: str = "office") -> int:
    return store.watermark(store.get_user("anna").user_id, store.get_account(account).account_id, "INBOX").last_uid


MAILS = {uid: make_mail(uid) for uid in range(1, 6)}
BINARY = b"Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\nzero\x00bytes\x00here\r\n"


# -- the FETCH answer: literal8, NIL, missing, reordered, unsolicited, unrequested ---------------------
def test_literal8_body_is_stored_exactly(store):
    mails = dict(MAILS) | {3: BINARY}
    with ScriptedImapServer(mails, uidvalidity=7, literal8_uids={3}) as srv:
        p = scripted_account(store, srv)
        summary = download(store, "anna", all_new=True, passwords=p)
    assert summary.ok and summary.total("downloaded") == 5
    assert stored(store) == mails and watermark(store) == 5


@pytest.mark.parametrize("fault", ["nil_body_uids", "missing_body_uids"])
def test_message_without_body_fails_alone_and_holds_the_watermark(store, fault):
    with ScriptedImapServer(dict(MAILS), uidvalidity=7, **{fault: {3}}) as srv:
        p = scripted_account(store, srv)
        summary = download(store, "anna", all_new=True, passwords=p)
        (entry,) = summary.accounts
        assert not summary.ok and (entry.downloaded, entry.failed) == (4, 1)
        (failure,) = entry.failures
        assert failure.ref.uid == 3 and "Booking" not in failure.reason and "server" in failure.reason
        assert set(stored(store)) == {1, 2, 4, 5}  # nothing stored in the place of 3
        assert watermark(store) == 2  # never past the message that was not stored
        # the next check lists it again; the ones after it show as already stored
        again = check(store, "anna", passwords=p).messages
        assert sorted(again["uid"].astype(int)) == [3, 4, 5]
        assert list(again.sort_values("uid")["already_downloaded"]) == [False, True, True]
        setattr(srv, fault, set())  # the server mends it: the next run completes, nothing twice
        rest = download(store, "anna", all_new=True, passwords=p)
    assert rest.ok and rest.total("downloaded") == 1 and rest.total("already_present") == 2
    assert stored(store) == MAILS and store.count_emails() == 5 and watermark(store) == 5


def test_reordered_items_unsolicited_responses_and_unrequested_uids(store):
    with ScriptedImapServer(dict(MAILS), uidvalidity=7, reorder_items=True, interleave=True, extra_uid=99) as srv:
        p = scripted_account(store, srv)
        summary = download(store, "anna", all_new=True, passwords=p)
        names = srv.command_names()
    assert summary.ok and summary.total("downloaded") == 5
    assert stored(store) == MAILS  # the unrequested message is never stored
    assert "EXAMINE" in names and not {"SELECT", "STORE", "EXPUNGE", "COPY", "MOVE"} & set(names)
    fetches = [c for c in srv.commands if c.upper().startswith("UID FETCH")]
    assert fetches and all("BODY[]" not in c.upper() or "BODY.PEEK[]" in c.upper() for c in fetches)


def test_cut_mid_literal_keeps_what_arrived_and_resumes(store):
    mails = {uid: make_mail(uid, body="x" * 3000) for uid in range(1, 21)}
    with ScriptedImapServer(mails, uidvalidity=7, drop_after_bytes=20_000) as srv:
        p = scripted_account(store, srv)
        first = download(store, "anna", all_new=True, passwords=p, retries=0)
        (entry,) = first.accounts
        assert entry.error and "lost" in entry.error and "password" not in entry.error
        kept = stored(store)
        assert 0 < len(kept) < 20 and all(kept[u] == mails[u] for u in kept)  # only complete messages
        assert watermark(store) == max(kept)
        second = download(store, "anna", all_new=True, passwords=p, retries=10, retry_wait=0)
    assert second.ok and second.total("reconnects") >= 1
    assert stored(store) == mails and store.count_emails() == 20


# -- picks are references: a recreated folder never yields another mail ------------------------------------
def test_pick_of_a_recreated_folder_fails_in_plain_words(store):
    with ScriptedImapServer(dict(MAILS), uidvalidity=7) as srv:
        p = scripted_account(store, srv)
        listed = check(store, "anna", passwords=p).messages
        picks = listed[listed["uid"].astype(int).isin([2, 4])]
        srv.uidvalidity = 8  # the folder was recreated: UID 2 now names another mail
        srv.messages = {uid: make_mail(uid + 100) for uid in range(1, 6)}
        summary = download(store, "anna", picks=picks, passwords=p)
    (entry,) = summary.accounts
    assert not summary.ok and entry.downloaded == 0 and entry.failed == 2
    assert {f.ref.uid for f in entry.failures} == {2, 4}
    assert all("changed since it was listed" in f.reason for f in entry.failures)
    assert entry.failures[0].subject in ("Booking 702 rooming list", "Booking 704 rooming list")
    assert store.count_emails() == 0


@pytest.mark.dovecot
def test_cli_picks_round_trip_and_recreated_folder(tmp_path, dovecot, mailuser, monkeypatch):
    for n in range(1, 4):
        dovecot.deliver(mailuser.name, make_mail(n))
    db = tmp_path / "v.duckdb"
    store = Store(db)
    store.add_user("anna")
    add_account(store, dovecot, mailuser, name="office", password_env="VMK_PW")
    store.subscribe("anna", "office")
    monkeypatch.setenv("VMK_PW", mailuser.password)
    runner = CliRunner()
    out = runner.invoke(main, ["--db", str(db), "check", "anna", "--format", "json"])
    assert out.exit_code == 0, out.output
    listing = tmp_path / "listing.json"
    listing.write_text(out.stdout)
    data = json.loads(out.stdout)
    one = data["messages"][0]["pick"]
    assert MessageRef.from_text(one) == MessageRef.from_dict(data["messages"][0]["ref"])
    dl = runner.invoke(main, ["--db", str(db), "download", "anna", "--pick", one, "--format", "json"])
    assert dl.exit_code == 0 and json.loads(dl.stdout)[0]["downloaded"] == 1
    dovecot.reset_uidvalidity(mailuser.name)  # recreated between check and download
    dl = runner.invoke(main, ["--db", str(db), "download", "anna", "--picks-from", str(listing), "--format", "json"])
    assert dl.exit_code == 3
    errors = [line for line in dl.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3 and all("changed since it was listed" in e for e in errors)
    assert "Booking 70" in errors[0]  # named by subject
    assert store.count_emails() == 1
    bad = runner.invoke(main, ["--db", str(db), "download", "anna", "--pick", "office:1"])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "pick" in bad.stderr


# -- a flaky link: what arrived complete is stored, the download reconnects, nothing twice ----------------
@pytest.mark.dovecot
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_link_cut_every_megabyte_completes_without_loss_or_duplicates(store, dovecot, mailuser, protocol):
    mails = [make_mail(n, body=f"rooming list {n}\n" + "guest name, room, nights\n" * 1200) for n in range(1, 201)]
    for raw in mails:
        dovecot.deliver(mailuser.name, raw)
    port = dovecot.imap_port if protocol == "imap" else dovecot.pop3_port
    with CutProxy(dovecot.host, port, cut_after_bytes=1_000_000) as proxy:
        store.add_account(make_account("office", kind="general", protocol=protocol, host=proxy.host, port=proxy.port,
                                       security="plain", address=mailuser.address, login=mailuser.name, secret="prompt:"))
        store.subscribe("anna", "office")
        p = {"office": mailuser.password}
        counts = []
        for _ in range(3):  # without retries: every run stores more
            download(store, "anna", all_new=True, passwords=p, retries=0)
            counts.append(store.count_emails())
        assert 0 < counts[0] < counts[1] < counts[2] < len(mails)
        summary = download(store, "anna", all_new=True, passwords=p, retries=5, retry_wait=0)
        assert proxy.cut_count >= 4
    assert summary.ok and summary.total("reconnects") >= 1
    rows = store.query("SELECT raw FROM emails")
    assert sorted(hashlib.sha256(bytes(r)).hexdigest() for r in rows["raw"]) == \
        sorted(hashlib.sha256(m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")).hexdigest() for m in mails)
    locs = store.query("SELECT count(*) n, count(DISTINCT email_id) d FROM email_locations")
    assert locs.iloc[0].tolist() == [len(mails), len(mails)]


# -- a connection that ends during login is not a wrong password -------------------------------------------
class HangUpServer:
    """Greets like an IMAP or POP3 server, then closes the connection when the password is sent."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            f = conn.makefile("rwb")
            if self.protocol == "imap":
                f.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
                f.flush()
                while line := f.readline():
                    tag, _, rest = line.partition(b" ")
                    if rest.upper().startswith(b"CAPABILITY"):
                        f.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                        f.flush()
                    elif rest.upper().startswith(b"LOGIN"):
                        return
            else:
                f.write(b"+OK ready\r\n")
                f.flush()
                while line := f.readline():
                    if line.upper().startswith(b"CAPA"):
                        f.write(b"+OK\r\nUSER\r\n.\r\n")
                    elif line.upper().startswith(b"USER"):
                        f.write(b"+OK\r\n")
                    elif line.upper().startswith(b"PASS"):
                        return
                    f.flush()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_connection_lost_during_login_is_not_blamed_on_the_password(protocol):
    server = HangUpServer(protocol)
    try:
        acc = make_account("office", kind="general", protocol=protocol, host="127.0.0.1", port=server.port,
                           security="plain", address="o@tour.example", secret="prompt:")
        with pytest.raises(ConnectionLost) as info:
            connect(acc, {"office": "secret-pw"}, timeout=5)
        text = str(info.value)
        assert not isinstance(info.value, AuthError)
        assert "connection" in text and "lost" in text and "login" in text
        assert "password" not in text and "secret-pw" not in text
    finally:
        server.close()


# -- identity on the corpus: every mail twice, one altered only in transport headers -----------------------
TRACE = (b"Received: from mx2.relay.example (mx2.relay.example [192.0.2.7])\r\n\tby anna.example; Mon, 2 Nov 2026\r\n"
         b"Delivered-To: anna@tour.example\r\nX-Original-To: anna@tour.example\r\nReturn-Path: <bounce@relay.example>\r\n")
TEST_TRACE_NAMES = {b"received", b"delivered-to", b"x-original-to", b"return-path", b"x-received",
                    b"authentication-results", b"received-spf", b"x-spam-status", b"x-virus-scanned"}


def independent_identity(raw: bytes) -> bytes:
    """The rule, written again here: header lines minus transport fields, line ends normalised.

    The header block is the lines before the first empty line or the first line that is not a
    field (a line starting with white space continues the field before it, as RFC 5322 reads it).
    """
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    kept: list[bytes] = []
    dropping = False
    for i, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name, colon, _ = line.partition(b":")
        if not line or not colon or not name.strip() or any(c in b" \t" for c in name.rstrip()):
            kept.extend(lines[i:])  # the end of the header block: the rest counts as it is
            break
        dropping = name.strip().lower() in TEST_TRACE_NAMES
        if not dropping:
            kept.append(line)
    return b"\n".join(kept).rstrip(b"\n")


@pytest.mark.dovecot
def test_corpus_twice_gives_one_row_per_distinct_mail_with_both_locations(store, dovecot, corpus_dir):
    files = sorted(corpus_dir.rglob("*.eml"))
    office, personal = dovecot.new_user(), dovecot.new_user()
    for f in files:
        raw = f.read_bytes()
        dovecot.deliver(office.name, raw)
        dovecot.deliver(personal.name, TRACE + raw)
    add_account(store, dovecot, office, name="office")
    add_account(store, dovecot, personal, name="anna-mail", kind="personal", owner="anna")
    store.subscribe("anna", "office")
    store.subscribe("anna", "anna-mail")
    p = {"office": office.password, "anna-mail": personal.password}
    summary = download(store, "anna", all_new=True, passwords=p)
    assert summary.ok, summary.frame()
    # one mail per distinct identity over both copies; a mail that starts with a folded line is two
    # (the prepended Received field absorbs that line, as RFC 5322 reads it): never merged wrongly
    expected = {independent_identity(c) for f in files for c in (f.read_bytes(), TRACE + f.read_bytes())}
    assert store.count_emails() == len(expected)
    one_mail = [f for f in files if independent_identity(f.read_bytes()) == independent_identity(TRACE + f.read_bytes())]
    assert len(one_mail) >= len(files) - 10
    # both copies of every file are locations of one mail
    office_bytes, personal_bytes = server_bytes_imap(dovecot, office), server_bytes_imap(dovecot, personal)
    locs = store.query("SELECT a.name, l.uid, l.email_id FROM email_locations l JOIN accounts a USING (account_id)")
    by = {(n, int(u)): int(e) for n, u, e in zip(locs["name"], locs["uid"], locs["email_id"])}
    assert len(by) == 2 * len(files)
    office_ids = {raw: by[("office", uid)] for uid, raw in office_bytes.items()}
    for uid, raw in personal_bytes.items():
        assert raw.startswith(TRACE)
        original = raw[len(TRACE):]
        same = by[("anna-mail", uid)] == office_ids[original]
        assert same == (independent_identity(original) == independent_identity(raw)), original[:80]
    # mails the old fingerprint merged (same Date/From/Subject, different content) are apart now
    per_identity: dict[bytes, set[int]] = {}
    for raw, eid in office_ids.items():
        per_identity.setdefault(independent_identity(raw), set()).add(eid)
    assert all(len(ids) == 1 for ids in per_identity.values())
    assert len(set(office_ids.values())) == len(per_identity)


# -- no process outlives a killed or stopped download -------------------------------------------------------
def session_processes(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (zombies excluded)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(stat.parent.name))
    return found


def wait_until(predicate, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.dovecot
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_or_stopped_download_leaves_no_process(tmp_path, dovecot, mailuser, sig):
    import os
    import signal
    import subprocess
    import sys

    for n in range(1, 2501):
        dovecot.deliver(mailuser.name, make_mail(n, body="x" * 2000))
    db = tmp_path / "v.duckdb"
    store = Store(db)
    store.add_user("anna")
    add_account(store, dovecot, mailuser, name="office", password_env="VMK_PW")
    store.subscribe("anna", "office")
    env = dict(os.environ, VMK_PW=mailuser.password)
    proc = subprocess.Popen([sys.executable, "-m", "vmailkit.cli", "--db", str(db), "download", "anna", "--all",
                             "--format", "json"], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # parse workers (and the forkserver) are running beside the download
        assert wait_until(lambda: len(session_processes(proc.pid)) >= 3, 60), session_processes(proc.pid)
        os.kill(proc.pid, getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
        assert wait_until(lambda: not session_processes(proc.pid), 5), session_processes(proc.pid)
    finally:
        for pid in session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
    if sig == "SIGTERM":  # stopped between chunks: the summary, a plain note, exit 130
        assert proc.returncode == 130, err
        assert "Stopped" in err.decode() and json.loads(out)[0]["downloaded"] > 0
    # nothing half written, and the next run completes without duplicates
    counts = store.query("SELECT (SELECT count(*) FROM emails) e, (SELECT count(*) FROM email_locations) l")
    assert counts["e"].iloc[0] == counts["l"].iloc[0]
    rest = download(store, "anna", all_new=True, passwords={"office": mailuser.password})
    assert rest.ok and store.count_emails() == 2500


def test_long_response_lines_are_read_without_changing_imaplib(store):
    import imaplib

    with ScriptedImapServer(dict(MAILS), uidvalidity=7) as srv:
        p = scripted_account(store, srv)
        session = connect(store.get_account("office"), p)
        try:
            line = b"* 1 FETCH (UID 1 X-LONG \"" + b"x" * (2 * 1024 * 1024) + b"\")\r\n"
            session.mailbox.client.file = __import__("io").BufferedReader(__import__("io").BytesIO(line))
            assert len(session.mailbox.client.readline()) == len(line)  # 2 MB: over imaplib's 1 MB
        finally:
            session.mailbox = None
    # vmailkit does not raise the module's limit for everyone in the process (imap-tools sets its own 20 MB)
    assert imaplib._MAXLINE < 64 * 1024 * 1024
