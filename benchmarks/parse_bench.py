#!/usr/bin/env python3
"""Parser benchmark: ``vmailkit.parse`` against the bare standard library (no mail server).

Generates N deterministic, realistic messages with the import benchmark's generator
(``import_bench.generate``; default 2,000, ~49 KB on average): short plain-text mails
(quoted-printable or 8bit), multipart/alternative HTML newsletters (some inside multipart/related
with an inline logo), mails with base64 PDF/JPEG/Office attachments of 20–300 KB, RFC 2047 subjects
and display names, a few mails with very long 8-bit lines.  Then it times, best of ``--repeat`` (the parser's memo caches are cleared
before every round, so repeated rounds do not run on warm caches):

* ``parse_message`` on every message, and the **baseline** on the same bytes: the bare stdlib
  ``email.message_from_bytes(raw, policy=policy.default)`` + ``get_body(('plain',))`` /
  ``get_content()`` + ``get_content()`` of every ``iter_attachments()`` part;
* ``parse_headers`` on the header block IMAP ``BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE
  MESSAGE-ID CONTENT-TYPE)]`` returns for every message (6–7 fields, ASCII and RFC 2047), and its
  baseline: ``BytesHeaderParser(policy=policy.default)`` + reading those fields;
* both functions on the shared corpus of malformed real-world mail (``/work/shared/corpus`` or
  ``--corpus``), when it exists.

With ``--compare FILE`` (a single-file copy of an earlier parser, e.g. the last one before the
``vmailkit/parse/`` package: ``git show 9de6962:vmailkit/parse.py > /tmp/parse_orig.py``) the earlier module is timed in the same
run and a before/after table is printed; ``--verify`` additionally checks that both modules return
identical results for every generated message, every corpus file and every header block.

Usage::

    .venv/bin/python benchmarks/parse_bench.py                       # 2,000 messages
    .venv/bin/python benchmarks/parse_bench.py --messages 500 --repeat 5
    git show 9de6962:vmailkit/parse.py > /tmp/parse_orig.py
    .venv/bin/python benchmarks/parse_bench.py --compare /tmp/parse_orig.py --verify
    .venv/bin/python benchmarks/parse_bench.py --profile             # cProfile of parse_message
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import email
import functools
import gc
import importlib.util
import platform
import pstats
import sys
import time
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path
from types import ModuleType
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import vmailkit.parse as vparse  # noqa: E402

DEFAULT_CORPUS = Path("/work/shared/corpus")
HEADER_FIELDS = ("from", "to", "cc", "subject", "date", "message-id", "content-type")

# The same deterministic mailbox generator as the import benchmark: one definition of "realistic".
from import_bench import generate  # noqa: E402

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
    """Empty every ``functools.lru_cache`` of ``mod`` and, for a package, of its
    submodules (so rounds start cold)."""
    if mod is None:
        return
    modules = [mod] + [m for name, m in list(sys.modules.items()) if name.startswith(mod.__name__ + ".")]
    for module in modules:
        for value in vars(module).values():
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
