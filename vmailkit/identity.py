"""When two received copies are one mail.

Copies of one mail differ in the headers transport adds (Received, Delivered-To, Return-Path,
X-Original-To), so a mail's identity is its normalised Message-ID *together with* a fingerprint of
what transport does not change: the body bytes after the header block (line endings normalised) and
the Date, From and Subject header values. Without a Message-ID the fingerprint alone identifies it.
Message-IDs are not unique in the wild, so they are never trusted alone.
"""
from __future__ import annotations

import hashlib
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")
_WS = re.compile(rb"[ \t]+")
_MSGID_STRIP = re.compile(r"[\s<>]")

FINGERPRINT_HEADERS = (b"date", b"from", b"subject")


def split_raw(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line: (header block, body). No empty line: (raw, b"")."""
    m = _HEADER_END.search(raw)
    if m is None:
        return raw, b""
    return raw[: m.start()], raw[m.end():]


def raw_header_values(header_block: bytes, names: tuple[bytes, ...]) -> dict[bytes, bytes]:
    """First raw value of each header in ``names`` (lower-case bytes), unfolded and whitespace-folded."""
    unfolded = _FOLD.sub(b" ", header_block)
    found: dict[bytes, bytes] = {}
    for line in unfolded.splitlines():
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower()
        if key in names and key not in found:
            found[key] = _WS.sub(b" ", value.strip())
    return found


def normalize_message_id(value: str | None) -> str | None:
    """``" <Abc@X> "`` → ``"Abc@X"``; None for an empty or absent id."""
    if not value:
        return None
    text = _MSGID_STRIP.sub("", value)
    return text or None


def fingerprint(raw: bytes) -> str:
    """sha256 (hex) of what transport leaves alone: Date, From, Subject and the body bytes."""
    header, body = split_raw(raw)
    values = raw_header_values(header, FINGERPRINT_HEADERS)
    h = hashlib.sha256()
    for name in FINGERPRINT_HEADERS:
        h.update(name + b":" + values.get(name, b"") + b"\n")
    h.update(b"\n")
    h.update(body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    return h.hexdigest()


def message_id_of(raw: bytes) -> str | None:
    """The normalised Message-ID of ``raw`` (first one), or None."""
    header, _ = split_raw(raw)
    value = raw_header_values(header, (b"message-id",)).get(b"message-id")
    if value is None:
        return None
    return normalize_message_id(value.decode("utf-8", "replace"))


def dedup_key(message_id: str | None, fp: str) -> str:
    """The unique identity key stored in ``emails.dedup_key``."""
    return hashlib.sha256(f"{message_id or ''}\n{fp}".encode("utf-8", "surrogatepass")).hexdigest()
