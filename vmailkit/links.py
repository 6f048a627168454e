"""Manual links between mail and CRM records, the relations of a mail, and search for the link dialog.

::

    from vmailkit.links import link, unlink, related, search

    hits = search(store, "customer", "sol")            # DataFrame: entity_type, entity_id, display_name, detail
    link(store, 42, hits.head(1), user="anna")          # or link(store, 42, "customer", 7)
    link(store, 42, ("reservation", 3), ("product", 9))  # several at once
    related(store, 42)                                  # every link with display name, origin, rule, who, when
    unlink(store, 42, "customer", 7, user="anna")       # remembered: matching never re-adds it

Types: ``customer``, ``supplier``, ``reservation``, ``quote`` (supplier quote/order), ``invoice``
(customer invoice), ``product``, ``person``; aliases such as ``customer_invoice``, ``order`` and
plurals are accepted.
"""
from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .errors import ValidationError
from .store import ENTITY_TYPES, Store, normalize_entity_type, normalize_targets
from .store.links import ENTITY_ALIASES

__all__ = ["ENTITY_ALIASES", "ENTITY_TYPES", "default_user", "link", "link_candidates", "normalize_entity_type",
           "related", "related_counts", "search", "unlink"]


def default_user() -> str | None:
    """Who a link is recorded for when no user is given: ``$VMAILKIT_USER``, else the login name."""
    env = os.environ.get("VMAILKIT_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser() or None
    except Exception:  # noqa: BLE001 - no login name available (e.g. a container without passwd entry)
        return None


def _email_ids(email_ids: int | Sequence[int]) -> list[int]:
    if isinstance(email_ids, (int, str)):
        email_ids = [email_ids]  # type: ignore[list-item]
    out = []
    for e in email_ids:
        try:
            out.append(int(e))
        except (TypeError, ValueError):
            raise ValidationError("email_id", f"{e!r} is not a mail id") from None
    if not out:
        raise ValidationError("email_id", "name at least one mail")
    return out


def link(store: Store, email_ids: int | Sequence[int], *targets: Any, user: str | None = None) -> int:
    """Link the mail(s) to one or more CRM records as ``manual`` links recorded for ``user``
    (default :func:`default_user`). Return how many links were new.

    ``targets``: ``"customer", 7`` or pairs ``("customer", 7)``, ``"customer:7"`` strings, or a
    DataFrame with ``entity_type``/``entity_id`` (a :func:`search` result). All or nothing: raises
    :class:`ValidationError` for an unknown type and :class:`NotFoundError` for an unknown mail or
    record. Linking an existing link changes nothing; linking a removed one clears its rejection.
    """
    pairs = normalize_targets(targets)
    return store.add_links(_email_ids(email_ids), pairs, user=user if user is not None else default_user())


def unlink(store: Store, email_ids: int | Sequence[int], *targets: Any, user: str | None = None) -> int:
    """Remove links (same ``targets`` forms as :func:`link`); return how many were removed.

    Each removed link is remembered as rejected (by ``user``), so automatic matching never adds it
    again. All or nothing: raises :class:`NotFoundError` when a mail is unknown or not linked to
    one of the targets.
    """
    pairs = normalize_targets(targets)
    return store.remove_links(_email_ids(email_ids), pairs, user=user if user is not None else default_user())


def related(store: Store, email_id: int) -> pd.DataFrame:
    """The relations of a mail: entity_type, entity_id, display_name, origin (auto/manual), rule,
    linked_by, linked_at. ``display_name`` is empty when the record is no longer in the CRM data.
    Raises :class:`NotFoundError` for an unknown mail."""
    return store.relations(_email_ids(email_id)[0])


def related_counts(store: Store, email_ids: Sequence[int]) -> dict[int, int]:
    """The "related to" count of each mail (also the ``related_count`` column of the mail list)."""
    return store.related_counts(_email_ids(email_ids))


def link_candidates(store: Store, email_id: int | None = None) -> pd.DataFrame:
    """Reservations an ambiguous number in a mail's subject found (pick one with :func:`link`)."""
    return store.link_candidates(None if email_id is None else _email_ids(email_id)[0])


def search(store: Store, entity_type: str, text: str, *, limit: int = 20) -> pd.DataFrame:
    """Records of one type for the link dialog: case-insensitive substring of name, code/number or
    e-mail (or the exact id); exact matches first, at most ``limit`` (1..1000) rows with
    entity_type, entity_id, display_name, detail. Raises :class:`ValidationError` for an unknown type.
    """
    return store.search_entities(entity_type, text, limit=limit)
