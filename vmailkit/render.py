"""Safe display of stored mail: sanitised HTML, blocked remote images, inline images, attachments.

A mail's HTML body is stored as received (``emails.body_html``) and is hostile by default: it may
carry scripts, event handlers, ``javascript:`` links, style sheets and remote images that tell the
sender when the mail was read. This module turns a stored mail into HTML that is safe to show in a
notebook, in three layers:

1. **Sanitising** with `nh3 <https://nh3.readthedocs.io>`_ (the maintained Rust ``ammonia``
   sanitiser): only formatting tags and attributes survive; ``<script>``, ``<style>`` and their
   content are dropped, every ``on*`` handler and ``javascript:``/``data:`` link is removed, inline
   ``style`` keeps only harmless properties and never a ``url(...)``.
2. **Images**: ``cid:`` references are replaced by ``data:`` URIs built from the mail's inline
   attachments; ``http(s)`` images are replaced by a placeholder and their URLs listed in
   :attr:`RenderedBody.blocked_images` until the caller passes ``allow_remote_images=True``.
3. **Isolation** (:func:`frame_html`): the result is shown in an ``<iframe sandbox srcdoc>``
   without ``allow-scripts`` and with a Content-Security-Policy that forbids every network load
   except, when asked, images. Even markup the sanitiser let through cannot run code or fetch
   anything.

Plain-text bodies are escaped and shown in ``<pre>``. Attachments are listed without their content
(:func:`attachment_list`); one part's content is read only to save it to a file
(:func:`save_attachment`) or to offer it as a browser download link (:func:`download_link`). File
names from a mail are made safe by :func:`safe_filename`, and saving never writes through a
symbolic link.
"""
from __future__ import annotations

import base64
import errno
import html as _html
import mimetypes
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nh3
import pandas as pd

from .errors import NotFoundError, ValidationError

__all__ = [
    "BLOCKED_IMAGE",
    "RenderedBody",
    "attachment_list",
    "display_text",
    "download_link",
    "frame_html",
    "headers_html",
    "inline_images",
    "render_body",
    "render_email",
    "render_text",
    "safe_filename",
    "sanitize_html",
    "save_attachment",
]

#: Shown instead of a remote image until the reader asks for remote images.
BLOCKED_IMAGE = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="24" viewBox="0 0 120 24">'
    b'<rect width="120" height="24" fill="#eee" stroke="#bbb"/>'
    b'<text x="60" y="16" font-family="sans-serif" font-size="10" text-anchor="middle" fill="#666">'
    b"remote image blocked</text></svg>"
).decode("ascii")

#: Shown for a ``cid:`` image whose part is missing or not an image.
MISSING_IMAGE = "data:image/svg+xml;base64," + base64.b64encode(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="24" viewBox="0 0 120 24">'
    b'<rect width="120" height="24" fill="#fafafa" stroke="#ccc"/>'
    b'<text x="60" y="16" font-family="sans-serif" font-size="10" text-anchor="middle" fill="#999">'
    b"image not found</text></svg>"
).decode("ascii")

#: Biggest attachment offered as an in-browser download (a ``data:`` link); bigger ones are saved.
MAX_DOWNLOAD_LINK = 20 * 1024 * 1024
#: Biggest total of inline images turned into ``data:`` URIs for one mail.
MAX_INLINE_TOTAL = 25 * 1024 * 1024
#: Longest file name :func:`safe_filename` makes, in UTF-8 bytes. File systems allow 255 bytes; the
#: margin leaves room for a person's " (2)" or a tool's suffix.
MAX_FILENAME_BYTES = 200
#: Longest ending kept as the extension when a name is cut (".pdf", ".docx", ".tar.gz" keeps ".gz").
_MAX_EXTENSION_BYTES = 16

_TAGS = (set(nh3.ALLOWED_TAGS) | {"font", "tfoot"}) - {"area", "map"}
_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"style", "title", "dir", "lang", "align"}
_ATTRIBUTES["font"] = {"color", "face", "size"}
_ATTRIBUTES["table"] = _ATTRIBUTES.get("table", set()) | {"width", "border", "cellpadding", "cellspacing", "bgcolor"}
for _cell in ("td", "th"):
    _ATTRIBUTES[_cell] = _ATTRIBUTES.get(_cell, set()) | {"width", "height", "valign", "bgcolor", "nowrap"}
_ATTRIBUTES["tr"] = _ATTRIBUTES.get("tr", set()) | {"valign", "bgcolor"}
_ATTRIBUTES.pop("area", None)

#: Inline CSS properties kept (none of them can load anything; values with url() are dropped too).
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "font-variant", "line-height", "letter-spacing", "word-spacing", "text-align", "text-decoration",
    "text-indent", "text-transform", "white-space", "vertical-align", "direction",
    "width", "height", "max-width", "min-width", "max-height", "min-height",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-collapse", "border-spacing", "border-radius", "display", "float", "clear",
    "table-layout", "list-style-type", "overflow", "word-break", "overflow-wrap",
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid", "data"}
_DANGEROUS_CSS = re.compile(r"url\s*\(|expression\s*\(|image-set\s*\(|@import|javascript:", re.I)
_DATA_IMAGE = re.compile(r"^data:image/(png|gif|jpe?g|webp|bmp);", re.I)


@dataclass
class RenderedBody:
    """A mail body ready to display.

    ``html`` is a safe fragment (for ``kind="html"`` the sanitised document body, to be wrapped by
    :func:`frame_html`; for ``kind="text"`` an escaped ``<pre>``). ``blocked_images`` lists the
    remote image URLs that were not loaded, ``missing_inline`` the ``cid:`` references without a
    matching image part.
    """

    html: str
    kind: str                                   # "html", "text" or "empty"
    blocked_images: list[str] = field(default_factory=list)
    inline_images: int = 0
    missing_inline: list[str] = field(default_factory=list)
    remote_images_allowed: bool = False

    def frame(self, *, height: int = 520) -> str:
        """The body as HTML for a notebook (see :func:`frame_html`)."""
        return frame_html(self, height=height)


def _normal_cid(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("cid:"):
        value = value[4:]
    return value.strip().strip("<>").strip().lower()


def inline_images(attachments: pd.DataFrame | None, *, max_total: int = MAX_INLINE_TOTAL) -> dict[str, str]:
    """Map each image part's Content-ID (lower-case, no ``<>``) to a ``data:`` URI.

    ``attachments`` is :meth:`Store.attachments` with ``with_content=True``. Parts that are not
    images, or beyond ``max_total`` bytes in all, are left out.
    """
    found: dict[str, str] = {}
    if attachments is None or attachments.empty or "content" not in attachments:
        return found
    total = 0
    for row in attachments.itertuples(index=False):
        cid = _text(getattr(row, "content_id", None))
        ctype = (_text(getattr(row, "content_type", None)) or "").lower()
        if not cid or not cid.strip() or not ctype.startswith("image/") or "svg" in ctype:
            continue
        content = _bytes(row.content)
        total += len(content)
        if total > max_total:
            break
        found[_normal_cid(cid)] = f"data:{ctype};base64,{base64.b64encode(content).decode('ascii')}"
    return found


def sanitize_html(
    html: str,
    *,
    inline: Mapping[str, str] | None = None,
    allow_remote_images: bool = False,
) -> RenderedBody:
    """Sanitise an HTML body; see the module docstring for what survives.

    ``inline`` maps Content-IDs to ``data:`` URIs (:func:`inline_images`). Remote (``http``/``https``)
    images keep their address only with ``allow_remote_images``; otherwise they show a placeholder
    and are listed in ``blocked_images``.
    """
    inline = {_normal_cid(k): v for k, v in (inline or {}).items()}
    blocked: list[str] = []
    missing: list[str] = []
    used = [0]

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if tag == "img" and attr == "src":
            low = value.strip().lower()
            if low.startswith("cid:"):
                uri = inline.get(_normal_cid(value))
                if uri is None:
                    missing.append(value.strip())
                    return MISSING_IMAGE
                used[0] += 1
                return uri
            if low.startswith(("http:", "https:")):
                if allow_remote_images:
                    return value
                if value not in blocked:
                    blocked.append(value)
                return BLOCKED_IMAGE
            if _DATA_IMAGE.match(value.strip()):
                return value
            return None
        if attr in ("href", "cite"):
            low = value.strip().lower()
            if low.startswith(("data:", "cid:")):
                return None
            return value
        if attr == "style":
            kept = [d for d in value.split(";") if d.strip() and not _DANGEROUS_CSS.search(d)]
            return ";".join(kept) or None
        return value

    cleaned = nh3.clean(
        html or "",
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "head", "noscript", "template", "textarea", "select", "iframe",
                            "object", "embed", "svg", "math"},
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=_URL_SCHEMES,
        url_relative="deny",
        filter_style_properties=_STYLE_PROPERTIES,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )
    return RenderedBody(
        html=cleaned, kind="html", blocked_images=blocked, inline_images=used[0], missing_inline=missing,
        remote_images_allowed=allow_remote_images,
    )


def render_text(text: str | None) -> str:
    """Plain text escaped in a wrapping ``<pre>``."""
    return ('<pre class="vmk-text-body" style="white-space: pre-wrap; word-break: break-word; margin: 0;">'
            f"{_html.escape(text or '', quote=True)}</pre>")


def render_body(
    body_html: str | None,
    body_text: str | None,
    attachments: pd.DataFrame | None = None,
    *,
    allow_remote_images: bool = False,
    prefer: str = "html",
) -> RenderedBody:
    """Choose and render a body: the sanitised HTML when there is one (``prefer="html"``), else the text."""
    if prefer not in ("html", "text"):
        raise ValidationError("prefer", "use html or text")
    has_html = bool(body_html and body_html.strip())
    has_text = bool(body_text and body_text.strip())
    if has_html and (prefer == "html" or not has_text):
        return sanitize_html(body_html or "", inline=inline_images(attachments), allow_remote_images=allow_remote_images)
    if has_text:
        return RenderedBody(html=render_text(body_text), kind="text", remote_images_allowed=allow_remote_images)
    return RenderedBody(html='<p class="vmk-empty-body"><i>(this mail has no text)</i></p>', kind="empty")


_CID_REFERENCE = re.compile(r"cid:", re.I)


def render_email(store: Any, email_id: int, *, allow_remote_images: bool = False, prefer: str = "html",
                 mail: Mapping[str, Any] | None = None) -> RenderedBody:
    """Render the body of a stored mail (:meth:`Store.get_email` and its inline attachments).

    ``mail`` is the mail as :meth:`Store.get_email` returned it, when the caller has it already (it
    is then not read again). The attachments' content is read only when the HTML body refers to a
    ``cid:`` image, so a mail with many parts costs no more than its own size. Raises
    :class:`NotFoundError` for an unknown mail.
    """
    if mail is None:
        mail = store.get_email(email_id)
    atts = None
    body_html = mail.get("body_html")
    if body_html and (prefer == "html" or not (mail.get("body_text") or "").strip()) and _CID_REFERENCE.search(body_html):
        atts = store.attachments(email_id, with_content=True)
    return render_body(mail.get("body_html"), mail.get("body_text"), atts,
                       allow_remote_images=allow_remote_images, prefer=prefer)


def frame_html(body: RenderedBody, *, height: int = 520) -> str:
    """HTML to show a rendered body in a notebook.

    HTML bodies go into an ``<iframe sandbox srcdoc>``: no scripts, no forms, no same-origin access,
    links open in a new tab, and a Content-Security-Policy that forbids every load except ``data:``
    images (and remote images when they were allowed). Text bodies are returned as they are.
    """
    if body.kind != "html":
        return f'<div class="vmk-body vmk-body-{body.kind}">{body.html}</div>'
    img_src = "data: http: https:" if body.remote_images_allowed else "data:"
    doc = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src {img_src}; "
        "style-src 'unsafe-inline'; font-src data:; form-action 'none'\">"
        "<base target=\"_blank\">"
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:14px;"
        "margin:8px;color:#222;word-wrap:break-word}img{max-width:100%;height:auto}</style>"
        f"</head><body>{body.html}</body></html>"
    )
    return (
        f'<iframe class="vmk-body vmk-body-html" sandbox="allow-popups allow-popups-to-escape-sandbox" '
        f'referrerpolicy="no-referrer" style="width:100%;height:{int(height)}px;border:1px solid #ddd;'
        f'background:#fff" srcdoc="{_html.escape(doc, quote=True)}"></iframe>'
    )


def _addresses(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return ", ".join(str(v) for v in value)
    except TypeError:
        return str(value)


def headers_html(mail: Mapping[str, Any], *, accounts: str | None = None) -> str:
    """The header block of a mail (From, To, Cc, Date, Subject, accounts) as escaped HTML."""
    sender = mail.get("from_address") or ""
    name = mail.get("from_name") or ""
    from_text = f"{name} <{sender}>" if name and sender else (name or sender or "(unknown)")
    sent = mail.get("sent_at")
    if isinstance(sent, datetime):
        date_text = sent.strftime("%Y-%m-%d %H:%M %Z").strip()
    elif sent is None or (isinstance(sent, float) and pd.isna(sent)):
        date_text = "(no date)"
    else:
        date_text = str(sent)
    rows = [("From", from_text), ("To", _addresses(mail.get("to_addresses"))), ("Cc", _addresses(mail.get("cc_addresses"))),
            ("Date", date_text), ("Subject", mail.get("subject") or "(no subject)")]
    if accounts:
        rows.append(("Account", accounts))
    if mail.get("parse_error"):
        rows.append(("Parse error", str(mail["parse_error"])))
    cells = "".join(
        f'<tr><th style="text-align:left;padding-right:1em;vertical-align:top">{k}</th>'
        f"<td>{_html.escape(str(v), quote=True)}</td></tr>"
        for k, v in rows if v or k in ("From", "Subject", "Date")
    )
    return f'<table class="vmk-headers">{cells}</table>'


def _text(value: Any) -> str | None:
    """``value`` as text, or None when it is missing (None, NaN, NA: pandas puts NaN into a text
    column that has both names and no names)."""
    if value is None or isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _bytes(value: Any) -> bytes:
    """A content cell as bytes (b"" when missing)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return b""


def _int(value: Any, default: int = 0) -> int:
    try:
        return default if value is None or pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return default


def _flag(value: Any) -> bool:
    """A boolean cell (False when missing)."""
    try:
        return False if value is None or pd.isna(value) else bool(value)
    except (TypeError, ValueError):
        return bool(value)


def attachment_list(store: Any, email_id: int, *, include_inline: bool = True) -> pd.DataFrame:
    """The attachments of a mail without their content, in part order, from one store query.

    Columns: ``part_index`` (int), ``filename``, ``content_type``, ``content_id`` (text or None, never
    NaN), ``size`` (int, 0 when unknown), ``is_inline`` (bool), ``sha256`` and ``email_id``. With
    ``include_inline=False`` the parts shown inside the body are left out. Reading it costs time in
    proportion to the number of parts, never to their content.
    """
    frame = store.attachments(email_id)
    if frame.empty:
        return frame.reset_index(drop=True)
    frame = frame.copy()
    for col in ("filename", "content_type", "content_id", "sha256"):
        if col in frame:       # object columns: a string column would turn None back into NaN
            frame[col] = pd.Series([_text(v) for v in frame[col]], index=frame.index, dtype=object)
    if "size" in frame:
        frame["size"] = pd.Series([_int(v) for v in frame["size"]], index=frame.index, dtype="int64")
    if "is_inline" in frame:
        frame["is_inline"] = pd.Series([_flag(v) for v in frame["is_inline"]], index=frame.index, dtype=bool)
    if not include_inline:
        frame = frame[~frame["is_inline"]]
    return frame.reset_index(drop=True)


#: Characters kept although they are invisible formatting (Cf): zero-width non-joiner and joiner
#: belong to the spelling of Persian, Indic and emoji names. Every other Cf character is dropped:
#: the bidirectional controls U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C (which make
#: "invoice\u202efdp.exe" look like "invoiceexe.pdf"), zero-width spaces, soft hyphens, BOMs.
_KEEP_FORMAT = frozenset("\u200c\u200d")
#: Control characters, lone surrogates, line/paragraph separators and what Windows forbids.
_UNSAFE_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029/\\\\:*?\"<>|]+")
_EDGES = re.compile(r"^[\s.]+|[\s.]+$")
_EXTENSION = re.compile(r"\.[^\s.]+")
#: Names Windows opens as devices whatever the extension ("nul.txt" is the null device).
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789\u00b9\u00b2\u00b3"}
)


def display_text(value: Any) -> str:
    """Text from a mail made safe to *show*: "" for a missing value, invisible formatting characters
    (bidirectional overrides and the like) removed, control characters replaced by spaces.
    The result still has to be HTML-escaped."""
    text = _text(value) or ""
    text = "".join(ch for ch in text if ch in _KEEP_FORMAT or unicodedata.category(ch) != "Cf")
    return re.sub("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]+", " ", text)


def _cut_utf8(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` that fits in ``max_bytes`` UTF-8 bytes (never half a character)."""
    return text.encode("utf-8")[:max(max_bytes, 0)].decode("utf-8", "ignore")


def safe_filename(filename: Any, content_type: Any = None, part_index: int = 0) -> str:
    """A file name that is safe to create on Linux, macOS and Windows; never empty, never raises.

    * Only the last path component is kept (``../../x.pdf`` and ``C:\\x\\y.doc`` lose their folders).
    * Bidirectional controls and other invisible formatting characters (Unicode category Cf except
      the zero-width joiner and non-joiner) are removed; control characters, lone surrogates and
      ``/ \\ : * ? " < > |`` become ``_``; leading and trailing spaces and dots are dropped; the
      name is NFC-normalised.
    * Windows device names (CON, PRN, AUX, NUL, COM0–9, LPT0–9, CONIN$, CONOUT$, CLOCK$, in any case,
      with or without an extension) get a ``_`` in front: ``nul.txt`` becomes ``_nul.txt``.
    * The name is at most :data:`MAX_FILENAME_BYTES` bytes in UTF-8, cut at a character boundary and
      keeping its extension (when the extension is at most 16 bytes).
    * A missing (None, NaN) or empty name becomes ``attachment-<part_index><extension>``, the
      extension guessed from ``content_type`` (``.bin`` when unknown).
    """
    text = unicodedata.normalize("NFC", _text(filename) or "")
    text = "".join(ch for ch in text if ch in _KEEP_FORMAT or unicodedata.category(ch) != "Cf")
    base = re.split(r"[/\\]", text)[-1]                   # never a directory part
    name = _EDGES.sub("", _UNSAFE_NAME.sub("_", base))
    if not name:
        ctype = (_text(content_type) or "").split(";")[0].strip().lower()
        ext = mimetypes.guess_extension(ctype) if ctype else None
        name = f"attachment-{_int(part_index)}{ext or '.bin'}"
    if name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES:
        name = "_" + name
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = dot + ext
        if not stem or not _EXTENSION.fullmatch(ext) or len(ext.encode("utf-8")) > _MAX_EXTENSION_BYTES:
            stem, ext = name, ""
        stem = _EDGES.sub("", _cut_utf8(stem, MAX_FILENAME_BYTES - len(ext.encode("utf-8")))) or "attachment"
        name = stem + ext
    return name


def _attachment_part(store: Any, email_id: int, part_index: int) -> tuple[dict[str, Any], bytes]:
    """One part's listing fields (text values None, never NaN) and its decoded content.

    Reads only that part; raises :class:`NotFoundError` when there is no such part.
    """
    row, content = store.attachment(email_id, int(part_index))
    info = {
        "part_index": _int(row["part_index"]), "filename": _text(row.get("filename")),
        "content_type": _text(row.get("content_type")), "content_id": _text(row.get("content_id")),
    }
    return info, content


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
_DIR_FD = bool(_O_DIRECTORY) and os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd


class _Folder:
    """A folder opened once: every later step names files relative to it (``openat``/``renameat``),
    so replacing the folder on disk after the checks cannot redirect the write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        if _DIR_FD:
            self.fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        elif not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))

    def __enter__(self) -> "_Folder":
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def _name(self, name: str) -> str:
        return name if self.fd is not None else str(self.path / name)

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry ``name`` itself (a link is not followed), or None when there is none."""
        try:
            return os.stat(self._name(name), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def create(self, name: str) -> int:
        """Create ``name`` and open it for writing; never follows a link, never opens an existing entry."""
        return os.open(self._name(name), _NEW_FILE, 0o666, dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        try:
            os.unlink(self._name(name), dir_fd=self.fd)
        except OSError:
            pass

    def replace(self, src: str, dst: str) -> None:
        os.replace(self._name(src), self._name(dst), src_dir_fd=self.fd, dst_dir_fd=self.fd)


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` and close it."""
    with os.fdopen(fd, "wb", closefd=True) as out:
        out.write(data)


def _write_file(folder: Path, name: str, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` as ``folder/name`` without ever following a link at ``name`` (see :func:`save_attachment`)."""
    target = folder / name
    with _Folder(folder) as where:
        existing = where.lstat(name)
        if existing is not None and stat.S_ISLNK(existing.st_mode):
            raise ValidationError("path", f"{target} is a link to another place; files are never written "
                                          "through links: choose another name or folder")
        if existing is not None and not overwrite:
            raise ValidationError("path", f"{target} already exists; choose another name or allow overwriting")
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise ValidationError("path", f"{target} is a folder; choose a file name")
        if existing is None:
            try:
                fd = where.create(name)
            except FileExistsError:        # appeared since the check (a planted link, too): never opened
                raise ValidationError("path", f"{target} already exists; choose another name or allow overwriting") from None
            try:
                _write_fd(fd, data)
            except BaseException:
                where.unlink(name)
                raise
            return
        # overwrite: write a new file next to it, then swap it in (rename replaces the entry itself)
        for _attempt in range(20):
            temp = f".vmailkit-{secrets.token_hex(6)}.part"
            try:
                fd = where.create(temp)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 20 random names taken
            raise ValidationError("path", f"cannot make a temporary file in {folder}")
        try:
            _write_fd(fd, data)
            now = where.lstat(name)
            if now is not None and stat.S_ISLNK(now.st_mode):
                raise ValidationError("path", f"{target} is a link to another place; files are never written "
                                              "through links: choose another name or folder")
            where.replace(temp, name)
        except BaseException:
            where.unlink(temp)
            raise


def _os_error(exc: OSError, folder: Path, name: str) -> ValidationError:
    """An operating-system error while saving, in plain words (field ``path``)."""
    if exc.errno == errno.ENAMETOOLONG:
        return ValidationError("path", "the file name is too long for this file system; choose a shorter one")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return ValidationError("path", f"the folder {folder} does not exist")
    if isinstance(exc, PermissionError):
        return ValidationError("path", f"no permission to write {name} in the folder {folder}")
    if exc.errno == errno.ELOOP:
        return ValidationError("path", f"{folder / name} is a link to another place; files are never written through links")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return ValidationError("path", f"there is no space left to save {name} in {folder}")
    if isinstance(exc, IsADirectoryError):
        return ValidationError("path", f"{folder / name} is a folder; choose a file name")
    return ValidationError("path", f"{name} could not be saved in {folder}: {exc.strerror or exc}")


def save_attachment(store: Any, email_id: int, part_index: int, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write one attachment's decoded bytes to ``path`` and return the file written.

    When ``path`` is an existing folder, the attachment's name made safe by :func:`safe_filename` is
    used inside it; otherwise ``path`` is the file to write (its name as the caller chose it). Only
    this part's content is read.

    Links: the folder is the caller's choice and is used as given, also when it is, or lies under,
    a symbolic link (home and download folders often do); it is opened once and the file is
    created relative to that open folder. The file itself is never written through a link: it is
    created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a link planted at the name, even a dangling one,
    is refused and its target is not created). With ``overwrite`` an existing file is replaced
    atomically: the bytes go to a new temporary file in the same folder (also ``O_EXCL``), which
    then replaces the name with :func:`os.replace`; a link at the name is refused, not replaced.

    Raises :class:`ValidationError` (field ``path``) for an empty path, a missing folder, an existing
    file without ``overwrite``, a link or a folder at the name, a name too long for the file system,
    missing permission or another write failure (nothing is left behind then), and
    :class:`NotFoundError` when the mail has no such part.
    """
    if path is None or str(path).strip() == "":
        raise ValidationError("path", "choose a file or folder to save to")
    info, content = _attachment_part(store, email_id, part_index)
    target = Path(path).expanduser()
    folder, name = target.parent, target.name
    try:
        if target.is_dir():
            folder, name = target, safe_filename(info["filename"], info["content_type"], info["part_index"])
        if name in ("", ".", ".."):
            raise ValidationError("path", "choose a file name to save to")
        _write_file(folder, name, content, overwrite=overwrite)
    except OSError as exc:
        raise _os_error(exc, folder, name) from None
    return folder / name


def download_link(store: Any, email_id: int, part_index: int, *, label: str = "Download",
                  max_size: int = MAX_DOWNLOAD_LINK) -> str:
    """An ``<a download>`` link carrying the attachment as a ``data:`` URI (up to ``max_size`` bytes).

    Only this part's content is read. The browser saves the file (named by :func:`safe_filename`)
    without running it; the content type is sent as ``application/octet-stream`` so that nothing is
    opened inline. A bigger part gives a note to save it to a file instead. Raises
    :class:`NotFoundError` when the mail has no such part.
    """
    info, content = _attachment_part(store, email_id, part_index)
    name = safe_filename(info["filename"], info["content_type"], info["part_index"])
    if len(content) > max_size:
        size = f"{len(content) / (1024 * 1024):.1f} MB"
        return (f'<span class="vmk-too-big">{_html.escape(name)} is {size}: '
                "save it to a file instead</span>")
    uri = "data:application/octet-stream;base64," + base64.b64encode(content).decode("ascii")
    return (f'<a class="vmk-download" download="{_html.escape(name, quote=True)}" href="{uri}" '
            f'style="color:#0969da;text-decoration:underline">'
            f"{_html.escape(label)}</a>")
