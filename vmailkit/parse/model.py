"""Public data classes of :mod:`vmailkit.parse`.

The frozen dataclasses the parser returns: :class:`Address` (one mailbox),
:class:`Attachment` (one attachment or non-body leaf part),
:class:`HeaderSummary` (what :func:`~vmailkit.parse.parse_headers` builds)
and :class:`ParsedMessage` (what :func:`~vmailkit.parse.parse_message`
builds).  Plain, immutable data with no behaviour of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


# --------------------------------------------------------------------------
# Public data classes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """One mailbox from an address header.

    ``address`` is the lowercased, trimmed addr-spec (``""`` when absent);
    ``name`` is the decoded display name (``""`` when absent).
    """

    address: str
    name: str


@dataclass(frozen=True)
class Attachment:
    """One attachment (or non-body leaf part) of a message.

    ``content`` holds the decoded bytes (base64 / quoted-printable / uuencode
    decoded; broken encodings are decoded best-effort, unknown transfer
    encodings are kept as they are).  For ``message/*`` parts ``content`` is
    the embedded message serialized back to bytes.

    ``source`` says where the encoded content lies in the raw message, when
    the decoded bytes can be rebuilt from there by SQL alone:
    ``(offset, length, "base64" | "identity")`` (0-based byte offset into the
    raw bytes; ``base64`` means strict base64 with only CR/LF line breaks).
    The store keeps such attachments as that place instead of a second copy.
    ``None`` for small, quoted-printable, broken or embedded-message parts.
    """

    index: int
    filename: str | None
    content_type: str
    size: int
    sha256: str
    content: bytes
    is_inline: bool
    content_id: str | None
    source: tuple[int, int, str] | None = None


@dataclass(frozen=True)
class HeaderSummary:
    """The cheap summary :func:`parse_headers` builds from a header block."""

    message_id: str | None
    from_: Address | None
    to: list[Address]
    subject: str
    date: datetime | None
    content_type: str


@dataclass(frozen=True)
class ParsedMessage:
    """Everything :func:`parse_message` extracts from one message.

    ``parse_error`` is ``None`` unless a fatal problem stopped part of the
    extraction; ``defects`` lists short descriptions of non-fatal problems.
    """

    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_: Address | None
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    subject: str
    date: datetime | None
    text: str | None
    html: str | None
    attachments: list[Attachment]
    parse_error: str | None
    defects: list[str]
