"""One robust parser for every message source (IMAP, POP3, files).

The module turns raw RFC 5322 / MIME bytes into plain, immutable data
(:class:`ParsedMessage`, :class:`HeaderSummary`).  It is built on the standard
library :mod:`email` package with :data:`email.policy.default`, hardened
against the malformed mail found in real mailboxes:

* :func:`parse_message` and :func:`parse_headers` never raise for any input
  bytes.  Problems that do not prevent extraction are listed in
  ``ParsedMessage.defects``; ``ParsedMessage.parse_error`` is reserved for
  fatal problems (the MIME structure itself could not be parsed, or a whole
  extraction stage failed), in which case every field that could still be
  extracted is filled in.
* Header values are read with ``email.policy.default``.  Whenever that raises
  (e.g. ``To: unlisted-recipients:; (comment)``), when the raw value holds
  8-bit bytes, or when the value is huge, the raw value from
  ``Message.raw_items()`` is decoded by a tolerant RFC 2047 decoder and
  addresses are parsed with :func:`email.utils.getaddresses` instead.
* Body text is decoded with the declared charset; unknown or lying charsets
  fall back to UTF-8, then cp1252, then Latin-1 (see :func:`decode_text`).
* Every returned ``str`` is valid Unicode that can be encoded as UTF-8 (no
  lone surrogates), so it can be stored directly.

Speed: ``policy.default`` re-parses a header through its header registry on
every read (``get_content_type()`` alone runs ~14 times per message), and the
feed parser spends most of its time on per-line bookkeeping.  The module keeps
the results of the email package exactly but takes cheaper routes to them:
the structure is parsed by the stdlib feed parser code with an equivalent
line buffer, boundary matcher and end-of-line search, under a policy that
renders well-formed Content-Type / Content-Disposition /
Content-Transfer-Encoding values directly (see :mod:`.mime` and
:mod:`.fastpaths`); well-formed Subject, address, Date values and header
blocks are decoded by exact fast paths (see :mod:`.fastpaths` and
:mod:`.headers`).  Anything outside those well-formed shapes goes through the email
package itself.  An import-time self-check compares every fast path with the
email package of the running Python and disables them on any difference.

Only the standard library is used.

Layout: :mod:`.model` (result dataclasses), :mod:`.charsets` (charsets,
:func:`decode_text`, surrogate and text helpers), :mod:`.rfc2047`
(encoded-word decoding), :mod:`.fastpaths` (exact fast paths, ``_FastPolicy``),
:mod:`.headers` (header decoding, :func:`parse_headers`), :mod:`.mime` (the
MIME structure parser), :mod:`.parts` (part access, payload decoding),
:mod:`.body` (:func:`parse_message`), :mod:`.selfcheck` (the import-time
self-check, run at the end of this module).
"""

from __future__ import annotations

from .body import parse_message
from .charsets import decode_text
from .headers import normalize_message_id, parse_headers, split_header_block
from .model import Address, Attachment, HeaderSummary, ParsedMessage
from .selfcheck import _self_check

__all__ = [
    "Address",
    "Attachment",
    "HeaderSummary",
    "ParsedMessage",
    "parse_headers",
    "parse_message",
    "normalize_message_id",
    "split_header_block",
    "decode_text",
]

_self_check()
