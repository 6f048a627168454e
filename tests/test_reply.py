"""Replies without a server: SMTP settings, recipients, subject, threading, quoting, MIME rendering."""
from __future__ import annotations

import email
from email import policy

import pytest

from certs import make_certs
from mailfactory import make_mail
from vmailkit import (
    NotFoundError,
    OutgoingAttachment,
    SecretError,
    Store,
    ValidationError,
    compose_reply,
    make_account,
    make_smtp_settings,
)
from vmailkit.reply import build_message, html_to_text, quote_text, reply_subject, smtp_password
from vmailkit.ingest import save_received

OWN = "office@tour.example"


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "v.duckdb", lock_timeout=2.0)
    s.add_user("anna")
    s.add_user("ben")
    s.add_account(make_account("office", kind="general", protocol="imap", host="mail.tour.example", security="ssl",
                               address=OWN, secret="env:OFFICE_PW"))
    s.add_account(make_account("nosmtp", kind="general", protocol="pop3", host="pop.tour.example", security="ssl",
                               address="info@tour.example", secret="env:INFO_PW"))
    s.set_smtp("office", make_smtp_settings(host="smtp.tour.example", security="starttls", login=OWN,
                                            secret="env:OFFICE_PW"))
    s.subscribe("anna", "office")
    s.subscribe("anna", "nosmtp")
    return s


def save(store: Store, raw: bytes, account: str = "office", uid: int = 1) -> int:
    acc = store.get_account(account)
    imap = acc.protocol == "imap"
    r = save_received(store, "anna", acc.name, [(uid, raw)], uidvalidity=7)
    return (r.new_ids or r.present_ids)[0]


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


# -- subject and quoting ------------------------------------------------------------------------
@pytest.mark.parametrize("original,expected", [
    ("Booking 701", "Re: Booking 701"),
    ("Re: Booking 701", "Re: Booking 701"),
    ("RE: Booking 701", "Re: Booking 701"),
    ("re:Booking 701", "Re: Booking 701"),
    ("Re: Re: RE: Booking 701", "Re: Booking 701"),
    ("AW: Re: Booking 701", "Re: Booking 701"),
    ("Re[2]: Booking 701", "Re: Booking 701"),
    ("SV: Antw: Booking", "Re: Booking"),
    ("Fwd: Booking 701", "Re: Fwd: Booking 701"),
    ("Regarding: booking", "Re: Regarding: booking"),
    ("Ärger: Zimmer", "Re: Ärger: Zimmer"),
    ("", "Re:"),
    (None, "Re:"),
    ("Re:", "Re:"),
    ("Booking\r\n 701", "Re: Booking 701"),
])
def test_one_re_prefix(original, expected):
    assert reply_subject(original) == expected


def test_quote_text_and_html_to_text():
    assert quote_text("a\r\n\r\n> b\nc\n") == "> a\n>\n>> b\n> c"
    text = html_to_text("<html><head><style>p{}</style><title>T</title></head><body><p>Hello&nbsp;<b>you</b></p>"
                        "<script>alert(1)</script><div>line 2<br>line 3</div></body></html>")
    assert text == "Hello\xa0you\nline 2\nline 3"


# -- SMTP settings ------------------------------------------------------------------------------
@pytest.mark.parametrize("security,port", [("ssl", 465), ("starttls", 587), ("plain", 25)])
def test_smtp_default_ports(security, port):
    s = make_smtp_settings(host="smtp.x", security=security, login="me", secret="env:X")
    assert (s.port, s.security, s.secret_ref) == (port, security, "env:X")
    assert make_smtp_settings(host="smtp.x", security=security, login="me", port=2525).port == 2525


@pytest.mark.parametrize("kwargs,field", [
    (dict(host=""), "host"), (dict(host="a b"), "host"), (dict(security="tls"), "security"),
    (dict(port=0), "port"), (dict(port="x"), "port"), (dict(login=" "), "login"),
    (dict(secret="hunter2"), "secret"), (dict(ca_file="/no/such/ca.pem"), "ca_file"),
])
def test_smtp_settings_validation_names_the_field(kwargs, field):
    args = dict(host="smtp.x", security="ssl", login="me", secret="env:X")
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        make_smtp_settings(**args)
    assert info.value.field == field
    assert "hunter2" not in str(info.value)


def test_smtp_settings_stored_with_the_account(store, tmp_path):
    office = store.get_account("office")
    assert office.smtp is not None and office.smtp.port == 587 and office.smtp.login == OWN
    assert store.get_account("nosmtp").smtp is None
    assert {a.name: a.smtp is not None for a in store.list_accounts()} == {"office": True, "nosmtp": False}
    assert [a.smtp.host for a in store.subscribed_accounts("anna") if a.smtp] == ["smtp.tour.example"]
    # updating the fetching settings keeps the SMTP settings
    store.update_account(make_account("office", kind="general", protocol="imap", host="imap2.tour.example",
                                      security="ssl", address=OWN, secret="env:OFFICE_PW"))
    assert store.get_account("office").smtp.host == "smtp.tour.example"
    ca = make_certs(tmp_path / "certs").ca_file
    store.set_smtp("office", make_smtp_settings(host="smtp2.tour.example", security="ssl", login="o",
                                                secret="keyring:vmailkit/o", ca_file=str(ca)))
    row = store.query("SELECT host, port, security, login, secret_ref, ca_file FROM account_smtp").iloc[0].tolist()
    assert row == ["smtp2.tour.example", 465, "ssl", "o", "keyring:vmailkit/o", str(ca.resolve())]
    # a password is never accepted as a secret reference, even when built by hand
    from vmailkit.accounts import SmtpSettings
    with pytest.raises(ValidationError) as info:
        store.set_smtp("office", SmtpSettings(host="h", port=25, security="plain", login="o", secret_ref="hunter2"))
    assert "hunter2" not in str(info.value)
    store.set_smtp("office", None)
    assert store.get_account("office").smtp is None
    with pytest.raises(NotFoundError):
        store.set_smtp("ghost", None)
    store.set_smtp("office", make_smtp_settings(host="h", security="ssl", login="o", secret="env:X"))
    store.delete_account("office")
    assert store.query("SELECT count(*) AS n FROM account_smtp")["n"].iloc[0] == 0


def test_smtp_password_order(store, monkeypatch):
    office = store.get_account("office")             # SMTP secret = env:OFFICE_PW, same as the mailbox
    monkeypatch.setenv("OFFICE_PW", "from-env")
    assert smtp_password(office) == "from-env"
    assert smtp_password(office, {"office": "typed"}) == "typed"
    assert smtp_password(office, {"office": "typed", "office:smtp": "smtp-typed"}) == "smtp-typed"
    store.set_smtp("office", make_smtp_settings(host="h", security="ssl", login="o", secret="env:SMTP_ONLY"))
    office = store.get_account("office")
    monkeypatch.delenv("SMTP_ONLY", raising=False)
    with pytest.raises(SecretError) as info:
        smtp_password(office, {"office": "mailbox-password"})   # a different reference: not the mailbox password
    assert "office" in str(info.value) and "SMTP_ONLY" in str(info.value) and "mailbox-password" not in str(info.value)
    store.set_smtp("office", make_smtp_settings(host="h", security="ssl", login="o", secret="prompt:"))
    assert smtp_password(store.get_account("office"), {"office": "typed"}) == "typed"


# -- recipients ---------------------------------------------------------------------------------
MANY = dict(
    sender='"Sol, Hotel" <Reservas@HotelSol.example>',
    to=f"Office <{OWN.upper()}>, Ana <ana@x.example>",
    extra_headers="Cc: Bo <bo@y.example>, ana@x.example, office@tour.example\nReply-To: Desk <desk@hotelsol.example>",
)


def test_reply_prefers_reply_to_and_reply_all_adds_others_minus_own(store):
    eid = save(store, make_mail(1, **MANY))
    d = compose_reply(store, eid)
    assert (d.to, d.cc, d.account, d.from_address) == (("Desk <desk@hotelsol.example>",), (), "office", OWN)
    d = compose_reply(store, eid, reply_all=True)
    assert d.to == ("Desk <desk@hotelsol.example>",)
    assert d.cc == ("Ana <ana@x.example>", "Bo <bo@y.example>")
    assert d.recipients == ["desk@hotelsol.example", "ana@x.example", "bo@y.example"]
    # without Reply-To: the From, display name kept (quoted because of the comma)
    eid2 = save(store, make_mail(2, sender='"Sol, Hotel" <reservas@hotelsol.example>'), uid=2)
    assert compose_reply(store, eid2).to == ('"Sol, Hotel" <reservas@hotelsol.example>',)


def test_reply_to_a_mail_from_the_own_address_goes_to_its_recipients(store):
    eid = save(store, make_mail(1, sender=f"Office <{OWN}>", to="Ana <ana@x.example>, desk@hotelsol.example",
                                extra_headers="Cc: bo@y.example"))
    d = compose_reply(store, eid)
    assert d.to == ("Ana <ana@x.example>", "desk@hotelsol.example") and d.cc == ()
    assert compose_reply(store, eid, reply_all=True).cc == ("bo@y.example",)
    # a mail to oneself is answered to oneself
    eid2 = save(store, make_mail(2, sender=OWN, to=OWN), uid=2)
    assert compose_reply(store, eid2).to == (OWN,)


def test_threading_headers(store):
    eid = save(store, make_mail(1, extra_headers="References: <root@a.example>\n <mid@b.example>\nIn-Reply-To: <mid@b.example>"))
    d = compose_reply(store, eid)
    assert d.in_reply_to == "mail1@hotelsol.example"
    assert d.references == ("root@a.example", "mid@b.example", "mail1@hotelsol.example")
    # no References: the In-Reply-To starts the chain
    eid2 = save(store, make_mail(2, extra_headers="In-Reply-To: <parent@c.example>"), uid=2)
    assert compose_reply(store, eid2).references == ("parent@c.example", "mail2@hotelsol.example")
    # no Message-ID at all: no In-Reply-To
    eid3 = save(store, make_mail(3, message_id=False), uid=3)
    d3 = compose_reply(store, eid3)
    assert d3.in_reply_to is None and d3.references == ()
    # long chains keep the first and the last 19 ids
    ids = " ".join(f"<r{i}@x.example>" for i in range(30))
    eid4 = save(store, make_mail(4, extra_headers=f"References: {ids}"), uid=4)
    refs = compose_reply(store, eid4).references
    assert len(refs) == 20 and refs[0] == "r0@x.example" and refs[-1] == "mail4@hotelsol.example"


def test_built_message_headers_and_long_ids_are_not_encoded(store):
    long_id = "x" * 120 + "@very-long-domain.example"
    eid = save(store, make_mail(1, message_id=f"<{long_id}>", extra_headers="References: <a@b.example>"))
    d = compose_reply(store, eid, body="Thanks", from_name="Tour Office")
    m = build_message(d)
    assert m.raw.isascii() and b"\n" not in m.raw.replace(b"\r\n", b"")
    assert m.message_id.endswith("@tour.example>") and m.sender == OWN
    head = m.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"In-Reply-To: <{long_id}>" in head
    assert f"References: <a@b.example>\r\n <{long_id}>" in head
    msg = parsed(m.raw)
    assert msg["From"] == f"Tour Office <{OWN}>" and msg["Subject"] == "Re: Booking 701 rooming list"
    assert msg["Date"].datetime is not None and msg["Message-ID"] == m.message_id
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Thanks\n\nOn Mon, 02 Nov 2026 10:00:00 +0000, Hotel Sol <reservas@hotelsol.example> wrote:\n")
    assert "> Dear team,\n> please find the list for booking 701.\n> Regards\n" in text
    assert msg.get_content_type() == "text/plain"   # a plain original gets a plain reply


def test_draft_edit_and_attachment_forms(store, tmp_path):
    eid = save(store, make_mail(1))
    f = tmp_path / "Zimmerliste März.csv"
    f.write_bytes(b"room;name\n1;Ana\n")
    d = compose_reply(store, eid).edit(
        to="Ana <ana@x.example>, bo@y.example", cc=["Cé <ce@z.example>"], subject="Re: changed\r\nBcc: x@evil",
        attachments=[str(f), ("a.bin", b"\x00\x01"), {"name": "C:\\tmp\\scan.PDF", "type": "", "content": memoryview(b"%PDF")},
                     OutgoingAttachment.make("note", b"hi", "text/plain")],
    )
    assert d.to == ("Ana <ana@x.example>", "bo@y.example") and d.cc == ("Cé <ce@z.example>",)
    assert d.subject == "Re: changed Bcc: x@evil"
    assert [(a.filename, a.content_type) for a in d.attachments] == [
        ("Zimmerliste März.csv", "text/csv"), ("a.bin", "application/octet-stream"), ("scan.PDF", "application/pdf"),
        ("note", "text/plain")]
    msg = parsed(build_message(d).raw)
    assert "Bcc" not in msg and msg["Subject"] == "Re: changed Bcc: x@evil"
    assert [p.get_filename() for p in msg.iter_attachments()] == ["Zimmerliste März.csv", "a.bin", "scan.PDF", "note"]
    with pytest.raises(ValidationError):
        d.edit(attachments=[42])
    with pytest.raises(ValidationError):
        d.edit(attachments=[str(tmp_path / "missing.pdf")])
    with pytest.raises(ValidationError) as info:
        build_message(d.edit(to="not-an-address", cc=[]))
    assert info.value.field == "to"
    with pytest.raises(ValidationError) as info:
        build_message(d.edit(to="jörg@x.example"))
    assert "SMTPUTF8" in str(info.value)
    assert parsed(build_message(d.edit(to="a@bücher.example")).raw)["To"] == "a@xn--bcher-kva.example"
    with pytest.raises(ValidationError):
        build_message(d.edit(to=[], cc=[]))


def test_account_choice_and_errors(store):
    eid = save(store, make_mail(1))
    with pytest.raises(NotFoundError):
        compose_reply(store, 999)
    with pytest.raises(ValidationError) as info:
        compose_reply(store, eid, account="nosmtp")
    assert info.value.field == "smtp" and "vmailkit account smtp nosmtp" in str(info.value)
    with pytest.raises(ValidationError) as info:
        compose_reply(store, eid, user="ben")          # ben subscribes to nothing
    assert info.value.field == "account"
    store.subscribe("ben", "nosmtp")
    with pytest.raises(ValidationError) as info:
        compose_reply(store, eid, account="office", user="ben")
    assert "does not subscribe" in str(info.value)
    # received only through an account without SMTP settings: another account must be named
    pop = save(store, make_mail(2), account="nosmtp", uid=2)
    with pytest.raises(ValidationError) as info:
        compose_reply(store, pop, user="anna")
    assert "no SMTP settings for nosmtp" in str(info.value)
    d = compose_reply(store, pop, user="anna", account="office")
    assert (d.account, d.from_address) == ("office", OWN)
