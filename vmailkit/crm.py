"""Load CRM reference data (persons, customers, suppliers, contacts, brands, reservations, quotes,
customer invoices, products) from CSV/Parquet files or DataFrames.

::

    from vmailkit.crm import load_crm
    load_crm(store, "export/")                         # export/persons.csv, export/customers.parquet, ...
    load_crm(store, {"persons": persons_df, "brands": "brands.csv"})

A load replaces each given table as a whole, all tables in one transaction: either every table is
replaced or, on any error, none is. Required columns are matched by name in any case; every other
column is kept (from CSV as text, exactly as written; from Parquet/DataFrames with its type).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import ValidationError
from .store import CRM_TABLES, CrmLoadError, StagedTable, Store
from .store.crm import ROW_COLUMN

__all__ = ["CRM_TABLES", "CrmLoadError", "LoadResult", "find_crm_files", "load_crm", "read_crm_source"]

#: One table's input: a file path, a DataFrame or an Arrow table.
CrmSource = Union[str, "os.PathLike[str]", pd.DataFrame, pa.Table]

SUFFIXES = (".csv", ".parquet")
_DELIMITERS = ",;\t|"


@dataclass
class LoadResult:
    """What a load did: rows per table replaced, where each came from, and files that were ignored."""

    rows: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """One row per table loaded: table, rows, source."""
        return pd.DataFrame(
            [{"table": t, "rows": n, "source": self.sources.get(t, "")} for t, n in self.rows.items()],
            columns=["table", "rows", "source"],
        )


def find_crm_files(directory: str | os.PathLike[str]) -> tuple[dict[str, Path], list[str]]:
    """The CRM files in ``directory`` (``<table>.csv`` or ``<table>.parquet``, name in any case) and
    the names of other CSV/Parquet files there, which a load ignores.

    Raises :class:`ValidationError` when the directory does not exist or a table has both a CSV and a
    Parquet file.
    """
    path = Path(directory)
    if not path.is_dir():
        raise ValidationError("directory", f"{path} is not a directory")
    found: dict[str, Path] = {}
    ignored: list[str] = []
    for f in sorted(path.iterdir()):
        if not f.is_file() or f.suffix.lower() not in SUFFIXES:
            continue
        table = f.stem.strip().lower()
        if table not in CRM_TABLES:
            ignored.append(f.name)
            continue
        if table in found:
            raise ValidationError("directory", f"{found[table].name} and {f.name} both hold {table}; keep one")
        found[table] = f
    return found, ignored


def load_crm(
    store: Store,
    source: str | os.PathLike[str] | Mapping[str, CrmSource],
    *,
    encoding: str = "utf-8",
) -> LoadResult:
    """Replace CRM tables with the data in ``source``: a directory holding ``<table>.csv`` or
    ``<table>.parquet`` files, or a mapping ``{table: path | DataFrame | Arrow table}``.

    All tables are validated, then replaced in one transaction. Raises :class:`CrmLoadError` (a
    :class:`ValidationError`) naming the file, row and column of the first problem (unreadable file,
    missing required column, id that is empty, not a whole number or duplicated, bad ``owner_type``
    or ``is_temporary``); then nothing is changed. Raises :class:`ValidationError` for an unknown
    table name or a directory without CRM files. ``encoding`` applies to CSV files.
    """
    result = LoadResult()
    if isinstance(source, Mapping):
        inputs: dict[str, CrmSource] = {}
        for name, value in source.items():
            table = str(name).strip().lower()
            if table not in CRM_TABLES:
                raise ValidationError("table", f"unknown CRM table {name!r}; known: {', '.join(CRM_TABLES)}")
            inputs[table] = value
    else:
        files, result.ignored = find_crm_files(source)
        if not files:
            raise ValidationError(
                "directory", f"no CRM files in {source}; expected any of "
                + ", ".join(f"{t}.csv" for t in CRM_TABLES) + " (or .parquet)"
            )
        inputs = dict(files)
    if not inputs:
        raise ValidationError("source", "no CRM table given")
    staged: dict[str, StagedTable] = {}
    for table in CRM_TABLES:  # a fixed order, so errors are reported predictably
        if table in inputs:
            staged[table] = read_crm_source(table, inputs[table], encoding=encoding)
    result.rows = store.replace_crm_tables(staged)
    result.sources = {t: s.source for t, s in staged.items()}
    return result


def read_crm_source(table: str, source: CrmSource, *, encoding: str = "utf-8") -> StagedTable:
    """Read one table's input into Arrow with the required columns under their canonical names.

    Raises :class:`CrmLoadError` for an unreadable input, a missing required column or a column
    name that appears twice.
    """
    spec = CRM_TABLES[table]
    if isinstance(source, pd.DataFrame):
        label = f"{table} (DataFrame)"
        try:
            data = pa.Table.from_pandas(source.rename(columns=str), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise CrmLoadError(label, f"cannot convert the DataFrame: {exc}") from None
    elif isinstance(source, pa.Table):
        label, data = f"{table} (Arrow table)", source
    else:
        path = Path(source)
        label = path.name
        if not path.is_file():
            raise CrmLoadError(label, f"file not found: {path}")
        if path.suffix.lower() == ".parquet":
            try:
                data = pq.read_table(path)
            except Exception as exc:  # noqa: BLE001 - any reader failure is "unreadable"
                raise CrmLoadError(label, f"cannot read Parquet file: {exc}") from None
        elif path.suffix.lower() == ".csv":
            data = _read_csv(path, label, encoding)
        else:
            raise CrmLoadError(label, "only .csv and .parquet files can be loaded")
    return StagedTable(table=table, data=_canonical_columns(data, spec.column_names, label), source=label)


def _canonical_columns(data: pa.Table, required: list[str], label: str) -> pa.Table:
    """Rename required columns (matched trimmed, any case) to their canonical names; drop unnamed
    columns that hold nothing; keep every other column as it is."""
    names: list[str] = []
    keep: list[int] = []
    seen: dict[str, str] = {}
    for i, raw_name in enumerate(data.column_names):
        name = str(raw_name).strip()
        if not name:
            if data.column(i).null_count == data.num_rows:
                continue  # e.g. the empty column after a trailing delimiter in a spreadsheet export
            raise CrmLoadError(label, f"column {i + 1} has values but no name in the header")
        if name == ROW_COLUMN:
            raise CrmLoadError(label, f"the column name {ROW_COLUMN} is reserved", column=name)
        key = name.lower()
        if key in seen:
            raise CrmLoadError(label, f"column {name!r} appears twice (also as {seen[key]!r})", column=name)
        seen[key] = name
        if key in required:
            name = key
        names.append(name)
        keep.append(i)
    return data.select(keep).rename_columns(names)


def _sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: the most frequent of , ; TAB | outside quotes (default ,)."""
    counts = {d: 0 for d in _DELIMITERS}
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_csv(path: Path, label: str, encoding: str) -> pa.Table:
    try:
        with open(path, "rb") as fh:
            first = fh.readline().decode(encoding)
    except UnicodeDecodeError:
        raise CrmLoadError(label, f"the header is not valid {encoding}; give the file's encoding"
                                  " (e.g. --encoding cp1252)") from None
    except LookupError:
        raise CrmLoadError(label, f"unknown encoding {encoding!r}") from None
    except OSError as exc:
        raise CrmLoadError(label, f"cannot read file: {exc.strerror or exc}") from None
    first = first.lstrip("\ufeff")
    if not first.strip():
        raise CrmLoadError(label, "the file is empty (a header line naming the columns is needed)")
    delimiter = _sniff_delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter))
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError, LookupError, OSError) as exc:
        row = _locate_csv_problem(path, encoding, delimiter, len(header))
        hint = " (give the file's encoding, e.g. --encoding cp1252)" if "UTF8" in str(exc) or isinstance(
            exc, UnicodeDecodeError) else ""
        message = str(exc).replace("\n", " ")
        raise CrmLoadError(label, f"cannot read CSV: {message}{hint}", row=row) from None


def _locate_csv_problem(path: Path, encoding: str, delimiter: str, columns: int) -> int | None:
    """The data row (1-based) where a CSV stops being readable: wrong number of fields or bad text."""
    row = 0
    try:
        with open(path, encoding=encoding, newline="") as text:
            reader = csv.reader(text, delimiter=delimiter)
            next(reader, None)
            for fields in reader:
                row += 1
                if fields and len(fields) != columns:
                    return row
    except UnicodeDecodeError:
        with open(path, "rb") as raw:
            for line_no, line in enumerate(raw, start=1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError:
                    return max(line_no - 1, 1)
    except csv.Error:
        return row + 1
    return None
