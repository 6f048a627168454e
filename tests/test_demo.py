"""The embedded demo: its content, its mail server, and ``make demo`` end to end (papermill included).

No Dovecot needed: the demo brings its own server (pymap for IMAP, twisted.mail.pop3 for POP3).
"""
from __future__ import annotations

import imaplib
import os
import poplib
import re
import time
from email import message_from_bytes, policy

import pandas as pd
import pytest

pytest.importorskip("pymap")
pytest.importorskip("twisted")
pytest.importorskip("papermill")

from vmailkit import Store  # noqa: E402
from vmailkit.batch import RULES, BatchReport  # noqa: E402
from vmailkit.demo import DemoPaths, demo_passwords, run_demo  # noqa: E402
from vmailkit.demo.content import AMBIGUOUS_NUMBER, RESERVATIONS, generate  # noqa: E402
from vmailkit.demo.server import DEMO_UIDVALIDITY, FIRST_UID, DemoServer, free_port, pop3_protocol, pop3_uidl  # noqa: E402
from vmailkit.parse import parse_message  # noqa: E402

COUNTS = ["listed", "downloaded", "already_present", "links", "candidates"]


@pytest.fixture(scope="module")
def content():
    return generate()


# -- content -------------------------------------------------------------------------------------
def test_content_is_deterministic_and_realistic(content):
    again = generate()
    assert [m.message for m in again.mails] == [m.message for m in content.mails]
    assert [m.date for m in again.mails] == [m.date for m in content.mails]
    assert all(again.crm[t].equals(content.crm[t]) for t in content.crm)

    per_account = content.mails_per_account()
    assert 250 <= sum(per_account.values()) <= 350 and set(per_account) == {"office", "anna-mail", "ben-mail"}
    dates = sorted(m.date for m in content.mails)
    assert (dates[-1] - dates[0]).days >= 35                         # several weeks
    assert {"customer", "supplier", "traveller", "newsletter", "internal", "other"} <= {m.category for m in content.mails}
    assert sum(len(m.mailboxes) > 1 for m in content.mails) >= 5     # copies in two mailboxes

    charsets, types, filenames = set(), set(), set()
    replies = remote_images = 0
    for m in content.mails:
        msg = message_from_bytes(m.message, policy=policy.default)
        replies += msg["In-Reply-To"] is not None
        for part in msg.walk():
            types.add(part.get_content_type())
            if part.get_content_charset():
                charsets.add(part.get_content_charset())
            if part.get_filename():
                filenames.add(part.get_filename())
            if part.get_content_type() == "text/html" and re.search(r'<img src="https?://', part.get_content()):
                remote_images += 1
        parsed = parse_message(m.message)
        assert parsed.parse_error is None, (m.key, parsed.parse_error)
        assert parsed.subject == m.subject                          # the ground truth's subject is what is stored
    assert {"iso-8859-1", "iso-8859-2", "iso-8859-7", "iso-2022-jp", "windows-1250", "windows-1252", "utf-8"} <= charsets
    assert {"application/pdf", "image/png", "text/csv", "text/calendar", "text/html", "multipart/related"} <= types
    assert any(not f.isascii() for f in filenames)                   # RFC 2231 file name
    assert replies >= 30 and remote_images >= 20
    assert any(re.search(r"\bB-DB1-1042\b", m.subject) for m in content.mails)
    assert any(re.search(r"\bBooking 756\b", m.subject) for m in content.mails)


def test_ground_truth(content):
    links = content.expected_links()
    assert set(links["rule"]) == set(RULES)                          # every rule is exercised
    cands = content.expected_candidates()
    ambiguous = [r.id for r in RESERVATIONS if r.number == AMBIGUOUS_NUMBER]
    assert len(ambiguous) == 2 and set(cands["entity_id"]) == set(ambiguous)
    assert all(AMBIGUOUS_NUMBER in s for s in cands["subject"])
    # temporary persons are never linked; their booking numbers are
    temp = {"lars.nilsson@webmail.example", "chen.wei@webmail.example"}
    temp_mails = [m for m in content.mails if m.sender in temp]
    assert temp_mails and all({t for t, _, _ in m.links} == {"reservation"} for m in temp_mails)
    # newsletters, internal and other mail link to nothing
    assert all(not m.links for m in content.mails if m.category in ("newsletter", "internal", "other"))
    run = content.expected_run()
    assert list(zip(run["user"], run["account"])) == [("anna", "office"), ("anna", "anna-mail"),
                                                      ("ben", "office"), ("ben", "ben-mail")]
    assert run["downloaded"].sum() == len(content.mails)


# -- the server --------------------------------------------------------------------------------------
def test_pop3_dot_stuffing_across_chunks():
    proto = pop3_protocol()()
    proto._prev_lf = True
    assert proto.transformChunk(b".first\nline\n.") == b"..first\r\nline\r\n.."
    assert proto.transformChunk(b"x\n") == b"x\r\n"       # the "." above ended the chunk: not a line start
    assert proto.transformChunk(b".next") == b"..next"     # the previous chunk ended with LF
    assert proto.transformChunk(b"a.b\n") == b"a.b\r\n"


def test_server_serves_exact_bytes_with_pinned_uidvalidity(content, tmp_path):
    env = demo_passwords(content, {})
    accounts = {a.name: a for a in content.accounts}
    uidvalidities = []
    for attempt in range(2):   # a restarted server is the same mailbox: same UIDVALIDITY, UIDs, UIDLs
        with DemoServer(state_file=tmp_path / "server.json", env=env, imap_port=free_port(), pop3_port=0) as srv:
            expected = [raw for raw, _ in content.mailbox("anna-mail")]
            imap = imaplib.IMAP4("127.0.0.1", srv.imap_port)
            try:
                imap.login(accounts["anna-mail"].address, env[accounts["anna-mail"].secret_env])
                typ, data = imap.select("INBOX", readonly=True)
                uidvalidities.append(int(imap.response("UIDVALIDITY")[1][0]))
                typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
                got = {int(re.search(rb"UID (\d+)", d[0]).group(1)): d[1] for d in data if isinstance(d, tuple)}
            finally:
                imap.logout()
            assert got == {FIRST_UID + i: raw for i, raw in enumerate(expected)}

            expected = [raw for raw, _ in content.mailbox("ben-mail")]
            assert any(b"\r\n..." in raw for raw in expected)          # a line starting with "."
            pop = poplib.POP3("127.0.0.1", srv.pop3_port)
            try:
                pop.user(accounts["ben-mail"].address)
                pop.pass_(env[accounts["ben-mail"].secret_env])
                uidls = [line.split()[1].decode() for line in pop.uidl()[1]]
                assert uidls == [pop3_uidl(raw) for raw in expected]
                started = time.monotonic()
                bodies = [b"\r\n".join(pop.retr(i + 1)[1]) + b"\r\n" for i in range(len(expected))]
                took = time.monotonic() - started
            finally:
                pop.quit()
            assert bodies == expected
            assert took < 0.01 * len(expected) + 0.3    # TCP_NODELAY: without it ~45 ms per RETR (2.3 s here)
            with pytest.raises(poplib.error_proto):
                bad = poplib.POP3("127.0.0.1", srv.pop3_port)
                bad.user(accounts["ben-mail"].address)
                bad.pass_("wrong")
    assert uidvalidities == [DEMO_UIDVALIDITY, DEMO_UIDVALIDITY]
    assert not (tmp_path / "server.json").exists()                      # removed when stopped


# -- make demo, end to end ----------------------------------------------------------------------------
def _db_links(store: Store) -> tuple[set, set]:
    links = store.query(
        "SELECT e.message_id, l.entity_type, l.entity_id, l.rule FROM email_links l JOIN emails e USING (email_id)"
        " WHERE l.origin = 'auto'")
    cands = store.query(
        "SELECT e.message_id, c.entity_type, c.entity_id FROM email_link_candidates c JOIN emails e USING (email_id)")
    key = lambda mid: mid.split(".", 1)[0]  # noqa: E731 - the demo's Message-IDs start with the mail's key
    return ({(key(r.message_id), r.entity_type, int(r.entity_id), r.rule) for r in links.itertuples()},
            {(key(r.message_id), r.entity_type, int(r.entity_id)) for r in cands.itertuples()})


def test_make_demo_end_to_end_and_idempotent(content, tmp_path):
    printed: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("VMAILKIT_DEMO_PW_")}
    passwords = demo_passwords(content, {})
    env.update(passwords)                    # known to the test, so it can look for them in every file
    ports = dict(imap_port=free_port(), pop3_port=free_port())
    directory = tmp_path / "demo"

    first = run_demo(directory, out=printed.append, env=env, **ports)
    expected = content.expected_run()
    got = first.report.accounts.merge(expected, on=["user", "account"], suffixes=("", "_expected"))
    assert len(got) == len(expected) == 4 and first.report.ok
    for col in COUNTS:
        assert list(got[col]) == list(got[f"{col}_expected"]), col
    by_rule = first.report.links_by_rule()
    for row in expected.to_dict("records"):
        for rule in RULES:
            assert by_rule.loc[rule, f"{row['user']}/{row['account']}"] == row[rule], (row["account"], rule)

    # what was printed: the figures, and where the results are
    text = "\n".join(printed)
    for row in first.report.summary().itertuples(index=False):
        assert re.search(rf"{row.user}\s+{re.escape(row.account)}\s+{row.protocol}\s+{row.listed}\s+{row.downloaded}\s+"
                         rf"{row.already_present}\s+0\s+{row.links}\s+{row.candidates}\s+ok", text), row
    assert "reservation.booking_code" in text and str(DemoPaths(directory.resolve()).db.name) in text
    assert "The demo mail server is stopped." in text

    # the database holds exactly the ground truth
    store = Store(directory / "vmail.duckdb")
    assert store.count_emails() == len(content.mails)
    links, cands = _db_links(store)
    assert links == {(m.key, t, i, r) for m in content.mails for t, i, r in m.links}
    assert cands == {(m.key, t, i) for m in content.mails for t, i in m.candidates}
    assert len(store.locations()) == sum(len(m.mailboxes) for m in content.mails)

    # a second run reports nothing new and duplicates nothing
    printed.clear()
    second = run_demo(directory, out=printed.append, env=env, **ports)
    assert second.report.ok and all(second.report.total(c) == 0 for c in COUNTS)
    assert "Nothing new" in "\n".join(printed)
    assert store.count_emails() == len(content.mails)
    assert _db_links(store) == (links, cands)
    assert len(store.locations()) == sum(len(m.mailboxes) for m in content.mails)

    # no password anywhere on disk: database, notebook output, report, CRM files
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "last_run.json" for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    for pw in passwords.values():
        assert pw.encode() not in blob
    assert isinstance(BatchReport.load(directory / "last_run.json"), BatchReport)
    assert len(pd.read_csv(directory / "crm" / "reservations.csv")) == len(RESERVATIONS)
