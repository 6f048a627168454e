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

#: The accounts a mail belongs to: where it was received, and the account an outgoing mail was sent
#: through (a sent reply has a location only when it was appended to the Sent folder).
MAIL_ACCOUNT_IDS = (
    "(SELECT l.account_id FROM email_locations l WHERE l.email_id = e.email_id"
    " UNION SELECT s.account_id FROM email_sends s WHERE s.email_id = e.email_id)"
)

LIST_COLUMNS = (
    "e.email_id, e.sent_at, e.from_address, e.from_name, e.subject, e.status, e.direction,"
    " e.has_attachments, e.size,"
    " (SELECT string_agg(DISTINCT a.name, ', ' ORDER BY a.name) FROM accounts a"
    f"   WHERE a.account_id IN {MAIL_ACCOUNT_IDS}) AS accounts,"
    " (SELECT count(*) FROM email_links k WHERE k.email_id = e.email_id) AS related_count"
)


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
        if self.account:
            clauses.append(f"EXISTS (SELECT 1 FROM accounts a WHERE a.name = ? AND a.account_id IN {MAIL_ACCOUNT_IDS})")
            params.append(self.account)
        if self.user:
            clauses.append(
                "EXISTS (SELECT 1 FROM subscriptions s JOIN users u ON u.user_id = s.user_id"
                f" WHERE u.name = ? AND s.account_id IN {MAIL_ACCOUNT_IDS})"
            )
            params.append(self.user)
        if self.search:
            pattern = "%" + self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "(e.subject ILIKE ? ESCAPE '\\' OR e.from_address ILIKE ? ESCAPE '\\'"
                " OR e.from_name ILIKE ? ESCAPE '\\' OR e.body_text ILIKE ? ESCAPE '\\')"
            )
            params.extend([pattern] * 4)
        if self.linked is not None:
            clauses.append(("" if self.linked else "NOT ")
                           + "EXISTS (SELECT 1 FROM email_links k WHERE k.email_id = e.email_id)")
        if self.entity_type or self.entity_id is not None:
            if not self.entity_type:
                raise ValidationError("entity_type", "give the type of the record whose id is entity_id")
            link_sql = "EXISTS (SELECT 1 FROM email_links k WHERE k.email_id = e.email_id AND k.entity_type = ?"
            params.append(normalize_entity_type(self.entity_type))
            if self.entity_id is not None:
                link_sql += " AND k.entity_id = ?"
                params.append(int(self.entity_id))
            clauses.append(link_sql + ")")
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


class ListingMixin:
    """The mail list (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def list_emails(self, flt: EmailFilter | None = None, *, limit: int = 50, offset: int = 0) -> pd.DataFrame:
        """One page of the mail list, newest first (mails without a date last).

        Raises :class:`ValidationError` for a bad limit, offset or filter value and
        :class:`NotFoundError` when the filter names an account or user that does not exist.
        """
        if limit < 1 or limit > 10_000:
            raise ValidationError("limit", "must be between 1 and 10000")
        if offset < 0:
            raise ValidationError("offset", "may not be negative")
        flt = flt or EmailFilter()
        where, params = flt.where()
        with self.db.connect() as con:
            _check_named(con, flt)
            return con.execute(
                f"SELECT {LIST_COLUMNS} FROM emails e {where}"
                " ORDER BY e.sent_at DESC NULLS LAST, e.email_id DESC LIMIT ? OFFSET ?",
                params + [limit, offset],
            ).df()

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
