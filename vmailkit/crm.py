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

import codecs
import csv
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, Union

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

#: The longest CSV field (a column name or a value) a load accepts, in characters: the csv
#: module's default field size limit. A longer field is refused with the file and line named.
MAX_FIELD_CHARS = 131_072
#: The longest CSV row (its physical lines together) a load accepts, in characters; bounds the
#: memory the size check and the parser need for one row.
MAX_ROW_CHARS = 32 * MAX_FIELD_CHARS
_MAX_CHAR_BYTES = 4                 # the most bytes one character takes (UTF-8), to bound byte reads
_DECODE_PIECE_BYTES = 1 << 16       # piece size when looking for the first undecodable line
_MAX_MESSAGE_CHARS = 300            # a parser message longer than this is cut (it may quote a row)
_LINE_END = re.compile("\r\n|\r|\n")


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
    or ``is_temporary``, a CSV value or column name longer than :data:`MAX_FIELD_CHARS` characters
    or row longer than :data:`MAX_ROW_CHARS`, named with its line); then nothing is changed. Raises
    :class:`ValidationError` for an unknown table name or a directory without CRM files.
    ``encoding`` applies to CSV files, which are read with bounded memory per row.
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

    Raises :class:`CrmLoadError` for an unreadable input, a missing required column, a column
    name that appears twice, or a CSV field or row over :data:`MAX_FIELD_CHARS` /
    :data:`MAX_ROW_CHARS` characters (refused before the file is parsed, naming the line).
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
    """Read a CSV file as text columns; raises :class:`CrmLoadError` naming the file and the line.

    The file is first checked in one pass with bounded memory (:func:`_check_csv_sizes`): a field
    longer than :data:`MAX_FIELD_CHARS`, a row longer than :data:`MAX_ROW_CHARS` or text that is not
    in ``encoding`` is refused before the parser loads anything.
    """
    first = _read_header_line(path, label, encoding)
    delimiter = _sniff_delimiter(first)
    _check_csv_sizes(path, label, encoding, delimiter)
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
        if len(message) > _MAX_MESSAGE_CHARS:  # the parser quotes the row, which may be long
            message = message[:_MAX_MESSAGE_CHARS] + " ..."
        raise CrmLoadError(label, f"cannot read CSV: {message}{hint}", row=row) from None


def _read_header_line(path: Path, label: str, encoding: str) -> str:
    """The first line of a CSV file (byte order mark removed), read with bounded memory.

    Raises :class:`CrmLoadError` for an unreadable file, an unknown encoding, a header that is not
    valid text in ``encoding``, an empty file and a header line longer than :data:`MAX_ROW_CHARS`.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        with open(path, "rb") as fh:
            raw = fh.readline(_MAX_CHAR_BYTES * MAX_ROW_CHARS)
            cut = bool(raw) and not raw.endswith(b"\n") and bool(fh.read(1))
        text = decoder.decode(raw, final=not cut)
    except UnicodeDecodeError:
        raise CrmLoadError(label, f"the header is not valid {encoding}; give the file's encoding"
                                  " (e.g. --encoding cp1252)") from None
    except LookupError:
        raise CrmLoadError(label, f"unknown encoding {encoding!r}") from None
    except OSError as exc:
        raise CrmLoadError(label, f"cannot read file: {exc.strerror or exc}") from None
    end = _LINE_END.search(text)  # also a lone CR: files saved with classic Mac line ends
    first = text[:end.end()] if end else text
    if len(first) > MAX_ROW_CHARS or (cut and end is None):
        raise CrmLoadError(label, f"the header (line 1) is longer than {MAX_ROW_CHARS} characters;"
                                  f" a column name may have at most {MAX_FIELD_CHARS}")
    first = first.lstrip("\ufeff")
    if not first.strip():
        raise CrmLoadError(label, "the file is empty (a header line naming the columns is needed)")
    return first


class _RowTooLong(Exception):
    """Raised inside :class:`_BoundedLines` when one CSV row outgrows its limit."""


class _BoundedLines:
    """The physical lines of a text file for :func:`csv.reader`, never more than ``limit``
    characters for one row in memory.

    The reader of this iterator sets ``row_chars = 0`` at the start of each row; a row (one line,
    or several when a quoted value holds line breaks) longer than ``limit`` raises
    :class:`_RowTooLong` after reading at most ``limit + 1`` characters of it. ``line_no`` is the
    number of the last line read (1-based).
    """

    def __init__(self, text: TextIO, limit: int) -> None:
        self._readline = text.readline
        self._limit = limit
        self.line_no = 0
        self.row_chars = 0

    def __iter__(self) -> "_BoundedLines":
        return self

    def __next__(self) -> str:
        line = self._readline(self._limit - self.row_chars + 1)
        if not line:
            raise StopIteration
        self.line_no += 1
        self.row_chars += len(line)
        if self.row_chars > self._limit:
            raise _RowTooLong()
        return line


def _check_csv_sizes(path: Path, label: str, encoding: str, delimiter: str) -> None:
    """Read a CSV file once, with bounded memory, and refuse what the parser should not load.

    Raises :class:`CrmLoadError` naming the file, the line and (for data) the row of the first field
    longer than :data:`MAX_FIELD_CHARS` characters (the csv module's default field size limit), the
    first row longer than :data:`MAX_ROW_CHARS`, the first line that is not valid text in
    ``encoding``, or a line the csv module cannot read. At most one row is held in memory.
    """
    limit = min(MAX_FIELD_CHARS, csv.field_size_limit())
    row = 0  # data rows read so far (the header is row 0; blank lines are skipped, as the parser does)
    try:
        with open(path, encoding=encoding, newline="") as text:
            lines = _BoundedLines(text, MAX_ROW_CHARS)
            reader = csv.reader(lines, delimiter=delimiter)
            header: list[str] | None = None
            while True:
                start = lines.line_no + 1
                lines.row_chars = 0
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except _RowTooLong:
                    what = "the header" if header is None else f"the row starting on line {start}"
                    raise CrmLoadError(label, f"{what} is longer than {MAX_ROW_CHARS} characters;"
                                              f" a field may have at most {limit}",
                                       row=None if header is None else row + 1) from None
                except csv.Error as exc:
                    if "field limit" in str(exc):
                        raise _field_too_long(label, limit, header, row + 1, start, lines.line_no) from None
                    raise CrmLoadError(label, f"cannot read CSV: line {lines.line_no}: {exc}",
                                       row=None if header is None else row + 1) from None
                if not fields:
                    continue
                if header is not None:
                    row += 1
                if max(map(len, fields)) > limit:  # the csv module's own limit may have been raised
                    index = next(i for i, value in enumerate(fields) if len(value) > limit)
                    raise _field_too_long(label, limit, header, row, start, lines.line_no, index)
                if header is None:
                    header = fields
    except UnicodeDecodeError:
        line = _first_undecodable_line(path, encoding) or 1
        raise CrmLoadError(label, f"line {line} is not valid {encoding} text; give the file's encoding"
                                  " (e.g. --encoding cp1252)", row=max(line - 1, 1)) from None
    except OSError as exc:
        raise CrmLoadError(label, f"cannot read file: {exc.strerror or exc}") from None


def _field_too_long(label: str, limit: int, header: list[str] | None, row: int, start: int, line: int,
                    index: int | None = None) -> CrmLoadError:
    """The error for a field longer than ``limit``: in the header, or in data ``row`` on lines
    ``start``..``line`` (column ``index`` when known)."""
    if header is None:
        return CrmLoadError(label, f"the header (line 1) has a column name longer than {limit} characters,"
                                   " the most a CSV field may hold")
    column = header[index].strip() if index is not None and index < len(header) else None
    where = f"line {line}" if start == line else f"lines {start}-{line}"
    hint = "" if start == line else " (is a quote not closed?)"
    return CrmLoadError(label, f"the value on {where} is longer than {limit} characters,"
                               f" the most a CSV field may hold{hint}", row=row, column=column or None)


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """The first line (1-based, counted at LF) that is not valid text in ``encoding``, read in
    pieces of bounded size; None when the whole file decodes."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with open(path, "rb") as raw:
        while True:
            piece = raw.readline(_DECODE_PIECE_BYTES)
            try:
                decoder.decode(piece, final=not piece)
            except UnicodeDecodeError:
                return line
            if not piece:
                return None
            if piece.endswith(b"\n"):
                line += 1


def _locate_csv_problem(path: Path, encoding: str, delimiter: str, columns: int) -> int | None:
    """The data row (1-based) where a CSV stops being readable: wrong number of fields or bad text.

    Reads with bounded memory (a row longer than :data:`MAX_ROW_CHARS` stops the search there).
    """
    row = 0
    try:
        with open(path, encoding=encoding, newline="") as text:
            lines = _BoundedLines(text, MAX_ROW_CHARS)
            reader = csv.reader(lines, delimiter=delimiter)
            next(reader, None)
            while True:
                lines.row_chars = 0
                fields = next(reader, None)
                if fields is None:
                    break
                row += 1
                if fields and len(fields) != columns:
                    return row
    except UnicodeDecodeError:
        line = _first_undecodable_line(path, encoding)
        return None if line is None else max(line - 1, 1)
    except (csv.Error, _RowTooLong):
        return row + 1
    return None
