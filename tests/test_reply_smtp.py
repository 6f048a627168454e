"""Replies sent to a real SMTP server on loopback (aiosmtpd with STARTTLS, SMTPS and AUTH).

Every test checks what the server received (envelope and DATA bytes) and what the store kept.
The Sent-folder test also uses the private Dovecot of the test suite.
"""
from __future__ import annotations

import email
import hashlib
from email import policy

import pytest
from click.testing import CliRunner

pytest.importorskip("aiosmtpd", reason="aiosmtpd (the dev extra) runs the test SMTP server")

from helpers import add_account, server_bytes_imap  # noqa: E402
from mailfactory import make_mail  # noqa: E402
from smtpserver import SmtpServer, make_certs  # noqa: E402
from vmailkit import (  # noqa: E402
    AuthError,
    EmailFilter,
    SecretError,
    SendError,
    StartTLSNotOffered,
    Store,
    TLSFailure,
    compose_reply,
    make_account,
    make_smtp_settings,
    send_reply,
)
from vmailkit.cli import main  # noqa: E402
from vmailkit.ingest import save_received  # noqa: E402

# aiosmtpd warns about AUTH without STARTTLS also for implicit TLS (SMTPS) and the deliberate plain server
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

OWN = "office@tour.example"
PW = "Smtp-Secret-42"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp(certs, tmp_path):
    """STARTTLS required, AUTH required (offered only after STARTTLS)."""
    with SmtpServer(tmp_path, mode="starttls", users={OWN: PW}, certs=certs) as srv:
        yield srv


@pytest.fixture
def smtps(certs, tmp_path):
    """Implicit TLS (SMTPS), AUTH required."""
    with SmtpServer(tmp_path, mode="ssl", users={OWN: PW}, certs=certs) as srv:
        yield srv


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "v.duckdb", lock_timeout=5.0)
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="mail.tour.example", security="ssl",
                               address=OWN, secret="env:VMK_OFFICE_PW"))
    s.subscribe("anna", "office")
    return s


def use_smtp(store: Store, srv: SmtpServer, *, security: str | None = None, ca: bool = True, secret: str = "prompt:",
             account: str = "office", login: str = OWN) -> None:
    store.set_smtp(account, make_smtp_settings(
        host=srv.host, port=srv.port, security=security or srv.mode, login=login, secret=secret,
        ca_file=srv.ca_file if ca else None))


def save(store: Store, raw: bytes, uid: int = 1, account: str = "office") -> int:
    acc = store.get_account(account)
    r = save_received(store, "anna", acc.name, [(uid, raw)], uidvalidity=7)
    return (r.new_ids or r.present_ids)[0]


def add_crm(store: Store) -> None:
    with store.db.atomic() as con:
        con.execute("INSERT INTO customers (customer_id, name) VALUES (10, 'Hotel Sol')")
        con.execute("INSERT INTO reservations (reservation_id, booking_code, customer_id) VALUES (7, 'B701', 10)")
        con.execute("INSERT INTO persons (person_id, first_name, email) VALUES (1, 'Ana', 'reservas@hotelsol.example')")


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


PASSWORDS = {"office:smtp": PW}
MANY = dict(
    sender='"Sol, Hotel" <Reservas@HotelSol.example>',
    to=f"Office <{OWN}>, Ana <ana@x.example>",
    extra_headers="Cc: Bo <bo@y.example>, OFFICE@tour.example\nReply-To: Desk <desk@hotelsol.example>"
                  "\nReferences: <root@hotelsol.example>",
)


def test_reply_sent_over_starttls_and_stored_as_received(store, smtp):
    use_smtp(store, smtp)
    add_crm(store)
    original = save(store, make_mail(1))
    store.add_links([original], [("customer", 10), ("reservation", 7)], user="anna")
    store.match_emails([original])                      # plus an automatic link (person.email)
    before = store.relations(original)
    assert len(before) == 3

    draft = compose_reply(store, original, body="Thank you, received.", user="anna")
    new_id = send_reply(store, draft, user="anna", passwords=PASSWORDS)

    (got,) = smtp.messages
    assert got.mail_from == OWN and got.rcpt_tos == ["reservas@hotelsol.example"] and got.login == OWN and got.tls
    # the stored copy is exactly what the server received
    row = store.get_email(new_id)
    assert bytes(row["raw"]) == got.content
    assert row["raw_sha256"] == hashlib.sha256(got.content).hexdigest() and row["size"] == len(got.content)
    assert (row["direction"], row["status"]) == ("outgoing", "read")
    assert row["downloaded_by"] == store.get_user("anna").user_id
    msg = parse(got.content)
    assert msg["To"] == "Hotel Sol <reservas@hotelsol.example>" and msg["Cc"] is None
    assert msg["Subject"] == "Re: Booking 701 rooming list"
    assert msg["In-Reply-To"] == "<mail1@hotelsol.example>" and msg["References"] == "<mail1@hotelsol.example>"
    assert msg["Message-ID"].endswith("@tour.example>") and msg["Message-ID"] != "<mail1@hotelsol.example>"
    assert msg["Date"].datetime.tzinfo is not None
    # the parsed columns are filled like for received mail
    assert row["from_address"] == OWN and row["to_addresses"] == ["reservas@hotelsol.example"]
    assert row["subject"] == "Re: Booking 701 rooming list" and row["in_reply_to"] == "mail1@hotelsol.example"
    assert row["message_id"] == msg["Message-ID"].strip("<>") and row["sent_at"] is not None
    assert row["body_text"].replace("\r\n", "\n").startswith("Thank you, received.\n\nOn Mon, 02 Nov 2026")
    assert "> please find the list for booking 701." in row["body_text"]
    assert row["parse_error"] is None and not row["has_attachments"]
    # how it was sent
    sent = store.sent_info(new_id)
    assert sent["account"] == "office" and sent["in_reply_to_email_id"] == original and not sent["reply_all"]
    assert list(sent["envelope_to"]) == ["reservas@hotelsol.example"] and sent["smtp_response"].startswith("250")
    assert sent["sent_by"] == store.get_user("anna").user_id and sent["sent_folder"] is None
    assert store.locations(new_id).empty               # not appended anywhere: no server location
    # every link of the original, copied as automatic reply.thread links
    links = store.relations(new_id)
    assert sorted(zip(links["entity_type"], links["entity_id"])) == sorted(zip(before["entity_type"], before["entity_id"]))
    assert set(links["origin"]) == {"auto"} and set(links["rule"]) == {"reply.thread"}
    assert store.relations(original).equals(before)    # the original's links are unchanged
    # shown in the mail list
    listed = store.list_emails(EmailFilter(direction="outgoing"))
    assert list(listed["email_id"]) == [new_id] and listed["related_count"].iloc[0] == 3
    assert listed["accounts"].iloc[0] == "office"
    # ... also under the sending account and for the users subscribed to it, though it has no location
    assert new_id in set(store.list_emails(EmailFilter(account="office"))["email_id"])
    assert new_id in set(store.list_emails(EmailFilter(user="anna"))["email_id"])
    store.add_user("zoe")
    assert store.count_matching(EmailFilter(user="zoe")) == 0
    assert store.count_emails() == 2


def test_reply_all_and_reply_to_an_outgoing_mail(store, smtp):
    use_smtp(store, smtp)
    original = save(store, make_mail(1, **MANY))
    new_id = send_reply(store, compose_reply(store, original, reply_all=True, body="To all"), passwords=PASSWORDS)
    (got,) = smtp.messages
    assert got.rcpt_tos == ["desk@hotelsol.example", "ana@x.example", "bo@y.example"]
    msg = parse(got.content)
    assert msg["To"] == "Desk <desk@hotelsol.example>" and msg["Cc"] == "Ana <ana@x.example>, Bo <bo@y.example>"
    assert OWN not in got.content.decode().lower().split("\r\n\r\n")[0].replace(f"from: {OWN}", "")
    assert store.sent_info(new_id)["reply_all"]

    # replying to the outgoing mail goes to its recipients again, one Re:, the thread grows
    draft = compose_reply(store, new_id)
    assert draft.account == "office" and draft.to == ("Desk <desk@hotelsol.example>",) and draft.cc == ()
    assert draft.subject == "Re: Booking 701 rooming list"
    second = send_reply(store, compose_reply(store, new_id, reply_all=True, body="Follow-up"), passwords=PASSWORDS)
    got2 = smtp.messages[1]
    msg2 = parse(got2.content)
    assert got2.rcpt_tos == ["desk@hotelsol.example", "ana@x.example", "bo@y.example"]
    assert msg2["Subject"] == "Re: Booking 701 rooming list"
    assert msg2["In-Reply-To"] == msg["Message-ID"]
    assert msg2["References"].split() == ["<root@hotelsol.example>", "<mail1@hotelsol.example>", msg["Message-ID"]]
    assert bytes(store.get_email(second)["raw"]) == got2.content


def test_html_reply_quotes_sanitised_html(store, smtp):
    use_smtp(store, smtp)
    html = ('<html><head><style>body{background:url(http://t.example/x)}</style><script>steal()</script></head>'
            '<body><p onclick="evil()">Dear <b>team</b>,</p><a href="javascript:alert(1)">click</a>'
            '<img src="http://tracker.example/p.gif" onerror="evil()"><p>the list &amp; more</p></body></html>')
    raw = (
        "From: Hotel Sol <reservas@hotelsol.example>\r\nTo: office@tour.example\r\nSubject: =?utf-8?q?B=C3=BCro?=\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <html1@hotelsol.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="ALT"\r\n\r\n'
        "--ALT\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDear team,\r\nthe list & more\r\n"
        f"--ALT\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--ALT--\r\n"
    ).encode()
    original = save(store, raw)
    body = "Danke! <b>not bold</b>\nZweite Zeile"
    new_id = send_reply(store, compose_reply(store, original, body=body), passwords=PASSWORDS)
    (got,) = smtp.messages
    assert got.content.isascii()
    msg = parse(got.content)
    assert msg.get_content_type() == "multipart/alternative" and msg["Subject"] == "Re: Büro"
    text = msg.get_body(("plain",)).get_content()
    assert "Danke! <b>not bold</b>" in text and "> Dear team," in text
    out = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "Danke! &lt;b&gt;not bold&lt;/b&gt;<br>\nZweite Zeile" in out
    assert '<blockquote type="cite"' in out and "<b>team</b>" in out and "the list &amp; more" in out
    lowered = out.lower()
    for bad in ("<script", "steal()", "onclick", "onerror", "evil()", "javascript:", "<style", "url(http"):
        assert bad not in lowered, bad
    row = store.get_email(new_id)
    assert row["body_html"].replace("\r\n", "\n") == out and bytes(row["raw"]) == got.content


def test_attachments_and_non_ascii_names(store, smtp, tmp_path):
    use_smtp(store, smtp)
    original = save(store, make_mail(1, subject="Büro – Zimmer für Jörg", sender="José Müller <jose@hotelsol.example>"))
    pdf = tmp_path / "Übersicht März 2026 – endgültig.pdf"
    pdf.write_bytes(b"%PDF-1.4 \x00\xff binary")
    draft = compose_reply(store, original, body="Grüße aus Köln ✓",
                          attachments=[str(pdf), ("liste.csv", "Zimmer;Gast\n1;Jörg\n".encode())])
    new_id = send_reply(store, draft.edit(from_name="Büro Köln"), passwords=PASSWORDS)
    (got,) = smtp.messages
    assert got.content.isascii()                         # 7-bit: no SMTPUTF8 / 8BITMIME needed
    header = got.content.split(b"\r\n\r\n", 1)[0].decode()
    assert "Subject: Re: =?utf-8?" in header and "=?utf-8?" in header.split("To:")[1].split("\r\n")[0]
    assert "filename*" in got.content.decode()          # RFC 2231 parameters
    msg = parse(got.content)
    assert msg["Subject"] == "Re: Büro – Zimmer für Jörg"
    assert msg["To"] == "José Müller <jose@hotelsol.example>" and msg["From"] == f"Büro Köln <{OWN}>"
    assert "Grüße aus Köln ✓" in msg.get_body(("plain",)).get_content()
    atts = list(msg.iter_attachments())
    assert [a.get_filename() for a in atts] == ["Übersicht März 2026 – endgültig.pdf", "liste.csv"]
    assert atts[0].get_content() == b"%PDF-1.4 \x00\xff binary" and atts[0].get_content_type() == "application/pdf"
    assert atts[1].get_content_type() == "text/csv"
    stored = store.attachments(new_id, with_content=True)
    assert list(stored["filename"]) == ["Übersicht März 2026 – endgültig.pdf", "liste.csv"]
    assert bytes(stored["content"].iloc[0]) == b"%PDF-1.4 \x00\xff binary"
    row = store.get_email(new_id)
    assert row["has_attachments"] and row["subject"] == "Re: Büro – Zimmer für Jörg" and row["from_name"] == "Büro Köln"


def test_rejected_recipient_sends_and_stores_nothing(store, smtp):
    use_smtp(store, smtp)
    original = save(store, make_mail(1, **MANY))
    smtp.reject.add("bo@y.example")
    with pytest.raises(SendError) as info:
        send_reply(store, compose_reply(store, original, reply_all=True), passwords=PASSWORDS)
    err = str(info.value)
    assert info.value.reason == "send" and "bo@y.example" in err and "550" in err and "nothing was sent" in err
    assert smtp.messages == []                            # not even to the accepted recipients
    assert store.count_emails() == 1 and store.query("SELECT count(*) AS n FROM email_sends")["n"].iloc[0] == 0
    # the plain reply (without bo) still goes through on a new connection
    send_reply(store, compose_reply(store, original), passwords=PASSWORDS)
    assert len(smtp.messages) == 1 and store.count_emails() == 2


def test_wrong_password_is_auth_error_without_the_password(store, smtp):
    use_smtp(store, smtp)
    original = save(store, make_mail(1))
    wrong = "Wrong-Pa55-word"
    with pytest.raises(AuthError) as info:
        send_reply(store, compose_reply(store, original), passwords={"office:smtp": wrong})
    assert info.value.reason == "auth" and OWN in str(info.value) and "535" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value.__context__)
    assert smtp.failed_logins == [OWN] and smtp.messages == [] and store.count_emails() == 1


def test_missing_secret_names_the_account(store, smtp, monkeypatch):
    use_smtp(store, smtp, secret="env:VMK_SMTP_PW")
    monkeypatch.delenv("VMK_SMTP_PW", raising=False)
    original = save(store, make_mail(1))
    with pytest.raises(SecretError) as info:
        send_reply(store, compose_reply(store, original))
    assert "office" in str(info.value) and "env:VMK_SMTP_PW" in str(info.value)
    monkeypatch.setenv("VMK_SMTP_PW", PW)
    send_reply(store, compose_reply(store, original))
    assert len(smtp.messages) == 1
    # the password is nowhere in the database file
    store.init()
    assert PW.encode() not in store.path.read_bytes()


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_certificate_that_does_not_verify_is_tls_failure(store, certs, tmp_path, mode):
    with SmtpServer(tmp_path, mode=mode, users={OWN: PW}, certs=certs) as srv:
        use_smtp(store, srv, ca=False)                   # the test CA is not trusted
        original = save(store, make_mail(1))
        with pytest.raises(TLSFailure) as info:
            send_reply(store, compose_reply(store, original), passwords=PASSWORDS)
        assert info.value.reason == "tls" and "certificate" in str(info.value).lower()
        assert f"SMTP 127.0.0.1:{srv.port}" in str(info.value)
        assert srv.messages == [] and srv.failed_logins == [] and store.count_emails() == 1


def test_starttls_not_offered_is_refused(store, tmp_path):
    with SmtpServer(tmp_path, mode="plain", users={OWN: PW}, plain_auth=True) as srv:
        use_smtp(store, srv, security="starttls")
        original = save(store, make_mail(1))
        with pytest.raises(StartTLSNotOffered) as info:
            send_reply(store, compose_reply(store, original), passwords=PASSWORDS)
        assert info.value.reason == "starttls" and "STARTTLS" in str(info.value)
        assert srv.messages == [] and srv.failed_logins == []
        # 'plain' is an explicit choice: it works against this server
        use_smtp(store, srv, security="plain")
        send_reply(store, compose_reply(store, original), passwords=PASSWORDS)
        assert len(srv.messages) == 1


def test_implicit_tls_smtps(store, smtps):
    use_smtp(store, smtps)
    original = save(store, make_mail(1))
    body = "over SMTPS\n.\n.a line starting with a dot\n..two dots"     # SMTP dot-stuffing must round-trip
    new_id = send_reply(store, compose_reply(store, original, body=body), passwords=PASSWORDS)
    (got,) = smtps.messages
    assert got.login == OWN and bytes(store.get_email(new_id)["raw"]) == got.content
    assert b"\r\n.\r\n.a line starting with a dot\r\n..two dots\r\n" in got.content
    assert store.sent_info(new_id)["smtp_port"] == smtps.port


def test_cli_account_smtp_and_reply(store, smtp, tmp_path, monkeypatch):
    original = save(store, make_mail(1, **MANY))
    db = str(store.path)
    runner = CliRunner()
    res = runner.invoke(main, ["--db", db, "account", "smtp", "office", "--host", smtp.host, "--port", str(smtp.port),
                               "--security", "starttls", "--secret", "env:VMK_CLI_SMTP", "--ca-file", smtp.ca_file])
    assert res.exit_code == 0, res.output
    assert store.get_account("office").smtp.login == "office@tour.example"   # defaults to the account's login
    res = runner.invoke(main, ["--db", db, "account", "smtp", "office", "--host", "h", "--security", "ssl",
                               "--secret", "hunter2"])
    assert res.exit_code == 1 and "secret" in res.output and "hunter2" not in res.output
    monkeypatch.setenv("VMK_CLI_SMTP", PW)
    body = tmp_path / "body.txt"
    body.write_text("Confirmed for all.\nRegards", encoding="utf-8")
    att = tmp_path / "plan.pdf"
    att.write_bytes(b"%PDF")
    res = runner.invoke(main, ["--db", db, "reply", str(original), "--body-file", str(body), "--all",
                               "--attach", str(att), "--user", "anna", "--dry-run"])
    assert res.exit_code == 0 and "desk@hotelsol.example" in res.output and smtp.messages == []
    res = runner.invoke(main, ["--db", db, "reply", str(original), "--body-file", str(body), "--all",
                               "--attach", str(att), "--user", "anna"])
    assert res.exit_code == 0, res.output
    new_id = int(res.stdout.strip())
    (got,) = smtp.messages
    assert bytes(store.get_email(new_id)["raw"]) == got.content and len(got.rcpt_tos) == 3
    assert [a.get_filename() for a in parse(got.content).iter_attachments()] == ["plan.pdf"]
    smtp.reject.add("ana@x.example")
    res = runner.invoke(main, ["--db", db, "reply", str(original), "--body-file", str(body), "--all"])
    assert res.exit_code == 1 and "ana@x.example" in res.output and store.count_emails() == 2
    res = runner.invoke(main, ["--db", db, "reply", "999", "--body-file", str(body)])
    assert res.exit_code == 1 and "999" in res.output


@pytest.mark.dovecot
def test_sent_copy_appended_to_the_imap_sent_folder(tmp_path, dovecot, mailuser, certs):
    store = Store(tmp_path / "sent.duckdb")
    store.add_user("anna")
    add_account(store, dovecot, mailuser, name="office")             # IMAP over TLS, password typed in
    store.subscribe("anna", "office")
    original = save(store, make_mail(1, to=mailuser.address))
    with SmtpServer(tmp_path, mode="starttls", users={mailuser.name: mailuser.password}, certs=certs) as srv:
        # SMTP secret prompt: and the same login: the mailbox password typed once serves both
        use_smtp(store, srv, login=mailuser.name)
        passwords = {"office": mailuser.password}
        new_id = send_reply(store, compose_reply(store, original, body="Copy in Sent"), user="anna",
                            passwords=passwords, save_to_sent=True)
        (got,) = srv.messages
        in_sent = server_bytes_imap(dovecot, mailuser, folder="Sent")
        assert list(in_sent.values()) == [got.content] == [bytes(store.get_email(new_id)["raw"])]
        sent = store.sent_info(new_id)
        assert sent["sent_folder"] == "Sent" and sent["sent_uid"] == list(in_sent)[0] and sent["sent_folder_error"] is None
        loc = store.locations(new_id)
        assert list(loc["folder"]) == ["Sent"] and list(loc["uid"]) == [sent["sent_uid"]]
        assert loc["raw_sha256"].iloc[0] == hashlib.sha256(got.content).hexdigest()
        assert list(loc["uidvalidity"]) == [dovecot.uidvalidity(mailuser.name, "Sent")]
        # a folder that does not exist: the mail is sent and stored, the failed copy is recorded
        other = send_reply(store, compose_reply(store, original, body="No such folder"), user="anna",
                           passwords=passwords, save_to_sent=True, sent_folder="Gesendet/Nicht da")
        assert len(srv.messages) == 2 and store.get_email(other)["direction"] == "outgoing"
        failed = store.sent_info(other)
        assert failed["sent_folder"] == "Gesendet/Nicht da" and "Gesendet/Nicht da" in failed["sent_folder_error"]
        assert mailuser.password not in failed["sent_folder_error"] and store.locations(other).empty
        assert len(server_bytes_imap(dovecot, mailuser, folder="Sent")) == 1
