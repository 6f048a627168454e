"""The mail list as people use it: filters, full-text search through the index, pages.

:func:`resolve_search` turns a filter's free text into the ids the full-text index finds
(:mod:`vmailkit.search`), so the store pages them together with the other filters. The CLI's
``emails`` and the mail-list panel go through it; ``Store.list_emails`` itself only knows a plain
substring scan for ``search``.
"""
from __future__ import annotations

import dataclasses

from .search import search_mail
from .store import EmailFilter, Store


def resolve_search(store: Store, flt: EmailFilter) -> EmailFilter:
    """``flt`` with ``search`` answered by the full-text index (caught up first) as ``ids``.

    Raises :class:`~vmailkit.errors.ValidationError` (field ``search``) for a text that is not a
    query, and the index's errors (:class:`~vmailkit.search.SearchIndexBusy`, ...).
    """
    if not flt.search or not flt.search.strip():
        return dataclasses.replace(flt, search=None)
    hits = search_mail(store, flt.search)
    ids = tuple(hits.ids) if flt.ids is None else tuple(i for i in hits.ids if i in set(flt.ids))
    return dataclasses.replace(flt, search=None, ids=ids)
