#!/usr/bin/env python3
"""Browsing benchmark: the mail list over a million mails, beside hand-written SQL (no mail server).

Builds (once, cached) a store of N mails (default 1,000,000) in the **real schema**: the file is
created with ``vmailkit.Store(path)`` so that every migration runs, then filled with set-based DuckDB
SQL generated from ``range()`` (no Python loops over mails, deterministic for a seed):

* ``emails``: subjects (reservation mails with booking codes, invoices, newsletters, questions,
  Re:/Fwd: prefixes), senders from ~4,000 addresses over 300 domains (skewed: a few senders send a
  lot), display names, plain-text bodies of 300 B to 6 KB (a window of a generated corpus between a
  greeting and a signature), dates over 2019-2025 roughly in import order (3 % imported late, 0.05 %
  without a date), 8 % outgoing, 10 % unread, 15 % with attachments;
  **placeholders**: ``raw`` is a ~50-byte stand-in (the list never reads it; ``size`` holds a
  realistic byte count), ``body_html`` is NULL;
* ``email_locations`` (~1.02 M rows: 8 accounts, 5 folders each, 2 % of the mails also in a second
  account), ``email_sends`` for the outgoing mails, ``email_links`` (~1.4 M: person, customer,
  reservation and a few manual links), ``accounts``, ``users``, ``subscriptions``;
* CRM: ``persons`` (100,000; the first 4,000 are the senders), ``customers`` (20,000),
  ``reservations`` (50,000, booking codes ``B-10000`` ... ``B-59999``, some ``O-``/``L-``); the
  other CRM tables stay empty.

The file is cached as ``benchmarks/out/browse-<tag>-<N>.duckdb``; the tag is a digest of the
migrations and of this file's generator, so a schema change or a generator change rebuilds it
(``--rebuild`` forces it). Then, per scenario, it times the product's call beside a hand-written
query that returns the same rows (checked equal first), interleaved, median of ``--repeat`` (≥ 5):

* through the API on a held connection (``store.keeper()``; the hand-written query on the same
  connection) and cold (a new ``Store`` per call; the hand-written query on a new connection);
* through the panel (``vmailkit.ui.MailListPanel(store, page_size=50)``: ``refresh()`` and
  ``pager.go(n)``);
* through the CLI (``python -m vmailkit.cli --db FILE emails --limit 50 --format json``, a
  subprocess, with its peak RSS from GNU ``/usr/bin/time``) beside a subprocess running the
  hand-written query;
* full-text search when ``vmailkit.search.MailIndex`` exists (``MailIndex.for_store(store)``,
  rebuilt unless current; index hits passed as ``EmailFilter(ids=...)``) beside an ILIKE scan;
* what-if (``--only whatif``): the list's SQL before commit 6a3b99b beside the changes this
  benchmark proposed and that commit adopted (same rows checked).

Targets: every listing ≤ 2x its hand-written query; every search page ≤ 50 ms and ≥ 20x faster than
the scan; CLI peak RSS ≤ 300 MB. ``--explain`` records the statements the product runs for every
row that misses its target and prints DuckDB's profile of each beside the hand-written query (full
``EXPLAIN ANALYZE`` plans in ``benchmarks/out/browse-explain.txt``).

Usage::

    .venv/bin/python benchmarks/browse_bench.py                 # 1,000,000 mails (build ~30 s once)
    .venv/bin/python benchmarks/browse_bench.py --quick         # 100,000 mails
    .venv/bin/python benchmarks/browse_bench.py --mails 20000 --repeat 5 --only api,panel
    .venv/bin/python benchmarks/browse_bench.py --explain --json benchmarks/out/browse.json
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import pandas as pd  # noqa: E402

from vmailkit import Store  # noqa: E402
from vmailkit.store import EmailFilter  # noqa: E402
from vmailkit.store import listing as listing_mod  # noqa: E402
from vmailkit.store.listing import Cursor  # noqa: E402
from vmailkit.store.migrations import MIGRATIONS  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
#: Bump when the generated data changes in a way the source digest would not catch.
GENERATOR_VERSION = 1
#: Targets.
LIST_RATIO_TARGET = 2.0
SEARCH_MS_TARGET = 50.0
SEARCH_SPEEDUP_TARGET = 20.0
CLI_RSS_TARGET_MB = 300.0
PAGE = 50

# =============================================================================== generator
# Everything from here down to "end of generator" defines the generated store; its source text is
# part of the cache tag, so editing it rebuilds the cached file.

N_SENDERS = 4_000
N_PERSONS = 100_000
N_CUSTOMERS = 20_000
N_RESERVATIONS = 50_000
FIRST_BOOKING = 10_000          # booking numbers 10000 ... 59999
COMPANY = "alpenreisen.example"
SPAN_SECONDS = 7 * 365 * 86_400  # 2019-01-01 ... 2025-12-30

WORDS = (
    "the of and to in is for on that with as are this be by from at or have an will your we our you can more "
    "all new about not has was but their they which one time please booking hotel room rooms guests arrival "
    "departure transfer airport group tour itinerary invoice payment confirmation request offer price prices "
    "night nights double single breakfast dinner lunch coach driver guide museum tickets excursion program "
    "programme schedule option options deadline deposit balance due cancellation policy change changes list "
    "names passport visa flight flights train station luggage meeting point contact phone mobile address "
    "attached attachment file document copy signed contract agreement season summer winter spring autumn "
    "weekend week month year date dates available availability allotment release quota rate rates net gross "
    "commission discount supplement tax taxes city lake mountain beach view sea garden pool spa wellness "
    "conference hall seats menu vegetarian vegan allergies children adults infants seniors students teachers "
    "school club company team staff manager office reservation reservations department sales operations "
    "accounting regards thanks thank kind best dear hello hi looking forward hearing soon possible asap "
    "urgent reminder update updated final draft version details information questions question answer "
    "confirm confirmed pending open closed received sent forward reply following below above next last first "
    "second third morning afternoon evening day days hours minutes early late check checkin checkout key keys "
    "parking bus boat cruise ferry bike walking hiking skiing ski lift pass card credit bank transfer iban "
    "swift reference number code total amount euro euros francs"
).split()
FIRST_NAMES = (
    "Anna Ben Carla David Elena Felix Greta Hugo Ines Jonas Klara Lukas Maria Nico Olga Paul Rosa Sven Tina "
    "Uwe Vera Walter Xenia Yves Zoe Adrian Bianca Chris Dora Emil Frieda Georg Hanna Igor Julia Karl Lea Max "
    "Nina Oskar Pia Quentin Ruth Simon Theresa Ulla Viktor Wanda Lars Mia Noah Emma Leon Sofia Luca Marta "
    "Pedro Chiara Jan Eva Tom Lisa Omar Aylin"
).split()
LAST_NAMES = (
    "Muller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Bauer Klein Wolf "
    "Neumann Schwarz Zimmermann Braun Kruger Hofmann Hartmann Lange Schmitt Werner Krause Meier Lehmann Huber "
    "Kaiser Fuchs Peters Lang Scholz Moller Weiss Jung Hahn Vogel Roth Keller Frank Berger Winkler Rossi Russo "
    "Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti Costa Martin Bernard Dubois "
    "Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefebvre Michel Garcia Lopez Smith Jones "
    "Taylor Brown Wilson Evans"
).split()
DOMAIN_STEMS = (
    "alpina seaside bergblick lakeview citytours sunway nordic adria tirol riviera danube baltic provence "
    "tuscany bavaria highland atlas iberia balkan carpathia"
).split()
DOMAIN_KINDS = "travel hotels tours reisen events coaches incoming groups resorts holidays media bank transfers pay".split()
TOPICS = ("rooming list", "confirmation", "changes", "final invoice", "flight details", "transfer times",
          "special requests", "cancellation")


def domains() -> list[str]:
    out = []
    for k, kind in enumerate(DOMAIN_KINDS):
        for s, stem in enumerate(DOMAIN_STEMS):
            out.append(f"{stem}-{kind}.example" if (s + k) % 3 else f"{stem}{kind}.example")
    return out[:300]


ACCOUNTS = [  # id, name, kind, owner user id, address
    (1, "info", "general", None, f"info@{COMPANY}"),
    (2, "sales", "general", None, f"sales@{COMPANY}"),
    (3, "groups", "general", None, f"groups@{COMPANY}"),
    (4, "anna", "personal", 1, f"anna@{COMPANY}"),
    (5, "ben", "personal", 2, f"ben@{COMPANY}"),
    (6, "carla", "personal", 3, f"carla@{COMPANY}"),
    (7, "dan", "personal", 4, f"dan@{COMPANY}"),
    (8, "eva", "personal", 5, f"eva@{COMPANY}"),
]
USERS = [(1, "anna"), (2, "ben"), (3, "carla"), (4, "dan"), (5, "eva")]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def generate(con: duckdb.DuckDBPyConnection, n: int, seed: int, log: Callable[[str], None]) -> None:
    """Fill the (migrated, empty) store on ``con`` with ``n`` mails and their surroundings."""
    S = int(seed)
    con.execute(f"CREATE TEMP MACRO u(i, tag) AS (hash(i, tag, {S}) % 1000000007) / 1000000007.0")
    con.execute(f"CREATE TEMP MACRO h(i, tag, m) AS (hash(i, tag, {S}) % m)::BIGINT")
    con.execute("CREATE TEMP MACRO cap(s) AS upper(left(s, 1)) || substr(s, 2)")
    con.execute(f"SET VARIABLE words = {_sql_list(WORDS)}")
    con.execute(f"SET VARIABLE firsts = {_sql_list(FIRST_NAMES)}")
    con.execute(f"SET VARIABLE lasts = {_sql_list(LAST_NAMES)}")
    con.execute(f"SET VARIABLE domains = {_sql_list(domains())}")
    con.execute(f"SET VARIABLE topics = {_sql_list(list(TOPICS))}")
    con.execute(f"SET VARIABLE acct_addr = {_sql_list([a[4] for a in ACCOUNTS])}")
    nw, nf, nl, nd = len(WORDS), len(FIRST_NAMES), len(LAST_NAMES), len(domains())

    t = time.perf_counter()
    # ~400 KB of pseudo-text; bodies are windows of it
    con.execute(f"""
        SET VARIABLE corpus = (
            SELECT string_agg(w || CASE WHEN h(i, 'par', 97) = 0 THEN '.' || chr(10) || chr(10)
                                        WHEN h(i, 'dot', 11) = 0 THEN '. ' ELSE ' ' END, '' ORDER BY i)
            FROM (SELECT i, getvariable('words')[1 + h(i, 'w', {nw})] AS w FROM range(70000) t(i)))
    """)
    # accounts, users, subscriptions
    con.executemany(
        "INSERT INTO users (user_id, name, email) VALUES (?, ?, ?)",
        [[uid, name, f"{name}@{COMPANY}"] for uid, name in USERS])
    con.executemany(
        "INSERT INTO accounts (account_id, name, kind, owner_user_id, protocol, host, port, security, address,"
        " login, secret_ref, folder) VALUES (?, ?, ?, ?, 'imap', 'imap.alpenreisen.example', 993, 'ssl', ?, ?, ?,"
        " 'INBOX')",
        [[aid, name, kind, owner, addr, addr, f"env:VMK_PW_{name.upper()}"] for aid, name, kind, owner, addr in ACCOUNTS])
    con.execute("INSERT INTO subscriptions (user_id, account_id)"
                " SELECT u.user_id, a.account_id FROM users u, accounts a"
                " WHERE a.kind = 'general' OR a.owner_user_id = u.user_id")
    # senders: unique local parts over 300 domains (a domain gets 0 .. ~40 senders)
    con.execute(f"""
        CREATE TEMP TABLE senders AS
        SELECT s,
               lower(getvariable('firsts')[1 + s % {nf}]) || '.' || lower(getvariable('lasts')[1 + (s // {nf}) % {nl}])
                 || '@' || getvariable('domains')[1 + h(s, 'dom', {nd})] AS address,
               getvariable('firsts')[1 + s % {nf}] || ' ' || getvariable('lasts')[1 + (s // {nf}) % {nl}] AS name,
               h(s, 'known', 100) < 80 AS known,
               CASE WHEN h(s, 'cust', 100) < 48 THEN 1 + h(s, 'cid', {N_CUSTOMERS}) END AS customer_id
        FROM range({N_SENDERS}) t(s)
    """)
    con.execute("SET VARIABLE sender_addr = (SELECT list(address ORDER BY s) FROM senders)")
    con.execute("SET VARIABLE sender_name = (SELECT list(name ORDER BY s) FROM senders)")
    con.execute("SET VARIABLE sender_known = (SELECT list(known ORDER BY s) FROM senders)")
    con.execute("SET VARIABLE sender_customer = (SELECT list(customer_id ORDER BY s) FROM senders)")
    # CRM
    con.execute(f"""
        INSERT INTO persons (person_id, first_name, last_name, email, is_temporary)
        SELECT p, split_part(coalesce(s.name, getvariable('firsts')[1 + h(p, 'pf', {nf})] || ' '
                                       || getvariable('lasts')[1 + h(p, 'pl', {nl})]), ' ', 1),
               split_part(coalesce(s.name, getvariable('firsts')[1 + h(p, 'pf', {nf})] || ' '
                                       || getvariable('lasts')[1 + h(p, 'pl', {nl})]), ' ', 2),
               CASE WHEN s.known THEN s.address WHEN s.s IS NOT NULL THEN 'old.' || s.address
                    ELSE lower(getvariable('firsts')[1 + h(p, 'pf', {nf})]) || '.' || p || '@'
                         || getvariable('domains')[1 + h(p, 'pd', {nd})] END,
               h(p, 'tmp', 100) < 2
        FROM range(1, {N_PERSONS + 1}) t(p) LEFT JOIN senders s ON s.s = p - 1 ORDER BY p
    """)
    con.execute(f"""
        INSERT INTO customers (customer_id, name, main_person_id)
        SELECT c, cap(replace(split_part(getvariable('domains')[1 + h(c, 'cd', {nd})], '.', 1), '-', ' '))
                  || ' ' || c, 1 + h(c, 'cp', {N_PERSONS})
        FROM range(1, {N_CUSTOMERS + 1}) t(c)
    """)
    con.execute(f"""
        INSERT INTO reservations (reservation_id, booking_code, customer_id, brand_id)
        SELECT r, CASE WHEN r + {FIRST_BOOKING - 1} = 12345 THEN 'B'
                       ELSE ['B', 'B', 'B', 'B', 'B', 'B', 'B', 'O', 'O', 'L'][1 + h(r, 'rp', 10)] END
                  || '-' || (r + {FIRST_BOOKING - 1}),
               1 + h(r, 'rc', {N_CUSTOMERS}), NULL
        FROM range(1, {N_RESERVATIONS + 1}) t(r)
    """)
    con.execute("SET VARIABLE res_code = (SELECT list(booking_code ORDER BY reservation_id) FROM reservations)")
    log(f"    vocabulary, accounts, senders, CRM: {time.perf_counter() - t:.1f} s")

    # one row per mail with its random choices (small columns only)
    t = time.perf_counter()
    con.execute(f"""
        CREATE TEMP TABLE g AS
        SELECT i AS email_id,
               u(i, 'dir') < 0.08 AS outgoing,
               least(floor({N_SENDERS} * pow(u(i, 'snd'), 2.5)), {N_SENDERS - 1})::INTEGER AS sidx,
               h(i, 'kind', 100)::INTEGER AS kind,
               1 + h(i, 'res', {N_RESERVATIONS})::INTEGER AS res_id,
               CASE WHEN u(i, 'acc') < 0.35 THEN 1 WHEN u(i, 'acc') < 0.60 THEN 2 WHEN u(i, 'acc') < 0.75 THEN 3
                    ELSE 4 + h(i, 'pacc', 5) END::INTEGER AS acct,
               4 + h(i, 'oacc', 5)::INTEGER AS out_acct,
               CASE WHEN u(i, 'fold') < 0.65 THEN 'INBOX' WHEN u(i, 'fold') < 0.85 THEN 'Archive'
                    WHEN u(i, 'fold') < 0.95 THEN 'Reservations' ELSE 'Newsletters' END AS folder,
               u(i, 'second') < 0.02 AS second,
               CASE WHEN u(i, 'nodate') < 0.0005 THEN NULL
                    ELSE TIMESTAMPTZ '2019-01-01 00:00:00+00' + to_seconds(greatest(0, least({SPAN_SECONDS - 1},
                         (CASE WHEN u(i, 'late') < 0.03 THEN u(i, 'any') ELSE (i - 1) / {n}.0 END) * {SPAN_SECONDS}
                         + (u(i, 'jit') - 0.5) * 3 * 86400))::BIGINT) END AS sent_at,
               (300 * exp(u(i, 'len') * ln(20)))::INTEGER AS body_len,
               u(i, 'att') < 0.15 AS has_att,
               h(i, 'pre', 100)::INTEGER AS pre
        FROM range(1, {n + 1}) t(i)
    """)
    con.execute("ALTER TABLE g ADD COLUMN status VARCHAR")
    con.execute("UPDATE g SET status = CASE WHEN NOT outgoing AND u(email_id, 'unread') < 0.1087 THEN 'unread'"
                " ELSE 'read' END")
    log(f"    per-mail choices: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    con.execute(f"""
        INSERT INTO emails (email_id, dedup_key, message_id, fingerprint, direction, status, from_address,
                            from_name, to_addresses, cc_addresses, reply_to, subject, sent_at, in_reply_to,
                            "references", body_text, body_html, has_attachments, size, raw, raw_sha256,
                            parse_error, parse_defects, downloaded_by, downloaded_at)
        SELECT email_id, dedup, msgid, dedup,
               CASE WHEN outgoing THEN 'outgoing' ELSE 'incoming' END, status,
               CASE WHEN outgoing THEN getvariable('acct_addr')[out_acct] ELSE sender END,
               CASE WHEN outgoing THEN ['Anna', 'Ben', 'Carla', 'Dan', 'Eva'][out_acct - 3]
                    WHEN h(email_id, 'noname', 100) < 20 THEN NULL ELSE sname END,
               [CASE WHEN outgoing THEN sender ELSE getvariable('acct_addr')[acct] END],
               CASE WHEN h(email_id, 'cc', 100) < 15 THEN [getvariable('sender_addr')[1 + h(email_id, 'ccs', {N_SENDERS})]] END,
               NULL,
               subject, sent_at,
               CASE WHEN is_reply THEN 'm' || greatest(1, email_id - 1 - h(email_id, 'irt', 2000)) || '@bench.example' END,
               CASE WHEN is_reply THEN ['m' || greatest(1, email_id - 1 - h(email_id, 'irt', 2000)) || '@bench.example'] END,
               body, NULL, has_att,
               (strlen(body) * 1.6 + 2200 + CASE WHEN has_att THEN 20000 + h(email_id, 'asz', 480000) ELSE 0 END)::BIGINT,
               encode('X-Vmailkit-Bench: placeholder for mail ' || email_id || chr(13) || chr(10)),
               sha256('X-Vmailkit-Bench: placeholder for mail ' || email_id || chr(13) || chr(10)),
               NULL, NULL,
               CASE WHEN outgoing THEN out_acct - 3 WHEN acct >= 4 THEN acct - 3 ELSE 1 + h(email_id, 'dl', 5) END,
               coalesce(sent_at, TIMESTAMPTZ '2024-06-01 00:00:00+00') + to_seconds(60 + h(email_id, 'dla', 7200))
        FROM (
            SELECT g.*, getvariable('sender_addr')[1 + sidx] AS sender, getvariable('sender_name')[1 + sidx] AS sname,
                   sha256('bench:{S}:' || email_id) AS dedup,
                   'm' || email_id || '@' || split_part(getvariable('sender_addr')[1 + sidx], '@', 2) AS msgid,
                   (outgoing OR pre < 35) AS is_reply,
                   CASE WHEN outgoing THEN 'Re: ' WHEN pre < 25 THEN 'Re: ' WHEN pre < 30 THEN 'RE: AW: '
                        WHEN pre < 35 THEN 'Fwd: ' ELSE '' END
                   || CASE WHEN kind < 30 THEN 'Booking ' || getvariable('res_code')[res_id] || ' '
                                               || getvariable('topics')[1 + h(email_id, 'top', {len(TOPICS)})]
                           WHEN kind < 42 THEN 'Invoice INV-' || lpad((100000 + h(email_id, 'inv', 900000))::VARCHAR, 7, '0')
                                               || ' for your ' || getvariable('words')[1 + h(email_id, 'iw', {nw})]
                           WHEN kind < 55 THEN 'Newsletter ' || strftime(coalesce(sent_at, TIMESTAMPTZ '2024-06-01'), '%B %Y')
                                               || ': ' || array_to_string(list_transform(range(4 + h(email_id, 'nn', 6)),
                                                   lambda x: getvariable('words')[1 + h(email_id * 16 + x, 'nw', {nw})]), ' ')
                           ELSE cap(getvariable('words')[1 + h(email_id, 'q0', {nw})]) || ' '
                                || array_to_string(list_transform(range(3 + h(email_id, 'qn', 9)),
                                   lambda x: getvariable('words')[1 + h(email_id * 16 + x, 'qw', {nw})]), ' ') END AS subject,
                   'Dear ' || CASE WHEN outgoing THEN split_part(getvariable('sender_name')[1 + sidx], ' ', 1)
                                   ELSE 'colleagues' END || ',' || chr(10) || chr(10)
                   || CASE WHEN kind < 30 THEN 'about booking ' || getvariable('res_code')[res_id] || ' ('
                                               || getvariable('topics')[1 + h(email_id, 'top', {len(TOPICS)})]
                                               || '): ' ELSE '' END
                   || substr(getvariable('corpus'), 1 + h(email_id, 'bs', 399000 - body_len), body_len)
                   || chr(10) || chr(10) || 'Kind regards' || chr(10)
                   || CASE WHEN outgoing THEN ['Anna', 'Ben', 'Carla', 'Dan', 'Eva'][out_acct - 3] || chr(10) || 'Alpenreisen'
                           ELSE getvariable('sender_name')[1 + sidx] || chr(10)
                                || split_part(getvariable('sender_addr')[1 + sidx], '@', 2) END AS body
            FROM g
        )
    """)
    log(f"    emails: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    con.execute(f"""
        INSERT INTO email_locations (email_id, account_id, folder, uidvalidity, uid, uidl, raw_sha256, size,
                                     downloaded_by, downloaded_at, loc_key)
        SELECT email_id, account_id, folder, uv, uid, NULL, raw_sha256, size, downloaded_by, downloaded_at,
               account_id || '|' || folder || '|' || uv || '|' || uid
        FROM (
            SELECT x.*, 1600000000 + h(account_id * 100 + length(folder), 'uv', 1000000) AS uv,
                   row_number() OVER (PARTITION BY account_id, folder ORDER BY email_id) AS uid
            FROM (
                SELECT g.email_id, CASE WHEN g.outgoing THEN g.out_acct ELSE g.acct END AS account_id,
                       CASE WHEN g.outgoing THEN 'Sent' ELSE g.folder END AS folder,
                       e.raw_sha256, e.size, e.downloaded_by, e.downloaded_at
                FROM g JOIN emails e USING (email_id)
                UNION ALL
                SELECT g.email_id, 4 + (g.acct - 4 + 1 + h(g.email_id, 'acc2', 4)) % 5, 'INBOX',
                       e.raw_sha256, e.size, e.downloaded_by, e.downloaded_at
                FROM g JOIN emails e USING (email_id) WHERE g.second AND NOT g.outgoing
            ) x
        ) ORDER BY email_id, account_id
    """)
    con.execute(f"""
        INSERT INTO email_sends (email_id, account_id, in_reply_to_email_id, reply_all, envelope_from, envelope_to,
                                 smtp_host, smtp_port, smtp_response, sent_by, sent_at, sent_folder,
                                 sent_uidvalidity, sent_uid, sent_folder_error)
        SELECT e.email_id, g.out_acct, greatest(1, e.email_id - 1 - h(e.email_id, 'irt', 2000)), false,
               e.from_address, e.to_addresses, 'smtp.alpenreisen.example', 587,
               '250 2.0.0 Ok: queued as ' || upper(substr(e.raw_sha256, 1, 10)), g.out_acct - 3,
               e.downloaded_at, 'Sent', NULL, NULL, NULL
        FROM g JOIN emails e USING (email_id) WHERE g.outgoing ORDER BY e.email_id
    """)
    log(f"    email_locations, email_sends: {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    con.execute(f"""
        INSERT INTO email_links (email_id, entity_type, entity_id, origin, rule, linked_by, linked_at)
        SELECT email_id, entity_type, entity_id, origin, rule, linked_by, linked_at FROM (
            SELECT g.email_id, 'person' AS entity_type, g.sidx + 1 AS entity_id, 'auto' AS origin,
                   'person.email' AS rule, NULL AS linked_by, TIMESTAMPTZ '2025-12-31 00:00:00+00' AS linked_at
            FROM g WHERE NOT g.outgoing AND getvariable('sender_known')[1 + g.sidx]
            UNION ALL
            SELECT g.email_id, 'customer', getvariable('sender_customer')[1 + g.sidx], 'auto', 'customer.main_person',
                   NULL, TIMESTAMPTZ '2025-12-31 00:00:00+00'
            FROM g WHERE NOT g.outgoing AND getvariable('sender_known')[1 + g.sidx]
                     AND getvariable('sender_customer')[1 + g.sidx] IS NOT NULL
            UNION ALL
            SELECT g.email_id, 'reservation', g.res_id, 'auto',
                   CASE WHEN g.outgoing THEN 'reply.thread' ELSE 'reservation.booking_code' END,
                   NULL, TIMESTAMPTZ '2025-12-31 00:00:00+00'
            FROM g WHERE g.kind < 30
            UNION ALL
            SELECT g.email_id, 'reservation', 1 + h(g.email_id, 'man', {N_RESERVATIONS}), 'manual', NULL,
                   ['anna', 'ben', 'carla', 'dan', 'eva'][1 + h(g.email_id, 'mby', 5)], TIMESTAMPTZ '2025-12-31 00:00:00+00'
            FROM g WHERE g.kind >= 30 AND h(g.email_id, 'manual', 100) < 3
        ) ORDER BY email_id, entity_type, entity_id
    """)
    log(f"    email_links: {time.perf_counter() - t:.1f} s")
    con.execute("UPDATE _vmailkit_meta SET value = 'bytes-without-trace-fields-1' WHERE key = 'identity_rule'")
    con.execute(f"SELECT setval('email_id_seq', {n})")
    con.execute("SELECT setval('account_id_seq', 8)")
    con.execute("SELECT setval('user_id_seq', 5)")
    con.execute("DROP TABLE g")
    con.execute("DROP TABLE senders")

# end of generator ================================================================================


def cache_tag(seed: int) -> str:
    """Digest of the schema (every migration) and of the generator's source: the cache key."""
    src = Path(__file__).read_text()
    gen = src[src.index("\nN_SENDERS = "):src.index("# end of " + "generator")]
    h = hashlib.sha256()
    h.update(repr(MIGRATIONS).encode())
    h.update(gen.encode())
    h.update(f"{GENERATOR_VERSION}:{seed}".encode())
    return h.hexdigest()[:10]


def build_store(n: int, seed: int, *, rebuild: bool, log: Callable[[str], None]) -> tuple[Path, float | None]:
    """The cached store file for ``n`` mails (built when missing or ``rebuild``); returns (path, build s)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"browse-{cache_tag(seed)}-{n}.duckdb"
    if path.exists() and not rebuild:
        return path, None
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    start = time.perf_counter()
    log(f"  building {path.name} ({n:,} mails) ...")
    try:
        Store(tmp).init()  # the real schema: every migration runs
        con = duckdb.connect(str(tmp))
        try:
            con.execute("SET enable_progress_bar = false")
            generate(con, n, seed, log)
            t = time.perf_counter()
            con.execute("CHECKPOINT")
            log(f"    checkpoint: {time.perf_counter() - t:.1f} s")
        finally:
            con.close()
    except BaseException:
        for p in (tmp, Path(str(tmp) + ".wal")):
            p.unlink(missing_ok=True)
        raise
    # files of this size built by an older schema or generator, and a search index of the old file
    for old in [*OUT.glob(f"browse-*-{n}.duckdb"), *OUT.glob(f"browse-*-{n}.duckdb.wal")]:
        old.unlink(missing_ok=True)
    for old in OUT.glob(f"browse-*-{n}.duckdb.index"):
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(path)
    return path, time.perf_counter() - start


# =============================================================================== hand-written SQL
#: The list's columns, in the product's order.
LIST_COLUMNS = ["email_id", "sent_at", "from_address", "from_name", "subject", "status", "direction",
                "has_attachments", "size", "accounts", "related_count"]


def hand_page_sql(where: str, *, limit: int = PAGE, offset: int = 0) -> str:
    """One statement: the page's ids (filter, order, limit: only the order columns are read), their
    rows, then the accounts and related-to count of those mails only."""
    return f"""
        WITH ids AS MATERIALIZED (
            SELECT email_id FROM emails WHERE {where}
            ORDER BY sent_at DESC NULLS LAST, email_id DESC LIMIT {int(limit)} OFFSET {int(offset)}),
        page AS MATERIALIZED (
            SELECT email_id, sent_at, from_address, from_name, subject, status, direction, has_attachments, size
            FROM emails WHERE email_id IN (SELECT email_id FROM ids))
        SELECT p.*, a.accounts, coalesce(k.n, 0) AS related_count
        FROM page p
        LEFT JOIN (SELECT x.email_id, string_agg(DISTINCT c.name, ', ' ORDER BY c.name) AS accounts
                   FROM (SELECT email_id, account_id FROM email_locations WHERE email_id IN (SELECT email_id FROM page)
                         UNION SELECT email_id, account_id FROM email_sends WHERE email_id IN (SELECT email_id FROM page)) x
                   JOIN accounts c USING (account_id) GROUP BY x.email_id) a USING (email_id)
        LEFT JOIN (SELECT email_id, count(*) AS n FROM email_links
                   WHERE email_id IN (SELECT email_id FROM page) GROUP BY email_id) k USING (email_id)
        ORDER BY p.sent_at DESC NULLS LAST, p.email_id DESC"""


KEYSET_WHERE = "(sent_at < ? OR (sent_at = ? AND email_id < ?) OR sent_at IS NULL)"


@dataclass
class Scenario:
    """A filter as the product takes it and as a hand-written WHERE clause (with parameters)."""

    name: str
    flt: EmailFilter
    where: str
    params: list[Any]
    offset: int = 0
    after: Cursor | None = None

    def hand_where(self) -> tuple[str, list[Any]]:
        if self.after is None:
            return self.where, list(self.params)
        return f"({self.where}) AND {KEYSET_WHERE}", list(self.params) + [
            self.after.sent_at, self.after.sent_at, self.after.email_id]

    def hand_sql(self) -> tuple[str, list[Any]]:
        where, params = self.hand_where()
        return hand_page_sql(where, offset=self.offset), params

    def count_sql(self) -> tuple[str, list[Any]]:
        return f"SELECT count(*) FROM emails WHERE {self.where}", list(self.params)

    def product(self, store: Store) -> pd.DataFrame:
        return store.list_emails(self.flt, limit=PAGE, offset=self.offset, after=self.after)


def plain_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as comparable Python values (timestamps as UTC ISO text, NaN/NaT as None)."""
    out = []
    for rec in frame.itertuples(index=False):
        row = []
        for v in rec:
            if v is None or (not isinstance(v, (str, list, tuple)) and pd.isna(v)):
                row.append(None)
            elif isinstance(v, pd.Timestamp) or hasattr(v, "tzinfo"):
                row.append(pd.Timestamp(v).tz_convert("UTC").isoformat())
            elif hasattr(v, "item"):
                row.append(v.item())
            else:
                row.append(v)
        out.append(tuple(row))
    return out


def same_rows(product: pd.DataFrame, hand: pd.DataFrame) -> str | None:
    """None when equal, else what differs."""
    if list(product.columns) != list(hand.columns):
        return f"columns differ: {list(product.columns)} vs {list(hand.columns)}"
    a, b = plain_rows(product), plain_rows(hand)
    if a == b:
        return None
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    i = next(k for k in range(len(a)) if a[k] != b[k])
    return f"row {i} differs: {a[i]} vs {b[i]}"


# =============================================================================== timing
def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine from /proc/stat ((0, 0) where unavailable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


class Background:
    """The share of the machine's CPUs that other programs used while a block ran."""

    def __enter__(self) -> "Background":
        self._b, self._t = cpu_jiffies()
        self._own = os.times()
        return self

    def __exit__(self, *exc: object) -> None:
        b, t = cpu_jiffies()
        own = os.times()
        hz = os.sysconf("SC_CLK_TCK")
        own_j = ((own.user - self._own.user) + (own.system - self._own.system)
                 + (own.children_user - self._own.children_user)
                 + (own.children_system - self._own.children_system)) * hz
        self.share = max(0.0, (b - self._b - own_j) / (t - self._t)) if t > self._t else 0.0


def wait_quiet(limit: float, timeout: float) -> float:
    """Wait (up to ``timeout`` s) until other programs use less than ``limit`` of the CPUs."""
    deadline = time.monotonic() + timeout
    while True:
        b0, t0 = cpu_jiffies()
        time.sleep(1.0)
        b1, t1 = cpu_jiffies()
        busy = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        if busy <= limit or time.monotonic() >= deadline:
            return busy


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int,
                setup: dict[str, Callable[[], Any]] | None = None) -> dict[str, list[float]]:
    """Time every function ``repeat`` times, taking turns (the order flips every round); ``setup``
    functions run untimed right before their function."""
    setup = setup or {}
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            if name in setup:
                setup[name]()
            gc.collect()
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


@dataclass
class Result:
    scenario: str
    via: str
    product: list[float] = field(default_factory=list)
    hand: list[float] = field(default_factory=list)
    target: str = ""
    verdict: str = ""
    note: str = ""
    background: float = 0.0
    unit: str = "ms"
    sc: Scenario | None = None      # the filter behind a list or count row
    kind: str = ""                  # "page" or "count"
    call: Callable[[Store], Any] | None = None          # for --explain: the product's call, on a store
    hand_stmts: list[tuple[str, list[Any]]] = field(default_factory=list)  # ... and the hand-written statements

    @property
    def product_ms(self) -> float | None:
        """Median in ms (for an MB row: the peak)."""
        if not self.product:
            return None
        return max(self.product) if self.unit == "MB" else 1000 * statistics.median(self.product)

    @property
    def hand_ms(self) -> float | None:
        if not self.hand:
            return None
        return max(self.hand) if self.unit == "MB" else 1000 * statistics.median(self.hand)

    @property
    def ratio(self) -> float | None:
        if self.product_ms is None or not self.hand_ms:
            return None
        return self.product_ms / self.hand_ms

    def judge_ratio(self, limit: float = LIST_RATIO_TARGET) -> None:
        self.target = f"≤ {limit:g}x"
        self.verdict = "ok" if self.ratio is not None and self.ratio <= limit else "MISSED"


def fmt_table(results: list[Result]) -> str:
    w = max([46] + [len(r.scenario) + (5 if r.unit == "MB" else 0) for r in results])
    head = (f"{'scenario':<{w}} {'via':<10} {'product ms':>10} {'hand ms':>9} {'ratio':>7} {'target':>14} "
            f"{'verdict':>7} {'bg':>4}  note")
    lines = [head, "-" * len(head)]
    for r in results:
        pm = f"{r.product_ms:10.1f}" if r.product_ms is not None else f"{'-':>10}"
        hm = f"{r.hand_ms:9.1f}" if r.hand_ms is not None else f"{'-':>9}"
        ra = f"{r.ratio:6.2f}x" if r.ratio is not None else f"{'-':>7}"
        scen = r.scenario + (" [MB]" if r.unit == "MB" else "")
        lines.append(f"{scen:<{w}} {r.via:<10} {pm} {hm} {ra} {r.target:>14} {r.verdict:>7} "
                     f"{100 * r.background:3.0f}%  {r.note}")
    return "\n".join(lines)


def fmt_markdown(results: list[Result]) -> str:
    lines = ["| scenario | via | product ms | hand-written ms | ratio | target | verdict |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in results:
        pm = f"{r.product_ms:.1f}" if r.product_ms is not None else "–"
        hm = f"{r.hand_ms:.1f}" if r.hand_ms is not None else "–"
        ra = f"{r.ratio:.2f}" if r.ratio is not None else "–"
        verdict = f"**{r.verdict}**" if r.verdict == "MISSED" else r.verdict
        note = f" ({r.note})" if r.note else ""
        scen = r.scenario + (" — peak RSS, MB" if r.unit == "MB" else "")
        lines.append(f"| {scen}{note} | {r.via} | {pm} | {hm} | {ra} | {r.target} | {verdict} |")
    return "\n".join(lines)


# =============================================================================== EXPLAIN ANALYZE
class Recorder:
    """A connection stand-in that records every statement run through it (and runs it)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.statements: list[tuple[str, list[Any]]] = []

    def execute(self, sql: str, params: Any = None) -> Any:
        self.statements.append((sql, list(params) if params is not None else []))
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


def recorded(path: Path, call: Callable[[Store], Any]) -> list[tuple[str, str, list[Any]]]:
    """The statements the product runs for ``call(store)``, as it runs them: the store's per-thread
    connection slot (``Database._local.con``, what ``with keeper.use()`` fills) holds a recorder."""
    store = Store(path)
    store.init()
    local = getattr(store.db, "_local", None)
    if local is None:
        return []
    con = duckdb.connect(str(path))
    rec = Recorder(con)
    local.con = rec
    try:
        call(store)
    finally:
        local.con = None
        con.close()
    return [(f"product statement {k + 1}", sql, params) for k, (sql, params) in enumerate(rec.statements)]


def _walk_profile(node: dict, depth: int, lines: list[str], total: float) -> None:
    timing = float(node.get("timing") or node.get("operator_timing") or 0.0)
    name = node.get("name") or node.get("operator_name") or node.get("type")
    info = node.get("extra_info") or {}
    bits = [f"{1000 * timing:7.2f} ms", f"rows {node.get('intermediate_rows', node.get('operator_cardinality', '?'))}"]
    if "rows_scanned" in node:
        bits.append(f"scanned {node['rows_scanned']}")
    for key in ("Table", "Filters", "Expression", "Join Type", "Conditions", "Aggregates", "Top", "Order By"):
        if key in info:
            val = info[key]
            val = " AND ".join(val) if isinstance(val, list) else str(val)
            bits.append(f"{key.lower()}: {val[:110]}")
    if name not in ("RESULT_COLLECTOR",) and (timing >= 0.0005 or depth < 3):
        lines.append("  " * depth + f"{name}: " + ", ".join(bits))
    for child in node.get("children", []):
        _walk_profile(child, depth + 1, lines, total)


def explain(path: Path, statements: list[tuple[str, str, list[Any]]], out_file: Path) -> str:
    """Run each statement with DuckDB's JSON profiler; return a compact operator tree (≥ 0.5 ms)."""
    con = duckdb.connect(str(path))
    plain = duckdb.connect(str(path))  # its own profiler settings: EXPLAIN ANALYZE as a text tree
    text: list[str] = []
    try:
        for label, sql, params in statements:
            con.execute(sql, params).fetchall()  # warm
            prof = out_file.with_suffix(".profile.json")
            con.execute("PRAGMA enable_profiling = 'json'")
            con.execute(f"PRAGMA profiling_output = '{prof}'")
            start = time.perf_counter()
            con.execute(sql, params).fetchall()
            wall = time.perf_counter() - start
            con.execute("PRAGMA disable_profiling")
            tree = json.loads(prof.read_text())
            prof.unlink(missing_ok=True)
            short = " ".join(sql.split())
            short = short if len(short) <= 110 else short[:107] + "..."
            lines = [f"-- {label}: {1000 * wall:.1f} ms wall (operators ≥ 0.5 ms; timings summed over threads)",
                     f"   {short}"]
            for node in tree.get("operator", tree.get("children", [])) or []:
                _walk_profile(node, 1, lines, wall)
            text.append("\n".join(lines))
            plan = plain.execute("EXPLAIN ANALYZE " + sql, params).fetchall()
            shown = repr(params) if len(repr(params)) < 2000 else repr(params)[:2000] + " ..."
            with out_file.open("a") as fh:
                fh.write(f"\n==== {label}\n{sql}\n-- params: {shown}\n{plan[0][1]}\n")
    finally:
        plain.close()
        con.close()
    return "\n".join(text)


# =============================================================================== the scenarios
def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": ram, "python": platform.python_version(),
            "duckdb": duckdb.__version__, "kernel": platform.release()}


def describe(path: Path) -> dict[str, Any]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("emails", "email_locations", "email_links", "email_sends", "accounts", "users",
                            "subscriptions", "persons", "customers", "reservations")}
        stats = con.execute(
            "SELECT avg(strlen(subject)), avg(strlen(body_text)), min(strlen(body_text)), max(strlen(body_text)),"
            " avg(octet_length(raw)), count(DISTINCT from_address), count(DISTINCT split_part(from_address, '@', 2)),"
            " avg((status = 'unread')::INT), avg((direction = 'outgoing')::INT), min(sent_at), max(sent_at),"
            " count(*) FILTER (WHERE sent_at IS NULL) FROM emails").fetchone()
        folders = con.execute("SELECT count(DISTINCT (account_id, folder)) FROM email_locations").fetchone()[0]
    finally:
        con.close()
    return {"rows": counts, "subject_avg": stats[0], "body_avg": stats[1], "body_min": stats[2], "body_max": stats[3],
            "raw_avg": stats[4], "senders": stats[5], "domains": stats[6], "unread": stats[7], "outgoing": stats[8],
            "first": str(stats[9]), "last": str(stats[10]), "no_date": stats[11], "folders": folders,
            "file_mb": path.stat().st_size / 1e6}


def pick(path: Path, n: int) -> dict[str, Any]:
    """The sender (~0.02 % of the mails), the domain (~0.3 %) and the booking code the scenarios use."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        sender = con.execute(
            "SELECT from_address, count(*) AS c FROM emails WHERE direction = 'incoming' GROUP BY 1"
            " ORDER BY abs(count(*) - ?), 1 LIMIT 1", [max(20, n // 5000)]).fetchone()
        domain = con.execute(
            "SELECT split_part(from_address, '@', 2) AS d, count(*) FROM emails WHERE direction = 'incoming'"
            " GROUP BY 1 ORDER BY abs(count(*) - ?), 1 LIMIT 1", [max(100, 3 * n // 1000)]).fetchone()
        code = "B-12345"
        linked = con.execute(
            "SELECT count(DISTINCT l.email_id) FROM email_links l JOIN reservations r ON r.reservation_id = l.entity_id"
            " WHERE l.entity_type = 'reservation' AND r.booking_code = ?", [code]).fetchone()[0]
        if not linked:  # small stores: the B- code with the most mails
            code, linked = con.execute(
                "SELECT r.booking_code, count(DISTINCT l.email_id) FROM email_links l JOIN reservations r"
                " ON r.reservation_id = l.entity_id WHERE l.entity_type = 'reservation' AND r.booking_code LIKE 'B-%'"
                " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
    finally:
        con.close()
    return {"sender": sender[0], "sender_mails": sender[1], "domain": domain[0], "domain_mails": domain[1],
            "code": code, "code_mails": linked}


def deep_page(n: int) -> int:
    """The 0-based page number of the deep page: page 1,000 (index 999), less for small stores."""
    return min(999, max(2, n // PAGE // 2))


def scenarios(p: dict[str, Any], deep: int) -> list[Scenario]:
    return [
        Scenario("page 1", EmailFilter(), "true", []),
        Scenario(f"page {deep + 1:,} (offset {deep * PAGE:,})", EmailFilter(), "true", [], offset=deep * PAGE),
        Scenario("unread, page 1", EmailFilter(status="unread"), "status = ?", ["unread"]),
        Scenario(f"one sender ({p['sender_mails']:,} mails)", EmailFilter(sender=p["sender"]),
                 "from_address = ?", [p["sender"]]),
        Scenario(f"one domain ({p['domain_mails']:,} mails)", EmailFilter(sender=p["domain"]),
                 "suffix(from_address, ?)", ["@" + p["domain"]]),
        Scenario(f"reservation {p['code']} ({p['code_mails']} mails)", EmailFilter(record=p["code"]),
                 "email_id IN (SELECT l.email_id FROM email_links l JOIN reservations r ON r.reservation_id = l.entity_id"
                 " WHERE l.entity_type = 'reservation' AND r.booking_code = ?)", [p["code"]]),
    ]


def run_pair(name: str, via: str, product: Callable[[], Any], hand: Callable[[], Any], repeat: int,
             compare: Callable[[Any, Any], str | None] = same_rows,
             setup: dict[str, Callable[[], Any]] | None = None, log: Callable[[str], None] = print,
             judge: Callable[[Result], None] | None = None) -> Result:
    """Check that both return the same rows, then time them interleaved; ``judge`` sets the target and
    verdict (default: ratio ≤ 2x)."""
    setup = setup or {}
    with Background() as bg:
        if "product" in setup:
            setup["product"]()
        first = product()
        if "hand" in setup:
            setup["hand"]()
        diff = compare(first, hand())
        times = interleaved({"product": product, "hand": hand}, repeat, setup)
    r = Result(name, via, times["product"], times["hand"], background=bg.share)
    (judge or Result.judge_ratio)(r)
    if diff:
        r.verdict, r.note = "DIFFERS", diff[:200]
    log(f"  {name:<46} {via:<10} {r.product_ms:8.1f} ms vs {r.hand_ms:8.1f} ms  {r.ratio:5.2f}x  {r.verdict}")
    return r


def judge_search(r: Result) -> None:
    speedup = (r.hand_ms or 0) / (r.product_ms or 1)
    r.target = f"≤ {SEARCH_MS_TARGET:g} ms, ≥ {SEARCH_SPEEDUP_TARGET:g}x faster"
    r.verdict = "ok" if (r.product_ms or 1e9) <= SEARCH_MS_TARGET and speedup >= SEARCH_SPEEDUP_TARGET else "MISSED"


def judge_nothing(r: Result) -> None:
    r.target, r.verdict = "", ""


def tag(r: Result, sc: Scenario, kind: str) -> Result:
    """Record which filter and call a row measured (for --explain)."""
    r.sc, r.kind = sc, kind
    if kind == "page":
        r.call, r.hand_stmts = sc.product, [sc.hand_sql()]
    else:
        r.call, r.hand_stmts = (lambda st, f=sc.flt: st.count_matching(f)), [sc.count_sql()]
    return r


def same_count(a: int, b: Any) -> str | None:
    b = int(b.iloc[0, 0]) if isinstance(b, pd.DataFrame) else int(b)
    return None if int(a) == b else f"{a} vs {b}"


def api_held(store: Store, scs: list[Scenario], deep: int, repeat: int,
             log: Callable[[str], None]) -> list[Result]:
    """The API on a kept connection; the hand-written query on the same connection."""
    keeper = store.keeper()
    results: list[Result] = []

    def hand_on_keeper(sql: str, params: list[Any]) -> Callable[[], pd.DataFrame]:
        def run() -> pd.DataFrame:
            with keeper.use() as con:
                return con.execute(sql, params).df()
        return run

    def product_on_keeper(sc: Scenario) -> Callable[[], pd.DataFrame]:
        def run() -> pd.DataFrame:
            with keeper.use():
                return sc.product(store)
        return run

    try:
        for sc in scs:
            r = run_pair(sc.name, "api held", product_on_keeper(sc), hand_on_keeper(*sc.hand_sql()), repeat, log=log)
            tag(r, sc, "page")
            results.append(r)
        # keyset: walk to the deep page with Cursor.after, as a user paging forward would
        start = time.perf_counter()
        cursor = None
        for _ in range(deep):
            with keeper.use():
                page = store.list_emails(EmailFilter(), limit=PAGE, after=cursor)
            cursor = Cursor.after(page)
        walk = time.perf_counter() - start
        with keeper.use() as con:
            last = con.execute("SELECT sent_at, email_id FROM emails ORDER BY sent_at DESC NULLS LAST, email_id DESC"
                               " LIMIT 1 OFFSET ?", [deep * PAGE - 1]).fetchone()
        assert cursor is not None and cursor.email_id == last[1], (cursor, last)
        ks = Scenario(f"page {deep + 1:,} (keyset, Cursor.after)", EmailFilter(), "true", [], after=cursor)
        r = run_pair(ks.name, "api held", product_on_keeper(ks), hand_on_keeper(*ks.hand_sql()), repeat, log=log)
        tag(r, ks, "page")
        r.note = f"walk of {deep} pages: {walk:.1f} s, {1000 * walk / deep:.1f} ms/page"
        with keeper.use():
            by_offset = store.list_emails(EmailFilter(), limit=PAGE, offset=deep * PAGE)
            by_key = ks.product(store)
        if same_rows(by_key, by_offset):
            r.verdict, r.note = "DIFFERS", "keyset page 1,000 != offset page 1,000: " + str(same_rows(by_key, by_offset))
        results.append(r)
        for sc in scs:
            if sc.offset:
                continue
            r = run_pair(count_name(sc), "api held", lambda sc=sc: _held_count(keeper, store, sc.flt),
                         hand_on_keeper(*sc.count_sql()), repeat, compare=same_count, log=log)
            tag(r, sc, "count")
            results.append(r)
    finally:
        keeper.close()
    return results


def count_name(sc: Scenario) -> str:
    return "count_matching: " + sc.name.replace(", page 1", "").replace("page 1", "all mail")


def _held_count(keeper: Any, store: Store, flt: EmailFilter) -> int:
    with keeper.use():
        return store.count_matching(flt)


def api_cold(path: Path, scs: list[Scenario], repeat: int, log: Callable[[str], None]) -> list[Result]:
    """A new Store per call (opens the file, as a fresh notebook cell or script would); the hand-written
    query on a new connection per call."""
    def hand_cold(sql: str, params: list[Any]) -> Callable[[], pd.DataFrame]:
        def run() -> pd.DataFrame:
            con = duckdb.connect(str(path))
            try:
                return con.execute(sql, params).df()
            finally:
                con.close()
        return run

    results = []
    for sc in scs:
        r = run_pair(sc.name, "api cold", lambda sc=sc: sc.product(Store(path)), hand_cold(*sc.hand_sql()),
                     repeat, log=log)
        tag(r, sc, "page")
        results.append(r)
    for sc in scs:
        if sc.offset or sc.after:
            continue
        r = run_pair(count_name(sc), "api cold", lambda sc=sc: Store(path).count_matching(sc.flt),
                     hand_cold(*sc.count_sql()), repeat, compare=same_count, log=log)
        tag(r, sc, "count")
        results.append(r)
    return results


def row_at(con: duckdb.DuckDBPyConnection, index: int, where: str = "true", params: list[Any] | None = None) -> Cursor:
    """The cursor after the row at 0-based ``index`` of the list (hand-written)."""
    sent_at, email_id = con.execute(
        f"SELECT sent_at, email_id FROM emails WHERE {where} ORDER BY sent_at DESC NULLS LAST, email_id DESC"
        " LIMIT 1 OFFSET ?", (params or []) + [index]).fetchone()
    return Cursor(None if sent_at is None else pd.Timestamp(sent_at).to_pydatetime(), int(email_id))


def panel_phase(store: Store, path: Path, deep: int, repeat: int, log: Callable[[str], None]) -> list[Result]:
    """``MailListPanel(store, page_size=50)``: refresh, a jump by page number, the next page (keyset) and
    the unread filter; the hand-written queries on their own held connection."""
    from vmailkit.ui import MailListPanel

    con = duckdb.connect(str(path))
    results: list[Result] = []
    panel = MailListPanel(store, page_size=PAGE)
    try:
        everything = Scenario("all", EmailFilter(), "true", [])
        unread = Scenario("unread", EmailFilter(status="unread"), "status = ?", ["unread"])

        def hand(sc: Scenario, counted: bool) -> Callable[[], pd.DataFrame]:
            def run() -> pd.DataFrame:
                if counted:
                    con.execute(*sc.count_sql()).fetchone()
                return con.execute(*sc.hand_sql()).df()
            return run

        def show(action: Callable[[], Any]) -> Callable[[], pd.DataFrame]:
            def run() -> pd.DataFrame:
                panel.message.value = ""
                action()
                if "error" in panel.message.value:
                    raise RuntimeError(f"the panel reported: {panel.message.value}")
                return panel.page
            return run

        r = run_pair("panel refresh() (count + page 1)", "panel", show(panel.refresh), hand(everything, True),
                     repeat, log=log)
        r.call = lambda st: (st.count_matching(everything.flt), everything.product(st))
        r.hand_stmts = [everything.count_sql(), everything.hand_sql()]
        results.append(r)
        deep_sc = Scenario("deep", EmailFilter(), "true", [], offset=deep * PAGE)
        r = run_pair(f"panel pager.go({deep}) (jump: offset {deep * PAGE:,})", "panel",
                     show(lambda: panel.pager.go(deep)), hand(deep_sc, False), repeat,
                     setup={"product": lambda: panel.pager.go(0)}, log=log)
        tag(r, deep_sc, "page")
        results.append(r)
        next_sc = Scenario("next", EmailFilter(), "true", [], after=row_at(con, (deep + 1) * PAGE - 1))
        r = run_pair(f"panel pager.go({deep + 1}) (next page: keyset)", "panel",
                     show(lambda: panel.pager.go(deep + 1)), hand(next_sc, False), repeat,
                     setup={"product": lambda: panel.pager.go(deep)}, log=log)
        tag(r, next_sc, "page")
        results.append(r)

        def set_status(value: str) -> Callable[[], None]:
            def run() -> None:
                panel.status.value = value
            return run

        r = run_pair("panel status = unread (count + page 1)", "panel", show(set_status("unread")),
                     hand(unread, True), repeat, setup={"product": set_status("")}, log=log)
        r.call = lambda st: (st.count_matching(unread.flt), unread.product(st))
        r.hand_stmts = [unread.count_sql(), unread.hand_sql()]
        results.append(r)
        panel.status.value = ""
        if panel.pager.total != con.execute("SELECT count(*) FROM emails").fetchone()[0]:
            results[0].verdict, results[0].note = "DIFFERS", f"panel total {panel.pager.total}"
    finally:
        keeper = getattr(panel, "_keeper", None)
        if keeper is not None:
            keeper.close()
        else:
            time.sleep(3)  # the panel's connection closes after 2 s idle
        con.close()
    return results


HAND_CLI = (
    "import json, sys\n"
    "import duckdb\n"
    "con = duckdb.connect(sys.argv[1])\n"
    "frame = con.execute(sys.argv[2], json.loads(sys.argv[3])).df()\n"
    "print(frame.to_json(orient='records', date_format='iso', force_ascii=False))\n"
)


TIME = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)


def run_child(cmd: list[str]) -> tuple[float, float, bytes]:
    """Run ``cmd``; return (wall s, peak RSS MB, stdout).

    The peak RSS comes from GNU ``/usr/bin/time -f %M`` (its child's ``wait4`` rusage). Our own
    ``wait4`` on a direct child would not do: Linux counts the RSS of the forked copy of this
    (large) benchmark process before the exec into the child's ``ru_maxrss``. Without GNU time it
    falls back to that, and says so.
    """
    import tempfile

    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=err, cwd=ROOT)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}: {err.read().decode()[-800:]}")
        peak_kb = int(rss.read().split()[-1]) if TIME else usage.ru_maxrss
    return wall, peak_kb / 1024, out


def _cli_help() -> str:
    out = subprocess.run([sys.executable, "-m", "vmailkit.cli", "emails", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    return out.stdout


def cli_phase(path: Path, deep: int, repeat: int, log: Callable[[str], None]) -> list[Result]:
    """``python -m vmailkit.cli --db FILE emails ...`` beside a Python subprocess running the hand-written query."""
    cases = [
        (["--limit", "50"], Scenario("all", EmailFilter(), "true", [])),
        (["--limit", "50", "--offset", str(deep * PAGE)], Scenario("deep", EmailFilter(), "true", [], offset=deep * PAGE)),
        (["--limit", "50", "--status", "unread"], Scenario("unread", EmailFilter(status="unread"), "status = ?", ["unread"])),
    ]
    if search_index_class()[0] is not None and "--search" in _cli_help():
        # full-text search through the index (caught up first; the search phase or a first call builds it)
        cases.append((["--limit", "50", "--search", "rooming list"],
                      Scenario("search", EmailFilter(), "(subject ILIKE ? OR from_address ILIKE ? OR from_name ILIKE ?"
                               " OR body_text ILIKE ?)", ["%rooming list%"] * 4)))
    results: list[Result] = []
    for args, sc in cases:
        cli = [sys.executable, "-m", "vmailkit.cli", "--db", str(path), "emails", *args, "--format", "json"]
        sql, params = sc.hand_sql()
        hand = [sys.executable, "-c", HAND_CLI, str(path), sql, json.dumps(params)]
        label = "CLI emails " + " ".join(args)
        with Background() as bg:
            _, _, out_p = run_child(cli)
            _, _, out_h = run_child(hand)
            diff = None if json.loads(out_p) == json.loads(out_h) else "JSON output differs"
            walls: dict[str, list[float]] = {"product": [], "hand": []}
            rss: dict[str, list[float]] = {"product": [], "hand": []}
            for i in range(repeat):
                for name, cmd in ([("product", cli), ("hand", hand)] if i % 2 == 0 else [("hand", hand), ("product", cli)]):
                    wall, mb, _ = run_child(cmd)
                    walls[name].append(wall)
                    rss[name].append(mb)
        r = Result(label, "cli", walls["product"], walls["hand"], background=bg.share)
        r.judge_ratio()
        if diff:
            r.verdict, r.note = "DIFFERS", diff
        results.append(r)
        log(f"  {label:<46} {'cli':<10} {r.product_ms:8.1f} ms vs {r.hand_ms:8.1f} ms  {r.ratio:5.2f}x  {r.verdict}")
        m = Result(label, "cli", rss["product"], rss["hand"], unit="MB", background=bg.share,
                   note="" if TIME else "RSS from wait4: includes the benchmark's own fork, install GNU time")
        m.target = f"≤ {CLI_RSS_TARGET_MB:g} MB"
        m.verdict = "ok" if max(rss["product"]) <= CLI_RSS_TARGET_MB else "MISSED"
        results.append(m)
        log(f"  {label + ' [peak RSS]':<46} {'cli':<10} {m.product_ms:8.1f} MB vs {m.hand_ms:8.1f} MB  {m.verdict}")
    return results


# =============================================================================== full-text search
def search_index_class() -> tuple[Any, str]:
    """``vmailkit.search.MailIndex`` when it exists with ``for_store``, ``rebuild`` and ``search``."""
    import importlib

    try:
        mod = importlib.import_module("vmailkit.search")
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        return None, f"vmailkit.search cannot be imported ({type(exc).__name__}: {exc})"
    cls = getattr(mod, "MailIndex", None)
    missing = [a for a in ("for_store", "rebuild", "search") if cls is None or not hasattr(cls, a)]
    if missing:
        return None, "vmailkit.search has no MailIndex." + "/".join(missing) + " yet"
    return cls, ""


def _on(keeper: Any, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with keeper.use() as con:
        return con.execute(sql, params).fetchall()


def search_phase(store: Store, path: Path, repeat: int, rebuild: bool,
                 log: Callable[[str], None]) -> tuple[list[Result], str]:
    """Index hits passed to the list as ``EmailFilter(ids=...)``, beside an ILIKE scan (what
    ``EmailFilter(search=...)`` does) returning the first page of the mails containing the text."""
    cls, why = search_index_class()
    if cls is None:
        return [], why
    index = cls.for_store(store)
    fresh = False
    if not rebuild and hasattr(index, "status"):
        with contextlib.suppress(Exception):
            st = index.status(store)
            fresh = not st.stale and st.indexed == st.stored
    if fresh:
        built = "index cached (--rebuild-index to rebuild)"
    else:
        start = time.perf_counter()
        index.rebuild(store)
        built = f"index rebuilt in {time.perf_counter() - start:.0f} s"
    log(f"  {built}")
    keeper = store.keeper()
    results: list[Result] = []
    scan = "(subject ILIKE ? OR from_address ILIKE ? OR from_name ILIKE ? OR body_text ILIKE ?)"
    cases = [("search 'rooming list'", "rooming list", None),
             ("search '\"rooming list\"' (phrase)", '"rooming list"', None),
             ("search 'rooming list' + unread", "rooming list", "unread")]
    try:
        for label, query, status in cases:
            def product(query: str = query, status: str | None = status) -> pd.DataFrame:
                hits = index.search(query)
                with keeper.use():
                    return store.list_emails(EmailFilter(ids=tuple(int(i) for i in hits.ids), status=status), limit=PAGE)

            where = scan + (" AND status = ?" if status else "")
            params = ["%rooming list%"] * 4 + ([status] if status else [])

            def hand(where: str = where, params: list[Any] = params) -> pd.DataFrame:
                with keeper.use() as con:
                    return con.execute(hand_page_sql(where), params).df()

            r = run_pair(label, "search", product, hand, repeat, compare=lambda a, b: None, log=log, judge=judge_search)
            found = tuple(int(i) for i in index.search(query).ids)
            r.call = lambda st, found=found, status=status: st.list_emails(EmailFilter(ids=found, status=status), limit=PAGE)
            r.hand_stmts = [(hand_page_sql(where), params)]
            hits = set(index.search(query).ids)
            with keeper.use() as con:
                scanned = {int(i) for (i,) in con.execute(f"SELECT email_id FROM emails WHERE {where}", params).fetchall()}
                if status:
                    hits = {int(i) for (i,) in con.execute(
                        "SELECT email_id FROM emails WHERE email_id IN (SELECT unnest(?::BIGINT[])) AND status = ?",
                        [sorted(hits), status]).fetchall()}
            same = "the same mails" if hits == scanned else (
                f"{len(hits - scanned):,} only in the index, {len(scanned - hits):,} only in the scan")
            page_diff = same_rows(product(), hand())
            page_same = "first page identical to the scan's" if page_diff is None else f"first pages differ: {page_diff}"
            # where the product's time goes: the index, then the list with every hit as a list parameter
            flt = EmailFilter(ids=tuple(int(i) for i in index.search(query).ids), status=status)

            def listed(flt: EmailFilter = flt) -> pd.DataFrame:
                with keeper.use():
                    return store.list_emails(flt, limit=PAGE)

            parts = interleaved({
                "index": lambda: index.search(query),
                "list": listed,
                "bind": lambda: _on(keeper, "SELECT count(*) FROM (SELECT unnest(?::BIGINT[]))", [list(flt.ids or ())]),
            }, repeat)
            ms = {k: 1000 * statistics.median(v) for k, v in parts.items()}
            r.note = (f"index.search {ms['index']:.0f} ms + list_emails(ids=<{len(flt.ids or ()):,} ids>) "
                      f"{ms['list']:.0f} ms, of which binding the ids as a list parameter ~{ms['bind']:.0f} ms; "
                      f"index {len(hits):,} mails, ILIKE scan {len(scanned):,}: {same}; {page_same}; {built}")
            log(f"    {r.note}; scan / index: {(r.hand_ms or 0) / (r.product_ms or 1):.1f}x")
            results.append(r)
        results += search_as_used(store, path, keeper, scan, repeat, log)
    finally:
        keeper.close()
    return results, ""


def search_as_used(store: Store, path: Path, keeper: Any, scan: str, repeat: int,
                   log: Callable[[str], None]) -> list[Result]:
    """Search as the CLI and the panel run it, when the product has ``vmailkit.browse.resolve_search``
    (the filter's text answered by the index, caught up first, as ids): through the API on the kept
    connection and through ``MailListPanel``'s search box; beside the ILIKE scan."""
    try:
        from vmailkit.browse import resolve_search
    except ImportError:
        log("  vmailkit.browse.resolve_search not found: search as the CLI and panel run it is not measured")
        return []
    results: list[Result] = []
    query = "rooming list"
    for status in (None, "unread"):
        label = f"resolve_search + list_emails: '{query}'" + (" + unread" if status else "")
        flt = EmailFilter(search=query, status=status)
        where = scan + (" AND status = ?" if status else "")
        params = ["%rooming list%"] * 4 + ([status] if status else [])

        def product(flt: EmailFilter = flt) -> pd.DataFrame:
            with keeper.use():
                return store.list_emails(resolve_search(store, flt), limit=PAGE)

        def hand(where: str = where, params: list[Any] = params) -> pd.DataFrame:
            with keeper.use() as con:
                return con.execute(hand_page_sql(where), params).df()

        r = run_pair(label, "search api", product, hand, repeat, log=log, judge=judge_search)
        r.call = lambda st, flt=flt: st.list_emails(resolve_search(st, flt), limit=PAGE)
        r.hand_stmts = [(hand_page_sql(where), params)]
        results.append(r)

    from vmailkit.ui import MailListPanel

    panel = MailListPanel(store, page_size=PAGE)
    con = duckdb.connect(str(path))
    try:
        sc = Scenario("search", EmailFilter(), scan, ["%rooming list%"] * 4)

        def typed(value: str) -> Callable[[], None]:
            def run() -> None:
                panel.search.value = value
            return run

        def shown() -> pd.DataFrame:
            panel.message.value = ""
            typed(query)()
            if "error" in panel.message.value:
                raise RuntimeError(f"the panel reported: {panel.message.value}")
            return panel.page

        def hand_counted() -> pd.DataFrame:
            con.execute(*sc.count_sql()).fetchone()
            return con.execute(*sc.hand_sql()).df()

        r = run_pair(f"panel search box = '{query}' (count + page 1)", "panel", shown, hand_counted, repeat,
                     setup={"product": typed("")}, log=log, judge=judge_search)
        r.hand_stmts = [sc.count_sql(), sc.hand_sql()]
        results.append(r)
    finally:
        panel.search.value = ""
        keeper_p = getattr(panel, "_keeper", None)
        if keeper_p is not None:
            keeper_p.close()
        else:
            time.sleep(3)
        con.close()
    return results


# =============================================================================== what-if
# The mail list's SQL before commit 6a3b99b (vmailkit/store/listing.py at 9f91b32), kept here as the
# baseline of the what-ifs that led to that commit: ``--only whatif`` reproduces the evidence.

#: Before 6a3b99b: accounts and related-to count as correlated subqueries per page mail.
BEFORE_EXTRA_COLUMNS_SQL = """
    SELECT m.email_id,
           (SELECT string_agg(DISTINCT a.name, ', ' ORDER BY a.name) FROM accounts a
             WHERE a.account_id IN (SELECT l.account_id FROM email_locations l WHERE l.email_id = m.email_id
                                    UNION SELECT s.account_id FROM email_sends s WHERE s.email_id = m.email_id)) AS accounts,
           (SELECT count(*) FROM email_links k WHERE k.email_id = m.email_id) AS related_count
    FROM (SELECT unnest(?::BIGINT[]) AS email_id) m
"""
#: Proposed (adopted in 6a3b99b): the page's accounts and related-to count, grouped over the page's mails only.
EXTRA_REWRITE = """
    WITH m AS (SELECT unnest(?::BIGINT[]) AS email_id)
    SELECT m.email_id, a.accounts, coalesce(k.n, 0) AS related_count
    FROM m
    LEFT JOIN (SELECT x.email_id, string_agg(DISTINCT c.name, ', ' ORDER BY c.name) AS accounts
               FROM (SELECT l.email_id, l.account_id FROM email_locations l WHERE l.email_id IN (SELECT email_id FROM m)
                     UNION SELECT s.email_id, s.account_id FROM email_sends s WHERE s.email_id IN (SELECT email_id FROM m)) x
               JOIN accounts c USING (account_id) GROUP BY x.email_id) a USING (email_id)
    LEFT JOIN (SELECT email_id, count(*) AS n FROM email_links WHERE email_id IN (SELECT email_id FROM m)
               GROUP BY email_id) k USING (email_id)
"""


def what_if(path: Path, p: dict[str, Any], deep: int, repeat: int, log: Callable[[str], None]) -> list[Result]:
    """The list's SQL before 6a3b99b beside the change proposed for it (same rows checked), on a held
    connection: the evidence behind that commit. "product" = before, "hand" = proposed."""
    con = duckdb.connect(str(path))
    cols, order = listing_mod.PAGE_COLUMNS, listing_mod.ORDER
    results: list[Result] = []

    def q(sql: str, params: list[Any]) -> Callable[[], list[tuple[Any, ...]]]:
        return lambda: con.execute(sql, params).fetchall()

    def unordered(a: list[Any], b: list[Any]) -> str | None:
        return None if sorted(map(repr, a)) == sorted(map(repr, b)) else f"{len(a)} vs {len(b)} rows"

    def exact(a: list[Any], b: list[Any]) -> str | None:
        return None if a == b else f"{len(a)} vs {len(b)} rows or order differs"

    try:
        ids = [int(r[0]) for r in con.execute(f"SELECT e.email_id FROM emails e ORDER BY {order} LIMIT ?", [PAGE]).fetchall()]
        code = p["code"].lower()
        rec = listing_mod.RECORD_SQL
        rec_params = [code] * rec.count("$q")
        rec_sql = rec.replace("$q", "?")
        pairs = con.execute(rec_sql, rec_params).fetchall()

        def record_shipped() -> list[tuple[Any, ...]]:
            con.execute(f"SELECT count(*) FROM ({rec_sql})", rec_params).fetchone()  # _check_named
            return con.execute(
                f"SELECT {cols} FROM emails e WHERE e.email_id IN (SELECT k.email_id FROM email_links k JOIN ({rec_sql}) r"
                f" ON k.entity_type = r.t AND k.entity_id = r.id) ORDER BY {order} LIMIT ?", rec_params + [PAGE]).fetchall()

        def record_once() -> list[tuple[Any, ...]]:
            found = con.execute(rec_sql, rec_params).fetchall()  # check and resolve in one
            cond = " OR ".join("(k.entity_type = ? AND k.entity_id = ?)" for _ in found) or "false"
            return con.execute(
                f"SELECT {cols} FROM emails e WHERE e.email_id IN (SELECT k.email_id FROM email_links k WHERE {cond})"
                f" ORDER BY {order} LIMIT ?", [v for pair in found for v in pair] + [PAGE]).fetchall()

        # a lookup of normalised record keys, as a CRM load could build it (like migration 0007's match_*
        # tables): one equality on a small table instead of lower()/concat_ws() over every CRM row
        start = time.perf_counter()
        con.execute("CREATE OR REPLACE TEMP TABLE bench_record_keys AS SELECT DISTINCT * FROM ("
                    + " UNION ALL ".join([
                        "SELECT lower(booking_code) AS k, 'reservation' AS t, reservation_id AS id FROM reservations",
                        "SELECT lower(code), 'quote', quote_id FROM quotes",
                        "SELECT lower(number), 'invoice', invoice_id FROM customer_invoices",
                        "SELECT lower(code), 'product', product_id FROM products",
                        "SELECT lower(name), 'product', product_id FROM products",
                        "SELECT lower(name), 'customer', customer_id FROM customers",
                        "SELECT CAST(customer_id AS VARCHAR), 'customer', customer_id FROM customers",
                        "SELECT lower(name), 'supplier', supplier_id FROM suppliers",
                        "SELECT CAST(supplier_id AS VARCHAR), 'supplier', supplier_id FROM suppliers",
                        "SELECT lower(email), 'person', person_id FROM persons",
                        "SELECT lower(concat_ws(' ', first_name, last_name)), 'person', person_id FROM persons"])
                    + ") WHERE k IS NOT NULL")
        keys_built = time.perf_counter() - start
        cases = [
            (f"record {p['code']}: resolve with RECORD_SQL → look up a normalised key table",
             q(f"SELECT DISTINCT t, id FROM ({rec_sql})", rec_params),
             q("SELECT DISTINCT t, id FROM bench_record_keys WHERE k = ?", [code]), unordered),
            ("accounts + related of a page: correlated subqueries → grouped over the page's mails only",
             q(BEFORE_EXTRA_COLUMNS_SQL, [ids]), q(EXTRA_REWRITE, [ids]), unordered),
            (f"page {deep + 1:,} by offset: payload in the TOP_N → page's ids first, then their rows",
             q(f"SELECT {cols} FROM emails e ORDER BY {order} LIMIT ? OFFSET ?", [PAGE, deep * PAGE]),
             q(f"SELECT {cols} FROM emails e WHERE e.email_id IN (SELECT e.email_id FROM emails e ORDER BY {order}"
               f" LIMIT ? OFFSET ?) ORDER BY {order}", [PAGE, deep * PAGE]), exact),
            ("domain filter (count): from_address LIKE ? ESCAPE → ends_with(from_address, ?)",
             q("SELECT count(*) FROM emails e WHERE e.from_address LIKE ? ESCAPE '\\'", ["%@" + p["domain"]]),
             q("SELECT count(*) FROM emails e WHERE ends_with(e.from_address, ?)", ["@" + p["domain"]]), exact),
            (f"record {p['code']} (check + page query): RECORD_SQL twice → resolved once, pairs as parameters",
             record_shipped, record_once, exact),
        ]
        # the page's ids for a search's hits (the mails containing 'rooming list'): the hits as a Python
        # list parameter (what EmailFilter(ids=...) does) → as a registered Arrow array
        import pyarrow as pa

        hit_ids = [int(i) for (i,) in con.execute(
            "SELECT email_id FROM emails WHERE subject ILIKE ? OR body_text ILIKE ?", ["%rooming list%"] * 2).fetchall()]
        keys_sql = f"SELECT e.email_id FROM emails e WHERE e.email_id IN ({{}}) ORDER BY {order} LIMIT {PAGE}"

        def ids_as_arrow() -> list[tuple[Any, ...]]:
            con.register("bench_hits", pa.table({"email_id": pa.array(hit_ids, pa.int64())}))
            try:
                return con.execute(keys_sql.format("SELECT email_id FROM bench_hits")).fetchall()
            finally:
                con.unregister("bench_hits")

        cases.append((f"search page ids for {len(hit_ids):,} hits: ids as a list parameter → a registered Arrow array",
                      q(keys_sql.format("SELECT unnest(?::BIGINT[])"), [hit_ids]), ids_as_arrow, exact))
        for label, shipped, proposed, compare in cases:
            r = run_pair(label, "what-if", shipped, proposed, repeat, compare=compare, log=log, judge=judge_nothing)
            r.note = r.note or f"{r.ratio:.1f}x faster" + (f"; the record is {pairs}" if "record" in label else "")
            if "key table" in label:
                r.note += f"; the key table takes {1000 * keys_built:.0f} ms to build (once per CRM load)"
            results.append(r)
    finally:
        con.close()
    # the deep page's memory: the same two statements in a fresh process each (as the CLI runs them)
    deep_sql = {
        "shipped": f"SELECT {cols} FROM emails e ORDER BY {order} LIMIT {PAGE} OFFSET {deep * PAGE}",
        "proposed": f"SELECT {cols} FROM emails e WHERE e.email_id IN (SELECT e.email_id FROM emails e ORDER BY {order}"
                    f" LIMIT {PAGE} OFFSET {deep * PAGE}) ORDER BY {order}",
    }
    rss: dict[str, list[float]] = {"shipped": [], "proposed": []}
    for i in range(repeat):
        for name in (("shipped", "proposed") if i % 2 == 0 else ("proposed", "shipped")):
            rss[name].append(run_child([sys.executable, "-c", HAND_CLI, str(path), deep_sql[name], "[]"])[1])
    m = Result(f"page {deep + 1:,} by offset in a fresh process (CLI-like)", "what-if",
               rss["shipped"], rss["proposed"], unit="MB")
    m.note = f"{m.product_ms - m.hand_ms:.0f} MB less"
    log(f"  {m.scenario:<46} {'what-if':<10} {m.product_ms:8.1f} MB vs {m.hand_ms:8.1f} MB")
    results.append(m)
    return results


# =============================================================================== main
PHASES = ("api", "cold", "panel", "search", "cli", "whatif")
#: Run unless --only says otherwise (whatif reproduces the evidence behind commit 6a3b99b).
DEFAULT_PHASES = ("api", "cold", "panel", "search", "cli")


def explain_misses(path: Path, results: list[Result], log: Callable[[str], None]) -> str:
    """EXPLAIN ANALYZE (DuckDB's profiler) of the statements the product runs for every missed row
    (recorded as it runs them), beside the hand-written ones."""
    out_file = OUT / "browse-explain.txt"
    out_file.write_text("")
    done: set[str] = set()
    parts: list[str] = []
    for r in results:
        key = f"{r.scenario}|{r.kind}"
        if r.verdict != "MISSED" or r.call is None or key in done:
            continue
        done.add(key)
        stmts = recorded(path, r.call)
        if not stmts:
            parts.append(f"### {r.scenario}: the product's statements could not be recorded")
            continue
        hand = [(f"hand-written {k + 1}" if len(r.hand_stmts) > 1 else "hand-written", sql, params)
                for k, (sql, params) in enumerate(r.hand_stmts)]
        text = explain(path, stmts + hand, out_file)
        parts.append(f"### {r.scenario} ({r.via}): {r.product_ms:.1f} ms vs {r.hand_ms:.1f} ms\n{text}")
    if parts:
        log(f"  full EXPLAIN ANALYZE plans: {out_file}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mails", type=int, default=1_000_000, help="mails in the store (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="100,000 mails")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per side, interleaved (≥ 5; default 7)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached store file")
    ap.add_argument("--only", default=",".join(DEFAULT_PHASES),
                    help=f"phases to run, of {','.join(PHASES)} (default: all but whatif)")
    ap.add_argument("--rebuild-index", action="store_true", help="rebuild the search index even when current")
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the product's statements of missed rows")
    ap.add_argument("--quiet-cpu", type=float, default=0.3,
                    help="wait until other programs use less than this share of the CPUs (default 0.3)")
    ap.add_argument("--quiet-timeout", type=float, default=120.0, help="... but at most this many seconds")
    ap.add_argument("--json", help="write the figures to this JSON file")
    ap.add_argument("--markdown", help="write the table as Markdown to this file")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.mails
    if args.repeat < 5:
        ap.error("--repeat must be at least 5 (median of ≥ 5)")
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases {sorted(unknown)}; use {','.join(PHASES)}")

    def log(text: str) -> None:
        print(text, flush=True)

    mach = machine()
    log(f"vmailkit browsing benchmark: {n:,} mails, median of {args.repeat} interleaved runs per side")
    log(f"  machine: {mach['cpu']}, {mach['cores']} cores, {mach['ram']} RAM; Python {mach['python']}, "
        f"DuckDB {mach['duckdb']}, Linux {mach['kernel']}")
    path, build_s = build_store(n, args.seed, rebuild=args.rebuild, log=log)
    log(f"  store: {path} ({'built in %.0f s' % build_s if build_s is not None else 'cached; --rebuild to rebuild'})")
    desc = describe(path)
    rows = desc["rows"]
    log("  rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    log(f"  file {desc['file_mb']:,.0f} MB; subject avg {desc['subject_avg']:.0f} chars, body_text avg "
        f"{desc['body_avg']:.0f} (min {desc['body_min']}, max {desc['body_max']}); {desc['senders']:,} senders over "
        f"{desc['domains']:,} domains; unread {100 * desc['unread']:.1f} %, outgoing {100 * desc['outgoing']:.1f} %; "
        f"dates {desc['first'][:10]} .. {desc['last'][:10]} ({desc['no_date']} without); "
        f"{desc['folders']} account folders")
    log(f"  placeholders (the list never reads them): emails.raw ~{desc['raw_avg']:.0f} bytes "
        "(emails.size holds a realistic size), body_html NULL")
    p = pick(path, n)
    deep = deep_page(n)
    log(f"  scenarios: sender {p['sender']} ({p['sender_mails']} mails), domain {p['domain']} "
        f"({p['domain_mails']} mails), booking {p['code']} ({p['code_mails']} mails), deep page {deep + 1:,}")
    scs = scenarios(p, deep)

    store = Store(path)
    results: list[Result] = []
    search_note = "not run (--only)"
    phase_fns: dict[str, Callable[[], list[Result]]] = {
        "api": lambda: api_held(store, scs, deep, args.repeat, log),
        "cold": lambda: api_cold(path, scs, args.repeat, log),
        "panel": lambda: panel_phase(store, path, deep, args.repeat, log),
        "cli": lambda: cli_phase(path, deep, args.repeat, log),
        "whatif": lambda: what_if(path, p, deep, args.repeat, log),
    }
    for phase in phases:
        busy = wait_quiet(args.quiet_cpu, args.quiet_timeout)
        log(f"\n{phase}: (machine busy {100 * busy:.0f} % before)")
        if phase == "search":
            found, search_note = search_phase(store, path, args.repeat, args.rebuild_index, log)
            results += found
            if search_note:
                log(f"  search is not measured yet: {search_note}")
        else:
            results += phase_fns[phase]()

    whatifs = [r for r in results if r.via == "what-if"]
    results = [r for r in results if r.via != "what-if"]
    log("\n" + fmt_table(results))
    log("ratio = product / hand-written (median of each; for search rows the hand-written query is the ILIKE scan,"
        " so ≥ 20x faster means ratio ≤ 0.05x); bg = CPU share other programs used meanwhile")
    if whatifs:
        log("\nwhat-if: the list's SQL before 6a3b99b ('product ms') beside the proposed change ('hand ms'), same rows:")
        log(fmt_table(whatifs))
    if "search" in phases and search_note:
        log(f"search: not measured yet ({search_note})")
    missed = [r for r in results if r.verdict != "ok"]
    log(f"{len(results) - len(missed)} of {len(results)} rows meet their target"
        + (": missed " + "; ".join(f"{r.scenario} ({r.via})" for r in missed) if missed else ""))
    explained = ""
    if args.explain and missed:
        log("\nEXPLAIN ANALYZE of the product's statements where a target is missed:")
        explained = explain_misses(path, results, log)
        log(explained)
    if args.markdown:
        Path(args.markdown).write_text(fmt_markdown(results) + "\n\n" + fmt_markdown(whatifs) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "mails": n, "seed": args.seed, "repeat": args.repeat, "machine": mach, "store": desc, "picked": p,
            "build_seconds": build_s, "search": search_note or "measured",
            "results": [{"scenario": r.scenario, "via": r.via, "unit": r.unit, "product": r.product_ms,
                         "hand": r.hand_ms, "ratio": r.ratio, "target": r.target, "verdict": r.verdict,
                         "note": r.note, "background": r.background,
                         "product_runs": r.product, "hand_runs": r.hand} for r in results + whatifs],
            "explain": explained,
        }, indent=1, default=str))
    return 2 if any(r.verdict == "DIFFERS" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
