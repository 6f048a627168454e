"""Benchmark of the automatic matcher at CRM scale (no mail server).

Generates deterministic synthetic CRM data (persons, customers, suppliers, contacts, brands,
reservations with brand-coded booking codes, quotes, invoices, products), loads it through
:func:`vmailkit.crm.load_crm`, inserts mails directly into a temporary store with SQL, then times:

* ``baseline``: a plain DuckDB join of ``emails.from_address`` to ``persons.email`` (lower/trim)
  on the same data, materialised into a temp table: the floor for anything that looks at every mail;
* ``match --all``: :func:`vmailkit.match.match_all` over every mail (all rules, writes the links);
* ``match --all`` again: the idempotent re-run (finds everything, adds nothing);
* ``match_new``: the download hook on one chunk of 500 fresh mails (its own connection), and ten
  chunks in one held connection as a download runs them (the CRM lookups prepared once);
* a search for the link dialog and a mail list page with ``related_count``.

Usage::

    .venv/bin/python benchmarks/match_bench.py                      # 1,000,000 persons, 100,000 mails
    .venv/bin/python benchmarks/match_bench.py --persons 20000 --mails 5000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vmailkit import Store
from vmailkit.crm import load_crm
from vmailkit.links import search
from vmailkit.match import match_all, match_new

BRANDS = [f"DB{i}" for i in range(1, 13)] + ["XB", "TRV", "SUN", "SKI"]


def crm_data(persons: int, seed: int = 20261102) -> dict[str, pd.DataFrame]:
    """Deterministic CRM tables sized from the number of persons."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, persons + 1, dtype=np.int64)
    domains = rng.integers(0, max(persons // 40, 1), persons)
    email = np.char.add(np.char.add(np.char.add("p", ids.astype(str)), "@d"), domains.astype(str))
    email = np.char.add(email, ".example").astype(object)
    shared = ids % 50 == 0                               # every 50th shares the address of the previous one
    email[shared] = email[np.where(shared)[0] - 1]
    upper = ids % 17 == 0                                # some written in upper case with spaces
    email[upper] = np.char.add(" ", np.char.upper(email[upper].astype(str))).astype(object)
    temporary = rng.random(persons) < 0.02
    n_cust, n_sup = persons // 4, persons // 20
    customers = pd.DataFrame({
        "customer_id": np.arange(1, n_cust + 1),
        "name": [f"Customer {i}" for i in range(1, n_cust + 1)],
        "main_person_id": np.where(rng.random(n_cust) < 0.9, rng.integers(1, persons + 1, n_cust), None),
        "segment": rng.choice(["gold", "silver", "bronze"], n_cust),
    })
    suppliers = pd.DataFrame({
        "supplier_id": np.arange(1, n_sup + 1),
        "name": [f"Supplier {i}" for i in range(1, n_sup + 1)],
        "main_person_id": np.where(rng.random(n_sup) < 0.7, rng.integers(1, persons + 1, n_sup), None),
    })
    n_con = persons // 2
    owner_is_cust = rng.random(n_con) < 0.8
    contact_value = np.where(
        rng.random(n_con) < 0.5,
        email[rng.integers(0, persons, n_con)],                                      # a person's address
        np.char.add(np.char.add("info", np.arange(n_con).astype(str)), "@contact.example").astype(object),
    )
    contacts = pd.DataFrame({
        "contact_id": np.arange(1, n_con + 1),
        "owner_type": np.where(owner_is_cust, "customer", "supplier"),
        "owner_id": np.where(owner_is_cust, rng.integers(1, n_cust + 1, n_con), rng.integers(1, n_sup + 1, n_con)),
        "type": np.where(rng.random(n_con) < 0.7, "EMAIL", "PHONE"),
        "value": contact_value,
    })
    brands = pd.DataFrame({"brand_id": np.arange(1, len(BRANDS) + 1), "code": BRANDS})
    n_res = persons // 2
    numbers = 100000 + rng.integers(0, n_res * 10, n_res)       # ~10 % of numbers repeat: ambiguous on purpose
    prefix = rng.choice(["B", "O", "L"], n_res)
    brand = rng.integers(0, len(BRANDS) + 1, n_res)             # 0 = no brand
    codes = [f"{p}-{n}" if b == 0 else f"{p}-{BRANDS[b - 1]}-{n}" for p, b, n in zip(prefix, brand, numbers)]
    reservations = pd.DataFrame({
        "reservation_id": np.arange(1, n_res + 1), "booking_code": codes,
        "customer_id": rng.integers(1, n_cust + 1, n_res), "brand_id": np.where(brand == 0, None, brand),
    })
    n_small = max(persons // 10, 1)
    quotes = pd.DataFrame({"quote_id": np.arange(1, n_small + 1), "code": [f"SQ-{i}" for i in range(1, n_small + 1)],
                           "supplier_id": rng.integers(1, n_sup + 1, n_small)})
    invoices = pd.DataFrame({"invoice_id": np.arange(1, n_small + 1),
                             "number": [f"INV-{i:07d}" for i in range(1, n_small + 1)],
                             "customer_id": rng.integers(1, n_cust + 1, n_small)})
    products = pd.DataFrame({"product_id": np.arange(1, n_small + 1), "code": [f"P{i}" for i in range(1, n_small + 1)],
                             "name": [f"Product {i}" for i in range(1, n_small + 1)]})
    persons_df = pd.DataFrame({
        "person_id": ids, "first_name": [f"First{i}" for i in ids], "last_name": [f"Last{i % 9973}" for i in ids],
        "email": email, "is_temporary": temporary, "country": rng.choice(["ES", "DE", "FR", "UK"], persons),
    })
    return {"persons": persons_df, "customers": customers, "suppliers": suppliers, "contacts": contacts,
            "brands": brands, "reservations": reservations, "quotes": quotes, "customer_invoices": invoices,
            "products": products}


def mail_frame(mails: int, crm: dict[str, pd.DataFrame], first_id: int = 1, seed: int = 7) -> pd.DataFrame:
    """Deterministic mails: 60 % from a person, 10 % from a contact, 30 % unknown; subjects with
    booking numbers (existing ones half of the time), leading zeros and Re:/Fwd: prefixes."""
    rng = np.random.default_rng(seed + first_id)
    persons, contacts, res = crm["persons"], crm["contacts"], crm["reservations"]
    kind = rng.random(mails)
    from_person = persons["email"].to_numpy()[rng.integers(0, len(persons), mails)]
    from_contact = contacts["value"].to_numpy()[rng.integers(0, len(contacts), mails)]
    unknown = np.char.add(np.char.add("x", rng.integers(0, 10**9, mails).astype(str)), "@unknown.example")
    addr = np.where(kind < 0.6, from_person, np.where(kind < 0.7, from_contact, unknown.astype(object)))
    addr = np.array([str(a).strip().lower() for a in addr], dtype=object)
    known_num = res["booking_code"].str.rsplit("-", n=1).str[-1].to_numpy()[rng.integers(0, len(res), mails)]
    other_num = rng.integers(1, 10**6, mails).astype(str)
    prefixes = np.array(["", "Re: ", "Fwd: ", "RE: AW: ", "Fw: "], dtype=object)[rng.integers(0, 5, mails)]
    subj_kind = rng.random(mails)
    subjects = np.where(
        subj_kind < 0.5, prefixes + "Booking " + known_num + " rooming list",
        np.where(subj_kind < 0.6, prefixes + "Booking 0" + known_num, prefixes + "Question " + other_num + " and 2026"),
    )
    ids = np.arange(first_id, first_id + mails, dtype=np.int64)
    return pd.DataFrame({"email_id": ids, "from_address": addr, "subject": subjects})


def insert_mails(store: Store, frame: pd.DataFrame) -> None:
    """Insert mails straight into ``emails`` (one set-based statement, no parsing, no server)."""
    with store.db.atomic() as con:
        con.register("_bench_mails", frame)
        con.execute(
            "INSERT INTO emails (email_id, dedup_key, message_id, fingerprint, from_address, subject, sent_at,"
            " has_attachments, size, raw, raw_sha256, downloaded_at)"
            " SELECT email_id, 'bench-' || email_id, email_id || '@bench.example', 'fp' || email_id, from_address,"
            " subject, TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(email_id), false, 100, 'x'::BLOB,"
            " 'sha' || email_id, current_timestamp FROM _bench_mails"
        )
        con.unregister("_bench_mails")
        con.execute("SELECT setval('email_id_seq', (SELECT max(email_id) FROM emails))")


def timed(label: str, fn, figures: dict[str, float]):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    figures[label] = time.perf_counter() - start
    print(f"  {label:<38} {figures[label]:8.2f} s", flush=True)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--mails", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=500, help="mails in the match_new chunk")
    parser.add_argument("--keep", help="keep the database at this path instead of a temp dir")
    args = parser.parse_args(argv)

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.duckdb"
        store = Store(path)
        store.init()
        print(f"vmailkit matcher benchmark: {args.persons:,} persons, {args.mails:,} mails ({path})")
        crm = timed("generate CRM data (numpy/pandas)", lambda: crm_data(args.persons), figures)
        timed("load_crm (validate + replace 9 tables)", lambda: load_crm(store, crm), figures)
        counts = store.crm_counts()
        print("  rows: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
        mails = mail_frame(args.mails, crm)
        timed("insert mails", lambda: insert_mails(store, mails), figures)

        def baseline() -> int:
            with store.db.connect() as con:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _baseline AS SELECT e.email_id, p.person_id FROM emails e"
                    " JOIN persons p ON lower(trim(p.email)) = lower(trim(e.from_address))"
                )
                return int(con.execute("SELECT count(*) FROM _baseline").fetchone()[0])

        pairs = timed("baseline: join from_address = email", baseline, figures)
        result = timed("match --all", lambda: match_all(store), figures)
        again = timed("match --all again (idempotent)", lambda: match_all(store), figures)
        chunk = mail_frame(args.chunk, crm, first_id=args.mails + 1)
        insert_mails(store, chunk)
        new_links = timed(f"match_new on a chunk of {args.chunk}", lambda: match_new(store, chunk["email_id"].tolist()),
                          figures)
        # a download holds one connection across its chunks (Database.lease): the matcher prepares its
        # CRM lookups once for the connection, then each chunk only joins its new mail against them
        chunks = [mail_frame(args.chunk, crm, first_id=args.mails + args.chunk * (k + 1) + 1) for k in range(10)]
        for frame in chunks:
            insert_mails(store, frame)
        per_chunk: list[float] = []
        with store.db.lease() as lease:
            lease.acquire()
            for frame in chunks:
                t0 = time.perf_counter()
                match_new(store, frame["email_id"].tolist())
                per_chunk.append(time.perf_counter() - t0)
        figures["download: first chunk"] = per_chunk[0]
        figures["download: later chunks (median)"] = float(np.median(per_chunk[1:]))
        print(f"  {'download-like: 10 chunks in one connection':<42} first {per_chunk[0]:.2f} s,"
              f" then {np.median(per_chunk[1:]):.3f} s per chunk (median)")
        timed("search person 'last42' (limit 20)", lambda: search(store, "person", "last42"), figures)
        timed("search customer '1234' (limit 20)", lambda: search(store, "customer", "1234"), figures)
        timed("mail list page with related_count", lambda: store.list_emails(limit=50), figures)
        timed("relations of one mail", lambda: store.relations(1), figures)

        print(f"  baseline person pairs: {pairs:,}")
        print(f"  match --all: {result.links_added:,} links, {result.candidates_added:,} candidates; by rule: "
              + ", ".join(f"{k}={v:,}" for k, v in result.by_rule.items()))
        print(f"  re-run added {again.links_added} links; match_new added {new_links} links")
        ratio = figures["match --all"] / max(figures["baseline: join from_address = email"], 1e-9)
        print(f"  match --all / baseline: {ratio:.1f}x")
        if again.links_added or again.candidates_added:
            print("ERROR: the re-run added links", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
