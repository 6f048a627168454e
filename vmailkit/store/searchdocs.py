"""What the full-text index reads from the store: the searchable text of mails, in bulk.

The store stays the truth; the search index (``vmailkit.search``) is rebuilt or caught up from
these reads. This module knows nothing about the index (the store never imports ``vmailkit.search``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .db import Database

# One row per mail: the searchable columns and the file names of its parts, in part order.
_DOC_SQL = (
    "SELECT e.email_id, e.subject, e.from_name, e.from_address, e.body_text, e.body_html,"
    " (SELECT list(p.filename ORDER BY p.part_index) FROM attachment_parts p"
    "   WHERE p.email_id = e.email_id AND p.filename IS NOT NULL) AS attachment_names"
    " FROM emails e"
)

#: The most mails one read returns (a batch of documents is held in memory at once).
MAX_DOCUMENT_BATCH = 10_000


@dataclass(frozen=True)
class SearchDocument:
    """The searchable text of one stored mail, as stored (not yet folded or stripped of HTML)."""

    email_id: int
    subject: str | None
    from_name: str | None
    from_address: str | None
    body_text: str | None
    body_html: str | None
    attachment_names: tuple[str, ...]


def _documents(rows: Sequence[tuple[Any, ...]]) -> list[SearchDocument]:
    return [SearchDocument(int(r[0]), r[1], r[2], r[3], r[4], r[5], tuple(r[6] or ())) for r in rows]


def _check_limit(limit: int) -> int:
    if not 1 <= int(limit) <= MAX_DOCUMENT_BATCH:
        raise ValidationError("limit", f"{limit} is not between 1 and {MAX_DOCUMENT_BATCH}")
    return int(limit)


class SearchDocsMixin:
    """Reads for the full-text index (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def search_documents(self, email_ids: Sequence[int]) -> list[SearchDocument]:
        """The searchable text of the mails ``email_ids`` (ids that are not stored are left out),
        ordered by ``email_id``; one query. Raises :class:`ValidationError` for more than
        :data:`MAX_DOCUMENT_BATCH` ids."""
        ids = sorted({int(i) for i in email_ids})
        if not ids:
            return []
        _check_limit(len(ids))
        with self.db.connect() as con:
            rows = con.execute(_DOC_SQL + " WHERE e.email_id IN (SELECT unnest(?::BIGINT[])) ORDER BY e.email_id",
                               [ids]).fetchall()
        return _documents(rows)

    def search_documents_after(self, after_id: int, limit: int) -> list[SearchDocument]:
        """At most ``limit`` mails with ``email_id > after_id``, ascending (a keyset page: pass the
        last id returned to read the next page). Raises :class:`ValidationError` for a ``limit``
        outside 1 ... :data:`MAX_DOCUMENT_BATCH`."""
        limit = _check_limit(limit)
        with self.db.connect() as con:
            rows = con.execute(_DOC_SQL + " WHERE e.email_id > ? ORDER BY e.email_id LIMIT ?",
                               [int(after_id), limit]).fetchall()
        return _documents(rows)

    def search_id_counts(self, up_to: int) -> tuple[int, int, int]:
        """``(stored, highest, stored_up_to)``: how many mails are stored, the highest ``email_id``
        (0 when none) and how many have an ``email_id <= up_to``."""
        with self.db.connect() as con:
            row = con.execute("SELECT count(*), coalesce(max(email_id), 0),"
                              " count(*) FILTER (WHERE email_id <= ?) FROM emails", [int(up_to)]).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def email_ids_between(self, low: int, high: int) -> list[int]:
        """The stored ``email_id`` values with ``low <= email_id < high``, ascending."""
        with self.db.connect() as con:
            rows = con.execute("SELECT email_id FROM emails WHERE email_id >= ? AND email_id < ? ORDER BY email_id",
                               [int(low), int(high)]).fetchall()
        return [int(r[0]) for r in rows]
