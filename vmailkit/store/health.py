"""Account health: when each account last worked, its last error, and when its OAuth2 grant was refreshed.

One row per account in ``account_health`` (no secrets): ``check`` and ``download`` record each
outcome; a failure keeps ``failing_since`` from the first failure in a row until the next success.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from .db import Database

ACTIONS = ("check", "download")


class HealthMixin:
    """Account health rows (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    def record_health(self, account_id: int, *, action: str, error: str | None = None,
                      grant_refreshed_at: datetime | None = None) -> None:
        """Record the outcome of a ``check`` or ``download`` of one account (``error`` None: it worked).

        ``grant_refreshed_at`` is when the account's OAuth2 grant was last refreshed, when known.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        now = datetime.now(timezone.utc)
        ok_col = "last_check_at" if action == "check" else "last_download_at"
        with self.db.atomic() as con:
            con.execute("INSERT INTO account_health (account_id) VALUES (?) ON CONFLICT DO NOTHING", [account_id])
            if error is None:
                con.execute(f"UPDATE account_health SET {ok_col} = ?, failing_since = NULL WHERE account_id = ?",
                            [now, account_id])
            else:
                con.execute(
                    "UPDATE account_health SET last_error = ?, last_error_at = ?,"
                    " failing_since = coalesce(failing_since, ?) WHERE account_id = ?",
                    [error[:500], now, now, account_id])
            if grant_refreshed_at is not None:
                con.execute(
                    "UPDATE account_health SET grant_refreshed_at = greatest(coalesce(grant_refreshed_at, ?), ?)"
                    " WHERE account_id = ?", [grant_refreshed_at, grant_refreshed_at, account_id])

    def health(self) -> pd.DataFrame:
        """Every account's health: name, auth (password/oauth2), last check and download, last error,
        failing since (None when the last attempt worked), grant refreshed at (OAuth2)."""
        with self.db.connect() as con:
            return con.execute(
                "SELECT a.name AS account, CASE WHEN o.account_id IS NULL THEN 'password' ELSE 'oauth2' END AS auth,"
                " h.last_check_at, h.last_download_at, h.failing_since, h.last_error, h.last_error_at,"
                " h.grant_refreshed_at"
                " FROM accounts a LEFT JOIN account_health h USING (account_id)"
                " LEFT JOIN account_oauth o USING (account_id) ORDER BY a.kind, a.name"
            ).df()
