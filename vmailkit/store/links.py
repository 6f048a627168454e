"""Links between mail and CRM records: automatic matching, manual links, rejections, candidates, search.

The automatic rules (see ``docs/matching.md``) run as a handful of set-based statements over the
mails in scope, never as a loop per mail. Every statement takes its values as parameters.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..errors import NotFoundError, ValidationError
from .db import Database

#: Linkable record types: type -> (table, id column).
ENTITY_TABLES: dict[str, tuple[str, str]] = {
    "customer": ("customers", "customer_id"),
    "supplier": ("suppliers", "supplier_id"),
    "reservation": ("reservations", "reservation_id"),
    "quote": ("quotes", "quote_id"),
    "invoice": ("customer_invoices", "invoice_id"),
    "product": ("products", "product_id"),
    "person": ("persons", "person_id"),
}
ENTITY_TYPES: tuple[str, ...] = tuple(ENTITY_TABLES)

#: Friendly names accepted wherever a type is given (compared lower-case, ``-``/space as ``_``, ``.`` dropped).
ENTITY_ALIASES: dict[str, str] = {
    **{t: t for t in ENTITY_TABLES},
    **{t + "s": t for t in ENTITY_TABLES},
    "customer_invoice": "invoice", "customer_invoices": "invoice",
    "order": "quote", "orders": "quote", "sp_quote": "quote", "sp_order": "quote", "quote_order": "quote",
    "sp_quote/order": "quote", "quote/order": "quote", "supplier_quote": "quote", "supplier_order": "quote",
    "booking": "reservation", "bookings": "reservation",
    "contact_person": "person", "people": "person",
}

#: Rules of the automatic matcher, in the order they are applied.
RULES: tuple[str, ...] = (
    "person.email", "customer.main_person", "customer.contact_email", "supplier.main_person",
    "supplier.contact_email", "reservation.booking_code",
)

#: A canonical link target: (entity type, entity id); see :func:`normalize_targets` for what callers may give.
Target = tuple[str, int]


def normalize_entity_type(name: str) -> str:
    """The canonical type for ``name`` (aliases such as ``customer_invoice`` or ``order`` accepted).

    Raises :class:`ValidationError` (field ``entity_type``) for an unknown type.
    """
    key = str(name or "").strip().lower().replace("-", "_").replace(" ", "_").replace(".", "")
    key = key.replace("__", "_")
    if key in ENTITY_ALIASES:
        return ENTITY_ALIASES[key]
    raise ValidationError("entity_type", f"unknown type {name!r}; use one of {', '.join(ENTITY_TYPES)}")


def normalize_targets(targets: Sequence[Any]) -> list[Target]:
    """Canonical ``(type, id)`` pairs, duplicates removed, in the order given.

    ``targets`` is a sequence of: ``(type, id)`` pairs, ``"type:id"`` strings, dicts or DataFrames
    with ``entity_type`` and ``entity_id`` (e.g. a search result), or lists of these. The bare pair
    ``("customer", 7)`` (a type without ``:`` and an id) is one target. Raises
    :class:`ValidationError` for an unknown type, an id that is not a whole number, or no target.
    """
    items: list[Any] = []

    def flatten(spec: Any) -> None:
        if isinstance(spec, pd.DataFrame):
            if not {"entity_type", "entity_id"} <= set(spec.columns):
                raise ValidationError("targets", "a DataFrame of targets needs columns entity_type and entity_id")
            items.extend(zip(spec["entity_type"], spec["entity_id"]))
        elif isinstance(spec, (str, dict)) or (
            isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and ":" not in spec[0]
        ):
            items.append(spec)
        elif isinstance(spec, (list, tuple)):
            for sub in spec:
                flatten(sub)
        else:
            raise ValidationError("target", f"{spec!r} is not a (type, id) pair or TYPE:ID")

    if len(targets) == 2 and isinstance(targets[0], str) and ":" not in targets[0] and not isinstance(
            targets[1], (tuple, list, dict, pd.DataFrame)) and not (isinstance(targets[1], str) and ":" in targets[1]):
        items.append(tuple(targets))
    else:
        for spec in targets:
            flatten(spec)
    out: list[Target] = []
    for item in items:
        if isinstance(item, str):
            etype, sep, eid = item.rpartition(":")
            if not sep:
                raise ValidationError("target", f"{item!r} is not TYPE:ID")
        elif isinstance(item, dict):
            etype, eid = item.get("entity_type"), item.get("entity_id")
        else:
            etype, eid = item
        canonical = normalize_entity_type(str(etype))
        number = _whole_number(eid)
        if (canonical, number) not in out:
            out.append((canonical, number))
    if not out:
        raise ValidationError("targets", "name at least one record")
    return out


def _whole_number(value: Any) -> int:
    """``value`` as an int (ints, integral floats such as pandas' ``7.0``, digit strings); raises
    :class:`ValidationError` (field ``entity_id``) otherwise."""
    if isinstance(value, bool):
        raise ValidationError("entity_id", f"{value!r} is not a whole number")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    text = str(value).strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    raise ValidationError("entity_id", f"{value!r} is not a whole number")


@dataclass
class MatchResult:
    """What one run of the automatic matcher did."""

    mails: int = 0                                        # mails looked at
    links_added: int = 0                                  # new automatic links
    by_rule: dict[str, int] = field(default_factory=dict)  # new links per rule
    candidates_added: int = 0                             # new reservation candidates (ambiguous numbers)
    skipped_rejected: int = 0                             # links found but removed earlier by a user


@dataclass(frozen=True)
class _SearchSpec:
    """How one type is searched: the ids hit (cheap filters on each table, against ``q.q``), then
    display name, detail and ranking computed for the hits only."""

    hits: tuple[str, ...]      # SELECTs of ids (column ``id``); may use ``q.q``
    joins: str                 # LEFT JOINs for display/detail/ranking, on alias ``x``
    display: str
    detail: str
    ranked: tuple[str, ...]    # texts ranked exact / prefix / substring; ``k.vals`` is a list


def _contains(*exprs: str) -> str:
    return " OR ".join(f"contains(lower({e}), q.q)" for e in exprs)


def _owner_spec(owner: str, table: str, id_col: str) -> _SearchSpec:
    return _SearchSpec(
        hits=(
            f"SELECT {id_col} AS id FROM {table}, q WHERE {_contains('name')} OR CAST({id_col} AS VARCHAR) = q.q",
            f"SELECT o.{id_col} AS id FROM persons p, q JOIN {table} o ON o.main_person_id = p.person_id"
            f" WHERE {_contains('p.email')}",
            f"SELECT owner_id AS id FROM contacts, q WHERE owner_type = '{owner}' AND {_contains('value')}",
        ),
        joins=(
            "LEFT JOIN persons p ON p.person_id = x.main_person_id"
            " LEFT JOIN (SELECT owner_id, list(DISTINCT lower(trim(value))) AS vals FROM contacts"
            f"  WHERE owner_type = '{owner}' AND value IS NOT NULL AND owner_id IN (SELECT id FROM hits)"
            f"  GROUP BY owner_id) k ON k.owner_id = x.{id_col}"
        ),
        display="x.name", detail="p.email", ranked=("x.name", "p.email", "k.vals"),
    )


def _coded_spec(table: str, id_col: str, code: str, owner_table: str, owner_id: str, owner_fk: str) -> _SearchSpec:
    return _SearchSpec(
        hits=(
            f"SELECT {id_col} AS id FROM {table}, q WHERE {_contains(code)} OR CAST({id_col} AS VARCHAR) = q.q",
            f"SELECT t.{id_col} AS id FROM {owner_table} o, q JOIN {table} t ON t.{owner_fk} = o.{owner_id}"
            f" WHERE {_contains('o.name')}",
        ),
        joins=f"LEFT JOIN {owner_table} o ON o.{owner_id} = x.{owner_fk}",
        display=f"x.{code}", detail="o.name", ranked=(f"x.{code}", "o.name"),
    )


_SEARCH: dict[str, _SearchSpec] = {
    "person": _SearchSpec(
        hits=("SELECT person_id AS id FROM persons, q WHERE "
              + _contains("concat_ws(' ', first_name, last_name)", "email") + " OR CAST(person_id AS VARCHAR) = q.q",),
        joins="",
        display="coalesce(nullif(concat_ws(' ', x.first_name, x.last_name), ''), x.email)",
        detail="nullif(concat_ws(' ', x.email, CASE WHEN x.is_temporary THEN '(temporary)' END), '')",
        ranked=("x.first_name", "x.last_name", "concat_ws(' ', x.first_name, x.last_name)", "x.email"),
    ),
    "customer": _owner_spec("customer", "customers", "customer_id"),
    "supplier": _owner_spec("supplier", "suppliers", "supplier_id"),
    "reservation": _coded_spec("reservations", "reservation_id", "booking_code", "customers", "customer_id", "customer_id"),
    "quote": _coded_spec("quotes", "quote_id", "code", "suppliers", "supplier_id", "supplier_id"),
    "invoice": _coded_spec("customer_invoices", "invoice_id", "number", "customers", "customer_id", "customer_id"),
    "product": _SearchSpec(
        hits=("SELECT product_id AS id FROM products, q WHERE " + _contains("code", "name")
              + " OR CAST(product_id AS VARCHAR) = q.q",),
        joins="", display="concat_ws(' ', x.code, x.name)", detail="x.code", ranked=("x.code", "x.name"),
    ),
}


def _rank(expr: str) -> str:
    """0 exact, 1 prefix, 2 substring, 3 no match (case-insensitive, against ``q.q``)."""
    if expr.startswith("k."):
        return (f"CASE WHEN list_contains({expr}, q.q) THEN 0"
                f" WHEN contains(array_to_string({expr}, chr(10)), q.q) THEN 2 ELSE 3 END")
    low = f"lower({expr})"
    return (f"CASE WHEN {low} = q.q THEN 0 WHEN starts_with({low}, q.q) THEN 1"
            f" WHEN contains({low}, q.q) THEN 2 ELSE 3 END")


def _search_sql(etype: str) -> str:
    """The search statement for one type; parameters: the text, the type (a column), the limit."""
    table, id_col = ENTITY_TABLES[etype]
    spec = _SEARCH[etype]
    ranks = [_rank(f) for f in spec.ranked] + [f"CASE WHEN CAST(x.{id_col} AS VARCHAR) = q.q THEN 0 ELSE 3 END"]
    hits = " UNION ".join(spec.hits)
    return (
        f"WITH q AS (SELECT lower(trim(?)) AS q),"
        f" hits AS (SELECT {id_col} AS id FROM {table}, q WHERE q.q = '' UNION {hits})"
        f" SELECT ? AS entity_type, x.{id_col} AS entity_id, {spec.display} AS display_name, {spec.detail} AS detail"
        f" FROM {table} x JOIN (SELECT DISTINCT id FROM hits) h ON h.id = x.{id_col} {spec.joins}, q"
        f" ORDER BY CASE WHEN q.q = '' THEN 2 ELSE least({', '.join(ranks)}) END,"
        f" lower(display_name) NULLS LAST, x.{id_col} LIMIT ?"
    )


def _match_statements(scoped: bool) -> list[str]:
    """The statements that evaluate every rule for the mails in scope into the temp table ``_vmk_found``
    (email_id, entity_type, entity_id, kind ``link``/``candidate``, rule, matched).

    Each big CRM table is scanned once; the intermediate results are small temp tables. Only the
    first statement takes a parameter (the mail ids) when ``scoped``.
    """
    scope = "WHERE e.email_id IN (SELECT unnest(?::BIGINT[]))" if scoped else ""
    owner_rules = []
    for owner, table, id_col in (("customer", "customers", "customer_id"), ("supplier", "suppliers", "supplier_id")):
        owner_rules.append(f"""
        {owner}_main AS (
            SELECT DISTINCT x.email_id, o.{id_col} AS entity_id
            FROM _vmk_per x JOIN {table} o ON o.main_person_id = x.person_id
        ),
        {owner}_contact AS (
            SELECT DISTINCT k.email_id, o.{id_col} AS entity_id
            FROM _vmk_contact k JOIN {table} o ON o.{id_col} = k.owner_id
            WHERE k.owner_type = '{owner}' AND k.email_id NOT IN (SELECT email_id FROM {owner}_main)
        ),""")
    return [
        # the mails in scope: normalised From and the digit groups of the Subject
        f"""CREATE OR REPLACE TEMP TABLE _vmk_mail AS
        SELECT e.email_id, nullif(lower(trim(e.from_address)), '') AS addr, e.subject FROM emails e {scope}""",
        """CREATE OR REPLACE TEMP TABLE _vmk_grp AS
        SELECT DISTINCT email_id, unnest(regexp_extract_all(subject, '[0-9]+')) AS num
        FROM _vmk_mail WHERE subject IS NOT NULL""",
        # person.email: persons that are not temporary whose address equals From
        """CREATE OR REPLACE TEMP TABLE _vmk_per AS
        SELECT DISTINCT m.email_id, p.person_id
        FROM _vmk_mail m JOIN persons p ON lower(trim(p.email)) = m.addr
        WHERE NOT coalesce(p.is_temporary, false)""",
        # EMAIL contacts whose value equals From (customers' and suppliers')
        """CREATE OR REPLACE TEMP TABLE _vmk_contact AS
        SELECT DISTINCT m.email_id, k.owner_type, k.owner_id
        FROM _vmk_mail m JOIN contacts k ON lower(trim(k.value)) = m.addr
        WHERE upper(trim(k.type)) = 'EMAIL'""",
        # reservations whose booking code ends in one of the digit groups, then the exact forms:
        # B|O|L-N, or B|O|L-<brand code>-N
        """CREATE OR REPLACE TEMP TABLE _vmk_res AS
        WITH tail AS (
            SELECT reservation_id, upper(trim(booking_code)) AS bc,
                   string_split(upper(trim(booking_code)), '-')[-1] AS num
            FROM reservations
            WHERE string_split(upper(trim(booking_code)), '-')[-1] IN (SELECT num FROM _vmk_grp)
        ),
        brand_codes AS (
            SELECT DISTINCT upper(trim(code)) AS code FROM brands WHERE nullif(trim(code), '') IS NOT NULL
        )
        SELECT reservation_id, num FROM tail WHERE regexp_full_match(bc, '[BOL]-[0-9]+')
        UNION
        SELECT t.reservation_id, t.num FROM tail t
        JOIN brand_codes b ON b.code = regexp_extract(t.bc, '^[BOL]-(.+)-[0-9]+$', 1)""",
        f"""CREATE OR REPLACE TEMP TABLE _vmk_found AS
        WITH {''.join(owner_rules)}
        res_hits AS (
            SELECT DISTINCT g.email_id, g.num, r.reservation_id FROM _vmk_grp g JOIN _vmk_res r ON r.num = g.num
        ),
        res_counts AS (SELECT email_id, num, count(*) AS n FROM res_hits GROUP BY email_id, num),
        found AS (
            SELECT email_id, 'person' AS entity_type, person_id AS entity_id, 'person.email' AS rule,
                   NULL AS matched, 'link' AS kind FROM _vmk_per
            UNION ALL SELECT email_id, 'customer', entity_id, 'customer.main_person', NULL, 'link' FROM customer_main
            UNION ALL SELECT email_id, 'customer', entity_id, 'customer.contact_email', NULL, 'link' FROM customer_contact
            UNION ALL SELECT email_id, 'supplier', entity_id, 'supplier.main_person', NULL, 'link' FROM supplier_main
            UNION ALL SELECT email_id, 'supplier', entity_id, 'supplier.contact_email', NULL, 'link' FROM supplier_contact
            UNION ALL
            SELECT h.email_id, 'reservation', h.reservation_id, 'reservation.booking_code', h.num,
                   CASE WHEN c.n = 1 THEN 'link' ELSE 'candidate' END
            FROM res_hits h JOIN res_counts c ON c.email_id = h.email_id AND c.num = h.num
        )
        SELECT email_id, entity_type, entity_id, kind, min(rule) AS rule, min(matched) AS matched
        FROM found GROUP BY email_id, entity_type, entity_id, kind""",
    ]


_MATCH_TEMPS = ("_vmk_mail", "_vmk_grp", "_vmk_per", "_vmk_contact", "_vmk_res", "_vmk_found", "_vmk_new")


class LinksMixin:
    """Links, rejections, candidates, search and the automatic matcher (mixed into ``Store``)."""

    db: Database

    # -- reference checks --------------------------------------------------------------------
    def has_crm_data(self) -> bool:
        """True when any table the automatic rules read (persons, contacts, reservations) has rows."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT EXISTS (SELECT 1 FROM persons) OR EXISTS (SELECT 1 FROM contacts)"
                " OR EXISTS (SELECT 1 FROM reservations)"
            ).fetchall()
        return bool(row[0][0])

    @staticmethod
    def _check_email(con: Any, email_ids: Sequence[int]) -> None:
        found = {r[0] for r in con.execute(
            "SELECT email_id FROM emails WHERE email_id IN (SELECT unnest(?::BIGINT[]))", [list(email_ids)]).fetchall()}
        missing = [e for e in email_ids if e not in found]
        if missing:
            raise NotFoundError(f"no mail with id {', '.join(str(m) for m in missing)}")

    @staticmethod
    def _check_entities(con: Any, targets: Sequence[Target]) -> None:
        by_type: dict[str, list[int]] = {}
        for etype, eid in targets:
            by_type.setdefault(etype, []).append(eid)
        for etype, ids in by_type.items():
            table, col = ENTITY_TABLES[etype]
            found = {r[0] for r in con.execute(
                f"SELECT {col} FROM {table} WHERE {col} IN (SELECT unnest(?::BIGINT[]))", [ids]).fetchall()}
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFoundError(f"no {etype} with id {', '.join(str(m) for m in missing)} in the CRM data")

    # -- manual links ------------------------------------------------------------------------
    def add_links(self, email_ids: Sequence[int], targets: Sequence[Target], *, user: str | None) -> int:
        """Link every mail in ``email_ids`` to every ``(type, id)`` target (canonical types) as ``manual``.

        All or nothing: raises :class:`NotFoundError` for an unknown mail or record before writing.
        Links that already exist (automatic or manual) are left as they are; a rejection of the
        same link is forgotten (the user changed their mind). Returns how many links were added.
        """
        pairs = [(e, t, i) for e in dict.fromkeys(email_ids) for t, i in targets]
        if not pairs:
            return 0
        with self.db.atomic() as con:
            self._check_email(con, list(dict.fromkeys(email_ids)))
            self._check_entities(con, targets)
            frame = pd.DataFrame(pairs, columns=["email_id", "entity_type", "entity_id"])
            con.register("_vmk_targets", frame)
            try:
                con.execute(
                    "DELETE FROM email_link_rejections r USING _vmk_targets t WHERE r.email_id = t.email_id"
                    " AND r.entity_type = t.entity_type AND r.entity_id = t.entity_id"
                )
                added = con.execute(
                    "INSERT INTO email_links (email_id, entity_type, entity_id, origin, rule, linked_by, linked_at)"
                    " SELECT t.email_id, t.entity_type, t.entity_id, 'manual', NULL, ?, current_timestamp"
                    " FROM _vmk_targets t WHERE NOT EXISTS (SELECT 1 FROM email_links l WHERE l.email_id = t.email_id"
                    " AND l.entity_type = t.entity_type AND l.entity_id = t.entity_id) RETURNING email_id",
                    [user],
                ).fetchall()
            finally:
                con.unregister("_vmk_targets")
        return len(added)

    def remove_links(self, email_ids: Sequence[int], targets: Sequence[Target], *, user: str | None) -> int:
        """Remove the links of every mail in ``email_ids`` to every target, remembering each as rejected
        so automatic matching never adds it again. All or nothing: raises :class:`NotFoundError` when a
        mail is unknown or one of the links does not exist. Returns how many links were removed.
        """
        pairs = [(e, t, i) for e in dict.fromkeys(email_ids) for t, i in targets]
        if not pairs:
            return 0
        with self.db.atomic() as con:
            self._check_email(con, list(dict.fromkeys(email_ids)))
            frame = pd.DataFrame(pairs, columns=["email_id", "entity_type", "entity_id"])
            con.register("_vmk_targets", frame)
            try:
                absent = con.execute(
                    "SELECT t.email_id, t.entity_type, t.entity_id FROM _vmk_targets t WHERE NOT EXISTS"
                    " (SELECT 1 FROM email_links l WHERE l.email_id = t.email_id AND l.entity_type = t.entity_type"
                    " AND l.entity_id = t.entity_id) ORDER BY 1, 2, 3"
                ).fetchall()
                if absent:
                    text = "; ".join(f"mail {e} is not linked to {t} {i}" for e, t, i in absent)
                    raise NotFoundError(text)
                con.execute(
                    "INSERT INTO email_link_rejections (email_id, entity_type, entity_id, origin, rule, rejected_by,"
                    " rejected_at) SELECT l.email_id, l.entity_type, l.entity_id, l.origin, l.rule, ?, current_timestamp"
                    " FROM email_links l JOIN _vmk_targets t ON l.email_id = t.email_id"
                    " AND l.entity_type = t.entity_type AND l.entity_id = t.entity_id"
                    " ON CONFLICT (email_id, entity_type, entity_id) DO UPDATE SET origin = excluded.origin,"
                    " rule = excluded.rule, rejected_by = excluded.rejected_by, rejected_at = excluded.rejected_at",
                    [user],
                )
                removed = con.execute(
                    "DELETE FROM email_links l USING _vmk_targets t WHERE l.email_id = t.email_id"
                    " AND l.entity_type = t.entity_type AND l.entity_id = t.entity_id RETURNING l.email_id"
                ).fetchall()
            finally:
                con.unregister("_vmk_targets")
        return len(removed)

    # -- reading -----------------------------------------------------------------------------
    def relations(self, email_id: int) -> pd.DataFrame:
        """All links of a mail: entity_type, entity_id, display_name, origin, rule, linked_by, linked_at.

        Raises :class:`NotFoundError` for an unknown mail.
        """
        with self.db.connect() as con:
            self._check_email(con, [email_id])
            return con.execute(
                "SELECT entity_type, entity_id, display_name, origin, rule, linked_by, linked_at"
                " FROM email_relations WHERE email_id = ? ORDER BY linked_at, entity_type, entity_id",
                [email_id],
            ).df()

    def related_counts(self, email_ids: Sequence[int]) -> dict[int, int]:
        """The "related to" count of each given mail (0 when it has no link)."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT i, count(l.email_id) FROM unnest(?::BIGINT[]) AS t(i)"
                " LEFT JOIN email_links l ON l.email_id = t.i GROUP BY i", [list(email_ids)]
            ).fetchall()
        return {int(i): int(n) for i, n in rows}

    def link_candidates(self, email_id: int | None = None) -> pd.DataFrame:
        """Records a rule found but could not decide on, with display name and whether now linked."""
        where, params = ("WHERE c.email_id = ?", [email_id]) if email_id is not None else ("", [])
        with self.db.connect() as con:
            if email_id is not None:
                self._check_email(con, [email_id])
            return con.execute(
                "SELECT c.email_id, c.entity_type, c.entity_id, r.booking_code AS display_name, cu.name AS detail,"
                " c.rule, c.matched, c.found_at,"
                " EXISTS (SELECT 1 FROM email_links l WHERE l.email_id = c.email_id AND l.entity_type = c.entity_type"
                "   AND l.entity_id = c.entity_id) AS linked"
                " FROM email_link_candidates c"
                " LEFT JOIN reservations r ON c.entity_type = 'reservation' AND r.reservation_id = c.entity_id"
                " LEFT JOIN customers cu ON cu.customer_id = r.customer_id"
                f" {where} ORDER BY c.email_id, c.matched, display_name, c.entity_id",
                params,
            ).df()

    def link_rejections(self, email_id: int | None = None) -> pd.DataFrame:
        """Links users removed (never re-added by automatic matching)."""
        where, params = ("WHERE email_id = ?", [email_id]) if email_id is not None else ("", [])
        with self.db.connect() as con:
            return con.execute(
                "SELECT email_id, entity_type, entity_id, origin, rule, rejected_by, rejected_at"
                f" FROM email_link_rejections {where} ORDER BY email_id, entity_type, entity_id", params
            ).df()

    def search_entities(self, entity_type: str, text: str, *, limit: int = 20) -> pd.DataFrame:
        """Records of one type whose name, code/number or e-mail contains ``text`` (any case), or
        whose id equals it: entity_type, entity_id, display_name, detail; exact matches first, then
        prefixes, then the rest by name. An empty text lists the first records by name.

        Raises :class:`ValidationError` for an unknown type or a limit outside 1..1000.
        """
        etype = normalize_entity_type(entity_type)
        if not 1 <= int(limit) <= 1000:
            raise ValidationError("limit", "must be between 1 and 1000")
        sql = _search_sql(etype)
        with self.db.connect() as con:
            return con.execute(sql, [text or "", etype, int(limit)]).df()

    # -- automatic matching ------------------------------------------------------------------
    def match_emails(self, email_ids: Sequence[int] | None = None) -> MatchResult:
        """Apply the automatic rules to the given mails (``None``: every stored mail).

        Adds the links found that do not exist yet and were never removed by a user, and records
        ambiguous reservation numbers as candidates; never removes or changes a link. One
        transaction; set-based SQL.
        """
        result = MatchResult(by_rule={r: 0 for r in RULES})
        if email_ids is not None:
            email_ids = [int(e) for e in dict.fromkeys(email_ids)]
            if not email_ids:
                return result
        with self.db.atomic() as con:
            params: list[Any] = [] if email_ids is None else [email_ids]
            result.mails = int(con.execute(
                "SELECT count(*) FROM emails" + ("" if email_ids is None else
                                                 " WHERE email_id IN (SELECT unnest(?::BIGINT[]))"), params
            ).fetchall()[0][0])
            if result.mails == 0:
                return result
            for n, statement in enumerate(_match_statements(email_ids is not None)):
                con.execute(statement, params if n == 0 else [])
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _vmk_new AS SELECT f.*, EXISTS (SELECT 1 FROM email_link_rejections r"
                " WHERE r.email_id = f.email_id AND r.entity_type = f.entity_type AND r.entity_id = f.entity_id)"
                " AS rejected FROM _vmk_found f WHERE f.kind = 'link' AND NOT EXISTS (SELECT 1 FROM email_links l"
                " WHERE l.email_id = f.email_id AND l.entity_type = f.entity_type AND l.entity_id = f.entity_id)"
            )
            con.execute(
                "INSERT INTO email_links (email_id, entity_type, entity_id, origin, rule, linked_by, linked_at)"
                " SELECT email_id, entity_type, entity_id, 'auto', rule, NULL, current_timestamp"
                " FROM _vmk_new WHERE NOT rejected"
            )
            for rule, rejected, n in con.execute(
                "SELECT rule, rejected, count(*) FROM _vmk_new GROUP BY ALL"
            ).fetchall():
                if rejected:
                    result.skipped_rejected += int(n)
                else:
                    result.by_rule[rule] = result.by_rule.get(rule, 0) + int(n)
                    result.links_added += int(n)
            result.candidates_added = len(con.execute(
                "INSERT INTO email_link_candidates (email_id, entity_type, entity_id, rule, matched, found_at)"
                " SELECT f.email_id, f.entity_type, f.entity_id, f.rule, f.matched, current_timestamp"
                " FROM _vmk_found f WHERE f.kind = 'candidate' AND NOT EXISTS (SELECT 1 FROM email_link_candidates c"
                " WHERE c.email_id = f.email_id AND c.entity_type = f.entity_type AND c.entity_id = f.entity_id)"
                " RETURNING email_id"
            ).fetchall())
            for temp in _MATCH_TEMPS:
                con.execute(f"DROP TABLE {temp}")
        return result

    def unlinked_email_ids(self) -> list[int]:
        """Ids of the mails that have no link at all."""
        with self.db.connect() as con:
            return [r[0] for r in con.execute(
                "SELECT email_id FROM emails e WHERE NOT EXISTS (SELECT 1 FROM email_links l"
                " WHERE l.email_id = e.email_id) ORDER BY email_id").fetchall()]
