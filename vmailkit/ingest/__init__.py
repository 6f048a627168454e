"""The way from the transport to the store: fetched bytes become the store's records.

* :mod:`.identity` decides when two received copies are one mail;
* :mod:`.prepare` parses and identifies the bytes into :class:`~vmailkit.store.records.MailRecord`
  (parsed fields, identity, attachment places);
* :mod:`.pool` does that in worker processes for large downloads (workers never outlive their
  parent).

:func:`save_received` stores messages as a download would, for bytes that came another way (a
file import, tests). The download loop itself is in :mod:`vmailkit.sync`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from ..errors import ValidationError
from ..refs import MessageRef
from ..store import ChunkResult, Mailbox, Store
from ..transport.base import RemoteMessage
from .identity import TRACE_FIELDS, TRACE_PREFIXES, identity_key, is_trace_field
from .pool import Preparer, PreparedChunk
from .prepare import arrival, mail_record, with_raw

log = logging.getLogger(__name__)

#: The name of the identity rule in :mod:`.identity`, recorded in the store beside the keys it made.
IDENTITY_RULE = "bytes-without-trace-fields-1"


def ensure_identity_rule(store: Store) -> None:
    """Make sure the stored identities follow :data:`IDENTITY_RULE` before new mail is compared with them.

    A store written by an earlier version is re-keyed once (one transaction; a million mails take
    minutes, once). Cheap when the store is current.
    """
    rule = store.identity_rule()
    if rule == IDENTITY_RULE:
        return
    if rule != "none":
        log.warning("vmailkit: computing the identity of every stored mail by the current rule (once)")
    kept = store.rekey(IDENTITY_RULE, identity_key)
    if kept:
        log.warning("vmailkit: %d stored mails are copies of others by the current rule; they stay separate rows", kept)


def save_received(
    store: Store,
    user: str,
    account: str,
    messages: Sequence[tuple[int | str, bytes]],
    *,
    folder: str = "INBOX",
    uidvalidity: int = 1,
) -> ChunkResult:
    """Store ``messages`` ((UID or UIDL, raw bytes) pairs) as received by ``user`` in ``account``.

    One transaction, the same records, identity and watermark as a download. Raises
    :class:`~vmailkit.errors.NotFoundError` for an unknown user or account and
    :class:`ValidationError` for a UID that is not a number in an IMAP account.
    """
    u = store.get_user(user)
    acc = store.get_account(account)
    ensure_identity_rule(store)
    imap = acc.protocol == "imap"
    refs = []
    for key, _ in messages:
        if imap and not str(key).isdigit():
            raise ValidationError("uid", f"{key!r} is not an IMAP UID")
        refs.append(MessageRef(acc.name, folder if imap else "INBOX", uidvalidity if imap else 0,
                               uid=int(key) if imap else None, uidl=None if imap else str(key)))
    arrivals = [arrival(RemoteMessage(ref, raw)) for ref, (_, raw) in zip(refs, messages)]
    mailbox = Mailbox(int(acc.account_id or 0), acc.protocol, folder if imap else "INBOX", uidvalidity if imap else 0)
    return store.save_chunk(user_id=int(u.user_id or 0), mailbox=mailbox, arrivals=arrivals)


__all__ = ["IDENTITY_RULE", "Preparer", "PreparedChunk", "TRACE_FIELDS", "TRACE_PREFIXES", "arrival",
           "ensure_identity_rule", "identity_key",
           "is_trace_field", "mail_record", "save_received", "with_raw"]
