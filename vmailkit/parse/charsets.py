"""Charsets, ``decode_text`` and the small text helpers of :mod:`vmailkit.parse`.

Holds the shared helpers (``_safe``, ``_dedupe``, unfolding, the header size
limits), the surrogate helpers that turn surrogate-escaped 8-bit bytes back
into valid Unicode (``_fix_surrogates``, ``_has_surrogates``,
``_bytes_to_str_fallback``), the charset label table and lookup
(WHATWG-style superset aliases), :func:`decode_text` and the HTML
``<meta charset>`` sniffer.
"""

from __future__ import annotations

import codecs
import functools
import re
from typing import Callable, Iterable, TypeVar

_T = TypeVar("_T")


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
