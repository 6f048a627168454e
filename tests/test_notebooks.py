"""Every workbench notebook runs headless, top to bottom, against the test Dovecot (papermill)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers import stored_bytes, add_account
from mailfactory import make_mail
from uimail import hostile_mail

papermill = pytest.importorskip("papermill")
from vmailkit import Store  # noqa: E402
from vmailkit.crm import load_crm  # noqa: E402



NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PW_ENV = "VMK_NB_OFFICE_PW"
TYPED_ENV = "VMK_NB_TYPED_PW"


def run(name: str, out_dir: Path, **parameters) -> dict:
    """Execute ``notebooks/<name>`` with papermill; return the executed notebook as JSON."""
    out = out_dir / name
    papermill.execute_notebook(
        str(NOTEBOOKS / name), str(out), parameters=parameters, cwd=str(out_dir), kernel_name="python3",
        progress_bar=False, log_output=False, execution_timeout=120,
    )
    return json.loads(out.read_text())


def widget_values(nb: dict, css_class: str, trait: str = "value") -> list[str]:
    """``trait`` of every widget with ``css_class`` in the widget state saved with the notebook."""
    state = nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [m["state"].get(trait, "") for m in state.values() if css_class in m["state"].get("_dom_classes", [])]


def outputs_text(nb: dict) -> str:
    return json.dumps([c.get("outputs", []) for c in nb["cells"]] + [nb.get("metadata", {})])


@pytest.fixture(scope="module")
def office(tmp_path_factory, dovecot):
    """A database with anna and ben, an IMAP account whose password comes from the environment, and
    three mails waiting on the server (one hostile HTML mail)."""
    base = tmp_path_factory.mktemp("notebooks")
    user = dovecot.new_user("nb")
    for raw in (make_mail(1), make_mail(2, subject="Booking 500 rooming list"), hostile_mail(3)):
        dovecot.deliver(user.name, raw)
    store = Store(base / "office.duckdb", lock_timeout=30)
    store.add_user("anna", "anna@tour.example")
    store.add_user("ben", "ben@tour.example")
    add_account(store, dovecot, user, name="office", password_env=PW_ENV)
    store.subscribe("anna", "office")
    load_crm(store, {
        "customers": pd.DataFrame([(10, "Hotel Sol", None)], columns=["customer_id", "name", "main_person_id"]),
        "reservations": pd.DataFrame([(100, "L-500", 10, None), (101, "B-500", 10, None)],
                                     columns=["reservation_id", "booking_code", "customer_id", "brand_id"]),
    })
    os.environ[PW_ENV] = user.password
    yield base, store, user
    os.environ.pop(PW_ENV, None)


@pytest.mark.dovecot
def test_all_notebooks_run_in_order(office):
    base, store, user = office
    db = str(store.path)
    common = {"db_path": db, "user": "anna"}

    nb = run("01_accounts.ipynb", base, **common)
    assert "env:" + PW_ENV in outputs_text(nb)                 # the stored reference is listed ...
    assert user.password not in outputs_text(nb)               # ... never the password

    nb = run("02_incoming.ipynb", base, get_now=True, download_all=True, **common)
    text = outputs_text(nb)
    assert store.count_emails() == 3
    assert set(store.query("SELECT status FROM emails")["status"]) == {"unread"}
    assert "application/vnd.jupyter.widget-view+json" in text  # the panel was displayed
    assert user.password not in text
    # two auto-candidates for "500": the download ran the automatic matching
    assert len(store.link_candidates()) == 2

    html_id = int(store.query("SELECT email_id FROM emails WHERE body_html IS NOT NULL")["email_id"].iloc[0])
    nb = run("03_emails.ipynb", base, open_email_id=html_id, save_dir=str(base), **common)
    body = widget_values(nb, "vmk-body-box")
    assert len(body) == 1 and body[0].startswith("<iframe") and "Hola from Hotel Sol" in body[0]
    assert "script" not in body[0].lower() and "onerror" not in body[0] and "/track/pixel.png" not in body[0]
    assert any("Show remote images (1 blocked)" in v for v in widget_values(nb, "vmk-remote-images", "description"))

    nb = run("04_linking.ipynb", base, link_email_ids=[html_id], link_targets=["customer:10"], **common)
    assert "[]" in outputs_text(nb)                            # linking.errors printed empty
    rel = store.relations(html_id)
    assert ("customer", 10, "manual", "anna") in set(zip(rel["entity_type"], rel["entity_id"], rel["origin"], rel["linked_by"]))
    db_bytes = b"".join(stored_bytes(Path(db)))
    assert user.password.encode() not in db_bytes


@pytest.mark.dovecot
def test_typed_password_never_reaches_the_notebook_or_the_database(office, dovecot, tmp_path, monkeypatch):
    """A password typed into the panel is used, then cleared: the executed notebook (with its saved
    widget state) and the database file do not contain it."""
    _base, _store, _user = office
    typed_user = dovecot.new_user("typed")
    dovecot.deliver(typed_user.name, make_mail(7, subject="Typed password mail"))
    store = Store(tmp_path / "typed.duckdb", lock_timeout=30)
    store.add_user("anna")
    add_account(store, dovecot, typed_user, name="typed")        # secret prompt:, typed at run time
    store.subscribe("anna", "typed")
    monkeypatch.setenv(TYPED_ENV, typed_user.password)

    book = nbformat.read(NOTEBOOKS / "02_incoming.ipynb", as_version=4)
    book.cells.append(nbformat.v4.new_code_cell(
        "import os\n"
        f"incoming.password_fields['typed'].value = os.environ['{TYPED_ENV}']   # as if typed\n"
        "incoming.get_button.click()\n"
        "incoming.wait()\n"
        "incoming.select_all_button.click()\n"
        "incoming.download_button.click()\n"
        "incoming.confirm_button.click()\n"
        "incoming.wait()\n"
        "print(incoming.summary.total('downloaded'), incoming.errors, incoming.password_fields['typed'].value == '')"
    ))
    src = tmp_path / "typed.ipynb"
    nbformat.write(book, src)
    out = tmp_path / "typed-out.ipynb"
    papermill.execute_notebook(str(src), str(out), parameters={"db_path": str(store.path), "user": "anna"},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False, log_output=False,
                               execution_timeout=120)
    saved = out.read_text()
    assert "1 [] True" in saved
    assert json.loads(saved)["metadata"].get("widgets"), "the widget state is saved with the notebook"
    assert typed_user.password not in saved
    db = Path(store.path)
    assert typed_user.password.encode() not in b"".join(stored_bytes(db))
    assert store.count_emails() == 1


@pytest.mark.parametrize(
    "name", ["01_accounts.ipynb", "02_incoming.ipynb", "03_emails.ipynb", "04_linking.ipynb", "batch_import.ipynb"]
)
def test_notebooks_are_clean_and_parameterised(name):
    """Shipped without outputs, opening with markdown, with a tagged parameters cell papermill can read."""
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(book)
    assert book.cells[0].cell_type == "markdown"
    tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is book.cells[1]
    params = papermill.inspect_notebook(str(NOTEBOOKS / name))
    assert {"db_path", "user"} <= set(params)
    # every assignment in the cell is understood by papermill (a comment with "=" breaks its parser)
    assigned = [line.split("=", 1)[0].strip() for line in tagged[0].source.splitlines() if "=" in line.split("#")[0]]
    assert sorted(assigned) == sorted(params)
    assert all(p["default"] != "" for p in params.values())
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
            assert "input(" not in cell.source and "SELECT " not in cell.source.upper()
