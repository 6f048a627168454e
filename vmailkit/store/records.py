"""The records the store writes for received and sent mail.

The store knows nothing of servers or MIME: :mod:`vmailkit.ingest` turns fetched bytes into these
records (parsed fields, identity, attachment places) and the store writes them, one chunk per
transaction. Every field maps to a column documented in ``docs/schema.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AttachmentRecord:
    """One attachment part: either its decoded ``content`` or its ``place`` in the mail's raw bytes.

    ``place`` is ``(offset, length, "base64" | "identity")``: the ``attachments`` view rebuilds the
    content from ``emails.raw`` by SQL, so no second copy is stored.
    """

    part_index: int
    filename: str | None
    content_type: str
    size: int
    sha256: str
    is_inline: bool
    content_id: str | None
    content: bytes | None
    place: tuple[int, int, str] | None = None


@dataclass(frozen=True)
class MailRecord:
    """One mail as stored in ``emails``: identity, parsed fields, the exact bytes, attachments.

    ``identity`` is the ``dedup_key``: two received copies with the same identity are one mail.
    ``raw`` may be empty while the record travels between processes; it is set before writing.
    """

    identity: str
    fingerprint: str
    raw_sha256: str
    size: int
    message_id: str | None
    from_address: str | None
    from_name: str | None
    to_addresses: list[str]
    cc_addresses: list[str]
    reply_to: list[str]
    subject: str | None
    sent_at: datetime | None
    in_reply_to: str | None
    references: list[str]
    body_text: str | None
    body_html: str | None
    has_attachments: bool
    parse_error: str | None
    parse_defects: list[str]
    attachments: list[AttachmentRecord] = field(default_factory=list)
    raw: bytes = b""


@dataclass(frozen=True)
class Mailbox:
    """The place a chunk was received from: account, folder and its UIDVALIDITY (0 for POP3)."""

    account_id: int
    protocol: str
    folder: str
    uidvalidity: int


@dataclass(frozen=True)
class Arrival:
    """One received copy: the mail and its name in the mailbox (IMAP UID or POP3 UIDL)."""

    mail: MailRecord
    uid: int | None = None
    uidl: str | None = None

    @property
    def key(self) -> str:
        """The UID as text, or the UIDL."""
        return str(self.uid) if self.uid is not None else str(self.uidl)
