"""The mail list and the reader, driven through their widgets against a temporary store."""
from __future__ import annotations

import html
import time
from datetime import date

import pytest

from mailfactory import make_mail
from uimail import PDF_BYTES, hostile_mail
from vmailkit import Store, make_account
from vmailkit.transport.base import RemoteMessage
from vmailkit.ui import MailListPanel, MailReaderPanel

TRACKER = "http://127.0.0.1:9/track"


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "m.duckdb", lock_timeout=5)
    s.add_user("anna")
    s.add_user("ben")
    for name in ("office", "sales"):
        s.add_account(make_account(name, kind="general", protocol="imap", host="h", security="ssl",
                                   address=f"{name}@x.example", secret="env:X"))
    s.subscribe("anna", "office")
    return s


def save(store: Store, account: str, raws: list[bytes], start: int = 1) -> list[int]:
    acc = store.get_account(account)
    res = store.save_chunk(user_id=store.get_user("anna").user_id, account_id=acc.account_id, protocol="imap",
                           folder="INBOX", uidvalidity=1,
                           messages=[RemoteMessage(key=str(start + i), uid=start + i, raw=r) for i, r in enumerate(raws)])
    return [res.by_key[str(start + i)] for i in range(len(raws))]


def test_list_paging_and_filters(store):
    office = save(store, "office", [make_mail(n, subject=f"Booking {n:02d}") for n in range(1, 31)])
    sales = save(store, "sales", [make_mail(100 + n, subject=f"Offer {n}", sender="sales@bus.example") for n in range(5)])
    store.set_status(office[0], "read")
    p = MailListPanel(store, page_size=10)
    assert p.pager.total == 35 and len(p.table.keys) == 10
    assert p.table.keys[0] == sales[-1]            # newest first
    p.pager.size.value = 25
    assert len(p.table.keys) == 25
    p.pager.next_button.click()
    assert len(p.table.keys) == 10 and p.pager.next_button.disabled
    cells = p.table.body.children[0].children[1].value
    assert "Booking" in cells and "unread" in cells

    p.status.value = "read"
    assert p.pager.total == 1 and p.pager.page == 0 and p.table.keys == [office[0]]
    p.status.value = ""
    p.account.value = "sales"
    assert p.pager.total == 5 and set(p.table.keys) == set(sales)
    p.clear_button.click()
    assert p.pager.total == 35
    p.search.value = "offer 3"
    assert p.table.keys == [sales[3]]
    p.search.value = ""
    p.user.value = "anna"                           # mails of the accounts anna reads
    assert p.pager.total == 30
    p.user.value = ""
    p.since.value = date(2026, 11, 3)               # make_mail n is dated 2026-11-02 09:00 + n hours
    p.until.value = date(2026, 11, 3)
    assert p.pager.total == 16                      # n = 15..30
    p.until.value = date(2026, 11, 1)
    assert "end date is before" in p.errors[-1]
    p.clear_errors()
    p.clear_button.click()
    assert p.pager.total == 35

    # selection kept across pages
    p.pager.size.value = 10
    p.select_page_button.click()
    p.pager.next_button.click()
    p.table.checkbox(p.table.keys[0]).value = True
    assert len(p.selected_ids) == 11 and "11 ticked" in p.selection.value
    p.select_none_button.click()
    assert p.selected_ids == []
    p.pager.go(0)
    p.table.action_button(p.table.keys[0]).click()     # Open without a reader: shown, not raised
    assert "no reader" in p.errors[-1]


def test_reader_shows_mail_safely(store, tmp_path):
    (eid,) = save(store, "office", [hostile_mail(1, tracker=TRACKER)])
    (plain,) = save(store, "sales", [make_mail(2, attachment=PDF_BYTES)], start=2)
    reader = MailReaderPanel(store, save_dir=str(tmp_path))
    mails = MailListPanel(store, on_open=reader.open)
    reader.on_change = mails.refresh
    assert reader.content.layout.display == "none"

    mails.table.action_button(eid).click()
    assert reader.email_id == eid and reader.content.layout.display == ""
    assert "reservas@hotelsol.example" in reader.headers.value and "&lt;script&gt;" in reader.headers.value
    assert "office" in reader.headers.value
    body = reader.body.value
    assert body.startswith("<iframe") and "sandbox" in body and "allow-scripts" not in body
    doc = html.unescape(body)
    assert "Hola from Hotel Sol" in doc and "<script" not in doc.lower() and "onerror" not in doc
    assert f"{TRACKER}/pixel.png" not in doc and "data:image/png;base64," in doc       # cid: image inline
    assert reader.remote_button.layout.display == "" and "(1 blocked)" in reader.remote_button.description
    reader.remote_button.click()
    assert f"{TRACKER}/pixel.png" in html.unescape(reader.body.value) and reader.rendered.remote_images_allowed
    assert reader.text_toggle.layout.display == ""
    reader.text_toggle.value = "text"
    assert "<pre" in reader.body.value and "&lt;b&gt;not bold&lt;/b&gt; &amp; friends" in reader.body.value

    # status: list and store follow the buttons
    assert "status: <b>unread</b>" in reader.status_label.value and reader.unread_button.disabled
    reader.read_button.click()
    assert store.get_email(eid)["status"] == "read"
    assert "read" in mails.table.body.children[mails.table.keys.index(eid)].children[1].value
    reader.unread_button.click()
    assert store.get_email(eid)["status"] == "unread"

    # attachments: inline logo and the PDF, saved under a safe name
    names = [row.children[0].value for row in reader.attachments_box.children]
    assert any("logo.png" in n for n in names) and any("voucher B-4711.pdf" in n for n in names)
    pdf_row = next(r for r in reader.attachments_box.children if "voucher" in r.children[0].value)
    assert 'download="voucher B-4711.pdf"' in pdf_row.children[2].value
    pdf_row.children[1].click()
    assert (tmp_path / "voucher B-4711.pdf").read_bytes() == PDF_BYTES
    pdf_row.children[1].click()                      # a second save does not overwrite
    assert "already exists" in reader.errors[-1]
    assert "not linked" in reader.relations.value

    mails.table.action_button(plain).click()
    assert reader.rendered.kind == "text" and reader.text_toggle.layout.display == "none"
    assert reader.remote_button.layout.display == "none" and "list.pdf" in reader.attachments_box.children[0].children[0].value
    reader.reply_button.click()
    assert "not available" in reader.errors[-1]


def test_list_stays_fast_with_100k_mails(store):
    """Paging, counting and filtering run in DuckDB: a page of 100,000 mails costs milliseconds."""
    (seed,) = save(store, "office", [make_mail(1)])
    with store.db.atomic() as con:  # clone the stored mail 100,000 times (test set-up only)
        con.execute(
            "INSERT INTO emails SELECT e.* REPLACE (e.email_id + i AS email_id, dedup_key || i AS dedup_key,"
            " subject || ' #' || i AS subject, sent_at + to_seconds(i) AS sent_at,"
            " CASE WHEN i % 3 = 0 THEN 'read' ELSE 'unread' END AS status)"
            " FROM emails e, range(1, 100000) t(i)"
        )
        con.execute("INSERT INTO email_locations SELECT l.* REPLACE (l.email_id + i AS email_id,"
                    " loc_key || '-' || i AS loc_key) FROM email_locations l, range(1, 100000) t(i)")
    assert store.count_emails() == 100_000
    t0 = time.perf_counter()
    p = MailListPanel(store, page_size=50)
    first = time.perf_counter() - t0
    assert p.pager.total == 100_000 and len(p.table.keys) == 50 and p.table.keys[0] == seed + 99_999
    t0 = time.perf_counter()
    p.pager.go(1999)                      # the last page
    p.status.value = "read"
    p.search.value = "#42420"
    p.account.value = "office"
    later = time.perf_counter() - t0
    assert p.table.keys == [seed + 42420] and p.errors == []
    assert first < 5 and later < 5, (first, later)
