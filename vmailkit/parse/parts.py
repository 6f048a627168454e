"""MIME part access and payload decoding of :mod:`vmailkit.parse`.

Per-part header access (memoised raw values, content type, charset,
disposition, filename), transfer decoding of payloads (base64,
quoted-printable, uuencode; ``_decode_payload`` / ``_locate`` for
:attr:`~vmailkit.parse.Attachment.source`), serialization of embedded
messages, the walk over the part tree and the choice of the body parts.
"""

from __future__ import annotations

import binascii
import io
import quopri
import re
from email import policy as _policy
from email.generator import BytesGenerator
from email.message import Message
from typing import Iterable

from .charsets import (
    _CTRL,
    _SURROGATE_RUN,
    _fix_surrogates,
    _lookup_charset,
    _normalize_charset_label,
    _safe,
    _unfold,
)
from .headers import _CHARSET_PARAM, _CTYPE, _normalize_content_type
from .rfc2047 import _ASCII_WHITESPACE, _b64decode_lenient, _decode_words

_WHITESPACE_BUT_LINE_BREAKS = _ASCII_WHITESPACE.translate(None, b"\r\n")


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
        # SQL removes only CR and LF before from_base64; any other whitespace means keep a copy
        only_line_breaks = len(raw.translate(None, _WHITESPACE_BUT_LINE_BREAKS)) == len(raw)
        return data, raw, "base64" if only_line_breaks else None
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
