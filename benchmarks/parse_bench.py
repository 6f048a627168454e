#!/usr/bin/env python3
"""Parser benchmark: ``vmailkit.parse`` against the bare standard library (no mail server).

Generates N deterministic, realistic messages with :class:`email.message.EmailMessage` (default
2,000, ~49 KB on average): short plain-text mails (quoted-printable or 8bit), multipart/alternative
HTML newsletters (some inside multipart/related with an inline logo), mails with one or two base64
PDF/JPEG/Office attachments of 20–300 KB, RFC 2047 subjects and display names, a few mails with
very long 8-bit lines.  Then it times, best of ``--repeat`` (the parser's memo caches are cleared
before every round, so repeated rounds do not run on warm caches):

* ``parse_message`` on every message, and the **baseline** on the same bytes: the bare stdlib
  ``email.message_from_bytes(raw, policy=policy.default)`` + ``get_body(('plain',))`` /
  ``get_content()`` + ``get_content()`` of every ``iter_attachments()`` part;
* ``parse_headers`` on the header block IMAP ``BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE
  MESSAGE-ID CONTENT-TYPE)]`` returns for every message (6–7 fields, ASCII and RFC 2047), and its
  baseline: ``BytesHeaderParser(policy=policy.default)`` + reading those fields;
* both functions on the shared corpus of malformed real-world mail (``/work/shared/corpus`` or
  ``--corpus``), when it exists.

With ``--compare FILE`` (a copy of an earlier ``parse.py``, e.g.
``git show HEAD:vmailkit/parse.py > /tmp/parse_orig.py``) the earlier module is timed in the same
run and a before/after table is printed; ``--verify`` additionally checks that both modules return
identical results for every generated message, every corpus file and every header block.

Usage::

    .venv/bin/python benchmarks/parse_bench.py                       # 2,000 messages
    .venv/bin/python benchmarks/parse_bench.py --messages 500 --repeat 5
    git show HEAD:vmailkit/parse.py > /tmp/parse_orig.py
    .venv/bin/python benchmarks/parse_bench.py --compare /tmp/parse_orig.py --verify
    .venv/bin/python benchmarks/parse_bench.py --profile             # cProfile of parse_message
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import email
import email.utils
import functools
import gc
import importlib.util
import platform
import pstats
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from types import ModuleType
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vmailkit.parse as vparse  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus")
HEADER_FIELDS = ("from", "to", "cc", "subject", "date", "message-id", "content-type")

# =============================================================================== message generator

BASE_DATE = datetime(2025, 1, 6, 7, 30, tzinfo=timezone.utc)

_WORDS = (
    "the of and to in is for on that with as are this be by from at or have an will your we our "
    "you can more all new about not has was but their they which one time please booking hotel "
    "room rooms guests arrival departure transfer airport group tour itinerary invoice payment "
    "deposit balance confirmation rate rates season offer special breakfast dinner excursion "
    "voucher reference attached list request update changes available availability contract "
    "allotment release days night nights double single twin suite sea view garden pool beach "
    "city center museum guide coach driver flight schedule check-in check-out passenger "
    "Zimmer Buchung Anreise Abreise Gäste Frühstück Rechnung Bestätigung Grüße Straße für über "
    "habitación reserva llegada salida huéspedes desayuno factura confirmación señor año mañana "
    "chambre réservation arrivée départ petit-déjeuner facture à bientôt très été"
).split()
_FIRST = ("Anna", "Ben", "Carla", "David", "Elena", "Frank", "Greta", "Hugo", "Inés", "Jörg", "Karin",
          "Luis", "Marta", "Nils", "Olga", "Pablo", "Renée", "Sören", "Teresa", "Ulrich", "Zoë")
_LAST = ("Müller", "García", "Dubois", "Rossi", "Smith", "Nowak", "Silva", "Jensen", "Schmidt",
         "López", "Martin", "Bianchi", "Johnson", "Kowalski", "Pereira", "Ødegaard", "Weiß")
_ORGS = ("hotelsol", "alpenblick", "riviera-tours", "citycoach", "museo-prado", "airline-xyz",
         "booking-partner", "travelnews", "cruiseline", "gasthof-post", "bank-example")
_SUBJECTS = (
    "Booking {n} rooming list", "Re: Booking {n} rooming list", "Invoice {n}", "Confirmation {n}",
    "Fwd: Group {n} itinerary", "Allotment release {n}", "Transfer times for group {n}",
    "Payment received - ref {n}", "Question about booking {n}",
)
_SUBJECTS_INTL = (
    "Buchungsbestätigung {n} – Zimmerliste für Gruppe", "Rechnung Nr. {n} für Ihre Reise über München",
    "Confirmación de reserva {n}: habitación con vista al mar", "Réservation {n} : arrivée à Nice",
    "Ζητούμενη κράτηση {n}", "Бронирование {n}: список гостей", "予約確認 {n} 東京ホテル", "Zoë's café ☕ offer {n}",
)
_NEWSLETTER_SUBJECTS = (
    "Your weekly travel deals – issue {n}", "News from {org}: season preview {n}",
    "🌴 Summer specials inside – issue {n}", "Newsletter {n}: Neuigkeiten für Partner",
)


def _corpus(seed: int) -> str:
    """About 1 MB of deterministic pseudo-text to slice bodies from."""
    rng = random.Random(f"text:{seed}")
    out, size = [], 0
    while size < 1_000_000:
        s = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 22)))
        s = s[0].upper() + s[1:] + rng.choice((". ", ". ", "? ", ".\n\n"))
        out.append(s)
        size += len(s)
    return "".join(out)


def _text(rng: random.Random, corpus: str, n: int) -> str:
    start = rng.randrange(0, len(corpus) - n - 1)
    return corpus[start:start + n]


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = (first[0] + "." + last).lower().encode("ascii", "ignore").decode() or "info"
    return f"{first} {last}", f"{local}@{rng.choice(_ORGS)}.example"


def _html(rng: random.Random, corpus: str, org: str, target: int) -> str:
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>News</title>'
             "<style>body{font-family:Arial}td{padding:8px}</style></head><body><table>"]
    size, i = len(parts[0]), 0
    while size < target:
        i += 1
        block = (f"<tr><td><h2>{_text(rng, corpus, rng.randint(20, 60)).strip()}</h2>"
                 f'<img src="https://img.{org}.example/{i}.jpg" width="600" alt="">'
                 f"<p>{_text(rng, corpus, rng.randint(200, 900))}</p>"
                 f'<a href="https://click.{org}.example/t/{rng.getrandbits(64):016x}">Read more</a></td></tr>\n')
        parts.append(block)
        size += len(block)
    parts.append("</table></body></html>\n")
    return "".join(parts)


def _attachment(rng: random.Random) -> tuple[str, str, str, bytes]:
    """(maintype, subtype, file name, bytes): 20-300 KB, skewed to the small end."""
    size = int(20_000 + 280_000 * rng.random() ** 4.4)
    n = rng.randint(1000, 99999)
    kind = rng.choices(("pdf", "jpeg", "office"), weights=(5, 3, 2))[0]
    if kind == "pdf":
        head = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
        name = rng.choice(("Rooming list {n}.pdf", "Rechnung_{n}.pdf", "Itinerary {n} – final.pdf"))
        return "application", "pdf", name.format(n=n), head + rng.randbytes(size)
    if kind == "jpeg":
        head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        name = rng.choice(("IMG_{n}.jpg", "Hotel façade {n}.jpg", "scan{n}.jpg"))
        return "image", "jpeg", name.format(n=n), head + rng.randbytes(size) + b"\xff\xd9"
    name = rng.choice(("Contract {n}.docx", "Preisliste_{n}.docx"))
    return ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document", name.format(n=n),
            b"PK\x03\x04\x14\x00\x06\x00" + rng.randbytes(size))


def make_message(i: int, seed: int, corpus: str) -> bytes:
    """Message number ``i`` (deterministic in ``seed`` and ``i``)."""
    rng = random.Random(f"msg:{seed}:{i}")
    roll = rng.random()
    kind = "plain" if roll < 0.42 else "newsletter" if roll < 0.70 else "attachment" if roll < 0.975 else "long"
    date = BASE_DATE + timedelta(minutes=47 * i + rng.randint(0, 40))
    from_name, from_addr = _person(rng)
    n = rng.randint(1000, 99999)
    intl = rng.random() < 0.25
    if kind == "newsletter":
        org = rng.choice(_ORGS)
        subject = rng.choice(_NEWSLETTER_SUBJECTS).format(n=n, org=org)
        from_name, from_addr = f"{org.replace('-', ' ').title()} News", f"news@{org}.example"
    else:
        subject = rng.choice(_SUBJECTS_INTL if intl else _SUBJECTS).format(n=n)

    m = EmailMessage()  # policy.default: non-ASCII headers become RFC 2047 encoded-words
    m["Return-Path"] = f"<{from_addr}>"
    m["Received"] = (f"from mx{rng.randint(1, 9)}.{from_addr.split('@')[1]} ([192.0.2.{rng.randint(1, 254)}]) "
                     f"by mail.tour.example (Postfix) with ESMTPS id {rng.getrandbits(40):X} for "
                     f"<office@tour.example>; {email.utils.format_datetime(date)}")
    m["DKIM-Signature"] = (f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={from_addr.split('@')[1]}; s=sel1; "
                           f"h=from:to:subject:date:message-id; bh={rng.randbytes(32).hex()}; "
                           f"b={rng.randbytes(120).hex()}")
    m["From"] = email.utils.formataddr((from_name, from_addr))
    m["To"] = rng.choice(("Office <office@tour.example>", "Anna Berg <anna@tour.example>",
                          "res@tour.example", '"Reservations, Team" <res@tour.example>'))
    if rng.random() < 0.2:
        m["Cc"] = ", ".join(email.utils.formataddr(_person(rng)) for _ in range(rng.randint(1, 3)))
    m["Subject"] = subject
    m["Date"] = email.utils.format_datetime(date.astimezone(timezone(timedelta(hours=rng.choice((0, 1, -5))))))
    m["Message-ID"] = f"<{date:%Y%m%d%H%M%S}.{rng.getrandbits(40):010x}.{i}@{from_addr.split('@')[1]}>"
    if rng.random() < 0.3 and kind != "newsletter":
        ref = f"<{rng.getrandbits(48):x}@tour.example>"
        m["In-Reply-To"] = ref
        m["References"] = f"<{rng.getrandbits(48):x}@tour.example> {ref}"
    if kind == "newsletter":
        m["List-Unsubscribe"] = f"<https://{from_addr.split('@')[1]}/u/{rng.getrandbits(48):x}>"
        m["Precedence"] = "bulk"
    else:
        m["X-Mailer"] = rng.choice(("Microsoft Outlook 16.0", "Apple Mail (2.3731)"))

    body = f"Hello,\n\n{_text(rng, corpus, rng.randint(300, 6000 if kind == 'plain' else 2500))}\n\n--\n{from_name}\n"
    if kind == "plain":
        m.set_content(body, cte=rng.choice(("quoted-printable", "8bit")))
    elif kind == "long":
        rows = [";".join(_text(rng, corpus, rng.randint(20, 60)).replace("\n", " ") for _ in range(rng.randint(50, 300)))
                for _ in range(rng.randint(2, 6))]
        m.set_content(body + "\n".join(rows) + "\n", cte="8bit")
    elif kind == "newsletter":
        m.set_content(body, cte="quoted-printable")
        m.add_alternative(_html(rng, corpus, from_addr.split("@")[1].split(".")[0], rng.randint(12_000, 62_000)),
                          subtype="html", cte="quoted-printable")
        if rng.random() < 0.3:  # multipart/related with an inline logo
            html_part = m.get_payload()[1]
            html_part.add_related(rng.randbytes(rng.randint(3_000, 25_000)), "image", "png",
                                  cid="<logo@news>", filename="logo.png", disposition="inline")
    else:
        m.set_content(body, cte="quoted-printable")
        for _ in range(1 if rng.random() < 0.75 else 2):
            maintype, subtype, name, data = _attachment(rng)
            m.add_attachment(data, maintype, subtype, filename=name)
    return m.as_bytes(policy=policy.SMTP)


def generate(n: int, seed: int) -> list[bytes]:
    corpus = _corpus(seed)
    return [make_message(i, seed, corpus) for i in range(n)]


_HEADER_START = {f.encode() for f in HEADER_FIELDS}


def header_fields_block(raw: bytes) -> bytes:
    """What ``BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE)]`` returns."""
    block, _ = vparse.split_header_block(raw)
    out: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        keep = line.split(b":", 1)[0].strip().lower() in _HEADER_START
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


def count_fields(block: bytes) -> int:
    return sum(1 for line in block.splitlines() if line and line[:1] not in b" \t")


# =============================================================================== baselines


def baseline_message(raw: bytes) -> None:
    """The bare stdlib: parse, plain body text, every attachment's content.

    Exceptions are swallowed (the bare stdlib raises on some corpus mails, e.g. unknown charsets).
    """
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        body = msg.get_body(("plain",))
        if body is not None:
            body.get_content()
        for part in msg.iter_attachments():
            part.get_content()
    except Exception:
        pass


_HEADER_PARSER = BytesHeaderParser(policy=policy.default)


def baseline_headers(block: bytes) -> None:
    """The bare stdlib on a header block: parse and read the summary fields (errors swallowed)."""
    try:
        h = _HEADER_PARSER.parsebytes(block)
        for name in ("Message-ID", "From", "To", "Subject", "Date"):
            str(h[name])
        h.get_content_type()
    except Exception:
        pass


# =============================================================================== timing


def clear_caches(mod: ModuleType | None) -> None:
    """Empty every ``functools.lru_cache`` of ``mod`` (so rounds start cold)."""
    if mod is None:
        return
    for value in vars(mod).values():
        if isinstance(value, functools._lru_cache_wrapper):
            value.cache_clear()


def best_of(func: Callable[[bytes], object], items: list[bytes], repeat: int, mod: ModuleType | None) -> float:
    """Best total wall time over ``repeat`` rounds of ``func`` on every item."""
    best = float("inf")
    for _ in range(repeat):
        clear_caches(mod)
        gc.collect()
        t0 = time.perf_counter()
        for raw in items:
            func(raw)
        best = min(best, time.perf_counter() - t0)
    return best


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("parse_compare", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["parse_compare"] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


def plain(value: object) -> object:
    """Results of two module copies as comparable plain data (class identity dropped)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,) + tuple(plain(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def verify(old: ModuleType, items: list[tuple[str, bytes]], blocks: list[tuple[str, bytes]]) -> list[str]:
    """Names of the inputs where ``old`` and the current module disagree."""
    diffs = []
    for name, raw in items:
        expected = plain(old.parse_message(raw))
        if expected != plain(vparse.parse_message(raw)):
            # The earlier module itself is not deterministic for a multipart with an empty
            # boundary inside an embedded message (the generator invents a random boundary).
            nondeterministic = plain(old.parse_message(raw)) != expected
            diffs.append(f"parse_message {name}" + (" (earlier module differs from itself)" if nondeterministic else ""))
        if plain(old.parse_headers(raw)) != plain(vparse.parse_headers(raw)):
            diffs.append(f"parse_headers {name}")
    for name, raw in blocks:
        if plain(old.parse_headers(raw)) != plain(vparse.parse_headers(raw)):
            diffs.append(f"parse_headers {name}")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20250106)
    ap.add_argument("--repeat", type=int, default=3, help="rounds per measurement; the best counts")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--compare", type=Path, help="an earlier parse.py to time in the same run")
    ap.add_argument("--verify", action="store_true", help="with --compare: check results are identical")
    ap.add_argument("--profile", action="store_true", help="cProfile one round of parse_message")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    msgs = generate(args.messages, args.seed)
    blocks = [header_fields_block(m) for m in msgs]
    total = sum(map(len, msgs))
    print(f"Python {platform.python_version()} on {platform.machine()}; generated {len(msgs)} messages "
          f"({total / 1e6:.1f} MB, avg {total / max(len(msgs), 1) / 1000:.1f} KB) in {time.perf_counter() - t0:.1f} s; "
          f"header blocks avg {sum(map(len, blocks)) / max(len(blocks), 1):.0f} B, "
          f"{sum(map(count_fields, blocks)) / max(len(blocks), 1):.1f} fields")
    corpus = sorted(args.corpus.rglob("*.eml")) if args.corpus.is_dir() else []
    corpus_raw = [p.read_bytes() for p in corpus]
    if corpus:
        print(f"corpus: {len(corpus)} files ({sum(map(len, corpus_raw)) / 1e6:.2f} MB) from {args.corpus}")
    old = load_module(args.compare) if args.compare else None

    sets: list[tuple[str, list[bytes], str]] = [
        ("mix", msgs, "message"),
        ("mix", blocks, "headers"),
        ("mix:2047", [b for b in blocks if b"=?" in b], "headers"),  # blocks with RFC 2047 encoded-words
        ("mix:ascii", [b for b in blocks if b"=?" not in b], "headers"),
    ]
    if corpus_raw:
        sets += [("corpus", corpus_raw, "message"), ("corpus", corpus_raw, "headers")]

    rows = []
    for label, items, what in sets:
        n = len(items)
        fn = vparse.parse_message if what == "message" else vparse.parse_headers
        cur = best_of(fn, items, args.repeat, vparse) / n
        base = best_of(baseline_message if what == "message" else baseline_headers, items, args.repeat, None) / n
        before = None
        if old is not None:
            ofn = old.parse_message if what == "message" else old.parse_headers
            before = best_of(ofn, items, args.repeat, old) / n
        rows.append((label, what, n, cur, base, before))

    def fmt(seconds: float | None, what: str) -> str:
        if seconds is None:
            return "-"
        return f"{seconds * 1e3:.3f} ms" if what == "message" else f"{seconds * 1e6:.1f} µs"

    print()
    head = f"{'set':<9} {'function':<14} {'n':>5} {'vmailkit':>11} {'baseline':>11} {'vmk/base':>8}"
    if old is not None:
        head += f" {'before':>11} {'speed-up':>8}"
    print(head)
    print("-" * len(head))
    for label, what, n, cur, base, before in rows:
        line = (f"{label:<9} {'parse_' + what:<14} {n:>5} {fmt(cur, what):>11} {fmt(base, what):>11} "
                f"{cur / base:>7.2f}x")
        if old is not None:
            line += f" {fmt(before, what):>11} {before / cur:>7.2f}x"
        print(line)
    mix_message, mix_headers = rows[0], rows[1]
    print(f"\ntargets: parse_message <= 0.75 ms on the mix: {'met' if mix_message[3] <= 0.75e-3 else 'MISSED'}"
          f" ({mix_message[3] * 1e3:.3f} ms); parse_headers <= 40 us on the mix: "
          f"{'met' if mix_headers[3] <= 40e-6 else 'MISSED'} ({mix_headers[3] * 1e6:.1f} µs)"
          + (f"; parse_message >= 3x faster than before: {'met' if mix_message[5] / mix_message[3] >= 3 else 'MISSED'}"
             if old is not None else ""))
    print("\nbaseline: parse_message = email.message_from_bytes(policy.default) + get_body(('plain',)).get_content()"
          " + get_content() of iter_attachments();\n          parse_headers = BytesHeaderParser(policy.default)"
          " + Message-ID/From/To/Subject/Date + get_content_type()")

    if args.verify:
        if old is None:
            print("--verify needs --compare")
            return 2
        diffs = verify(old, [(f"mix #{i}", m) for i, m in enumerate(msgs)]
                       + [(str(p.relative_to(args.corpus)), r) for p, r in zip(corpus, corpus_raw)],
                       [(f"block #{i}", b) for i, b in enumerate(blocks)])
        print(f"\nverify: {len(diffs)} differing results" + "".join(f"\n  {d}" for d in diffs[:40]))
        if diffs:
            return 1

    if args.profile:
        clear_caches(vparse)
        prof = cProfile.Profile()
        prof.enable()
        for raw in msgs:
            vparse.parse_message(raw)
        prof.disable()
        print()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
