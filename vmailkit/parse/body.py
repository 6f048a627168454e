"""``parse_message`` of :mod:`vmailkit.parse`.

The result builder (``_Builder``), filling the header fields and the body
(``_fill_body``: text / html bodies and attachments), the fallback used when
the MIME structure cannot be parsed at all, and :func:`parse_message`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from .charsets import (
    _dedupe,
    _fix_surrogates,
    _lookup_charset,
    _normalize_charset_label,
    _safe,
    _sniff_html_charset,
    _unfold,
    decode_text,
)
from .headers import (
    _CHARSET_PARAM,
    _coerce_bytes,
    _extract_ids,
    _header_items,
    _Headers,
    _needs_header_repair,
    _repair_header_block,
    normalize_message_id,
    split_header_block,
)
from .mime import _parse_bytes
from .model import Address, Attachment, ParsedMessage
from .parts import (
    _DEFECT_TEXT,
    _decode_payload,
    _find_body,
    _is_text_subtype,
    _iter_parts,
    _locate,
    _message_part_bytes,
    _part_charset,
    _part_content_type,
    _part_disposition,
    _part_filename,
    _payload_bytes,
    _raw_get,
)


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
