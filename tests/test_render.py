"""Safe display of mail: sanitising, blocked remote images, inline images, attachments."""
from __future__ import annotations

import base64
import html
import re

import pandas as pd
import pytest

from mailfactory import make_mail
from uimail import PDF_BYTES, PNG_1PX, hostile_html, hostile_mail
from vmailkit import NotFoundError, Store, ValidationError, make_account
from vmailkit.render import (
    BLOCKED_IMAGE,
    MISSING_IMAGE,
    RenderedBody,
    attachment_list,
    download_link,
    frame_html,
    headers_html,
    inline_images,
    render_body,
    render_email,
    render_text,
    safe_filename,
    sanitize_html,
    save_attachment,
)
from vmailkit.transport.base import RemoteMessage

TRACKER = "http://127.0.0.1:9/track"


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "r.duckdb", lock_timeout=1.0)
    s.add_user("anna")
    s.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                               address="o@x.example", secret="env:X"))
    return s


def save(store: Store, *raws: bytes) -> list[int]:
    acc = store.get_account("office")
    res = store.save_chunk(user_id=store.get_user("anna").user_id, account_id=acc.account_id, protocol="imap",
                           folder="INBOX", uidvalidity=1,
                           messages=[RemoteMessage(key=str(i + 1), uid=i + 1, raw=r) for i, r in enumerate(raws)])
    return [res.by_key[str(i + 1)] for i in range(len(raws))]


def attachments_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"part_index": 0, "filename": "logo.png", "content_type": "image/png", "is_inline": True,
         "content_id": "<Logo@HotelSol.example>", "content": PNG_1PX},
        {"part_index": 1, "filename": "x.svg", "content_type": "image/svg+xml", "is_inline": True,
         "content_id": "<svg@x>", "content": b"<svg onload='alert(1)'/>"},
        {"part_index": 2, "filename": "a.pdf", "content_type": "application/pdf", "is_inline": False,
         "content_id": None, "content": PDF_BYTES},
    ])


def test_hostile_markup_is_removed():
    out = sanitize_html(hostile_html(TRACKER))
    low = out.html.lower()
    for bad in ("<script", "onload", "onerror", "onclick", "onmouseover", "javascript:", "<style", "<link",
                "<iframe", "<form", "<input", "<svg", "<object", "@import", "url(", "pwned"):
        assert bad not in low, bad
    # nothing under the tracker survives, except as a listed blocked image
    assert TRACKER not in out.html
    assert out.blocked_images == [f"{TRACKER}/pixel.png"]
    # what the reader needs stays
    assert "Hola from Hotel Sol" in out.html and "<b>B-4711</b>" in out.html
    assert 'href="https://hotelsol.example/booking"' in out.html and 'rel="noopener noreferrer nofollow"' in out.html
    assert "color:#123456" in out.html.replace(" ", "")
    assert out.html.count(BLOCKED_IMAGE) == 1
    # the cid: image has no attachments here: a placeholder, and it is reported
    assert out.missing_inline == ["cid:logo@hotelsol.example"] and MISSING_IMAGE in out.html


def test_remote_images_only_when_asked():
    src = f'<p>x</p><img src="{TRACKER}/a.png"><img src="https://cdn.example/b.png" width="10">' \
          f'<img src="{TRACKER}/a.png"><img src="//cdn.example/c.png">'
    blocked = sanitize_html(src)
    assert blocked.blocked_images == [f"{TRACKER}/a.png", "https://cdn.example/b.png"]
    assert "cdn.example" not in blocked.html and 'width="10"' in blocked.html
    allowed = sanitize_html(src, allow_remote_images=True)
    assert allowed.blocked_images == [] and allowed.remote_images_allowed
    assert f'src="{TRACKER}/a.png"' in allowed.html and 'src="https://cdn.example/b.png"' in allowed.html
    assert "//cdn.example/c.png" not in allowed.html   # protocol-relative: never resolved against the page


def test_links_and_styles():
    out = sanitize_html(
        '<a href="JaVaScRiPt:alert(1)">a</a><a href="data:text/html,<script>alert(1)</script>">b</a>'
        '<a href="mailto:x@y.example">c</a><a href="cid:part">d</a><a href="/relative">e</a>'
        '<p style="color:red; background: url(http://e/x); font-weight:bold; position:fixed; '
        'width: expression(alert(1))">s</p><table background="http://e/t.png" bgcolor="#fff"><tr><td>t</td></tr></table>'
    )
    assert "javascript" not in out.html.lower() and "data:text" not in out.html and "cid:part" not in out.html
    assert 'href="mailto:x@y.example"' in out.html and "/relative" not in out.html
    style = re.search(r'<p style="([^"]*)"', out.html).group(1).replace(" ", "")
    assert "color:red" in style and "font-weight:bold" in style
    assert "url" not in style and "position" not in style and "expression" not in style
    assert "http://e/t.png" not in out.html and 'bgcolor="#fff"' in out.html


def test_inline_cid_images_become_data_uris():
    frame = attachments_frame()
    images = inline_images(frame)
    assert list(images) == ["logo@hotelsol.example"]          # svg and non-images are never inlined
    assert images["logo@hotelsol.example"] == "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    out = sanitize_html('<img src="cid:LOGO@hotelsol.example"><img src="cid:svg@x"><img src="data:image/svg+xml,x">',
                        inline=images)
    assert out.inline_images == 1 and out.missing_inline == ["cid:svg@x"]
    assert images["logo@hotelsol.example"] in out.html
    assert "svg+xml,x" not in out.html
    assert inline_images(frame, max_total=0) == {}
    assert inline_images(None) == {} and inline_images(frame.drop(columns=["content"])) == {}


def test_text_bodies_are_escaped_in_pre():
    out = render_body(None, "<script>alert(1)</script>\n& <b>x</b>")
    assert out.kind == "text" and out.html.startswith("<pre")
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html and "&amp;" in out.html
    assert render_text(None).endswith("></pre>")
    assert render_body("  ", "").kind == "empty"
    both = render_body("<p>h</p>", "t", prefer="text")
    assert both.kind == "text"
    assert render_body("<p>h</p>", "t").kind == "html"
    with pytest.raises(ValidationError):
        render_body("<p>h</p>", "t", prefer="pdf")


def test_frame_is_sandboxed_and_escaped():
    body = sanitize_html(hostile_html(TRACKER))
    framed = frame_html(body)
    assert framed.startswith("<iframe") and framed.count("<") == 2      # everything else lives in srcdoc, escaped
    sandbox = re.search(r'sandbox="([^"]*)"', framed).group(1)
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    doc = html.unescape(re.search(r'srcdoc="([^"]*)"', framed).group(1))
    assert "default-src 'none'; img-src data:;" in doc and '<base target="_blank">' in doc
    assert "Hola from Hotel Sol" in doc and "<script" not in doc.lower()
    remote = frame_html(sanitize_html("<img src='https://x.example/a.png'>", allow_remote_images=True))
    assert "img-src data: http: https:" in html.unescape(remote)
    text = RenderedBody(html=render_text("hi"), kind="text")
    assert frame_html(text).startswith('<div class="vmk-body vmk-body-text"><pre') and text.frame() == frame_html(text)


def test_headers_are_escaped():
    out = headers_html({"from_address": "x@y.example", "from_name": "<b>Eve</b>", "subject": "<img src=x onerror=1>",
                        "to_addresses": ["a@b.example", "c@d.example"], "cc_addresses": [], "sent_at": None},
                       accounts="office")
    assert "<b>Eve" not in out and "&lt;img" in out and "a@b.example, c@d.example" in out and "office" in out
    assert "Cc" not in out and "(no date)" in out


def test_render_stored_mail_and_attachments(store, tmp_path):
    (eid, plain) = save(store, hostile_mail(1, tracker=TRACKER), make_mail(2))
    out = render_email(store, eid)
    assert out.kind == "html" and out.inline_images == 1 and out.missing_inline == []
    assert out.blocked_images == [f"{TRACKER}/pixel.png"]
    assert "data:image/png;base64," in out.html
    assert render_email(store, eid, prefer="text").kind == "text"
    assert render_email(store, plain).kind == "text"

    listing = attachment_list(store, eid)
    assert list(listing["filename"]) == ["logo.png", "../../voucher B-4711.pdf"]
    assert "content" not in listing
    assert list(attachment_list(store, eid, include_inline=False)["filename"]) == ["../../voucher B-4711.pdf"]
    pdf_index = int(listing[~listing["is_inline"]]["part_index"].iloc[0])

    # saving into a folder uses a sanitised name, never a path outside it
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    written = save_attachment(store, eid, pdf_index, out_dir)
    assert written.parent == out_dir and written.name == "voucher B-4711.pdf" and written.read_bytes() == PDF_BYTES
    with pytest.raises(ValidationError, match="already exists"):
        save_attachment(store, eid, pdf_index, out_dir)
    assert save_attachment(store, eid, pdf_index, written, overwrite=True) == written
    explicit = save_attachment(store, eid, pdf_index, tmp_path / "v.pdf")
    assert explicit.read_bytes() == PDF_BYTES
    with pytest.raises(ValidationError, match="does not exist"):
        save_attachment(store, eid, pdf_index, tmp_path / "nope" / "v.pdf")
    with pytest.raises(NotFoundError):
        save_attachment(store, eid, 99, tmp_path / "w.pdf")

    link = download_link(store, eid, pdf_index)
    assert 'download="voucher B-4711.pdf"' in link
    assert "data:application/octet-stream;base64," + base64.b64encode(PDF_BYTES).decode() in link
    assert "save it to a file" in download_link(store, eid, pdf_index, max_size=3)


def test_safe_filename():
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a\x00b\r\n.txt") == "a_b_.txt"
    assert safe_filename(None, "application/pdf", 3) == "attachment-3.pdf"
    assert safe_filename("...", None, 1) == "attachment-1.bin"
    assert safe_filename("C:\\x\\y.doc") == "y.doc"
    assert safe_filename("a:b?.txt") == "a_b_.txt"
    assert len(safe_filename("a" * 500)) == 200
