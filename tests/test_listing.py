"""The mail list: the same rows as a straightforward reference query for every filter combination,
keyset paging that visits every mail once while new mail arrives, sender and CRM-record filters."""
from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from mailfactory import make_mail
from vmailkit import EmailFilter, Store, make_account
from vmailkit.crm import load_crm
from vmailkit.errors import NotFoundError, ValidationError
from vmailkit.ingest import save_received
from vmailkit.store.listing import Cursor

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
SENDERS = ["ana@hotelsol.example", "desk@hotelsol.example", "bea@bus.example", "x@other.example"]


def mail(n: int) -> bytes:
    rnd = random.Random(n)
    date = None if n % 23 == 0 else BASE + timedelta(hours=rnd.randrange(0, 2000))  # ties and missing dates
    sender = SENDERS[n % len(SENDERS)]
    code = f"B-{700 + n % 9}"
    raw = make_mail(n, sender=f"Sender {n} <{sender}>", subject=f"Booking {code} rooming list",
                    date=date or BASE, body=f"about {code}")
    if date is None:
        raw = b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date:"))
    return raw


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    s = Store(tmp_path_factory.mktemp("listing") / "v.duckdb")
    s.add_user("anna")
    s.add_user("ben")
    for name, protocol in (("office", "imap"), ("shop", "imap"), ("pop", "pop3")):
        s.add_account(make_account(name, kind="general", protocol=protocol, host="h", security="ssl",
                                   address=f"{name}@tour.example", secret="env:X"))
    s.subscribe("anna", "office")
    s.subscribe("anna", "pop")
    s.subscribe("ben", "shop")
    save_received(s, "anna", "office", [(n, mail(n)) for n in range(1, 121)])
    save_received(s, "ben", "shop", [(n, mail(n)) for n in range(100, 181)])          # 21 shared with office
    save_received(s, "anna", "pop", [(f"u{n}", mail(n)) for n in range(170, 221)])
    load_crm(s, {
        "customers": pd.DataFrame([(10, "Hotel Sol", None)], columns=["customer_id", "name", "main_person_id"]),
        "reservations": pd.DataFrame([(100 + i, f"B-{700 + i}", 10, None) for i in range(9)],
                                     columns=["reservation_id", "booking_code", "customer_id", "brand_id"]),
    })
    from vmailkit import match_all

    match_all(s)
    from vmailkit import link

    for email_id in (3, 7, 11):  # a person linked these to the customer by hand
        link(s, email_id, "customer", 10, user="anna")
    with s.db.atomic() as con:  # some read, some unread
        con.execute("UPDATE emails SET status = 'read' WHERE email_id % 3 = 0")
    return s


def reference(store: Store, *, status=None, account=None, user=None, linked=None, sender=None, record=None,
              since=None, limit=50, offset=0) -> list[int]:
    """The list written the straightforward way: a correlated condition per filter, ORDER BY, LIMIT."""
    where, params = ["TRUE"], []
    if status:
        where.append("e.status = ?"), params.append(status)
    if account:
        where.append("EXISTS (SELECT 1 FROM email_locations l JOIN accounts a USING (account_id)"
                     " WHERE l.email_id = e.email_id AND a.name = ?)"), params.append(account)
    if user:
        where.append("EXISTS (SELECT 1 FROM email_locations l JOIN subscriptions s USING (account_id)"
                     " JOIN users u USING (user_id) WHERE l.email_id = e.email_id AND u.name = ?)"), params.append(user)
    if linked is not None:
        where.append(("" if linked else "NOT ") + "EXISTS (SELECT 1 FROM email_links k WHERE k.email_id = e.email_id)")
    if sender:
        where.append("lower(e.from_address) = ?" if "@" in sender else "split_part(lower(e.from_address), '@', 2) = ?")
        params.append(sender.lower())
    if record:
        where.append("EXISTS (SELECT 1 FROM email_links k JOIN reservations r ON k.entity_type = 'reservation'"
                     " AND k.entity_id = r.reservation_id WHERE k.email_id = e.email_id AND r.booking_code = ?)")
        params.append(record)
    if since:
        where.append("e.sent_at >= ?"), params.append(since)
    rows = store.query(f"SELECT email_id FROM emails e WHERE {' AND '.join(where)}"
                       " ORDER BY sent_at DESC NULLS LAST, email_id DESC LIMIT ? OFFSET ?", params + [limit, offset])
    return [int(i) for i in rows["email_id"]]


COMBOS = list(itertools.product([None, "unread"], [None, "office"], [None, "anna"], [None, True, False],
                                [None, "ana@hotelsol.example", "hotelsol.example"], [None, "B-703"]))


@pytest.mark.parametrize("status,account,user,linked,sender,record", COMBOS)
def test_same_rows_as_the_reference_query(store, status, account, user, linked, sender, record):
    flt = EmailFilter(status=status, account=account, user=user, linked=linked, sender=sender, record=record)
    expected = reference(store, status=status, account=account, user=user, linked=linked, sender=sender, record=record)
    got = store.list_emails(flt, limit=50)
    assert [int(i) for i in got["email_id"]] == expected
    assert store.count_matching(flt) == len(reference(store, status=status, account=account, user=user, linked=linked,
                                                      sender=sender, record=record, limit=10_000))


def test_extra_columns_are_those_of_the_page(store):
    page = store.list_emails(EmailFilter(), limit=30, offset=40)
    ids = [int(i) for i in page["email_id"]]
    want = store.query(
        "SELECT e.email_id, (SELECT string_agg(DISTINCT a.name, ', ' ORDER BY a.name) FROM email_locations l"
        " JOIN accounts a USING (account_id) WHERE l.email_id = e.email_id) AS accounts,"
        " (SELECT count(*) FROM email_links k WHERE k.email_id = e.email_id) AS related_count"
        " FROM emails e WHERE email_id IN (SELECT unnest(?::BIGINT[]))", [ids]).set_index("email_id")
    for row in page.itertuples(index=False):
        assert row.accounts == want.loc[row.email_id, "accounts"]
        assert row.related_count == want.loc[row.email_id, "related_count"]
    assert page["accounts"].str.contains(", ").any() and (page["related_count"] > 0).any()


def test_keyset_paging_visits_every_mail_once_while_new_mail_arrives(tmp_path):
    s = Store(tmp_path / "k.duckdb")
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                               address="o@tour.example", secret="env:X"))
    save_received(s, "anna", "office", [(n, mail(n)) for n in range(1, 101)])
    before = set(int(i) for i in s.query("SELECT email_id FROM emails")["email_id"])
    seen: list[int] = []
    cursor = None
    uid = 1000
    while True:
        page = s.list_emails(EmailFilter(), limit=13, after=cursor)
        if page.empty:
            break
        seen.extend(int(i) for i in page["email_id"])
        cursor = Cursor.after(page)
        uid += 1  # new mail between pages: one newer than everything, one older, one without a date
        save_received(s, "anna", "office", [(uid, make_mail(uid, date=BASE + timedelta(days=400))),
                                            (uid + 5000, make_mail(uid + 5000, date=BASE - timedelta(days=400)))])
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


def test_sender_and_record_filters_say_what_is_wrong(store):
    with pytest.raises(ValidationError):
        store.list_emails(EmailFilter(sender="not an address"))
    with pytest.raises(NotFoundError) as info:
        store.list_emails(EmailFilter(record="B-999"))
    assert "B-999" in str(info.value)
    by_customer = store.count_matching(EmailFilter(record="hotel sol"))
    assert by_customer == store.count_matching(EmailFilter(entity_type="customer", entity_id=10)) > 0
    assert store.count_matching(EmailFilter(record="10", entity_type="customer")) == by_customer
    ids = tuple(int(i) for i in store.list_emails(EmailFilter(), limit=5)["email_id"])
    assert set(store.list_emails(EmailFilter(ids=ids))["email_id"]) == set(ids)


def test_panel_counts_once_per_filter_and_pages_by_keyset(store, monkeypatch):
    pytest.importorskip("ipywidgets")
    from vmailkit.ui import MailListPanel

    counts, calls = [], []
    real_count, real_list = store.count_matching, store.list_emails
    monkeypatch.setattr(store, "count_matching", lambda flt=None: (counts.append(flt), real_count(flt))[1])
    monkeypatch.setattr(store, "list_emails", lambda flt=None, **kw: (calls.append(kw), real_list(flt, **kw))[1])
    panel = MailListPanel(store, page_size=25)
    first = list(panel.page["email_id"])
    panel.pager.next_button.click()
    panel.pager.next_button.click()
    assert len(counts) == 1                                   # three pages, one count
    assert calls[0].get("offset") == 0 and calls[1].get("after") is not None and calls[2].get("after") is not None
    assert list(panel.page["email_id"]) == list(real_list(None, limit=25, offset=50)["email_id"])
    panel.status.value = "unread"                             # a new filter: counted once more
    assert len(counts) == 2 and panel.pager.page == 0
    panel.refresh()                                           # after a download: counted again
    assert len(counts) == 3 and first


def test_kept_connection_is_released_when_idle(tmp_path):
    import subprocess
    import sys
    import time

    s = Store(tmp_path / "keep.duckdb")
    s.add_user("anna")
    keeper = s.keeper(idle=0.3)
    with keeper.use():
        s.list_emails(EmailFilter())
        assert keeper.is_open
    deadline = time.monotonic() + 5
    while keeper.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not keeper.is_open
    # another process can write now
    code = ("import sys; from vmailkit import Store; s = Store(sys.argv[1], lock_timeout=2); s.add_user('ben')")
    subprocess.run([sys.executable, "-c", code, str(s.path)], check=True, timeout=60)
    assert set(s.users()["name"]) == {"anna", "ben"}


def test_downloaded_mail_is_searchable_at_once_and_the_cli_searches_the_index(tmp_path):
    import sys

    from click.testing import CliRunner

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from imap_script import ScriptedImapServer
    from vmailkit import download
    from vmailkit.cli import main
    from vmailkit.search import MailIndex

    html_only = (b"From: desk@hotelsol.example\r\nSubject: Your stay\r\nMessage-ID: <h@x>\r\n"
                 b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Rooming list for Z\xc3\xbcrich</p>\r\n")
    s = Store(tmp_path / "s.duckdb")
    s.add_user("anna")
    with ScriptedImapServer({1: mail(1), 2: html_only}, uidvalidity=7) as srv:
        s.add_account(make_account("office", kind="general", protocol="imap", host=srv.host, port=srv.port,
                                   security="plain", address="o@tour.example", secret="prompt:"))
        s.subscribe("anna", "office")
        assert download(s, "anna", all_new=True, passwords={"office": "pw"}).ok
    hits = MailIndex.for_store(s).search("zurich")  # no catch-up: indexed by the download itself
    assert hits.total == 1
    out = CliRunner().invoke(main, ["--db", str(s.path), "emails", "--search", "ZÜRICH rooming", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert [e["subject"] for e in __import__("json").loads(out.stdout)] == ["Your stay"]
    bad = CliRunner().invoke(main, ["--db", str(s.path), "emails", "--search", '""'])
    assert bad.exit_code == 1 and "search" in bad.stderr


def test_a_process_exits_cleanly_while_its_kept_connection_is_closing(tmp_path):
    import subprocess
    import sys

    code = ("import sys, time; from vmailkit.store.db import Database, Keeper\n"
            "db = Database(sys.argv[1]); k = Keeper(db, idle=0.2)\n"
            "with k.use() as con:\n"
            "    con.execute(\"CREATE TABLE t AS SELECT range AS i, repeat('x', 100) AS s FROM range(1000000)\")\n"
            "time.sleep(float(sys.argv[2]))\n")
    for n, pause in enumerate((0.19, 0.2, 0.21, 0.22, 0.2)):
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"k{n}.duckdb"), str(pause)],
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr[-500:]
