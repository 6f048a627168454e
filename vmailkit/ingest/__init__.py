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

from collections.abc import Sequence

from ..errors import ValidationError
from ..refs import MessageRef
from ..store import ChunkResult, Mailbox, Store
from ..transport.base import RemoteMessage
from .identity import TRACE_FIELDS, TRACE_PREFIXES, identity_key, is_trace_field
from .pool import Preparer, PreparedChunk
from .prepare import arrival, mail_record, with_raw


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


__all__ = ["Preparer", "PreparedChunk", "TRACE_FIELDS", "TRACE_PREFIXES", "arrival", "identity_key",
           "is_trace_field", "mail_record", "save_received", "with_raw"]
