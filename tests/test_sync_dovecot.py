"""Check and download against the real Dovecot started by the test suite."""
from __future__ import annotations

import hashlib

import pytest

from helpers import add_account, server_bytes_imap, server_bytes_pop3, server_flags_imap, sha
from mailfactory import make_mail
from vmailkit import Store, check, download
from vmailkit.refs import MessageRef, Watermark

pytestmark = pytest.mark.dovecot

COMBOS = [(p, s) for p in ("imap", "pop3") for s in ("ssl", "starttls", "plain")]


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "vmail.duckdb")
    s.add_user("anna", "anna@tour.example")
    s.add_user("ben", "ben@tour.example")
    return s


def pw(*users_and_names) -> dict[str, str]:
    return {name: user.password for name, user in users_and_names}


@pytest.mark.parametrize("protocol,security", COMBOS)
def test_every_protocol_and_security(store, dovecot, mailuser, protocol, security):
    for n in (1, 3, 2):
        dovecot.deliver(mailuser.name, make_mail(n, attachment=b"%PDF-1.4 fake" if n == 3 else None))
    add_account(store, dovecot, mailuser, name="office", protocol=protocol, security=security)
    store.subscribe("anna", "office")
    passwords = pw(("office", mailuser))

    result = check(store, "anna", passwords=passwords)
    assert [s.ok for s in result.statuses] == [True], result.statuses
    msgs = result.messages
    # newest first, decoded headers, attachment flag, nothing downloaded yet
    assert list(msgs["subject"]) == ["Booking 703 rooming list", "Booking 702 rooming list", "Booking 701 rooming list"]
    assert set(msgs["from_address"]) == {"reservas@hotelsol.example"}
    assert list(msgs["has_attachments"]) == [True, False, False]
    assert not msgs["already_downloaded"].any()
    assert (msgs["size"] > 100).all()

    progress: list[tuple[int, int]] = []
    summary = download(store, "anna", all_new=True, passwords=passwords, progress=lambda d, t: progress.append((d, t)))
    assert summary.ok and summary.total("downloaded") == 3
    assert progress[0] == (0, 3) and progress[-1] == (3, 3)
    stored = store.query("SELECT email_id, subject, status, raw, downloaded_by FROM emails ORDER BY sent_at")
    assert list(stored["status"]) == ["unread"] * 3
    assert stored["downloaded_by"].nunique() == 1
    # the stored bytes are exactly what the server sends
    server = server_bytes_imap(dovecot, mailuser) if protocol == "imap" else server_bytes_pop3(dovecot, mailuser)
    assert sorted(sha(bytes(r)) for r in stored["raw"]) == sorted(sha(b) for b in server.values())
    # the next check lists nothing new
    again = check(store, "anna", passwords=passwords)
    assert again.messages.empty and again.statuses[0].ok


def test_self_signed_certificate_refused_without_ca_file(store, dovecot, mailuser):
    dovecot.deliver(mailuser.name, make_mail(1))
    add_account(store, dovecot, mailuser, name="no-ca", protocol="imap", security="ssl", ca=False)
    add_account(store, dovecot, mailuser, name="no-ca-pop", protocol="pop3", security="starttls", ca=False)
    add_account(store, dovecot, mailuser, name="good", protocol="imap", security="ssl")
    for name in ("no-ca", "no-ca-pop", "good"):
        store.subscribe("anna", name)
    result = check(store, "anna", passwords=pw(("no-ca", mailuser), ("no-ca-pop", mailuser), ("good", mailuser)))
    by = {s.account: s for s in result.statuses}
    assert by["no-ca"].reason == "tls" and "certificate" in by["no-ca"].error.lower()
    assert by["no-ca-pop"].reason == "tls"
    assert by["good"].ok and by["good"].listed == 1
    assert set(result.messages["account"]) == {"good"}


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_starttls_not_offered_is_an_error(store, dovecot_notls, protocol):
    user = dovecot_notls.new_user()
    dovecot_notls.deliver(user.name, make_mail(1))
    add_account(store, dovecot_notls, user, name="weak", protocol=protocol, security="starttls")
    store.subscribe("anna", "weak")
    result = check(store, "anna", passwords=pw(("weak", user)))
    (status,) = result.statuses
    assert not status.ok and status.reason == "starttls"
    assert ("STARTTLS" if protocol == "imap" else "STLS") in status.error
    assert result.messages.empty


def test_wrong_password_fails_only_that_account(store, dovecot, mailuser):
    other = dovecot.new_user()
    dovecot.deliver(other.name, make_mail(5))
    add_account(store, dovecot, mailuser, name="bad", protocol="imap", security="ssl")
    add_account(store, dovecot, other, name="fine", protocol="pop3", security="ssl")
    store.subscribe("anna", "bad")
    store.subscribe("anna", "fine")
    secret = "definitely-wrong-Pa55"
    result = check(store, "anna", passwords={"bad": secret, "fine": other.password})
    by = {s.account: s for s in result.statuses}
    assert by["bad"].reason == "auth" and "app password" in by["bad"].error
    assert secret not in by["bad"].error
    assert by["fine"].ok and list(result.messages["subject"]) == ["Booking 705 rooming list"]
    summary = download(store, "anna", all_new=True, passwords={"bad": secret, "fine": other.password})
    entries = {a.account: a for a in summary.accounts}
    assert entries["bad"].reason == "auth" and entries["fine"].downloaded == 1


def test_missing_secret_names_account_and_reference(store, dovecot, mailuser, monkeypatch):
    monkeypatch.delenv("VMK_NOT_SET", raising=False)
    add_account(store, dovecot, mailuser, name="office", password_env="VMK_NOT_SET")
    store.subscribe("anna", "office")
    (status,) = check(store, "anna").statuses
    assert status.reason == "secret" and "office" in status.error and "env:VMK_NOT_SET" in status.error
    monkeypatch.setenv("VMK_NOT_SET", mailuser.password)
    (status,) = check(store, "anna").statuses
    assert status.ok


def test_incremental_imap_and_from_beginning(store, dovecot, mailuser):
    for n in range(1, 4):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    p = pw(("office", mailuser))
    assert download(store, "anna", all_new=True, passwords=p).total("downloaded") == 3
    for n in range(4, 6):
        dovecot.deliver(mailuser.name, make_mail(n))
    new = check(store, "anna", passwords=p).messages
    # only the two newer ones, and not the last downloaded one again (UID n:* pitfall)
    assert list(new["subject"]) == ["Booking 705 rooming list", "Booking 704 rooming list"]
    everything = check(store, "anna", from_beginning=True, passwords=p).messages
    assert len(everything) == 5
    assert dict(zip(everything["subject"], everything["already_downloaded"])) == {
        "Booking 705 rooming list": False, "Booking 704 rooming list": False, "Booking 703 rooming list": True,
        "Booking 702 rooming list": True, "Booking 701 rooming list": True,
    }
    summary = download(store, "anna", all_new=True, from_beginning=True, passwords=p)
    assert summary.total("downloaded") == 2 and summary.total("already_present") == 3
    assert store.count_emails() == 5


def test_picked_messages_only_and_watermark_is_biggest_uid(store, dovecot, mailuser):
    for n in range(1, 5):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    p = pw(("office", mailuser))
    listed = check(store, "anna", passwords=p).messages
    pick = listed[listed["subject"] == "Booking 702 rooming list"]
    summary = download(store, "anna", picks=pick, passwords=p)
    assert summary.total("downloaded") == 1
    assert list(store.query("SELECT subject FROM emails")["subject"]) == ["Booking 702 rooming list"]
    # like the reference product: the biggest downloaded UID is the watermark
    assert list(check(store, "anna", passwords=p).messages["subject"]) == ["Booking 704 rooming list", "Booking 703 rooming list"]
    # picks as text references; a UID that is not on the server is that pick's failure, said plainly
    ref = listed[listed["subject"] == "Booking 704 rooming list"]["ref"].iloc[0]
    gone = MessageRef("office", "INBOX", ref.uidvalidity, uid=99999)
    summary = download(store, "anna", picks=[ref.to_text(), gone.to_text()], passwords=p)
    (entry,) = summary.accounts
    assert (entry.downloaded, entry.failed) == (1, 1) and not summary.ok
    assert [f.ref for f in entry.failures] == [gone] and "no longer on the server" in entry.failures[0].reason


def test_user_watermark_is_per_user(store, dovecot, mailuser):
    for n in range(1, 3):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    store.subscribe("ben", "office")
    p = pw(("office", mailuser))
    download(store, "anna", all_new=True, passwords=p)
    assert check(store, "anna", passwords=p).messages.empty
    ben = check(store, "ben", passwords=p).messages
    assert len(ben) == 2 and ben["already_downloaded"].all()
    summary = download(store, "ben", all_new=True, passwords=p)
    assert summary.total("downloaded") == 0 and summary.total("already_present") == 2
    assert store.count_emails() == 2


def test_uidvalidity_change_lists_again_without_duplicates(store, dovecot, mailuser):
    for n in range(1, 4):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    p = pw(("office", mailuser))
    download(store, "anna", all_new=True, passwords=p)
    old = dovecot.uidvalidity(mailuser.name)
    new = dovecot.reset_uidvalidity(mailuser.name)
    assert new != old
    relisted = check(store, "anna", passwords=p).messages
    assert len(relisted) == 3 and set(relisted["uidvalidity"]) == {new}
    summary = download(store, "anna", all_new=True, passwords=p)
    assert summary.total("downloaded") == 0 and summary.total("already_present") == 3
    assert store.count_emails() == 3
    locs = store.locations()
    assert sorted(set(locs["uidvalidity"])) == sorted({old, new}) and len(locs) == 6
    assert check(store, "anna", passwords=p).messages.empty


def test_pop3_uidl_incremental(store, dovecot, mailuser):
    for n in range(1, 3):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="pop", protocol="pop3", security="ssl")
    store.subscribe("anna", "pop")
    p = pw(("pop", mailuser))
    download(store, "anna", all_new=True, passwords=p)
    dovecot.deliver(mailuser.name, make_mail(3))
    new = check(store, "anna", passwords=p).messages
    assert list(new["subject"]) == ["Booking 703 rooming list"]
    # a POP3 message is named by its UIDL: the one the server gives for that message, carried in its reference
    ref = new["ref"].iloc[0]
    server = server_bytes_pop3(dovecot, mailuser)
    assert ref.uid is None and new["uid"].iloc[0] == ref.uidl and ref.uidl in server
    assert b"Booking 703" in server[ref.uidl]
    assert len(check(store, "anna", from_beginning=True, passwords=p).messages) == 3
    assert download(store, "anna", all_new=True, passwords=p).total("downloaded") == 1
    # POP3 never deletes: all three are still on the server
    assert len(server_bytes_pop3(dovecot, mailuser)) == 3


def test_same_mail_in_two_accounts_stored_once(store, dovecot, mailuser):
    personal_box = dovecot.new_user()
    mail = make_mail(1, attachment=b"%PDF-1.4 the list")
    dovecot.deliver(mailuser.name, b"Received: from mx1.example by office.example; Mon, 2 Nov 2026\r\n"
                    b"Delivered-To: office@tour.example\r\n" + mail)
    dovecot.deliver(personal_box.name, b"Received: from mx2.example by anna.example; Mon, 2 Nov 2026\r\n"
                    b"Delivered-To: anna@tour.example\r\nX-Original-To: anna@tour.example\r\n" + mail)
    add_account(store, dovecot, mailuser, name="office")
    add_account(store, dovecot, personal_box, name="anna-mail", kind="personal", owner="anna", protocol="pop3")
    store.subscribe("anna", "office")
    store.subscribe("anna", "anna-mail")
    summary = download(store, "anna", all_new=True, passwords=pw(("office", mailuser), ("anna-mail", personal_box)))
    assert summary.total("downloaded") == 1 and summary.total("already_present") == 1
    assert store.count_emails() == 1
    locs = store.locations()
    assert sorted(locs["account"]) == ["anna-mail", "office"]
    # both copies' exact bytes are retrievable through their location's sha256
    for digest in locs["raw_sha256"]:
        assert sha(store.location_bytes(digest)) == digest
    assert len(set(locs["raw_sha256"])) == 2


def test_different_mails_sharing_a_message_id_are_two(store, dovecot, mailuser):
    dovecot.deliver(mailuser.name, make_mail(1, message_id="<template@mailer.example>", body="First mail"))
    dovecot.deliver(mailuser.name, make_mail(2, message_id="<template@mailer.example>", body="Second mail"))
    dovecot.deliver(mailuser.name, make_mail(3, message_id=False, body="No id"))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    download(store, "anna", all_new=True, passwords=pw(("office", mailuser)))
    got = store.query("SELECT message_id, body_text FROM emails ORDER BY email_id")
    assert len(got) == 3
    assert list(got["message_id"][:2]) == ["template@mailer.example"] * 2


def test_raw_bytes_equal_server_bytes_even_for_bare_lf_and_long_lines(store, dovecot, mailuser):
    long_line = "x" * 20000
    dovecot.deliver(mailuser.name, make_mail(1, eol="\n"))
    dovecot.deliver(mailuser.name, make_mail(2, body=f"start\n{long_line}\nend"))
    add_account(store, dovecot, mailuser, name="imap")
    add_account(store, dovecot, mailuser, name="pop", protocol="pop3")
    store.subscribe("anna", "imap")
    store.subscribe("anna", "pop")
    summary = download(store, "anna", all_new=True, passwords=pw(("imap", mailuser), ("pop", mailuser)))
    assert summary.ok and summary.total("failed") == 0
    imap_bytes = server_bytes_imap(dovecot, mailuser)
    pop_bytes = server_bytes_pop3(dovecot, mailuser)
    assert all(b"\n" not in b.replace(b"\r\n", b"") for b in imap_bytes.values())  # server sends CRLF
    locs = store.locations()
    assert sorted(locs[locs["account"] == "imap"]["raw_sha256"]) == sorted(sha(b) for b in imap_bytes.values())
    assert sorted(locs[locs["account"] == "pop"]["raw_sha256"]) == sorted(sha(b) for b in pop_bytes.values())
    text = store.query("SELECT body_text FROM emails WHERE body_text LIKE '%start%'")["body_text"].iloc[0]
    assert long_line in text


def test_server_is_never_changed(store, dovecot, mailuser):
    for n in range(1, 3):
        dovecot.deliver(mailuser.name, make_mail(n))
    before = server_flags_imap(dovecot, mailuser)
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    download(store, "anna", all_new=True, passwords=pw(("office", mailuser)))
    after = server_flags_imap(dovecot, mailuser)
    assert all(b"\\Seen" not in v for v in after.values())
    assert before.keys() == after.keys()


def test_cancel_between_chunks_and_resume(store, dovecot, mailuser, monkeypatch):
    import threading

    from vmailkit.transport import imap as imap_transport

    monkeypatch.setattr(imap_transport, "BODY_CHUNK_MAX", 2)
    for n in range(1, 8):
        dovecot.deliver(mailuser.name, make_mail(n))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    p = pw(("office", mailuser))
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 2:
            cancel.set()

    seen: list[int] = []
    summary = download(store, "anna", all_new=True, passwords=p, cancel=cancel,
                       progress=lambda d, t: (seen.append(d), progress(d, t)))
    got = summary.total("downloaded")
    # stopped between chunks: what was fetched is stored, the rest is left for the next run
    assert summary.cancelled and 2 <= got < 7 and got % 2 == 0 and seen[-1] == got
    assert summary.total("failed") == 0
    assert len(check(store, "anna", passwords=p).messages) == 7 - got
    rest = download(store, "anna", all_new=True, passwords=p)
    assert rest.total("downloaded") == 7 - got and store.count_emails() == 7


def test_crash_inside_a_chunk_leaves_nothing_half_written(store, dovecot, mailuser, monkeypatch):
    from vmailkit.store import mail as store_mail
    from vmailkit.transport import imap as imap_transport

    monkeypatch.setattr(imap_transport, "BODY_CHUNK_MAX", 3)
    for n in range(1, 8):
        dovecot.deliver(mailuser.name, make_mail(n, attachment=b"pdf"))
    add_account(store, dovecot, mailuser, name="office")
    store.subscribe("anna", "office")
    p = pw(("office", mailuser))
    real_advance = store_mail.MailMixin._advance
    calls = {"n": 0}

    def flaky_advance(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionResetError("simulated crash while writing chunk 2")
        return real_advance(*args, **kwargs)

    monkeypatch.setattr(store_mail.MailMixin, "_advance", staticmethod(flaky_advance))
    summary = download(store, "anna", all_new=True, passwords=p)
    assert not summary.ok and summary.total("downloaded") == 3
    counts = store.query(
        "SELECT (SELECT count(*) FROM emails) e, (SELECT count(*) FROM email_locations) l,"
        " (SELECT count(*) FROM attachments) a, (SELECT max(last_uid) FROM sync_state) w")
    assert counts.iloc[0].tolist() == [3, 3, 3, 3]
    monkeypatch.setattr(store_mail.MailMixin, "_advance", staticmethod(real_advance))
    rest = download(store, "anna", all_new=True, passwords=p)
    assert rest.ok and rest.total("downloaded") == 4 and store.count_emails() == 7


def test_corpus_all_stored_byte_exact(store, dovecot, mailuser, corpus_dir):
    files = sorted(corpus_dir.rglob("*.eml"))
    assert len(files) >= 200
    for f in files:
        dovecot.deliver(mailuser.name, f.read_bytes())
    add_account(store, dovecot, mailuser, name="corpus")
    store.subscribe("anna", "corpus")
    p = pw(("corpus", mailuser))
    listed = check(store, "anna", passwords=p)
    assert listed.statuses[0].ok and len(listed.messages) == len(files)
    # the header check's fast FETCH reader agrees with the full FETCH parser on every real mail
    from vmailkit.sync import connect
    from vmailkit.transport.imap import HEADER_FIELDS
    from vmailkit.transport.imap_response import body_item, fast_header_items, has_attachments, parse_fetch

    with connect(store.get_account("corpus"), p) as session:
        data = session._uid("FETCH", "1:*", f"(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({HEADER_FIELDS})])")
    fast = fast_header_items(data)
    slow = [(int(m["UID"]), int(m["RFC822.SIZE"]), body_item(m) or b"", has_attachments(m["BODYSTRUCTURE"]))
            for m in parse_fetch(data)]
    assert fast is not None and fast == slow
    assert 40 < sum(1 for *_, att in fast if att) < len(files)
    summary = download(store, "anna", all_new=True, passwords=p)
    assert summary.ok and summary.total("failed") == 0
    locs = store.locations()
    assert len(locs) == len(files)
    server = server_bytes_imap(dovecot, mailuser)
    assert sorted(locs["raw_sha256"]) == sorted(sha(b) for b in server.values())
    with store.session():
        for digest in set(locs["raw_sha256"]):
            assert hashlib.sha256(store.location_bytes(digest)).hexdigest() == digest
    # identical files may be one mail; different mails are never merged
    distinct_bodies = len({sha(b) for b in server.values()})
    assert store.count_emails() <= distinct_bodies
    # every attachment reads back through the `attachments` view as the parser decoded it, whether
    # it is kept as a place in `emails.raw` or as a copy
    with store.db.connect() as con:
        kinds = dict(con.execute(
            "SELECT coalesce(content_encoding, 'copy'), count(*) FROM attachment_parts GROUP BY 1").fetchall())
        bad = con.execute("SELECT email_id, part_index FROM attachments"
                          " WHERE content IS NULL OR sha256(content) <> sha256 OR octet_length(content) <> size").fetchall()
    assert kinds.get("base64", 0) > 10 and kinds.get("copy", 0) > 10
    assert bad == []


def test_pop3_pipelined_listing_keeps_order(store, dovecot, mailuser):
    from vmailkit.sync import connect

    for n in range(1, 76):
        dovecot.deliver(mailuser.name, make_mail(n))
    acc = add_account(store, dovecot, mailuser, name="pop", protocol="pop3", security="ssl")
    with connect(acc, {"pop": mailuser.password}) as session:
        assert session._pipelining  # Dovecot announces PIPELINING: TOP/RETR go out in windows
        uidls = session.uidls()
        refs = session.new_refs(Watermark.empty())
        assert [r.uidl for r in refs] == uidls
        headers = list(session.headers(refs))
        assert [h.key for h in headers] == uidls
        subjects = [h.header.split(b"Subject: ")[1].split(b"\r\n")[0] for h in headers]
        assert subjects == [f"Booking {700 + n} rooming list".encode() for n in range(1, 76)]
        chunks = list(session.fetch(list(reversed(refs))))
        fetched = [m for chunk in chunks for m in chunk.messages]
        assert not any(c.failures or c.interrupted for c in chunks)
        assert [m.key for m in fetched] == list(reversed(uidls))
        assert all(m.raw.startswith(b"From: Hotel Sol") for m in fetched)
