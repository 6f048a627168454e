"""Automatic matching of mail to CRM records, by the reference product's rules.

For each mail (addresses compared case-insensitively after trimming, From as the parsed address):

* ``person.email``: every person that is not temporary whose e-mail equals From.
* ``customer.main_person``: every customer whose main person is one of those persons;
  ``customer.contact_email``: only when that found none, every customer with an ``EMAIL`` contact
  equal to From.
* ``supplier.main_person`` / ``supplier.contact_email``: the same against suppliers.
* ``reservation.booking_code``: for every group of digits N in the Subject (as written: ``0756``
  is not ``756``), the reservations whose booking code is ``B-N``, ``O-N``, ``L-N`` or
  ``B|O|L-<brand code>-N``; exactly one is linked, several are kept as candidates instead.

Matching only adds: it never removes or changes a link, and never re-adds a link a user removed.
It runs as set-based SQL over all mails in scope at once (see ``docs/matching.md``).
"""
from __future__ import annotations

from collections.abc import Sequence

from .store import MatchResult, Store
from .store.links import RULES

__all__ = ["RULES", "MatchResult", "match_all", "match_emails", "match_new", "match_unlinked"]


def match_new(store: Store, email_ids: list[int]) -> int:
    """Match newly stored mails; return how many links were created.

    The ``after_chunk`` hook of :func:`vmailkit.sync.download`. A no-op returning 0 when no CRM data
    is loaded or ``email_ids`` is empty.
    """
    if not email_ids:
        return 0
    with store.db.connect():  # one connection for the check and the match
        if not store.has_crm_data():
            return 0
        return store.match_emails(list(email_ids)).links_added


def match_emails(store: Store, email_ids: Sequence[int]) -> MatchResult:
    """Match the given mails (unknown ids are ignored); see :class:`MatchResult`."""
    if not email_ids:
        return MatchResult(mails=0, by_rule={r: 0 for r in RULES})
    with store.db.connect():
        if not store.has_crm_data():
            return MatchResult(mails=0, by_rule={r: 0 for r in RULES})
        return store.match_emails(list(email_ids))


def match_all(store: Store) -> MatchResult:
    """Match every stored mail (``vmailkit match --all``); idempotent."""
    with store.db.connect():
        if not store.has_crm_data():
            return MatchResult(mails=store.count_emails(), by_rule={r: 0 for r in RULES})
        return store.match_emails(None)


def match_unlinked(store: Store) -> MatchResult:
    """Match the mails that have no link yet (``vmailkit match``)."""
    with store.db.connect():
        ids = store.unlinked_email_ids()
        if not ids or not store.has_crm_data():
            return MatchResult(mails=len(ids), by_rule={r: 0 for r in RULES})
        return store.match_emails(ids)
