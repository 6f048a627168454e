"""The store without a server: identity, chunk writes, listing filters, locking."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mailfactory import make_mail
from vmailkit import EmailFilter, Store, StoreLockedError, ValidationError, make_account
from vmailkit.ingest import identity_key, save_received
from vmailkit.refs import Watermark
from vmailkit.store.migrations import MIGRATIONS


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "v.duckdb", lock_timeout=1.0)
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                               address="o@x.example", secret="env:X"))
    s.add_account(make_account("pop", kind="general", protocol="pop3", host="h", security="ssl",
                               address="p@x.example", secret="env:X"))
    return s


def save(store: Store, account: str, msgs: list[tuple[str, bytes]], uidvalidity: int = 7):
    return save_received(store, "anna", account, msgs, uidvalidity=uidvalidity)


def test_identity_ignores_transport_headers_only():
    mail = make_mail(1)
    relayed = b"Received: from a by b\r\n\tid 42; Mon, 2 Nov 2026\r\nDelivered-To: x@y\r\nReturn-Path: <z@w>\r\n" + mail
    assert identity_key(mail) == identity_key(relayed)
    assert identity_key(mail) == identity_key(mail.replace(b"\r\n", b"\n"))
    assert identity_key(mail) == identity_key(mail.rstrip(b"\r\n"))           # POP3 adds the last line break
    # a trace field anywhere in the header block, folded or not, with a server's spam verdict
    head, _, body = mail.partition(b"\r\n\r\n")
    traced = head + b"\r\nX-Spam-Status: No, score=-1.0\r\nAuthentication-Results: mx; spf=pass\r\n\r\n" + body
    assert identity_key(traced) == identity_key(mail)
    # every other header and the whole body take part
    assert identity_key(mail) != identity_key(make_mail(1, body="other body"))
    assert identity_key(mail) != identity_key(make_mail(1, subject="Other subject"))
    assert identity_key(mail) != identity_key(mail.replace(b"\r\n\r\n", b"\r\nX-Mailer: other\r\n\r\n", 1))
    assert identity_key(mail) != identity_key(mail + b"one more line\r\n")


def test_identity_never_merges_different_mails_without_the_usual_headers():
    # mails without an empty line, without Date/From/Message-ID, sharing only a Subject or a Message-ID
    no_blank = [b"Subject: hello\r\nfirst mail", b"Subject: hello\r\nsecond mail"]
    headerless = [b"just some text\r\n", b"other text\r\n"]
    same_subject = [b"Subject: Booking 701\r\n\r\nconfirmed\r\n", b"Subject: Booking 701\r\n\r\ncancelled\r\n"]
    same_id = [b"Message-ID: <1@x>\r\n\r\nA\r\n", b"Message-ID: <1@x>\r\n\r\nB\r\n"]
    header_only = [b"Subject: a\r\n", b"Subject: b\r\n"]
    for a, b in (no_blank, headerless, same_subject, same_id, header_only):
        assert identity_key(a) != identity_key(b), (a, b)


def test_chunk_dedup_locations_and_copies(store):
    mail = make_mail(1, attachment=b"%PDF")
    relayed = b"Received: from relay\r\n" + mail
    r1 = save(store, "office", [("1", mail), ("2", make_mail(2)), ("3", relayed)])
    assert len(r1.new_ids) == 2 and r1.by_key["1"] == r1.by_key["3"]
    r2 = save(store, "pop", [("uidl-a", relayed)])
    assert r2.new_ids == [] and r2.present_ids == [r1.by_key["1"]]
    assert store.count_emails() == 2
    locs = store.locations(r1.by_key["1"])
    assert len(locs) == 3 and set(locs["account"]) == {"office", "pop"}
    assert set(locs[locs["account"] == "pop"]["uidl"]) == {"uidl-a"}
    assert store.location_bytes(locs["raw_sha256"].iloc[-1]) in (mail, relayed)
    assert store.raw_bytes(r1.by_key["1"]) == mail
    att = store.attachments(r1.by_key["1"], with_content=True)
    assert list(att["filename"]) == ["list.pdf"] and bytes(att["content"].iloc[0]) == b"%PDF"
    # saving the same locations again changes nothing
    save(store, "office", [("1", mail)])
    assert len(store.locations()) == 4 and store.count_emails() == 2
    # watermark: biggest UID for IMAP, UIDL set for POP3
    anna = store.get_user("anna").user_id
    office = store.watermark(anna, store.get_account("office").account_id, "INBOX")
    assert (office.uidvalidity, office.last_uid) == (7, 3)
    assert store.watermark(anna, store.get_account("pop").account_id, "INBOX").uidls == {"uidl-a"}
    save(store, "office", [("1", make_mail(5))], uidvalidity=8)
    office = store.watermark(anna, store.get_account("office").account_id, "INBOX")
    assert (office.uidvalidity, office.last_uid) == (8, 1)
    assert store.watermark(anna, 999, "INBOX") == Watermark.empty()


def test_unparseable_message_is_stored_with_raw_bytes(store):
    garbage = b"\x00\xff\xfe not a mail at all \r\n\r\n\x80\x81"
    r = save(store, "office", [("1", garbage)])
    row = store.get_email(r.new_ids[0])
    assert bytes(row["raw"]) == garbage and row["status"] == "unread"


def test_listing_filters_are_parameters_and_pages(store):
    save(store, "office", [(str(n), make_mail(n, subject=f"Offer {n} 100% off_x")) for n in range(1, 26)])
    save(store, "pop", [("u1", make_mail(99, subject="Rooming list"))])
    page1 = store.list_emails(limit=10)
    page3 = store.list_emails(limit=10, offset=20)
    assert len(page1) == 10 and len(page3) == 6
    assert page1["sent_at"].is_monotonic_decreasing
    assert store.count_matching(EmailFilter(account="pop")) == 1
    assert store.count_matching(EmailFilter(search="100%")) == 25
    assert store.count_matching(EmailFilter(search="100_")) == 0       # _ is literal, not a wildcard
    assert store.count_matching(EmailFilter(search="'; DROP TABLE emails; --")) == 0
    assert store.count_emails() == 26
    first = int(page1["email_id"].iloc[0])
    store.set_status(first, "read")
    assert store.count_matching(EmailFilter(status="unread")) == 25
    with pytest.raises(ValidationError, match="status"):
        store.set_status(first, "archived")


def test_locked_file_fails_with_the_holder_named(tmp_path):
    db = tmp_path / "busy.duckdb"
    Store(db).init()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
         " time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with pytest.raises(StoreLockedError) as info:
            Store(db, lock_timeout=0.5).count_emails()
        assert time.monotonic() - start < 10
        assert f"PID {holder.pid}" in str(info.value) and str(db) in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    assert Store(db).count_emails() == 0  # usable again once released


def _multipart(parts: list[tuple[str, str, bytes]], eol: bytes = b"\r\n") -> bytes:
    """A multipart/mixed mail whose parts are (content type, transfer encoding, encoded body)."""
    out = [b"From: a@x.example", b"To: b@x.example", b"Subject: parts", b"Message-ID: <parts@x.example>",
           b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="BB"', b"", b"--BB",
           b"Content-Type: text/plain", b"", b"body", ]
    for i, (ctype, cte, body) in enumerate(parts):
        out += [b"--BB", f"Content-Type: {ctype}".encode(),
                f'Content-Disposition: attachment; filename="f{i}.bin"'.encode(),
                f"Content-Transfer-Encoding: {cte}".encode(), b"", body]
    out += [b"--BB--", b""]
    return eol.join(out)


def test_attachments_kept_as_places_in_raw_read_back_exactly(store):
    import base64
    import hashlib
    import quopri
    import random

    rnd = random.Random(5)
    blob = bytes(rnd.randrange(256) for _ in range(30_000))
    text = ("Zimmerliste für Gruppe 4711 – " * 200).encode("utf-8")
    b64_crlf = base64.encodebytes(blob).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    parts = [
        ("application/pdf", "base64", b64_crlf),                                  # a place, base64
        ("application/octet-stream", "base64", base64.b64encode(blob[:5000])),    # one long line
        ("text/csv; charset=utf-8", "8bit", text),                                # a place, identity
        ("text/csv; charset=utf-8", "quoted-printable", quopri.encodestring(text)),  # copy: QP
        ("application/pdf", "base64", b64_crlf.replace(b"\r\n", b" \r\n", 3)),   # copy: spaces in base64
        ("application/pdf", "base64", b64_crlf[:-10] + b"!!" + b64_crlf[-8:]),   # copy: broken base64
        ("image/png", "base64", base64.b64encode(blob[:300])),                    # copy: small
    ]
    raw = _multipart(parts)
    lf_raw = _multipart(parts[:1], eol=b"\n").replace(b"parts@", b"lf@")
    save(store, "office", [("1", raw), ("2", lf_raw)])
    with store.db.connect() as con:
        rows = con.execute(
            "SELECT p.email_id, p.part_index, p.content_encoding, p.content IS NULL, a.content, a.sha256, a.size"
            " FROM attachment_parts p JOIN attachments a USING (email_id, part_index)"
            " ORDER BY p.email_id, p.part_index").fetchall()
    by_mail = [r for r in rows if r[0] == rows[0][0]]
    assert [r[2] for r in by_mail] == ["base64", "base64", "identity", None, None, None, None]
    assert [r[3] for r in by_mail] == [True, True, True, False, False, False, False]  # no second copy
    expected = [blob, blob[:5000], text, text]
    for r, want in zip(by_mail, expected):
        assert bytes(r[4]) == want
    for r in rows:
        assert hashlib.sha256(bytes(r[4])).hexdigest() == r[5] and len(r[4]) == r[6]
    lf = [r for r in rows if r[0] != rows[0][0]]
    assert len(lf) == 1 and lf[0][2] == "base64" and bytes(lf[0][4]) == blob
    # the Python API reads the same bytes
    eid = rows[0][0]
    assert [bytes(c) for c in store.attachments(eid, with_content=True)["content"][:3]] == expected[:3]


def store_before(path, migration: str):
    """A database file as an earlier version left it: the migrations before ``migration`` applied."""
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _vmailkit_migrations (name VARCHAR PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)")
    names = [name for name, _ in MIGRATIONS]
    for name, sql in MIGRATIONS[: names.index(migration)]:
        con.execute(sql)
        con.execute("INSERT INTO _vmailkit_migrations (name) VALUES (?)", [name])
    return con


def test_migration_keeps_attachments_written_before_places(tmp_path):
    path = tmp_path / "old.duckdb"
    con = store_before(path, "0004_attachment_places")
    con.execute("INSERT INTO emails (email_id, dedup_key, fingerprint, has_attachments, size, raw, raw_sha256,"
                " downloaded_at) VALUES (1, 'k', 'f', true, 3, 'abc'::BLOB, 's', now())")
    con.execute("INSERT INTO attachments VALUES (1, 0, 'old.pdf', 'application/pdf', 4, 'x', false, NULL,"
                " '\\x00\\x01ab'::BLOB)")
    con.close()
    store = Store(path)
    assert store.db.applied_migrations()[-1] == MIGRATIONS[-1][0]
    df = store.attachments(1, with_content=True)
    assert df["filename"].tolist() == ["old.pdf"] and bytes(df["content"][0]) == b"\x00\x01ab"


def test_store_of_an_earlier_version_is_rekeyed_once_and_recognises_copies(tmp_path):
    from vmailkit.ingest import IDENTITY_RULE

    path = tmp_path / "old.duckdb"
    con = store_before(path, "0005_identity_rule")
    mails = [make_mail(1), make_mail(2)]
    for i, raw in enumerate(mails, 1):  # keys by the old rule (any value that is not the new one)
        con.execute("INSERT INTO emails (email_id, dedup_key, fingerprint, has_attachments, size, raw, raw_sha256,"
                    " downloaded_at) VALUES (?, ?, 'old', false, ?, ?, 's', now())", [i, f"old-{i}", len(raw), raw])
    con.execute("SELECT nextval('email_id_seq') FROM range(2)").fetchall()  # as the old version did
    con.close()
    store = Store(path)
    assert store.identity_rule() == "fingerprint-1"
    store.add_user("anna")
    store.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                                   address="o@x.example", secret="env:X"))
    relayed = b"Received: from relay by mx\r\nDelivered-To: o@x.example\r\n" + mails[0]
    res = save_received(store, "anna", "office", [(1, relayed), (2, make_mail(3))])
    assert store.identity_rule() == IDENTITY_RULE
    assert res.present_ids == [1] and len(res.new_ids) == 1 and store.count_emails() == 3
    keys = store.query("SELECT email_id, dedup_key FROM emails ORDER BY email_id")
    assert keys["dedup_key"].tolist()[:2] == [identity_key(m) for m in mails]
