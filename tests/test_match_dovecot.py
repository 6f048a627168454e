"""Matching end to end: mail delivered to the test Dovecot, downloaded, links present."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

import crm_fixture as F
from helpers import add_account
from vmailkit import Store, download
from vmailkit.cli import main
from vmailkit.crm import load_crm
from vmailkit.match import match_new

pytestmark = pytest.mark.dovecot


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "vmail.duckdb")
    s.add_user("anna", "anna@tour.example")
    return s


def deliver_fixture(dovecot, mailuser) -> None:
    for n, key in enumerate(F.MAILS, start=1):
        dovecot.deliver(mailuser.name, F.mail_bytes(n, key))


def links_by_key(store: Store) -> tuple[dict[str, set], dict[str, set]]:
    ids = {mid.rsplit("-", 1)[0]: eid for eid, mid in
           store.query("SELECT email_id, message_id FROM emails").itertuples(index=False)}
    by_id = {v: k for k, v in ids.items()}
    links: dict[str, set] = {k: set() for k in ids}
    for e, t, i, rule in store.query("SELECT email_id, entity_type, entity_id, rule FROM email_links").itertuples(index=False):
        links[by_id[e]].add((t, int(i), rule))
    cands: dict[str, set] = {}
    for e, i, m in store.query("SELECT email_id, entity_id, matched FROM email_link_candidates").itertuples(index=False):
        cands.setdefault(by_id[e], set()).add((int(i), m))
    return links, cands


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_download_links_new_mail_chunk_by_chunk(store, dovecot, mailuser, monkeypatch, protocol):
    from vmailkit.transport import imap as imap_transport
    from vmailkit.transport import pop3 as pop3_transport

    monkeypatch.setattr(imap_transport, "BODY_CHUNK_MAX", 4)
    monkeypatch.setattr(pop3_transport, "FETCH_CHUNK_MAX", 4)
    deliver_fixture(dovecot, mailuser)
    load_crm(store, F.crm_frames())
    add_account(store, dovecot, mailuser, name="office", protocol=protocol)
    store.subscribe("anna", "office")
    chunks: list[list[int]] = []

    def hook(s: Store, new_ids: list[int]) -> int:
        chunks.append(list(new_ids))
        return match_new(s, new_ids)

    summary = download(store, "anna", all_new=True, passwords={"office": mailuser.password}, after_chunk=hook)
    assert summary.ok and summary.total("downloaded") == len(F.MAILS)
    assert len(chunks) == 4                                   # 16 mails, 4 per chunk
    assert summary.total("auto_linked") == sum(len(v) for v in F.EXPECTED.values()) == 21
    links, cands = links_by_key(store)
    assert links == F.EXPECTED
    assert cands == F.EXPECTED_CANDIDATES
    # downloading again finds nothing new and links nothing twice
    again = download(store, "anna", all_new=True, from_beginning=True, passwords={"office": mailuser.password},
                     after_chunk=match_new)
    assert again.total("auto_linked") == 0 and again.total("already_present") == len(F.MAILS)
    assert store.query("SELECT count(*) AS n FROM email_links")["n"].iloc[0] == 21


def test_cli_download_matches_and_manual_unlink_survives(store, dovecot, mailuser, monkeypatch, tmp_path):
    monkeypatch.setenv("VMK_MATCH_PW", mailuser.password)
    deliver_fixture(dovecot, mailuser)
    add_account(store, dovecot, mailuser, name="office", protocol="pop3", password_env="VMK_MATCH_PW")
    store.subscribe("anna", "office")
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, ["--db", str(store.path), *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    # no CRM data yet: the download's matcher is a no-op
    out = run("download", "anna", "--all", "--format", "csv", "--no-progress")
    assert out.stdout.splitlines()[1].split(",")[:3] == ["office", str(len(F.MAILS)), str(len(F.MAILS))]
    assert out.stdout.splitlines()[1].split(",")[6] == "0"
    run("crm", "load", str(F.write_crm_dir(tmp_path / "crm")))
    run("match")
    links, _ = links_by_key(store)
    assert links == F.EXPECTED
    ana = int(store.query("SELECT email_id FROM emails WHERE message_id LIKE 'ana-%'")["email_id"].iloc[0])
    run("unlink", str(ana), "customer", "10", "--user", "anna")
    run("match", "--all")
    assert ("customer", 10, "customer.main_person") not in links_by_key(store)[0]["ana"]

    # a new mail arrives: the CLI download links it
    F.MAILS["tmp-new"] = ("Bea <sales@bus.example>", "Coach for booking 324")
    try:
        dovecot.deliver(mailuser.name, F.mail_bytes(99, "tmp-new"))
    finally:
        del F.MAILS["tmp-new"]
    out = run("download", "anna", "--all", "--format", "csv", "--no-progress")
    assert out.stdout.splitlines()[1].split(",")[6] == "3"
    new_links = links_by_key(store)[0]["tmp-new"]
    assert new_links == {("person", 6, "person.email"), ("supplier", 21, "supplier.main_person"),
                         ("reservation", 101, "reservation.booking_code")}
