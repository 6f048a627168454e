"""Header decoding of :mod:`vmailkit.parse`.

Decoding of unstructured values and address lists (memoised, with the exact
fast paths of :mod:`.fastpaths` and tolerant fallbacks), Message-IDs and
dates, the header block access shared by ``parse_headers`` and
``parse_message`` (``_Headers``, header block splitting and repair) and the
public header functions :func:`split_header_block`,
:func:`normalize_message_id` and :func:`parse_headers`.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta, timezone
from email import policy as _policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Iterable

from . import fastpaths
from .charsets import (
    _ANY_SURROGATE,
    _MAX_CACHED_HEADER,
    _MAX_POLICY_HEADER,
    _SURROGATE_RUN,
    _WS,
    _fix_surrogates,
    _lookup_charset,
    _normalize_charset_label,
    _safe,
    _unfold,
)
from .fastpaths import _ADJACENT_WORDS, _policy_mailboxes, _policy_unstructured
from .model import Address, HeaderSummary
from .rfc2047 import _ENCODED_WORD, _decode_words, _header_text


# --------------------------------------------------------------------------
# Unstructured values and address lists
# --------------------------------------------------------------------------
#
# The exact fast paths (``fastpaths._FAST_PATHS``, read from that module so
# the self-check's setting is seen here) are tried first; anything else goes
# through policy.default and, failing that, the tolerant decoders.


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
    dt = _strict_date(text) if fastpaths._FAST_PATHS else None
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
        fast = _fast_header_items(block) if fastpaths._FAST_PATHS else None
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
