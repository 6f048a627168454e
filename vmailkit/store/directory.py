"""Users, accounts and subscriptions in the store."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb
import pandas as pd

from ..accounts import Account, OAuthSettings, SmtpSettings, User, check_no_control_characters, validate_user_name
from ..errors import NotFoundError, ValidationError
from ..secrets import check_reference
from .db import Database

_ACCOUNT_COLS = (
    "a.account_id, a.name, a.kind, u.name AS owner, a.protocol, a.host, a.port, a.security, "
    "a.address, a.login, a.secret_ref, a.ca_file, a.folder"
)


def _account_from_row(row: tuple[Any, ...]) -> Account:
    (account_id, name, kind, owner, protocol, host, port, security, address, login, secret_ref, ca_file, folder) = row
    return Account(
        account_id=account_id, name=name, kind=kind, owner=owner, protocol=protocol, host=host, port=port,
        security=security, address=address, login=login, secret_ref=secret_ref, ca_file=ca_file, folder=folder,
    )


def _smtp_settings(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> dict[int, SmtpSettings]:
    """The SMTP settings (table ``account_smtp``) of the accounts in ``rows`` (first column: account_id)."""
    ids = [r[0] for r in rows]
    if not ids:
        return {}
    found = con.execute(
        "SELECT account_id, host, port, security, login, secret_ref, ca_file FROM account_smtp"
        " WHERE account_id IN (SELECT unnest(?::INTEGER[]))", [ids],
    ).fetchall()
    return {r[0]: SmtpSettings(host=r[1], port=r[2], security=r[3], login=r[4], secret_ref=r[5], ca_file=r[6])
            for r in found}


def _oauth_settings(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> dict[int, OAuthSettings]:
    """The OAuth2 settings (table ``account_oauth``) of the accounts in ``rows`` (first column: account_id)."""
    ids = [r[0] for r in rows]
    if not ids:
        return {}
    found = con.execute(
        "SELECT account_id, provider, client_id, scopes, client_secret_ref, tenant, token_url, auth_url, device_url"
        " FROM account_oauth WHERE account_id IN (SELECT unnest(?::INTEGER[]))", [ids],
    ).fetchall()
    return {r[0]: OAuthSettings(provider=r[1], client_id=r[2], scopes=tuple(r[3]), client_secret_ref=r[4],
                                tenant=r[5], token_url=r[6], auth_url=r[7], device_url=r[8]) for r in found}


def _accounts_with_smtp(rows: list[tuple[Any, ...]], smtp: dict[int, SmtpSettings],
                        oauth: dict[int, OAuthSettings] | None = None) -> list[Account]:
    oauth = oauth or {}
    return [replace(a, smtp=smtp.get(a.account_id), oauth=oauth.get(a.account_id)) for a in map(_account_from_row, rows)]


def _save_oauth(con: duckdb.DuckDBPyConnection, account_id: int, settings: OAuthSettings | None) -> None:
    """Insert, replace or (``None``) delete an account's OAuth2 settings; the client secret must be a reference."""
    if settings is None:
        con.execute("DELETE FROM account_oauth WHERE account_id = ?", [account_id])
        return
    secret_ref = check_reference(settings.client_secret_ref) if settings.client_secret_ref else None
    con.execute(
        "INSERT INTO account_oauth (account_id, provider, client_id, client_secret_ref, tenant, token_url, auth_url,"
        " device_url, scopes, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)"
        " ON CONFLICT (account_id) DO UPDATE SET provider = excluded.provider, client_id = excluded.client_id,"
        " client_secret_ref = excluded.client_secret_ref, tenant = excluded.tenant, token_url = excluded.token_url,"
        " auth_url = excluded.auth_url, device_url = excluded.device_url, scopes = excluded.scopes,"
        " updated_at = excluded.updated_at",
        [account_id, settings.provider, settings.client_id, secret_ref, settings.tenant, settings.token_url,
         settings.auth_url, settings.device_url, list(settings.scopes)],
    )


def _save_smtp(con: duckdb.DuckDBPyConnection, account_id: int, settings: SmtpSettings | None) -> None:
    """Insert, replace or (``None``) delete an account's SMTP settings; the secret must be a reference."""
    if settings is None:
        con.execute("DELETE FROM account_smtp WHERE account_id = ?", [account_id])
        return
    secret_ref = check_reference(settings.secret_ref)
    con.execute(
        "INSERT INTO account_smtp (account_id, host, port, security, login, secret_ref, ca_file, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp) ON CONFLICT (account_id) DO UPDATE SET"
        " host = excluded.host, port = excluded.port, security = excluded.security, login = excluded.login,"
        " secret_ref = excluded.secret_ref, ca_file = excluded.ca_file, updated_at = excluded.updated_at",
        [account_id, settings.host, settings.port, settings.security, settings.login, secret_ref, settings.ca_file],
    )


class DirectoryMixin:
    """Users, accounts and subscriptions (mixed into :class:`vmailkit.store.Store`)."""

    db: Database

    # -- users -------------------------------------------------------------------------------
    def add_user(self, name: str, email: str | None = None) -> User:
        """Create a user; raises :class:`ValidationError` on an empty or duplicate name."""
        name = validate_user_name(name)
        check_no_control_characters((email or "").strip(), "email")
        if email is not None and email.strip() and "@" not in email:
            raise ValidationError("email", f"{email!r} is not an e-mail address")
        with self.db.atomic() as con:
            if con.execute("SELECT 1 FROM users WHERE name = ?", [name]).fetchone():
                raise ValidationError("name", f"a user named {name!r} already exists")
            (user_id,) = con.execute(
                "INSERT INTO users (name, email) VALUES (?, ?) RETURNING user_id", [name, (email or "").strip() or None]
            ).fetchone()
        return User(name=name, email=email, user_id=user_id)

    def get_user(self, name: str) -> User:
        """Return the user called ``name``; raises :class:`NotFoundError`."""
        with self.db.connect() as con:
            row = con.execute("SELECT user_id, name, email FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFoundError(f"no user named {name!r}")
        return User(user_id=row[0], name=row[1], email=row[2])

    def users(self) -> pd.DataFrame:
        """All users as a DataFrame (user_id, name, email)."""
        with self.db.connect() as con:
            return con.execute("SELECT user_id, name, email FROM users ORDER BY name").df()

    # -- accounts ----------------------------------------------------------------------------
    def add_account(self, account: Account) -> Account:
        """Store a validated account (see :func:`vmailkit.accounts.make_account`).

        Raises :class:`ValidationError` for a duplicate name, an unknown owner or a secret that is not
        a reference.
        """
        secret_ref = check_reference(account.secret_ref)
        with self.db.atomic() as con:
            if con.execute("SELECT 1 FROM accounts WHERE name = ?", [account.name]).fetchone():
                raise ValidationError("name", f"an account named {account.name!r} already exists")
            owner_id = self._owner_id(con, account)
            (account_id,) = con.execute(
                "INSERT INTO accounts (name, kind, owner_user_id, protocol, host, port, security, address, login,"
                " secret_ref, ca_file, folder) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING account_id",
                [account.name, account.kind, owner_id, account.protocol, account.host, account.port,
                 account.security, account.address, account.login, secret_ref, account.ca_file, account.folder],
            ).fetchone()
            if account.smtp is not None:
                _save_smtp(con, account_id, account.smtp)
            if account.oauth is not None:
                _save_oauth(con, account_id, account.oauth)
        return self.get_account(account.name) if account_id else account

    def update_account(self, account: Account) -> Account:
        """Replace the settings of the stored account with ``account.name``; returns the stored account.

        SMTP and OAuth2 settings are replaced when ``account.smtp`` / ``account.oauth`` is set and kept
        when it is None (clear them with :meth:`set_smtp` / :meth:`set_oauth`).
        """
        secret_ref = check_reference(account.secret_ref)
        with self.db.atomic() as con:
            if not con.execute("SELECT 1 FROM accounts WHERE name = ?", [account.name]).fetchone():
                raise NotFoundError(f"no account named {account.name!r}")
            owner_id = self._owner_id(con, account)
            con.execute(
                "UPDATE accounts SET kind = ?, owner_user_id = ?, protocol = ?, host = ?, port = ?, security = ?,"
                " address = ?, login = ?, secret_ref = ?, ca_file = ?, folder = ? WHERE name = ?",
                [account.kind, owner_id, account.protocol, account.host, account.port, account.security,
                 account.address, account.login, secret_ref, account.ca_file, account.folder, account.name],
            )
            (account_id,) = con.execute("SELECT account_id FROM accounts WHERE name = ?", [account.name]).fetchone()
            if account.smtp is not None:
                _save_smtp(con, account_id, account.smtp)
            if account.oauth is not None:
                _save_oauth(con, account_id, account.oauth)
        return self.get_account(account.name)

    def set_smtp(self, name: str, settings: SmtpSettings | None) -> Account:
        """Set (or with ``None`` remove) the SMTP settings of account ``name``; returns the stored account.

        Build ``settings`` with :func:`vmailkit.accounts.make_smtp_settings`. Raises
        :class:`NotFoundError` for an unknown account and :class:`ValidationError` when the secret is
        not a reference (the password itself is never stored).
        """
        with self.db.atomic() as con:
            row = con.execute("SELECT account_id FROM accounts WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"no account named {name!r}")
            _save_smtp(con, row[0], settings)
        return self.get_account(name)

    def set_oauth(self, name: str, settings: OAuthSettings | None) -> Account:
        """Make account ``name`` sign in with OAuth2 (``settings``), or with its password again (``None``).

        Raises :class:`NotFoundError` for an unknown account and :class:`ValidationError` when the
        client secret is not a reference.
        """
        with self.db.atomic() as con:
            row = con.execute("SELECT account_id FROM accounts WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NotFoundError(f"no account named {name!r}")
            _save_oauth(con, row[0], settings)
        return self.get_account(name)

    def delete_account(self, name: str) -> None:
        """Delete an account and its subscriptions and sync state; stored mail is kept."""
        account = self.get_account(name)
        with self.db.atomic() as con:
            for table in ("subscriptions", "sync_state", "sync_uidls", "account_smtp", "account_oauth", "account_health"):
                con.execute(f"DELETE FROM {table} WHERE account_id = ?", [account.account_id])
            con.execute("DELETE FROM accounts WHERE account_id = ?", [account.account_id])

    @staticmethod
    def _owner_id(con: duckdb.DuckDBPyConnection, account: Account) -> int | None:
        if account.owner is None:
            return None
        row = con.execute("SELECT user_id FROM users WHERE name = ?", [account.owner]).fetchone()
        if row is None:
            raise ValidationError("owner", f"no user named {account.owner!r}")
        return row[0]

    def get_account(self, name: str) -> Account:
        """Return the account called ``name``; raises :class:`NotFoundError`."""
        with self.db.connect() as con:
            row = con.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts a LEFT JOIN users u ON u.user_id = a.owner_user_id"
                " WHERE a.name = ?",
                [name],
            ).fetchone()
            smtp = _smtp_settings(con, [row]) if row is not None else {}
            oauth = _oauth_settings(con, [row]) if row is not None else {}
        if row is None:
            raise NotFoundError(f"no account named {name!r}")
        return _accounts_with_smtp([row], smtp, oauth)[0]

    def list_accounts(self) -> list[Account]:
        """Every account, general ones first, then by name."""
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts a LEFT JOIN users u ON u.user_id = a.owner_user_id"
                " ORDER BY a.kind, a.name"
            ).fetchall()
            smtp = _smtp_settings(con, rows)
            oauth = _oauth_settings(con, rows)
        return _accounts_with_smtp(rows, smtp, oauth)

    def accounts_frame(self) -> pd.DataFrame:
        """Every account as a DataFrame, secret references included (they are not secrets)."""
        with self.db.connect() as con:
            return con.execute(
                f"SELECT {_ACCOUNT_COLS} FROM accounts a LEFT JOIN users u ON u.user_id = a.owner_user_id"
                " ORDER BY a.kind, a.name"
            ).df()

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(self, user: str, account: str) -> None:
        """Subscribe ``user`` to ``account`` (idempotent)."""
        u, a = self.get_user(user), self.get_account(account)
        with self.db.atomic() as con:
            con.execute(
                "INSERT INTO subscriptions (user_id, account_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [u.user_id, a.account_id],
            )

    def unsubscribe(self, user: str, account: str) -> None:
        """Remove the subscription (idempotent); downloaded mail and sync state are kept."""
        u, a = self.get_user(user), self.get_account(account)
        with self.db.atomic() as con:
            con.execute("DELETE FROM subscriptions WHERE user_id = ? AND account_id = ?", [u.user_id, a.account_id])

    def subscribed_accounts(self, user: str) -> list[Account]:
        """The accounts ``user`` subscribes to, general first, then by name."""
        u = self.get_user(user)
        with self.db.connect() as con:
            rows = con.execute(
                f"SELECT {_ACCOUNT_COLS} FROM subscriptions s JOIN accounts a ON a.account_id = s.account_id"
                " LEFT JOIN users u ON u.user_id = a.owner_user_id WHERE s.user_id = ? ORDER BY a.kind, a.name",
                [u.user_id],
            ).fetchall()
            smtp = _smtp_settings(con, rows)
            oauth = _oauth_settings(con, rows)
        return _accounts_with_smtp(rows, smtp, oauth)
