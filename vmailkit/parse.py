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
Content-Transfer-Encoding values directly (see "Fast structural header
access"); well-formed Subject, address, Date values and header blocks are
decoded by exact fast paths (see "Exact fast paths for policy.default header
values").  Anything outside those well-formed shapes goes through the email
package itself.  An import-time self-check compares every fast path with the
email package of the running Python and disables them on any difference.

Only the standard library is used.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import io
import quopri
import re
import types
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import _encoded_words
from email import feedparser as _feedparser
from email import parser as _email_parser
from email import policy as _policy
from email._header_value_parser import quote_string as _quote_string
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser, Parser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Callable, Iterable, TypeVar

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

_T = TypeVar("_T")


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


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_FOLD = re.compile(r"\r\n|\r|\n")
_WS = re.compile(r"\s+")
_CTRL = re.compile(r"[\x00-\x1f\x7f]+")

# Header values longer than this skip the (slow, super-linear) policy.default
# header parser and go straight to the fast fallback decoder.
_MAX_POLICY_HEADER = 16_384
# Only header values up to this length are memoised.
_MAX_CACHED_HEADER = 2_048


def _safe(func: Callable[[], _T], default: _T) -> _T:
    """Return ``func()``, or ``default`` if it raises anything."""
    try:
        return func()
    except Exception:
        return default


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _bytes_to_str_fallback(data: bytes, hint: str | None = None) -> tuple[str, str]:
    """Decode 8-bit bytes of unknown charset: UTF-8, ``hint``, cp1252, Latin-1.

    UTF-8 is tried strictly first; data that is clearly UTF-8 apart from a
    few stray bytes (at least four valid non-ASCII characters per invalid
    byte) is decoded as UTF-8 with U+FFFD replacements.  Returns
    ``(text, codec used)``; never raises.
    """
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Mostly valid UTF-8 with a few stray bytes: keep the UTF-8 reading.
    lenient = data.decode("utf-8", "replace")
    bad = lenient.count("\ufffd")
    good = sum(1 for c in lenient if c > "\x7f") - bad
    if good >= 4 * bad:
        return lenient, "utf-8 (invalid bytes replaced)"
    for codec in ([hint] if hint else []) + ["cp1252"]:
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1"), "latin-1"


def _has_surrogates(text: str) -> bool:
    """``_ANY_SURROGATE.search(text) is not None``, fast on long text.

    (The regex scans ~2 us per KB; ``isascii`` is near free and the strict
    UTF-8 encoder fails exactly on surrogate code points.)
    """
    if text.isascii():
        return False
    if len(text) < 1024:
        return _ANY_SURROGATE.search(text) is not None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _fix_surrogates(text: str, hint: str | None = None) -> str:
    """Turn surrogate-escaped 8-bit bytes in ``text`` back into real text.

    Runs of ``\\udc80``-``\\udcff`` (what the email package produces for raw
    8-bit bytes) are decoded with :func:`_bytes_to_str_fallback`; any other
    lone surrogate becomes U+FFFD.  The result always encodes as UTF-8.
    """
    if not _has_surrogates(text):
        return text
    try:
        # Pure raw value (ASCII + escaped bytes): decode it as one byte string,
        # so multi-byte charsets whose trail bytes are ASCII (Big5, GBK,
        # Shift_JIS) decode correctly.
        return _bytes_to_str_fallback(text.encode("ascii", "surrogateescape"), hint)[0]
    except UnicodeEncodeError:
        pass

    def repl(m: re.Match[str]) -> str:
        raw = bytes(ord(c) - 0xDC00 for c in m.group(0))
        return _bytes_to_str_fallback(raw, hint)[0]

    text = _SURROGATE_RUN.sub(repl, text)
    return _ANY_SURROGATE.sub("\ufffd", text)


def _unfold(value: str) -> str:
    """RFC 5322 unfolding: remove line breaks, keep the folding whitespace."""
    return _FOLD.sub("", value)


def _clean_text(value: str) -> str:
    """Ensure a decoded header string is single-line, trimmed, valid Unicode."""
    return _fix_surrogates(_unfold(value)).strip()


# --------------------------------------------------------------------------
# Charsets and decode_text
# --------------------------------------------------------------------------

# Labels Python does not know, or knows as a narrower charset than the one
# real mailers mean (WHATWG-style supersets).
_CHARSET_ALIASES = {
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "cn-gb": "gb18030",
    "x-gb2312": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-ukrainian": "mac_cyrillic",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-greek": "mac_greek",
    "x-mac-turkish": "mac_turkish",
    "x-mac-ce": "mac_latin2",
    "x-mac-centraleurroman": "mac_latin2",
    "x-mac-icelandic": "mac_iceland",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-e": "iso-8859-6",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode20utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
    "utf8mb4": "utf-8",
    "ucs-2": "utf-16",
    "unicode": "utf-16",
    "cp-850": "cp850",
    "cp-1252": "cp1252",
    "windows-1252": "cp1252",
}
_ASCII_CODECS = {"ascii"}
# Codecs whose strict decoding never produces (lone) surrogate code points.
_SURROGATE_FREE_CODECS = {
    "utf-8", "ascii", "iso8859-1", "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256",
    "cp1257", "cp1258", "iso8859-2", "iso8859-15", "koi8-r", "koi8-u", "gb18030", "big5hkscs", "cp932",
    "cp949", "cp874", "euc_jp", "iso2022_jp", "shift_jis", "mac-roman",
}
# Codecs that are not (usable) text charsets for mail.
_BAD_CODECS = {
    "undefined",
    "idna",
    "punycode",
    "raw-unicode-escape",
    "unicode-escape",
    "raw_unicode_escape",
    "unicode_escape",
    "charmap",
}
_EXPLICIT_UNKNOWN = {"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "8bit"}


def _normalize_charset_label(charset: str | None) -> str | None:
    """Clean a charset label as found in the wild; ``None`` if empty."""
    if charset is None:
        return None
    label = str(charset).strip().strip("\"'").strip()
    if "=" in label:  # e.g. charset="charset=us-ascii"
        label = label.rsplit("=", 1)[1].strip().strip("\"'")
    if "*" in label:  # RFC 2231 language suffix: utf-8*en
        label = label.split("*", 1)[0]
    label = label.strip(" ;,").lower()
    return label or None


@functools.lru_cache(maxsize=512)
def _lookup_charset(label: str) -> str | None:
    """Map a normalized charset label to a Python codec name, or ``None``."""
    if label in _EXPLICIT_UNKNOWN:
        return None
    name = _CHARSET_ALIASES.get(label, label)
    for candidate in (name, name.replace("_", "-"), name.replace(" ", "-")):
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError, TypeError):
            continue
        if info.name in _BAD_CODECS or not getattr(info, "_is_text_encoding", True):
            return None
        return info.name
    return None


def decode_text(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` with the declared ``charset``; never raises.

    * A known charset is decoded strictly (labels are mapped to the superset
      real mailers mean: ``windows-874``/``tis-620`` -> cp874,
      ``ks_c_5601-1987``/``euc-kr`` -> cp949, ``gb2312`` -> gb18030,
      ``iso-8859-1`` -> cp1252, ...).  If strict decoding fails, undecodable
      bytes are replaced with U+FFFD and a defect is returned.
    * ``us-ascii`` (or no charset) with 8-bit bytes, and unknown labels
      (``x-unknown``, ``unknown-8bit``, garbage) fall back to UTF-8 (strict),
      then cp1252, then Latin-1.

    Returns ``(text, defect)`` where ``defect`` is a short message or ``None``.
    The text never contains lone surrogates.
    """
    try:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            data = str(data).encode("utf-8", "surrogateescape")
        data = bytes(data)
        label = _normalize_charset_label(charset)
        codec = _lookup_charset(label) if label else "ascii"
        if codec is None:
            text, used = _bytes_to_str_fallback(data)
            return _fix_surrogates(text), f"unknown charset {label!r}; decoded as {used}"
        if codec in _ASCII_CODECS:
            if data.isascii():
                return data.decode("ascii"), None
            text, used = _bytes_to_str_fallback(data)
            what = "no charset" if label is None else f"charset {label!r}"
            return _fix_surrogates(text), f"8-bit data with {what}; decoded as {used}"
        try:
            text = data.decode(codec)
            # (strict decoding with these codecs never yields surrogates)
            return (text if codec in _SURROGATE_FREE_CODECS else _fix_surrogates(text)), None
        except UnicodeDecodeError:
            pass
        base = _lookup_charset_plain(label) if label else None
        if base and base != codec:
            try:
                return _fix_surrogates(data.decode(base)), None
            except (UnicodeDecodeError, LookupError):
                pass
        text = data.decode(codec, "replace")
        return _fix_surrogates(text), f"invalid {label} data; undecodable bytes replaced"
    except Exception as exc:  # pragma: no cover - defensive
        try:
            text = bytes(data).decode("latin-1")
        except Exception:
            text = ""
        return text, f"text decoding failed ({type(exc).__name__}); decoded as latin-1"


@functools.lru_cache(maxsize=256)
def _lookup_charset_plain(label: str) -> str | None:
    """Codec for ``label`` without the superset aliases (or ``None``)."""
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if info.name in _BAD_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def _sniff_html_charset(data: bytes) -> str | None:
    """Charset declared in an HTML ``<meta>`` tag in the first 4 KB, if known."""
    m = _META_CHARSET.search(data[:4096])
    if not m:
        return None
    label = _normalize_charset_label(m.group(1).decode("ascii", "ignore"))
    if label and _lookup_charset(label):
        return label
    return None


# --------------------------------------------------------------------------
# RFC 2047 and header value decoding
# --------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([QqBb])\?([^?]*)\?=")
_B64_SEGMENT = re.compile(rb"[A-Za-z0-9+/]+=*")


_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"  # what rb"\s" matches
_NOT_B64_ALPHABET = bytes(c for c in range(256) if not re.fullmatch(rb"[A-Za-z0-9+/=]", bytes([c])))


def _b64decode_lenient(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 ignoring junk, bad padding and mid-stream padding.

    Returns ``(decoded, clean)`` where ``clean`` is False when the input was
    not well-formed base64.
    """
    stripped = data.translate(None, _ASCII_WHITESPACE)  # == re.sub(rb"\s+", b"", data)
    try:
        if len(stripped) % 4 == 0:
            return binascii.a2b_base64(stripped, strict_mode=True), True
    except (binascii.Error, ValueError):
        pass
    out = []
    alphabet_only = stripped.translate(None, _NOT_B64_ALPHABET)  # == re.sub(rb"[^A-Za-z0-9+/=]", b"", ...)
    for seg in _B64_SEGMENT.findall(alphabet_only):
        body = seg.rstrip(b"=")
        extra = len(body) % 4
        if extra == 1:  # a dangling sextet carries no full byte
            body = body[:-1]
        body += b"=" * (-len(body) % 4)
        try:
            out.append(binascii.a2b_base64(body))
        except (binascii.Error, ValueError):
            continue
    return b"".join(out), False


def _q_decode(payload: str) -> bytes:
    """Decode the RFC 2047 "Q" encoding leniently."""
    raw = payload.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)


def _decode_words(text: str) -> tuple[str, list[str]]:
    """Decode RFC 2047 encoded-words in ``text`` tolerantly.

    Adjacent encoded-words in the same charset are joined *before* decoding
    (real mailers split multi-byte characters across words); whitespace
    between encoded-words is dropped; unknown charsets and bad base64 are
    decoded best-effort.  Returns ``(text, defects)``; never raises.
    """
    if "=?" not in text:
        return text, []
    defects: list[str] = []
    out: list[str] = []
    pos = 0
    run_charset: str | None = None
    run_bytes: list[bytes] = []

    def flush() -> None:
        nonlocal run_charset, run_bytes
        if run_bytes:
            decoded, defect = decode_text(b"".join(run_bytes), run_charset)
            if defect:
                defects.append(f"encoded-word: {defect}")
            out.append(decoded)
        run_charset, run_bytes = None, []

    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        charset = m.group(1).split("*", 1)[0] or None
        enc, payload = m.group(2).lower(), m.group(3)
        if enc == "b":
            data, clean = _b64decode_lenient(payload.encode("ascii", "ignore"))
            if not clean:
                defects.append("encoded-word: broken base64")
        else:
            data = _q_decode(payload)
        adjacent = bool(run_bytes) and between.strip() == ""
        if adjacent and (charset or "").lower() == (run_charset or "").lower():
            run_bytes.append(data)
        else:
            flush()
            if not adjacent:
                out.append(between)
            run_charset, run_bytes = charset, [data]
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out), defects


def _header_text(raw: str, hint: str | None) -> str:
    """Raw header value (may hold surrogate-escaped 8-bit bytes) -> Unicode."""
    return _fix_surrogates(_unfold(raw), hint)


# --------------------------------------------------------------------------
# Exact fast paths for policy.default header values
# --------------------------------------------------------------------------
#
# policy.default's header parser costs 10-70 us per value.  The helpers below
# give the very same result for the common, well-formed shapes (pure ASCII,
# RFC 2047 encoded-words as whole whitespace-separated words, plain
# ``Name <a@b>`` / ``"Quoted, Name" <a@b>`` mailboxes) and hand everything
# else to the policy itself.  They decode encoded-words with the function the
# policy uses (email._encoded_words.decode).

# False if the import-time self-check (end of module) found a difference.
_FAST_PATHS = True

_STRICT_CHARS = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII, SP, HTAB
_WSP_RUN = re.compile(r"([ \t]+)")
_STRICT_EW = re.compile(r"=\?[^?\s]+\?[QqBb]\?([^?\s]+)\?=")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def _strict_encoded_word(word: str) -> str | None:
    """What the policy's parser decodes the whole-word encoded-word ``word`` to.

    ``None`` if ``word`` is not a well-formed encoded-word or does not decode
    cleanly (those cases are left to the policy).
    """
    m = _STRICT_EW.fullmatch(word)
    if m is None:
        return None
    payload = m.group(1)
    # get_encoded_word() splits at the first "?=": one right after the
    # encoding letter is only re-joined when two hex digits follow.
    if payload[0] == "=" and not (len(payload) >= 3 and payload[1] in _HEXDIGITS and payload[2] in _HEXDIGITS):
        return None
    try:
        text = _encoded_words.decode(word)[0]
    except Exception:
        return None
    if _ANY_SURROGATE.search(text):
        return None
    return text


def _fast_unstructured(text: str) -> str | None:
    """``str(policy.default.header_fetch_parse("Subject", text))`` for an
    unfolded ``text`` without surrogates, or ``None`` if outside the fast path."""
    if "=?" not in text:
        return text  # the unstructured parser is lossless without encoded-words
    if not _STRICT_CHARS.fullmatch(text):
        return None
    parts = _WSP_RUN.split(text)  # word, ws, word, ..., word
    out: list[str] = []
    prev_ew = False
    for i in range(0, len(parts), 2):
        word = parts[i]
        is_ew = False
        if "=?" in word:
            decoded = _strict_encoded_word(word)
            if decoded is None:
                return None
            is_ew = True
            word = decoded
        if i:
            if not (prev_ew and is_ew):  # whitespace between encoded-words is dropped
                out.append(parts[i - 1])
        out.append(word)
        prev_ew = is_ew
    return "".join(out)


def _policy_unstructured(text: str) -> str:
    """``str(policy.default.header_fetch_parse("Subject", text))`` (raises like it)."""
    value = _fast_unstructured(text) if _FAST_PATHS else None
    if value is not None:
        return value
    return str(_policy.default.header_fetch_parse("Subject", text))


_ATEXT_EQ = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext
_STRICT_ADDR_SPEC = r"([A-Za-z0-9!#$%&'*+/?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/?^_`{|}~-]+)*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
_STRICT_MAILBOX = re.compile(
    r"[ \t]*(?:"
    rf"({_ATEXT_EQ}(?:{_ATEXT_EQ}|[ \t.]|\"[^\"\\]*\")*|\"[^\"\\]*\"(?:{_ATEXT_EQ}|[ \t.]|\"[^\"\\]*\")*)<{_STRICT_ADDR_SPEC}>"
    rf"|<{_STRICT_ADDR_SPEC}>"
    rf"|{_STRICT_ADDR_SPEC}"
    r")[ \t]*(,|$)"
)
_PHRASE_TOKEN = re.compile(rf"[ \t]+|\"[^\"\\]*\"|\.|{_ATEXT_EQ}+")
_DISPLAY_WS = re.compile(r"[ \t]+")


def _strict_display_name(phrase: str) -> str | None:
    """``display_name`` the policy's parser gives the phrase before ``<addr>``."""
    tokens = _PHRASE_TOKEN.findall(phrase)
    if tokens[-1] == ".":
        return None  # the policy's DisplayName.display_name raises on a trailing "."
    if tokens[-1][0] in " \t":
        tokens.pop()  # the policy strips the whitespace around the phrase
    values: list[str] = []
    for tok in tokens:
        first = tok[0]
        if first in " \t":
            values.append(" ")  # folding whitespace counts as one space
        elif first == '"':
            if "=?" in tok:
                return None
            values.append(tok[1:-1])
        elif "=?" in tok:
            decoded = _strict_encoded_word(tok)
            if decoded is None or any(c.isspace() and c not in " \t" for c in decoded):
                return None
            values.append(_DISPLAY_WS.sub(" ", decoded))
        else:
            values.append(tok)
    return "".join(values)


def _fast_mailboxes(text: str) -> list[tuple[str, str]] | None:
    """``[(username@domain, display_name or "")]`` of the policy's address
    header for a well-formed mailbox list, or ``None`` if outside the fast path."""
    if not _STRICT_CHARS.fullmatch(text) or _ADJACENT_WORDS.search(text):
        return None
    result: list[tuple[str, str]] = []
    pos = 0
    end = len(text)
    while True:
        m = _STRICT_MAILBOX.match(text, pos)
        if m is None:
            return None
        phrase, local1, domain1, local2, domain2, local3, domain3, sep = m.groups()
        if phrase is not None:
            display = _strict_display_name(phrase)
            if display is None:
                return None
            result.append((f"{local1}@{domain1}", display))
        elif local2 is not None:
            result.append((f"{local2}@{domain2}", ""))
        else:
            result.append((f"{local3}@{domain3}", ""))
        pos = m.end()
        if not sep:
            return result
        if pos >= end:  # trailing comma
            return None


def _policy_mailboxes(name: str, text: str) -> list[tuple[str, str]]:
    """``(username@domain or username, display_name or "")`` of every address of
    ``policy.default.header_fetch_parse(name, text)`` (raises like it)."""
    fast = _fast_mailboxes(text) if _FAST_PATHS else None
    if fast is not None:
        return fast
    header = _policy.default.header_fetch_parse(name, text)
    return [(a.username + ("@" + a.domain if a.domain else ""), a.display_name or "") for a in header.addresses]


@functools.lru_cache(maxsize=4096)
def _decode_unstructured_cached(text: str) -> tuple[str, tuple[str, ...]]:
    return _decode_unstructured_uncached(text)


def _decode_unstructured_uncached(text: str) -> tuple[str, tuple[str, ...]]:
    """Decode an unstructured header value (already Unicode, unfolded)."""
    defects: list[str] = []
    value: str | None = None
    if len(text) <= _MAX_POLICY_HEADER:
        try:
            value = _policy_unstructured(text)
        except Exception as exc:
            defects.append(f"header not parseable by email.policy ({type(exc).__name__}); used fallback")
    else:
        defects.append(f"oversized header ({len(text)} chars); used fast fallback decoder")
    if value is not None and _policy_garbled(value, text):
        # Unknown or mislabelled charset in an encoded-word: redo it ourselves.
        value = None
    if value is None or "=?" in value and _ENCODED_WORD.search(value):
        # policy.default leaves encoded-words it cannot handle as they are.
        decoded, more = _decode_words(text if value is None else value)
        value = decoded
        defects.extend(more)
    return _fix_surrogates(value).strip(), tuple(defects)


def _policy_garbled(value: str, source: str) -> bool:
    """True if policy.default produced surrogates / U+FFFD not in ``source``."""
    return bool(_ANY_SURROGATE.search(value)) or ("\ufffd" in value and "\ufffd" not in source)


def _decode_unstructured(raw: str, hint: str | None) -> tuple[str, tuple[str, ...]]:
    text = _header_text(raw, hint)
    if len(text) <= _MAX_CACHED_HEADER:
        return _decode_unstructured_cached(text)
    return _decode_unstructured_uncached(text)


_ADJACENT_WORDS = re.compile(r"\?=\s+=\?")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/?^_`{|}~-]+"
_SIMPLE_ADDR = re.compile(
    rf"(?:((?:{_ATEXT}[ \t]+)*{_ATEXT})[ \t]*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
    rf"|({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*))"
)
_NOT_SIMPLE = re.compile(r"[\"()\\=;:\[\]]|[^\x00-\x7f]")


def _simple_addresses(text: str) -> tuple[Address, ...] | None:
    """Fast path for the common, plain forms ``a@b.c`` and ``Name Words <a@b.c>``.

    Gives exactly what the policy.default parser gives for these forms, at a
    fraction of the cost; returns ``None`` for anything else.
    """
    if _NOT_SIMPLE.search(text):
        return None
    result = []
    for item in text.split(","):
        m = _SIMPLE_ADDR.fullmatch(item.strip())
        if m is None:
            return None
        if m.group(3) is not None:
            result.append(Address(m.group(3).lower(), ""))
        else:
            result.append(Address(m.group(2).lower(), " ".join(m.group(1).split())))
    return tuple(result)
_ADDR_FALLBACK = re.compile(r"[^\s<>(),;:\"\[\]]+@[^\s<>(),;:\"\[\]]+")


def _make_address(addr: str, name: str) -> Address | None:
    addr = _WS.sub("", _fix_surrogates(addr)).strip("<>").lower()
    if addr == "@" or addr.endswith((":", ";")):  # group syntax leftovers
        addr = ""
    name = _fix_surrogates(_unfold(name)).strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    if "=?" in name:
        name = _decode_words(name)[0].strip()
    if not addr and not name:
        return None
    return Address(address=addr, name=name)


@functools.lru_cache(maxsize=4096)
def _decode_addresses_cached(name: str, text: str) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    return _decode_addresses_uncached(name, text)


def _decode_addresses_uncached(name: str, text: str) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    """Parse an address-list header value (already Unicode)."""
    defects: list[str] = []
    # policy.default keeps the whitespace between adjacent encoded-words in a
    # display name ("=?utf-8?B?..?=\r\n =?utf-8?B?..?="); RFC 2047 drops it.
    adjacent_words = _ADJACENT_WORDS.search(text) is not None
    if len(text) <= _MAX_POLICY_HEADER:
        simple = _simple_addresses(text)
        if simple is not None:
            return simple, ()
    if len(text) <= _MAX_POLICY_HEADER and not adjacent_words:
        try:
            result = []
            garbled = False
            for addr, display_name in _policy_mailboxes(name, text):
                garbled = garbled or _policy_garbled(addr + display_name, text)
                made = _make_address(addr, display_name)
                if made is not None:
                    result.append(made)
            if not garbled:
                return tuple(result), ()
        except Exception as exc:
            defects.append(f"{name} header not parseable by email.policy ({type(exc).__name__}); used fallback")
    if len(text) > _MAX_POLICY_HEADER:
        defects.append(f"oversized {name} header ({len(text)} chars); used fast fallback parser")
    result = []
    try:
        pairs = getaddresses([_unfold(text)])
        for display, addr in pairs:
            made = _make_address(addr, display)
            if made is not None:
                result.append(made)
    except Exception as exc:  # e.g. RecursionError on pathological input
        defects.append(f"{name} header not parseable by getaddresses ({type(exc).__name__}); scanned for addresses")
        result = [Address(a.lower(), "") for a in _ADDR_FALLBACK.findall(text)]
    return tuple(result), tuple(defects)


def _decode_addresses(name: str, raw: str, hint: str | None) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    text = _header_text(raw, hint)
    if len(text) <= _MAX_CACHED_HEADER:
        return _decode_addresses_cached(name, text)
    return _decode_addresses_uncached(name, text)


# --------------------------------------------------------------------------
# Message-IDs and dates
# --------------------------------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)(?:>|(?=<)|$)")
_COMMENT = re.compile(r"\([^()]*\)")


def normalize_message_id(value: str | None) -> str | None:
    """Normalize one Message-ID: ``" < abc@x > "`` -> ``"abc@x"``.

    Takes the content of the first ``<...>`` if there is one (else the whole
    value without comments), removes all whitespace and angle brackets.
    Returns ``None`` for ``None``, empty or whitespace-only values.  Never
    raises.
    """
    if value is None:
        return None
    try:
        text = _fix_surrogates(str(value))
        m = _ANGLE_ID.search(text)
        if m and m.group(1).strip():
            text = m.group(1)
        else:
            text = _COMMENT.sub("", text)
        text = _WS.sub("", text).strip("<>")
        return text or None
    except Exception:  # pragma: no cover - defensive
        return None


def _extract_ids(value: str) -> list[str]:
    """All message ids in a References / In-Reply-To value, in order."""
    text = _fix_surrogates(_unfold(value))
    ids = [_WS.sub("", m) for m in _ANGLE_ID.findall(text)]
    ids = [i for i in ids if i]
    if not ids:
        ids = [t.strip("<>") for t in re.split(r"[\s,]+", _COMMENT.sub(" ", text))]
        ids = [i for i in ids if i]
    return ids


_MIN_YEAR = 1970


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_STRICT_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9]\d{3}) (\d\d):(\d\d)(?::(\d\d))? ([+-])(\d\d)(\d\d)"
)


def _strict_date(text: str) -> datetime | None:
    """``parsedate_to_datetime(text)`` converted to UTC, for the plain RFC 5322
    form (``Mon, 6 Jan 2025 08:33:00 +0100``); ``None`` for anything else."""
    m = _STRICT_DATE.fullmatch(text)
    if m is None:
        return None
    day, month, year, hour, minute, second, sign, tzh, tzm = m.groups()
    offset = int(tzh) * 3600 + int(tzm) * 60
    try:
        dt = datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0),
                      tzinfo=timezone(timedelta(seconds=-offset if sign == "-" else offset)))
        return dt.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def _parse_date(raw: str) -> tuple[datetime | None, str | None]:
    """Parse a Date header value to an aware UTC datetime (or ``None``).

    Naive and ``-0000`` dates are taken as UTC.  Returns ``(date, defect)``.
    """
    text = _WS.sub(" ", _fix_surrogates(_unfold(raw))).strip()
    if not text:
        return None, "empty Date header"
    dt = _strict_date(text) if _FAST_PATHS else None
    if dt is not None:
        if dt.year < _MIN_YEAR:
            return None, f"implausible Date header: {text[:80]!r}"
        return dt, None
    try:
        stripped = text
        for _ in range(3):
            stripped = _COMMENT.sub(" ", stripped)
        dt = parsedate_to_datetime(stripped.strip() or text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        else:
            dt = dt.astimezone(timezone.utc)
    except Exception:
        return None, f"unparseable Date header: {text[:80]!r}"
    if dt.year < _MIN_YEAR:
        return None, f"implausible Date header: {text[:80]!r}"
    return dt, None


# --------------------------------------------------------------------------
# Header block access shared by parse_headers and parse_message
# --------------------------------------------------------------------------

_CTYPE = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)")
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.I)


def _normalize_content_type(value: str | None, default: str = "text/plain") -> str:
    """``'Text/HTML; charset=x'`` -> ``'text/html'``; ``default`` if unusable."""
    if not value:
        return default
    m = _CTYPE.match(_unfold(str(value)))
    if not m:
        return default
    return f"{m.group(1)}/{m.group(2)}".lower()


class _Headers:
    """Raw header values of one header block, looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self.values: dict[str, list[str]] = {}
        for name, value in items:
            try:
                key = _fix_surrogates(str(name)).strip().lower()
                self.values.setdefault(key, []).append(value if isinstance(value, str) else str(value))
            except Exception:
                continue
        ctype = self.first("content-type")
        hint = None
        if ctype:
            m = _CHARSET_PARAM.search(_fix_surrogates(ctype))
            if m:
                label = _normalize_charset_label(m.group(1))
                if label and _lookup_charset(label) not in (None, "ascii", "utf-8"):
                    hint = _lookup_charset(label)
        self.hint = hint  # charset for raw 8-bit bytes in header values

    def first(self, name: str) -> str | None:
        vals = self.values.get(name)
        return vals[0] if vals else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def subject(self, defects: list[str]) -> str:
        raw = self.first("subject")
        if raw is None:
            return ""
        value, more = _decode_unstructured(raw, self.hint)
        defects.extend(f"Subject: {d}" for d in more)
        if _SURROGATE_RUN.search(raw):
            defects.append("raw 8-bit bytes in Subject header")
        return value

    def addresses(self, name: str, defects: list[str]) -> list[Address]:
        result: list[Address] = []
        for raw in self.all(name.lower()):
            addrs, more = _decode_addresses(name, raw, self.hint)
            result.extend(addrs)
            defects.extend(more)
            if _SURROGATE_RUN.search(raw):
                defects.append(f"raw 8-bit bytes in {name} header")
        return result

    def message_id(self) -> str | None:
        return normalize_message_id(self.first("message-id"))

    def date(self, defects: list[str]) -> datetime | None:
        raw = self.first("date")
        if raw is None:
            return None
        dt, defect = _parse_date(raw)
        if defect:
            defects.append(defect)
        return dt


_HEADER_LINE = re.compile(rb"^([^\s:][^:]*):(.*)$")


def _manual_header_items(block: bytes) -> list[tuple[str, str]]:
    """Last-resort header splitter (used only if the email parser raised)."""
    items: list[tuple[str, str]] = []
    for line in re.split(rb"\r\n|\r|\n", block):
        if line[:1] in (b" ", b"\t") and items:
            name, value = items[-1]
            items[-1] = (name, value + "\r\n" + line.decode("ascii", "surrogateescape"))
            continue
        m = _HEADER_LINE.match(line)
        if m:
            items.append(
                (m.group(1).decode("ascii", "surrogateescape"), m.group(2).lstrip(b" \t").decode("ascii", "surrogateescape"))
            )
    return items


_HEADERISH = re.compile(rb"([^\s:][^:\r\n]{0,200}):")
_VALID_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_INVALID_NAME_CHARS = re.compile(rb"[^\x21-\x39\x3b-\x7e]+")


def _needs_header_repair(msg: Message) -> bool:
    """True if the email package stopped reading headers suspiciously early."""
    names = {type(d).__name__ for d in getattr(msg, "defects", ()) or ()}
    return bool(names & {"MissingHeaderBodySeparatorDefect", "FirstHeaderLineIsContinuationDefect"})


def _repair_header_block(block: bytes) -> bytes | None:
    """Repair a header block the email package cannot read to its end.

    Fixes field names with whitespace or other invalid characters (RFC 822
    obsolete ``Subject : x``, ``X-Foo Bar: y``) and a first header line that
    starts with whitespace.  Only applies when *every* line of the block
    looks like a header field or a continuation line (so a body that follows
    headers without an empty line is never turned into headers).  Returns the
    repaired block, or ``None`` when nothing was or could be repaired.
    """
    lines = block.splitlines(keepends=True)
    out: list[bytes] = []
    changed = False
    for i, line in enumerate(lines):
        content = line.rstrip(b"\r\n")
        eol = line[len(content) :]
        if i == 0 and content.startswith(b"From "):  # mbox envelope line
            out.append(line)
            continue
        if i == 0 and content[:1] in (b" ", b"\t") and _HEADERISH.match(content.lstrip()):
            content = content.lstrip()
            changed = True
        elif content[:1] in (b" ", b"\t") or not content:
            out.append(line)  # continuation (or whitespace-only) line
            continue
        m = _HEADERISH.match(content)
        if not m:
            return None
        name = m.group(1)
        if not _VALID_FIELD_NAME.fullmatch(name):
            name = _INVALID_NAME_CHARS.sub(b"-", name.strip()).strip(b"-") or b"X-Invalid-Header"
            changed = True
        out.append(name + content[m.end(1) :] + eol)
    return b"".join(out) if changed else None


_FIELD_LINE = re.compile(r"[\041-\071\073-\176]+:")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _fast_header_items(block: bytes) -> list[tuple[str, str]] | None:
    """What ``BytesHeaderParser(policy=compat32)`` reads from a header block in
    which every line is a field (``Name:``) or a continuation line; ``None``
    for anything else (first-line continuation, envelope ``From `` lines,
    blank or malformed lines) -- the email package handles those."""
    text = block.decode("ascii", "surrogateescape")
    items: list[tuple[str, str]] = []
    name = None
    lines: list[str] = []
    for line in _LINE.findall(text):
        if line[0] in " \t":
            if name is None:
                return None
            lines.append(line)
            continue
        m = _FIELD_LINE.match(line)
        if m is None:
            return None
        if name is not None:
            items.append((name, "".join(lines).rstrip("\r\n")))
        name = line[: m.end() - 1]
        lines = [line[m.end() :].lstrip(" \t")]
    if name is not None:
        items.append((name, "".join(lines).rstrip("\r\n")))
    return items


def _header_items(block: bytes) -> list[tuple[str, str]]:
    """(name, raw value) pairs of a header block, exactly as the email package sees them.

    Applies :func:`_repair_header_block` exactly like :func:`parse_message`
    does, so both functions read the same header fields.
    """
    try:
        fast = _fast_header_items(block) if _FAST_PATHS else None
        if fast is not None:
            return fast
    except Exception:  # pragma: no cover - defensive
        pass
    try:
        msg = BytesHeaderParser(policy=_policy.compat32).parsebytes(block)
        if _needs_header_repair(msg):
            fixed = _repair_header_block(block)
            if fixed is not None:
                msg = BytesHeaderParser(policy=_policy.compat32).parsebytes(fixed)
        return list(msg.raw_items())
    except Exception:
        try:
            return _manual_header_items(block)
        except Exception:
            return []


# --------------------------------------------------------------------------
# Public header functions
# --------------------------------------------------------------------------

_BLANK_LINE = re.compile(rb"\n\r?\n")


def split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    """Split a message at its first empty line: ``(header block, body)``.

    The empty line is the first ``CRLF CRLF`` or ``LF LF`` (also a mixed
    ``CRLF LF`` / ``LF CRLF``), whichever comes first.  The header block keeps
    the line ending of its last header line; the empty line itself belongs to
    neither part.  A message that starts with an empty line has an empty
    header block.  Without an empty line the result is ``(raw, b"")``.
    Never raises for bytes input.
    """
    raw = bytes(raw)
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    m = _BLANK_LINE.search(raw)
    if not m:
        return raw, b""
    return raw[: m.start() + 1], raw[m.end() :]


def _coerce_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    raise TypeError(f"expected bytes, got {type(raw).__name__}")


def parse_headers(raw_header_block: bytes) -> HeaderSummary:
    """Summarize a header block cheaply; never raises.

    Accepts a whole message or only its header block (as returned by IMAP
    ``BODY[HEADER.FIELDS (...)]`` or POP3 ``TOP n 0``); only the part before
    the first empty line is parsed.  Fields are decoded exactly like
    :func:`parse_message` decodes them, so both agree on the same message.
    Missing or unusable fields get their empty value (``None``, ``[]``,
    ``""``, ``"text/plain"``).
    """
    try:
        block, _ = split_header_block(_coerce_bytes(raw_header_block))
        hdrs = _Headers(_header_items(block))
        sink: list[str] = []
        from_list = _safe(lambda: hdrs.addresses("From", sink), [])
        return HeaderSummary(
            message_id=_safe(hdrs.message_id, None),
            from_=from_list[0] if from_list else None,
            to=_safe(lambda: hdrs.addresses("To", sink), []),
            subject=_safe(lambda: hdrs.subject(sink), ""),
            date=_safe(lambda: hdrs.date(sink), None),
            content_type=_safe(lambda: _normalize_content_type(hdrs.first("content-type")), "text/plain"),
        )
    except Exception:  # pragma: no cover - defensive
        return HeaderSummary(None, None, [], "", None, "text/plain")


# --------------------------------------------------------------------------
# Fast structural header access for the MIME parser
# --------------------------------------------------------------------------
#
# email.policy.default parses a header through its header registry every time
# it is read: Message.get_content_type() (called ~14 times per message by the
# feed parser, get_body() and this module) re-parses Content-Type each time,
# which costs ~35 us per call.  Every Message method the parser and this
# module use (get_content_type, get_param, get_boundary, get_filename,
# get_content_charset, get_content_disposition, ...) only looks at ``str()``
# of the header object, which for the MIME headers is the value with its
# parameters *re-rendered* by the policy's parser (``; name="value"``, RFC
# 2231 decoded, duplicates dropped, junk dropped, ...).  _FastPolicy returns
# exactly that string, computed directly for well-formed values (strict
# grammar below) and taken from the real (memoised) header object otherwise,
# so the parsed structure and every value read from it are the same as with
# policy.default.  EmailMessage.is_attachment(), the one method that reads a
# header attribute instead of str(), is adapted in _FastMessage.

_TOKEN_CHARS = r"!#$%&'*+\-.^_`{|}~0-9A-Za-z"  # RFC 2045 token: printable ASCII minus tspecials
_ATTR_CHARS = r"!#$&+\-.^_`{|}~0-9A-Za-z"  # token minus * ' %
_XVAL_CHARS = r"!#$%&+\-.^_`{|}~0-9A-Za-z"  # token minus * '
_CT_PREFIX = re.compile(rf"[ \t]*[{_TOKEN_CHARS}]+[ \t]*/[ \t]*[{_TOKEN_CHARS}]+[ \t]*")
_CD_PREFIX = re.compile(rf"[ \t]*([{_TOKEN_CHARS}]+)[ \t]*")
_STRICT_PARAM = re.compile(
    rf"[ \t]*([{_ATTR_CHARS}]+)"
    rf"(?:[ \t]*=[ \t]*(?:([{_XVAL_CHARS}]+)|\"([^\"\\]*)\")"  # name=token / name="quoted"
    rf"|\*=([{_XVAL_CHARS}]*)'([{_ATTR_CHARS}]*)'([{_XVAL_CHARS}]+))"  # name*=charset'lang'pct-value
    rf"[ \t]*(;|$)"
)
_OWS_END = re.compile(r"[ \t]*$")
_LINESEP = re.compile(r"\n|\r")  # what EmailPolicy.header_fetch_parse removes


def _render_extended(charset: str, value: str) -> str:
    """An RFC 2231 ``charset'lang'value`` as the policy's MimeParameters decodes it."""
    raw = urllib.parse.unquote_to_bytes(value)
    try:
        return raw.decode(charset, "surrogateescape")
    except (LookupError, UnicodeEncodeError):
        return raw.decode("us-ascii", "surrogateescape")


def _strict_mime_str(value: str, prefix: re.Pattern[str]) -> str | None:
    """``str(policy.default.header_fetch_parse(name, value))`` for a well-formed
    Content-Type (``prefix`` = _CT_PREFIX) or Content-Disposition (_CD_PREFIX)
    value; ``None`` when the value is outside the strict grammar."""
    if "\r" in value or "\n" in value:
        value = "".join(_LINESEP.split(value))
    if not _STRICT_CHARS.fullmatch(value) or "=?" in value or "\\" in value:
        return None
    m = prefix.match(value)
    if m is None:
        return None
    pos = m.end()
    end = len(value)
    if pos == end:
        return value
    if value[pos] != ";":
        return None
    head = value[: pos + 1]
    pos += 1
    rendered: list[str] = []
    seen: set[str] = set()
    while pos < end:
        m = _STRICT_PARAM.match(value, pos)
        if m is None:
            if _OWS_END.match(value, pos):
                break
            return None
        name, token, quoted, charset, _lang, extended = m.groups()[:6]
        if name in seen:  # duplicates: the policy's rules are intricate
            return None
        seen.add(name)
        if extended is not None:
            try:
                val = _render_extended(charset, extended)
            except Exception:
                return None
        else:
            val = token if token is not None else quoted
        rendered.append(f"{name}={_quote_string(val)}" if val else name)
        pos = m.end()
        if not m.group(7):  # end of value
            break
    result = head + (" " + "; ".join(rendered) if rendered else "")
    if _ANY_SURROGATE.search(result):
        result = result.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return result


def _strict_cte_str(value: str) -> str | None:
    if "\r" in value or "\n" in value:
        value = "".join(_LINESEP.split(value))
    m = _CD_PREFIX.fullmatch(value)
    return value if m is not None else None


_STRICT_HEADERS: dict[str, Callable[[str], str | None]] = {
    "content-type": lambda v: _strict_mime_str(v, _CT_PREFIX),
    "content-disposition": lambda v: _strict_mime_str(v, _CD_PREFIX),
    "content-transfer-encoding": _strict_cte_str,
}


@functools.lru_cache(maxsize=4096)
def _strict_header_cached(lname: str, value: str) -> str | None:
    return _STRICT_HEADERS[lname](value)


@functools.lru_cache(maxsize=256)
def _policy_header_cached(name: str, value: str) -> object:
    return _policy.default.header_fetch_parse(name, value)


def _policy_header(name: str, value: str) -> object:
    """``policy.default.header_fetch_parse(name, value)`` (memoised; raises like it)."""
    if len(value) <= _MAX_CACHED_HEADER:
        return _policy_header_cached(name, value)
    return _policy.default.header_fetch_parse(name, value)


class _FastPolicy(EmailPolicy):
    """policy.default with cheap header reads (see the section comment)."""

    def header_fetch_parse(self, name, value):  # noqa: ANN001, ANN201 - Policy API
        if hasattr(value, "name"):
            return value
        lname = name.lower()
        if _FAST_PATHS and lname in _STRICT_HEADERS:
            if len(value) <= _MAX_CACHED_HEADER:
                text = _strict_header_cached(lname, value)
            else:
                text = _STRICT_HEADERS[lname](value)
            if text is not None:
                return text
        return _policy_header(name, value)


class _FastMessage(EmailMessage):
    """EmailMessage whose structural headers read as plain strings."""

    def is_attachment(self) -> bool:
        c_d = self.get("content-disposition")
        if c_d is None:
            return False
        if isinstance(c_d, BaseHeader):
            return c_d.content_disposition == "attachment"
        m = _CD_PREFIX.match(c_d)  # a strict value: the token is the disposition
        return m is not None and m.group(1).lower() == "attachment"


_PARSE_POLICY = _FastPolicy(message_factory=_FastMessage)


class _TailEol:
    """Drop-in for the feed parser's ``NLCRE_eol`` (``(\\r\\n|\\r|\\n)\\Z``).

    The parser searches whole part payloads with it to strip the line break
    before a boundary; the regex tries every position of the payload (~3.5 ms
    per MB).  A match can only start in the last two characters, so searching
    from there gives the very same match object.
    """

    def __init__(self, pattern: re.Pattern[str]):
        self._pattern = pattern

    def search(self, string: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        if endpos is not None:
            return self._pattern.search(string, pos, endpos)
        return self._pattern.search(string, max(pos, len(string) - 2))


def _rebind(func: Callable[..., object], namespace: dict[str, object]) -> Callable[..., object]:
    """A copy of ``func`` (same code) that looks up its globals in ``namespace``."""
    copy = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    return copy


_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_TAIL_RE = re.compile(_BOUNDARY_TAIL[1:])
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class _BoundaryRegex:
    """``re.compile("(?P<sep>" + re.escape(separator) + _BOUNDARY_TAIL)``
    without the compile cost (~75 us for every multipart).

    ``match(line)`` matches exactly where that regex matches; the match object
    has its ``end``, ``ws`` and ``linesep`` groups (all the feed parser reads).
    """

    __slots__ = ("separator", "_length")

    def __init__(self, separator: str):
        self.separator = separator
        self._length = len(separator)

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_TAIL_RE.match(line, self._length)


def _compile_for_feedparser(pattern: str, flags: int = 0) -> re.Pattern[str] | _BoundaryRegex:
    """``re.compile`` as the feed parser calls it: its boundary regexes become
    :class:`_BoundaryRegex`, anything else is compiled normally."""
    if not flags and pattern.startswith(_BOUNDARY_PREFIX) and pattern.endswith(_BOUNDARY_TAIL):
        escaped = pattern[len(_BOUNDARY_PREFIX) : len(pattern) - len(_BOUNDARY_TAIL)]
        separator = _UNESCAPE.sub(r"\1", escaped)
        if re.escape(separator) == escaped:
            return _BoundaryRegex(separator)
    return re.compile(pattern, flags)


def _matcher_first_chars(pred: Callable[[str], object]) -> frozenset[str] | None:
    """First characters a line must start with for the feed parser's false-EOF
    predicate ``pred`` to match it; ``None`` if unknown.

    The parser only pushes ``NLCRE.match`` (blank line) and the ``match`` of
    its multipart boundary regex (``(?P<sep>--boundary)...``).
    """
    pattern = getattr(pred, "__self__", None)
    if getattr(pred, "__name__", None) != "match":
        return None
    if isinstance(pattern, _BoundaryRegex):
        return frozenset(pattern.separator[:1]) if pattern.separator else None
    if not isinstance(pattern, re.Pattern):
        return None
    if pattern.pattern == _feedparser.NLCRE.pattern and pattern.flags == _feedparser.NLCRE.flags:
        return frozenset("\r\n")
    if pattern.pattern.startswith("(?P<sep>" + re.escape("--")) and not pattern.flags & re.IGNORECASE:
        return frozenset("-")
    return None


class _LineBuffer(_feedparser.BufferedSubFile):
    """The feed parser's line buffer, iterated by a generator.

    ``for line in buffer`` (how the parser reads every body line) otherwise
    costs two Python calls per line (``__next__`` + ``readline``) plus a
    regex call per false-EOF predicate.  This generator does exactly what
    they do -- pop the next line, stop at a false EOF (pushing the line back)
    or at the end, hand out ``NeedMoreData`` while waiting for input -- and
    skips the predicates for lines that cannot match them (see
    :func:`_matcher_first_chars`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._eof_starts: frozenset[str] | None = frozenset()

    def _update_eof_starts(self) -> None:
        starts: set[str] = set()
        for pred in self._eofstack:
            first = _matcher_first_chars(pred)
            if first is None:
                self._eof_starts = None
                return
            starts |= first
        self._eof_starts = frozenset(starts)

    def push_eof_matcher(self, pred):  # noqa: ANN001, ANN201 - BufferedSubFile API
        super().push_eof_matcher(pred)
        self._update_eof_starts()

    def pop_eof_matcher(self):  # noqa: ANN201 - BufferedSubFile API
        pred = super().pop_eof_matcher()
        self._update_eof_starts()
        return pred

    def __iter__(self):  # noqa: ANN204 - iterator protocol
        return self._iter_lines()

    def _iter_lines(self):  # noqa: ANN202 - generator of str / NeedMoreData
        lines = self._lines
        eofstack = self._eofstack
        need_more = _feedparser.NeedMoreData
        while True:
            if not lines:
                if self._closed:
                    return
                yield need_more
                continue
            line = lines.popleft()
            if eofstack:
                starts = self._eof_starts
                if starts is None or line[:1] in starts:
                    for ateof in reversed(eofstack):
                        if ateof(line):
                            lines.appendleft(line)
                            return
            if line == "":  # an unread "" (EOF) line: readline() returns it, __next__ stops
                return
            yield line


def _make_parser_class() -> type[Parser]:
    """``email.parser.Parser`` running the stdlib FeedParser, made cheaper.

    The stdlib code is used unchanged: ``FeedParser.__init__``,
    ``_parsegen``, ``_parse_headers`` and ``Parser.parse`` are rebound to
    copies of their module namespaces in which ``NLCRE_eol`` is a
    :class:`_TailEol`, ``BufferedSubFile`` is :class:`_LineBuffer`,
    ``re.compile`` gives :class:`_BoundaryRegex` for boundary regexes and
    ``FeedParser`` is the resulting class (nothing is patched globally).
    Falls back to the plain Parser if the stdlib does not look as expected
    (and :func:`_self_check` falls back if it parses anything differently).
    """
    try:
        eol = _feedparser.NLCRE_eol
        if not isinstance(eol, re.Pattern) or eol.pattern != r"(\r\n|\r|\n)\Z":
            return Parser
        base = _feedparser.FeedParser
        fp_namespace = dict(vars(_feedparser))
        fp_namespace["NLCRE_eol"] = _TailEol(eol)
        fp_namespace["BufferedSubFile"] = _LineBuffer
        fp_namespace["re"] = types.SimpleNamespace(compile=_compile_for_feedparser, escape=re.escape)
        feed_parser = type(
            "_FeedParser",
            (base,),
            {name: _rebind(getattr(base, name), fp_namespace) for name in ("__init__", "_parsegen", "_parse_headers")},
        )
        parser_namespace = dict(vars(_email_parser))
        parser_namespace["FeedParser"] = feed_parser
        return type("_Parser", (Parser,), {"parse": _rebind(Parser.parse, parser_namespace)})
    except Exception:  # pragma: no cover - unexpected stdlib layout
        return Parser


_Parser = _make_parser_class()


def _parse_bytes(data: bytes) -> Message:
    """``BytesParser(policy=policy.default).parsebytes(data)``, faster.

    The same BytesParser.parsebytes, with :data:`_PARSE_POLICY` and a
    :data:`_Parser` underneath.
    """
    parser = BytesParser(policy=_PARSE_POLICY)
    parser.parser = _Parser(policy=_PARSE_POLICY)
    return parser.parsebytes(data)


# --------------------------------------------------------------------------
# MIME parts
# --------------------------------------------------------------------------

_DEFECT_TEXT = {
    "NoBoundaryInMultipartDefect": "multipart without boundary parameter",
    "StartBoundaryNotFoundDefect": "multipart boundary never found",
    "CloseBoundaryNotFoundDefect": "multipart closing boundary missing",
    "FirstHeaderLineIsContinuationDefect": "first header line is a continuation line",
    "MisplacedEnvelopeHeaderDefect": "misplaced envelope 'From ' line",
    "MissingHeaderBodySeparatorDefect": "missing blank line between header and body",
    "MultipartInvariantViolationDefect": "multipart content type but no subparts",
    "InvalidMultipartContentTransferEncodingDefect": "invalid Content-Transfer-Encoding on a multipart",
    "UndecodableBytesDefect": "undecodable bytes",
    "InvalidBase64PaddingDefect": "bad base64 padding",
    "InvalidBase64CharactersDefect": "invalid base64 characters",
    "InvalidBase64LengthDefect": "invalid base64 length",
}

_UU_CTES = {"x-uuencode", "uuencode", "uue", "x-uue"}
_IDENTITY_CTES = {"", "7bit", "8bit", "binary", "7-bit", "8-bit", "none", "text", "plain"}


class _PartCache:
    """Per-part memo of first raw header values and the content type."""

    __slots__ = ("headers", "count", "raw", "ctype")

    def __init__(self, headers: list[tuple[str, str]]):
        self.headers = headers
        self.count = len(headers)
        raw: dict[str, str] = {}
        for key, value in headers:
            lname = str(key).strip().lower()
            if lname not in raw:
                raw[lname] = value if isinstance(value, str) else str(value)
        self.raw = raw
        self.ctype: str | None = None


def _part_cache(part: Message) -> _PartCache:
    """The memo of ``part``, rebuilt if its header list changed."""
    cache = part.__dict__.get("_vmk_cache")
    headers = part._headers
    if cache is None or cache.headers is not headers or cache.count != len(headers):
        cache = _PartCache(headers)
        part.__dict__["_vmk_cache"] = cache
    return cache


def _raw_get(part: Message, name: str) -> str | None:
    """First raw value of header ``name`` in ``part`` (never raises)."""
    try:
        return _part_cache(part).raw.get(name.lower())
    except Exception:
        pass
    try:
        lname = name.lower()
        for key, value in part.raw_items():
            if str(key).strip().lower() == lname:
                return value if isinstance(value, str) else str(value)
    except Exception:
        pass
    return None


def _part_content_type(part: Message) -> str:
    """Lowercased ``maintype/subtype`` of a part; defaults like the email package."""
    try:
        cache = _part_cache(part)
    except Exception:
        return _part_content_type_uncached(part)
    if cache.ctype is None:
        cache.ctype = _part_content_type_uncached(part)
    return cache.ctype


def _part_content_type_uncached(part: Message) -> str:
    raw = _raw_get(part, "content-type")
    if raw is None or not _CTYPE.match(_unfold(raw)):
        return _safe(lambda: _normalize_content_type(part.get_default_type()), "text/plain")
    return _normalize_content_type(raw)


def _part_charset(part: Message) -> str | None:
    try:
        cs = part.get_content_charset()
        if cs:
            return str(cs)
    except Exception:
        pass
    raw = _raw_get(part, "content-type")
    if raw:
        m = _CHARSET_PARAM.search(_fix_surrogates(_unfold(raw)))
        if m:
            return m.group(1)
    return None


def _part_disposition(part: Message) -> str | None:
    raw = _raw_get(part, "content-disposition")
    if raw is None:
        return None
    try:
        value = part.get_content_disposition()
        if value:
            m = re.match(r"\s*([A-Za-z-]+)", str(value))
            if m:
                return m.group(1).lower()
    except Exception:
        pass
    m = re.match(r"\s*([A-Za-z-]+)", _unfold(raw))
    return m.group(1).lower() if m else None


def _raw_param(raw: str | None, name: str) -> str | None:
    """Plain (non RFC 2231) parameter ``name`` from a raw header value."""
    if not raw:
        return None
    text = _unfold(raw)
    m = re.search(
        r'(?:^|[;\s])%s\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))' % re.escape(name),
        text,
        re.I,
    )
    if not m:
        return None
    value = m.group(1) if m.group(1) is not None else m.group(2)
    value = (value or "").strip()
    return value or None


def _part_filename(part: Message, hint: str | None) -> str | None:
    """Decoded filename of a part (RFC 2231 and RFC 2047), ``None`` if none."""
    raw_disp = _raw_get(part, "content-disposition")
    raw_type = _raw_get(part, "content-type")
    raw_name = _raw_param(raw_disp, "filename") or _raw_param(raw_type, "name")
    if raw_name is not None and _SURROGATE_RUN.search(raw_name):
        # Raw 8-bit bytes: the email package would turn them into U+FFFD.
        part_cs = _lookup_charset(_normalize_charset_label(_part_charset(part)) or "ascii")
        name = raw_name
        hint = part_cs if part_cs not in (None, "ascii", "utf-8") else hint
        raw_name = None
    else:
        name = _safe(part.get_filename, None)
        if name is not None and not isinstance(name, str):
            name = _safe(lambda: str(name), None)
    if raw_name is not None:
        if name is None:
            name = raw_name
        elif "=?" not in name and len(raw_name) > len(name) and raw_name.startswith(name) and "=?" not in raw_name:
            # unquoted value with spaces: "name=This is a test.txt"
            name = raw_name
    if name is None:
        return None
    name = _fix_surrogates(name, hint)
    if "=?" in name:
        name = _decode_words(_unfold(name))[0]
    name = _CTRL.sub(" ", name).strip().strip('"').strip()
    return name or None


def _is_text_subtype(ctype: str) -> bool:
    return ctype in ("text/plain", "text/html")


def _transfer_encoding(part: Message) -> str:
    raw = _raw_get(part, "content-transfer-encoding")
    if raw is None:
        return ""
    text = _fix_surrogates(_unfold(raw)).strip()
    if not text:
        return ""
    m = re.match(r"([A-Za-z0-9_.-]+)", text)
    return m.group(1).lower() if m else text[:40]


def _uu_decode(data: bytes) -> tuple[bytes, bool]:
    """Decode a uuencoded payload (``begin``/``end`` lines optional)."""
    out = []
    ok = True
    lines = re.split(rb"\r\n|\r|\n", data)
    started = not any(line.startswith(b"begin ") for line in lines)
    for line in lines:
        if not started:
            started = line.startswith(b"begin ")
            continue
        stripped = line.strip()
        if stripped == b"end":
            break
        if not stripped or stripped == b"`":
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            try:
                nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                out.append(binascii.a2b_uu(line[:nbytes]))
            except Exception:
                ok = False
    return b"".join(out), ok


_BAD_QP_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|\r?\n|\r|[ \t]*$)", re.M)


def _payload_bytes(part: Message, where: str, defects: list[str]) -> bytes:
    """Decoded bytes of a leaf part; broken encodings are decoded best-effort."""
    return _decode_payload(part, where, defects)[0]


#: Attachments at least this big get a ``source`` (see :class:`Attachment`); smaller ones are cheap to copy.
LOCATE_MIN_BYTES = 1024


def _decode_payload(part: Message, where: str, defects: list[str]) -> tuple[bytes, bytes, str | None]:
    """(decoded bytes, encoded bytes as found in the message, rebuild kind).

    The kind is ``"identity"`` when the decoded bytes are the encoded ones, ``"base64"`` when the
    encoded bytes are strict base64 whose only whitespace is CR/LF, else ``None``.
    """
    # Message.get_payload() (without decode) turns raw 8-bit bytes into U+FFFD
    # using the declared charset, so read the stored payload directly.
    payload = getattr(part, "_payload", None)
    if payload is None:
        payload = part.get_payload()
    if isinstance(payload, list):  # not a leaf; callers handle message/*
        return b"", b"", None
    if isinstance(payload, (bytes, bytearray)):
        raw = bytes(payload)
    else:
        raw = str(payload or "").encode("utf-8", "surrogateescape")
    cte = _transfer_encoding(part)
    if cte in _IDENTITY_CTES:
        return raw, raw, "identity"
    if cte == "base64":
        data, clean = _b64decode_lenient(raw)
        if not clean:
            defects.append(f"{where}: broken base64; decoded best-effort")
            return data, raw, None
        strict = len(raw) - raw.count(b"\r") - raw.count(b"\n") == len(raw.translate(None, _ASCII_WHITESPACE))
        return data, raw, "base64" if strict else None
    if cte in ("quoted-printable", "quotedprintable", "qp"):
        if _BAD_QP_ESCAPE.search(raw):
            defects.append(f"{where}: invalid quoted-printable; decoded best-effort")
        return quopri.decodestring(raw), raw, None
    if cte in _UU_CTES:
        data, ok = _uu_decode(raw)
        if not ok:
            defects.append(f"{where}: broken uuencode; decoded best-effort")
        return data, raw, None
    defects.append(f"{where}: unknown Content-Transfer-Encoding {cte!r}; content kept undecoded")
    return raw, raw, None


def _locate(data: bytes | None, encoded: bytes, kind: str | None) -> tuple[int, int, str] | None:
    """Where ``encoded`` lies in the raw message ``data`` (see :attr:`Attachment.source`)."""
    if data is None or kind is None or len(encoded) < LOCATE_MIN_BYTES:
        return None
    pos = data.find(encoded)
    return (pos, len(encoded), kind) if pos >= 0 else None


_GEN_POLICY = _policy.default.clone(refold_source="none", cte_type="8bit", max_line_length=None)


def _serialize(msg: Message, linesep: str) -> bytes:
    """Bytes of an (embedded) message, as close to the original as possible.

    Headers are written back unfolded-as-found (no refolding), 8-bit bytes
    are kept, line endings become ``linesep``.  Raises only if every
    serializer fails (e.g. RecursionError on absurd nesting).
    """
    try:
        buf = io.BytesIO()
        BytesGenerator(buf, mangle_from_=False, maxheaderlen=0, policy=_GEN_POLICY.clone(linesep=linesep)).flatten(msg)
        return buf.getvalue()
    except Exception:
        pass
    try:
        return msg.as_bytes(policy=_policy.compat32.clone(linesep=linesep))
    except Exception:
        pass
    return str(msg).encode("utf-8", "surrogateescape")


def _message_part_bytes(part: Message, linesep: str, where: str, defects: list[str]) -> bytes:
    """Content of a ``message/*`` part: the embedded message(s) as bytes."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _payload_bytes(part, where, defects)
    try:
        data = b"".join(_serialize(sub, linesep) for sub in payload if isinstance(sub, Message))
    except Exception as exc:
        defects.append(f"{where}: embedded message could not be serialized ({type(exc).__name__}); content empty")
        return b""
    cte = _transfer_encoding(part)
    if cte == "base64":  # forbidden for message/rfc822 but seen in the wild
        data, _ = _b64decode_lenient(data)
        defects.append(f"{where}: base64-encoded message part; decoded")
    elif cte in ("quoted-printable", "quotedprintable"):
        data = quopri.decodestring(data)
        defects.append(f"{where}: quoted-printable message part; decoded")
    return data


def _iter_parts(root: Message) -> Iterable[tuple[Message, str, Message | None]]:
    """Depth-first pre-order walk without recursion: ``(part, path, parent)``.

    Does not descend into ``message/*`` parts (their content is one
    attachment).  Paths follow IMAP part numbering ("" for the root).
    """
    stack: list[tuple[Message, str, Message | None]] = [(root, "", None)]
    while stack:
        part, path, parent = stack.pop()
        yield part, path, parent
        if _part_content_type(part).startswith("message/"):
            continue
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            for i in range(len(children) - 1, -1, -1):
                child_path = f"{path}.{i + 1}" if path else str(i + 1)
                stack.append((children[i], child_path, part))


def _find_body(root: Message, nodes: list[tuple[Message, str, Message | None]], subtype: str) -> Message | None:
    """``root.get_body((subtype,))``; if that finds nothing (or raises), the
    first ``text/<subtype>`` leaf outside embedded messages that has neither a
    filename nor an ``attachment`` disposition (e.g. MHTML whose
    multipart/related starts with an image)."""
    try:
        body = root.get_body(preferencelist=(subtype,))
        if body is not None:
            return body
    except Exception:
        pass
    want = f"text/{subtype}"
    for part, _path, _parent in nodes:
        if _part_content_type(part) == want and _part_disposition(part) != "attachment":
            if _safe(part.get_filename, None) is None and not part.is_multipart():
                return part
    return None


# --------------------------------------------------------------------------
# parse_message
# --------------------------------------------------------------------------


@dataclass
class _Builder:
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    from_: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    parse_error: str | None = None
    defects: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.parse_error = message if self.parse_error is None else f"{self.parse_error}; {message}"

    def build(self) -> ParsedMessage:
        return ParsedMessage(
            message_id=self.message_id,
            in_reply_to=self.in_reply_to,
            references=list(self.references),
            from_=self.from_,
            to=list(self.to),
            cc=list(self.cc),
            reply_to=list(self.reply_to),
            subject=self.subject,
            date=self.date,
            text=self.text,
            html=self.html,
            attachments=list(self.attachments),
            parse_error=self.parse_error,
            defects=_dedupe(_fix_surrogates(d) for d in self.defects),
        )


def _fill_headers(b: _Builder, hdrs: _Headers) -> None:
    d = b.defects
    b.message_id = hdrs.message_id()
    irt = hdrs.first("in-reply-to")
    ids = _extract_ids(irt) if irt else []
    b.in_reply_to = ids[0] if ids else None
    b.references = _dedupe(i for raw in hdrs.all("references") for i in _extract_ids(raw))
    from_list = hdrs.addresses("From", d)
    b.from_ = from_list[0] if from_list else None
    b.to = hdrs.addresses("To", d)
    b.cc = hdrs.addresses("Cc", d)
    b.reply_to = hdrs.addresses("Reply-To", d)
    b.subject = hdrs.subject(d)
    b.date = hdrs.date(d)


def _decode_part_text(
    part: Message, ctype: str, where: str, defects: list[str], parents: dict[int, Message | None] | None = None
) -> str:
    data = _payload_bytes(part, where, defects)
    charset = _part_charset(part)
    if charset is None and parents and not data.isascii():
        # No charset on the part: some mailers put it on the enclosing multipart.
        parent = parents.get(id(part))
        while parent is not None and charset is None:
            raw = _raw_get(parent, "content-type")
            m = _CHARSET_PARAM.search(_fix_surrogates(_unfold(raw))) if raw else None
            charset = m.group(1) if m else None
            parent = parents.get(id(parent))
    label = _normalize_charset_label(charset)
    if ctype == "text/html" and (label is None or _lookup_charset(label) is None):
        sniffed = _sniff_html_charset(data)
        if sniffed:
            charset = sniffed
    text, defect = decode_text(data, charset)
    if defect:
        defects.append(f"{where}: {defect}")
    return text


def _where(path: str) -> str:
    return f"part {path}" if path else "message"


def _fill_body(b: _Builder, msg: Message, hint: str | None, linesep: str, data: bytes | None = None) -> None:
    nodes = list(_iter_parts(msg))
    parents = {id(part): parent for part, _path, parent in nodes}
    plain = _find_body(msg, nodes, "plain")
    html = _find_body(msg, nodes, "html")
    if plain is not None:
        b.text = _decode_part_text(plain, "text/plain", "text body", b.defects, parents)
    if html is not None:
        b.html = _decode_part_text(html, "text/html", "html body", b.defects, parents)

    for part, path, parent in nodes:
        where = _where(path)
        try:
            for defect in getattr(part, "defects", []) or []:
                name = type(defect).__name__
                b.defects.append(f"{where}: {_DEFECT_TEXT.get(name, name)}")
            if part is plain or part is html:
                continue
            ctype = _part_content_type(part)
            is_message = ctype.startswith("message/")
            if part.is_multipart() and not is_message:
                continue  # container; its children are visited
            source = None
            if ctype.startswith("multipart/"):
                # Multipart without a usable boundary: the body is text.
                content = _payload_bytes(part, where, b.defects)
                b.defects.append(f"{where}: {ctype} without usable boundary; body kept as text")
                if b.text is None:
                    text, defect = decode_text(content, _part_charset(part))
                    if defect:
                        b.defects.append(f"{where}: {defect}")
                    b.text = text
                    continue
                ctype = "text/plain"
            elif is_message:
                content = _message_part_bytes(part, linesep, where, b.defects)
            else:
                content, encoded, kind = _decode_payload(part, where, b.defects)
                source = _locate(data, encoded, kind)
            filename = _part_filename(part, hint)
            disposition = _part_disposition(part)
            content_id = normalize_message_id(_raw_get(part, "content-id"))
            if _is_text_subtype(ctype) and filename is None and disposition != "attachment":
                parent_type = _part_content_type(parent) if parent is not None else ""
                if parent_type == "multipart/alternative":
                    continue  # an alternative body beyond the chosen ones
            b.attachments.append(
                Attachment(
                    index=len(b.attachments),
                    filename=filename,
                    content_type=ctype,
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    content=content,
                    is_inline=disposition == "inline" or (content_id is not None and disposition != "attachment"),
                    content_id=content_id,
                    source=source,
                )
            )
        except Exception as exc:
            b.defects.append(f"{where}: could not be extracted ({type(exc).__name__}: {exc})"[:300])


def _parse_fallback(b: _Builder, raw: bytes) -> None:
    """Used when the email package could not parse the structure at all."""
    block, body = split_header_block(raw)
    hdrs = _Headers(_header_items(block))
    try:
        _fill_headers(b, hdrs)
    except Exception as exc:
        b.defects.append(f"header extraction failed ({type(exc).__name__})")
    charset = None
    ctype = hdrs.first("content-type")
    if ctype:
        m = _CHARSET_PARAM.search(_fix_surrogates(ctype))
        charset = m.group(1) if m else None
    text, defect = decode_text(body, charset)
    if defect:
        b.defects.append(f"message: {defect}")
    b.text = text


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse one raw RFC 5322 / MIME message; never raises.

    Headers are decoded (RFC 2047, raw 8-bit bytes, broken address lists);
    ``text`` / ``html`` are the ``text/plain`` / ``text/html`` body parts
    chosen by ``EmailMessage.get_body()``; every other leaf part that is an
    attachment, inline resource, embedded message or non-body part becomes an
    :class:`Attachment` (alternative ``text/plain``/``text/html`` bodies
    beyond the chosen ones are skipped unless they carry a filename or an
    ``attachment`` disposition).  A multipart without a usable boundary is
    kept as text.

    Non-fatal problems are listed in ``defects``.  ``parse_error`` is set
    only when the structure could not be parsed (or an extraction stage
    failed as a whole); the result then carries every field that could still
    be extracted.
    """
    b = _Builder()
    try:
        data = _coerce_bytes(raw)
    except Exception as exc:
        b.error(f"input is not bytes ({type(exc).__name__})")
        return b.build()
    try:
        msg = _parse_bytes(data)
    except Exception as exc:
        b.error(f"MIME structure could not be parsed ({type(exc).__name__}: {exc})"[:300])
        try:
            _parse_fallback(b, data)
        except Exception as exc2:  # pragma: no cover - defensive
            b.error(f"fallback extraction failed ({type(exc2).__name__})")
        return b.build()

    if _safe(lambda: _needs_header_repair(msg), False):
        try:
            block, body = split_header_block(data)
            fixed = _repair_header_block(block)
            if fixed is not None:
                separator = data[len(block) : len(data) - len(body)]
                msg = _parse_bytes(fixed + separator + body)
                b.defects.append("message: malformed header lines repaired before parsing")
        except Exception:
            pass
    hdrs = _Headers(_safe(lambda: list(msg.raw_items()), []))
    if not hdrs.values:
        b.defects.append("message: no header fields")
    try:
        _fill_headers(b, hdrs)
    except Exception as exc:
        b.error(f"header extraction failed ({type(exc).__name__}: {exc})"[:300])
    linesep = "\r\n" if b"\r\n" in data[:65536] else "\n"
    try:
        _fill_body(b, msg, hdrs.hint, linesep, data)
    except Exception as exc:
        b.error(f"body extraction failed ({type(exc).__name__}: {exc})"[:300])
    return b.build()


# --------------------------------------------------------------------------
# Import-time self-check of the fast paths
# --------------------------------------------------------------------------
#
# The fast paths above reproduce what this Python's email package does.  They
# were verified against Python 3.11-3.13 by differential fuzzing; this check
# guards against a future stdlib that behaves differently: it compares every
# fast path with the email package on a set of tricky samples and, on any
# difference (or error), falls back to the plain email package code paths.

_CHECK_CONTENT_TYPES = (
    "text/plain",
    "Text/HTML; Charset=\"UTF-8\"; format=flowed",
    "multipart/mixed;\r\n\tboundary=\"----=_Part_1_2.3\"",
    "multipart/mixed; boundary=----=_Part_1_2.3",
    "text/plain;charset=utf-8;",
    "text/plain ; charset = utf-8 ; name=\"a b.txt\"",
    "application/pdf; name*=utf-8''R%C3%A9sum%C3%A9%20%E2%80%93.pdf",
    "application/pdf; name*=bogus''%E9t%E9.pdf",
    "text/plain; a=\"\"; b=c",
    "text/plain; x=a=b",
    "text/plain; charset=utf-8; charset=latin1",
)
_CHECK_DISPOSITIONS = (
    "attachment",
    "Inline",
    "attachment; filename=\"Rooming list 12345.pdf\"",
    "attachment;filename=x.txt; size=123",
    "attachment; filename*=utf-8''%F0%9F%8C%B4%20x.jpg",
    "attachment filename=x",
)
_CHECK_UNSTRUCTURED = (
    "Booking 12345 rooming list",
    "=?utf-8?q?Buchungsbest=C3=A4tigung?= 12345 =?utf-8?b?4oCTIFppbW1lcmxpc3Rl?=",
    "=?utf-8?B?w7w=?= =?utf-8?Q?ber?=\tx",
    "=?utf-8?q?=C3=A9t=C3=A9?=",
    "=?iso-8859-1?q?caf=E9?=  and =?x-unknown?q?abc?=",
    "Re:  =?utf-8?q?a?=  ",
)
_CHECK_ADDRESSES = (
    "Anna Berg <anna@tour.example>",
    "\"Berg, Anna\" <anna@tour.example>, bob@x.example",
    "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <j@x.example>",
    "Elena =?utf-8?q?=C3=98degaard?= <e@x.example>",
    "J. Doe <j@d.example>, <x@y.example>",
    "=?us-ascii?q?_?= \"x\" <a@b.example>",
)
_CHECK_DATES = (
    "Mon, 06 Jan 2025 08:33:00 +0100",
    "6 Jan 2025 08:33 -0000",
    "Thu, 01 Jan 1970 00:30:00 +0100",
    "Sat, 29 Feb 2025 10:00:00 +0000",
)
_CHECK_HEADER_BLOCKS = (
    b"From: a@b\r\nTo: c@d,\r\n e@f\r\nSubject: x\r\n",
    b"X-A:\r\nX-B:  v  \r\n\t\r\nX-C:v\xe9",
    b"Subject: a\nX:  b\n \n",
)
_CHECK_MESSAGES = (
    b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"b(1)+_,-./:=?\"\r\n\r\npreamble\r\n"
    b"--b(1)+_,-./:=?\r\n--b(1)+_,-./:=?  \r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"
    b"--inner--\r\n\r\n--b(1)+_,-./:=?\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n"
    b"--b(1)+_,-./:=?\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + b"QUJD\r\n" * 1400 + b"--b(1)+_,-./:=?--\r\nepilogue\r\n",
    b"From nobody Mon Jan  1 00:00:00 2025\n Continued: first\nContent-Type: multipart/digest; boundary=d\n\n"
    b"--d\n\nSubject: digest part\n\nx\n--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
    b"Final-Recipient: rfc822; a@b\nAction: failed\n--d\nContent-Type: text/plain\n\nno closing boundary\r",
    b"Content-Type: multipart/mixed; boundary=xx\r\r\rno start boundary\r\r",
    b"Content-Type: multipart/mixed\n\nno boundary parameter\n",
    b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\nContent-Type: text/plain\n\nx\n----\n",
    b"Subject: x\nthis is not a header\n\nbody " + b"y" * 8153 + b"\r\n--b\r\n",
)


def _message_tree(msg: Message) -> tuple[object, ...]:
    payload = msg._payload
    if isinstance(payload, list):
        payload = tuple(_message_tree(part) for part in payload)
    return (
        msg.get_unixfrom(),
        tuple(msg._headers),
        msg.get_default_type(),
        msg.preamble,
        msg.epilogue,
        tuple(type(d).__name__ for d in msg.defects),
        payload,
        msg.get_content_type(),
        msg.get_content_disposition(),
        msg.get_filename(),
        msg.get_content_charset(),
        msg.get_boundary(),
        msg.is_attachment(),
    )


def _fast_paths_agree() -> bool:
    """True if every header fast path gives what the email package gives."""
    default = _policy.default
    for name, values in (("Content-Type", _CHECK_CONTENT_TYPES), ("Content-Disposition", _CHECK_DISPOSITIONS)):
        for value in values:
            header = default.header_fetch_parse(name, value)
            if _STRICT_HEADERS[name.lower()](value) not in (None, str(header)):
                return False
    for value in _CHECK_UNSTRUCTURED:
        if _fast_unstructured(value) not in (None, str(default.header_fetch_parse("Subject", value))):
            return False
    for value in _CHECK_ADDRESSES:
        header = default.header_fetch_parse("To", value)
        expected = [(a.username + ("@" + a.domain if a.domain else ""), a.display_name or "") for a in header.addresses]
        if _fast_mailboxes(value) not in (None, expected):
            return False
    for value in _CHECK_DATES:
        fast = _strict_date(value)
        if fast is not None and fast != parsedate_to_datetime(value).astimezone(timezone.utc):
            return False
    for block in _CHECK_HEADER_BLOCKS:
        fast = _fast_header_items(block)
        if fast is not None and fast != list(BytesHeaderParser(policy=_policy.compat32).parsebytes(block).raw_items()):
            return False
    return True


def _parser_agrees(parser_class: type[Parser]) -> bool:
    """True if ``parser_class`` builds the same trees as the stock BytesParser."""
    for raw in _CHECK_MESSAGES:
        fast = BytesParser(policy=_PARSE_POLICY)
        fast.parser = parser_class(policy=_PARSE_POLICY)
        stock = BytesParser(policy=_policy.default)
        if _message_tree(fast.parsebytes(raw)) != _message_tree(stock.parsebytes(raw)):
            return False
    return True


def _self_check() -> None:
    global _FAST_PATHS, _Parser
    try:
        ok = _fast_paths_agree()
    except Exception:
        ok = False
    if not ok:
        _FAST_PATHS = False
    try:
        ok = _Parser is Parser or _parser_agrees(_Parser)
    except Exception:
        ok = False
    if not ok:
        _Parser = Parser


_self_check()
