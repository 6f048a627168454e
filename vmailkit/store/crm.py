"""CRM reference data in the store: validated, all-or-nothing replacement of whole tables.

The CRM tables (``persons``, ``customers``, ``suppliers``, ``contacts``, ``brands``, ``reservations``,
``quotes``, ``customer_invoices``, ``products``) are created empty by migration ``0002_crm_links``.
A load replaces a table as a whole: the required columns are checked and typed (``CRM_TABLES``),
every other column of the input is kept after them, unchanged. Several tables are replaced in one
transaction, so a load either replaces all of them or none.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import ValidationError
from .db import Database

#: The kinds of required column and what a load accepts in them.
#:  ``id``    - whole number, never empty, unique in the table
#:  ``key``   - whole number, never empty (a reference that must be given)
#:  ``ref``   - whole number or empty (a reference)
#:  ``text``  - any text; trimmed, empty becomes NULL
#:  ``upper`` - text, trimmed and upper-cased (contact types: ``EMAIL``, ``PHONE``, ...)
#:  ``owner`` - ``customer`` or ``supplier`` (any case), never empty
#:  ``bool``  - true/false, t/f, yes/no, y/n, 1/0 (any case); empty means false
KINDS = ("id", "key", "ref", "text", "upper", "owner", "bool")

_SQL_TYPES = {"id": "BIGINT", "key": "BIGINT", "ref": "BIGINT", "text": "VARCHAR", "upper": "VARCHAR",
              "owner": "VARCHAR", "bool": "BOOLEAN"}

ROW_COLUMN = "_vmk_row"   # 1-based position of the row in the input, added while loading


@dataclass(frozen=True)
class CrmTable:
    """One CRM table: its name and required columns ``(name, kind)`` in order; the first is the id."""

    name: str
    columns: tuple[tuple[str, str], ...]

    @property
    def id_column(self) -> str:
        """The column holding the table's unique id."""
        return self.columns[0][0]

    @property
    def column_names(self) -> list[str]:
        """The required columns, in order."""
        return [c for c, _ in self.columns]


CRM_TABLES: dict[str, CrmTable] = {t.name: t for t in (
    CrmTable("persons", (("person_id", "id"), ("first_name", "text"), ("last_name", "text"), ("email", "text"),
                         ("is_temporary", "bool"))),
    CrmTable("customers", (("customer_id", "id"), ("name", "text"), ("main_person_id", "ref"))),
    CrmTable("suppliers", (("supplier_id", "id"), ("name", "text"), ("main_person_id", "ref"))),
    CrmTable("contacts", (("contact_id", "id"), ("owner_type", "owner"), ("owner_id", "key"), ("type", "upper"),
                          ("value", "text"))),
    CrmTable("brands", (("brand_id", "id"), ("code", "text"))),
    CrmTable("reservations", (("reservation_id", "id"), ("booking_code", "text"), ("customer_id", "ref"),
                              ("brand_id", "ref"))),
    CrmTable("quotes", (("quote_id", "id"), ("code", "text"), ("supplier_id", "ref"))),
    CrmTable("customer_invoices", (("invoice_id", "id"), ("number", "text"), ("customer_id", "ref"))),
    CrmTable("products", (("product_id", "id"), ("code", "text"), ("name", "text"))),
)}

_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")


class CrmLoadError(ValidationError):
    """A CRM input cannot be loaded; names the source (file), and the row and column when known.

    ``row`` counts data rows from 1 (the CSV header line is not a row).
    """

    def __init__(self, source: str, message: str, *, row: int | None = None, column: str | None = None) -> None:
        self.source = source
        self.row = row
        self.column = column
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(source, (", ".join(where) + ": " if where else "") + message)


@dataclass
class StagedTable:
    """An input ready to load: Arrow data whose required columns carry their canonical names."""

    table: str          # CRM table name
    data: pa.Table
    source: str         # file name or description, used in error messages


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _raw(col: str) -> str:
    """The value as trimmed text, NULL when empty."""
    return f"nullif(trim(CAST({_q(col)} AS VARCHAR)), '')"


def _parsed(col: str, kind: str) -> str:
    raw = _raw(col)
    if kind in ("id", "key", "ref"):
        return f"TRY_CAST(regexp_extract({raw}, '^[+-]?[0-9]+', 0) AS BIGINT)"
    if kind == "text":
        return raw
    if kind == "upper":
        return f"upper({raw})"
    if kind == "owner":
        return f"lower({raw})"
    if kind == "bool":
        true_list = ", ".join(f"'{v}'" for v in _TRUE)
        return f"coalesce(lower({raw}) IN ({true_list}), false)"
    raise AssertionError(kind)


def _invalid(col: str, kind: str) -> tuple[str, str] | None:
    """SQL condition that is true for an invalid value, and the message for it."""
    raw = _raw(col)
    if kind in ("id", "key", "ref"):
        bad = (f"({raw} IS NOT NULL AND (NOT regexp_full_match({raw}, '[+-]?[0-9]+(\\.0*)?')"
               f" OR TRY_CAST(regexp_extract({raw}, '^[+-]?[0-9]+', 0) AS BIGINT) IS NULL))")
        if kind in ("id", "key"):
            bad = f"({raw} IS NULL OR {bad})"
        return bad, "must be a whole number" + ("" if kind == "ref" else " and may not be empty")
    if kind == "owner":
        return f"({raw} IS NULL OR lower({raw}) NOT IN ('customer', 'supplier'))", "must be customer or supplier"
    if kind == "bool":
        allowed = ", ".join(f"'{v}'" for v in _TRUE + _FALSE)
        return f"({raw} IS NOT NULL AND lower({raw}) NOT IN ({allowed}))", "must be true or false (or yes/no, 1/0)"
    return None


def _shown(value: Any) -> str:
    text = "" if value is None else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


class CrmMixin:
    """CRM reference data (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def replace_crm_tables(self, staged: Mapping[str, StagedTable]) -> dict[str, int]:
        """Validate and replace the given CRM tables in one transaction; return rows loaded per table.

        Every required column must be present (canonical names), ids must be whole numbers, present
        and unique, references whole numbers or empty, ``owner_type`` ``customer``/``supplier`` and
        ``is_temporary`` a boolean. Raises :class:`CrmLoadError` naming source, row and column of the
        first problem (and how many rows have it); then no table is changed.
        """
        for name in staged:
            if name not in CRM_TABLES:
                raise ValidationError("table", f"unknown CRM table {name!r}; known: {', '.join(CRM_TABLES)}")
        counts: dict[str, int] = {}
        with self.db.atomic() as con:
            registered: list[str] = []
            try:
                for name, st in staged.items():
                    view = f"_vmk_stage_{name}"
                    data = st.data.append_column(ROW_COLUMN, pa.array(range(1, st.data.num_rows + 1), pa.int64()))
                    con.register(view, data)
                    registered.append(view)
                    self._validate_staged(con, CRM_TABLES[name], view, st)
                for name, st in staged.items():
                    spec = CRM_TABLES[name]
                    view = f"_vmk_stage_{name}"
                    required = [
                        f"CAST({_parsed(col, kind)} AS {_SQL_TYPES[kind]}) AS {_q(col)}" for col, kind in spec.columns
                    ]
                    extras = [_q(c) for c in st.data.column_names if c not in spec.column_names]
                    con.execute(
                        f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(required + extras)}"
                        f" FROM {view} ORDER BY {ROW_COLUMN}"
                    )
                    counts[name] = st.data.num_rows
            finally:
                for view in registered:
                    con.unregister(view)
        return counts

    @staticmethod
    def _validate_staged(con: Any, spec: CrmTable, view: str, st: StagedTable) -> None:
        missing = [c for c in spec.column_names if c not in st.data.column_names]
        if missing:
            raise CrmLoadError(st.source, f"required column(s) missing: {', '.join(missing)}"
                               f" (a {spec.name} file needs {', '.join(spec.column_names)})")
        for col, kind in spec.columns:
            check = _invalid(col, kind)
            if check is None:
                continue
            cond, message = check
            rows = con.execute(
                f"SELECT {ROW_COLUMN}, {_raw(col)}, count(*) OVER () FROM {view} WHERE {cond}"
                f" ORDER BY {ROW_COLUMN} LIMIT 1"
            ).fetchall()
            if rows:
                row = rows[0]
                more = f" ({row[2] - 1} more rows have this problem)" if row[2] > 1 else ""
                value = "it is empty" if row[1] is None else f"got {_shown(row[1])}"
                raise CrmLoadError(st.source, f"{message}; {value}{more}", row=int(row[0]), column=col)
        id_col = spec.id_column
        dups = con.execute(
            f"SELECT id, rows[1], rows[2], n FROM (SELECT {_parsed(id_col, 'id')} AS id,"
            f" list({ROW_COLUMN} ORDER BY {ROW_COLUMN}) AS rows, count(*) AS n FROM {view} GROUP BY 1"
            f" HAVING count(*) > 1) ORDER BY rows[2] LIMIT 1"
        ).fetchall()
        if dups:
            dup = dups[0]
            raise CrmLoadError(st.source, f"duplicate id {dup[0]} (already at row {dup[1]})", row=int(dup[2]), column=id_col)

    def crm_counts(self) -> dict[str, int]:
        """Rows per CRM table (0 for a table never loaded)."""
        with self.db.connect() as con:
            sql = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM {n}" for n in CRM_TABLES)
            return {name: int(n) for name, n in con.execute(sql).fetchall()}

    def crm_frame(self, table: str) -> pd.DataFrame:
        """A whole CRM table as a DataFrame (required columns first, then the extra ones)."""
        if table not in CRM_TABLES:
            raise ValidationError("table", f"unknown CRM table {table!r}; known: {', '.join(CRM_TABLES)}")
        with self.db.connect() as con:
            return con.execute(f"SELECT * FROM {table} ORDER BY {CRM_TABLES[table].id_column}").df()
