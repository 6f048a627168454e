"""The automatic matching rules, pinned one by one on the hand-built CRM fixture (no server)."""
from __future__ import annotations

import pandas as pd
import pytest

import crm_fixture as F
from vmailkit import Store
from vmailkit.crm import load_crm
from vmailkit.links import link, unlink
from vmailkit.match import RULES, match_all, match_emails, match_new, match_unlinked
from vmailkit.ingest import save_received


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "vmail.duckdb")


@pytest.fixture
def ids(store) -> dict[str, int]:
    """Every fixture mail stored, the fixture CRM loaded, nothing matched yet."""
    stored = F.store_mails(store)
    load_crm(store, F.crm_frames())
    return stored


def links_by_mail(store: Store, ids: dict[str, int], *, origin: str | None = "auto") -> dict[str, set]:
    frame = store.query("SELECT email_id, entity_type, entity_id, rule, origin FROM email_links")
    by_id = {v: k for k, v in ids.items()}
    out: dict[str, set] = {k: set() for k in ids}
    for e, t, i, rule, o in frame.itertuples(index=False):
        if origin is None or o == origin:
            out[by_id[e]].add((t, int(i), rule))
    return out


def candidates_by_mail(store: Store, ids: dict[str, int]) -> dict[str, set]:
    frame = store.query("SELECT email_id, entity_type, entity_id, matched FROM email_link_candidates")
    by_id = {v: k for k, v in ids.items()}
    out: dict[str, set] = {}
    for e, t, i, matched in frame.itertuples(index=False):
        assert t == "reservation"
        out.setdefault(by_id[e], set()).add((int(i), matched))
    return out


@pytest.mark.parametrize("key", list(F.MAILS))
def test_every_rule_branch(store, ids, key):
    """One case per fixture mail: see the comments in tests/crm_fixture.py for what each pins."""
    match_all(store)
    assert links_by_mail(store, ids)[key] == F.EXPECTED[key]
    assert candidates_by_mail(store, ids).get(key, set()) == F.EXPECTED_CANDIDATES.get(key, set())


def test_result_counts_by_rule(store, ids):
    result = match_all(store)
    expected: dict[str, int] = {r: 0 for r in RULES}
    for links in F.EXPECTED.values():
        for _, _, rule in links:
            expected[rule] += 1
    assert result.by_rule == expected
    assert result.links_added == sum(expected.values()) == 21
    assert result.candidates_added == 4 and result.mails == len(F.MAILS) and result.skipped_rejected == 0


def test_automatic_links_record_origin_rule_and_time(store, ids):
    match_all(store)
    links = store.query("SELECT * FROM email_links")
    assert set(links["origin"]) == {"auto"}
    assert set(links["rule"]) == set(RULES)
    assert links["linked_by"].isna().all() and links["linked_at"].notna().all()


def test_temporary_persons_are_ignored(store, ids):
    match_all(store)
    linked_persons = set(store.query("SELECT entity_id FROM email_links WHERE entity_type = 'person'")["entity_id"])
    assert not linked_persons & {2, 8}            # temporary, even though mails came from their addresses
    assert 11 not in set(store.query("SELECT entity_id FROM email_links WHERE entity_type = 'customer'")["entity_id"])


def test_contact_rule_only_when_main_person_found_no_customer(store, ids):
    match_all(store)
    customers = links_by_mail(store, ids)
    # Ana is main person of customer 10; customer 15 has her address as EMAIL contact: not linked
    assert ("customer", 15, "customer.contact_email") not in customers["ana"]
    # Bea is main person of supplier 21; supplier 22 has her address as EMAIL contact: not linked
    assert ("supplier", 22, "supplier.contact_email") not in customers["bus"]
    # the contact rule is per owner kind: customer 14 and supplier 24 share a contact address
    assert {t for t, _, _ in customers["contact"]} == {"customer", "supplier"}


def test_rerun_is_idempotent(store, ids):
    first = match_all(store)
    before = store.query("SELECT * FROM email_links ORDER BY ALL")
    cands = store.query("SELECT * FROM email_link_candidates ORDER BY ALL")
    second = match_all(store)
    assert (second.links_added, second.candidates_added) == (0, 0) and first.links_added == 21
    assert match_new(store, list(ids.values())) == 0
    pd.testing.assert_frame_equal(store.query("SELECT * FROM email_links ORDER BY ALL"), before)
    pd.testing.assert_frame_equal(store.query("SELECT * FROM email_link_candidates ORDER BY ALL"), cands)


def test_removed_automatic_link_is_never_added_again(store, ids):
    match_all(store)
    assert unlink(store, ids["ana"], "customer", 10, user="anna") == 1
    again = match_all(store)
    assert again.links_added == 0 and again.skipped_rejected == 1
    assert match_new(store, [ids["ana"]]) == 0
    assert ("customer", 10, "customer.main_person") not in links_by_mail(store, ids)["ana"]
    # the same record found through another mail is still linked there
    assert ("customer", 10, "customer.main_person") in links_by_mail(store, ids)["mixed"]
    rejected = store.link_rejections(ids["ana"])
    assert rejected[["entity_type", "entity_id", "origin", "rule", "rejected_by"]].values.tolist() == [
        ["customer", 10, "auto", "customer.main_person", "anna"]]
    # linking it by hand again clears the rejection; matching then leaves the manual link alone
    link(store, ids["ana"], "customer", 10, user="ben")
    assert store.link_rejections(ids["ana"]).empty
    match_all(store)
    row = store.query("SELECT origin, linked_by FROM email_links WHERE email_id = ? AND entity_type = 'customer'",
                      [ids["ana"]])
    assert row.values.tolist() == [["manual", "ben"]]


def test_manual_links_are_never_removed_or_duplicated(store):
    stored = F.store_mails(store)
    # linked by hand before any CRM data was matched: the same record and an unrelated one
    load_crm(store, F.crm_frames())
    link(store, stored["ana"], ("person", 1), ("product", 500), user="anna")
    result = match_all(store)
    rows = store.query("SELECT entity_type, entity_id, origin, coalesce(rule, '-') AS rule FROM email_links"
                       " WHERE email_id = ? ORDER BY ALL", [stored["ana"]])
    assert rows.values.tolist() == [
        ["customer", 10, "auto", "customer.main_person"],
        ["person", 1, "manual", "-"],
        ["product", 500, "manual", "-"],
    ]
    assert result.by_rule["person.email"] == 6     # Ana's own link already existed


def test_candidates_kept_and_picked_by_hand(store, ids):
    match_all(store)
    cands = store.link_candidates(ids["ambiguous"])
    assert set(cands["entity_id"]) == {102, 103} and set(cands["display_name"]) == {"L-500", "B-DB1-500"}
    assert not cands["linked"].any() and set(cands["matched"]) == {"500"}
    link(store, ids["ambiguous"], "reservation", 103, user="anna")
    cands = store.link_candidates(ids["ambiguous"]).set_index("entity_id")
    assert bool(cands.loc[103, "linked"]) and not bool(cands.loc[102, "linked"])
    assert match_all(store).links_added == 0
    assert store.related_counts([ids["ambiguous"]]) == {ids["ambiguous"]: 1}


def test_match_new_is_a_no_op_without_crm_data(store):
    stored = F.store_mails(store)
    assert not store.has_crm_data()
    assert match_new(store, list(stored.values())) == 0
    assert match_new(store, []) == 0
    assert store.query("SELECT count(*) AS n FROM email_links")["n"].iloc[0] == 0


def test_match_new_returns_links_made_and_only_touches_given_mails(store, ids):
    made = match_new(store, [ids["ana"], ids["res"]])
    assert made == 4
    assert {k for k, v in links_by_mail(store, ids).items() if v} == {"ana", "res"}
    assert match_emails(store, [ids["ambiguous"], 999999]).candidates_added == 2


def test_match_unlinked_skips_mails_with_links(store, ids):
    link(store, ids["mixed"], "product", 501, user="anna")
    result = match_unlinked(store)
    assert result.mails == len(F.MAILS) - 1
    assert links_by_mail(store, ids)["mixed"] == set()
    assert match_all(store).links_added == len(F.EXPECTED["mixed"])


def test_changed_crm_data_adds_links_and_removes_none(store, ids):
    match_all(store)
    persons = pd.concat([F.PERSONS.iloc[1:], pd.DataFrame([(10, "Ghost", "Person", "GHOST@nowhere.example", "", "ES")],
                                                         columns=F.PERSONS.columns)])
    load_crm(store, {"persons": persons})        # Ana (person 1) is gone, a new person appears
    result = match_all(store)
    assert result.by_rule["person.email"] == 1
    assert ("person", 10, "person.email") in links_by_mail(store, ids)["ghost"]
    assert ("person", 1, "person.email") in links_by_mail(store, ids)["ana"]      # kept
    assert pd.isna(store.relations(ids["ana"]).set_index("entity_type").loc["person", "display_name"])


def test_digit_groups_are_taken_as_written(store):
    F.add_mail_account(store)
    subjects = {"plain": "756", "zeros": "00756", "glued": "Booking756/324x", "reply": "Re: RE: Fwd: FW: 324"}
    stored = {}
    for n, (key, subject) in enumerate(subjects.items(), start=1):
        F.MAILS[f"tmp-{key}"] = ("x@y.example", subject)
        try:
            stored[key] = F.store_mails(store, [f"tmp-{key}"], start_uid=100 + n)[f"tmp-{key}"]
        finally:
            del F.MAILS[f"tmp-{key}"]
    load_crm(store, {"brands": F.BRANDS, "reservations": F.RESERVATIONS})
    match_all(store)
    got = store.query("SELECT email_id, entity_id FROM email_links")
    by_mail = {k: set(got[got["email_id"] == v]["entity_id"]) for k, v in stored.items()}
    assert by_mail == {"plain": {100}, "zeros": set(), "glued": {100, 101}, "reply": {101}}


def test_mail_without_from_or_subject(store):
    F.add_mail_account(store)
    account = str(store.accounts_frame()["name"].iloc[0])
    raws = [b"Subject: Booking 756\r\nMessage-ID: <a@x>\r\n\r\nno sender\r\n",
            b"From: ana@hotelsol.example\r\nMessage-ID: <b@x>\r\n\r\nno subject\r\n"]
    res = save_received(store, "anna", account, list(enumerate(raws, 1)))
    load_crm(store, F.crm_frames())
    match_all(store)
    got = store.query("SELECT email_id, entity_type, entity_id FROM email_links ORDER BY ALL").values.tolist()
    a, b = res.new_ids
    assert got == [[a, "reservation", 100], [b, "customer", 10], [b, "person", 1]]


def test_booking_code_forms(store):
    """B/O/L-N and B/O/L-<brand>-N for every brand code; nothing else."""
    F.add_mail_account(store)
    reservations = pd.DataFrame({
        "reservation_id": range(1, 10),
        "booking_code": ["B-11", "O-12", "L-13", "B-DB1-14", "O-XB-15", "L-db1-16", "Q-17", "B-NOPE-18", "B-19-extra"],
        "customer_id": [None] * 9, "brand_id": [None] * 9,
    })
    load_crm(store, {"brands": F.BRANDS, "reservations": reservations})
    F.MAILS["tmp-forms"] = ("x@y.example", "11 12 13 14 15 16 17 18 19")
    try:
        stored = F.store_mails(store, ["tmp-forms"])
    finally:
        del F.MAILS["tmp-forms"]
    match_all(store)
    got = set(store.query("SELECT entity_id FROM email_links WHERE email_id = ?", [stored["tmp-forms"]])["entity_id"])
    assert got == {1, 2, 3, 4, 5, 6}


def test_brand_codes_come_from_the_brands_table(store):
    F.add_mail_account(store)
    reservations = pd.DataFrame({"reservation_id": [1], "booking_code": ["B-NEW-42"], "customer_id": [None],
                                 "brand_id": [None]})
    load_crm(store, {"brands": F.BRANDS, "reservations": reservations})
    F.MAILS["tmp-brand"] = ("x@y.example", "Booking 42")
    try:
        stored = F.store_mails(store, ["tmp-brand"])
    finally:
        del F.MAILS["tmp-brand"]
    assert match_all(store).links_added == 0
    load_crm(store, {"brands": pd.concat([F.BRANDS, pd.DataFrame({"brand_id": [3], "code": ["NEW"]})])})
    assert match_all(store).links_added == 1
    assert store.relations(stored["tmp-brand"])["display_name"].tolist() == ["B-NEW-42"]
