"""Loading CRM reference data: files and DataFrames, extra columns kept, all-or-nothing, clear errors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import crm_fixture as F
from vmailkit import Store, ValidationError
from vmailkit.cli import main
from vmailkit.crm import CrmLoadError, find_crm_files, load_crm
from vmailkit.store import CRM_TABLES


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "vmail.duckdb")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_tables_exist_empty_before_any_load(store):
    assert store.crm_counts() == {name: 0 for name in CRM_TABLES}
    assert list(store.crm_frame("persons").columns) == ["person_id", "first_name", "last_name", "email", "is_temporary"]


def test_load_directory_of_csv_and_parquet(store, tmp_path):
    crm = F.write_crm_dir(tmp_path / "crm", parquet=("brands", "reservations"))
    (crm / "notes.csv").write_text("a,b\n1,2\n")
    (crm / "readme.txt").write_text("not data")
    result = load_crm(store, crm)
    assert result.rows == {name: len(frame) for name, frame in F.crm_frames().items()}
    assert result.sources["brands"] == "brands.parquet" and result.sources["persons"] == "persons.csv"
    assert result.ignored == ["notes.csv"]
    assert store.crm_counts()["reservations"] == 8
    persons = store.crm_frame("persons")
    # required columns typed, extra column kept after them
    assert list(persons.columns) == ["person_id", "first_name", "last_name", "email", "is_temporary", "country"]
    assert dict(zip(persons["person_id"], persons["is_temporary"])) == {
        1: False, 2: True, 3: False, 4: False, 5: False, 6: False, 7: False, 8: True, 9: False}
    types = dict(store.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'persons'")
                 .itertuples(index=False))
    assert types["person_id"] == "BIGINT" and types["is_temporary"] == "BOOLEAN" and types["country"] == "VARCHAR"
    # text is trimmed, empty becomes NULL; ids of references typed, empty reference NULL
    assert persons.set_index("person_id").loc[4, "email"] == "SHARED@Agency.example"
    assert pd.isna(persons.set_index("person_id").loc[7, "email"])
    customers = store.crm_frame("customers").set_index("customer_id")
    assert customers.loc[10, "main_person_id"] == 1 and pd.isna(customers.loc[12, "main_person_id"])
    assert customers.loc[12, "segment"] is None or pd.isna(customers.loc[12, "segment"])
    contacts = store.crm_frame("contacts").set_index("contact_id")
    assert contacts.loc[3, "type"] == "EMAIL" and contacts.loc[4, "owner_type"] == "customer"
    assert contacts.loc[9, "owner_type"] == "supplier"


def test_load_dataframes_and_arrow(store):
    import pyarrow as pa

    frames = F.crm_frames()
    result = load_crm(store, {"persons": frames["persons"], "Brands": pa.Table.from_pandas(frames["brands"])})
    assert result.rows == {"persons": 9, "brands": 2}
    assert result.sources == {"persons": "persons (DataFrame)", "brands": "brands (Arrow table)"}
    assert store.crm_counts()["customers"] == 0


def test_extra_columns_from_csv_kept_as_written(store, tmp_path):
    write(tmp_path / "d" / "customers.csv",
          "Customer_ID; NAME ;main_person_id;zip;vip;;\n1;Hotel Sol;;08001;yes;;\n2; Casa ;3;00042;;;\n")
    load_crm(store, tmp_path / "d")
    got = store.crm_frame("customers")
    # header names matched in any case, semicolons detected, trailing empty columns dropped
    assert list(got.columns) == ["customer_id", "name", "main_person_id", "zip", "vip"]
    assert list(got["zip"]) == ["08001", "00042"]            # leading zeros intact: extras stay text
    assert list(got["name"]) == ["Hotel Sol", "Casa"]


def test_parquet_extras_keep_their_types(store, tmp_path):
    frame = pd.DataFrame({"product_id": [1, 2], "code": ["PAE", "FLA"], "name": ["Paella", "Flamenco"],
                          "price": [12.5, 30.0], "active": [True, False]})
    frame.to_parquet(tmp_path / "products.parquet", index=False)
    load_crm(store, {"products": tmp_path / "products.parquet"})
    types = dict(store.query("SELECT column_name, data_type FROM information_schema.columns"
                             " WHERE table_name = 'products'").itertuples(index=False))
    assert types == {"product_id": "BIGINT", "code": "VARCHAR", "name": "VARCHAR", "price": "DOUBLE", "active": "BOOLEAN"}


def test_float_ids_from_pandas_are_accepted(store):
    frame = pd.DataFrame({"customer_id": [1.0, 2.0], "name": ["A", "B"], "main_person_id": [5.0, float("nan")]})
    load_crm(store, {"customers": frame})
    got = store.crm_frame("customers")
    assert list(got["customer_id"]) == [1, 2] and got["main_person_id"].iloc[0] == 5


def test_bom_and_utf8_names(store, tmp_path):
    write(tmp_path / "d" / "persons.csv", "\ufeffperson_id,first_name,last_name,email,is_temporary\n1,José,Núñez,j@x.es,\n")
    load_crm(store, tmp_path / "d")
    assert store.crm_frame("persons")["last_name"].iloc[0] == "Núñez"


def test_reload_replaces_the_whole_table(store):
    load_crm(store, {"persons": F.PERSONS})
    smaller = pd.DataFrame({"person_id": [42], "first_name": ["New"], "last_name": ["One"], "email": ["n@x"],
                            "is_temporary": [False]})
    load_crm(store, {"persons": smaller})
    got = store.crm_frame("persons")
    assert list(got["person_id"]) == [42] and "country" not in got.columns


def test_header_only_file_empties_the_table(store, tmp_path):
    load_crm(store, {"brands": F.BRANDS})
    write(tmp_path / "d" / "brands.csv", "brand_id,code\n")
    assert load_crm(store, tmp_path / "d").rows == {"brands": 0}
    assert store.crm_counts()["brands"] == 0


# -- errors: named file, row and column; nothing changed ----------------------------------------
def loaded_before(store) -> dict[str, int]:
    load_crm(store, F.crm_frames())
    return store.crm_counts()


@pytest.mark.parametrize("text,row,column,words", [
    ("customer_id,name\n1,A\n", None, None, ["required column(s) missing: main_person_id"]),
    ("customer_id,name,main_person_id\n1,A,\n2,B,\n1,C,\n", 3, "customer_id", ["duplicate id 1", "already at row 1"]),
    ("customer_id,name,main_person_id\n1,A,\nX7,B,\n", 2, "customer_id", ["whole number", "'X7'"]),
    ("customer_id,name,main_person_id\n1,A,\n,B,\n", 2, "customer_id", ["may not be empty", "it is empty"]),
    ("customer_id,name,main_person_id\n1,A,1.5\n2,B,x\n", 1, "main_person_id", ["whole number", "'1.5'", "1 more rows"]),
    ("customer_id,name,main_person_id\n1,A,\n2,B,3,4\n", 2, None, ["cannot read CSV"]),
    ("", None, None, ["empty"]),
    ("customer_id,name,main_person_id,Name\n1,A,,B\n", None, "Name", ["appears twice"]),
    ("customer_id,name,main_person_id,,\n1,A,,,x\n", None, None, ["column 5 has values but no name"]),
    ("customer_id,name,main_person_id\n1,A,\n2," + "n" * 200_000 + ",\n", 2, None,
     ["the value on line 3 is longer than 131072 characters"]),
    ("customer_id,name" + "e" * 200_000 + ",main_person_id\n1,A,\n", None, None,
     ["the header (line 1) has a column name longer than 131072 characters"]),
])
def test_customer_file_errors(store, tmp_path, text, row, column, words):
    before = loaded_before(store)
    crm = tmp_path / "bad"
    write(crm / "customers.csv", text)
    F.PERSONS.head(2).to_csv(crm / "persons.csv", index=False)     # a good file in the same load
    with pytest.raises(CrmLoadError) as err:
        load_crm(store, crm)
    e = err.value
    assert e.source == "customers.csv" and e.row == row and e.column == column
    assert str(e).startswith("customers.csv: ")
    for word in words:
        assert word in str(e), str(e)
    if row is not None:
        assert f"row {row}" in str(e)
    assert store.crm_counts() == before     # all or nothing: persons was not replaced either


@pytest.mark.parametrize("table,frame_change,column,words", [
    ("contacts", {"owner_type": ["customer", "partner"]}, "owner_type", ["customer or supplier", "'partner'"]),
    ("contacts", {"owner_id": [1, None]}, "owner_id", ["may not be empty"]),
    ("persons", {"is_temporary": ["yes", "maybe"]}, "is_temporary", ["true or false", "'maybe'"]),
])
def test_value_errors_in_dataframes(store, table, frame_change, column, words):
    base = {
        "contacts": pd.DataFrame({"contact_id": [1, 2], "owner_type": ["customer", "supplier"], "owner_id": [1, 2],
                                  "type": ["EMAIL", "EMAIL"], "value": ["a@x", "b@x"]}),
        "persons": pd.DataFrame({"person_id": [1, 2], "first_name": ["a", "b"], "last_name": ["a", "b"],
                                 "email": ["a@x", "b@x"], "is_temporary": [False, True]}),
    }[table]
    frame = base.assign(**frame_change)
    before = loaded_before(store)
    with pytest.raises(CrmLoadError) as err:
        load_crm(store, {table: frame})
    assert err.value.row == 2 and err.value.column == column and err.value.source == f"{table} (DataFrame)"
    for word in words:
        assert word in str(err.value)
    assert store.crm_counts() == before


def test_invalid_utf8_names_row_and_suggests_encoding(store, tmp_path):
    text = "person_id,first_name,last_name,email,is_temporary\n1,Ana,Garcia,a@x,\n2,Jos\xe9,P,j@x,\n"
    write(tmp_path / "d" / "persons.csv", text, encoding="cp1252")
    before = loaded_before(store)
    with pytest.raises(CrmLoadError) as err:
        load_crm(store, tmp_path / "d")
    assert err.value.source == "persons.csv" and err.value.row == 2 and "--encoding" in str(err.value)
    assert store.crm_counts() == before
    load_crm(store, tmp_path / "d", encoding="cp1252")
    assert list(store.crm_frame("persons")["first_name"]) == ["Ana", "José"]


def test_unreadable_parquet(store, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "brands.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CrmLoadError, match=r"brands.parquet: cannot read Parquet"):
        load_crm(store, tmp_path / "d")


def test_directory_problems(store, tmp_path):
    with pytest.raises(ValidationError, match="not a directory"):
        load_crm(store, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValidationError, match="no CRM files"):
        load_crm(store, tmp_path / "empty")
    both = tmp_path / "both"
    F.BRANDS.to_csv(both / "brands.csv" if both.mkdir() is None else None, index=False)
    F.BRANDS.to_parquet(both / "brands.parquet", index=False)
    with pytest.raises(ValidationError, match="both hold brands"):
        find_crm_files(both)
    with pytest.raises(ValidationError, match="unknown CRM table 'people'"):
        load_crm(store, {"people": F.PERSONS})
    with pytest.raises(CrmLoadError, match="file not found"):
        load_crm(store, {"persons": tmp_path / "nope.csv"})


def test_cli_crm_load_and_show(tmp_path):
    db = tmp_path / "v.duckdb"
    crm = F.write_crm_dir(tmp_path / "crm")
    (crm / "extra.csv").write_text("x\n1\n")
    runner = CliRunner()
    result = runner.invoke(main, ["--db", str(db), "crm", "load", str(crm), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "table,rows,source" and "persons,9,persons.csv" in lines
    assert "Ignored extra.csv" in result.stderr
    shown = runner.invoke(main, ["--db", str(db), "crm", "show", "--format", "json"])
    assert '"table":"reservations","rows":8' in shown.stdout
    rows = runner.invoke(main, ["--db", str(db), "crm", "show", "brands", "--format", "csv"])
    assert rows.stdout.splitlines() == ["brand_id,code", "1,DB1", "2,xb"]
    write(tmp_path / "bad" / "persons.csv", "person_id,first_name,last_name,email,is_temporary\n1,a,b,c,\n1,a,b,c,\n")
    bad = runner.invoke(main, ["--db", str(db), "crm", "load", str(tmp_path / "bad")])
    assert bad.exit_code == 1
    assert "Error: persons.csv: row 2, column person_id: duplicate id 1 (already at row 1)" in bad.stderr
    assert Store(db).crm_counts()["persons"] == 9
