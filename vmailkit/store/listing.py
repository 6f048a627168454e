"""The mail list: filters that produce parameterised SQL, and paging that never loads a table."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ..errors import NotFoundError, ValidationError
from .db import Database
from .links import normalize_entity_type

#: The columns of a mail-list row taken from ``emails`` itself (the page is chosen on these).
PAGE_COLUMNS = (
    "e.email_id, e.sent_at, e.from_address, e.from_name, e.subject, e.status, e.direction,"
    " e.has_attachments, e.size"
)
#: The columns computed for the page's mails only: accounts and the related-to count, each grouped
#: over just those mails (parameter: the page's ids, twice... see :func:`_extra_columns`).
EXTRA_COLUMNS_SQL = """
    WITH m AS (SELECT unnest(?::BIGINT[]) AS email_id),
    placed AS (
        SELECT l.email_id, l.account_id FROM email_locations l WHERE l.email_id IN (SELECT email_id FROM m)
        UNION SELECT s.email_id, s.account_id FROM email_sends s WHERE s.email_id IN (SELECT email_id FROM m)
    ),
    acc AS (
        SELECT p.email_id, string_agg(DISTINCT a.name, ', ' ORDER BY a.name) AS accounts
        FROM placed p JOIN accounts a USING (account_id) GROUP BY p.email_id
    ),
    rel AS (
        SELECT k.email_id, count(*) AS n FROM email_links k WHERE k.email_id IN (SELECT email_id FROM m)
        GROUP BY k.email_id
    )
    SELECT m.email_id, acc.accounts, coalesce(rel.n, 0) AS related_count
    FROM m LEFT JOIN acc USING (email_id) LEFT JOIN rel USING (email_id)
"""
#: The columns of a page, in order, with the dtypes of an empty page.
_EMPTY_PAGE = {
    "email_id": "int64", "sent_at": "datetime64[us, UTC]", "from_address": "object", "from_name": "object",
    "subject": "object", "status": "object", "direction": "object", "has_attachments": "bool", "size": "int64",
    "accounts": "object", "related_count": "int64",
}
#: The name under which the store registers a filter's ``ids`` (an Arrow table) for one statement.
IDS_VIEW = "_vmk_filter_ids"
#: The order of the mail list: newest first, mails without a date last, then by id.
ORDER = "e.sent_at DESC NULLS LAST, e.email_id DESC"
#: Exact matches of what a person knows about a CRM record: booking code, code, number, name, e-mail, id.
RECORD_SQL = """
    SELECT 'reservation' AS t, reservation_id AS id FROM reservations WHERE lower(booking_code) = $q
    UNION ALL SELECT 'quote', quote_id FROM quotes WHERE lower(code) = $q
    UNION ALL SELECT 'invoice', invoice_id FROM customer_invoices WHERE lower(number) = $q
    UNION ALL SELECT 'product', product_id FROM products WHERE lower(code) = $q OR lower(name) = $q
    UNION ALL SELECT 'customer', customer_id FROM customers WHERE lower(name) = $q OR CAST(customer_id AS VARCHAR) = $q
    UNION ALL SELECT 'supplier', supplier_id FROM suppliers WHERE lower(name) = $q OR CAST(supplier_id AS VARCHAR) = $q
    UNION ALL SELECT 'person', person_id FROM persons
        WHERE lower(email) = $q OR lower(concat_ws(' ', first_name, last_name)) = $q
"""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last row's date and id (keyset paging continues after it)."""

    sent_at: datetime | None
    email_id: int

    @classmethod
    def after(cls, page: pd.DataFrame) -> "Cursor | None":
        """The cursor after the last row of ``page`` (None for an empty page)."""
        if page.empty:
            return None
        last = page.iloc[-1]
        when = last["sent_at"]
        return cls(None if pd.isna(when) else pd.Timestamp(when).to_pydatetime(), int(last["email_id"]))

    def where(self) -> tuple[str, list[Any]]:
        """The condition "comes after this cursor" in the list's order, with its parameters."""
        if self.sent_at is None:
            return "(e.sent_at IS NULL AND e.email_id < ?)", [self.email_id]
        return ("(e.sent_at < ? OR (e.sent_at = ? AND e.email_id < ?) OR e.sent_at IS NULL)",
                [self.sent_at, self.sent_at, self.email_id])


@dataclass(frozen=True)
class EmailFilter:
    """Criteria for the mail list; every value reaches SQL as a parameter.

    ``search`` is a case-insensitive substring of subject, sender address/name or plain text body.
    """

    status: str | None = None
    account: str | None = None
    search: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    user: str | None = None           # mails received in, or sent through, accounts this user subscribes to
    linked: bool | None = None        # True: mails related to at least one CRM record; False: to none
    entity_type: str | None = None    # mails linked to a record of this type (aliases accepted) ...
    entity_id: int | None = None      # ... with this id (needs entity_type)
    sender: str | None = None         # exact sender: an address (anna@x.example) or a domain (x.example, @x.example)
    record: str | None = None         # linked to the CRM record a person knows by: booking code, code, number,
                                      # name, e-mail or id (exact, any case); with entity_type: of that type only
    ids: tuple[int, ...] | None = None  # only these mails (e.g. the hits of a full-text search)
    records: tuple[tuple[str, int], ...] | None = None  # ``record`` resolved to (type, id) pairs by the store

    def where(self) -> tuple[str, list[Any]]:
        """Return the WHERE clause (``""`` when no criteria) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.status:
            if self.status not in ("read", "unread"):
                raise ValidationError("status", f"unknown status {self.status!r}; use read or unread")
            clauses.append("e.status = ?")
            params.append(self.status)
        if self.direction:
            if self.direction not in ("incoming", "outgoing"):
                raise ValidationError("direction", f"unknown direction {self.direction!r}")
            clauses.append("e.direction = ?")
            params.append(self.direction)
        if self.account:  # semi-joins: one pass over the locations, not a subquery per mail
            clauses.append("e.email_id IN (SELECT l.email_id FROM email_locations l JOIN accounts a USING (account_id)"
                           " WHERE a.name = ? UNION SELECT s.email_id FROM email_sends s JOIN accounts a"
                           " USING (account_id) WHERE a.name = ?)")
            params.extend([self.account, self.account])
        if self.user:
            clauses.append(
                "e.email_id IN (SELECT l.email_id FROM email_locations l JOIN subscriptions s USING (account_id)"
                " JOIN users u USING (user_id) WHERE u.name = ? UNION SELECT x.email_id FROM email_sends x"
                " JOIN subscriptions s USING (account_id) JOIN users u USING (user_id) WHERE u.name = ?)"
            )
            params.extend([self.user, self.user])
        if self.search:
            pattern = "%" + self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "(e.subject ILIKE ? ESCAPE '\\' OR e.from_address ILIKE ? ESCAPE '\\'"
                " OR e.from_name ILIKE ? ESCAPE '\\' OR e.body_text ILIKE ? ESCAPE '\\')"
            )
            params.extend([pattern] * 4)
        if self.linked is not None:
            clauses.append("e.email_id " + ("" if self.linked else "NOT ") + "IN (SELECT k.email_id FROM email_links k)")
        if (self.entity_type and not self.record) or self.entity_id is not None:
            if not self.entity_type:
                raise ValidationError("entity_type", "give the type of the record whose id is entity_id")
            link_sql = "e.email_id IN (SELECT k.email_id FROM email_links k WHERE k.entity_type = ?"
            params.append(normalize_entity_type(self.entity_type))
            if self.entity_id is not None:
                link_sql += " AND k.entity_id = ?"
                params.append(int(self.entity_id))
            clauses.append(link_sql + ")")
        if self.sender:
            sender = self.sender.strip().lower()
            if "@" in sender.lstrip("@"):
                clauses.append("e.from_address = ?")
                params.append(sender)
            else:
                domain = sender.lstrip("@")
                if not domain or any(c.isspace() for c in domain):
                    raise ValidationError("sender", f"{self.sender!r} is neither an e-mail address nor a domain")
                clauses.append("ends_with(e.from_address, ?)")
                params.append("@" + domain)
        if self.record and self.record.strip():
            if self.records is None:
                raise ValidationError("record", "resolve the record first (EmailFilter.resolved)")
            clauses.append("e.email_id IN (SELECT k.email_id FROM email_links k JOIN"
                           " (SELECT unnest(?::VARCHAR[]) AS t, unnest(?::BIGINT[]) AS id) r"
                           " ON k.entity_type = r.t AND k.entity_id = r.id)")
            params.extend([[t for t, _ in self.records], [i for _, i in self.records]])
        if self.ids is not None:  # a table registered by the store (see _ids_registered): many ids, no list parameter
            clauses.append(f"e.email_id IN (SELECT email_id FROM {IDS_VIEW})")
        if self.since is not None:
            clauses.append("e.sent_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("e.sent_at < ?")
            params.append(self.until)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _resolved(con: duckdb.DuckDBPyConnection, flt: EmailFilter) -> EmailFilter:
    """``flt`` checked against the store and with ``record`` resolved to (type, id) pairs, once.

    Raises :class:`NotFoundError` when the filter names an account, a user or a record the store does
    not have (an unknown name is a mistake to report, not a filter that matches nothing).
    """
    if flt.account and con.execute("SELECT 1 FROM accounts WHERE name = ?", [flt.account]).fetchone() is None:
        raise NotFoundError(f"no account named {flt.account!r}")
    if flt.user and con.execute("SELECT 1 FROM users WHERE name = ?", [flt.user]).fetchone() is None:
        raise NotFoundError(f"no user named {flt.user!r}")
    if flt.record and flt.record.strip() and flt.records is None:
        q = flt.record.strip().lower()
        sql = f"SELECT DISTINCT t, id FROM ({RECORD_SQL.replace('$q', '?')})"
        args: list[Any] = [q] * RECORD_SQL.count("$q")
        if flt.entity_type:
            sql += " WHERE t = ?"
            args.append(normalize_entity_type(flt.entity_type))
        pairs = tuple((str(t), int(i)) for t, i in con.execute(sql, args).fetchall())
        if not pairs:
            raise NotFoundError(f"no booking, customer, supplier, quote, invoice, product or person is known as "
                                f"{flt.record.strip()!r}")
        return dataclasses.replace(flt, records=pairs)
    return flt


@contextmanager
def _ids_registered(con: duckdb.DuckDBPyConnection, flt: EmailFilter) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection to run the filter's SQL on, with ``flt.ids`` registered as the Arrow table it
    reads (a search may give 100,000 ids: an Arrow table costs a fraction of a list parameter).

    The table is registered on a cursor of ``con`` (its own statement context), never beside a
    result another caller left open on ``con``.
    """
    if flt.ids is None:
        yield con
        return
    cur = con.cursor()
    try:
        cur.register(IDS_VIEW, pa.table({"email_id": pa.array([int(i) for i in flt.ids], pa.int64())}))
        yield cur
    finally:
        cur.close()


class ListingMixin:
    """The mail list (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def list_emails(self, flt: EmailFilter | None = None, *, limit: int = 50, offset: int = 0,
                    after: Cursor | None = None) -> pd.DataFrame:
        """One page of the mail list, newest first (mails without a date last).

        The page's mails are chosen first (filters, order, limit) and the accounts and related-to
        count are computed for those mails only. ``after`` continues after a previous page's last
        row (keyset paging: see :meth:`Cursor.after`); ``offset`` skips rows (for a jump to a page
        number). Raises :class:`ValidationError` for a bad limit, offset or filter value and
        :class:`NotFoundError` when the filter names an account, user or record that does not exist.
        """
        if limit < 1 or limit > 10_000:
            raise ValidationError("limit", "must be between 1 and 10000")
        if offset < 0:
            raise ValidationError("offset", "may not be negative")
        flt = flt or EmailFilter()
        with self.db.connect() as con:
            flt = _resolved(con, flt)
            where, params = flt.where()
            if after is not None:
                cond, extra = after.where()
                where = (where + " AND " if where else "WHERE ") + cond
                params = params + extra
            # the page's ids first (only the order columns are read), then those rows and their extras
            with _ids_registered(con, flt) as run:
                ids = [int(r[0]) for r in run.execute(
                    f"SELECT e.email_id FROM emails e {where} ORDER BY {ORDER} LIMIT ? OFFSET ?",
                    params + [limit, offset]).fetchall()]
            if not ids:
                return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY_PAGE.items()})
            page = con.execute(
                f"SELECT {PAGE_COLUMNS} FROM emails e WHERE e.email_id IN (SELECT unnest(?::BIGINT[]))", [ids]).df()
            extra_cols = con.execute(EXTRA_COLUMNS_SQL, [ids]).df()
        order = {eid: n for n, eid in enumerate(ids)}
        out = page.merge(extra_cols, on="email_id", how="left")
        out = out.sort_values("email_id", key=lambda col: col.map(order)).reset_index(drop=True)
        out["related_count"] = out["related_count"].fillna(0).astype("int64")
        return out[list(_EMPTY_PAGE)]

    def count_matching(self, flt: EmailFilter | None = None) -> int:
        """How many mails the filter matches (for paging).

        Raises :class:`ValidationError` for a bad filter value and :class:`NotFoundError` when the
        filter names an account or user that does not exist.
        """
        flt = flt or EmailFilter()
        with self.db.connect() as con:
            flt = _resolved(con, flt)
            where, params = flt.where()
            with _ids_registered(con, flt) as run:
                return int(run.execute(f"SELECT count(*) FROM emails e {where}", params).fetchone()[0])
