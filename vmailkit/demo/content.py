"""The demo's data, generated deterministically: a tour operator's mailboxes and its CRM.

*Sunway Tours* sells group tours (Vienna & Budapest, Prague at Christmas, a Danube river cruise
under the brand *Danube Blue*, Mallorca and the Greek islands under *Sunway Classic*). Its mail
comes from customers (agencies, a school, a company, a family), suppliers (hotels, an airline,
coach companies, a ferry line, a cruise company), travellers and newsletters, over seven weeks of
autumn 2026, in eleven languages and their usual charsets, with PDF, CSV, calendar and image attachments,
HTML newsletters with remote images, and threads with replies.

:func:`generate` returns everything as a :class:`DemoContent`: users, accounts and subscriptions,
the CRM tables (DataFrames), every mail with the mailboxes it is delivered to, and the **ground
truth**: for each mail, the automatic links it must get (entity, id, rule) and the reservation
candidates it must keep, derived from the CRM data model (who the sender is, which bookings the
subject names), never from vmailkit's matcher. :meth:`DemoContent.expected_run` turns it into the
figures a batch run over all users must report.

Everything is a pure function of the code: the same bytes, dates, UIDs and POP3 UIDLs on every run.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from . import mime

SEED = 20261102
DOMAIN = "sunway-tours.example"
COMPANY = "Sunway Tours"
START = datetime(2026, 9, 7, tzinfo=timezone.utc)      # a Monday; mail runs for seven weeks
WEEKS = 7

RULES = ("person.email", "customer.main_person", "customer.contact_email", "supplier.main_person",
         "supplier.contact_email", "reservation.booking_code")


# == users and accounts ==========================================================================
@dataclass(frozen=True)
class DemoUser:
    name: str
    email: str
    full_name: str


@dataclass(frozen=True)
class DemoAccount:
    name: str
    kind: str                 # general / personal
    protocol: str             # imap / pop3
    owner: str | None
    address: str

    @property
    def secret_env(self) -> str:
        """The environment variable holding the password (the account's secret is ``env:`` it)."""
        return "VMAILKIT_DEMO_PW_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper())


USERS = (
    DemoUser("anna", f"anna.berger@{DOMAIN}", "Anna Berger"),
    DemoUser("ben", f"ben.okafor@{DOMAIN}", "Ben Okafor"),
)
ACCOUNTS = (
    DemoAccount("office", "general", "imap", None, f"info@{DOMAIN}"),
    DemoAccount("anna-mail", "personal", "imap", "anna", f"anna.berger@{DOMAIN}"),
    DemoAccount("ben-mail", "personal", "pop3", "ben", f"ben.okafor@{DOMAIN}"),
)
SUBSCRIPTIONS = (("anna", "office"), ("anna", "anna-mail"), ("ben", "office"), ("ben", "ben-mail"))


# == CRM ==========================================================================================
@dataclass(frozen=True)
class Person:
    id: int
    first: str
    last: str
    email: str | None
    temporary: bool
    lang: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


PERSONS = (
    # customers' main persons
    Person(1, "Klaus", "Meier", "klaus.meier@alpenblick-reisen.example", False, "de"),
    Person(2, "Lucía", "Fernández", "lucia.fernandez@viajessolymar.example", False, "es"),
    Person(3, "Camille", "Durand", "c.durand@voyages-lumiere.example", False, "fr"),
    Person(4, "Erik", "Lindqvist", "erik@nordicexplorer.example", False, "en"),
    Person(5, "Margaret", "Hughes", "m.hughes@staidans-college.example", False, "en"),
    Person(6, "Piotr", "Kowalski", "piotr.kowalski@poczta.example", False, "pl"),
    Person(7, "Hiroshi", "Yamada", "h.yamada@yamada-travel.example", False, "ja"),
    Person(8, "Nikos", "Papadopoulos", "nikos@hellasholidays.example", False, "el"),
    Person(9, "Gertrud", "Hofer", None, False, "de"),            # no address: her club is found by its contact
    # suppliers' main persons
    Person(20, "Zsófia", "Kovács", "zsofia.kovacs@danube-riverside.example", False, "hu"),
    Person(21, "Tomáš", "Novák", "t.novak@grandvltava.example", False, "cs"),
    Person(22, "Marta", "Ruiz", "marta.ruiz@solplaya.example", False, "es"),
    Person(23, "Stefan", "Gruber", "s.gruber@hotel-am-ring.example", False, "de"),
    Person(24, "Andreas", "Huber", "andreas.huber@alpine-coaches.example", False, "de"),
    Person(25, "Eleni", "Georgiou", "eleni@aegeanblue.example", False, "el"),
    Person(26, "Péter", "Szabó", "p.szabo@danube-cruises.example", False, "hu"),
    # travellers
    Person(40, "Sophie", "Wagner", "sophie.wagner@mailbox.example", False, "de"),
    Person(41, "James", "O'Connor", "jim.oconnor@inbox.example", False, "en"),
    Person(42, "Ana", "Sousa", "ana.sousa@correio.example", False, "pt"),
    Person(43, "Lars", "Nilsson", "lars.nilsson@webmail.example", True, "en"),    # temporary (web enquiry)
    Person(44, "Wei", "Chen", "chen.wei@webmail.example", True, "en"),             # temporary
    Person(45, "Maria", "Rossi", "maria.rossi@posta.example", False, "it"),
    Person(46, "Oliver", "Smith", None, False, "en"),
    Person(47, "Yuki", "Tanaka", "y.tanaka@mail.example", False, "ja"),
    Person(48, "Emma", "Hughes", "emma.hughes@staidans-college.example", False, "en"),
)
PERSON = {p.id: p for p in PERSONS}


@dataclass(frozen=True)
class Org:
    id: int
    name: str
    main_person: int | None
    lang: str
    extra: tuple[tuple[str, str], ...] = ()


CUSTOMERS = (
    Org(101, "Alpenblick Reisen GmbH", 1, "de", (("country", "DE"), ("segment", "agency"))),
    Org(102, "Viajes Sol y Mar S.L.", 2, "es", (("country", "ES"), ("segment", "agency"))),
    Org(103, "Voyages Lumière", 3, "fr", (("country", "FR"), ("segment", "agency"))),
    Org(104, "Nordic Explorer AB", 4, "en", (("country", "SE"), ("segment", "agency"))),
    Org(105, "St Aidan's College", 5, "en", (("country", "GB"), ("segment", "school"))),
    Org(106, "Kowalski family", 6, "pl", (("country", "PL"), ("segment", "private"))),
    Org(107, "Brightwave Software Ltd", None, "en", (("country", "GB"), ("segment", "corporate"))),
    Org(108, "Yamada Travel Service", 7, "ja", (("country", "JP"), ("segment", "agency"))),
    Org(109, "Hellas Holidays", 8, "el", (("country", "GR"), ("segment", "agency"))),
    Org(110, "Danube Seniors Club", 9, "de", (("country", "AT"), ("segment", "club"))),
    Org(111, "Alpenblick Reisen Wien", 1, "de", (("country", "AT"), ("segment", "agency"))),  # same main person as 101
)
SUPPLIERS = (
    Org(201, "Hotel Danube Riverside", 20, "hu", (("category", "hotel"), ("city", "Budapest"))),
    Org(202, "Grand Hotel Vltava", 21, "cs", (("category", "hotel"), ("city", "Prague"))),
    Org(203, "Hotel Sol Playa", 22, "es", (("category", "hotel"), ("city", "Palma"))),
    Org(204, "Hotel Am Ring", 23, "de", (("category", "hotel"), ("city", "Vienna"))),
    Org(205, "SkyBridge Airlines", None, "en", (("category", "airline"), ("city", ""))),
    Org(206, "Alpine Coaches GmbH", 24, "de", (("category", "coach"), ("city", "Salzburg"))),
    Org(207, "Iberbus Coaches", None, "es", (("category", "coach"), ("city", "Palma"))),
    Org(208, "Aegean Blue Ferries", 25, "el", (("category", "ferry"), ("city", "Piraeus"))),
    Org(209, "Danube River Cruises", 26, "hu", (("category", "cruise"), ("city", "Budapest"))),
)
CUSTOMER = {c.id: c for c in CUSTOMERS}
SUPPLIER = {s.id: s for s in SUPPLIERS}

CONTACTS = (  # contact_id, owner_type, owner_id, type, value
    (1, "customer", 101, "EMAIL", "buchung@alpenblick-reisen.example"),
    (2, "customer", 101, "PHONE", "+49 89 5550 1200"),
    (3, "customer", 102, "EMAIL", "reservas@viajessolymar.example"),
    (4, "customer", 103, "EMAIL", "groupes@voyages-lumiere.example"),
    (5, "customer", 104, "EMAIL", "booking@nordicexplorer.example"),
    (6, "customer", 107, "EMAIL", "events@brightwave.example"),
    (7, "customer", 107, "PHONE", "+44 20 7946 0321"),
    (8, "customer", 108, "PHONE", "+81 3 5555 0188"),
    (9, "customer", 110, "EMAIL", "club@danube-seniors.example"),
    (10, "supplier", 201, "EMAIL", "reservations@danube-riverside.example"),
    (11, "supplier", 202, "EMAIL", "groups@grandvltava.example"),
    (12, "supplier", 203, "EMAIL", "reservas@solplaya.example"),
    (13, "supplier", 205, "EMAIL", "groups@skybridge-air.example"),
    (14, "supplier", 206, "EMAIL", "dispo@alpine-coaches.example"),
    (15, "supplier", 207, "EMAIL", "operaciones@iberbus.example"),
    (16, "supplier", 208, "PHONE", "+30 210 555 0142"),
    (17, "supplier", 209, "EMAIL", "booking@danube-cruises.example"),
)

BRANDS = ((1, "DB1", "Danube Blue"), (2, "SUN", "Sunway Classic"))

PRODUCTS = (
    (501, "VIE-BUD-8", "Vienna & Budapest, 8 days"),
    (502, "DB-CRUISE-7", "Danube Blue river cruise, 7 nights"),
    (503, "PRG-XMAS-4", "Prague Christmas markets, 4 days"),
    (504, "MAL-BEACH-7", "Mallorca beach week"),
    (505, "GR-ISL-10", "Greek islands, 10 days"),
    (506, "ALP-LAKES-6", "Alpine lakes by coach, 6 days"),
)


@dataclass(frozen=True)
class Reservation:
    id: int
    code: str
    customer: int
    brand: int | None
    product: str
    departure: str
    pax: int
    hotels: tuple[int, ...]
    transport: tuple[int, ...]

    @property
    def number(self) -> str:
        return self.code.rsplit("-", 1)[1]


RESERVATIONS = (
    Reservation(301, "B-756", 101, None, "VIE-BUD-8", "2026-10-12", 24, (204, 201), (206,)),
    Reservation(302, "B-762", 103, None, "PRG-XMAS-4", "2026-12-04", 32, (202,), (206,)),
    Reservation(303, "B-771", 105, None, "VIE-BUD-8", "2027-03-22", 41, (204, 201), (206,)),
    Reservation(304, "B-779", 106, None, "MAL-BEACH-7", "2026-10-03", 4, (203,), (207,)),
    Reservation(305, "O-812", 104, None, "ALP-LAKES-6", "2027-06-14", 18, (204,), (206, 205)),
    Reservation(306, "O-818", 102, None, "PRG-XMAS-4", "2026-12-11", 28, (202,), (205,)),
    Reservation(307, "O-825", 108, None, "VIE-BUD-8", "2027-04-05", 16, (204, 201), (205,)),
    Reservation(308, "L-905", 107, None, "MAL-BEACH-7", "2027-05-20", 60, (203,), (207, 205)),
    Reservation(309, "L-911", 109, None, "GR-ISL-10", "2027-05-02", 22, (), (208,)),
    Reservation(310, "B-DB1-1017", 101, 1, "DB-CRUISE-7", "2026-10-18", 30, (209, 201), ()),
    Reservation(311, "B-DB1-1042", 104, 1, "DB-CRUISE-7", "2026-10-25", 26, (209, 201), ()),
    Reservation(312, "B-DB1-1055", 110, 1, "DB-CRUISE-7", "2027-04-18", 35, (209,), ()),
    Reservation(313, "O-DB1-1063", 103, 1, "DB-CRUISE-7", "2027-05-09", 20, (209,), ()),
    Reservation(314, "B-SUN-2204", 102, 2, "MAL-BEACH-7", "2026-10-10", 12, (203,), (207,)),
    Reservation(315, "B-SUN-2231", 111, 2, "GR-ISL-10", "2027-05-23", 18, (), (208,)),
    Reservation(316, "O-SUN-2210", 109, 2, "GR-ISL-10", "2027-06-01", 14, (), (208,)),
    Reservation(317, "B-2210", 111, None, "VIE-BUD-8", "2027-02-15", 20, (204,), (206,)),
    Reservation(318, "L-SUN-2245", 108, 2, "MAL-BEACH-7", "2027-06-12", 16, (203,), (207,)),
)
RESERVATION = {r.code: r for r in RESERVATIONS}
#: A number that two reservations share (B-2210 and O-SUN-2210): a subject naming it gets candidates.
AMBIGUOUS_NUMBER = "2210"

QUOTES = ((401, "SQ-26-041", 201), (402, "SQ-26-044", 203), (403, "SQ-26-052", 209), (404, "SO-26-017", 206))
INVOICES = ((451, "INV-26-0412", 101), (452, "INV-26-0419", 104), (453, "INV-26-0433", 107), (454, "INV-26-0440", 106))


def crm_frames() -> dict[str, pd.DataFrame]:
    """The CRM tables as DataFrames (required columns first, then extra ones a real export has)."""
    persons = pd.DataFrame(
        [(p.id, p.first, p.last, p.email or "", "true" if p.temporary else "false", p.lang) for p in PERSONS],
        columns=["person_id", "first_name", "last_name", "email", "is_temporary", "language"])

    def orgs(rows: Sequence[Org], id_col: str) -> pd.DataFrame:
        extra_cols = [k for k, _ in rows[0].extra]
        return pd.DataFrame([(o.id, o.name, "" if o.main_person is None else o.main_person, *[v for _, v in o.extra])
                             for o in rows], columns=[id_col, "name", "main_person_id", *extra_cols])

    product_id = {code: pid for pid, code, _ in PRODUCTS}
    return {
        "persons": persons,
        "customers": orgs(CUSTOMERS, "customer_id"),
        "suppliers": orgs(SUPPLIERS, "supplier_id"),
        "contacts": pd.DataFrame(list(CONTACTS), columns=["contact_id", "owner_type", "owner_id", "type", "value"]),
        "brands": pd.DataFrame(list(BRANDS), columns=["brand_id", "code", "name"]),
        "reservations": pd.DataFrame(
            [(r.id, r.code, r.customer, "" if r.brand is None else r.brand, product_id[r.product], r.departure, r.pax)
             for r in RESERVATIONS],
            columns=["reservation_id", "booking_code", "customer_id", "brand_id", "product_id", "departure", "pax"]),
        "quotes": pd.DataFrame([(q, c, s, "received") for q, c, s in QUOTES],
                               columns=["quote_id", "code", "supplier_id", "status"]),
        "customer_invoices": pd.DataFrame(
            [(i, n, c, f"{1200 + 173 * k:.2f}", "EUR") for k, (i, n, c) in enumerate(INVOICES)],
            columns=["invoice_id", "number", "customer_id", "amount", "currency"]),
        "products": pd.DataFrame([(p, c, n, n.split(",")[0]) for p, c, n in PRODUCTS],
                                 columns=["product_id", "code", "name", "destination"]),
    }


# == the rules' expectations (from the data model) ==============================================
Link = tuple[str, int, str]   # (entity_type, entity_id, rule)


def sender_links(address: str) -> list[Link]:
    """The links a mail from ``address`` must get by the sender rules (see ``docs/matching.md``)."""
    addr = address.strip().lower()
    persons = [p for p in PERSONS if p.email and p.email.lower() == addr and not p.temporary]
    person_ids = {p.id for p in persons}
    links: list[Link] = [("person", p.id, "person.email") for p in persons]
    for owner, orgs in (("customer", CUSTOMERS), ("supplier", SUPPLIERS)):
        main = [o.id for o in orgs if o.main_person in person_ids]
        if main:
            links += [(owner, i, f"{owner}.main_person") for i in main]
        else:
            ids = {o.id for o in orgs}
            found = sorted({oid for _, otype, oid, kind, value in CONTACTS
                            if otype == owner and kind == "EMAIL" and value.lower() == addr and oid in ids})
            links += [(owner, i, f"{owner}.contact_email") for i in found]
    return links


def reservations_for_number(number: str) -> list[int]:
    """Reservations whose booking code ends in ``-number`` (B/O/L, with or without a brand code)."""
    return [r.id for r in RESERVATIONS if r.number == number]


# == mails =======================================================================================
@dataclass
class DemoMail:
    """One generated mail and what the automatic matcher must do with it."""

    key: str
    date: datetime
    sender: str                       # the From address
    subject: str                      # as decoded
    category: str                     # customer, supplier, traveller, newsletter, internal, other
    mailboxes: tuple[str, ...]        # accounts it is delivered to
    message: bytes                    # the message as sent (without transport headers)
    links: tuple[Link, ...] = ()
    candidates: tuple[tuple[str, int], ...] = ()
    refs: tuple[str, ...] = ()        # booking numbers the subject names on purpose

    def delivered(self, account: DemoAccount, seq: int) -> bytes:
        """The bytes in ``account``'s mailbox: transport headers added by our mail server, then the message."""
        sender_domain = self.sender.rpartition("@")[2] or "unknown.example"
        received_at = self.date + timedelta(seconds=17 + seq % 90)
        queue_id = hashlib.sha1(f"{self.key}/{account.name}".encode()).hexdigest()[:12].upper()
        lines = [
            f"Return-Path: <{self.sender}>",
            f"Delivered-To: {account.address}",
            f"Received: from mx.{sender_domain} (mx.{sender_domain} [192.0.2.{10 + seq % 200}])",
            f"\tby mx.{DOMAIN} (Postfix) with ESMTPS id {queue_id}",
            f"\tfor <{account.address}>; {mime.format_datetime(received_at)}",
        ]
        return ("\r\n".join(lines) + "\r\n").encode("ascii") + self.message


@dataclass
class DemoContent:
    """Everything the demo serves and loads, with the ground truth."""

    users: tuple[DemoUser, ...]
    accounts: tuple[DemoAccount, ...]
    subscriptions: tuple[tuple[str, str], ...]
    crm: dict[str, pd.DataFrame]
    mails: list[DemoMail]
    ambiguous_number: str = AMBIGUOUS_NUMBER

    def account(self, name: str) -> DemoAccount:
        return next(a for a in self.accounts if a.name == name)

    def mailbox(self, account: str) -> list[tuple[bytes, datetime]]:
        """The messages of ``account`` in delivery order (oldest first), as the server holds them."""
        acc = self.account(account)
        mails = sorted((m for m in self.mails if account in m.mailboxes), key=lambda m: (m.date, m.key))
        return [(m.delivered(acc, i), m.date) for i, m in enumerate(mails)]

    def mails_in(self, account: str) -> list[DemoMail]:
        return sorted((m for m in self.mails if account in m.mailboxes), key=lambda m: (m.date, m.key))

    def mails_per_account(self) -> dict[str, int]:
        return {a.name: len(self.mails_in(a.name)) for a in self.accounts}

    def expected_links(self) -> pd.DataFrame:
        """Every automatic link the matcher must make: key, subject, entity_type, entity_id, rule."""
        rows = [(m.key, m.subject, t, i, r) for m in self.mails for t, i, r in m.links]
        return pd.DataFrame(rows, columns=["key", "subject", "entity_type", "entity_id", "rule"])

    def expected_candidates(self) -> pd.DataFrame:
        rows = [(m.key, m.subject, t, i) for m in self.mails for t, i in m.candidates]
        return pd.DataFrame(rows, columns=["key", "subject", "entity_type", "entity_id"])

    def subscribed(self, user: str) -> list[DemoAccount]:
        """``user``'s accounts in the order vmailkit processes them: general first, then by name."""
        names = {a for u, a in self.subscriptions if u == user}
        return sorted((a for a in self.accounts if a.name in names), key=lambda a: (a.kind, a.name))

    def expected_run(self, users: Iterable[str] | None = None, *, done: set[tuple[str, str]] | None = None,
                     stored: set[str] | None = None) -> pd.DataFrame:
        """The per-account figures a batch run over ``users`` (default: all, by name) must report on a
        fresh database: user, account, listed, downloaded, already_present, links, candidates, and
        one column per rule. ``done``/``stored`` carry state between runs (then nothing is listed)."""
        done = set() if done is None else done            # (user, account) already imported
        stored = set() if stored is None else stored      # mail keys stored
        rows = []
        for user in sorted(users if users is not None else [u.name for u in self.users]):
            for acc in self.subscribed(user):
                mails = [] if (user, acc.name) in done else self.mails_in(acc.name)
                new = [m for m in mails if m.key not in stored]
                stored.update(m.key for m in new)
                done.add((user, acc.name))
                row = {"user": user, "account": acc.name, "listed": len(mails), "downloaded": len(new),
                       "already_present": len(mails) - len(new),
                       "links": sum(len(m.links) for m in new), "candidates": sum(len(m.candidates) for m in new)}
                for rule in RULES:
                    row[rule] = sum(1 for m in new for _, _, r in m.links if r == rule)
                rows.append(row)
        return pd.DataFrame(rows)


# == text =======================================================================================
#: Per language: charset and transfer encoding of the body, reply prefix, and phrases.
LANGS: dict[str, dict[str, str]] = {
    "en": dict(charset="us-ascii", cte="7bit", re="Re:", booking="Booking", names="final names",
               rooming="rooming list", request="Request", invoice="Invoice", question="Question about booking",
               hello="Dear {name},", bye="Kind regards", ok="Thank you, that is fine for us."),
    "de": dict(charset="iso-8859-1", cte="quoted-printable", re="AW:", booking="Buchung", names="Teilnehmerliste",
               rooming="Zimmerliste", request="Anfrage", invoice="Rechnung", question="Frage zur Buchung",
               hello="Sehr geehrte Damen und Herren,", bye="Mit freundlichen Grüßen",
               ok="Vielen Dank, das passt für uns so."),
    "es": dict(charset="utf-8", cte="8bit", re="RE:", booking="Reserva", names="lista de pasajeros",
               rooming="rooming list", request="Solicitud", invoice="Factura", question="Consulta sobre la reserva",
               hello="Estimados señores:", bye="Un cordial saludo", ok="Muchas gracias, así está bien."),
    "fr": dict(charset="windows-1252", cte="quoted-printable", re="RE :", booking="Réservation",
               names="liste des participants", rooming="liste des chambres", request="Demande", invoice="Facture",
               question="Question sur la réservation", hello="Bonjour,", bye="Bien cordialement",
               ok="Merci beaucoup, c’est parfait pour nous."),
    "pl": dict(charset="iso-8859-2", cte="quoted-printable", re="Odp:", booking="Rezerwacja",
               names="lista uczestników", rooming="lista pokoi", request="Zapytanie", invoice="Faktura",
               question="Pytanie o rezerwację", hello="Szanowni Państwo,", bye="Z poważaniem",
               ok="Dziękujemy, tak jest w porządku."),
    "ja": dict(charset="iso-2022-jp", cte="7bit", re="Re:", booking="予約", names="参加者リスト",
               rooming="ルーミングリスト", request="お問い合わせ", invoice="請求書", question="予約についての質問",
               hello="サンウェイツアーズ御中", bye="よろしくお願いいたします。", ok="ありがとうございます。了解いたしました。"),
    "el": dict(charset="iso-8859-7", cte="quoted-printable", re="ΑΠ:", booking="Κράτηση", names="λίστα επιβατών",
               rooming="λίστα δωματίων", request="Αίτημα", invoice="Τιμολόγιο", question="Ερώτηση για την κράτηση",
               hello="Αγαπητοί συνεργάτες,", bye="Με εκτίμηση", ok="Ευχαριστούμε, είναι εντάξει."),
    "hu": dict(charset="iso-8859-2", cte="quoted-printable", re="Vá:", booking="Foglalás", names="résztvevők listája",
               rooming="szobabeosztás", request="Ajánlatkérés", invoice="Számla", question="Kérdés a foglalásról",
               hello="Tisztelt Partnerünk!", bye="Üdvözlettel", ok="Köszönjük, így rendben van."),
    "cs": dict(charset="windows-1250", cte="base64", re="Odp:", booking="Rezervace", names="seznam účastníků",
               rooming="rooming list", request="Poptávka", invoice="Faktura", question="Dotaz k rezervaci",
               hello="Vážení obchodní partneři,", bye="S pozdravem", ok="Děkujeme, takto je to v pořádku."),
    "it": dict(charset="utf-8", cte="quoted-printable", re="R:", booking="Prenotazione", names="lista nomi",
               rooming="rooming list", request="Richiesta", invoice="Fattura", question="Domanda sulla prenotazione",
               hello="Gentili signori,", bye="Cordiali saluti", ok="Grazie mille, va benissimo."),
    "pt": dict(charset="iso-8859-15", cte="quoted-printable", re="RE:", booking="Reserva", names="lista de nomes",
               rooming="rooming list", request="Pedido", invoice="Fatura", question="Pergunta sobre a reserva",
               hello="Caros senhores,", bye="Com os melhores cumprimentos", ok="Obrigada, está ótimo."),
}

BODY: dict[str, dict[str, str]] = {
    "names": {
        "en": "please find the final list of participants for booking {ref} attached.\n"
              "Two travellers need a ground-floor room; their names are marked in the list.",
        "de": "anbei erhalten Sie die endgültige Teilnehmerliste für die Buchung {ref}.\n"
              "Zwei Gäste benötigen ein Zimmer im Erdgeschoss, sie sind in der Liste markiert.",
        "es": "adjuntamos la lista definitiva de pasajeros para la reserva {ref}.\n"
              "Dos señoras mayores necesitan habitación en planta baja, están señaladas en la lista.",
        "fr": "veuillez trouver ci-joint la liste définitive des participants pour la réservation {ref}.\n"
              "Deux voyageurs souhaitent une chambre au rez-de-chaussée ; ils sont indiqués dans la liste.",
        "pl": "w załączniku przesyłamy ostateczną listę uczestników rezerwacji {ref}.\n"
              "Córka potrzebuje łóżka dostawkowego w pokoju rodziców.",
        "ja": "予約{ref}の最終参加者リストを添付いたします。\n一名様が車椅子をご利用になります。",
        "el": "σας στέλνουμε συνημμένα την τελική λίστα επιβατών για την κράτηση {ref}.\n"
              "Δύο επιβάτες χρειάζονται δωμάτιο στο ισόγειο.",
    },
    "request": {
        "en": "we would like to offer the programme {product} to a group of about {pax} people.\n"
              "Could you send us a quotation for {month}, twin rooms, half board?",
        "de": "wir möchten unseren Kunden das Programm {product} für etwa {pax} Personen anbieten.\n"
              "Bitte senden Sie uns ein Angebot für {month}, Doppelzimmer, Halbpension.",
        "es": "queremos ofrecer el programa {product} a un grupo de unas {pax} personas.\n"
              "¿Podrían enviarnos un presupuesto para {month}, habitaciones dobles, media pensión?",
        "fr": "nous souhaitons proposer le programme {product} à un groupe d’environ {pax} personnes.\n"
              "Pourriez-vous nous envoyer un devis pour {month}, chambres doubles, demi-pension ?",
        "pl": "interesuje nas program {product} dla {pax} osób.\nProszę o ofertę na {month}.",
        "ja": "{product}のプログラムについて、{pax}名様のグループでお見積もりをお願いいたします。\n"
              "出発は{month}を予定しております。",
        "el": "θα θέλαμε να προσφέρουμε το πρόγραμμα {product} σε ομάδα περίπου {pax} ατόμων.\n"
              "Μπορείτε να μας στείλετε προσφορά για {month};",
    },
    "question": {
        "en": "a short question about booking {ref}: can the group check in early on arrival day?",
        "de": "eine kurze Frage zur Buchung {ref}: Ist ein früher Check-in am Anreisetag möglich?",
        "es": "una pregunta sobre la reserva {ref}: ¿es posible hacer el check-in temprano el día de llegada?",
        "fr": "une petite question sur la réservation {ref} : le groupe peut-il arriver plus tôt à l’hôtel ?",
        "pl": "krótkie pytanie o rezerwację {ref}: czy możliwe jest wcześniejsze zameldowanie?",
        "ja": "予約{ref}について質問です。到着日のアーリーチェックインは可能でしょうか。",
        "el": "μια ερώτηση για την κράτηση {ref}: είναι δυνατό το πρωινό check-in την ημέρα άφιξης;",
    },
    "invoice_question": {
        "en": "we received invoice {ref}. The amount for the single supplements seems too high;\n"
              "could you check it, please?",
        "de": "wir haben die Rechnung {ref} erhalten. Die Einzelzimmerzuschläge erscheinen uns zu hoch,\n"
              "bitte prüfen Sie das noch einmal.",
        "pl": "otrzymaliśmy fakturę {ref}. Prosimy o korektę danych nabywcy (NIP).",
    },
    "rooming": {
        "en": "please find attached the rooming list for group {ref} as entered in our system.\n"
              "Kindly check the names and let us know of any changes.",
        "de": "anbei die Zimmerliste für die Gruppe {ref}, wie sie in unserem System erfasst ist.\n"
              "Bitte prüfen Sie die Namen und teilen Sie uns Änderungen mit.",
        "es": "adjuntamos la rooming list del grupo {ref} tal como figura en nuestro sistema.\n"
              "Por favor revisen los nombres y comuníquennos cualquier cambio.",
        "hu": "mellékelten küldjük a(z) {ref} csoport szobabeosztását.\n"
              "Kérjük, ellenőrizzék a neveket, és jelezzék az esetleges változásokat.",
        "cs": "v příloze zasíláme rooming list pro skupinu {ref}.\nProsíme o kontrolu jmen a případné změny.",
    },
    "transport": {
        "en": "we confirm the flights for group {ref}: outbound SB 417, return SB 418.\n"
              "Names are due 21 days before departure.",
        "de": "wir bestätigen den Bus für die Gruppe {ref}: 49-Sitzer mit Fahrer, Abholung 08:30 am Hotel.\n"
              "Der Fahrer ist unter der bekannten Nummer erreichbar.",
        "es": "confirmamos el autocar para el grupo {ref}: traslado aeropuerto - hotel, autocar de 55 plazas.\n"
              "El conductor esperará con un cartel de Sunway Tours.",
        "el": "επιβεβαιώνουμε τις θέσεις για την ομάδα {ref}: Πειραιάς - Νάξος, 07:25, καμπίνες 4 κλινών.",
        "hu": "visszaigazoljuk a(z) {ref} csoport hajóútját, a kabinlistát mellékeljük.",
    },
    "supplier_invoice": {
        "en": "please find attached our invoice for group {ref}. Payment within 14 days.",
        "de": "anbei unsere Rechnung für die Gruppe {ref}. Zahlbar innerhalb von 14 Tagen.",
        "es": "adjuntamos nuestra factura del grupo {ref}. Pago a 14 días.",
        "hu": "mellékelten küldjük a(z) {ref} csoportra vonatkozó számlánkat. Fizetési határidő 14 nap.",
        "cs": "v příloze zasíláme fakturu za skupinu {ref}. Splatnost 14 dní.",
        "el": "σας επισυνάπτουμε το τιμολόγιο για την ομάδα {ref}. Πληρωμή εντός 14 ημερών.",
    },
    "quote": {
        "en": "thank you for your enquiry. Please find our offer {ref} attached, valid for 14 days.",
        "de": "vielen Dank für Ihre Anfrage. Unser Angebot {ref} finden Sie im Anhang, gültig 14 Tage.",
        "es": "gracias por su consulta. Adjuntamos nuestra oferta {ref}, válida durante 14 días.",
        "hu": "köszönjük megkeresésüket. Mellékelten küldjük {ref} számú ajánlatunkat, 14 napig érvényes.",
    },
    "traveller": {
        "en": "I am travelling with the group on booking {ref}. I am vegetarian and have a nut allergy;\n"
              "could you let the hotels know? Thank you!",
        "de": "ich reise mit der Gruppe der Buchung {ref}. Ich esse vegetarisch und habe eine Nussallergie,\n"
              "könnten Sie das bitte an die Hotels weitergeben?",
        "pt": "vou viajar com o grupo da reserva {ref}. Sou vegetariana e tenho alergia a frutos secos;\n"
              "podem informar os hotéis? Obrigada!",
        "it": "viaggio con il gruppo della prenotazione {ref}. Sono celiaca: potete avvisare gli hotel?\nGrazie!",
        "ja": "予約{ref}のグループで参加する田中です。そばアレルギーがありますので、ホテルにお伝えください。",
    },
}

NEWSLETTERS = (
    # sender name, address, title, lang
    ("Travel Trade Weekly", "news@traveltradeweekly.example", "Travel Trade Weekly", "en"),
    ("SkyBridge Airlines", "offers@news.skybridge-air.example", "SkyBridge group fares", "en"),
    ("Hotel Sol Playa", "newsletter@solplaya.example", "Noticias Sol Playa", "es"),
    ("Budapest Tourism Board", "info@visit-budapest.example", "Budapest news", "en"),
)
OTHER = (
    ("ITB Berlin Ticketing", "tickets@itb-berlin.example", "Your exhibitor passes for ITB Berlin 2027", "en"),
    ("Parcel Express", "no-reply@parcelexpress.example", "Your parcel is on its way", "en"),
    ("Webinar Team", "events@tourismtech.example", "Invitation: webinar on dynamic packaging", "en"),
    ("Office IT", f"it@{DOMAIN}", "Scheduled maintenance: mail server on Saturday", "en"),
    ("Jana Horváth", "jana.horvath@post.example", "Application: tour guide, German/Hungarian", "de"),
    ("Insurance Desk", "desk@travelinsure.example", "Renewal of your liability insurance", "en"),
    ("Stadt Wien Events", "events@wien-events.example", "Adventmärkte 2026: Termine für Gruppen", "de"),
    ("Accounts Payable", "ap@printshop.example", "Reminder: brochure print order", "en"),
)


class _Builder:
    """Builds the mails; each ``add`` derives the ground truth for the mail it makes."""

    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.mails: list[DemoMail] = []
        self.seq = 0

    # -- dates ------------------------------------------------------------------------------------
    def day(self, week: int, weekday: int, hour: int | None = None) -> datetime:
        hour = self.rng.randint(7, 18) if hour is None else hour
        return START + timedelta(days=7 * week + weekday, hours=hour, minutes=self.rng.randint(0, 59),
                                 seconds=self.rng.randint(0, 59))

    def later(self, date: datetime, *, days: int = 0, hours: int = 0) -> datetime:
        """``date`` plus a delay, moved into office hours (07:00-19:00 UTC) when it falls outside them."""
        when = date + timedelta(days=days, hours=hours)
        if when.hour < 7:
            when = when.replace(hour=7 + when.hour % 3)
        elif when.hour >= 19:
            when = (when + timedelta(days=1)).replace(hour=8 + when.hour % 3)
        return when

    def random_day(self, week_from: int = 0, week_to: int = WEEKS - 1) -> datetime:
        return self.day(self.rng.randint(week_from, week_to), self.rng.randint(0, 4))

    # -- one mail ---------------------------------------------------------------------------------
    def add(self, *, sender_name: str, sender: str, to: Sequence[str], subject: str, lang: str, text: str,
            date: datetime, mailboxes: Sequence[str], category: str, refs: Sequence[str] = (),
            attachments: Sequence[mime.Part] = (), html: str | None = None, logo: bytes | None = None,
            cc: Sequence[str] = (), reply_to: "DemoMail | None" = None, extra: Sequence[tuple[str, str]] = ()) -> DemoMail:
        self.seq += 1
        key = f"m{self.seq:04d}"
        spec = LANGS[lang]
        charset, cte = spec["charset"], spec["cte"]
        if charset == "us-ascii" and not (text + (html or "")).isascii():
            charset, cte = "utf-8", "quoted-printable"
        domain = sender.rpartition("@")[2]
        message_id = f"{key}.{hashlib.sha1(key.encode()).hexdigest()[:10]}@{domain}"
        in_reply_to = references = None
        if reply_to is not None:
            ours = f"out-{reply_to.key}@{DOMAIN}"       # our answer, which sits in our Sent folder
            original = re.search(rb"Message-ID: <([^>]+)>", reply_to.message)
            in_reply_to = ours
            references = ([original.group(1).decode()] if original else []) + [ours]
        body_part = mime.text_part(text, charset=charset, cte=cte)
        if html is not None:
            html_part = mime.text_part(html, subtype="html", charset="utf-8", cte="quoted-printable")
            body_part = mime.multipart("alternative", [body_part, html_part], f"=_alt_{key}")
            if logo is not None:
                body_part = mime.multipart("related", [body_part, mime.binary_part(
                    logo, "image/png", "logo.png", inline=True, content_id=f"logo.{key}@{domain}")],
                    f"=_rel_{key}", params='; type="multipart/alternative"')
        if attachments:
            body_part = mime.multipart("mixed", [body_part, *attachments], f"=_mix_{key}")
        raw = mime.message(
            sender=mime.address(sender_name, sender, charset if charset != "us-ascii" else "utf-8"),
            to=list(to), cc=list(cc), subject=subject, date=date, message_id=message_id, body=body_part,
            charset=charset if charset != "us-ascii" else "utf-8", in_reply_to=in_reply_to, references=references,
            extra=list(extra),
        )
        links = list(sender_links(sender))
        candidates: list[tuple[str, int]] = []
        for number in dict.fromkeys(refs):
            found = reservations_for_number(number)
            if len(found) == 1:
                links.append(("reservation", found[0], "reservation.booking_code"))
            else:
                candidates += [("reservation", r) for r in found]
        _check_subject(key, subject, refs)
        mail = DemoMail(key=key, date=date, sender=sender, subject=subject, category=category,
                        mailboxes=tuple(mailboxes), message=raw, links=tuple(links),
                        candidates=tuple(candidates), refs=tuple(refs))
        self.mails.append(mail)
        return mail

    def compose(self, intent: str, lang: str, greeting_name: str, signer: str, company: str, **values: object) -> str:
        spec = LANGS[lang]
        bodies = BODY[intent]
        body_lang = lang if lang in bodies else "en"
        hello = spec["hello"].format(name=greeting_name) if body_lang == lang else LANGS["en"]["hello"].format(
            name=greeting_name)
        bye = spec["bye"] if body_lang == lang else LANGS["en"]["bye"]
        text = bodies[body_lang].format(**values)
        return f"{hello}\n\n{text}\n\n{bye}\n{signer}\n{company}\n"

    def reply_text(self, lang: str, signer: str, company: str, quoted: str) -> str:
        spec = LANGS[lang]
        quote = "\n".join("> " + line if line else ">" for line in quoted.strip().split("\n"))
        return f"{spec['ok']}\n\n{spec['bye']}\n{signer}\n{company}\n\n{quote}\n"


def _check_subject(key: str, subject: str, refs: Sequence[str]) -> None:
    """The subject names exactly the booking numbers intended: no digit group hits a reservation by chance."""
    numbers = {r.number for r in RESERVATIONS}
    hits = set(re.findall(r"[0-9]+", subject)) & numbers
    if hits != set(refs):
        raise AssertionError(f"demo mail {key}: subject {subject!r} names {sorted(hits)}, intended {sorted(refs)}")


def _our_answer(code: str, lang: str) -> str:
    texts = {
        "de": f"vielen Dank, wir haben die Änderungen zur Buchung {code} übernommen.\nDie aktualisierte Liste folgt.",
        "en": f"thank you, we have updated booking {code}.\nThe revised list will follow shortly.",
        "es": f"gracias, hemos actualizado la reserva {code}.\nLes enviaremos la lista revisada.",
        "fr": f"merci, nous avons mis à jour la réservation {code}.\nLa liste révisée suit.",
    }
    return texts.get(lang, texts["en"])


def _csv_names(code: str, pax: int, rng: random.Random) -> bytes:
    first = ["Anna", "Marco", "Lena", "Jonas", "Sofia", "Pavel", "Ingrid", "Luis", "Hana", "Oskar", "Élise", "Zoë"]
    last = ["Schmidt", "García", "Novak", "Berg", "Rossi", "Dubois", "Kowalczyk", "Tanaka", "Horvath", "Olsen"]
    lines = ["booking;last_name;first_name;room;notes"]
    for i in range(min(pax, 24)):
        lines.append(f"{code};{rng.choice(last)};{rng.choice(first)};{'DBL' if i % 3 else 'SGL'};"
                     f"{'ground floor' if i in (2, 5) else ''}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _ics(uid: str, summary: str, start: datetime) -> bytes:
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    end = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//vmailkit demo//EN", "METHOD:REQUEST", "BEGIN:VEVENT",
             f"UID:{uid}", f"DTSTAMP:{stamp}", f"DTSTART:{stamp}", f"DTEND:{end}", f"SUMMARY:{summary}",
             "END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _newsletter_html(title: str, sender_domain: str, issue: int, items: Sequence[str]) -> str:
    cdn = f"https://cdn.{sender_domain}/newsletter/{issue}"
    rows = "\n".join(
        f'<tr><td><img src="{cdn}/item{i}.jpg" width="180" alt=""></td><td><h3>{item}</h3>'
        f'<p>Read more on <a href="https://www.{sender_domain}/n/{issue}/{i}">our website</a>.</p></td></tr>'
        for i, item in enumerate(items, start=1))
    return (f"<!DOCTYPE html><html><body style=\"font-family:Arial\">\n"
            f'<img src="{cdn}/header.png" width="600" alt="{title}">\n<h1>{title} #{issue}</h1>\n'
            f"<table>\n{rows}\n</table>\n"
            f'<p style="font-size:11px"><a href="https://www.{sender_domain}/unsubscribe?u=SW{issue:03d}">'
            f"Unsubscribe</a></p>\n"
            f'<img src="https://t.{sender_domain}/open.gif?i={issue}" width="1" height="1" alt="">\n</body></html>\n')


def _hotel_html(text: str, hotel: str, key: str, domain: str) -> str:
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\n") if line)
    return (f'<html><body><img src="cid:logo.{key}@{domain}" alt="{hotel}" width="120">'
            f"{paragraphs}<hr><small>{hotel}</small></body></html>\n")


def generate() -> DemoContent:
    """The demo's users, accounts, CRM data, mails and ground truth (always the same)."""
    b = _Builder()
    rng = b.rng
    office, anna, ben = (a.address for a in ACCOUNTS)
    anna_customers = {101, 102, 103, 106, 108, 111}

    def person_of(org: Org) -> Person | None:
        return PERSON.get(org.main_person) if org.main_person is not None else None

    def customer_sender(c: Org) -> tuple[str, str, str]:
        """(display name, address, signer) of a customer's usual sender."""
        p = person_of(c)
        if p is not None and p.email:
            return p.name, p.email, p.name
        contact = next(v for _, t, o, k, v in CONTACTS if t == "customer" and o == c.id and k == "EMAIL")
        return c.name, contact, c.name

    def supplier_sender(s: Org, generic: bool = False) -> tuple[str, str, str]:
        p = person_of(s)
        contact = next((v for _, t, o, k, v in CONTACTS if t == "supplier" and o == s.id and k == "EMAIL"), None)
        if p is not None and p.email and not (generic and contact):
            return p.name, p.email, p.name
        if contact is None:
            assert p is not None and p.email
            return p.name, p.email, p.name
        return f"{s.name} Reservations", contact, f"{s.name} - Reservations"

    # -- 1. reservation threads: customers, hotels, transport, supplier invoices ---------------------
    for r in RESERVATIONS:
        c = CUSTOMER[r.customer]
        lang = c.lang
        spec = LANGS[lang]
        name, addr, signer = customer_sender(c)
        boxes = ("office", "anna-mail") if c.id in anna_customers and rng.random() < 0.45 else ("office",)
        cc = [anna] if "anna-mail" in boxes else []
        week = rng.randint(0, 3)
        if r.number == AMBIGUOUS_NUMBER:   # its own mails name the trip, not the number (see section 2)
            shown, refs = f"{r.product} {r.departure[:7]}", []
        else:
            shown, refs = rng.choice([r.code, r.number]), [r.number]
        subject = f"{spec['booking']}{shown} {spec['names']}" if lang == "ja" else \
            f"{spec['booking']} {shown} - {spec['names']}"
        text = b.compose("names", lang, "Sunway Tours", signer, c.name, ref=r.code)
        first = b.add(sender_name=name, sender=addr, to=[office], cc=cc, subject=subject, lang=lang, text=text,
                      date=b.day(week, rng.randint(0, 4)), mailboxes=boxes, category="customer", refs=refs,
                      attachments=[mime.binary_part(_csv_names(r.code, r.pax, rng), "text/csv; charset=utf-8",
                                                    f"participants_{r.number}.csv")])
        if rng.random() < 0.7:
            b.add(sender_name=name, sender=addr, to=[office], cc=cc, subject=f"{spec['re']} {subject}", lang=lang,
                  text=b.reply_text(lang, signer, c.name, _our_answer(r.code, lang if lang in ("de", "es", "fr") else "en")),
                  date=b.later(first.date, days=1, hours=rng.randint(1, 30)), mailboxes=boxes,
                  category="customer", refs=refs, reply_to=first)
        if rng.random() < 0.5:  # a question a bit later
            qsubject = f"{spec['question']} {r.code}" if r.number != AMBIGUOUS_NUMBER else \
                f"{spec['question']} ({r.product})"
            b.add(sender_name=name, sender=addr, to=[office], cc=cc, subject=qsubject, lang=lang,
                  text=b.compose("question", lang, "Sunway Tours", signer, c.name, ref=r.code),
                  date=b.day(min(week + rng.randint(1, 3), WEEKS - 1), rng.randint(0, 4)), mailboxes=boxes,
                  category="customer", refs=refs)
        # hotels: rooming list (PDF, HTML with the hotel's logo) and often a confirmation of changes
        for hotel_id in r.hotels:
            h = SUPPLIER[hotel_id]
            hname, haddr, hsigner = supplier_sender(h, generic=rng.random() < 0.4)
            hlang = h.lang
            hspec = LANGS[hlang]
            shown = r.code if r.number != AMBIGUOUS_NUMBER else f"{r.product}/{r.departure}"
            hrefs = [r.number] if r.number != AMBIGUOUS_NUMBER else []
            english = rng.random() < 0.5   # hotels often write to agencies in English
            hsubject = f"{shown} rooming list" if english else f"{hspec['rooming'].capitalize()} {shown}"
            htext = b.compose("rooming", hlang, "Sunway Tours", hsigner, h.name, ref=shown)
            filename = (f"Szobabeosztás_{r.code}.pdf" if hlang == "hu" else f"Rooming_list_{r.code}.pdf")
            pdf = mime.pdf(f"Rooming list {r.code}", [h.name, f"Arrival {r.departure}", f"{r.pax} guests",
                                                      "DBL x %d, SGL x %d" % (r.pax // 2 - 1, 2)])
            to_boxes = ("office", "ben-mail") if rng.random() < 0.25 else ("office",)
            hmail = b.add(sender_name=hname, sender=haddr, to=[office], cc=[ben] if "ben-mail" in to_boxes else [],
                          subject=hsubject, lang=hlang, text=htext, html=_hotel_html(htext, h.name, f"m{b.seq + 1:04d}",
                                                                                     haddr.rpartition("@")[2]),
                          logo=mime.png(48, 24, hotel_id), date=b.day(week + 1, rng.randint(0, 4)), mailboxes=to_boxes,
                          category="supplier", refs=hrefs,
                          attachments=[mime.binary_part(pdf, "application/pdf", filename)])
            if rng.random() < 0.55:
                b.add(sender_name=hname, sender=haddr, to=[office],
                      subject=f"{'Re:' if english else hspec['re']} {hsubject}", lang=hlang,
                      text=b.reply_text(hlang, hsigner, h.name, "please note two ground-floor rooms and one late arrival."),
                      date=b.later(hmail.date, hours=rng.randint(3, 40)), mailboxes=("office",),
                      category="supplier", refs=hrefs, reply_to=hmail)
        for transport_id in r.transport:
            t = SUPPLIER[transport_id]
            tname, taddr, tsigner = supplier_sender(t, generic=rng.random() < 0.5)
            tlang = t.lang
            shown = r.code if r.number != AMBIGUOUS_NUMBER else f"{r.product} {r.departure}"
            trefs = [r.number] if r.number != AMBIGUOUS_NUMBER else []
            kind = {"airline": "Flights", "coach": "Coach", "ferry": "Ferry", "cruise": "Cruise"}[dict(t.extra)["category"]]
            tsubject = f"{kind} confirmation {shown}"
            box = ("ben-mail",) if rng.random() < 0.5 else ("office",)
            attachments = []
            if kind == "Coach":
                attachments = [mime.binary_part(mime.png(64, 40, r.id), "image/png", f"seat_plan_{r.number}.png")]
            b.add(sender_name=tname, sender=taddr, to=[ben if box == ("ben-mail",) else office], subject=tsubject,
                  lang=tlang, text=b.compose("transport", tlang, "Sunway Tours", tsigner, t.name, ref=shown),
                  date=b.day(min(week + 2, WEEKS - 1), rng.randint(0, 4)), mailboxes=box, category="supplier",
                  refs=trefs, attachments=attachments)
        if r.departure < "2026-11-01":   # travelled: the suppliers invoice
            for sid in (*r.hotels, *r.transport):
                s = SUPPLIER[sid]
                sname, saddr, ssigner = supplier_sender(s, generic=True)
                slang = s.lang
                number = f"{rng.randint(2600, 2699)}/{rng.randint(10, 99)}"
                sspec = LANGS[slang]
                isubject = f"{sspec['invoice']} {number} - {r.code}"
                b.add(sender_name=sname, sender=saddr, to=[office], subject=isubject, lang=slang,
                      text=b.compose("supplier_invoice", slang, "Sunway Tours", ssigner, s.name, ref=r.code),
                      date=b.day(WEEKS - 1, rng.randint(0, 4)), mailboxes=("office",), category="supplier",
                      refs=[r.number],
                      attachments=[mime.binary_part(mime.pdf(f"Invoice {number}", [s.name, f"Group {r.code}",
                                                                                   f"Amount EUR {r.pax * 389:,}.00"]),
                                                    "application/pdf", f"invoice_{number.replace('/', '-')}.pdf")])

    # -- 2. the ambiguous number: B-2210 (Alpenblick Wien) and O-SUN-2210 (Hellas Holidays) -----------
    hellas, wien = CUSTOMER[109], CUSTOMER[111]
    for org, when, boxes in ((hellas, b.day(3, 1), ("office",)), (wien, b.day(4, 2), ("office", "anna-mail")),
                             (hellas, b.day(5, 3), ("office",))):
        name, addr, signer = customer_sender(org)
        spec = LANGS[org.lang]
        b.add(sender_name=name, sender=addr, to=[office], cc=[anna] if "anna-mail" in boxes else [],
              subject=f"{spec['question']} {AMBIGUOUS_NUMBER}", lang=org.lang,
              text=b.compose("question", org.lang, "Sunway Tours", signer, org.name, ref=AMBIGUOUS_NUMBER),
              date=when, mailboxes=boxes, category="customer", refs=[AMBIGUOUS_NUMBER])
    traveller = PERSON[41]
    b.add(sender_name=traveller.name, sender=traveller.email or "", to=[office],
          subject=f"Booking {AMBIGUOUS_NUMBER} - dietary requirements", lang="en",
          text=b.compose("traveller", "en", "Sunway Tours", traveller.name, "", ref=AMBIGUOUS_NUMBER),
          date=b.day(5, 0), mailboxes=("office",), category="traveller", refs=[AMBIGUOUS_NUMBER])

    # -- 3. new requests from customers (no reservation yet) --------------------------------------------
    months = ["May 2027", "June 2027", "September 2027", "March 2027", "April 2027"]
    for i in range(22):
        c = CUSTOMERS[i % len(CUSTOMERS)]
        product = PRODUCTS[(i * 5) % len(PRODUCTS)]
        name, addr, signer = customer_sender(c)
        spec = LANGS[c.lang]
        boxes = ("anna-mail",) if c.id in anna_customers and i % 3 == 0 else ("office",)
        subject = f"{spec['request']}: {product[2].split(',')[0]}, {months[i % len(months)]}"
        first = b.add(sender_name=name, sender=addr, to=[anna if boxes == ("anna-mail",) else office], subject=subject,
                      lang=c.lang, text=b.compose("request", c.lang, "Sunway Tours", signer, c.name, product=product[2],
                                                  pax=10 + 4 * (i % 9), month=months[i % len(months)]),
                      date=b.random_day(), mailboxes=boxes, category="customer")
        if i % 2 == 0:
            b.add(sender_name=name, sender=addr, to=[anna if boxes == ("anna-mail",) else office],
                  subject=f"{spec['re']} {subject}", lang=c.lang,
                  text=b.reply_text(c.lang, signer, c.name, "thank you for your request; our offer is attached."),
                  date=b.later(first.date, days=2, hours=rng.randint(0, 20)), mailboxes=boxes, category="customer",
                  reply_to=first)

    # -- 4. supplier quotes and customer invoice questions ----------------------------------------------
    for qid, code, sid in QUOTES:
        s = SUPPLIER[sid]
        sname, saddr, ssigner = supplier_sender(s)
        spec = LANGS[s.lang]
        first = b.add(sender_name=sname, sender=saddr, to=[office], subject=f"Offer {code} - {s.name}", lang=s.lang,
                      text=b.compose("quote", s.lang, "Sunway Tours", ssigner, s.name, ref=code), date=b.random_day(0, 4),
                      mailboxes=("office",), category="supplier",
                      attachments=[mime.binary_part(mime.pdf(f"Offer {code}", [s.name, "Valid 14 days"]),
                                                    "application/pdf", f"{code}.pdf")])
        b.add(sender_name=sname, sender=saddr, to=[office], subject=f"{spec['re']} Offer {code} - {s.name}",
              lang=s.lang, text=b.reply_text(s.lang, ssigner, s.name, "could you hold the rooms until Friday?"),
              date=b.later(first.date, days=3), mailboxes=("office",), category="supplier", reply_to=first)
    for iid, number, cid in INVOICES:
        c = CUSTOMER[cid]
        name, addr, signer = customer_sender(c)
        spec = LANGS[c.lang]
        b.add(sender_name=name, sender=addr, to=[office], subject=f"{spec['invoice']} {number}", lang=c.lang,
              text=b.compose("invoice_question", c.lang, "Sunway Tours", signer, c.name, ref=number),
              date=b.random_day(3, 6), mailboxes=("office",), category="customer")

    # -- 5. travellers (some are temporary persons: no person link, the booking number still links) -----
    traveller_trips = ((41, "B-756"), (40, "B-756"), (41, "B-771"), (42, "B-SUN-2204"), (43, "O-812"), (44, "B-DB1-1042"),
                       (45, "O-818"), (47, "O-825"), (40, "B-DB1-1017"), (48, "B-771"), (42, "B-779"),
                       (45, "B-762"), (43, "B-DB1-1042"), (47, "L-SUN-2245"), (41, "L-905"), (40, "O-DB1-1063"),
                       (45, "B-DB1-1055"), (48, "B-771"), (42, "L-911"))
    for i, (pid, code) in enumerate(traveller_trips):
        p = PERSON[pid]
        r = RESERVATION[code]
        lang = p.lang if p.lang in BODY["traveller"] else "en"
        spec = LANGS[lang]
        box = ("office",) if i % 3 else ("ben-mail",)
        attachments = [mime.binary_part(mime.png(40, 30, pid + i), "image/png", f"photo_{i + 1}.png")] if i % 4 == 1 else []
        b.add(sender_name=p.name, sender=p.email or "", to=[office if box == ("office",) else ben],
              subject=f"Booking {r.number} - special requests" if lang == "en" else f"{spec['booking']} {r.code}: "
                                                                                   f"{spec['question']}",
              lang=lang, text=b.compose("traveller", lang, "Sunway Tours", p.name, "", ref=r.code),
              date=b.random_day(1, 6), mailboxes=box, category="traveller", refs=[r.number],
              attachments=attachments)

    # -- 6. newsletters: HTML with remote images, weekly ------------------------------------------------
    topics = ["Winter rates announced", "New direct routes from Vienna", "Group fares for spring 2027",
              "Christmas markets guide", "Trade fair calendar", "Sustainability award winners",
              "Cruise season review", "Hotel openings", "Visa rules update", "Last-minute allotments"]
    for week in range(WEEKS):
        for n, (sname, saddr, title, lang) in enumerate(NEWSLETTERS):
            if n == 3 and week % 2:      # the tourism board writes every other week
                continue
            issue = 40 + week
            items = [topics[(week + n + k) % len(topics)] for k in range(3)]
            domain = saddr.rpartition("@")[2]
            text = f"{title} #{issue}\n\n" + "\n".join(f"* {it}" for it in items) + \
                f"\n\nView in your browser: https://www.{domain}/n/{issue}\nUnsubscribe: https://www.{domain}/unsubscribe\n"
            box = ("office",) if (week + n) % 4 else (("anna-mail",) if n % 2 == 0 else ("ben-mail",))
            b.add(sender_name=sname, sender=saddr, to=[office if box == ("office",) else (anna if box == ("anna-mail",) else ben)],
                  subject=f"{title} #{issue}: {items[0]}", lang=lang if lang == "en" else "es", text=text,
                  html=_newsletter_html(title, domain, issue, items), date=b.day(week, 1 + n % 3, 6),
                  mailboxes=box, category="newsletter",
                  extra=[("List-Unsubscribe", f"<https://www.{domain}/unsubscribe>"), ("Precedence", "bulk")])

    # -- 7. internal mail between colleagues (not CRM records) -----------------------------------------
    internal = (
        ("Ben Okafor", f"ben.okafor@{DOMAIN}", anna, "anna-mail", "Coach for the school group in March?"),
        ("Ben Okafor", f"ben.okafor@{DOMAIN}", anna, "anna-mail", "Fwd: SkyBridge schedule change winter"),
        ("Ben Okafor", f"ben.okafor@{DOMAIN}", anna, "anna-mail", "Lunch Thursday?"),
        ("Anna Berger", f"anna.berger@{DOMAIN}", ben, "ben-mail", "Prague hotel allotment for December"),
        ("Anna Berger", f"anna.berger@{DOMAIN}", ben, "ben-mail", "Site inspection Budapest - invitation"),
        ("Anna Berger", f"anna.berger@{DOMAIN}", ben, "ben-mail", "Holiday cover 19-23 October"),
        ("Ben Okafor", f"ben.okafor@{DOMAIN}", anna, "anna-mail", "Brochure proofs 2027"),
    )
    for i, (sname, saddr, to, box, subject) in enumerate(internal):
        when = b.random_day()
        attachments = []
        if "invitation" in subject:
            attachments = [mime.binary_part(_ics(f"inspection-{i}@{DOMAIN}", "Site inspection Budapest",
                                                 when + timedelta(days=9)), "text/calendar; method=REQUEST",
                                            "invite.ics")]
        b.add(sender_name=sname, sender=saddr, to=[to], subject=subject, lang="en",
              text=f"Hi,\n\n{subject} - see below / attached.\n...and the rest when we talk.\n\n"
                   f"Cheers\n{sname.split()[0]}\n", date=when,
              mailboxes=(box,), category="internal", attachments=attachments)

    # -- 8. anna's own customers write to her directly (threads), in their languages --------------------
    for i in range(22):
        c = CUSTOMER[sorted(anna_customers)[i % len(anna_customers)]]
        name, addr, signer = customer_sender(c)
        spec = LANGS[c.lang]
        product = PRODUCTS[(i * 5 + i // len(anna_customers)) % len(PRODUCTS)]
        subject = f"{spec['request']}: {product[1]} {months[(i + 2) % len(months)]}"
        first = b.add(sender_name=name, sender=addr, to=[anna], subject=subject, lang=c.lang,
                      text=b.compose("request", c.lang, "Anna", signer, c.name, product=product[2], pax=12 + i,
                                     month=months[(i + 2) % len(months)]),
                      date=b.random_day(), mailboxes=("anna-mail",), category="customer")
        previous = first
        for k in range(i % 3):
            previous = b.add(sender_name=name, sender=addr, to=[anna], subject=f"{spec['re']} {subject}", lang=c.lang,
                             text=b.reply_text(c.lang, signer, c.name, previous.subject),
                             date=b.later(previous.date, days=1 + k, hours=rng.randint(1, 9)),
                             mailboxes=("anna-mail",), category="customer", reply_to=previous)

    # -- 9. ben: suppliers' operational mail --------------------------------------------------------------
    ops = {
        "hotel": ("Updated allotment", "Room release reminder", "New contact person", "Renovation works in the lobby"),
        "coach": ("Driver details for next week", "Parking for coaches", "Schedule change"),
        "airline": ("Schedule change", "Group fare deadline"),
        "ferry": ("Timetable winter season", "Schedule change"),
        "cruise": ("Cabin allocation update", "Embarkation times"),
    }
    for i in range(28):
        s = SUPPLIERS[i % len(SUPPLIERS)]
        sname, saddr, ssigner = supplier_sender(s, generic=i % 2 == 0)
        choices = ops[dict(s.extra)["category"]]
        topic = choices[(i // len(SUPPLIERS)) % len(choices)]
        b.add(sender_name=sname, sender=saddr, to=[ben], subject=f"{topic} - {s.name}", lang="en",
              text=f"Dear Ben,\n\n{topic.lower()}: please see the details below.\n"
                   f"Call us if anything is unclear.\n\nBest regards\n{ssigner}\n{s.name}\n",
              date=b.random_day(), mailboxes=("ben-mail",), category="supplier")

    # -- 10. everything else: no CRM record ---------------------------------------------------------------
    for i, (sname, saddr, subject, lang) in enumerate(OTHER):
        box = ("office",) if i % 3 else ("ben-mail",) if i % 2 else ("anna-mail",)
        b.add(sender_name=sname, sender=saddr, to=[{"office": office, "anna-mail": anna, "ben-mail": ben}[box[0]]],
              subject=subject, lang=lang, text="Hello,\n\nthis message does not concern any booking.\n\nRegards\n" + sname + "\n",
              date=b.random_day(), mailboxes=box, category="other")
    # a personal mail with a non-ASCII sender name and a photo from a trip
    b.add(sender_name="Zoë Müller", sender="zoe.mueller@mailbox.example", to=[anna], subject="Grüße aus Wien!",
          lang="de", text="Hallo Anna,\n\nviele Grüße aus Wien, das Wetter ist herrlich.\n\nZoë\n",
          date=b.day(5, 5, 10), mailboxes=("anna-mail",), category="other",
          attachments=[mime.binary_part(mime.png(96, 64, 7), "image/png", "Stephansdom.png")])

    return DemoContent(users=USERS, accounts=ACCOUNTS, subscriptions=SUBSCRIPTIONS, crm=crm_frames(), mails=b.mails)
