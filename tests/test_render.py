"""Safe display of mail: sanitising, blocked remote images, inline images, attachments."""
from __future__ import annotations

import base64
import html
import os
import re
from email.message import EmailMessage

import pandas as pd
import pytest

from mailfactory import make_mail
from uimail import PDF_BYTES, PNG_1PX, hostile_html, hostile_mail
from vmailkit import NotFoundError, Store, ValidationError, make_account
from vmailkit.render import (
    BLOCKED_IMAGE,
    MAX_FILENAME_BYTES,
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
from vmailkit.ingest import save_received

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
    res = save_received(store, "anna", acc.name, [(i + 1, r) for i, r in enumerate(raws)])
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


# -- hostile attachment names and saving (issue 11, point 9) ------------------------------------------

BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
                 "\u200e", "\u200f", "\u061c"]


def named_parts_mail(*names: str | None, subject: str = "Files") -> bytes:
    """A mail with one attachment per name (None: a part without a name); content ``data-<i>``."""
    msg = EmailMessage()
    msg["From"] = "Hotel Sol <reservas@hotelsol.example>"
    msg["To"] = "office@tour.example"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(names))}@names.example>"
    msg.set_content("see the files")
    for i, name in enumerate(names):
        kwargs = {"filename": name} if name is not None else {}
        msg.add_attachment(f"data-{i}".encode(), maintype="application", subtype="octet-stream", **kwargs)
    return bytes(msg)


def parts(store: Store, eid: int) -> dict[str | None, int]:
    frame = attachment_list(store, eid)
    return {r.filename: int(r.part_index) for r in frame.itertuples(index=False)}


def test_safe_filename_cuts_by_utf8_bytes_and_keeps_the_extension():
    euro = safe_filename("€" * 200 + ".pdf")
    assert len(euro.encode("utf-8")) <= MAX_FILENAME_BYTES <= 255
    assert euro.endswith(".pdf") and set(euro[:-4]) == {"€"}            # no half character
    assert len(euro.encode("utf-8")) > MAX_FILENAME_BYTES - 3            # cut as late as possible
    no_ext = safe_filename("€" * 200)
    assert len(no_ext.encode("utf-8")) <= MAX_FILENAME_BYTES and set(no_ext) == {"€"}
    emoji = safe_filename("😀" * 80 + "é.tar.gz")
    assert emoji.endswith(".gz") and len(emoji.encode("utf-8")) <= MAX_FILENAME_BYTES
    emoji.encode("utf-8").decode("utf-8")                               # whole characters only
    # an "extension" that is itself huge is not kept whole
    odd = safe_filename("a." + "ü" * 300)
    assert len(odd.encode("utf-8")) <= MAX_FILENAME_BYTES and odd.startswith("a.ü")
    assert safe_filename("short name.pdf") == "short name.pdf"


@pytest.mark.parametrize("name", ["CON", "con", "NUL.txt", "nul.tar.gz", "COM1", "com9.log", "LPT9", "lpt1.PDF", "aux",
                                  "Aux.TXT", "PRN", "CON .txt", "conin$", "CLOCK$", "COM¹.doc"])
def test_safe_filename_neutralises_windows_device_names(name):
    assert safe_filename(name) == "_" + name


@pytest.mark.parametrize("name", ["CONSOLE.txt", "com10", "nullify.txt", "lpt.txt", "auxiliary", "icon.png", "my con.txt"])
def test_safe_filename_keeps_names_that_are_not_devices(name):
    assert safe_filename(name) == name


@pytest.mark.parametrize("control", BIDI_CONTROLS)
def test_safe_filename_strips_bidi_controls(control):
    assert safe_filename(f"invoice{control}fdp.exe") == "invoicefdp.exe"     # the true extension shows
    assert safe_filename(f"{control}report.pdf{control}") == "report.pdf"


def test_safe_filename_strips_other_invisible_and_control_characters():
    assert safe_filename("a\u200bb\ufeff\u00ad.txt") == "ab.txt"          # zero-width space, BOM, soft hyphen
    assert safe_filename("x\x85y\u2028z\x9b.txt") == "x_y_z_.txt"         # C1 controls, line separator
    assert safe_filename("tab\there.txt") == "tab_here.txt"
    assert safe_filename("👩\u200d💻 notes.txt") == "👩\u200d💻 notes.txt"  # ZWJ spells the emoji: kept
    assert safe_filename("\u202e\u200f") == "attachment-0.bin"
    assert safe_filename("e\u0301.txt") == "é.txt"                        # NFC


def test_safe_filename_takes_missing_values():
    # pandas puts NaN into a text column that has both names and no names (calendar invites, signed mail)
    for missing in (None, float("nan"), pd.NA, ""):
        assert safe_filename(missing, "application/pdf", 3) == "attachment-3.pdf"
    assert safe_filename(float("nan"), float("nan"), 2) == "attachment-2.bin"


def test_attachment_list_has_no_nan_for_unnamed_parts(store):
    (eid,) = save(store, named_parts_mail("named.txt", None))
    frame = attachment_list(store, eid)
    assert list(frame["filename"]) == ["named.txt", None]
    assert frame["is_inline"].dtype == bool and [type(v) for v in frame["size"]] == [int, int]
    unnamed = int(frame["part_index"].iloc[1])
    assert 'download="attachment-' in download_link(store, eid, unnamed)


def test_save_attachment_with_hostile_names(store, tmp_path):
    names = ["€" * 200 + ".pdf", "NUL.txt", "invoice\u202efdp.exe", "con", "a\u2066b\u2069.txt", None]
    (eid,) = save(store, named_parts_mail(*names))
    index = parts(store, eid)
    out = tmp_path / "out"
    out.mkdir()
    written = {name: save_attachment(store, eid, index[name], out) for name in names}
    for i, name in enumerate(names):
        path = written[name]
        assert path.parent == out and path.read_bytes() == f"data-{i}".encode()
        assert len(path.name.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert written[names[0]].name.endswith(".pdf")
    assert written["NUL.txt"].name == "_NUL.txt" and written["con"].name == "_con"
    assert written["invoice\u202efdp.exe"].name == "invoicefdp.exe"
    assert written["a\u2066b\u2069.txt"].name == "ab.txt"
    assert written[None].name == f"attachment-{index[None]}.bin"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written.values())   # nothing else


@pytest.fixture
def pdf_mail(store) -> tuple[int, int]:
    (eid,) = save(store, hostile_mail(1, tracker=TRACKER))
    listing = attachment_list(store, eid)
    return eid, int(listing[~listing["is_inline"]]["part_index"].iloc[0])


def test_save_refuses_a_dangling_link_in_the_folder(store, tmp_path, pdf_mail):
    eid, pdf = pdf_mail
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    planted = elsewhere / "planted.pdf"
    (out / "voucher B-4711.pdf").symlink_to(planted)          # dangling: its target does not exist
    for overwrite in (False, True):
        with pytest.raises(ValidationError, match="link"):
            save_attachment(store, eid, pdf, out, overwrite=overwrite)
        assert not planted.exists() and not os.path.lexists(planted)     # the link's target was never created
    # the same for a link named explicitly as the file to write
    with pytest.raises(ValidationError, match="link"):
        save_attachment(store, eid, pdf, out / "voucher B-4711.pdf")
    assert not planted.exists() and list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["voucher B-4711.pdf"]   # no temporary file left
    assert (out / "voucher B-4711.pdf").is_symlink()


def test_save_refuses_a_link_to_an_existing_file(store, tmp_path, pdf_mail):
    eid, pdf = pdf_mail
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    link = out / "voucher B-4711.pdf"
    link.symlink_to(victim)
    for overwrite in (False, True):
        with pytest.raises(ValidationError, match="link"):
            save_attachment(store, eid, pdf, out, overwrite=overwrite)
        with pytest.raises(ValidationError, match="link"):
            save_attachment(store, eid, pdf, link, overwrite=overwrite)
    assert victim.read_bytes() == b"keep me" and link.is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["voucher B-4711.pdf"]


def test_overwrite_replaces_the_file_atomically(store, tmp_path, pdf_mail):
    eid, pdf = pdf_mail
    out = tmp_path / "out"
    out.mkdir()
    target = out / "voucher B-4711.pdf"
    target.write_bytes(b"old content that is longer than the new one" * 10)
    hard = tmp_path / "hard-link-to-old"
    os.link(target, hard)                                       # a second name of the old file
    with pytest.raises(ValidationError, match="already exists"):
        save_attachment(store, eid, pdf, out)
    assert save_attachment(store, eid, pdf, out, overwrite=True) == target
    assert target.read_bytes() == PDF_BYTES and not target.is_symlink()
    assert hard.read_bytes().startswith(b"old content")        # a new file took the name; the old one is untouched
    assert os.stat(target).st_ino != os.stat(hard).st_ino
    assert sorted(p.name for p in out.iterdir()) == ["voucher B-4711.pdf"]   # the temporary file is gone
    other = tmp_path / "other"
    (other / "voucher B-4711.pdf").mkdir(parents=True)        # a folder where the file would go
    with pytest.raises(ValidationError, match="is a folder"):
        save_attachment(store, eid, pdf, other, overwrite=True)
    assert [p.name for p in other.iterdir()] == ["voucher B-4711.pdf"]


def test_a_linked_folder_is_used_as_given(store, tmp_path, pdf_mail):
    """Decision: the folder is the person's choice and may be (or lie under) a link; only the file
    itself is never written through a link."""
    eid, pdf = pdf_mail
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    written = save_attachment(store, eid, pdf, tmp_path / "linked")
    assert written == tmp_path / "linked" / "voucher B-4711.pdf"
    assert (real / "voucher B-4711.pdf").read_bytes() == PDF_BYTES


def test_save_reports_plain_errors(store, tmp_path, pdf_mail):
    eid, pdf = pdf_mail
    with pytest.raises(ValidationError, match="choose a file or folder"):
        save_attachment(store, eid, pdf, "  ")
    with pytest.raises(ValidationError, match="too long"):
        save_attachment(store, eid, pdf, tmp_path / ("€" * 100 + ".pdf"))   # 302 bytes: the caller's own name
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValidationError, match="does not exist"):
        save_attachment(store, eid, pdf, tmp_path / "file" / "v.pdf")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "r.duckdb" and not p.name.startswith("r.duckdb")) == ["file"]


def test_only_the_asked_part_is_read(store, pdf_mail, tmp_path, monkeypatch):
    """Listing never reads content; saving or a download link reads that one part, once."""
    eid, pdf = pdf_mail
    calls: list[object] = []
    real, real_one = store.attachments, store.attachment
    monkeypatch.setattr(store, "attachments", lambda email_id, *, with_content=False: (
        calls.append(with_content), real(email_id, with_content=with_content))[1])
    monkeypatch.setattr(store, "attachment", lambda email_id, part: (calls.append(part), real_one(email_id, part))[1])
    attachment_list(store, eid)
    assert calls == [False]
    download_link(store, eid, pdf)
    save_attachment(store, eid, pdf, tmp_path)
    assert calls == [False, pdf, pdf]
    render_email(store, save(store, make_mail(5, attachment=PDF_BYTES))[0])   # a text body reads no content
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@x.example", "b@x.example", "html", "<h@x.example>"
    msg.set_content("text")
    msg.add_alternative('<p>no inline image, <img src="https://x.example/a.png"></p>', subtype="html")
    msg.add_attachment(PDF_BYTES, maintype="application", subtype="pdf", filename="a.pdf")
    out = render_email(store, save(store, bytes(msg))[0])                      # HTML without cid: reads none either
    assert out.kind == "html" and out.blocked_images == ["https://x.example/a.png"]
    assert calls == [False, True, True]
