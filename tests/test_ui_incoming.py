"""The incoming-mail panel against the test Dovecot: check, pick, download, cancel."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from helpers import stored_bytes, add_account
from mailfactory import make_mail
from vmailkit import Store
from vmailkit.ui import IncomingPanel, PasswordBook
from vmailkit.ui.common import Panel, Worker

pytestmark = pytest.mark.dovecot


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "in.duckdb", lock_timeout=5)
    s.add_user("anna", "anna@tour.example")
    return s


def db_bytes(store: Store) -> bytes:
    path = Path(store.path)
    return b"".join(stored_bytes(path))


def test_check_pick_download(store, dovecot, mailuser):
    for n in range(1, 4):
        dovecot.deliver(mailuser.name, make_mail(n, attachment=b"%PDF-1.4" if n == 2 else None))
    add_account(store, dovecot, mailuser, name="office")
    add_account(store, dovecot, mailuser, name="broken", protocol="pop3")
    store.subscribe("anna", "office")
    store.subscribe("anna", "broken")

    passwords = PasswordBook()
    p = IncomingPanel(store, "anna", passwords=passwords, after_chunk=None)
    assert set(p.password_fields) == {"office", "broken"}        # prompt: accounts ask for a password
    assert p.download_button.disabled and "Get incoming email" in p.table.empty.value
    p.password_fields["office"].value = mailuser.password
    p.password_fields["broken"].value = "wrong-Pass-77"
    p.get_button.click()
    assert p.wait(60)
    assert p.errors == []
    # the failed account is marked with its reason, the other one lists
    assert "broken failed (auth)" in p.statuses.value and "office: 3 message(s)" in p.statuses.value
    assert all(f.value == "" for f in p.password_fields.values())
    assert list(p.frame["subject"]) == [f"Booking {700 + n} rooming list" for n in (3, 2, 1)]
    assert len(p.table.body.children) == 3 and 'vmk-col-attach" title="yes"' in p.table.body.children[1].children[1].value

    # tick two rows like a person, then download after confirming
    keys = p.table.keys
    p.table.checkbox(keys[0]).value = True
    p.table.checkbox(keys[2]).value = True
    assert "2 selected" in p.selection.value and not p.download_button.disabled
    p.download_button.click()
    assert p.confirm_box.layout.display == "" and "Download 2 message(s) from office" in p.confirm_text.value
    assert store.count_emails() == 0
    p.confirm_button.click()
    assert p.wait(60)
    assert p.errors == []
    s = p.summary
    assert s.total("downloaded") == 2 and s.total("failed") == 0 and not s.cancelled
    assert "Downloaded <b>2</b>" in p.summary_html.value and "auto-linked <b>0</b>" in p.summary_html.value
    assert p.worker.progress.value == p.worker.progress.max == 2
    stored = store.query("SELECT subject, status FROM emails ORDER BY subject")
    assert list(stored["subject"]) == ["Booking 701 rooming list", "Booking 703 rooming list"]
    assert set(stored["status"]) == {"unread"}
    # the rows now say they are stored, and nothing is ticked
    assert list(p.frame["already_downloaded"]) == [True, False, True] and not p.table.selected
    assert p.download_button.disabled

    # passwords were used from memory only
    assert mailuser.password.encode() not in db_bytes(store) and b"wrong-Pass-77" not in db_bytes(store)
    assert "office" in passwords and mailuser.password not in repr(passwords)


def test_filter_paging_select_all_and_from_beginning(store, dovecot, mailuser, monkeypatch):
    for n in range(1, 24):
        dovecot.deliver(mailuser.name, make_mail(n, subject=f"{'Invoice' if n % 2 else 'Booking'} {n:02d}"))
    monkeypatch.setenv("VMK_UI_IN_PW", mailuser.password)
    add_account(store, dovecot, mailuser, name="office", password_env="VMK_UI_IN_PW")
    store.subscribe("anna", "office")
    p = IncomingPanel(store, "anna", page_size=10, after_chunk=None)
    assert p.password_fields == {}
    p.get_button.click()
    assert p.wait(60) and p.errors == []
    assert p.pager.total == 23 and len(p.table.keys) == 10 and "page 1 of 3" in p.pager.label.value
    p.pager.next_button.click()
    p.pager.next_button.click()
    assert len(p.table.keys) == 3 and p.pager.next_button.disabled
    p.filter.value = "invoice"
    assert p.pager.total == 12 and p.pager.page == 0
    p.select_all_button.click()
    assert len(p.table.selected) == 12 and "12 selected" in p.selection.value
    p.filter.value = ""
    assert len(p.table.selected) == 12        # the selection survives filtering and paging
    p.download_button.click()
    p.confirm_button.click()
    assert p.wait(60) and p.summary.total("downloaded") == 12
    assert set(store.query("SELECT subject FROM emails")["subject"].str.split().str[0]) == {"Invoice"}
    p.select_none_button.click()
    assert not p.table.selected

    # the watermark: only mail above the newest downloaded one is new now
    p.get_button.click()
    assert p.wait(60) and p.pager.total == 0 and "No new mail." in p.table.empty.value
    p.from_beginning.value = True
    p.get_button.click()
    assert p.wait(60) and p.pager.total == 23 and int(p.frame["already_downloaded"].sum()) == 12


def test_cancel_between_accounts(store, dovecot):
    users = [dovecot.new_user() for _ in range(2)]
    for i, u in enumerate(users):
        for n in range(1, 3):
            dovecot.deliver(u.name, make_mail(10 * i + n))
        add_account(store, dovecot, u, name=f"box{i}")
        store.subscribe("anna", f"box{i}")
    passwords = PasswordBook()
    for i, u in enumerate(users):
        passwords[f"box{i}"] = u.password
    holder: dict[str, IncomingPanel] = {}

    def press_cancel(_store, ids):   # the user presses Cancel while the first account is stored
        holder["p"].worker.cancel_button.click()
        return 0

    p = holder["p"] = IncomingPanel(store, "anna", passwords=passwords, after_chunk=press_cancel)
    p.get_button.click()
    assert p.wait(60) and len(p.frame) == 4
    p.select_all_button.click()
    p.download_button.click()
    p.confirm_button.click()
    assert p.wait(60) and p.errors == []
    s = p.summary
    assert s.cancelled and s.total("downloaded") == 2 and s.total("failed") == 0
    assert "Cancelled" in p.summary_html.value and p.worker.progress.bar_style == "warning"
    assert store.count_emails() == 2
    assert int(p.frame["already_downloaded"].sum()) == 2


def test_errors_in_callbacks_are_shown(store):
    p = IncomingPanel(store, "anna", after_chunk=None)
    p.get_button.click()            # anna subscribes to nothing yet
    assert p.errors and "subscribes to no account" in p.errors[-1] and "error" in p.message.value
    p.download_button.click()
    assert "tick the messages" in p.errors[-1]
    assert "no user named 'nobody'" in IncomingPanel(store, "nobody").errors[0]


def test_worker_progress_cancel_and_errors():
    panel = Panel()
    worker = Worker(panel)
    started, results = threading.Event(), []

    def job(progress, cancel):
        for i in range(100):
            progress(i, 100)
            started.set()
            if cancel.is_set():
                return i
            time.sleep(0.01)
        return 100

    worker.start(job, results.append, label="count")
    assert started.wait(5) and worker.busy
    with pytest.raises(Exception, match="still busy"):
        worker.start(job)
    worker.cancel_button.click()
    assert worker.wait(5) and results and results[0] < 100 and worker.progress.bar_style == "warning"

    def boom(progress, cancel):
        raise RuntimeError("kaboom")

    worker.start(boom, label="explode")
    assert worker.wait(5)
    assert panel.errors == ["explode: unexpected RuntimeError: kaboom"]
    assert "Traceback" in panel.log.outputs[-1]["text"] and worker.progress.bar_style == "danger"
