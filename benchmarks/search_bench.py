"""Benchmark of the full-text index (vmailkit.search) beside a DuckDB ILIKE scan on the same data.

Generates N deterministic synthetic mails (default 100,000: a subject, a sender, a plain text
body of ~120 words drawn from a Zipf-distributed vocabulary of ~20,000 words with umlauts and
hyphenated words; 30 % also with an HTML body, 15 % with one or two attachments), inserts them
straight into a temporary store with SQL (no parsing, no server), then times:

* ``rebuild``: :meth:`MailIndex.rebuild` over every mail, and its parts: reading the documents
  from DuckDB, and turning them into index documents (HTML to text, compounds) without indexing;
* ``catch_up``: with nothing new (the check every download would make), and after 500 new mails
  (one download chunk);
* queries: each query's median latency (``--repeat`` runs) through :meth:`MailIndex.search` with
  ``limit=50`` and for all ids, beside DuckDB ``ILIKE`` on the columns the mail list searches today
  (subject, sender address and name, plain body) and on those plus the HTML body, each word a
  ``%word%`` condition, AND-ed; the same connection stays open for every DuckDB query.

Figures are medians on a shared machine: compare the ratios of one run, not absolute times
across runs.

Usage::

    .venv/bin/python benchmarks/search_bench.py                 # 100,000 mails
    .venv/bin/python benchmarks/search_bench.py --mails 10000 --repeat 9
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from vmailkit import Store
from vmailkit.search import MailIndex, make_document
from vmailkit.store.searchdocs import SearchDocsMixin

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "zo", "ber", "gen", "hof", "lin", "mar", "sen", "tur", "wal",
             "ü", "ö", "ä", "ß", "ch", "sch", "an", "el", "is", "or", "um"]
# Real words at fixed frequency ranks (0 = the most frequent word of the vocabulary).
REAL = {"hotel": 2, "booking": 8, "confirmed": 12, "list": 15, "transfer": 20, "arrival": 30, "e-mail": 40,
        "breakfast": 45, "rooming": 60, "invoice": 70, "Grüße": 90, "Zürich": 150, "reservation": 250,
        "Straße": 400, "check-in": 600, "Lucerne": 1200, "excursion": 2500, "gondola": 5000}


class BenchStore(Store, SearchDocsMixin):
    """The store with the search reads (``Store`` may already have them)."""


def vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` words, most frequent first: pseudo-words (3 % hyphenated) with :data:`REAL` at their ranks."""
    words: set[str] = set()
    while len(words) < size - len(REAL):
        word = "".join(rng.choice(SYLLABLES, int(rng.integers(2, 5))))
        if rng.random() < 0.03:
            word += "-" + "".join(rng.choice(SYLLABLES, 2))
        if word.lower() not in {w.lower() for w in REAL}:
            words.add(word)
    ordered = sorted(words)
    rng.shuffle(ordered)
    for word, rank in sorted(REAL.items(), key=lambda kv: kv[1]):
        ordered.insert(rank, word)
    return np.array(ordered, dtype=object)


def mail_frames(mails: int, first_id: int = 1, seed: int = 20261208) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic synthetic mails and attachment parts."""
    rng = np.random.default_rng(seed + first_id)
    vocab = vocabulary(20_000, np.random.default_rng(seed))
    ranks = np.minimum(rng.zipf(1.15, size=(mails, 130)) - 1, len(vocab) - 1)
    lengths = rng.integers(40, 130, mails)
    bodies, htmls, subjects = [], [], []
    for i in range(mails):
        words = vocab[ranks[i, :lengths[i]]]
        lines = [" ".join(words[j:j + 11]) for j in range(0, len(words), 11)]    # line wraps inside phrases
        body = "Dear team,\n" + "\n".join(lines) + "\nRegards"
        bodies.append(body)
        subjects.append(" ".join(vocab[ranks[i, -6:-1]]).capitalize())
        if rng.random() < 0.30:
            cells = "".join(f'<tr><td style="padding:4px">{line}</td></tr>\n' for line in lines)
            htmls.append("<html><head><style>td{font-family:Arial}</style></head><body><p>Dear <b>team</b>,</p>"
                         f'<table width="600">{cells}</table><p>Regards</p>'
                         '<img src="cid:logo" alt="logo"></body></html>')
        else:
            htmls.append(None)
    ids = np.arange(first_id, first_id + mails, dtype=np.int64)
    senders = rng.integers(0, 2_000, mails)
    emails = pd.DataFrame({
        "email_id": ids,
        "from_address": [f"desk{s}@hotel{s % 300}.example" for s in senders],
        "from_name": [f"Hotel {vocab[s % len(vocab)].capitalize()}" for s in senders],
        "subject": subjects, "body_text": bodies, "body_html": htmls,
    })
    has = rng.random(mails) < 0.15
    att_ids, att_idx, names = [], [], []
    for email_id, flag in zip(ids, has):
        if flag:
            for k in range(int(rng.integers(1, 3))):
                att_ids.append(int(email_id))
                att_idx.append(k + 1)
                names.append(f"{vocab[int(rng.integers(0, 3000))]}_{int(rng.integers(100, 999))}.pdf")
    parts = pd.DataFrame({"email_id": np.array(att_ids, dtype=np.int64), "part_index": att_idx, "filename": names})
    return emails, parts


def insert(store: Store, emails: pd.DataFrame, parts: pd.DataFrame) -> None:
    """Insert mails and attachment parts straight into the store (set-based SQL)."""
    with store.db.atomic() as con:
        con.register("_bench_mails", emails)
        con.execute(
            "INSERT INTO emails (email_id, dedup_key, message_id, fingerprint, from_address, from_name, subject,"
            " sent_at, body_text, body_html, has_attachments, size, raw, raw_sha256, downloaded_at)"
            " SELECT email_id, 'bench-' || email_id, email_id || '@bench.example', 'fp' || email_id, from_address,"
            " from_name, subject, TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(email_id), body_text, body_html,"
            " false, 100, 'x'::BLOB, 'sha' || email_id, current_timestamp FROM _bench_mails")
        con.unregister("_bench_mails")
        if len(parts):
            con.register("_bench_parts", parts)
            con.execute(
                "INSERT INTO attachment_parts (email_id, part_index, filename, content_type, size, sha256, is_inline,"
                " content) SELECT email_id, part_index, filename, 'application/pdf', 4, 'sha', false, '%PDF'::BLOB"
                " FROM _bench_parts")
            con.unregister("_bench_parts")
        con.execute("SELECT setval('email_id_seq', (SELECT max(email_id) FROM emails))")


def median_time(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def ilike_sql(words: list[str], with_html: bool) -> tuple[str, list[str]]:
    cols = ["subject", "from_address", "from_name", "body_text"] + (["body_html"] if with_html else [])
    conds, params = [], []
    for w in words:
        conds.append("(" + " OR ".join(f"{c} ILIKE ?" for c in cols) + ")")
        params += [f"%{w}%"] * len(cols)
    return "SELECT email_id FROM emails WHERE " + " AND ".join(conds), params


# (label, search text, the words for ILIKE)
QUERIES = [
    ("rare word", "gondola", ["gondola"]),
    ("accented word", "Zürich", ["zürich"]),
    ("common word", "team", ["team"]),
    ("two words (AND)", "hotel transfer", ["hotel", "transfer"]),
    ("phrase", '"rooming list"', ["rooming list"]),
    ("hyphenated", "check-in", ["check-in"]),
    ("prefix", "reserv*", ["reserv"]),
    ("no match", "xylophone", ["xylophone"]),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mails", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs per query (median)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vmailkit-search-bench-"))
    store = BenchStore(tmp / "bench.duckdb")
    started = time.perf_counter()
    emails, parts = mail_frames(args.mails)
    insert(store, emails, parts)
    text_mb = (emails["body_text"].str.len().sum() + emails["body_html"].fillna("").str.len().sum()) / 1e6
    print(f"{args.mails:,} synthetic mails ({text_mb:.0f} MB of body text and HTML, {len(parts):,} attachment "
          f"names) generated and stored in {time.perf_counter() - started:.1f} s; {tmp}")

    index = MailIndex.for_store(store)
    rows: list[tuple[str, str]] = []

    def read_all() -> int:
        return sum(len(docs) for docs in store.iter_search_documents(0))

    def prepare_all() -> int:
        n = 0
        for docs in store.iter_search_documents(0):
            for d in docs:
                make_document(d)
            n += len(docs)
        return n

    t_read, _ = median_time(read_all, 1)
    t_prep, _ = median_time(prepare_all, 1)
    t_build, count = median_time(lambda: index.rebuild(store), 1)
    size = sum(p.stat().st_size for p in index.path.iterdir() if p.is_file())
    print(f"\nIndex build ({count:,} mails)")
    print(f"  read documents from DuckDB        {t_read:7.1f} s")
    print(f"  + make index documents (HTML...)  {t_prep:7.1f} s")
    print(f"  rebuild, total                    {t_build:7.1f} s   {count / t_build:,.0f} mails/s")
    print(f"  index size {size / 1e6:.0f} MB; DuckDB file {store.path.stat().st_size / 1e6:.0f} MB")

    t_noop, _ = median_time(lambda: index.catch_up(store), 3)
    more, more_parts = mail_frames(500, first_id=args.mails + 1)
    insert(store, more, more_parts)
    t_chunk, added = median_time(lambda: index.catch_up(store), 1)
    print(f"  catch_up, nothing new             {t_noop * 1000:7.0f} ms")
    print(f"  catch_up, {added} new mails          {t_chunk * 1000:7.0f} ms")

    con = duckdb.connect(str(store.path), read_only=True)
    print(f"\nQuery latency, median of {args.repeat} (ms); hits = mails found")
    header = f"{'query':17} {'text':16} {'index@50':>9} {'index,all':>9} {'ILIKE 4col':>10} {'ILIKE +html':>11}" \
             f" {'ratio':>6}  hits idx/ILIKE/+html"
    print(header)
    ratios = []
    for label, text, words in QUERIES:
        t50, _ = median_time(lambda: index.search(text, limit=50), args.repeat)
        tall, hits = median_time(lambda: index.search(text), args.repeat)
        sql4, p4 = ilike_sql(words, False)
        sql5, p5 = ilike_sql(words, True)
        t4, r4 = median_time(lambda: con.execute(sql4, p4).fetchall(), args.repeat)
        t5, r5 = median_time(lambda: con.execute(sql5, p5).fetchall(), args.repeat)
        ratio = t5 / tall if tall else float("inf")
        ratios.append(ratio)
        print(f"{label:17} {text:16} {t50 * 1000:9.1f} {tall * 1000:9.1f} {t4 * 1000:10.1f} {t5 * 1000:11.1f}"
              f" {ratio:5.0f}x  {hits.total}/{len(r4)}/{len(r5)}")  # type: ignore[union-attr]
    print(f"\nILIKE (+html) / index (all ids): median ratio {statistics.median(ratios):.0f}x")
    con.close()
    if not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
