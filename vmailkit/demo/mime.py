"""A small, deterministic MIME writer for the demo mails (bytes exactly as a mail client writes them).

The stdlib's generator picks random multipart boundaries; the demo must produce the same bytes on
every run (the same UIDs, the same POP3 UIDLs, the same mail identities), so messages are assembled
here from parts with boundaries derived from the mail's key.
"""
from __future__ import annotations

import base64
import binascii
import struct
import zlib
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, format_datetime
from datetime import datetime
from urllib.parse import quote

CRLF = "\r\n"


@dataclass
class Part:
    """A MIME entity: header lines and an already encoded body (str of 7-bit text or bytes)."""

    headers: list[tuple[str, str]]
    body: bytes
    children: list["Part"] = field(default_factory=list)
    boundary: str | None = None

    def render(self) -> bytes:
        out = bytearray()
        for name, value in self.headers:
            out += f"{name}: {value}{CRLF}".encode("ascii")
        out += CRLF.encode()
        if self.children:
            assert self.boundary
            if self.body:
                out += self.body
            for child in self.children:
                out += f"--{self.boundary}{CRLF}".encode()
                out += child.render()
                out += CRLF.encode()
            out += f"--{self.boundary}--{CRLF}".encode()
        else:
            out += self.body
        return bytes(out)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def encode_body(text: str, charset: str, cte: str) -> bytes:
    """``text`` in ``charset`` with transfer encoding ``cte`` (7bit, 8bit, quoted-printable, base64)."""
    data = text.encode(charset)
    if cte in ("7bit", "8bit"):
        out = _crlf(data)
    elif cte == "quoted-printable":
        out = _crlf(binascii.b2a_qp(data.replace(b"\r\n", b"\n")))
    elif cte == "base64":
        out = _crlf(base64.encodebytes(data))
    else:  # pragma: no cover - programming error
        raise ValueError(cte)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def text_part(text: str, *, subtype: str = "plain", charset: str = "utf-8", cte: str = "quoted-printable",
              extra: list[tuple[str, str]] | None = None) -> Part:
    """A text/plain or text/html part."""
    params = f'; charset="{charset}"'
    return Part([("Content-Type", f"text/{subtype}{params}"), ("Content-Transfer-Encoding", cte), *(extra or [])],
                encode_body(text, charset, cte))


def binary_part(data: bytes, content_type: str, filename: str | None = None, *, inline: bool = False,
                content_id: str | None = None) -> Part:
    """An attachment (or inline part) in base64; non-ASCII file names as RFC 2231 ``filename*``."""
    headers: list[tuple[str, str]] = []
    if filename is None:
        headers.append(("Content-Type", content_type))
    elif filename.isascii():
        headers.append(("Content-Type", f'{content_type}; name="{filename}"'))
    else:
        headers.append(("Content-Type", f"{content_type}; name*=UTF-8''{quote(filename)}"))
    headers.append(("Content-Transfer-Encoding", "base64"))
    if content_id:
        headers.append(("Content-ID", f"<{content_id}>"))
    disposition = "inline" if inline else "attachment"
    if filename is None:
        headers.append(("Content-Disposition", disposition))
    elif filename.isascii():
        headers.append(("Content-Disposition", f'{disposition}; filename="{filename}"'))
    else:
        headers.append(("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(filename)}"))
    return Part(headers, _crlf(base64.encodebytes(data)))


def multipart(subtype: str, children: list[Part], boundary: str, *, params: str = "") -> Part:
    """A multipart entity with a fixed boundary."""
    return Part([("Content-Type", f'multipart/{subtype}; boundary="{boundary}"{params}')], b"", children, boundary)


def header_text(value: str, charset: str) -> str:
    """A header value, as RFC 2047 encoded words in ``charset`` when it is not ASCII."""
    if value.isascii():
        return value
    return Header(value, charset, maxlinelen=998).encode(linesep=CRLF)


def address(name: str, addr: str, charset: str = "utf-8") -> str:
    """``Name <addr>``; a non-ASCII name as encoded words in ``charset``."""
    if not name:
        return addr
    if name.isascii():
        return formataddr((name, addr))
    return f"{header_text(name, charset)} <{addr}>"


def message(
    *,
    sender: str,
    to: list[str],
    subject: str,
    date: datetime,
    message_id: str,
    body: Part,
    charset: str = "utf-8",
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> bytes:
    """A complete message: the top-level headers, then ``body`` (its own Content-* headers)."""
    headers = [
        ("From", sender),
        ("To", ", ".join(to)),
    ]
    if cc:
        headers.append(("Cc", ", ".join(cc)))
    headers += [
        ("Subject", header_text(subject, charset)),
        ("Date", format_datetime(date)),
        ("Message-ID", f"<{message_id}>"),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", f"<{in_reply_to}>"))
    if references:
        headers.append(("References", " ".join(f"<{r}>" for r in references)))
    headers += list(extra or [])
    headers.append(("MIME-Version", "1.0"))
    top = Part(headers + body.headers, body.body, body.children, body.boundary)
    return top.render()


# -- small files -----------------------------------------------------------------------------
def pdf(title: str, lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, Latin-1 text) that any viewer opens."""

    def esc(text: str) -> str:
        text = text.encode("latin-1", "replace").decode("latin-1")
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 16 Tf", "50 790 Td", f"({esc(title)}) Tj", "/F1 11 Tf", "0 -28 Td", "15 TL"]
    for line in lines:
        ops.append(f"({esc(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title (" + esc(title).encode("latin-1") + b") /Producer (vmailkit demo) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def png(width: int, height: int, seed: int) -> bytes:
    """A small RGB PNG (a colour gradient that depends on ``seed``)."""
    r0, g0, b0 = (seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(((r0 + 3 * x) % 256, (g0 + 2 * y) % 256, (b0 + x + y) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
