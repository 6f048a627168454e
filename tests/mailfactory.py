"""Deterministic test messages (bytes exactly as a sender would write them)."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

BASE_DATE = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def make_mail(
    n: int,
    *,
    subject: str | None = None,
    sender: str = "Hotel Sol <reservas@hotelsol.example>",
    to: str = "office@tour.example",
    message_id: str | None | bool = True,
    body: str | None = None,
    attachment: bytes | None = None,
    date: datetime | None = None,
    extra_headers: str = "",
    eol: str = "\r\n",
) -> bytes:
    """Mail number ``n``: dated ``BASE_DATE + n hours`` unless ``date`` is given."""
    date = date or (BASE_DATE + timedelta(hours=n))
    subject = subject if subject is not None else f"Booking {700 + n} rooming list"
    body = body if body is not None else f"Dear team,\nplease find the list for booking {700 + n}.\nRegards"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
    ]
    if message_id is True:
        lines.append(f"Message-ID: <mail{n}@hotelsol.example>")
    elif isinstance(message_id, str):
        lines.append(f"Message-ID: {message_id}")
    lines.append("MIME-Version: 1.0")
    if extra_headers:
        lines.extend(extra_headers.rstrip("\n").split("\n"))
    if attachment is None:
        lines += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "", *body.split("\n")]
    else:
        b64 = base64.encodebytes(attachment).decode("ascii").rstrip("\n").split("\n")
        lines += [
            'Content-Type: multipart/mixed; boundary="BOUNDARY"', "",
            "--BOUNDARY", "Content-Type: text/plain; charset=utf-8", "", *body.split("\n"),
            "--BOUNDARY", 'Content-Type: application/pdf; name="list.pdf"',
            'Content-Disposition: attachment; filename="list.pdf"', "Content-Transfer-Encoding: base64", "",
            *b64, "--BOUNDARY--",
        ]
    return (eol.join(lines) + eol).encode("utf-8")
