"""The batch import (``vmailkit.batch``), its notebook under papermill and ``vmailkit batch``."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from helpers import add_account
from mailfactory import make_mail
from vmailkit import NotFoundError, Store, ValidationError
from vmailkit.batch import ACCOUNT_COLUMNS, LINK_COLUMNS, BatchFailed, BatchReport, format_table, run_batch, run_notebook

COUNTS = ["listed", "downloaded", "already_present", "failed", "links", "candidates"]


def figures(report: BatchReport) -> dict[tuple[str, str], tuple[int, ...]]:
    return {(r["user"], r["account"]): tuple(int(r[c]) for c in COUNTS) for r in report.accounts.to_dict("records")}


def rules(report: BatchReport, user: str, account: str) -> dict[str, int]:
    table = report.links_by_rule()
    column = table[f"{user}/{account}"]
    return {rule: int(n) for rule, n in column.items() if n}


# -- without a mail server ----------------------------------------------------------------------------
def test_report_text_json_and_failures(tmp_path):
    accounts = pd.DataFrame([
        ("anna", "office", "imap", 3, 3, 0, 0, 0, 5, 2, None, None),
        ("ben", "ben-pop", "pop3", 0, 0, 0, 0, 0, 0, 0, "ben-pop: login failed (check the app password)", "auth"),
    ], columns=ACCOUNT_COLUMNS)
    links = pd.DataFrame([("anna", "office", "person.email", 3), ("anna", "office", "reservation.booking_code", 2)],
                         columns=LINK_COLUMNS)
    report = BatchReport(accounts=accounts, links=links, matcher="vmailkit.match", options={"match": True})
    text = report.to_text()
    assert "anna  office   imap" in text and "FAILED: ben-pop: login failed" in text
    assert "reservation.booking_code" in text and "1 account(s) failed" in text
    assert report.links_by_rule().loc["person.email", "anna/office"] == 3
    assert not report.ok and list(report.failures()["account"]) == ["ben-pop"]
    with pytest.raises(BatchFailed) as info:
        report.raise_for_failures()
    assert info.value.report is report and "ben / ben-pop" in str(info.value)
    report.raise_for_failures(tolerate=True)
    assert report.save(None) is None
    loaded = BatchReport.load(report.save(tmp_path / "r.json"))
    assert figures(loaded) == figures(report) and loaded.to_text() == text
    assert format_table(pd.DataFrame({"a": ["x", "yy"], "n": [1, 22]})) == "a    n\nx    1\nyy  22"


def test_bad_inputs(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        run_batch(tmp_path / "missing.duckdb")
    store = Store(tmp_path / "v.duckdb")
    store.add_user("anna")
    with pytest.raises(NotFoundError):
        run_batch(store.path, "zoe")
    report = run_batch(store.path)            # a user without accounts: nothing to do, no error
    assert report.ok and report.accounts.empty and "No user or account" in report.to_text()


# -- against the test Dovecot ---------------------------------------------------------------------------
CRM = {
    "persons": pd.DataFrame([(1, "Rosa", "Sol", "reservas@hotelsol.example", "false")],
                            columns=["person_id", "first_name", "last_name", "email", "is_temporary"]),
    "suppliers": pd.DataFrame([(20, "Hotel Sol", 1)], columns=["supplier_id", "name", "main_person_id"]),
    "brands": pd.DataFrame([(1, "XB")], columns=["brand_id", "code"]),
    "reservations": pd.DataFrame([(100, "B-701", None, None), (101, "O-702", None, None),
                                  (102, "L-703", None, None), (103, "B-XB-703", None, 1)],   # 703: ambiguous
                                 columns=["reservation_id", "booking_code", "customer_id", "brand_id"]),
}


@pytest.fixture
def office(tmp_path, dovecot, monkeypatch):
    """anna and ben share the IMAP account office (3 mails); ben has a POP3 box (2 mails); CRM loaded."""
    from vmailkit.crm import load_crm

    general, personal = dovecot.new_user(), dovecot.new_user()
    for n in (1, 2, 3):
        dovecot.deliver(general.name, make_mail(n, attachment=b"%PDF-1.4" if n == 1 else None))
    for n in (4, 5):
        dovecot.deliver(personal.name, make_mail(n))
    store = Store(tmp_path / "office.duckdb")
    store.add_user("anna")
    store.add_user("ben")
    add_account(store, dovecot, general, name="office", password_env="VMK_BATCH_OFFICE")
    add_account(store, dovecot, personal, name="ben-pop", kind="personal", owner="ben", protocol="pop3",
                security="starttls", password_env="VMK_BATCH_BEN")
    for user, account in (("anna", "office"), ("ben", "office"), ("ben", "ben-pop")):
        store.subscribe(user, account)
    load_crm(store, CRM)
    monkeypatch.setenv("VMK_BATCH_OFFICE", general.password)
    monkeypatch.setenv("VMK_BATCH_BEN", personal.password)
    return store, general, personal


@pytest.mark.dovecot
def test_run_batch_every_user_then_nothing_new(office):
    store, _, _ = office
    report = run_batch(store.path)
    assert report.ok and report.users == ["anna", "ben"]
    assert figures(report) == {
        ("anna", "office"): (3, 3, 0, 0, 3 + 3 + 2, 2),     # person + supplier for each, 701 and 702; 703 ambiguous
        ("ben", "office"): (3, 0, 3, 0, 0, 0),              # anna stored them: ben's copy is no duplicate
        ("ben", "ben-pop"): (2, 2, 0, 0, 4, 0),
    }
    assert rules(report, "anna", "office") == {"person.email": 3, "supplier.main_person": 3,
                                               "reservation.booking_code": 2}
    assert store.count_emails() == 5 and len(store.link_candidates()) == 2

    again = run_batch(store.path)
    assert all(v == (0, 0, 0, 0, 0, 0) for v in figures(again).values())
    everything = run_batch(store.path, "ben", from_beginning=True)
    assert figures(everything) == {("ben", "office"): (3, 0, 3, 0, 0, 0), ("ben", "ben-pop"): (2, 0, 2, 0, 0, 0)}
    assert store.count_emails() == 5


@pytest.mark.dovecot
def test_check_only_and_no_matching(office):
    store, _, _ = office
    checked = run_batch(store.path, "anna", download_all_new=False)
    assert figures(checked) == {("anna", "office"): (3, 0, 0, 0, 0, 0)} and store.count_emails() == 0
    plain = run_batch(store.path, "anna", match=False)
    assert figures(plain) == {("anna", "office"): (3, 3, 0, 0, 0, 0)} and not plain.matcher
    assert store.query("SELECT count(*) AS n FROM email_links")["n"].iloc[0] == 0


@pytest.mark.dovecot
def test_failed_account_raises_after_the_others(office, monkeypatch):
    store, _, _ = office
    monkeypatch.setenv("VMK_BATCH_BEN", "wrong-Pa55word")
    with pytest.raises(BatchFailed) as info:
        run_batch(store.path)
    report = info.value.report
    by = figures(report)
    assert by[("anna", "office")][1] == 3 and by[("ben", "office")][2] == 3   # the others completed
    failed = report.failures()
    assert list(failed["account"]) == ["ben-pop"] and list(failed["reason"]) == ["auth"]
    assert "wrong-Pa55word" not in report.to_text() + json.dumps(report.to_dict())
    tolerated = run_batch(store.path, tolerate_failures=True)
    assert not tolerated.ok and list(tolerated.failures()["account"]) == ["ben-pop"]


@pytest.mark.dovecot
def test_notebook_under_papermill(office, tmp_path, monkeypatch):
    store, general, personal = office
    out = tmp_path / "out.ipynb"
    done = run_notebook(out, {"db_path": str(store.path), "user": "anna", "report_path": str(tmp_path / "r.json")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert figures(BatchReport.load(tmp_path / "r.json")) == {("anna", "office"): (3, 3, 0, 0, 8, 2)}
    executed = out.read_text()
    assert "reservation.booking_code" in executed and general.password not in executed

    monkeypatch.setenv("VMK_BATCH_BEN", "wrong-Pa55word")
    failed = run_notebook(out, {"db_path": str(store.path), "user": None})
    assert failed.returncode != 0 and "BatchFailed" in failed.stderr
    executed = out.read_text()
    assert "ben-pop" in executed and "wrong-Pa55word" not in executed and personal.password not in executed
    assert "ben / office: 0 downloaded, 3 already present" in executed     # the others still ran
    tolerated = run_notebook(out, {"db_path": str(store.path), "user": None, "tolerate_failures": True})
    assert tolerated.returncode == 0, tolerated.stderr[-3000:]


@pytest.mark.dovecot
def test_cli_batch(office, monkeypatch):
    store, _, _ = office

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vmailkit", "--db", str(store.path), "batch", *args],
                              capture_output=True, text=True, env=dict(os.environ), timeout=180)

    ok = cli("--user", "anna", "--format", "json", "--quiet")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert [(a["account"], a["downloaded"], a["links"]) for a in data["accounts"]] == [("office", 3, 8)]
    monkeypatch.setenv("VMK_BATCH_BEN", "wrong-Pa55word")
    bad = cli()
    assert bad.returncode == 3 and "ben-pop" in bad.stderr and "FAILED" in bad.stdout
    assert cli("--tolerate-failures", "--quiet").returncode == 0
