"""The mail list: filters that produce parameterised SQL, and paging that never loads a table."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from ..errors import NotFoundError, ValidationError
from .db import Database
from .links import normalize_entity_type

#: The columns of a mail-list row taken from ``emails`` itself (the page is chosen on these).
PAGE_COLUMNS = (
    "e.email_id, e.sent_at, e.from_address, e.from_name, e.subject, e.status, e.direction,"
    " e.has_attachments, e.size"
)
#: The columns computed for the page's mails only: accounts and the related-to count.
EXTRA_COLUMNS_SQL = """
    SELECT m.email_id,
           (SELECT string_agg(DISTINCT a.name, ', ' ORDER BY a.name) FROM accounts a
             WHERE a.account_id IN (SELECT l.account_id FROM email_locations l WHERE l.email_id = m.email_id
                                    UNION SELECT s.account_id FROM email_sends s WHERE s.email_id = m.email_id)) AS accounts,
           (SELECT count(*) FROM email_links k WHERE k.email_id = m.email_id) AS related_count
    FROM (SELECT unnest(?::BIGINT[]) AS email_id) m
"""
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
                clauses.append("e.from_address LIKE ? ESCAPE '\\'")
                params.append("%@" + domain.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
        if self.record and self.record.strip():
            typed = " WHERE r.t = ?" if self.entity_type else ""
            clauses.append("e.email_id IN (SELECT k.email_id FROM email_links k JOIN ("
                           + RECORD_SQL.replace("$q", "?") + ") r ON k.entity_type = r.t AND k.entity_id = r.id"
                           + typed + ")")
            params.extend([self.record.strip().lower()] * RECORD_SQL.count("$q"))
            if self.entity_type:
                params.append(normalize_entity_type(self.entity_type))
        if self.ids is not None:
            clauses.append("e.email_id IN (SELECT unnest(?::BIGINT[]))")
            params.append([int(i) for i in self.ids])
        if self.since is not None:
            clauses.append("e.sent_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("e.sent_at < ?")
            params.append(self.until)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _check_named(con: duckdb.DuckDBPyConnection, flt: EmailFilter) -> None:
    """Raise :class:`NotFoundError` when ``flt`` names an account or a user the store does not have
    (an unknown name is a mistake to report, not a filter that matches nothing)."""
    if flt.account and con.execute("SELECT 1 FROM accounts WHERE name = ?", [flt.account]).fetchone() is None:
        raise NotFoundError(f"no account named {flt.account!r}")
    if flt.user and con.execute("SELECT 1 FROM users WHERE name = ?", [flt.user]).fetchone() is None:
        raise NotFoundError(f"no user named {flt.user!r}")
    if flt.record and flt.record.strip():
        q = flt.record.strip().lower()
        found = con.execute(f"SELECT count(*) FROM ({RECORD_SQL.replace('$q', '?')})",
                            [q] * RECORD_SQL.count("$q")).fetchone()[0]
        if not found:
            raise NotFoundError(f"no booking, customer, supplier, quote, invoice, product or person is known as "
                                f"{flt.record.strip()!r}")


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
        where, params = flt.where()
        if after is not None:
            cond, extra = after.where()
            where = (where + " AND " if where else "WHERE ") + cond
            params = params + extra
        with self.db.connect() as con:
            _check_named(con, flt)
            page = con.execute(
                f"SELECT {PAGE_COLUMNS} FROM emails e {where} ORDER BY {ORDER} LIMIT ? OFFSET ?",
                params + [limit, offset],
            ).df()
            ids = [int(i) for i in page["email_id"]]
            extra_cols = con.execute(EXTRA_COLUMNS_SQL, [ids]).df() if ids else pd.DataFrame(
                {"email_id": pd.Series(dtype="int64"), "accounts": pd.Series(dtype="object"),
                 "related_count": pd.Series(dtype="int64")})
        out = page.merge(extra_cols, on="email_id", how="left")
        cols = ["email_id", "sent_at", "from_address", "from_name", "subject", "status", "direction",
                "has_attachments", "size", "accounts", "related_count"]
        return out[cols]

    def count_matching(self, flt: EmailFilter | None = None) -> int:
        """How many mails the filter matches (for paging).

        Raises :class:`ValidationError` for a bad filter value and :class:`NotFoundError` when the
        filter names an account or user that does not exist.
        """
        flt = flt or EmailFilter()
        where, params = flt.where()
        with self.db.connect() as con:
            _check_named(con, flt)
            return int(con.execute(f"SELECT count(*) FROM emails e {where}", params).fetchone()[0])
