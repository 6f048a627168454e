#!/usr/bin/env python3
"""Import benchmark: vmailkit's check and download against raw imaplib baselines (and mbsync).

One run:

1. starts the private test Dovecot (``tests/dovecot.py``) in a temp dir, creates a user and seeds its
   INBOX with N deterministic, realistic messages (default 10,000, ~49 KB on average) written
   straight into the Maildir ``cur/`` folder; the generated messages are cached between runs
   (keyed by N, the seed and the generator's source);
2. warms the server once (EXAMINE + one FETCH of every item the measured clients ask for, so
   Dovecot has built its index and cache and the files are in the page cache) -- not counted;
3. measures the baselines over IMAPS with plain :mod:`imaplib`: a raw chunked ``BODY.PEEK[]``
   fetch (bytes only), a raw chunked header fetch decoded with :mod:`email.header` /
   :mod:`email.utils`, and a raw fetch of exactly the items ``check`` asks for (not decoded);
4. measures vmailkit on the same mailbox, each run with a fresh DuckDB file: ``check`` (headers of
   all N) and ``download(all_new=True)`` (fetch, raw kept, parsed, stored, deduplicated; no
   auto-matching), and reports the DuckDB file size;
5. measures ``mbsync`` (isync) pulling the INBOX into a local Maildir when it is installed;
6. prints a table (best of ``--repeat``) with wall time, msgs/s, MB/s and the ratios against the
   targets.

Before each measurement it waits (``--quiet-cpu``, ``--quiet-timeout``) until other programs leave
the CPUs alone: on a 2-core machine a test suite running beside it doubles the import time.
``--profile`` adds stage timers, what-if variants of the DuckDB handling, a parse-only timing and
cProfile listings (import as shipped, import with parsing in-process, check).

Run: ``make bench`` or ``.venv/bin/python benchmarks/import_bench.py --messages 10000``.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import email.header
import email.utils
import hashlib
import imaplib
import inspect
import io
import json
import os
import platform
import pstats
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from dovecot import DovecotServer, find_dovecot  # noqa: E402
from helpers import add_account  # noqa: E402

import vmailkit  # noqa: E402
from vmailkit import Store  # noqa: E402

MB = 1_000_000
#: mbsync's documented figure for 10,000 messages (the import target), scaled linearly to N.
MBSYNC_REFERENCE_S_PER_10K = 17.0
#: check / raw header fetch must stay at or below this.
CHECK_TARGET_RATIO = 1.3

# =============================================================================== message generator
# Everything below down to the cache section defines the generated mailbox; its source text is
# part of the cache key, so editing it invalidates cached mailboxes automatically.

BASE_DATE = datetime(2025, 1, 6, 7, 30, tzinfo=timezone.utc)

_WORDS = (
    "the of and to in is for on that with as are this be by from at or have an will your we our "
    "you can more all new about not has was but their they which one time please booking hotel "
    "room rooms guests arrival departure transfer airport group tour itinerary invoice payment "
    "deposit balance confirmation rate rates season offer special breakfast dinner excursion "
    "voucher reference attached list request update changes available availability contract "
    "allotment release days night nights double single twin suite sea view garden pool beach "
    "city center museum guide coach driver flight schedule check-in check-out passenger "
    "passengers name names number thanks regards kind best team office reservations sales "
    "Zimmer Buchung Anreise Abreise Gäste Frühstück Rechnung Bestätigung Grüße Straße für über "
    "habitación reserva llegada salida huéspedes desayuno factura confirmación señor año mañana "
    "chambre réservation arrivée départ petit-déjeuner facture à bientôt très été "
    "quarto reserva chegada saída pequeno-almoço fatura obrigado ação não"
).split()

_FIRST = ("Anna", "Ben", "Carla", "David", "Elena", "Frank", "Greta", "Hugo", "Inés", "Jörg", "Karin",
          "Luis", "Marta", "Nils", "Olga", "Pablo", "Renée", "Sören", "Teresa", "Ulrich", "Zoë")
_LAST = ("Müller", "García", "Dubois", "Rossi", "Smith", "Nowak", "Silva", "Jensen", "Schmidt",
         "López", "Martin", "Bianchi", "Johnson", "Kowalski", "Pereira", "Ødegaard", "Weiß")
_ORGS = ("hotelsol", "alpenblick", "riviera-tours", "citycoach", "museo-prado", "airline-xyz",
         "booking-partner", "travelnews", "cruiseline", "gasthof-post", "bank-example", "olympia-bus")
_TLDS = ("example", "example.com", "example.org", "example.net")

_SUBJECTS = (
    "Booking {n} rooming list", "Re: Booking {n} rooming list", "Invoice {n}", "Confirmation {n}",
    "Fwd: Group {n} itinerary", "Allotment release {n}", "Transfer times for group {n}",
    "Payment received - ref {n}", "Updated contract season {y}", "Question about booking {n}",
)
_SUBJECTS_INTL = (
    "Buchungsbestätigung {n} – Zimmerliste für Gruppe", "Rechnung Nr. {n} für Ihre Reise über München",
    "Confirmación de reserva {n}: habitación con vista al mar", "Réservation {n} : arrivée à Nice été {y}",
    "Grüße aus Köln – Änderungen zur Buchung {n}", "Pedido {n} – pequeno-almoço incluído, ação necessária",
    "Ζητούμενη κράτηση {n}", "Бронирование {n}: список гостей", "予約確認 {n} 東京ホテル", "Zoë's café ☕ offer {n}",
)
_NEWSLETTER_SUBJECTS = (
    "Your weekly travel deals – issue {n}", "News from {org}: {y} season preview",
    "Last minute offers for {month}", "🌴 Summer specials inside – issue {n}",
    "Newsletter {month} {y}: Neuigkeiten für Partner", "Boletín {month}: ofertas exclusivas",
)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _corpus(seed: int) -> str:
    """About 1.5 MB of deterministic pseudo-text to slice message bodies from."""
    rng = random.Random(f"corpus:{seed}")
    out: list[str] = []
    size = 0
    while size < 1_500_000:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 22)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice((". ", ". ", ". ", "? ", "! ", ".\n\n"))
        out.append(sentence)
        size += len(sentence)
    return "".join(out)


def _text(rng: random.Random, corpus: str, n: int) -> str:
    start = rng.randrange(0, len(corpus) - n - 1)
    return corpus[start:start + n]


def _wrap(text: str, width: int = 72) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    org = rng.choice(_ORGS)
    local = (first[0] + "." + last).lower().encode("ascii", "ignore").decode() or "info"
    return f"{first} {last}", f"{local}@{org}.{rng.choice(_TLDS)}"


def _encode_word(text: str, rng: random.Random) -> str:
    """RFC 2047 encoded-word(s) for ``text`` (B or Q, UTF-8 or ISO-8859-1 when it fits)."""
    charset = "utf-8"
    with contextlib.suppress(UnicodeEncodeError):
        text.encode("iso-8859-1")
        if rng.random() < 0.4:
            charset = "iso-8859-1"
    return email.header.Header(text, charset, maxlinelen=76, header_name="Subject").encode()


def _addr_header(name: str, addr: str, rng: random.Random) -> str:
    if any(ord(c) > 127 for c in name):
        return f"{_encode_word(name, rng)} <{addr}>"
    return f'"{name}" <{addr}>' if rng.random() < 0.5 else f"{name} <{addr}>"


def _b64_lines(data: bytes) -> list[str]:
    return base64.encodebytes(data).decode("ascii").rstrip("\n").split("\n")


def _qp_lines(text: str) -> list[str]:
    import quopri

    return quopri.encodestring(text.encode("utf-8")).decode("ascii").replace("\r\n", "\n").split("\n")


def _attachment(rng: random.Random, kind: str, size: int) -> tuple[str, str, bytes]:
    """(content type, file name, bytes): seeded random bytes behind a real magic number."""
    n = rng.randint(1000, 99999)
    if kind == "pdf":
        head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\nstream\n"
        name = rng.choice(("Rooming list {n}.pdf", "Rechnung_{n}.pdf", "factura-{n}.pdf", "voucher_{n}.pdf",
                           "Itinerary {n} – final.pdf"))
        return "application/pdf", name.format(n=n), head + rng.randbytes(max(0, size - len(head))) + b"\n%%EOF\n"
    if kind == "jpeg":
        head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        name = rng.choice(("IMG_{n}.jpg", "photo-{n}.jpeg", "Hotel façade {n}.jpg", "scan{n}.jpg"))
        return "image/jpeg", name.format(n=n), head + rng.randbytes(max(0, size - len(head) - 2)) + b"\xff\xd9"
    head = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00"
    name = rng.choice(("Contract {n}.docx", "Preisliste_{n}.xlsx", "lista-{n}.xlsx"))
    ctype = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document" if name.endswith("docx")
             else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return ctype, name.format(n=n), head + rng.randbytes(max(0, size - len(head)))


def _filename_params(name: str) -> tuple[str, str]:
    if all(ord(c) < 128 for c in name):
        return f'name="{name}"', f'filename="{name}"'
    # RFC 2231 for the disposition, RFC 2047 in name= (what most mail programs send)
    from urllib.parse import quote

    enc = email.header.Header(name, "utf-8").encode()
    return f'name="{enc}"', f"filename*=utf-8''{quote(name, safe='')}"


def _attachment_size(rng: random.Random) -> int:
    """20-300 KB of file, skewed towards the small end (median ~33 KB, mean ~72 KB)."""
    return int(20_000 + 280_000 * rng.random() ** 4.4)


def _html_newsletter(rng: random.Random, corpus: str, org: str, target: int) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Newsletter</title>",
        "<style>body{font-family:Arial,sans-serif;color:#333}td{padding:8px}.btn{background:#0a6;color:#fff}</style>",
        "</head><body><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\">",
    ]
    size = sum(map(len, parts))
    i = 0
    while size < target:
        i += 1
        block = (
            f"<tr><td><h2>{_text(rng, corpus, rng.randint(20, 60)).strip()}</h2>"
            f"<img src=\"https://img.{org}.example/{i}.jpg\" width=\"600\" alt=\"\">"
            f"<p>{_text(rng, corpus, rng.randint(200, 900))}</p>"
            f"<a class=\"btn\" href=\"https://click.{org}.example/t/{rng.getrandbits(64):016x}?u={i}\">Read more</a>"
            "</td></tr>\n"
        )
        parts.append(block)
        size += len(block)
    parts.append(f"<tr><td><small>Unsubscribe: https://{org}.example/u/{rng.getrandbits(48):x}</small></td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)


def make_message(i: int, seed: int, corpus: str) -> bytes:
    """Message number ``i`` of the mailbox (deterministic in ``seed`` and ``i``)."""
    rng = random.Random(f"msg:{seed}:{i}")
    kind_roll = rng.random()
    date = BASE_DATE + timedelta(minutes=47 * i + rng.randint(0, 40))
    from_name, from_addr = _person(rng)
    to_name, to_addr = rng.choice((("Office", "office@tour.example"), ("Anna Berg", "anna@tour.example"),
                                   ("Reservations", "res@tour.example")))
    n = rng.randint(1000, 99999)
    intl = rng.random() < 0.25
    if kind_roll < 0.42:
        kind = "plain"
    elif kind_roll < 0.70:
        kind = "newsletter"
    elif kind_roll < 0.975:
        kind = "attachment"
    else:
        kind = "longlines"

    if kind == "newsletter":
        org = rng.choice(_ORGS)
        subject = rng.choice(_NEWSLETTER_SUBJECTS).format(n=n, org=org, y=date.year, month=_MONTHS[date.month - 1])
        from_name, from_addr = f"{org.replace('-', ' ').title()} News", f"news@{org}.example"
    else:
        subject = rng.choice(_SUBJECTS_INTL if intl else _SUBJECTS).format(n=n, y=date.year)
    subj_header = _encode_word(subject, rng) if any(ord(c) > 127 for c in subject) else subject

    mid = f"<{date:%Y%m%d%H%M%S}.{rng.getrandbits(40):010x}.{i}@{from_addr.split('@')[1]}>"
    hdr = [
        f"Return-Path: <{from_addr}>",
        f"Delivered-To: {to_addr}",
        f"Received: from mx{rng.randint(1, 9)}.{from_addr.split('@')[1]} (mx.{from_addr.split('@')[1]} "
        f"[192.0.2.{rng.randint(1, 254)}])\r\n\tby mail.tour.example (Postfix) with ESMTPS id {rng.getrandbits(40):X}\r\n"
        f"\tfor <{to_addr}>; {email.utils.format_datetime(date)}",
        f"Received: from localhost (localhost [127.0.0.1])\r\n\tby mx.{from_addr.split('@')[1]} with ESMTP; "
        f"{email.utils.format_datetime(date - timedelta(seconds=3))}",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + from_addr.split("@")[1]
        + "; s=sel1;\r\n\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh="
        + base64.b64encode(rng.randbytes(32)).decode() + ";\r\n\tb="
        + "\r\n\t ".join(_b64_lines(rng.randbytes(256))),
        f"From: {_addr_header(from_name, from_addr, rng)}",
        f"To: {_addr_header(to_name, to_addr, rng)}",
    ]
    if rng.random() < 0.2:
        cc_name, cc_addr = _person(rng)
        hdr.append(f"Cc: {_addr_header(cc_name, cc_addr, rng)}")
    hdr += [
        f"Subject: {subj_header}",
        f"Date: {email.utils.format_datetime(date.astimezone(timezone(timedelta(hours=rng.choice((0, 1, 2, -5))))))}",
        f"Message-ID: {mid}",
    ]
    if rng.random() < 0.3 and kind != "newsletter":
        ref = f"<{rng.getrandbits(48):x}@tour.example>"
        hdr += [f"In-Reply-To: {ref}", f"References: {ref}"]
    hdr.append("MIME-Version: 1.0")
    if kind == "newsletter":
        hdr += [f"List-Unsubscribe: <https://{from_addr.split('@')[1]}/u/{rng.getrandbits(48):x}>",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click", "Precedence: bulk",
                "X-Mailer: MailBlaster 7.2"]
    else:
        hdr.append(rng.choice(("X-Mailer: Microsoft Outlook 16.0", "User-Agent: Mozilla Thunderbird",
                               "X-Mailer: Apple Mail (2.3731)")))

    text = _text(rng, corpus, rng.randint(300, 2500) if kind != "plain" else rng.randint(300, 6000))
    greeting = f"Hello {to_name.split()[0]},\n\n"
    sig = f"\n\n--\n{from_name}\n{from_addr}\n"
    body_text = greeting + text + sig

    lines: list[str]
    if kind == "plain":
        if intl or rng.random() < 0.5:
            lines = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable", "",
                     *_qp_lines(body_text)]
        else:
            lines = ["Content-Type: text/plain; charset=utf-8; format=flowed", "Content-Transfer-Encoding: 8bit",
                     "", *_wrap(body_text)]
    elif kind == "longlines":
        # CSV export / one-line HTML: 8bit lines of 2-20 K characters
        rows = []
        for _ in range(rng.randint(2, 8)):
            rows.append(";".join(_text(rng, corpus, rng.randint(20, 60)).replace("\n", " ").replace(";", ",")
                                 for _ in range(rng.randint(50, 400))))
        lines = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit", "",
                 *_wrap(greeting.strip()), "", *rows, *_wrap(sig)]
    elif kind == "newsletter":
        boundary = f"----=_Part_{rng.getrandbits(64):x}"
        html = _html_newsletter(rng, corpus, from_addr.split("@")[1].split(".")[0], rng.randint(10_000, 55_000))
        alt = [f"--{boundary}", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable",
               "", *_qp_lines(body_text), f"--{boundary}", "Content-Type: text/html; charset=utf-8",
               "Content-Transfer-Encoding: quoted-printable", "", *_qp_lines(html)]
        if rng.random() < 0.3:  # multipart/related with an inline logo
            outer = f"----=_Rel_{rng.getrandbits(64):x}"
            _, _, logo = _attachment(rng, "jpeg", rng.randint(3_000, 25_000))
            lines = [f'Content-Type: multipart/related; boundary="{outer}"; type="multipart/alternative"', "",
                     f"--{outer}", f'Content-Type: multipart/alternative; boundary="{boundary}"', "",
                     *alt, f"--{boundary}--", "", f"--{outer}", 'Content-Type: image/jpeg; name="logo.jpg"',
                     "Content-Transfer-Encoding: base64", "Content-ID: <logo@news>",
                     'Content-Disposition: inline; filename="logo.jpg"', "", *_b64_lines(logo), f"--{outer}--", ""]
        else:
            lines = [f'Content-Type: multipart/alternative; boundary="{boundary}"', "", *alt, f"--{boundary}--", ""]
    else:  # attachment
        boundary = f"----=_NextPart_{rng.getrandbits(64):x}"
        lines = [f'Content-Type: multipart/mixed; boundary="{boundary}"', "",
                 "This is a multi-part message in MIME format.", "",
                 f"--{boundary}", "Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: quoted-printable", "", *_qp_lines(body_text)]
        for _ in range(1 if rng.random() < 0.85 else 2):
            kind_att = rng.choices(("pdf", "jpeg", "office"), weights=(5, 3, 2))[0]
            ctype, name, data = _attachment(rng, kind_att, _attachment_size(rng))
            pname, fname = _filename_params(name)
            lines += [f"--{boundary}", f"Content-Type: {ctype}; {pname}", "Content-Transfer-Encoding: base64",
                      f"Content-Disposition: attachment; {fname}", "", *_b64_lines(data)]
        lines += [f"--{boundary}--", ""]
    return ("\r\n".join(hdr + lines) + "\r\n").encode("utf-8")


def make_duplicate(original: bytes, i: int) -> bytes:
    """The same mail received again through a list alias: only transport headers differ."""
    return (f"Delivered-To: team@tour.example\r\nX-Original-To: team@tour.example\r\n"
            f"Received: from lists.tour.example by mail.tour.example; copy {i}\r\n").encode() + original


def generate(n: int, seed: int) -> list[bytes]:
    """The whole mailbox: ``n`` messages, about 1% of them re-deliveries of an earlier one."""
    corpus = _corpus(seed)
    out: list[bytes] = []
    for i in range(n):
        rng = random.Random(f"dup:{seed}:{i}")
        if i >= 50 and rng.random() < 0.01:
            out.append(make_duplicate(out[i - rng.randint(1, 50)], i))
        else:
            out.append(make_message(i, seed, corpus))
    return out


# =============================================================================== cache
def _generator_digest() -> str:
    src = "".join(inspect.getsource(f) for f in (
        _corpus, _text, _wrap, _person, _encode_word, _addr_header, _b64_lines, _qp_lines, _attachment,
        _filename_params, _attachment_size, _html_newsletter, make_message, make_duplicate, generate))
    src += repr((_WORDS, _FIRST, _LAST, _ORGS, _TLDS, _SUBJECTS, _SUBJECTS_INTL, _NEWSLETTER_SUBJECTS, BASE_DATE))
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def load_mailbox(n: int, seed: int, cache_dir: Path | None) -> tuple[list[bytes], bool]:
    """The generated messages, from the cache when present. Returns (messages, from_cache)."""
    if cache_dir is None:
        return generate(n, seed), False
    d = cache_dir / f"n{n}-s{seed}-{_generator_digest()}"
    blob, index = d / "messages.bin", d / "index.json"
    if blob.exists() and index.exists():
        lengths = json.loads(index.read_text())
        data = blob.read_bytes()
        if len(lengths) == n and sum(lengths) == len(data):
            out, pos = [], 0
            for ln in lengths:
                out.append(data[pos:pos + ln])
                pos += ln
            return out, True
    msgs = generate(n, seed)
    d.mkdir(parents=True, exist_ok=True)
    tmp = blob.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        for m in msgs:
            fh.write(m)
    os.replace(tmp, blob)
    index.write_text(json.dumps([len(m) for m in msgs]))
    return msgs, False


def seed_maildir(srv: DovecotServer, user: str, msgs: list[bytes]) -> None:
    """Write the messages straight into INBOX's ``cur/`` like Dovecot's own delivery would name them
    (``,S=<size>,W=<vsize>``; the files are CRLF so both are the length), owned by the mail uid,
    mtime = INTERNALDATE."""
    fdir = srv.ensure_folder(user)
    cur = fdir / "cur"
    pid = os.getpid()
    base_ts = int(BASE_DATE.timestamp())
    for i, raw in enumerate(msgs):
        ts = base_ts + 47 * 60 * i
        path = cur / f"{ts}.M{i:06d}P{pid}.bench,S={len(raw)},W={len(raw)}:2,"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if srv.is_root:
            os.chown(path, srv.mail_uid, srv.mail_gid)
        os.utime(path, (ts, ts))


# =============================================================================== measurements
@dataclass
class Measurement:
    name: str
    label: str
    seconds: list[float] = field(default_factory=list)
    messages: int = 0
    mbytes: float | None = None      # payload the throughput refers to (None: not a body transfer)
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds else None


def _imap(srv: DovecotServer, user) -> imaplib.IMAP4_SSL:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    c = imaplib.IMAP4_SSL(srv.host, srv.imaps_port, ssl_context=ctx, timeout=300)
    c.login(user.name, user.password)
    typ, data = c.select("INBOX", readonly=True)
    if typ != "OK":
        raise RuntimeError(f"EXAMINE INBOX failed: {data!r}")
    return c


def _all_uids(c: imaplib.IMAP4) -> list[int]:
    typ, data = c.uid("SEARCH", "ALL")
    if typ != "OK":
        raise RuntimeError(f"UID SEARCH failed: {data!r}")
    return sorted(int(x) for chunk in data if chunk for x in chunk.split())


def _chunks(uids: list[int], size: int):
    for start in range(0, len(uids), size):
        part = uids[start:start + size]
        yield f"{part[0]}:{part[-1]}"  # contiguous slice of the sorted full list


def _vmailkit_header_fields() -> str:
    try:
        from vmailkit.transport.imap import HEADER_FIELDS
        return str(HEADER_FIELDS)
    except Exception:  # noqa: BLE001 - the transport may change under us
        return "FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE"


def warm_up(srv: DovecotServer, user) -> tuple[float, int]:
    """EXAMINE (Dovecot builds uidlist + index) and fetch every item the measured clients ask for
    once (Dovecot fills its cache file, the page cache holds the files). Not counted."""
    t0 = time.perf_counter()
    c = _imap(srv, user)
    try:
        uids = _all_uids(c)
        fields = " ".join(sorted(set(_vmailkit_header_fields().split()) | {"FROM", "SUBJECT", "DATE"}))
        for rng in _chunks(uids, 1000):
            typ, data = c.uid("FETCH", rng, f"(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({fields})])")
            if typ != "OK":
                raise RuntimeError(f"warm-up FETCH failed: {data!r}")
    finally:
        c.logout()
    return time.perf_counter() - t0, len(uids)


def raw_full_fetch(srv: DovecotServer, user, chunk: int) -> tuple[int, int]:
    """imaplib: login, EXAMINE, UID SEARCH, chunked UID FETCH BODY.PEEK[]; count bytes only."""
    c = _imap(srv, user)
    count = nbytes = 0
    try:
        for rng in _chunks(_all_uids(c), chunk):
            typ, data = c.uid("FETCH", rng, "(BODY.PEEK[])")
            if typ != "OK":
                raise RuntimeError(f"FETCH failed: {data!r}")
            for item in data:
                if isinstance(item, tuple):
                    count += 1
                    nbytes += len(item[1])
            del data
    finally:
        c.logout()
    return count, nbytes


def raw_check_items(srv: DovecotServer, user, chunk: int) -> tuple[int, int]:
    """imaplib: chunked UID FETCH of exactly the items vmailkit's check asks for; nothing decoded."""
    items = f"(UID RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({_vmailkit_header_fields()})])"
    c = _imap(srv, user)
    count = nbytes = 0
    try:
        for rng in _chunks(_all_uids(c), chunk):
            typ, data = c.uid("FETCH", rng, items)
            if typ != "OK":
                raise RuntimeError(f"FETCH failed: {data!r}")
            for item in data:
                if isinstance(item, tuple):
                    count += 1
                    nbytes += len(item[0]) + len(item[1])
    finally:
        c.logout()
    return count, nbytes


_HEADER_PARSER = BytesHeaderParser(policy=compat32)


def _decode(value: str | None) -> str:
    if value is None:
        return ""
    return str(email.header.make_header(email.header.decode_header(value)))


def decode_header_block(block: bytes) -> tuple[str, str, str, datetime | None]:
    """Stdlib decoding of From/Subject/Date: (from name, from address, subject, date)."""
    msg = _HEADER_PARSER.parsebytes(block)
    name, addr = email.utils.parseaddr(msg.get("From", ""))
    subject = _decode(msg.get("Subject"))
    date = None
    raw_date = msg.get("Date")
    if raw_date:
        with contextlib.suppress(Exception):
            date = email.utils.parsedate_to_datetime(raw_date)
    return _decode(name), addr, subject, date


def raw_header_fetch(srv: DovecotServer, user, chunk: int) -> tuple[int, int]:
    """imaplib: chunked UID FETCH of FROM SUBJECT DATE, each message decoded with email.header/utils."""
    c = _imap(srv, user)
    count = nbytes = 0
    rows = []
    try:
        for rng in _chunks(_all_uids(c), chunk):
            typ, data = c.uid("FETCH", rng, "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
            if typ != "OK":
                raise RuntimeError(f"FETCH failed: {data!r}")
            for item in data:
                if isinstance(item, tuple):
                    count += 1
                    nbytes += len(item[1])
                    rows.append(decode_header_block(item[1]))
    finally:
        c.logout()
    if rows and not any(r[2] for r in rows):
        raise RuntimeError("header baseline decoded no subjects")
    return count, nbytes


def _new_store(work: Path, srv: DovecotServer, user, tag: str) -> tuple[Store, Path]:
    d = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))
    path = d / "vmail.duckdb"
    store = Store(path)
    store.add_user("bench", "bench@tour.example")
    add_account(store, srv, user, name="bench", protocol="imap", security="ssl")
    store.subscribe("bench", "bench")
    return store, d


def _db_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.name.startswith("vmail.duckdb"))


def vmk_check(srv, user, work: Path) -> tuple[int, float]:
    store, d = _new_store(work, srv, user, "check")
    try:
        t0 = time.perf_counter()
        result = vmailkit.check(store, "bench", passwords={"bench": user.password})
        dt = time.perf_counter() - t0
        if result.errors:
            raise RuntimeError(f"check failed: {result.errors}")
        return len(result.messages), dt
    finally:
        shutil.rmtree(d, ignore_errors=True)


#: Set by ``--cpu``: print the CPU time spent by the main process and by the whole machine.
SHOW_CPU = False


def _busy_seconds() -> float:
    """CPU time all processes of the machine spent busy so far (from /proc/stat), in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- peak memory
_MEMORY_CHILD = r"""
import json, os, sys, threading, time
from pathlib import Path
args = json.loads(sys.argv[1])
sys.path.insert(0, args["bench_dir"]); sys.path.insert(0, args["tests_dir"])

def rss_kb(pid, field="VmRSS:", source="status"):
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0

def pss_kb(pid):  # shared pages (forkserver's copy-on-write imports) counted once overall
    return rss_kb(pid, "Pss:", "smaps_rollup")

def descendants(root):
    kids, todo = [], [root]
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                found = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                found = []
            kids.extend(found); todo.extend(found)
    return kids

peak = {"main": 0, "total": 0}
stop = threading.Event()
def sample():
    me = os.getpid()
    while not stop.is_set():
        main = rss_kb(me)
        total = pss_kb(me) + sum(pss_kb(k) for k in descendants(me))
        peak["main"] = max(peak["main"], main); peak["total"] = max(peak["total"], total)
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
class Srv:  # what the helpers read of the test server
    host = args["host"]; imaps_port = args["port"]; ca_file = args["ca_file"]
class User:
    name = args["login"]; password = args["password"]; address = args["address"]
if args["kind"] == "raw":
    import import_bench
    count, nbytes = import_bench.raw_full_fetch(Srv, User, args["chunk"])
else:
    from helpers import add_account
    import vmailkit
    store = vmailkit.Store(Path(args["db"]))
    store.add_user("bench", "bench@tour.example")
    add_account(store, Srv, User, name="bench", protocol="imap", security="ssl")
    store.subscribe("bench", "bench")
    summary = vmailkit.download(store, "bench", all_new=True, passwords={"bench": User.password})
    count = summary.total("downloaded") + summary.total("already_present")
stop.set(); time.sleep(0.05)
print(json.dumps({"count": count, "seconds": time.perf_counter() - t0,
                  "peak_main_mb": peak["main"] / 1024, "peak_total_mb": peak["total"] / 1024}))
"""


def peak_memory(srv, user, work: Path, kind: str, chunk: int = 500) -> dict:
    """Run the raw imaplib fetch (``raw``) or vmailkit's import (``import``) in a child process and
    return its peak resident memory: the process alone, and with its parse workers (sampled every 20 ms)."""
    d = Path(tempfile.mkdtemp(prefix=f"mem-{kind}-", dir=work))
    try:
        args = {"kind": kind, "bench_dir": str(Path(__file__).resolve().parent), "tests_dir": str(ROOT / "tests"),
                "host": srv.host, "port": srv.imaps_port, "ca_file": str(srv.ca_file), "login": user.name,
                "password": user.password, "address": user.address, "db": str(d / "vmail.duckdb"), "chunk": chunk}
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, json.dumps(args)], capture_output=True, text=True,
                             check=True, timeout=1800)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def vmk_import(srv, user, work: Path, *, keep_db: bool = False) -> tuple[dict, float, int]:
    store, d = _new_store(work, srv, user, "import")
    try:
        t0 = time.perf_counter()
        c0 = os.times()
        b0 = _busy_seconds()
        summary = vmailkit.download(store, "bench", all_new=True, passwords={"bench": user.password})
        dt = time.perf_counter() - t0
        c1 = os.times()
        if SHOW_CPU:
            print(f"  main process CPU: user {c1.user - c0.user:.2f} s, system {c1.system - c0.system:.2f} s;"
                  f" whole machine busy {_busy_seconds() - b0:.2f} CPU-s in {dt:.2f} s")
        if not summary.ok or summary.total("failed"):
            raise RuntimeError(f"download failed: {summary.frame().to_dict('records')}")
        counts = {k: summary.total(k) for k in ("downloaded", "already_present", "failed", "parse_errors")}
        return counts, dt, _db_size(d)
    finally:
        if not keep_db:
            shutil.rmtree(d, ignore_errors=True)


def mbsync_available() -> str | None:
    return shutil.which("mbsync")


def run_mbsync(srv, user, work: Path, binary: str) -> tuple[int, float]:
    """mbsync (isync) pulls INBOX into a fresh local Maildir; returns (files, seconds)."""
    d = Path(tempfile.mkdtemp(prefix="mbsync-", dir=work))
    try:
        (d / "near").mkdir()
        conf = d / "mbsyncrc"
        conf.write_text(
            f"IMAPAccount far\nHost localhost\nPort {srv.imaps_port}\nUser {user.name}\nPass {user.password}\n"
            f"SSLType IMAPS\nCertificateFile {srv.ca_file}\n\n"
            f"IMAPStore far\nAccount far\n\n"
            f"MaildirStore near\nPath {d}/near/\nInbox {d}/near/INBOX\n\n"
            "Channel bench\nFar :far:\nNear :near:\nPatterns INBOX\nCreate Near\nSync Pull\n"
            f"SyncState *\nExpunge None\n"
        )
        os.chmod(conf, 0o600)
        t0 = time.perf_counter()
        b0 = _busy_seconds()
        r = subprocess.run([binary, "-q", "-c", str(conf), "bench"], capture_output=True, text=True,
                           env={**os.environ, "HOME": str(d)})
        dt = time.perf_counter() - t0
        if SHOW_CPU:
            print(f"  mbsync: whole machine busy {_busy_seconds() - b0:.2f} CPU-s in {dt:.2f} s")
        if r.returncode != 0:
            raise RuntimeError(f"mbsync exited {r.returncode}: {r.stderr[-2000:]}")
        files = sum(len(list((d / "near" / "INBOX" / sub).iterdir())) for sub in ("cur", "new")
                    if (d / "near" / "INBOX" / sub).exists())
        return files, dt
    finally:
        shutil.rmtree(d, ignore_errors=True)


class ThreadedProfile:
    """cProfile for the calling thread *and* every thread started while it is active (cProfile
    itself only sees the thread that enabled it). Worker processes are not seen."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def __enter__(self) -> "ThreadedProfile":
        profiles = self.profiles

        def hook(frame, event, arg):  # noqa: ANN001 - first profile event of a new thread
            sys.setprofile(None)
            prof = cProfile.Profile()
            profiles.append(prof)
            prof.enable()

        main = cProfile.Profile()
        profiles.append(main)
        threading.setprofile(hook)
        main.enable()
        return self

    def __exit__(self, *exc) -> None:
        self.profiles[0].disable()
        threading.setprofile(None)  # type: ignore[arg-type]

    def report(self, title: str, top: int) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for prof in self.profiles[1:]:
            with contextlib.suppress(Exception):
                stats.add(prof)
        threads = f"{len(self.profiles)} threads merged" if len(self.profiles) > 1 else "1 thread"
        for sort in ("cumulative", "tottime"):
            out.write(f"\n===== cProfile: {title} ({threads}); top {top} by {sort} =====\n")
            stats.strip_dirs().sort_stats(sort).print_stats(top)
        return out.getvalue()


@contextlib.contextmanager
def _patched(module: object, name: str, value: object):
    """Temporarily replace ``module.name`` when it exists (vmailkit internals change under us)."""
    if not hasattr(module, name):
        yield False
        return
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield True
    finally:
        setattr(module, name, old)


#: (module, class, method) wrapped by the stage timers; missing ones are skipped.
STAGES = (
    ("vmailkit.transport.imap", "ImapSession", "sizes", "IMAP: RFC822.SIZE listing"),
    ("vmailkit.transport.imap", "ImapSession", "_fetch_chunk", "IMAP: FETCH BODY.PEEK[] + response parsing"),
    ("vmailkit.ingest.pool", "PreparedChunk", "result", "parse: waiting for / collecting parsed chunk"),
    ("vmailkit.store.mail", "MailMixin", "save_chunk", "DuckDB: save_chunk (transaction, inserts, commit)"),
    ("vmailkit.store.mail", "MailMixin", "_insert_locations", "  of which _insert_locations"),
    ("vmailkit.store.db", "Database", "_open", "DuckDB: opening the file"),
    ("vmailkit.store.db", "Database", "_migrate", "DuckDB: migration check"),
)


def stage_timers(srv, user, work: Path) -> str:
    """One import as shipped (no profiler) with wall-clock timers around the pipeline's stages."""
    import importlib

    totals: dict[str, list[float]] = {}  # label -> duration of each call
    undo = []
    for modname, clsname, meth, label in STAGES:
        try:
            cls = getattr(importlib.import_module(modname), clsname)
            orig = cls.__dict__[meth]
        except (ImportError, AttributeError, KeyError):
            continue
        is_static = isinstance(orig, staticmethod)
        func = orig.__func__ if is_static else orig
        acc = totals.setdefault(label, [])

        def wrapper(*a, _f=func, _acc=acc, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                _acc.append(time.perf_counter() - t0)

        setattr(cls, meth, staticmethod(wrapper) if is_static else wrapper)
        undo.append((cls, meth, orig))
    try:
        counts, dt, _ = vmk_import(srv, user, work)
    finally:
        for cls, meth, orig in undo:
            setattr(cls, meth, orig)
    lines = [f"\n===== stage timers: one import as shipped, {dt:.2f} s wall (main-thread wall time per stage) ====="]
    for label, calls in totals.items():
        if not calls:
            continue
        secs = sum(calls)
        line = f"  {label:<58} {secs:7.2f} s {100 * secs / dt:5.1f} %  ({len(calls)} calls"
        if len(calls) >= 10:  # does the per-call cost grow as the mailbox/store fills?
            k = max(1, len(calls) // 10)
            line += (f"; first {k}: {1000 * sum(calls[:k]) / k:.0f} ms/call, "
                     f"last {k}: {1000 * sum(calls[-k:]) / k:.0f} ms/call")
        lines.append(line + ")")
    return "\n".join(lines)


def what_if(srv, user, work: Path) -> str:
    """Variants of the import that are NOT vmailkit as shipped, to size the DuckDB recommendations:
    the same ``download`` call, but inside one held ``store.session()`` (one connection, so one
    close/checkpoint instead of one per chunk), and additionally with DuckDB's automatic checkpoint
    (WAL > 16 MB) disabled until the end."""
    lines = ["\n===== what-if (not shipped): the same download with different DuckDB connection handling ====="]
    for title, threshold in (("inside one store.session()", None),
                             ("inside one store.session(), checkpoint_threshold = 1 TB", "1TB")):
        store, d = _new_store(work, srv, user, "whatif")
        try:
            t0 = time.perf_counter()
            with store.session() as con:
                if threshold:
                    con.execute(f"SET checkpoint_threshold = '{threshold}'")
                summary = vmailkit.download(store, "bench", all_new=True, passwords={"bench": user.password})
                t_body = time.perf_counter() - t0
            dt = time.perf_counter() - t0
            ok = summary.ok and summary.total("downloaded") + summary.total("already_present") > 0
            lines.append(f"  {title:<58} {dt:7.2f} s  (of which the final close/checkpoint {dt - t_body:.2f} s; "
                         f"DuckDB {_db_size(d) / MB:.0f} MB{'' if ok else '; FAILED'})")
        except Exception as exc:  # noqa: BLE001 - informational only
            lines.append(f"  {title:<58} failed: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return "\n".join(lines)


def parse_only(msgs: list[bytes]) -> str:
    """CPU cost of vmailkit's per-message preparation (parse + identity + sha256), one core."""
    from vmailkit.ingest import identity_key
    from vmailkit.parse import parse_message

    t0 = time.perf_counter()
    for raw in msgs:
        parse_message(raw)
        identity_key(raw)
        hashlib.sha256(raw).hexdigest()
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    for raw in msgs:
        identity_key(raw)
        hashlib.sha256(raw).hexdigest()
    dt_hash = time.perf_counter() - t1
    return (f"\n===== parse only (in-process, one core, no profiler) =====\n"
            f"  parse_message + identity + sha256 of {len(msgs)} messages: {dt:.2f} s "
            f"({1000 * dt / len(msgs):.2f} ms/msg); of which identity + sha256: {dt_hash:.2f} s")


def profile_runs(srv, user, work: Path, msgs: list[bytes], top: int = 25) -> str:
    parts = [stage_timers(srv, user, work), what_if(srv, user, work), parse_only(msgs)]
    with ThreadedProfile() as prof:
        t0 = time.perf_counter()
        vmk_import(srv, user, work)
    parts.append(prof.report(f"vmailkit download (import) as shipped, {time.perf_counter() - t0:.2f} s under the "
                             "profiler; parse worker processes are NOT seen (their time shows as waiting)", top))
    try:
        import vmailkit.ingest.pool as pl
    except ImportError:
        pl = None
    if pl is not None and hasattr(pl, "POOL_THRESHOLD"):
        with _patched(pl, "POOL_THRESHOLD", 10**12), ThreadedProfile() as prof:
            t0 = time.perf_counter()
            vmk_import(srv, user, work)
        parts.append(prof.report(f"vmailkit download (import) with parsing forced in-process, "
                                 f"{time.perf_counter() - t0:.2f} s under the profiler", top))
    with ThreadedProfile() as prof:
        t0 = time.perf_counter()
        vmk_check(srv, user, work)
    parts.append(prof.report(f"vmailkit check, {time.perf_counter() - t0:.2f} s under the profiler", top))
    return "".join(parts)


# =============================================================================== report
def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ver = "?"
    with contextlib.suppress(Exception):
        ver = subprocess.run([find_dovecot() or "dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    import duckdb

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "duckdb": duckdb.__version__,
            "dovecot": ver, "kernel": platform.release()}


def cpu_busy(interval: float = 1.0) -> float:
    """Fraction of all cores busy over ``interval`` (from /proc/stat); 0.0 where unavailable."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        t1, i1 = sample()
        time.sleep(interval)
        t2, i2 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 0.0 if t2 == t1 else 1.0 - (i2 - i1) / (t2 - t1)


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until other programs use less than ``limit`` of the CPUs while this
    one is idle; returns the last background load measured. Other processes on a 2-core machine
    (a test suite, a notebook) easily double the import time."""
    deadline = time.monotonic() + timeout
    busy = cpu_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = cpu_busy(2.0)
    return busy


def fmt_table(ms: list[Measurement]) -> str:
    head = f"{'measurement':<44} {'best s':>8} {'runs':>16} {'msgs/s':>9} {'MB/s':>7} {'bg':>4}  note"
    lines = [head, "-" * len(head)]
    for m in ms:
        if m.best is None:
            lines.append(f"{m.label:<44} {'-':>8} {'':>16} {'-':>9} {'-':>7} {'':>4}  {m.note or 'not run'}")
            continue
        runs = " ".join(f"{s:.2f}" for s in m.seconds)
        mps = m.messages / m.best if m.best else 0
        mbs = f"{m.mbytes / m.best:7.1f}" if m.mbytes is not None else f"{'-':>7}"
        bgs = m.extra.get("background_cpu") or []
        best_i = m.seconds.index(m.best)
        bg = f"{100 * bgs[best_i]:3.0f}%" if best_i < len(bgs) else "-"
        lines.append(f"{m.label:<44} {m.best:8.2f} {runs:>16} {mps:9.0f} {mbs} {bg:>4}  {m.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="messages in the mailbox (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the best is reported")
    ap.add_argument("--chunk", type=int, default=500, help="UIDs per FETCH in the raw baselines (default 500)")
    ap.add_argument("--profile", action="store_true", help="also print stage timers, what-if DuckDB variants, a parse-only timing and cProfile listings")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--no-mbsync", action="store_true", help="skip the mbsync baseline even when installed")
    ap.add_argument("--only", default="", help="comma list of raw-full,raw-header,raw-items,check,import,mbsync")
    ap.add_argument("--cpu", action="store_true",
                    help="print the CPU time of vmailkit's main process and of the whole machine (/proc/stat) per run")
    ap.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "vmailkit-bench-cache"),
                    help="where generated mailboxes are cached ('' = no cache)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--memory", action="store_true",
                    help="also measure peak resident memory of the import and of the raw fetch (child processes)")
    ap.add_argument("--quiet-cpu", type=float, default=0.15,
                    help="before each measurement wait until other programs use less than this share of the "
                         "CPUs (default 0.15; 1 = never wait)")
    ap.add_argument("--quiet-timeout", type=float, default=600, help="longest wait for a quiet machine, s")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server, stores) for inspection")
    args = ap.parse_args(argv)
    global SHOW_CPU
    SHOW_CPU = args.cpu
    if args.messages < 1 or args.repeat < 1:
        ap.error("--messages and --repeat must be >= 1")
    if not find_dovecot():
        print("dovecot not found: install dovecot-imapd dovecot-pop3d (make deb-packages)", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    def wanted(name: str) -> bool:
        return not only or name in only

    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}; Python {info['python']}, DuckDB {info['duckdb']}, "
          f"Dovecot {info['dovecot']}")

    t0 = time.perf_counter()
    msgs, cached = load_mailbox(args.messages, args.seed, Path(args.cache_dir) if args.cache_dir else None)
    total_bytes = sum(map(len, msgs))
    gen_s = time.perf_counter() - t0
    print(f"mailbox: {len(msgs)} messages, {total_bytes / MB:.1f} MB total, avg {total_bytes / len(msgs) / 1000:.1f} KB, "
          f"largest {max(map(len, msgs)) / 1000:.0f} KB ({'loaded from cache' if cached else 'generated'} in {gen_s:.1f} s)")

    work = Path(tempfile.mkdtemp(prefix="vmk-bench-"))
    srv = DovecotServer(work / "dovecot")
    results: list[Measurement] = []
    profile_text = ""
    try:
        srv.start()
        user = srv.new_user("bench")
        t0 = time.perf_counter()
        seed_maildir(srv, user.name, msgs)
        print(f"seeded INBOX in {time.perf_counter() - t0:.1f} s (files written straight into Maildir/cur)")
        if not args.profile:
            del msgs
        warm_s, n_uids = warm_up(srv, user)
        if n_uids != args.messages:
            raise RuntimeError(f"server lists {n_uids} messages, expected {args.messages}")
        print(f"warm-up (not counted): EXAMINE + one FETCH of UID RFC822.SIZE BODYSTRUCTURE and the header fields "
              f"of all {n_uids} messages: {warm_s:.1f} s")

        mbsync = None if args.no_mbsync else mbsync_available()
        mailbox_mb = total_bytes / MB
        m_full = Measurement("raw_full_fetch", f"raw imaplib BODY.PEEK[] ({args.chunk}/FETCH)", messages=args.messages,
                             mbytes=mailbox_mb)
        m_hdr = Measurement("raw_header_fetch", "raw imaplib headers + email.header decode", messages=args.messages)
        m_items = Measurement("raw_check_items", "raw imaplib, check's FETCH items, no decode",
                              messages=args.messages)
        m_check = Measurement("vmailkit_check", "vmailkit check (headers, all N listed)", messages=args.messages)
        m_import = Measurement("vmailkit_import", "vmailkit download all_new (full import)", messages=args.messages,
                               mbytes=mailbox_mb)
        m_mbsync = Measurement("mbsync", "mbsync pull INBOX -> Maildir", messages=args.messages, mbytes=mailbox_mb)
        if not mbsync:
            m_mbsync.note = "not installed (apt-get install isync)" if not args.no_mbsync else "skipped"
        results = [m_full, m_hdr, m_items, m_check, m_import, m_mbsync]

        def quiet(m: Measurement) -> None:
            bg = wait_quiet(args.quiet_cpu, args.quiet_timeout) if args.quiet_cpu < 1 else cpu_busy(0.5)
            m.extra.setdefault("background_cpu", []).append(round(bg, 3))
            if bg > max(args.quiet_cpu, 0.15):
                print(f"  warning: other programs use {100 * bg:.0f} % of the CPUs; {m.name} will be slower",
                      flush=True)

        def raw_baseline(m: Measurement, fetch, label: str, what: str, digits: int) -> None:  # noqa: ANN001
            quiet(m)
            t0 = time.perf_counter()
            count, nbytes = fetch(srv, user, args.chunk)
            m.seconds.append(time.perf_counter() - t0)
            m.note = f"{count} msgs, {nbytes / MB:.{digits}f} MB {what}"
            print(f"{label}: {m.seconds[-1]:.2f} s", flush=True)

        for k in range(args.repeat):
            print(f"--- run {k + 1}/{args.repeat}", flush=True)
            if wanted("raw-full"):
                raw_baseline(m_full, raw_full_fetch, "raw full fetch", "received", 1)
            if wanted("raw-header"):
                raw_baseline(m_hdr, raw_header_fetch, "raw header fetch", "of header fields", 2)
            if wanted("raw-items"):
                raw_baseline(m_items, raw_check_items, "raw check items fetch", "incl. BODYSTRUCTURE", 2)
            if wanted("check"):
                quiet(m_check)
                listed, dt = vmk_check(srv, user, work)
                m_check.seconds.append(dt)
                m_check.note = f"{listed} listed"
                if listed != args.messages:
                    raise RuntimeError(f"check listed {listed}, expected {args.messages}")
                print(f"vmailkit check: {dt:.2f} s", flush=True)
            if wanted("import"):
                quiet(m_import)
                counts, dt, db_size = vmk_import(srv, user, work)
                m_import.seconds.append(dt)
                m_import.note = (f"{counts['downloaded']} new + {counts['already_present']} dup, "
                                 f"{counts['parse_errors']} parse errors; DuckDB {db_size / MB:.0f} MB")
                m_import.extra.update(counts, duckdb_bytes=db_size)
                if counts["downloaded"] + counts["already_present"] != args.messages:
                    raise RuntimeError(f"import stored {counts}, expected {args.messages} messages")
                print(f"vmailkit import: {dt:.2f} s", flush=True)
            if mbsync and wanted("mbsync"):
                quiet(m_mbsync)
                files, dt = run_mbsync(srv, user, work, mbsync)
                m_mbsync.seconds.append(dt)
                m_mbsync.note = f"{files} files written (isync, default FSync)"
                print(f"mbsync: {dt:.2f} s", flush=True)

        if args.memory:
            print("--- peak resident memory (child processes, sampled every 20 ms)", flush=True)
            raw = peak_memory(srv, user, work, "raw", args.chunk)
            imp = peak_memory(srv, user, work, "import")
            print(f"  raw imaplib full fetch: peak {raw['peak_main_mb']:.0f} MB ({raw['count']} msgs, {raw['seconds']:.1f} s)")
            print(f"  vmailkit import: peak {imp['peak_main_mb']:.0f} MB resident in the importing process, "
                  f"{imp['peak_total_mb']:.0f} MB proportional (PSS) with its parse workers and forkserver"
                  f" ({imp['count']} msgs, {imp['seconds']:.1f} s);"
                  f" target: <= 300 MB for 10,000 mails")
        if args.profile:
            print("--- profiling (separate runs, not in the table)", flush=True)
            profile_text = profile_runs(srv, user, work, msgs, args.profile_top)
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    scale = args.messages / 10_000
    ref_s = MBSYNC_REFERENCE_S_PER_10K * scale
    print()
    print(f"=== {args.messages} messages, {total_bytes / MB:.1f} MB, best of {args.repeat} "
          f"(MB = 10^6 bytes of mailbox; msgs/s over all N; bg = CPU share other programs used just "
          f"before the best run) ===")
    print(fmt_table(results))
    print()
    ratios = {}
    if m_check.best and m_hdr.best:
        r = m_check.best / m_hdr.best
        ratios["check_over_raw_header"] = r
        print(f"check / raw header fetch     = {r:5.2f}   target <= {CHECK_TARGET_RATIO}  "
              f"{'OK' if r <= CHECK_TARGET_RATIO else 'MISSED'}")
    if m_check.best and m_items.best:
        r = m_check.best / m_items.best
        ratios["check_over_raw_check_items"] = r
        print(f"check / raw fetch of its items = {r:5.2f} (client-side cost of check; informational)")
    if m_import.best and m_full.best:
        r = m_import.best / m_full.best
        ratios["import_over_raw_full"] = r
        print(f"import / raw full fetch      = {r:5.2f}   (transfer floor; informational)")
    if m_import.best:
        r = m_import.best / ref_s
        ratios["import_over_mbsync_reference"] = r
        print(f"import / mbsync reference    = {r:5.2f}   ({m_import.best:.1f} s vs {ref_s:.1f} s = 17 s per 10k "
              f"scaled to N; target < 1)  {'OK' if r < 1 else 'MISSED'}")
    if m_import.best and m_mbsync.best:
        r = m_import.best / m_mbsync.best
        ratios["import_over_mbsync_measured"] = r
        print(f"import / mbsync measured     = {r:5.2f}   ({m_mbsync.best:.1f} s measured here)")
    if profile_text:
        print(profile_text)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": info, "messages": args.messages, "seed": args.seed, "repeat": args.repeat,
            "mailbox_bytes": total_bytes, "warm_up_seconds": warm_s, "results": [asdict(m) | {"best": m.best} for m in results],
            "ratios": ratios,
        }, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
