"""What the full-text index reads from the store: the searchable text of mails, in bulk.

The store stays the truth; the search index (``vmailkit.search``) is rebuilt or caught up from
these reads. This module knows nothing about the index (the store never imports ``vmailkit.search``).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class SearchIdCounts(NamedTuple):
    """What :meth:`SearchDocsMixin.search_id_counts` returns."""

    stored: int          # mails stored
    highest: int         # highest email_id (0: none)
    upto_count: int      # mails with email_id <= up_to
    upto_sum: int        # the sum of those email_ids


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
            # the ids first, then the rows by their range: ORDER BY ... LIMIT over the text columns
            # would read every later row's text for each page
            low, high = con.execute("SELECT min(email_id), max(email_id) FROM (SELECT email_id FROM emails"
                                    " WHERE email_id > ? ORDER BY email_id LIMIT ?)", [int(after_id), limit]).fetchone()
            if low is None:
                return []
            rows = con.execute(_DOC_SQL + " WHERE e.email_id BETWEEN ? AND ? ORDER BY e.email_id",
                               [low, high]).fetchall()
        return _documents(rows)

    def iter_search_documents(self, after_id: int = 0, *, batch: int = 1000,
                              max_hold: float = 2.0) -> Iterator[list[SearchDocument]]:
        """Every mail with ``email_id > after_id``, ascending, in pages of at most ``batch`` mails
        (:meth:`search_documents_after` page by page, to the end).

        One connection is held across pages, and released for a moment once it has been held
        ``max_hold`` seconds, so that other processes (a download) get the file in between. Close
        the iterator (or exhaust it) to release the file: ``with contextlib.closing(...)``. Raises
        :class:`ValidationError` for a ``batch`` outside 1 ... :data:`MAX_DOCUMENT_BATCH`.
        """
        _check_limit(batch)
        after = int(after_id)
        if getattr(self.db._local, "con", None) is not None:      # inside a session: use its connection
            while docs := self.search_documents_after(after, batch):
                yield docs
                after = docs[-1].email_id
            return
        with self.db.lease(max_hold=max_hold, pause=0.05) as lease:
            while True:
                lease.acquire()
                try:
                    docs = self.search_documents_after(after, batch)
                finally:
                    lease.breathe()
                if not docs:
                    return
                yield docs
                after = docs[-1].email_id

    def search_id_counts(self, up_to: int) -> SearchIdCounts:
        """How many mails are stored, the highest ``email_id`` (0 when none), and the count and the
        sum of the ``email_id`` values ``<= up_to`` (what an index holding those mails would hold)."""
        with self.db.connect() as con:
            row = con.execute("SELECT count(*), coalesce(max(email_id), 0), count(*) FILTER (WHERE email_id <= ?),"
                              " coalesce(sum(email_id) FILTER (WHERE email_id <= ?), 0) FROM emails",
                              [int(up_to), int(up_to)]).fetchone()
        return SearchIdCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def email_ids_between(self, low: int, high: int) -> list[int]:
        """The stored ``email_id`` values with ``low <= email_id < high``, ascending."""
        with self.db.connect() as con:
            rows = con.execute("SELECT email_id FROM emails WHERE email_id >= ? AND email_id < ? ORDER BY email_id",
                               [int(low), int(high)]).fetchall()
        return [int(r[0]) for r in rows]
