"""Sent mail in the store: the outgoing copy, how it was sent, its links and its Sent-folder copy.

A mail vmailkit sent is an ``emails`` row like a received one (same columns, parsed from the exact
bytes the SMTP server accepted) with ``direction = 'outgoing'`` and ``status = 'read'``; its
``downloaded_by``/``downloaded_at`` are who sent it and when it was stored. ``email_sends`` records
the account, the envelope, the server's answer and the mail replied to. A sent mail has an
``email_locations`` row only when a copy was appended to an IMAP folder (with the UID the server
reported through APPENDUID): there is no other place on a server where it can be found.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..errors import NotFoundError
from .db import Database
from .mail import insert_mails, location_key
from .records import MailRecord

#: The rule recorded on links a reply inherits from the mail it answers.
REPLY_LINK_RULE = "reply.thread"


class OutgoingMixin:
    """Outgoing mail (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def save_outgoing(
        self,
        *,
        mail: MailRecord,
        account_id: int,
        user_id: int | None,
        envelope_from: str,
        envelope_to: Sequence[str],
        smtp_host: str,
        smtp_port: int,
        smtp_response: str | None = None,
        in_reply_to_email_id: int | None = None,
        reply_all: bool = False,
        linked_by: str | None = None,
    ) -> int:
        """Store a message the SMTP server accepted and return its ``email_id``, in one transaction.

        Writes the ``emails`` row (``mail``: parsed like a received mail, exact bytes, ``outgoing``,
        ``read``), its attachments, the ``email_sends`` row and, when it answers a stored mail, a copy
        of every link of that mail (origin ``auto``, rule ``reply.thread``; links the user removed
        from the new mail cannot exist yet). Either all of it is written or none. Raises
        :class:`NotFoundError` when ``in_reply_to_email_id`` is not a stored mail.
        """
        now = datetime.now(timezone.utc)
        with self.db.atomic() as con:
            # results are fetched completely: DuckDB refuses to register an Arrow table beside an open result
            if in_reply_to_email_id is not None and not con.execute(
                    "SELECT 1 FROM emails WHERE email_id = ?", [in_reply_to_email_id]).fetchall():
                raise NotFoundError(f"no mail with id {in_reply_to_email_id}")
            rows = con.execute("SELECT email_id FROM emails WHERE dedup_key = ?", [mail.identity]).fetchall()
            if rows:  # the same bytes stored before (e.g. downloaded from a Sent folder)
                email_id = int(rows[0][0])
            else:
                email_id = int(con.execute("SELECT nextval('email_id_seq')").fetchall()[0][0])
                insert_mails(con, [mail], [email_id], user_id, now)
            con.execute("UPDATE emails SET direction = 'outgoing', status = 'read' WHERE email_id = ?", [email_id])
            con.execute(
                "INSERT INTO email_sends (email_id, account_id, in_reply_to_email_id, reply_all, envelope_from,"
                " envelope_to, smtp_host, smtp_port, smtp_response, sent_by, sent_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [email_id, account_id, in_reply_to_email_id, reply_all, envelope_from, list(envelope_to),
                 smtp_host, smtp_port, smtp_response, user_id, now],
            )
            if in_reply_to_email_id is not None:
                con.execute(
                    "INSERT INTO email_links (email_id, entity_type, entity_id, origin, rule, linked_by, linked_at)"
                    " SELECT ?, l.entity_type, l.entity_id, 'auto', ?, ?, ? FROM email_links l"
                    " WHERE l.email_id = ? AND NOT EXISTS (SELECT 1 FROM email_links n WHERE n.email_id = ?"
                    " AND n.entity_type = l.entity_type AND n.entity_id = l.entity_id)",
                    [email_id, REPLY_LINK_RULE, linked_by, now, in_reply_to_email_id, email_id],
                )
        return int(email_id)

    def record_sent_copy(
        self,
        email_id: int,
        *,
        account_id: int,
        folder: str,
        uidvalidity: int | None,
        uid: int | None,
        user_id: int | None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of appending a sent mail to an IMAP folder.

        On success (``error`` None) ``email_sends`` gets the folder, UIDVALIDITY and UID, and when the
        server reported them (APPENDUID) an ``email_locations`` row is added with the sha256 of the
        stored bytes, so a later check of that folder counts the copy as downloaded. On failure only
        ``email_sends.sent_folder_error`` is set. Raises :class:`NotFoundError` for a mail vmailkit
        did not send.
        """
        now = datetime.now(timezone.utc)
        with self.db.atomic() as con:
            found = con.execute(
                "SELECT e.raw_sha256, e.size FROM email_sends s JOIN emails e USING (email_id) WHERE s.email_id = ?",
                [email_id],
            ).fetchone()
            if found is None:
                raise NotFoundError(f"mail {email_id} was not sent by vmailkit")
            if error is not None:
                con.execute("UPDATE email_sends SET sent_folder = ?, sent_folder_error = ? WHERE email_id = ?",
                            [folder, error, email_id])
                return
            con.execute(
                "UPDATE email_sends SET sent_folder = ?, sent_uidvalidity = ?, sent_uid = ?, sent_folder_error = NULL"
                " WHERE email_id = ?", [folder, uidvalidity, uid, email_id],
            )
            if uid is not None and uidvalidity is not None:
                con.execute(
                    "INSERT INTO email_locations (email_id, account_id, folder, uidvalidity, uid, uidl, raw_sha256,"
                    " size, downloaded_by, downloaded_at, loc_key) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    [email_id, account_id, folder, uidvalidity, uid, found[0], found[1], user_id, now,
                     location_key(account_id, folder, uidvalidity, str(uid))],
                )

    def sent_info(self, email_id: int) -> dict[str, Any] | None:
        """The ``email_sends`` row of a mail vmailkit sent (plus the account name), or None for any other mail."""
        with self.db.connect() as con:
            cur = con.execute(
                "SELECT s.*, a.name AS account FROM email_sends s LEFT JOIN accounts a USING (account_id)"
                " WHERE s.email_id = ?", [email_id],
            )
            row = cur.fetchone()
            if row is None:
                return None
            names = [d[0] for d in cur.description]
        return dict(zip(names, row))

    def mail_account_names(self, email_id: int) -> list[str]:
        """Names of the accounts a mail was received in or sent through, sorted; raises :class:`NotFoundError`."""
        with self.db.connect() as con:
            if con.execute("SELECT 1 FROM emails WHERE email_id = ?", [email_id]).fetchone() is None:
                raise NotFoundError(f"no mail with id {email_id}")
            rows = con.execute(
                "SELECT DISTINCT a.name FROM accounts a WHERE a.account_id IN ("
                " SELECT account_id FROM email_locations WHERE email_id = ?"
                " UNION SELECT account_id FROM email_sends WHERE email_id = ?) ORDER BY a.name",
                [email_id, email_id],
            ).fetchall()
        return [r[0] for r in rows]
