"""The mail list and the reader, driven through their widgets against a temporary store."""
from __future__ import annotations

import base64
import html
import re
import time
from datetime import date

import ipywidgets as W
import pandas as pd
import pytest

from mailfactory import make_mail
from uimail import PDF_BYTES, hostile_mail
from vmailkit import Store, make_account, render
from vmailkit.ingest import save_received
from vmailkit.ui import MailListPanel, MailReaderPanel
from vmailkit.ui.mail import ATTACHMENT_PAGE

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
    res = save_received(store, "anna", acc.name, [(start + i, r) for i, r in enumerate(raws)])
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
    assert pdf_row.children[3].value == ""           # the content is read only when asked
    pdf_row.children[2].click()                      # Download
    assert 'download="voucher B-4711.pdf"' in pdf_row.children[3].value
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


def many_parts_mail(named: int, unnamed: int, *, subject: str = "Rooming lists, one file per guest") -> bytes:
    """A mail with a text body, ``named`` small named attachments and ``unnamed`` parts without a
    name after them (a mixed name column: pandas puts NaN there); part i holds ``content <i>``."""
    lines = ["From: Hotel Sol <reservas@hotelsol.example>", "To: office@tour.example", f"Subject: {subject}",
             "Date: Mon, 02 Nov 2026 09:00:00 +0000", "Message-ID: <many-parts@hotelsol.example>", "MIME-Version: 1.0",
             'Content-Type: multipart/mixed; boundary="PART"', "", "--PART", "Content-Type: text/plain", "", "see the lists"]
    for i in range(named + unnamed):
        lines += ["--PART"]
        if i < named:
            lines += [f'Content-Type: text/plain; name="guest-{i:05d}.txt"',
                      f'Content-Disposition: attachment; filename="guest-{i:05d}.txt"']
        else:
            lines += ["Content-Type: application/octet-stream", "Content-Disposition: attachment"]
        lines += ["", f"content {i}"]
    lines.append("--PART--")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def live_widgets() -> int:
    """How many widgets exist (ipywidgets keeps every one until it is closed)."""
    from ipywidgets.widgets import widget
    return len(widget._instances)


class CountingStore:
    """Counts the attachment reads of ``store`` (with and without content), and can make
    chosen methods fail for chosen mails."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.listings = 0
        self.contents = 0
        self.content_limit: int | None = None     # stop a runaway reader early (the old one read every part)
        self.fail: dict[str, set[int]] = {}
        real_attachments = store.attachments

        def attachments(email_id: int, *, with_content: bool = False) -> pd.DataFrame:
            self._maybe_fail("attachments", email_id)
            if with_content:
                self.contents += 1
                if self.content_limit is not None and self.contents > self.content_limit:
                    raise AssertionError("attachment content read again and again")
            else:
                self.listings += 1
            return real_attachments(email_id, with_content=with_content)

        real_attachment = store.attachment

        def attachment(email_id: int, part_index: int) -> tuple[dict, bytes]:
            self._maybe_fail("attachments", email_id)
            self.contents += 1
            return real_attachment(email_id, part_index)

        monkeypatch.setattr(store, "attachments", attachments)
        monkeypatch.setattr(store, "attachment", attachment)
        for name in ("get_email", "locations"):
            real = getattr(store, name)
            monkeypatch.setattr(store, name, lambda email_id=None, *a, _real=real, _name=name, **k: (
                self._maybe_fail(_name, email_id), _real(email_id, *a, **k))[1])

    def _maybe_fail(self, name: str, email_id: int | None) -> None:
        if email_id is not None and int(email_id) in self.fail.get(name, set()):
            raise RuntimeError(f"simulated failure of {name} (disk error 0x1F)")

    def reset(self) -> None:
        self.listings = self.contents = 0


def visible(value: str) -> str:
    """The text a person sees in an HTML value (tags removed, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]*>", " ", value))


def shown_text(reader: MailReaderPanel) -> str:
    """Everything the reader displays as text: headers, body, status, attachment rows, relations,
    the message line and the placeholder (hidden parts left out)."""
    parts = [reader.message.value]
    if reader.placeholder.layout.display != "none":
        parts.append(reader.placeholder.value)
    if reader.content.layout.display != "none":
        parts += [reader.headers.value, reader.body.value, reader.status_label.value, reader.relations.value]
        for row in reader.attachments_box.children:
            parts += [c.value for c in getattr(row, "children", [row]) if isinstance(c, W.HTML)]
    return html.unescape("\n".join(parts))


def test_reader_pages_many_attachments_and_reads_content_on_demand(store, tmp_path, monkeypatch):
    """A mail with 3,000 parts opens with one listing read, no content read, one page of rows."""
    named, unnamed = 2000, 1000
    (big,) = save(store, "office", [many_parts_mail(named, unnamed)])
    (small,) = save(store, "office", [make_mail(2, attachment=PDF_BYTES)], start=2)
    counting = CountingStore(store, monkeypatch)
    counting.content_limit = 5
    reader = MailReaderPanel(store, save_dir=str(tmp_path))

    before = live_widgets()
    assert reader.open(big) is True
    made = live_widgets() - before
    assert reader.errors == [] and "Rooming lists" in reader.headers.value
    assert counting.listings == 1 and counting.contents == 0
    rows = reader.attachments_box.children
    assert len(rows) == ATTACHMENT_PAGE
    assert made <= 20 * ATTACHMENT_PAGE, made                 # one page of widgets, not one row per part
    assert "guest-00000.txt" in rows[0].children[0].value and "guest-00049.txt" in rows[-1].children[0].value
    assert all(row.children[3].value == "" for row in rows)   # no download link built yet
    pager = reader.attachments_pager
    assert pager.widget.layout.display == "" and pager.total == named + unnamed
    assert f"1–{ATTACHMENT_PAGE} of {named + unnamed}" in pager.label.value

    # the next page reuses the row widgets and reads nothing from the store
    counting.reset()
    before = live_widgets()
    pager.next_button.click()
    assert live_widgets() == before and counting.listings == counting.contents == 0
    rows = reader.attachments_box.children
    assert len(rows) == ATTACHMENT_PAGE and "guest-00050.txt" in rows[0].children[0].value

    # Download and Save read the content for that part only when pressed
    rows[3].children[2].click()
    assert counting.contents == 1 and reader.errors == []
    link = rows[3].children[3].value
    assert 'download="guest-00053.txt"' in link and base64.b64encode(b"content 53").decode() in link
    assert all(row.children[3].value == "" for i, row in enumerate(rows) if i != 3)
    rows[4].children[1].click()
    assert counting.contents == 2 and (tmp_path / "guest-00054.txt").read_bytes() == b"content 54"

    # the last page holds the unnamed parts: they are listed and saved under a made-up name
    pager.go(pager.pages - 1)
    rows = reader.attachments_box.children
    assert len(rows) == (named + unnamed) % ATTACHMENT_PAGE or len(rows) == ATTACHMENT_PAGE
    assert all(row.children[3].value == "" for row in rows)     # links of another page are gone
    assert "attachment-" in rows[-1].children[0].value and "nan" not in rows[-1].children[0].value.lower()
    rows[-1].children[1].click()
    assert reader.errors == [] and (tmp_path / rows[-1].children[0].value.split(">")[1].split("<")[0]).read_bytes() \
        == f"content {named + unnamed - 1}".encode()

    # a small mail afterwards: one row, no page control, no widgets made
    before = live_widgets()
    assert reader.open(small) is True
    assert live_widgets() == before
    assert len(reader.attachments_box.children) == 1 and "list.pdf" in reader.attachments_box.children[0].children[0].value
    assert pager.widget.layout.display == "none" and reader.errors == []


@pytest.fixture
def crm_store(store) -> Store:
    from vmailkit.crm import load_crm
    load_crm(store, {"customers": pd.DataFrame([(10, "Hotel Sol Resort", None)],
                                               columns=["customer_id", "name", "main_person_id"])})
    return store


def test_a_failed_open_never_leaves_the_previous_mail_on_screen(crm_store, tmp_path, monkeypatch):
    store = crm_store
    (a,) = save(store, "office", [hostile_mail(1, tracker=TRACKER, subject="Alpha voucher for the Sol trip")])
    (b,) = save(store, "office", [make_mail(2, subject="Bravo rooming list", attachment=PDF_BYTES)], start=2)
    store.add_links([a], [("customer", 10)], user=None)
    counting = CountingStore(store, monkeypatch)
    reader = MailReaderPanel(store, save_dir=str(tmp_path))
    mails = MailListPanel(store, on_open=reader.open)

    def show_a() -> None:
        mails.table.action_button(a).click()
        text = shown_text(reader)
        assert "Alpha voucher" in text and "voucher B-4711.pdf" in text and "Hotel Sol Resort" in text
        assert reader.errors == []

    def assert_no_a() -> None:
        text = shown_text(reader)
        for of_a in ("Alpha voucher", "voucher B-4711.pdf", "logo.png", "Hotel Sol Resort", "Hola from Hotel Sol"):
            assert of_a not in text, of_a
        assert reader.rendered is None or "Hola" not in reader.rendered.html

    # 1. mail B cannot be read at all
    show_a()
    counting.fail["get_email"] = {b}
    mails.table.action_button(b).click()
    assert_no_a()
    assert reader.content.layout.display == "none" and reader.email_id is None
    assert "This mail could not be opened" in reader.placeholder.value
    assert "could not be opened" in reader.message.value
    on_screen = visible(reader.message.value) + visible(reader.placeholder.value)
    for code in ("RuntimeError", "0x1F", "Traceback", "simulated"):            # plain words only on screen
        assert code not in on_screen
    assert not re.search(rf"\b{b}\b", on_screen)                              # no mail id
    assert mails.errors == []                                               # reported once, in the reader
    assert "RuntimeError" in reader.errors[-1]                              # the details are kept for the log
    reader.read_button.click()
    assert "open a mail first" in reader.errors[-1]                         # nothing to act on

    # 2. B's headers read, then listing its accounts fails: B is shown without them, in plain words
    counting.fail = {"locations": {b}}
    reader.clear_errors()
    show_a()
    mails.table.action_button(b).click()
    assert_no_a()
    assert "Bravo rooming list" in shown_text(reader) and "list.pdf" in shown_text(reader)
    assert visible(reader.message.value).strip() == \
        "✖ Part of this mail could not be shown (the accounts); the details are in the log below."

    # ... and when its attachments cannot be listed either
    counting.fail = {"attachments": {b}, "locations": {b}}
    reader.clear_errors()
    show_a()
    mails.table.action_button(b).click()
    assert_no_a()
    assert reader.content.layout.display == "" and reader.email_id == b
    text = shown_text(reader)
    assert "Bravo rooming list" in text and "could not be listed" in text and "not linked" in text
    assert "Part of this mail could not be shown (the attachments)" in html.unescape(reader.message.value)
    assert "RuntimeError" not in reader.message.value and "0x1F" not in text
    assert reader.attachments.empty and reader.attachments_pager.widget.layout.display == "none"

    # 3. B was deleted meanwhile: no id on screen
    counting.fail = {}
    reader.clear_errors()
    show_a()
    assert reader.open(987654) is False
    assert_no_a()
    assert "no longer in the store" in reader.message.value and "987654" not in visible(reader.message.value)

    # 4. B's body cannot be rendered: the rest of B is shown, none of A
    reader.clear_errors()
    show_a()
    real_render = render.render_email

    def failing_render(store_: Store, email_id: int, **kwargs: object) -> render.RenderedBody:
        if email_id == b:
            raise ValueError("simulated sanitiser crash")
        return real_render(store_, email_id, **kwargs)

    monkeypatch.setattr(render, "render_email", failing_render)
    mails.table.action_button(b).click()
    assert_no_a()
    text = shown_text(reader)
    assert "Bravo rooming list" in text and "The text of this mail could not be shown" in text and "list.pdf" in text
    assert "simulated" not in text and reader.rendered is None

    # and the next mail shows cleanly again
    monkeypatch.setattr(render, "render_email", real_render)
    reader.clear_errors()
    show_a()
    assert reader.message.value == ""


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
