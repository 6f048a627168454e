"""When two received copies are one mail.

Two copies are one mail only when their bytes are equal after

* removing the header fields that transport adds on the way to each mailbox (:data:`TRACE_FIELDS`
  and the prefixes in :data:`TRACE_PREFIXES`, with their continuation lines), wherever they stand
  in the header block, and
* normalising line endings (CRLF → LF) and ignoring line breaks at the very end (POP3 ends every
  message with one, IMAP returns the stored bytes).

Every other header field and the whole body take part, byte for byte. A message without an empty
line, without Message-ID, Date, From or Subject is compared by all of its bytes like any other: two
different mails are never merged, and a Message-ID shared by two different mails keeps them two.

The identity is the sha256 (hex) of those normalised bytes; it is stored as ``emails.dedup_key``
(and ``emails.fingerprint``). See docs/design.md for the list and why it is this one.
"""
from __future__ import annotations

import hashlib
import re

#: Header fields added by the servers a mail passes on its way to one mailbox (lower case).
TRACE_FIELDS = frozenset({
    # RFC 5321 trace fields and the delivery agent's envelope records
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"x-delivered-to", b"x-envelope-from",
    b"x-envelope-to", b"x-rcpt-to", b"x-received", b"envelope-to",
    # checks the receiving server records (RFC 8601, RFC 7208, RFC 8617)
    b"authentication-results", b"received-spf", b"arc-seal", b"arc-message-signature",
    b"arc-authentication-results",
    # spam and virus filters of the receiving server
    b"x-spam-status", b"x-spam-score", b"x-spam-level", b"x-spam-flag", b"x-spam-checker-version",
    b"x-spam-report", b"x-virus-scanned", b"x-virus-status", b"x-greylist",
    # mailbox-format fields some servers add when storing (mbox: Status, X-Status, X-Keywords, X-UID)
    b"status", b"x-status", b"x-keywords", b"x-uid", b"x-mozilla-status", b"x-mozilla-status2",
})
#: Prefixes of receiving-side fields (Exchange Online and Microsoft's filters, lower case).
TRACE_PREFIXES = (b"x-ms-exchange-organization-", b"x-ms-exchange-transport-", b"x-forefront-antispam-report",
                  b"x-microsoft-antispam", b"x-ms-exchange-crosstenant-")

_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")
_HEADER_END = re.compile(rb"(\r?\n)\r?\n")
_SLICE = 1 << 20


def is_trace_field(name: bytes) -> bool:
    """True for a header field name (any case) that transport adds: it takes no part in identity."""
    lowered = name.strip().lower()
    return lowered in TRACE_FIELDS or lowered.startswith(TRACE_PREFIXES)


def _header_region(raw: bytes) -> int:
    """Where the header block ends: at the first empty line, or the end when there is none."""
    m = _HEADER_END.search(raw)
    return len(raw) if m is None else m.end(1)


def _kept_header(raw: bytes, end: int) -> tuple[bytes, int]:
    """The header lines before ``end`` without trace fields, and where the rest of the bytes start.

    Lines are read while they are header fields or their continuations; the first line that is
    neither (the empty line, or a message with no headers at all) ends the header block.
    """
    kept: list[bytes] = []
    skipping = False
    pos = 0
    for line in raw[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            pos += len(line)
            continue
        m = _FIELD.match(line)
        if m is None:
            break
        skipping = is_trace_field(m.group(1))
        if not skipping:
            kept.append(line)
        pos += len(line)
    return b"".join(kept), pos


def identity_key(raw: bytes) -> str:
    """sha256 (hex) of ``raw`` without transport header fields, line endings normalised.

    Pure function of the bytes; never raises.
    """
    header, start = _kept_header(raw, _header_region(raw))
    end = len(raw)
    while end > start and raw[end - 1] in b"\r\n":
        end -= 1
    kept_header = header.replace(b"\r\n", b"\n")
    if end <= start:  # nothing after the header block: its last line break is a trailing one
        kept_header = kept_header.rstrip(b"\r\n")
    h = hashlib.sha256()
    h.update(kept_header)
    pos = start
    while pos < end:  # in slices: a large mail is not copied whole
        stop = min(pos + _SLICE, end)
        if raw[stop - 1:stop] == b"\r" and stop < end:
            stop += 1  # never cut a CRLF in two
        h.update(raw[pos:stop].replace(b"\r\n", b"\n"))
        pos = stop
    return h.hexdigest()


def normalized_for_identity(raw: bytes) -> bytes:
    """The bytes :func:`identity_key` hashes (for tests and for explaining a merge)."""
    header, start = _kept_header(raw, _header_region(raw))
    return (header + raw[start:]).replace(b"\r\n", b"\n").rstrip(b"\r\n")
