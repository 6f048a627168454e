"""A hand-built CRM that exercises every branch of the matching rules, and mails to match against it.

Every mail in ``MAILS`` comes with the automatic links it must get (``EXPECTED``) and the
reservation candidates it must keep (``EXPECTED_CANDIDATES``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mailfactory import make_mail
from vmailkit import Store, make_account
from vmailkit.ingest import save_received

PERSONS = pd.DataFrame([
    # person_id, first, last, email, is_temporary, extra column kept as text
    (1, "Ana", "Garcia", "ana@hotelsol.example", "false", "ES"),             # main person of customer 10, has contacts
    (2, "Tom", "Temp", "Temp@X.example", "true", "UK"),                      # temporary: ignored
    (3, "Sam", "Shared", "shared@agency.example", "", "FR"),                 # shares an address with 4
    (4, "Sue", "Shared", " SHARED@Agency.example ", "no", "FR"),
    (5, "Bob", "Upper", " Bob.Upper@Example.COM ", "0", "DE"),               # upper case and spaces
    (6, "Bea", "Bus", "sales@bus.example", "False", "PT"),                   # main person of supplier 21
    (7, "Nil", "Mail", None, "false", "IT"),                                 # no address
    (8, "Tim", "Team", "team@dmc.example", "yes", "NL"),                     # temporary, shares with 9
    (9, "Tina", "Team", "team@dmc.example", "n", "NL"),
], columns=["person_id", "first_name", "last_name", "email", "is_temporary", "country"])

CUSTOMERS = pd.DataFrame([
    (10, "Hotel Sol", 1, "gold"),
    (11, "Temp Travel", 2, "silver"),          # main person is temporary: not found through it
    (12, "Temp Travel Office", None, ""),      # found through its EMAIL contact instead
    (13, "Agency Shared", 3, "gold"),
    (14, "Only Contact Ltd", None, "bronze"),  # found only through an EMAIL contact
    (15, "Sol Group", None, "gold"),           # EMAIL contact = Ana's address, but Ana's customer wins
    (16, "Phone Only", None, ""),              # a PHONE contact holding an address: never matched
], columns=["customer_id", "name", "main_person_id", "segment"])

SUPPLIERS = pd.DataFrame([
    (20, "Shared Coaches", 4),
    (21, "Bus Company", 6),
    (22, "Bus Partner", None),        # EMAIL contact = Bea's address, but Bea's supplier wins
    (23, "Ferry Lines", None),        # found only through an EMAIL contact
    (24, "Contact Supplies", None),   # same contact address as customer 14
], columns=["supplier_id", "name", "main_person_id"])

CONTACTS = pd.DataFrame([
    (1, "customer", 10, "EMAIL", "ana@hotelsol.example"),
    (2, "customer", 10, "PHONE", "+34 600 000 001"),
    (3, "customer", 12, "email", " TEMP@x.example"),
    (4, "Customer", 14, "EMAIL", "Info@OnlyContact.example"),
    (5, "customer", 15, "EMAIL", "ANA@hotelsol.example"),
    (6, "customer", 16, "PHONE", "phone-typed@x.example"),
    (7, "supplier", 22, "EMAIL", "sales@bus.example"),
    (8, "supplier", 23, "EMAIL", "booking@ferry.example"),
    (9, "SUPPLIER", 24, "Email", "info@onlycontact.example"),
    (10, "customer", 99, "EMAIL", "ghost@nowhere.example"),   # owner not loaded: never linked
], columns=["contact_id", "owner_type", "owner_id", "type", "value"])

BRANDS = pd.DataFrame([(1, "DB1"), (2, "xb")], columns=["brand_id", "code"])

RESERVATIONS = pd.DataFrame([
    (100, "B-756", 10, None),
    (101, "O-DB1-324", 13, 1),
    (102, "L-500", 10, None),        # 500 matches two reservations ...
    (103, "B-DB1-500", 14, 1),       # ... so neither is linked: both are candidates
    (104, "B-0756", 10, None),       # leading zero: only "0756" finds it
    (105, "B-ZZ9-888", 10, None),    # ZZ9 is not a brand code
    (106, "X-777", 10, None),        # not a B/O/L code
    (107, "b-XB-901", 12, 2),        # codes compare in any case
], columns=["reservation_id", "booking_code", "customer_id", "brand_id"])

QUOTES = pd.DataFrame([(300, "SQ-2026-17", 21), (301, "SO-2026-18", 23)], columns=["quote_id", "code", "supplier_id"])
INVOICES = pd.DataFrame([(400, "INV-2026-0001", 10), (401, "INV-2026-0002", 14)],
                        columns=["invoice_id", "number", "customer_id"])
PRODUCTS = pd.DataFrame([(500, "PAE", "Paella evening"), (501, "FLA", "Flamenco show")],
                        columns=["product_id", "code", "name"])


def crm_frames() -> dict[str, pd.DataFrame]:
    """Every CRM table of the fixture."""
    return {
        "persons": PERSONS, "customers": CUSTOMERS, "suppliers": SUPPLIERS, "contacts": CONTACTS,
        "brands": BRANDS, "reservations": RESERVATIONS, "quotes": QUOTES, "customer_invoices": INVOICES,
        "products": PRODUCTS,
    }


def write_crm_dir(path: Path, *, parquet: tuple[str, ...] = ()) -> Path:
    """Write the fixture as ``<table>.csv`` files (``<table>.parquet`` for the names in ``parquet``)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, frame in crm_frames().items():
        if name in parquet:
            frame.to_parquet(path / f"{name}.parquet", index=False)
        else:
            frame.to_csv(path / f"{name}.csv", index=False)
    return path


# key -> (From header, Subject)
MAILS: dict[str, tuple[str, str]] = {
    "ana": ("Ana Garcia <ana@hotelsol.example>", "Hello from the hotel"),
    "temp": ("Tom <TEMP@X.example>", "no numbers here"),
    "shared": ("Agency <shared@agency.example>", "Our programme"),
    "bob": ("BOB.UPPER@example.com", "Questions"),
    "contact": ("Info <info@onlycontact.example>", "Enquiry"),
    "phone": ("phone-typed@x.example", "Enquiry"),
    "bus": ("Bea <Sales@Bus.example>", "Coach offer"),
    "ferry": ("booking@ferry.example", "Ferry times"),
    "team": ("team@dmc.example", "Team news"),
    "res": ("nobody@nowhere.example", "test mail subject 756 and 324"),
    "ambiguous": ("nobody@nowhere.example", "Re: Fwd: booking 500"),
    "zero": ("nobody@nowhere.example", "RE: 0756 rooming list"),
    "lower": ("nobody@nowhere.example", "FW: Booking 901"),
    "none": ("nobody@nowhere.example", "888 777 and DB1"),
    "mixed": ("Ana <ana@hotelsol.example>", "AW: 756, 500"),
    "ghost": ("ghost@nowhere.example", "Hello"),
}

# key -> {(entity_type, entity_id, rule)}
EXPECTED: dict[str, set[tuple[str, int, str]]] = {
    "ana": {("person", 1, "person.email"), ("customer", 10, "customer.main_person")},
    "temp": {("customer", 12, "customer.contact_email")},
    "shared": {("person", 3, "person.email"), ("person", 4, "person.email"),
               ("customer", 13, "customer.main_person"), ("supplier", 20, "supplier.main_person")},
    "bob": {("person", 5, "person.email")},
    "contact": {("customer", 14, "customer.contact_email"), ("supplier", 24, "supplier.contact_email")},
    "phone": set(),
    "bus": {("person", 6, "person.email"), ("supplier", 21, "supplier.main_person")},
    "ferry": {("supplier", 23, "supplier.contact_email")},
    "team": {("person", 9, "person.email")},
    "res": {("reservation", 100, "reservation.booking_code"), ("reservation", 101, "reservation.booking_code")},
    "ambiguous": set(),
    "zero": {("reservation", 104, "reservation.booking_code")},
    "lower": {("reservation", 107, "reservation.booking_code")},
    "none": set(),
    "mixed": {("person", 1, "person.email"), ("customer", 10, "customer.main_person"),
              ("reservation", 100, "reservation.booking_code")},
    "ghost": set(),
}

# key -> {(reservation_id, digit group)}
EXPECTED_CANDIDATES: dict[str, set[tuple[int, str]]] = {
    "ambiguous": {(102, "500"), (103, "500")},
    "mixed": {(102, "500"), (103, "500")},
}


def mail_bytes(n: int, key: str) -> bytes:
    sender, subject = MAILS[key]
    return make_mail(n, sender=sender, subject=subject, message_id=f"<{key}-{n}@fixture.example>")


def add_mail_account(store: Store, name: str = "fixture") -> int:
    """A user ``anna`` and an account to store fixture mails under; returns the account id."""
    if store.query("SELECT count(*) AS n FROM users WHERE name = 'anna'")["n"].iloc[0] == 0:
        store.add_user("anna", "anna@tour.example")
    acc = store.add_account(make_account(name, kind="general", protocol="imap", host="mail.example.com",
                                         security="ssl", address="office@tour.example", secret="env:VMK_FIXTURE_PW"))
    return int(acc.account_id)


def store_mails(store: Store, keys: list[str] | None = None, *, start_uid: int = 1) -> dict[str, int]:
    """Store fixture mails without a server (as a download would); return key -> email_id."""
    keys = list(MAILS) if keys is None else keys
    accounts = store.accounts_frame()
    if not len(accounts):
        add_mail_account(store)
    account = str(store.accounts_frame()["name"].iloc[0])
    messages = [(start_uid + i, mail_bytes(start_uid + i, k)) for i, k in enumerate(keys)]
    res = save_received(store, "anna", account, messages)
    return {k: res.by_key[str(uid)] for k, (uid, _) in zip(keys, messages)}
