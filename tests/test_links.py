"""Manual links, relations, the related-to count in the mail list, search for the link dialog, the CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import crm_fixture as F
from vmailkit import EmailFilter, NotFoundError, Store, ValidationError
from vmailkit.cli import main
from vmailkit.crm import load_crm
from vmailkit.links import default_user, link, link_candidates, related, related_counts, search, unlink
from vmailkit.match import match_all
from vmailkit.store import ENTITY_TYPES, normalize_entity_type

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "vmail.duckdb")


@pytest.fixture
def ids(store) -> dict[str, int]:
    stored = F.store_mails(store)
    load_crm(store, F.crm_frames())
    return stored


def link_rows(store: Store, email_id: int) -> list[list]:
    return store.query("SELECT entity_type, entity_id, origin, linked_by FROM email_links WHERE email_id = ?"
                       " ORDER BY entity_type, entity_id", [email_id]).values.tolist()


# -- types -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,canonical", [
    ("customer", "customer"), ("Customers", "customer"), ("supplier", "supplier"), ("reservation", "reservation"),
    ("booking", "reservation"), ("quote", "quote"), ("order", "quote"), ("Sp. Quote/Order", "quote"),
    ("sp-quote", "quote"), ("invoice", "invoice"), ("customer_invoice", "invoice"), ("customer invoices", "invoice"),
    ("product", "product"), ("person", "person"), ("people", "person"),
])
def test_type_names_and_aliases(name, canonical):
    assert normalize_entity_type(name) == canonical


def test_unknown_type_is_a_clear_error():
    with pytest.raises(ValidationError, match="unknown type 'brand'; use one of customer, supplier, reservation"):
        normalize_entity_type("brand")


# -- link / unlink ---------------------------------------------------------------------------
def test_link_several_records_at_once_in_every_form(store, ids):
    mail = ids["phone"]
    hits = search(store, "customer", "only contact")
    n = link(store, mail, ("reservation", 100), "invoice:400", {"entity_type": "order", "entity_id": 300}, hits,
             user="anna")
    assert n == 4
    assert link(store, mail, "product", 500, user="ben") == 1
    assert link(store, mail, [("person", 7), ("supplier", 23)], user="ben") == 2
    assert link_rows(store, mail) == [
        ["customer", 14, "manual", "anna"], ["invoice", 400, "manual", "anna"], ["person", 7, "manual", "ben"],
        ["product", 500, "manual", "ben"], ["quote", 300, "manual", "anna"], ["reservation", 100, "manual", "anna"],
        ["supplier", 23, "manual", "ben"],
    ]
    assert store.query("SELECT count(*) AS n FROM email_links WHERE rule IS NOT NULL")["n"].iloc[0] == 0


def test_link_several_mails(store, ids):
    assert link(store, [ids["phone"], ids["ghost"]], "reservation", 102, user="anna") == 2
    assert store.related_counts([ids["phone"], ids["ghost"], ids["none"]]) == {ids["phone"]: 1, ids["ghost"]: 1,
                                                                                  ids["none"]: 0}


def test_linking_twice_adds_nothing(store, ids):
    assert link(store, ids["phone"], "customer", 10, user="anna") == 1
    assert link(store, ids["phone"], ("customer", 10), "customer:10", user="ben") == 0
    assert link_rows(store, ids["phone"]) == [["customer", 10, "manual", "anna"]]


def test_default_user(store, ids, monkeypatch):
    monkeypatch.setenv("VMAILKIT_USER", "carla")
    assert default_user() == "carla"
    link(store, ids["phone"], "customer", 10)
    assert link_rows(store, ids["phone"]) == [["customer", 10, "manual", "carla"]]


def test_unknown_mail_type_or_record_writes_nothing(store, ids):
    mail = ids["phone"]
    with pytest.raises(NotFoundError, match="no customer with id 777 in the CRM data"):
        link(store, mail, ("product", 500), ("customer", 777), user="anna")
    with pytest.raises(NotFoundError, match="no mail with id 99999"):
        link(store, [mail, 99999], "product", 500, user="anna")
    with pytest.raises(ValidationError, match="unknown type 'brand'"):
        link(store, mail, "brand", 1)
    with pytest.raises(ValidationError, match="not a whole number"):
        link(store, mail, "customer", "ten")
    with pytest.raises(ValidationError, match="TYPE:ID"):
        link(store, mail, "customer10")
    assert link_rows(store, mail) == []


def test_unlink_manual_and_automatic(store, ids):
    match_all(store)
    mail = ids["ana"]
    link(store, mail, "product", 500, user="anna")
    assert unlink(store, mail, ("product", 500), ("person", 1), user="ben") == 2
    assert link_rows(store, mail) == [["customer", 10, "auto", None]]
    rejected = store.link_rejections(mail)
    assert rejected[["entity_type", "entity_id", "origin", "rejected_by"]].values.tolist() == [
        ["person", 1, "auto", "ben"], ["product", 500, "manual", "ben"]]
    # all or nothing: one missing link, nothing removed
    with pytest.raises(NotFoundError, match="mail .* is not linked to supplier 21"):
        unlink(store, mail, ("customer", 10), ("supplier", 21), user="ben")
    assert link_rows(store, mail) == [["customer", 10, "auto", None]]
    with pytest.raises(NotFoundError, match="no mail with id 4242"):
        unlink(store, 4242, "customer", 10)


def test_unlink_works_for_records_no_longer_loaded(store, ids):
    link(store, ids["phone"], "product", 501, user="anna")
    load_crm(store, {"products": F.PRODUCTS.head(1)})
    rel = related(store, ids["phone"])
    assert rel["entity_id"].tolist() == [501] and pd.isna(rel["display_name"].iloc[0])
    assert unlink(store, ids["phone"], "product", 501, user="anna") == 1


# -- relations and the mail list ---------------------------------------------------------------
def test_relations_show_type_id_name_origin_rule_who_when(store, ids):
    match_all(store)
    mail = ids["mixed"]
    link(store, mail, ("quote", 301), ("invoice", 401), ("product", 501), ("supplier", 23), user="anna")
    rel = related(store, mail)
    assert list(rel.columns) == ["entity_type", "entity_id", "display_name", "origin", "rule", "linked_by", "linked_at"]
    names = {(t, i): (d, o, r if isinstance(r, str) else None, w if isinstance(w, str) else None)
             for t, i, d, o, r, w, _ in rel.itertuples(index=False)}
    assert names == {
        ("person", 1): ("Ana Garcia", "auto", "person.email", None),
        ("customer", 10): ("Hotel Sol", "auto", "customer.main_person", None),
        ("reservation", 100): ("B-756", "auto", "reservation.booking_code", None),
        ("quote", 301): ("SO-2026-18", "manual", None, "anna"),
        ("invoice", 401): ("INV-2026-0002", "manual", None, "anna"),
        ("product", 501): ("FLA Flamenco show", "manual", None, "anna"),
        ("supplier", 23): ("Ferry Lines", "manual", None, "anna"),
    }
    assert rel["linked_at"].notna().all()
    with pytest.raises(NotFoundError):
        related(store, 31337)


def test_related_count_in_mail_list_and_filters(store, ids):
    match_all(store)
    page = store.list_emails(limit=100)
    counts = dict(zip(page["email_id"], page["related_count"]))
    assert counts == {ids[k]: len(v) for k, v in F.EXPECTED.items()}
    assert related_counts(store, [ids["shared"]]) == {ids["shared"]: 4}
    linked = store.list_emails(EmailFilter(linked=True), limit=100)
    assert set(linked["email_id"]) == {ids[k] for k, v in F.EXPECTED.items() if v}
    unlinked = store.list_emails(EmailFilter(linked=False), limit=100)
    assert set(unlinked["email_id"]) == {ids[k] for k, v in F.EXPECTED.items() if not v}
    assert store.count_matching(EmailFilter(entity_type="customers")) == 5
    assert set(store.list_emails(EmailFilter(entity_type="customer", entity_id=10))["email_id"]) == {ids["ana"],
                                                                                                   ids["mixed"]}
    assert store.count_matching(EmailFilter(entity_type="reservation", entity_id=100, search="756")) == 2
    with pytest.raises(ValidationError, match="entity_type"):
        EmailFilter(entity_id=10).where()
    with pytest.raises(ValidationError, match="unknown type"):
        EmailFilter(entity_type="brand").where()


def test_views_for_analysts(store, ids):
    match_all(store)
    view = store.query("SELECT * FROM emails_with_relations ORDER BY email_id")
    assert list(view.columns) == ["email_id", "sent_at", "from_address", "from_name", "subject", "status", "direction",
                                  "related_count"]
    assert dict(zip(view["email_id"], view["related_count"])) == {ids[k]: len(v) for k, v in F.EXPECTED.items()}
    rel = store.query("SELECT * FROM email_relations WHERE email_id = ?", [ids["shared"]])
    assert set(rel["display_name"]) == {"Sam Shared", "Sue Shared", "Agency Shared", "Shared Coaches"}


def test_candidates_listed_for_the_link_dialog(store, ids):
    match_all(store)
    cands = link_candidates(store, ids["mixed"])
    assert cands[["entity_id", "display_name", "detail", "matched"]].values.tolist() == [
        [103, "B-DB1-500", "Only Contact Ltd", "500"], [102, "L-500", "Hotel Sol", "500"]]
    assert len(link_candidates(store)) == 4


# -- search ----------------------------------------------------------------------------------
@pytest.mark.parametrize("etype,text,expected", [
    ("customer", "SOL", [15, 10]),                       # prefix before substring
    ("customer", "hotel sol", [10]),
    ("customer", "ana@HOTELSOL.example", [10, 15]),      # main person's address exact, a contact's exact
    ("customer", "+34 600", [10]),                       # any contact value
    ("customer", "12", [12]),                            # the id
    ("supplier", "ferry", [23]),
    ("supplier", "sales@bus", [21, 22]),
    ("reservation", "db1", [103, 101]),
    ("reservation", "b-756", [100]),
    ("reservation", "hotel", [104, 100, 105, 102, 106]),  # by the customer's name, then by code
    ("quote", "sq-2026", [300]),
    ("order", "ferry", [301]),
    ("invoice", "2026-0002", [401]),
    ("customer_invoice", "only contact", [401]),
    ("product", "flamenco", [501]),
    ("product", "pae", [500]),
    ("person", "shared", [3, 4]),
    ("person", "tina team", [9]),
    ("person", "bob.upper", [5]),
    ("person", "nobody-at-all", []),
])
def test_search(store, ids, etype, text, expected):
    hits = search(store, etype, text)
    assert list(hits.columns) == ["entity_type", "entity_id", "display_name", "detail"]
    assert hits["entity_id"].tolist() == expected
    assert set(hits["entity_type"]) <= {normalize_entity_type(etype)}


def test_search_limit_and_empty_text(store, ids):
    assert len(search(store, "person", "", limit=3)) == 3
    assert search(store, "person", "")["display_name"].tolist()[:2] == ["Ana Garcia", "Bea Bus"]
    assert len(search(store, "person", "e", limit=2)) == 2
    with pytest.raises(ValidationError, match="limit"):
        search(store, "person", "x", limit=0)
    with pytest.raises(ValidationError, match="unknown type"):
        search(store, "brand", "x")


def test_search_text_is_a_value_not_sql(store, ids):
    assert search(store, "customer", "' OR 1=1 --").empty
    assert search(store, "customer", "%").empty


# -- CLI -------------------------------------------------------------------------------------
@pytest.fixture
def cli(store, ids):
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(main, ["--db", str(store.path), *args])
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def test_cli_match_link_related_unlink_search(cli, store, ids):
    out = cli("match", "--format", "json")
    assert json.loads(out.stdout)["links_added"] == 21
    out = cli("match", "--all")
    assert "0 links added" in out.stdout
    out = cli("match", str(ids["ana"]), "--format", "csv")
    assert out.stdout.splitlines()[0] == "rule,links_added"

    mail = str(ids["ambiguous"])
    out = cli("related", mail)
    assert "(none)" in out.stdout and f"vmailkit related {mail} --candidates" in out.stderr
    out = cli("related", mail, "--candidates", "--format", "csv")
    assert "reservation,102,L-500,Hotel Sol,500,False" in out.stdout
    out = cli("link", mail, "reservation", "102", "--user", "anna")
    assert out.stdout.strip() == f"Linked mail {mail} to 1 record(s)"
    out = cli("link", mail, "customer_invoice", "400", "401", "--user", "anna")
    out = cli("link", mail, "invoice", "400", "--user", "anna")
    assert "(1 already linked)" in out.stdout
    out = cli("related", mail, "--format", "json")
    rows = json.loads(out.stdout)
    assert [(r["entity_type"], r["entity_id"], r["display_name"], r["origin"], r["linked_by"]) for r in rows] == [
        ("reservation", 102, "L-500", "manual", "anna"), ("invoice", 400, "INV-2026-0001", "manual", "anna"),
        ("invoice", 401, "INV-2026-0002", "manual", "anna")]
    out = cli("unlink", mail, "invoice", "401", "--user", "ben")
    assert out.stdout.strip() == f"Unlinked 1 record(s) from mail {mail}"
    out = cli("search", "customer", "sol", "--format", "csv")
    assert out.stdout.splitlines() == ["entity_type,entity_id,display_name,detail", "customer,15,Sol Group,",
                                       "customer,10,Hotel Sol,ana@hotelsol.example"]
    out = cli("emails", "--format", "json")
    assert {r["email_id"]: r["related_count"] for r in json.loads(out.stdout)}[int(mail)] == 2


@pytest.mark.parametrize("args,message", [
    (["link", "1", "brand", "1"], "Error: entity_type: unknown type 'brand'"),
    (["link", "99999", "customer", "10"], "Error: no mail with id 99999"),
    (["link", "1", "customer", "777"], "Error: no customer with id 777 in the CRM data"),
    (["unlink", "1", "supplier", "21"], "Error: mail 1 is not linked to supplier 21"),
    (["related", "99999"], "Error: no mail with id 99999"),
    (["search", "brand", "x"], "Error: entity_type: unknown type 'brand'"),
])
def test_cli_errors(cli, args, message):
    out = cli(*args, code=1)
    assert message in out.stderr


def test_cli_usage_errors(cli):
    assert "EMAIL_IDs, not both" in cli("match", "--all", "1", code=2).output
    assert "Missing argument" in cli("link", "1", "customer", code=2).output


# -- documentation ---------------------------------------------------------------------------
def test_schema_doc_describes_every_new_table_and_view():
    doc = (ROOT / "docs" / "schema.md").read_text()
    for name in ("persons", "customers", "suppliers", "contacts", "brands", "reservations", "quotes",
                 "customer_invoices", "products", "email_links", "email_link_rejections", "email_link_candidates",
                 "email_relations", "emails_with_relations"):
        assert re.search(rf"`{name}`", doc), name


def test_matching_doc_names_every_rule_and_type():
    from vmailkit.match import RULES

    doc = (ROOT / "docs" / "matching.md").read_text()
    for word in (*RULES, *ENTITY_TYPES):
        assert f"`{word}`" in doc, word
