"""RFC 2047 encoded-word decoding of :mod:`vmailkit.parse`.

The tolerant decoder used whenever ``email.policy.default`` cannot be used
for a header value: lenient base64 (also used for base64 payloads) and "Q"
decoding, :func:`_decode_words` (joins adjacent encoded-words before
decoding, decodes unknown charsets best-effort) and :func:`_header_text`
(raw header value -> Unicode).
"""

from __future__ import annotations

import binascii
import re

from .charsets import _fix_surrogates, _unfold, decode_text


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
