"""Mails for the workbench tests: a hostile HTML mail with an inline image and an attachment."""
from __future__ import annotations

import base64
from email.message import EmailMessage
from email.utils import format_datetime

from mailfactory import BASE_DATE

#: A 1x1 PNG.
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF_BYTES = b"%PDF-1.4\n% vmailkit test attachment\n"


def hostile_html(tracker: str = "http://127.0.0.1:9/track") -> str:
    """HTML with a script, event handlers, javascript: links, style sheets and remote images.

    Every remote load points under ``tracker`` so a test can count what was fetched.
    """
    return f"""<html><head><title>t</title>
<style>@import url({tracker}/css-import); body {{ background: url({tracker}/css-bg); }}</style>
<script>document.title = 'PWNED-script'; fetch('{tracker}/script');</script>
<link rel="stylesheet" href="{tracker}/link.css">
</head><body onload="document.title='PWNED-onload'">
<h1 id="greeting">Hola from Hotel Sol</h1>
<p style="color: #123456; background-image: url({tracker}/style-bg)">Your booking <b>B-4711</b> is confirmed.</p>
<img id="remote" src="{tracker}/pixel.png" alt="tracker">
<img id="broken" src="x" onerror="document.title='PWNED-onerror'; fetch('{tracker}/onerror')">
<img id="logo" src="cid:logo@hotelsol.example" alt="logo">
<a id="jslink" href="javascript:document.title='PWNED-js'">click me</a>
<a id="weblink" href="https://hotelsol.example/booking">booking page</a>
<div id="clicky" onclick="document.title='PWNED-click'" onmouseover="fetch('{tracker}/hover')">hover me</div>
<iframe src="{tracker}/frame"></iframe>
<form action="{tracker}/form"><input name="q"><button>go</button></form>
<svg><image href="{tracker}/svg"/></svg>
<object data="{tracker}/object"></object>
</body></html>"""


def hostile_mail(n: int = 1, *, tracker: str = "http://127.0.0.1:9/track", subject: str | None = None) -> bytes:
    """A multipart mail: text + hostile HTML with an inline ``cid:`` PNG, and a PDF attachment."""
    msg = EmailMessage()
    msg["From"] = "Hotel Sol <reservas@hotelsol.example>"
    msg["To"] = "office@tour.example"
    msg["Cc"] = "Ben <ben@tour.example>"
    msg["Subject"] = subject or f"Confirmation B-{4710 + n} <script>alert(1)</script>"
    msg["Date"] = format_datetime(BASE_DATE.replace(hour=(9 + n) % 24))
    msg["Message-ID"] = f"<html{n}@hotelsol.example>"
    msg.set_content("Your booking B-4711 is confirmed.\n<b>not bold</b> & friends")
    msg.add_alternative(hostile_html(tracker), subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(PNG_1PX, maintype="image", subtype="png", cid="<logo@hotelsol.example>", filename="logo.png",
                         disposition="inline")
    msg.add_attachment(PDF_BYTES, maintype="application", subtype="pdf", filename="../../voucher B-4711.pdf")
    return bytes(msg)
