"""A small parser for IMAP FETCH responses as returned by :mod:`imaplib`.

imaplib hands a FETCH response over as a flat list: for each message, zero or more
``(text_ending_in_{n}, literal_bytes)`` tuples followed by the closing ``bytes`` line. This module
turns it into one dict per message, with nested lists for parenthesised values (BODYSTRUCTURE),
``bytes`` for strings and literals, ``None`` for NIL.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

_TOKEN = re.compile(
    rb'\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:\\.|[^"\\])*)"'
    rb"|~?\{(?P<literal>\d+)\}\s*$"  # a literal, or an RFC 3516 literal8 ~{n}
    rb"|(?P<atom>[^\s()\"\[\]{]+(?:\[[^\]]*\](?:<\d+>)?)?))",
    re.S,
)
_UNESCAPE = re.compile(rb"\\(.)", re.S)

_LITERAL = object()


class FetchParseError(ValueError):
    """The server's FETCH response could not be understood."""


def _tokens(text: bytes, literal: bytes | None) -> Iterator[Any]:
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == b"":
                return
            raise FetchParseError(f"unexpected data in FETCH response near {text[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "open":
            yield "("
        elif kind == "close":
            yield ")"
        elif kind == "quoted":
            yield _UNESCAPE.sub(rb"\1", m.group("quoted"))
        elif kind == "literal":
            if literal is None:
                raise FetchParseError("literal announced but not delivered")
            if len(literal) != int(m.group("literal")):
                raise FetchParseError(f"literal of {int(m.group('literal'))} bytes cut short at {len(literal)}")
            yield (_LITERAL, literal)
            literal = None
        else:
            atom = m.group("atom")
            yield None if atom.upper() == b"NIL" else atom


def _build(tokens: Iterator[Any]) -> list[Any]:
    """Nest tokens into lists until the matching ')'."""
    out: list[Any] = []
    for tok in tokens:
        if tok == "(":
            out.append(_build(tokens))
        elif tok == ")":
            return out
        elif isinstance(tok, tuple):
            out.append(tok[1])
        else:
            out.append(tok)
    return out


def _parse_one(parts: list[tuple[bytes, bytes | None]]) -> dict[str, Any]:
    def stream() -> Iterator[Any]:
        for text, literal in parts:
            yield from _tokens(text, literal)

    tokens = stream()
    seq = next(tokens, None)
    if not isinstance(seq, bytes) or not seq.isdigit():
        raise FetchParseError(f"FETCH response without sequence number: {parts[0][0][:60]!r}")
    items = _build(tokens)
    if len(items) != 1 or not isinstance(items[0], list):
        raise FetchParseError(f"malformed FETCH response for message {int(seq)}")
    pairs = items[0]
    result: dict[str, Any] = {"SEQ": int(seq)}
    for i in range(0, len(pairs) - 1, 2):
        key = pairs[i]
        if isinstance(key, bytes):
            result[key.decode("ascii", "replace").upper()] = pairs[i + 1]
    return result


def _messages(data: Iterable[Any], *, partial: bool = False) -> Iterator[list[tuple[bytes, bytes | None]]]:
    """imaplib's flat FETCH list cut into one list of (text, literal) parts per message.

    A trailing message whose closing line never came (the connection broke) is yielded only with
    ``partial`` (for the caller to fail on), else left out.
    """
    parts: list[tuple[bytes, bytes | None]] = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            parts.append((item[0], item[1]))
            continue
        parts.append((item, None))
        yield parts
        parts = []
    if parts and partial:
        yield parts


_ANY_UID = re.compile(rb"\bUID\s+(\d+)", re.I)

NIL_BODY = "the server sent no content for it (NIL); it may be damaged on the server"
NO_BODY = "the server answered without its content"
UNREADABLE = "the server's answer for it could not be understood"
TWICE = "the server sent it twice with different content"
NOT_SENT = "the server did not send it"


def read_bodies(data: Iterable[Any], wanted: set[int]) -> tuple[dict[int, bytes], dict[int, str]]:
    """The ``BODY[]`` of each wanted UID in a ``UID FETCH (UID BODY.PEEK[])`` answer, and what went wrong.

    Returns (bodies by UID, reasons by UID). Only complete, understood answers become bodies: an
    RFC 3516 literal8, items in any order and FETCH responses the server adds on its own (flag
    updates without a body, UIDs not asked for) are handled; a NIL or missing body, a literal cut
    short, an answer the parser does not understand or two different bodies for one UID give that
    UID a reason instead. A UID of ``wanted`` in neither result was not answered at all.
    """
    bodies: dict[int, bytes] = {}
    problems: dict[int, str] = {}
    for parts in _messages(data):
        try:
            item = _parse_one(parts)
        except FetchParseError:
            found = _ANY_UID.search(b" ".join(t for t, _ in parts))
            if found and int(found.group(1)) in wanted:
                problems[int(found.group(1))] = UNREADABLE
            continue
        uid = number(item.get("UID"))
        if uid is None or uid not in wanted:
            continue  # an unsolicited update (FLAGS), or a message not asked for: never stored
        if "BODY[]" not in item:
            if not any(k.startswith(("BODY[", "BINARY[", "RFC822")) for k in item):
                continue  # e.g. a FLAGS update that names the UID
            problems.setdefault(uid, NO_BODY)
            continue
        body = item["BODY[]"]
        if body is None:
            problems[uid] = NIL_BODY
        elif not isinstance(body, bytes):
            problems[uid] = UNREADABLE
        elif uid in bodies and bodies[uid] != body:
            problems[uid] = TWICE
        else:
            bodies[uid] = body
    for uid in problems:
        bodies.pop(uid, None)
    return bodies, problems


def number(value: object) -> int | None:
    """A numeric FETCH item (``UID``, ``RFC822.SIZE``) as an int; None when absent or not a number."""
    if isinstance(value, (bytes, str)) and value.isdigit():
        return int(value)
    return None


def parse_fetch(data: Iterable[Any]) -> list[dict[str, Any]]:
    """Parse imaplib's FETCH data into one dict per message.

    Keys are upper-case item names as sent (``UID``, ``RFC822.SIZE``, ``FLAGS``, ``BODYSTRUCTURE``,
    ``BODY[]``, ``BODY[HEADER.FIELDS (FROM SUBJECT)]``). Raises :class:`FetchParseError`.
    """
    return [_parse_one(parts) for parts in _messages(data, partial=True)]


def body_item(message: dict[str, Any], prefix: str = "BODY[") -> bytes | None:
    """Return the first body section value (``BODY[...]``) of a parsed message."""
    for key, value in message.items():
        if key.startswith(prefix) and isinstance(value, bytes):
            return value
    return None


def has_attachments(bodystructure: Any) -> bool:
    """True when a BODYSTRUCTURE shows an attachment.

    An attachment is a part with disposition ``attachment``, or a non-multipart part that carries a
    ``name``/``filename`` parameter (how mail programs mark files, including inline images).
    """
    if not isinstance(bodystructure, list):
        return False
    stack: list[Any] = [bodystructure]
    while stack:
        node = stack.pop()
        if not isinstance(node, list):
            continue
        if len(node) >= 2 and isinstance(node[0], bytes) and node[0].lower() == b"attachment":
            return True
        if (
            len(node) >= 2
            and len(node) % 2 == 0
            and all(isinstance(x, bytes) for x in node)
            and any(node[i].lower() in (b"name", b"filename", b"filename*", b"name*") or node[i].lower().startswith((b"filename*", b"name*")) for i in range(0, len(node), 2))
        ):
            return True
        stack.extend(x for x in node if isinstance(x, list))
    return False


def compress_uids(uids: Iterable[int]) -> str:
    """Render UIDs as an IMAP sequence set with ranges: ``[1,2,3,7]`` → ``"1:3,7"``."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("no UIDs")
    ranges: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        ranges.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    ranges.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(ranges)


_UID_RE = re.compile(rb"\bUID (\d+)")
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_ATTACH_RE = re.compile(rb'\("attachment"|"(?:file)?name(?:\*\d*\*?)?" ', re.I)
_HEADER_SECTION = b"BODY[HEADER.FIELDS"


def fast_header_items(data: Iterable[Any]) -> list[tuple[int, int, bytes, bool]] | None:
    """(UID, size, header bytes, has_attachments) per message of a header-check FETCH answer.

    A shortcut for the one FETCH shape the header check sends (UID, RFC822.SIZE, BODYSTRUCTURE,
    BODY.PEEK[HEADER.FIELDS (...)]): regular expressions over the response text instead of a full
    parse. Returns None when the answer has another shape; the caller then uses :func:`parse_fetch`.
    """
    out: list[tuple[int, int, bytes, bool]] = []
    texts: list[bytes] = []
    header: bytes | None = None
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            text, literal = item[0], item[1]
            if text.rfind(_HEADER_SECTION) != -1 and text.rstrip().endswith(b"}"):
                header = literal
            # a literal inside BODYSTRUCTURE (e.g. a file name) stands as an empty string: not needed
            texts.append(text + b' ""')
            continue
        texts.append(item)
        joined = b"".join(texts)
        prefix = joined[: joined.find(b"BODYSTRUCTURE")]  # UID and size come before the structure
        uid, size = _UID_RE.search(prefix), _SIZE_RE.search(prefix)
        if uid is None or size is None or b"BODYSTRUCTURE" not in joined:
            return None
        if header is None and b"NIL" not in joined[joined.find(_HEADER_SECTION):]:
            return None
        out.append((int(uid.group(1)), int(size.group(1)), header or b"", _ATTACH_RE.search(joined) is not None))
        texts, header = [], None
    return None if texts else out
