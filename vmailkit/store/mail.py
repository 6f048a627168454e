"""Downloaded mail in the store: chunk writes, locations, watermarks and listings."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import NotFoundError, ValidationError
from ..refs import Watermark
from .db import Database, Lease
from .records import Arrival, MailRecord, Mailbox

STATUSES = ("unread", "read")

_EMAIL_SCHEMA = pa.schema([
    ("email_id", pa.int64()),
    ("dedup_key", pa.string()),
    ("message_id", pa.string()),
    ("fingerprint", pa.string()),
    ("direction", pa.string()),
    ("status", pa.string()),
    ("from_address", pa.string()),
    ("from_name", pa.string()),
    ("to_addresses", pa.list_(pa.string())),
    ("cc_addresses", pa.list_(pa.string())),
    ("reply_to", pa.list_(pa.string())),
    ("subject", pa.string()),
    ("sent_at", pa.timestamp("us", tz="UTC")),
    ("in_reply_to", pa.string()),
    ("references", pa.list_(pa.string())),
    ("body_text", pa.string()),
    ("body_html", pa.string()),
    ("has_attachments", pa.bool_()),
    ("size", pa.int64()),
    ("raw", pa.binary()),
    ("raw_sha256", pa.string()),
    ("parse_error", pa.string()),
    ("parse_defects", pa.list_(pa.string())),
    ("downloaded_by", pa.int32()),
    ("downloaded_at", pa.timestamp("us", tz="UTC")),
])

_ATTACHMENT_SCHEMA = pa.schema([
    ("email_id", pa.int64()),
    ("part_index", pa.int32()),
    ("filename", pa.string()),
    ("content_type", pa.string()),
    ("size", pa.int64()),
    ("sha256", pa.string()),
    ("is_inline", pa.bool_()),
    ("content_id", pa.string()),
    ("content", pa.binary()),
    ("content_offset", pa.int64()),
    ("content_length", pa.int64()),
    ("content_encoding", pa.string()),
])

_LOCATION_SCHEMA = pa.schema([
    ("email_id", pa.int64()),
    ("account_id", pa.int32()),
    ("folder", pa.string()),
    ("uidvalidity", pa.int64()),
    ("uid", pa.int64()),
    ("uidl", pa.string()),
    ("raw_sha256", pa.string()),
    ("size", pa.int64()),
    ("downloaded_by", pa.int32()),
    ("downloaded_at", pa.timestamp("us", tz="UTC")),
    ("loc_key", pa.string()),
])


_COPY_SCHEMA = pa.schema([("raw_sha256", pa.string()), ("email_id", pa.int64()), ("raw", pa.binary())])


def location_key(account_id: int, folder: str, uidvalidity: int, key: str) -> str:
    """The unique text identity of one place on a server: account, folder, UIDVALIDITY, UID/UIDL."""
    return f"{account_id}|{folder}|{uidvalidity}|{key}"


@dataclass
class ChunkResult:
    """What one chunk write did."""

    new_ids: list[int] = field(default_factory=list)        # mails stored for the first time
    present_ids: list[int] = field(default_factory=list)    # mails that were already stored
    parse_errors: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    by_key: dict[str, int] = field(default_factory=dict)     # location key (UID/UIDL) -> email_id


class ImportSession:
    """A download's hold on the store: chunk writes on one connection, released now and then.

    Made by :meth:`MailMixin.importing`. Each :meth:`save` is one transaction; between saves the
    file is released every few seconds so that another process waiting for it gets its turn.
    """

    def __init__(self, store: "MailMixin", user_id: int, lease: Lease) -> None:
        self._store = store
        self.user_id = user_id
        self._lease = lease

    def save(self, mailbox: Mailbox, arrivals: Sequence[Arrival], *, watermark_cap: int | None = None) -> ChunkResult:
        """Write one chunk (see :meth:`MailMixin.save_chunk`) and let other processes in when due."""
        self._lease.acquire()
        try:
            return self._store.save_chunk(user_id=self.user_id, mailbox=mailbox, arrivals=arrivals,
                                          watermark_cap=watermark_cap)
        finally:
            self._lease.breathe()


class MailMixin:
    """Mail, locations and sync state (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    # -- sync state --------------------------------------------------------------------------
    def watermark(self, user_id: int, account_id: int, folder: str) -> Watermark:
        """What ``user_id`` downloaded from a folder: UIDVALIDITY and last UID (IMAP), the UIDLs (POP3).

        ``Watermark.empty()`` before the first download.
        """
        with self.db.connect() as con:
            row = con.execute(
                "SELECT uidvalidity, last_uid FROM sync_state WHERE user_id = ? AND account_id = ? AND folder = ?",
                [user_id, account_id, folder],
            ).fetchone()
            uidls = con.execute(
                "SELECT uidl FROM sync_uidls WHERE user_id = ? AND account_id = ?", [user_id, account_id]
            ).fetchall()
        return Watermark(uidvalidity=int(row[0]) if row else 0, last_uid=int(row[1]) if row else 0,
                         uidls=frozenset(r[0] for r in uidls))

    def stored_keys(self, account_id: int, folder: str, uidvalidity: int, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` (UIDs as text, or UIDLs) already stored from that place."""
        if not keys:
            return set()
        wanted = [location_key(account_id, folder, uidvalidity, k) for k in keys]
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT loc_key FROM email_locations WHERE loc_key IN (SELECT unnest(?::VARCHAR[]))", [wanted]
            ).fetchall()
        prefix = len(location_key(account_id, folder, uidvalidity, ""))
        return {r[0][prefix:] for r in rows}

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def importing(self, user_id: int) -> Iterator[ImportSession]:
        """Hold the file for a download by ``user_id``: one :class:`ImportSession` owning the lease."""
        with self.db.lease() as lease:
            yield ImportSession(self, user_id, lease)

    def save_chunk(
        self,
        *,
        user_id: int,
        mailbox: Mailbox,
        arrivals: Sequence[Arrival],
        watermark_cap: int | None = None,
    ) -> ChunkResult:
        """Store one chunk of received mail in a single transaction.

        Writes the mails not stored yet (by identity: raw bytes, parsed fields, attachments), every
        location with the sha256 of its bytes, the bytes of copies that differ from the stored one,
        and advances the user's watermark: IMAP to the biggest UID of the chunk, but never past
        ``watermark_cap`` (the caller's last UID before a message that failed); POP3 records the
        chunk's UIDLs. Either all of it is written or none.
        """
        result = ChunkResult(parse_errors=[(a.key, a.mail.parse_error) for a in arrivals if a.mail.parse_error])
        if not arrivals:
            return result
        now = datetime.now(timezone.utc)
        with self.db.atomic() as con:
            keys = sorted({a.mail.identity for a in arrivals})
            existing = {
                k: (eid, sha)
                for k, eid, sha in con.execute(
                    "SELECT dedup_key, email_id, raw_sha256 FROM emails WHERE dedup_key IN (SELECT unnest(?::VARCHAR[]))",
                    [keys],
                ).fetchall()
            }
            new: list[MailRecord] = []
            for a in arrivals:
                if a.mail.identity not in existing:
                    existing[a.mail.identity] = (-1, a.mail.raw_sha256)
                    new.append(a.mail)
            if new:
                ids = [r[0] for r in con.execute("SELECT nextval('email_id_seq') FROM range(?)", [len(new)]).fetchall()]
                for m, eid in zip(new, ids):
                    existing[m.identity] = (eid, m.raw_sha256)
                insert_mails(con, new, ids, user_id, now)
                result.new_ids = list(ids)
            new_keys = {m.identity for m in new}
            result.present_ids = sorted({existing[a.mail.identity][0] for a in arrivals if a.mail.identity not in new_keys})
            result.by_key = {a.key: existing[a.mail.identity][0] for a in arrivals}
            self._insert_locations(con, arrivals, existing, mailbox, user_id, now)
            self._advance(con, arrivals, user_id, mailbox, watermark_cap, now)
        return result

    @staticmethod
    def _insert_locations(
        con: Any, arrivals: Sequence[Arrival], existing: dict[str, tuple[int, str]], mailbox: Mailbox, user_id: int,
        now: datetime,
    ) -> None:
        locs: dict[str, list[Any]] = {name: [] for name in _LOCATION_SCHEMA.names}
        copies: dict[str, list[Any]] = {"raw_sha256": [], "email_id": [], "raw": []}
        seen_copies: set[str] = set()
        for a in arrivals:
            m = a.mail
            eid, stored_sha = existing[m.identity]
            for name, value in (
                ("email_id", eid), ("account_id", mailbox.account_id), ("folder", mailbox.folder),
                ("uidvalidity", mailbox.uidvalidity), ("uid", a.uid), ("uidl", a.uidl), ("raw_sha256", m.raw_sha256),
                ("size", m.size), ("downloaded_by", user_id), ("downloaded_at", now),
                ("loc_key", location_key(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, a.key)),
            ):
                locs[name].append(value)
            if m.raw_sha256 != stored_sha and m.raw_sha256 not in seen_copies:
                seen_copies.add(m.raw_sha256)
                copies["raw_sha256"].append(m.raw_sha256)
                copies["email_id"].append(eid)
                copies["raw"].append(m.raw)
        insert_arrow(con, "email_locations", pa.table(locs, schema=_LOCATION_SCHEMA), on_conflict_ignore=True)
        if copies["raw"]:
            insert_arrow(con, "raw_copies", pa.table(copies, schema=_COPY_SCHEMA), on_conflict_ignore=True)

    @staticmethod
    def _advance(
        con: Any, arrivals: Sequence[Arrival], user_id: int, mailbox: Mailbox, cap: int | None, now: datetime,
    ) -> None:
        account_id, folder, uidvalidity = mailbox.account_id, mailbox.folder, mailbox.uidvalidity
        if mailbox.protocol == "imap":
            top = max(a.uid or 0 for a in arrivals)
            if cap is not None:
                top = min(top, cap)
            if top <= 0:
                return
            con.execute(
                "INSERT INTO sync_state (user_id, account_id, folder, uidvalidity, last_uid, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, account_id, folder) DO UPDATE SET"
                " last_uid = CASE WHEN sync_state.uidvalidity = excluded.uidvalidity"
                "   THEN greatest(sync_state.last_uid, excluded.last_uid) ELSE excluded.last_uid END,"
                " uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
                [user_id, account_id, folder, uidvalidity, top, now],
            )
        else:
            uidls = sorted({a.key for a in arrivals})
            con.execute(
                "INSERT INTO sync_uidls (user_id, account_id, uidl, downloaded_at)"
                " SELECT ?, ?, u, ? FROM unnest(?::VARCHAR[]) AS t(u) ON CONFLICT DO NOTHING",
                [user_id, account_id, now, uidls],
            )

    # -- identity rule -----------------------------------------------------------------------
    def identity_rule(self) -> str:
        """The name of the rule that made the stored ``dedup_key`` values (``none`` for an empty store)."""
        with self.db.connect() as con:
            row = con.execute("SELECT value FROM _vmailkit_meta WHERE key = 'identity_rule'").fetchone()
        return str(row[0]) if row else "none"

    def rekey(self, rule: str, key_of: Callable[[bytes], str], *, batch: int = 500) -> int:
        """Recompute every mail's ``dedup_key`` and ``fingerprint`` with ``key_of(raw)``; record ``rule``.

        One transaction: either every mail gets its new key or none. Two mails that come out with the
        same key stay two rows (the store never merges): the later one keeps its old key, and the
        count of such mails is returned.
        """
        kept = 0
        with self.db.atomic() as con:
            ids = [r[0] for r in con.execute("SELECT email_id FROM emails ORDER BY email_id").fetchall()]
            seen: set[str] = set()
            for start in range(0, len(ids), batch):
                part = ids[start:start + batch]
                rows = con.execute("SELECT email_id, raw, dedup_key FROM emails WHERE email_id IN"
                                   " (SELECT unnest(?::BIGINT[]))", [part]).fetchall()
                new_ids, new_keys = [], []
                for eid, raw, old in rows:
                    key = key_of(bytes(raw))
                    if key in seen:
                        kept += 1
                        continue
                    seen.add(key)
                    if key != old:
                        new_ids.append(eid)
                        new_keys.append(key)
                if new_ids:
                    table = pa.table({"email_id": pa.array(new_ids, pa.int64()), "k": pa.array(new_keys, pa.string())})
                    con.register("_vmk_rekey", table)
                    try:
                        con.execute("UPDATE emails SET dedup_key = n.k, fingerprint = n.k FROM _vmk_rekey n"
                                    " WHERE emails.email_id = n.email_id")
                    finally:
                        con.unregister("_vmk_rekey")
            con.execute("INSERT INTO _vmailkit_meta VALUES ('identity_rule', ?) ON CONFLICT (key) DO UPDATE"
                        " SET value = excluded.value", [rule])
        return kept

    # -- reading -----------------------------------------------------------------------------
    def get_email(self, email_id: int) -> dict[str, Any]:
        """All columns of one mail as a dict (raw bytes included); raises :class:`NotFoundError`."""
        with self.db.connect() as con:
            cur = con.execute("SELECT * FROM emails WHERE email_id = ?", [email_id])
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"no mail with id {email_id}")
            names = [d[0] for d in cur.description]
        return dict(zip(names, row))

    def raw_bytes(self, email_id: int) -> bytes:
        """The exact bytes of the first received copy of a mail."""
        with self.db.connect() as con:
            row = con.execute("SELECT raw FROM emails WHERE email_id = ?", [email_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no mail with id {email_id}")
        return bytes(row[0])

    def location_bytes(self, raw_sha256: str) -> bytes:
        """The exact bytes received at a location, by its ``raw_sha256``."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT raw FROM emails WHERE raw_sha256 = ? UNION ALL "
                "SELECT raw FROM raw_copies WHERE raw_sha256 = ? LIMIT 1", [raw_sha256, raw_sha256]
            ).fetchone()
        if row is None:
            raise NotFoundError(f"no stored copy with sha256 {raw_sha256}")
        return bytes(row[0])

    def attachments(self, email_id: int, *, with_content: bool = False) -> pd.DataFrame:
        """The attachments of a mail (content only when asked)."""
        cols = "email_id, part_index, filename, content_type, size, sha256, is_inline, content_id"
        if with_content:
            cols += ", content"
        with self.db.connect() as con:
            return con.execute(f"SELECT {cols} FROM attachments WHERE email_id = ? ORDER BY part_index", [email_id]).df()

    def attachment(self, email_id: int, part_index: int) -> tuple[dict[str, Any], bytes]:
        """One attachment part: its listing fields and its decoded content (only that part is read).

        Raises :class:`NotFoundError` when the mail has no such part.
        """
        with self.db.connect() as con:
            cur = con.execute(
                "SELECT part_index, filename, content_type, size, sha256, is_inline, content_id, content"
                " FROM attachments WHERE email_id = ? AND part_index = ?", [email_id, part_index])
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        if row is None:
            raise NotFoundError(f"this mail has no attachment number {part_index}")
        info = dict(zip(names, row))
        content = info.pop("content")
        return info, bytes(content) if content is not None else b""

    def set_status(self, email_id: int, status: str) -> None:
        """Mark a mail ``read`` or ``unread`` (in the store only; the server is never changed)."""
        if status not in STATUSES:
            raise ValidationError("status", f"unknown status {status!r}; use read or unread")
        with self.db.atomic() as con:
            row = con.execute("UPDATE emails SET status = ? WHERE email_id = ? RETURNING email_id", [status, email_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no mail with id {email_id}")

    def locations(self, email_id: int | None = None) -> pd.DataFrame:
        """Where mails were seen (account name, folder, UIDVALIDITY, UID/UIDL, sha256 of the bytes)."""
        where, params = ("WHERE l.email_id = ?", [email_id]) if email_id is not None else ("", [])
        with self.db.connect() as con:
            return con.execute(
                "SELECT l.email_id, a.name AS account, l.folder, l.uidvalidity, l.uid, l.uidl, l.raw_sha256, l.size,"
                f" l.downloaded_at FROM email_locations l JOIN accounts a USING (account_id) {where}"
                " ORDER BY l.email_id, a.name, l.folder, l.uid, l.uidl",
                params,
            ).df()

    def count_emails(self) -> int:
        """How many mails are stored."""
        with self.db.connect() as con:
            return int(con.execute("SELECT count(*) FROM emails").fetchone()[0])


def insert_mails(con: Any, mails: Sequence[MailRecord], ids: Sequence[int], user_id: int | None, now: datetime) -> None:
    """Bulk-insert new ``emails`` rows and their ``attachment_parts``, in the caller's transaction."""
    cols: dict[str, list[Any]] = {name: [] for name in _EMAIL_SCHEMA.names}
    att_rows: dict[str, list[Any]] = {name: [] for name in _ATTACHMENT_SCHEMA.names}
    for m, eid in zip(mails, ids):
        values = {
            "email_id": eid, "dedup_key": m.identity, "message_id": m.message_id, "fingerprint": m.fingerprint,
            "direction": "incoming", "status": "unread", "from_address": m.from_address, "from_name": m.from_name,
            "to_addresses": m.to_addresses, "cc_addresses": m.cc_addresses, "reply_to": m.reply_to,
            "subject": m.subject, "sent_at": m.sent_at, "in_reply_to": m.in_reply_to, "references": m.references,
            "body_text": m.body_text, "body_html": m.body_html, "has_attachments": m.has_attachments,
            "size": m.size, "raw": m.raw, "raw_sha256": m.raw_sha256, "parse_error": m.parse_error,
            "parse_defects": m.parse_defects, "downloaded_by": user_id, "downloaded_at": now,
        }
        for name, value in values.items():
            cols[name].append(value)
        for att in m.attachments:
            offset, length, encoding = att.place if att.place is not None else (None, None, None)
            for name, value in (
                ("email_id", eid), ("part_index", att.part_index), ("filename", att.filename),
                ("content_type", att.content_type), ("size", att.size), ("sha256", att.sha256),
                ("is_inline", att.is_inline), ("content_id", att.content_id), ("content", att.content),
                ("content_offset", offset), ("content_length", length), ("content_encoding", encoding),
            ):
                att_rows[name].append(value)
    insert_arrow(con, "emails", pa.table(cols, schema=_EMAIL_SCHEMA))
    if att_rows["email_id"]:
        insert_arrow(con, "attachment_parts", pa.table(att_rows, schema=_ATTACHMENT_SCHEMA))


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def insert_arrow(con: Any, table: str, data: pa.Table, *, on_conflict_ignore: bool = False) -> None:
    """Bulk-insert an Arrow table into ``table`` (columns by name), in the caller's transaction."""
    view = f"_vmk_new_{table}"
    cols = _quoted(data.schema.names)
    con.register(view, data)
    try:
        con.execute(
            f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{view}"'
            + (" ON CONFLICT DO NOTHING" if on_conflict_ignore else "")
        )
    finally:
        con.unregister(view)
