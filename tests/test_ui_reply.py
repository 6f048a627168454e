"""Reply and Reply all from the reader, sent to a real SMTP server on loopback."""
from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

pytest.importorskip("aiosmtpd", reason="aiosmtpd (the dev extra) runs the test SMTP server")
pytest.importorskip("vmailkit.reply")

from mailfactory import make_mail  # noqa: E402
from smtpserver import SmtpServer  # noqa: E402
from vmailkit import Store, make_account, make_smtp_settings  # noqa: E402
from vmailkit.ingest import save_received  # noqa: E402
from vmailkit.ui import MailListPanel, MailReaderPanel, PasswordBook, ReplyPanel  # noqa: E402

OWN = "office@tour.example"
SMTP_PW = "Ui-Smtp-Secret-5"


@pytest.fixture
def smtp(tmp_path):
    with SmtpServer(tmp_path / "certs", mode="starttls", users={OWN: SMTP_PW}) as srv:
        yield srv


@pytest.fixture
def store(tmp_path, smtp) -> Store:
    s = Store(tmp_path / "r.duckdb", lock_timeout=5)
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="mail.tour.example", security="ssl",
                               address=OWN, secret="prompt:"))
    s.set_smtp("office", make_smtp_settings(host=smtp.host, port=smtp.port, security="starttls", login=OWN,
                                            secret="prompt:", ca_file=smtp.ca_file))
    s.subscribe("anna", "office")
    return s


def test_reply_all_from_the_reader(store, smtp, tmp_path):
    acc = store.get_account("office")
    raw = make_mail(1, to=f"Office <{OWN}>, Ana <ana@x.example>", extra_headers="Cc: Bo <bo@y.example>")
    res = save_received(store, "anna", acc.name, [(1, raw)])
    original = res.new_ids[0]

    passwords = PasswordBook()
    replies = ReplyPanel(store, "anna", passwords=passwords)
    reader = MailReaderPanel(store, "anna", reply_panel=replies)
    mails = MailListPanel(store, on_open=reader.open)   # everyone's: sent mail has no received location
    replies.on_sent = lambda _id: mails.refresh()
    assert reader.reply_button.layout.display == "" and replies.form.layout.display == "none"

    mails.table.action_button(original).click()
    reader.reply_all_button.click()
    assert reader.errors == [] and replies.errors == []
    assert replies.form.layout.display == ""
    assert replies.to.value == "Hotel Sol <reservas@hotelsol.example>"
    assert "ana@x.example" in replies.cc.value and "bo@y.example" in replies.cc.value and OWN not in replies.cc.value
    assert replies.subject.value == "Re: Booking 701 rooming list"
    assert replies.password_row.layout.display == ""           # SMTP secret is prompt:, nothing typed yet

    replies.cc.value = "Bo <bo@y.example>"                    # drop Ana
    replies.body.value = "Thank you, confirmed."
    replies.smtp_password.value = SMTP_PW
    replies.send_button.click()
    assert replies.wait(30) and replies.errors == [], replies.errors
    assert replies.smtp_password.value == "" and passwords["office:smtp"] == SMTP_PW
    (got,) = smtp.messages
    assert sorted(got.rcpt_tos) == ["bo@y.example", "reservas@hotelsol.example"] and got.tls
    msg = message_from_bytes(got.content, policy=policy.default)
    assert msg["Subject"] == "Re: Booking 701 rooming list" and "Thank you, confirmed." in msg.get_body(("plain",)).get_content()
    assert replies.sent_id is not None and "stored as mail" in replies.result.value
    sent = store.get_email(replies.sent_id)
    assert (sent["direction"], sent["status"]) == ("outgoing", "read")
    assert replies.sent_id in mails.table.keys                 # the list was refreshed
    db = Path(store.path)
    assert SMTP_PW.encode() not in b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))

    # a refused login is shown in plain words, nothing stored
    passwords.clear()
    reader.open(original)
    reader.reply_button.click()
    replies.smtp_password.value = "wrong-Smtp-1"
    replies.send_button.click()
    assert replies.wait(30)
    assert "Not sent" in replies.result.value and not replies.send_button.disabled
    assert "wrong-Smtp-1" not in replies.result.value and "wrong-Smtp-1" not in "".join(replies.errors)
    assert len(smtp.messages) == 1
    replies.discard_button.click()
    assert replies.form.layout.display == "none"
