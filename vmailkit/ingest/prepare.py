"""Fetched bytes into the store's records: parse, identity, attachment places.

:func:`mail_record` is pure CPU work with no database and no server; worker processes run it for
large downloads (:mod:`vmailkit.ingest.pool`). It never raises for bad mail: a message the parser
cannot read is kept with its exact bytes and a ``parse_error``, and nothing is guessed.
"""
from __future__ import annotations

import dataclasses
import hashlib

from ..parse import ParsedMessage, parse_message
from ..store.records import Arrival, AttachmentRecord, MailRecord
from ..transport.base import RemoteMessage
from .identity import identity_key


def mail_record(raw: bytes, *, keep_raw: bool = True) -> MailRecord:
    """Parse and identify ``raw`` and return the record the store writes.

    With ``keep_raw=False`` the record's ``raw`` is empty (worker processes send records back
    without a second copy of the bytes; :func:`with_raw` puts them back). Attachments the store
    keeps as a place in the raw bytes carry no content.
    """
    parsed = parse_message(raw)
    key = identity_key(raw)
    return _record(parsed, raw if keep_raw else b"", key, hashlib.sha256(raw).hexdigest(), len(raw))


def with_raw(record: MailRecord, raw: bytes) -> MailRecord:
    """``record`` carrying ``raw`` (the bytes it was made from)."""
    return dataclasses.replace(record, raw=raw)


def arrival(message: RemoteMessage, record: MailRecord | None = None) -> Arrival:
    """The store's record of one received message (parsed here unless ``record`` is given)."""
    mail = mail_record(message.raw) if record is None else with_raw(record, message.raw)
    return Arrival(mail=mail, uid=message.ref.uid, uidl=message.ref.uidl)


def _record(m: ParsedMessage, raw: bytes, key: str, sha: str, size: int) -> MailRecord:
    return MailRecord(
        identity=key,
        fingerprint=key,
        raw_sha256=sha,
        size=size,
        message_id=m.message_id,
        from_address=m.from_.address if m.from_ else None,
        from_name=m.from_.name if m.from_ else None,
        to_addresses=[a.address for a in m.to if a.address],
        cc_addresses=[a.address for a in m.cc if a.address],
        reply_to=[a.address for a in m.reply_to if a.address],
        subject=m.subject,
        sent_at=m.date,
        in_reply_to=m.in_reply_to,
        references=list(m.references),
        body_text=m.text,
        body_html=m.html,
        has_attachments=any(not a.is_inline for a in m.attachments),
        parse_error=m.parse_error,
        parse_defects=list(m.defects),
        attachments=[
            AttachmentRecord(
                part_index=a.index, filename=a.filename, content_type=a.content_type, size=a.size,
                sha256=a.sha256, is_inline=a.is_inline, content_id=a.content_id,
                content=None if a.source is not None else a.content, place=a.source,
            )
            for a in m.attachments
        ],
        raw=raw,
    )
