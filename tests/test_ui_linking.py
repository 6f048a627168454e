"""The linking panel: tick mails, search records, link, remove, resolve candidates."""
from __future__ import annotations

import pandas as pd
import pytest

from mailfactory import make_mail
from vmailkit import Store, make_account
from vmailkit.ingest import save_received

pytest.importorskip("vmailkit.links")
from vmailkit.crm import load_crm  # noqa: E402
from vmailkit.match import match_new  # noqa: E402
from vmailkit.ui import LinkingPanel, MailListPanel, MailReaderPanel  # noqa: E402


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "l.duckdb", lock_timeout=5)
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                               address="office@x.example", secret="env:X"))
    s.subscribe("anna", "office")
    load_crm(s, {
        "persons": pd.DataFrame([(1, "Ana", "Garcia", "ana@hotelsol.example", "false")],
                                columns=["person_id", "first_name", "last_name", "email", "is_temporary"]),
        "customers": pd.DataFrame([(10, "Hotel Sol", 1), (11, "Sol Group", None), (12, "Bus Company", None)],
                                  columns=["customer_id", "name", "main_person_id"]),
        "reservations": pd.DataFrame([(100, "L-500", 10, None), (101, "B-500", 11, None), (102, "B-777", 12, None)],
                                     columns=["reservation_id", "booking_code", "customer_id", "brand_id"]),
        "products": pd.DataFrame([(500, "PAE", "Paella evening")], columns=["product_id", "code", "name"]),
    })
    return s


def save(store: Store, raws: list[bytes]) -> list[int]:
    acc = store.get_account("office")
    res = save_received(store, "anna", acc.name, [(i + 1, r) for i, r in enumerate(raws)])
    ids = [res.by_key[str(i + 1)] for i in range(len(raws))]
    match_new(store, ids)
    return ids


def test_link_search_remove_and_candidates(store):
    a, b, c = save(store, [
        make_mail(1, subject="Question about the show", sender="x@agency.example"),
        make_mail(2, subject="Booking 500 rooming list", sender="y@agency.example"),   # two reservations fit
        make_mail(3, subject="Hello", sender="Ana <ana@hotelsol.example>"),            # auto-linked to Ana
    ])
    reader = MailReaderPanel(store, "anna")
    mails = MailListPanel(store, "anna", on_open=reader.open)
    panel = LinkingPanel(store, mails, user="anna", on_change=reader.refresh_relations)
    assert panel.save_button.disabled
    # with nothing ticked, every open candidate is offered
    assert {k[2] for k in panel.candidates_table.keys} == {100, 101}

    # link two mails to a customer found by search
    mails.table.checkbox(a).value = True
    mails.table.checkbox(b).value = True
    panel.entity_type.value = "customer"
    panel.query.value = "sol"
    assert set(panel.results["display_name"]) == {"Hotel Sol", "Sol Group"}
    panel.results_table.checkbox(("customer", 11)).value = True
    assert not panel.save_button.disabled and "2 mail(s) ticked × 1 record(s)" in panel.target_info.value
    panel.save_button.click()
    assert panel.errors == [] and "2 link(s) added" in panel.message.value
    for e in (a, b):
        rel = store.relations(e)
        assert list(zip(rel["entity_type"], rel["entity_id"], rel["origin"], rel["linked_by"])) == [("customer", 11, "manual", "anna")]
    assert {k for k in panel.links_table.keys} == {(a, "customer", 11), (b, "customer", 11)}
    # the list shows the related count and filters by link
    row = mails.table.body.children[mails.table.keys.index(a)].children[1].value
    assert "vmk-col-related" in row and ">1</span>" in row
    mails.linked.value = "no"
    assert mails.table.keys == []          # a, b linked by hand, c automatically
    mails.linked.value = ""
    mails.entity_type.value = "customer"
    mails.entity_id.value = "11"
    mails.apply_button.click()
    assert set(mails.table.keys) == {a, b}
    mails.clear_button.click()

    # quote/order and product types search too; several records at once
    panel.entity_type.value = "product"
    panel.query.value = "paella"
    panel.results_table.checkbox(("product", 500)).value = True
    panel.save_button.click()
    assert ("product", 500) in set(zip(store.relations(a)["entity_type"], store.relations(a)["entity_id"]))

    # one-click link of a candidate of the ticked mail b
    mails.select_none_button.click()
    mails.table.checkbox(b).value = True
    assert set(panel.candidates_table.keys) == {(b, "reservation", 100), (b, "reservation", 101)}
    panel.candidates_table.action_button((b, "reservation", 101)).click()
    assert ("reservation", 101) in set(zip(store.relations(b)["entity_type"], store.relations(b)["entity_id"]))
    assert panel.candidates_table.keys == []          # resolved: no longer offered

    # remove a link from the list of links; automatic matching never re-adds it
    mails.select_none_button.click()
    mails.table.checkbox(c).value = True
    auto = [k for k in panel.links_table.keys if k[1] == "customer"]
    assert auto == [(c, "customer", 10)]
    mails.table.action_button(c).click()
    assert "Hotel Sol" in reader.relations.value
    panel.links_table.action_button(auto[0]).click()
    assert ("customer", 10) not in set(zip(store.relations(c)["entity_type"], store.relations(c)["entity_id"]))
    assert "Hotel Sol" not in reader.relations.value          # the open mail's relations follow
    match_new(store, [c])
    assert ("customer", 10) not in set(zip(store.relations(c)["entity_type"], store.relations(c)["entity_id"]))
    assert panel.errors == [] and mails.errors == [] and reader.errors == []


def test_errors_are_shown(store):
    (a,) = save(store, [make_mail(1)])
    mails = MailListPanel(store)
    panel = LinkingPanel(store, mails, user="anna")
    panel.save_button.disabled = False
    panel.save_button.click()
    assert "tick the mails" in panel.errors[-1]
    mails.table.checkbox(a).value = True
    panel.save_button.disabled = False
    panel.save_button.click()
    assert "tick the records" in panel.errors[-1]
    panel.query.value = "nothing like this"
    assert "No record matches" in panel.results_table.empty.value
