"""Downloaded mail in the store: chunk writes, locations, watermarks and listings."""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import NotFoundError, ValidationError
from ..identity import dedup_key, fingerprint
from ..parse import ParsedMessage, parse_message
from ..transport.base import RemoteMessage
from .db import Database

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
class Prepared:
    """A received message, parsed and identified, ready to write."""

    remote: RemoteMessage
    parsed: ParsedMessage
    raw_sha256: str
    dedup_key: str
    fingerprint: str


def identify(raw: bytes) -> tuple[ParsedMessage, str, str, str]:
    """Parse ``raw`` and return (parsed, sha256 of the bytes, dedup key, fingerprint).

    CPU only, no database; never raises for bad mail. Worker processes run this (see
    :mod:`vmailkit.pipeline`), so its result holds no copy of ``raw``: attachments that the store
    keeps as a place in ``raw`` (``Attachment.source`` set) come back with empty ``content``.
    """
    parsed = parse_message(raw)
    if any(a.source is not None for a in parsed.attachments):
        parsed = dataclasses.replace(parsed, attachments=[
            dataclasses.replace(a, content=b"") if a.source is not None else a for a in parsed.attachments
        ])
    fp = fingerprint(raw)
    return parsed, hashlib.sha256(raw).hexdigest(), dedup_key(parsed.message_id, fp), fp


def prepare(remote: RemoteMessage) -> Prepared:
    """Parse and identify one received message (CPU only, no database). Never raises for bad mail."""
    parsed, sha, key, fp = identify(remote.raw)
    return Prepared(remote=remote, parsed=parsed, raw_sha256=sha, dedup_key=key, fingerprint=fp)


@dataclass
class ChunkResult:
    """What one chunk write did."""

    new_ids: list[int] = field(default_factory=list)        # mails stored for the first time
    present_ids: list[int] = field(default_factory=list)    # mails that were already stored
    parse_errors: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    by_key: dict[str, int] = field(default_factory=dict)     # location key (UID/UIDL) -> email_id


class MailMixin:
    """Mail, locations and sync state (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    # -- sync state --------------------------------------------------------------------------
    def watermark(self, user_id: int, account_id: int, folder: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last downloaded UID) of a user's IMAP folder, or None before the first download."""
        with self.db.connect() as con:
            row = con.execute(
                "SELECT uidvalidity, last_uid FROM sync_state WHERE user_id = ? AND account_id = ? AND folder = ?",
                [user_id, account_id, folder],
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def downloaded_uidls(self, user_id: int, account_id: int) -> set[str]:
        """The POP3 UIDLs ``user_id`` downloaded from ``account_id``."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT uidl FROM sync_uidls WHERE user_id = ? AND account_id = ?", [user_id, account_id]
            ).fetchall()
        return {r[0] for r in rows}

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
    def save_chunk(
        self,
        *,
        user_id: int,
        account_id: int,
        protocol: str,
        folder: str,
        uidvalidity: int,
        messages: Sequence[RemoteMessage] | Sequence[Prepared],
    ) -> ChunkResult:
        """Store one chunk of received messages in a single transaction.

        Writes the mails not stored yet (raw bytes, parsed fields, attachments), every location with
        the sha256 of its bytes, the bytes of copies that differ from the stored one, and advances the
        user's watermark (IMAP: biggest UID; POP3: the UIDL set). Either all of it is written or none.
        """
        prepared = [m if isinstance(m, Prepared) else prepare(m) for m in messages]
        result = ChunkResult(parse_errors=[(p.remote.key, p.parsed.parse_error) for p in prepared if p.parsed.parse_error])
        if not prepared:
            return result
        now = datetime.now(timezone.utc)
        with self.db.atomic() as con:
            keys = sorted({p.dedup_key for p in prepared})
            existing = {
                k: (eid, sha)
                for k, eid, sha in con.execute(
                    "SELECT dedup_key, email_id, raw_sha256 FROM emails WHERE dedup_key IN (SELECT unnest(?::VARCHAR[]))",
                    [keys],
                ).fetchall()
            }
            new: list[Prepared] = []
            for p in prepared:
                if p.dedup_key not in existing:
                    existing[p.dedup_key] = (-1, p.raw_sha256)
                    new.append(p)
            if new:
                ids = [r[0] for r in con.execute("SELECT nextval('email_id_seq') FROM range(?)", [len(new)]).fetchall()]
                for p, eid in zip(new, ids):
                    existing[p.dedup_key] = (eid, p.raw_sha256)
                self._insert_emails(con, new, ids, user_id, now)
                result.new_ids = list(ids)
            new_keys = {p.dedup_key for p in new}
            result.present_ids = sorted({existing[p.dedup_key][0] for p in prepared if p.dedup_key not in new_keys})
            result.by_key = {p.remote.key: existing[p.dedup_key][0] for p in prepared}
            self._insert_locations(con, prepared, existing, account_id, folder, uidvalidity, user_id, now)
            self._advance(con, prepared, user_id, account_id, protocol, folder, uidvalidity, now)
        return result

    @staticmethod
    def _insert_emails(con: Any, new: list[Prepared], ids: list[int], user_id: int, now: datetime) -> None:
        cols: dict[str, list[Any]] = {name: [] for name in _EMAIL_SCHEMA.names}
        att_rows: dict[str, list[Any]] = {name: [] for name in _ATTACHMENT_SCHEMA.names}
        for p, eid in zip(new, ids):
            m = p.parsed
            values = {
                "email_id": eid,
                "dedup_key": p.dedup_key,
                "message_id": m.message_id,
                "fingerprint": p.fingerprint,
                "direction": "incoming",
                "status": "unread",
                "from_address": m.from_.address if m.from_ else None,
                "from_name": m.from_.name if m.from_ else None,
                "to_addresses": [a.address for a in m.to if a.address],
                "cc_addresses": [a.address for a in m.cc if a.address],
                "reply_to": [a.address for a in m.reply_to if a.address],
                "subject": m.subject,
                "sent_at": m.date,
                "in_reply_to": m.in_reply_to,
                "references": list(m.references),
                "body_text": m.text,
                "body_html": m.html,
                "has_attachments": any(not a.is_inline for a in m.attachments),
                "size": len(p.remote.raw),
                "raw": p.remote.raw,
                "raw_sha256": p.raw_sha256,
                "parse_error": m.parse_error,
                "parse_defects": list(m.defects),
                "downloaded_by": user_id,
                "downloaded_at": now,
            }
            for name, value in values.items():
                cols[name].append(value)
            for att in m.attachments:
                offset, length, encoding = att.source if att.source is not None else (None, None, None)
                for name, value in (
                    ("email_id", eid), ("part_index", att.index), ("filename", att.filename),
                    ("content_type", att.content_type), ("size", att.size), ("sha256", att.sha256),
                    ("is_inline", att.is_inline), ("content_id", att.content_id),
                    ("content", None if att.source is not None else att.content),
                    ("content_offset", offset), ("content_length", length), ("content_encoding", encoding),
                ):
                    att_rows[name].append(value)
        insert_arrow(con, "emails", pa.table(cols, schema=_EMAIL_SCHEMA))
        if att_rows["email_id"]:
            insert_arrow(con, "attachment_parts", pa.table(att_rows, schema=_ATTACHMENT_SCHEMA))

    @staticmethod
    def _insert_locations(
        con: Any, prepared: list[Prepared], existing: dict[str, tuple[int, str]], account_id: int, folder: str,
        uidvalidity: int, user_id: int, now: datetime,
    ) -> None:
        locs: dict[str, list[Any]] = {name: [] for name in _LOCATION_SCHEMA.names}
        copies: dict[str, list[Any]] = {"raw_sha256": [], "email_id": [], "raw": []}
        seen_copies: set[str] = set()
        for p in prepared:
            eid, stored_sha = existing[p.dedup_key]
            r = p.remote
            for name, value in (
                ("email_id", eid), ("account_id", account_id), ("folder", folder), ("uidvalidity", uidvalidity),
                ("uid", r.uid), ("uidl", None if r.uid is not None else r.key), ("raw_sha256", p.raw_sha256),
                ("size", len(r.raw)), ("downloaded_by", user_id), ("downloaded_at", now),
                ("loc_key", location_key(account_id, folder, uidvalidity, r.key)),
            ):
                locs[name].append(value)
            if p.raw_sha256 != stored_sha and p.raw_sha256 not in seen_copies:
                seen_copies.add(p.raw_sha256)
                copies["raw_sha256"].append(p.raw_sha256)
                copies["email_id"].append(eid)
                copies["raw"].append(r.raw)
        insert_arrow(con, "email_locations", pa.table(locs, schema=_LOCATION_SCHEMA), on_conflict_ignore=True)
        if copies["raw"]:
            insert_arrow(con, "raw_copies", pa.table(copies, schema=_COPY_SCHEMA), on_conflict_ignore=True)

    @staticmethod
    def _advance(
        con: Any, prepared: list[Prepared], user_id: int, account_id: int, protocol: str, folder: str,
        uidvalidity: int, now: datetime,
    ) -> None:
        if protocol == "imap":
            top = max(p.remote.uid or 0 for p in prepared)
            con.execute(
                "INSERT INTO sync_state (user_id, account_id, folder, uidvalidity, last_uid, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, account_id, folder) DO UPDATE SET"
                " last_uid = CASE WHEN sync_state.uidvalidity = excluded.uidvalidity"
                "   THEN greatest(sync_state.last_uid, excluded.last_uid) ELSE excluded.last_uid END,"
                " uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
                [user_id, account_id, folder, uidvalidity, top, now],
            )
        else:
            uidls = sorted({p.remote.key for p in prepared})
            con.execute(
                "INSERT INTO sync_uidls (user_id, account_id, uidl, downloaded_at)"
                " SELECT ?, ?, u, ? FROM unnest(?::VARCHAR[]) AS t(u) ON CONFLICT DO NOTHING",
                [user_id, account_id, now, uidls],
            )

    def reset_watermark(self, user_id: int, account_id: int, folder: str, uidvalidity: int) -> None:
        """Record that the folder's UIDVALIDITY changed: the user's watermark starts again from 0."""
        with self.db.atomic() as con:
            con.execute(
                "UPDATE sync_state SET uidvalidity = ?, last_uid = 0, updated_at = current_timestamp"
                " WHERE user_id = ? AND account_id = ? AND folder = ? AND uidvalidity <> ?",
                [uidvalidity, user_id, account_id, folder, uidvalidity],
            )

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
