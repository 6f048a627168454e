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

Plain-text bodies are escaped and shown in ``<pre>``. Attachments are listed, saved to a file
(:func:`save_attachment`) or offered as a browser download link (:func:`download_link`).
"""
from __future__ import annotations

import base64
import html as _html
import mimetypes
import re
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
        cid = getattr(row, "content_id", None)
        ctype = (getattr(row, "content_type", "") or "").lower()
        if not isinstance(cid, str) or not cid.strip() or not ctype.startswith("image/") or "svg" in ctype:
            continue
        content = bytes(row.content) if row.content is not None else b""
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


def render_email(store: Any, email_id: int, *, allow_remote_images: bool = False, prefer: str = "html") -> RenderedBody:
    """Render the body of a stored mail (:meth:`Store.get_email` and its inline attachments)."""
    mail = store.get_email(email_id)
    atts = None
    if mail.get("body_html"):
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


def attachment_list(store: Any, email_id: int, *, include_inline: bool = True) -> pd.DataFrame:
    """The attachments of a mail without their content (part_index, filename, content_type, size, ...)."""
    frame = store.attachments(email_id)
    if not include_inline and not frame.empty:
        frame = frame[~frame["is_inline"]].reset_index(drop=True)
    return frame


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def safe_filename(filename: str | None, content_type: str | None = None, part_index: int = 0) -> str:
    """A file name that is safe to create: no directories, no control characters, never empty."""
    base = re.split(r"[/\\]", (filename or "").strip())[-1]     # never a directory part
    name = _UNSAFE_NAME.sub("_", base).strip(" .")
    if not name:
        ext = mimetypes.guess_extension((content_type or "").split(";")[0].strip()) or ".bin"
        name = f"attachment-{part_index}{ext}"
    return name[:200]


def _attachment_row(store: Any, email_id: int, part_index: int) -> Any:
    frame = store.attachments(email_id, with_content=True)
    match = frame[frame["part_index"] == int(part_index)] if not frame.empty else frame
    if match.empty:
        raise NotFoundError(f"mail {email_id} has no attachment number {part_index}")
    return match.iloc[0]


def save_attachment(store: Any, email_id: int, part_index: int, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write one attachment's decoded bytes to ``path`` and return the file written.

    When ``path`` is an existing directory, the attachment's (sanitised) file name is used inside it.
    An existing file is not replaced unless ``overwrite``: :class:`ValidationError` (field ``path``).
    """
    row = _attachment_row(store, email_id, part_index)
    target = Path(path).expanduser()
    if str(path).strip() == "":
        raise ValidationError("path", "choose a file or folder to save to")
    if target.is_dir():
        target = target / safe_filename(row["filename"], row["content_type"], int(row["part_index"]))
    if target.exists() and not overwrite:
        raise ValidationError("path", f"{target} already exists; choose another name or allow overwriting")
    if not target.parent.is_dir():
        raise ValidationError("path", f"the folder {target.parent} does not exist")
    target.write_bytes(bytes(row["content"]))
    return target


def download_link(store: Any, email_id: int, part_index: int, *, label: str = "Download",
                  max_size: int = MAX_DOWNLOAD_LINK) -> str:
    """An ``<a download>`` link carrying the attachment as a ``data:`` URI (up to ``max_size`` bytes).

    The browser saves the file without running it; the content type is sent as
    ``application/octet-stream`` so that nothing is opened inline.
    """
    row = _attachment_row(store, email_id, part_index)
    content = bytes(row["content"])
    name = safe_filename(row["filename"], row["content_type"], int(row["part_index"]))
    if len(content) > max_size:
        return (f'<span class="vmk-too-big">{_html.escape(name)} is {len(content) // (1024 * 1024)} MB: '
                "save it to a file instead</span>")
    uri = "data:application/octet-stream;base64," + base64.b64encode(content).decode("ascii")
    return (f'<a class="vmk-download" download="{_html.escape(name, quote=True)}" href="{uri}" '
            f'style="color:#0969da;text-decoration:underline">'
            f"{_html.escape(label)}</a>")
