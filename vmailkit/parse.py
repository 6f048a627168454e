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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy as _policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
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
    """

    index: int
    filename: str | None
    content_type: str
    size: int
    sha256: str
    content: bytes
    is_inline: bool
    content_id: str | None


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


def _fix_surrogates(text: str, hint: str | None = None) -> str:
    """Turn surrogate-escaped 8-bit bytes in ``text`` back into real text.

    Runs of ``\\udc80``-``\\udcff`` (what the email package produces for raw
    8-bit bytes) are decoded with :func:`_bytes_to_str_fallback`; any other
    lone surrogate becomes U+FFFD.  The result always encodes as UTF-8.
    """
    if not _ANY_SURROGATE.search(text):
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
            return _fix_surrogates(data.decode(codec)), None
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


def _b64decode_lenient(data: bytes) -> tuple[bytes, bool]:
    """Decode base64 ignoring junk, bad padding and mid-stream padding.

    Returns ``(decoded, clean)`` where ``clean`` is False when the input was
    not well-formed base64.
    """
    stripped = re.sub(rb"\s+", b"", data)
    try:
        if len(stripped) % 4 == 0:
            return binascii.a2b_base64(stripped, strict_mode=True), True
    except (binascii.Error, ValueError):
        pass
    out = []
    alphabet_only = re.sub(rb"[^A-Za-z0-9+/=]", b"", stripped)
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


@functools.lru_cache(maxsize=4096)
def _decode_unstructured_cached(text: str) -> tuple[str, tuple[str, ...]]:
    return _decode_unstructured_uncached(text)


def _decode_unstructured_uncached(text: str) -> tuple[str, tuple[str, ...]]:
    """Decode an unstructured header value (already Unicode, unfolded)."""
    defects: list[str] = []
    value: str | None = None
    if len(text) <= _MAX_POLICY_HEADER:
        try:
            value = str(_policy.default.header_fetch_parse("Subject", text))
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
            header = _policy.default.header_fetch_parse(name, text)
            result = []
            garbled = False
            for a in header.addresses:
                addr = a.username + ("@" + a.domain if a.domain else "")
                garbled = garbled or _policy_garbled(addr + (a.display_name or ""), text)
                made = _make_address(addr, a.display_name or "")
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


def _parse_date(raw: str) -> tuple[datetime | None, str | None]:
    """Parse a Date header value to an aware UTC datetime (or ``None``).

    Naive and ``-0000`` dates are taken as UTC.  Returns ``(date, defect)``.
    """
    text = _WS.sub(" ", _fix_surrogates(_unfold(raw))).strip()
    if not text:
        return None, "empty Date header"
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


def _header_items(block: bytes) -> list[tuple[str, str]]:
    """(name, raw value) pairs of a header block, exactly as the email package sees them.

    Applies :func:`_repair_header_block` exactly like :func:`parse_message`
    does, so both functions read the same header fields.
    """
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


def _raw_get(part: Message, name: str) -> str | None:
    """First raw value of header ``name`` in ``part`` (never raises)."""
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


def _payload_bytes(part: Message, where: str, defects: list[str]) -> bytes:
    """Decoded bytes of a leaf part; broken encodings are decoded best-effort."""
    # Message.get_payload() (without decode) turns raw 8-bit bytes into U+FFFD
    # using the declared charset, so read the stored payload directly.
    payload = getattr(part, "_payload", None)
    if payload is None:
        payload = part.get_payload()
    if isinstance(payload, list):  # not a leaf; callers handle message/*
        return b""
    if isinstance(payload, (bytes, bytearray)):
        raw = bytes(payload)
    else:
        raw = str(payload or "").encode("utf-8", "surrogateescape")
    cte = _transfer_encoding(part)
    if cte in _IDENTITY_CTES:
        return raw
    if cte == "base64":
        data, clean = _b64decode_lenient(raw)
        if not clean:
            defects.append(f"{where}: broken base64; decoded best-effort")
        return data
    if cte in ("quoted-printable", "quotedprintable", "qp"):
        if re.search(rb"=(?![0-9A-Fa-f]{2}|\r?\n|\r|[ \t]*$)", raw, re.M):
            defects.append(f"{where}: invalid quoted-printable; decoded best-effort")
        return quopri.decodestring(raw)
    if cte in _UU_CTES:
        data, ok = _uu_decode(raw)
        if not ok:
            defects.append(f"{where}: broken uuencode; decoded best-effort")
        return data
    defects.append(f"{where}: unknown Content-Transfer-Encoding {cte!r}; content kept undecoded")
    return raw


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


def _fill_body(b: _Builder, msg: Message, hint: str | None, linesep: str) -> None:
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
            else:
                content = (
                    _message_part_bytes(part, linesep, where, b.defects)
                    if is_message
                    else _payload_bytes(part, where, b.defects)
                )
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
        msg = BytesParser(policy=_policy.default).parsebytes(data)
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
                msg = BytesParser(policy=_policy.default).parsebytes(fixed + separator + body)
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
        _fill_body(b, msg, hdrs.hint, linesep)
    except Exception as exc:
        b.error(f"body extraction failed ({type(exc).__name__}: {exc})"[:300])
    return b.build()
