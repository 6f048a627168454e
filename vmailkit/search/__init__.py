"""Full-text search over stored mail (issue 12): a tantivy index beside the DuckDB file.

The DuckDB store stays the truth; the index (``<database file>.index/``) is caught up from it and
can be rebuilt from it at any time. See docs/search.md.

::

    from vmailkit.search import MailIndex

    index = MailIndex.for_store(store)       # office.duckdb -> office.duckdb.index/
    index.catch_up(store)                    # index what was stored since (cheap when nothing is new)
    hits = index.search('"rooming list" zürich room*', limit=200)
    hits.ids, hits.total                     # email ids, best first; how many match in all
    index.status(store)                      # indexed / stored counts, stale or not
    index.rebuild(store)                     # from scratch

:func:`search_mail` does the catch-up and the search in one call.
"""
from __future__ import annotations

from typing import Any, Literal

from .index import (
    INDEX_FORMAT,
    IndexStatus,
    MailIndex,
    SearchDocsReader,
    SearchHits,
    SearchIndexBusy,
    SearchIndexError,
    index_path,
    make_document,
)
from .query import Clause, build_query, parse
from .text import analyzer, compound_forms, fold, html_to_text


def search_mail(store: Any, text: str, *, limit: int | None = None,
                order: Literal["relevance", "newest"] = "relevance", update: bool = True) -> SearchHits:
    """Search the mail of ``store`` in its index beside the database file.

    With ``update`` (the default) the index first catches up with the store (this writes the
    index: it waits for another writer, see :class:`MailIndex`). Raises :class:`ValidationError`
    for a bad search text (field ``search``), :class:`SearchIndexBusy`, :class:`SearchIndexError`.
    """
    index = MailIndex.for_store(store)
    if update:
        index.catch_up(store)
    return index.search(text, limit=limit, order=order)


__all__ = ["INDEX_FORMAT", "Clause", "IndexStatus", "MailIndex", "SearchDocsReader", "SearchHits", "SearchIndexBusy",
           "SearchIndexError", "analyzer", "build_query", "compound_forms", "fold", "html_to_text", "index_path",
           "make_document", "parse", "search_mail"]
