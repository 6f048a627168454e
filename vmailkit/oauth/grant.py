"""Access tokens for one account: refreshed before they expire, rotated refresh tokens saved at once.

:class:`OAuthCredential` is what the transports are handed instead of a password. ``token()``
returns a valid access token, refreshing the grant under the token store's lock when the stored
access token has less than two minutes left; ``token(force=True)`` refreshes even so (after the
mail server refused a token). A refresh token the provider rotated is saved before the token is
handed out, so a crash right after never leaves the old, already used one behind.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from ..accounts import Account
from ..errors import SecretError, SignInError
from ..secrets import resolve_secret
from .providers import OAuthClient, TokenResponse, client_for, expired
from .tokens import Grant, TokenStore


def client_secret(account: Account, passwords: Mapping[str, str] | None = None) -> str | None:
    """The account's OAuth2 client secret (resolved from its reference), or None for a public client."""
    ref = account.oauth.client_secret_ref if account.oauth is not None else None
    if not ref:
        return None
    try:
        return resolve_secret(account.name, ref, None)
    except SecretError as exc:
        raise SignInError(account.name, f"the client secret of {account.name} cannot be read: {exc}") from None


def grant_from(response: TokenResponse, previous: Grant | None = None) -> Grant:
    """The grant to keep after a token response (the old refresh token when none was rotated in)."""
    refresh = response.refresh_token or (previous.refresh_token if previous is not None else None)
    if not refresh:
        raise ValueError("the sign-in gave no refresh token (is offline access granted?)")
    now = time.time()
    return Grant(refresh_token=refresh, access_token=response.access_token, expires_at=now + response.expires_in,
                 refreshed_at=now, scope=response.scope or (previous.scope if previous else None))


class OAuthCredential:
    """The access tokens of one OAuth2 account (see the module docstring)."""

    def __init__(self, account: Account, tokens: TokenStore, *, client: OAuthClient | None = None) -> None:
        self.account = account
        self.tokens = tokens
        self._client = client
        self.refreshed_at: float | None = None

    @property
    def client(self) -> OAuthClient:
        """The provider's client (made on first use: the client secret is read only then)."""
        if self._client is None:
            self._client = client_for(self.account, client_secret(self.account))
        return self._client

    @property
    def user(self) -> str:
        """The login the token is for (SASL ``user=`` / ``a=``)."""
        return self.account.login

    def token(self, *, force: bool = False) -> str:
        """A valid access token. Raises :class:`SignInExpired` (sign in again), :class:`SignInUnavailable`
        (retry later) or :class:`SignInError`."""
        name = self.account.name
        grant = self.tokens.load(name)
        if grant is None:
            raise expired(self.account)
        if not force and grant.fresh():
            self.refreshed_at = grant.refreshed_at
            return str(grant.access_token)
        with self.tokens.lock():
            current = self.tokens.load(name)  # another process may have refreshed meanwhile
            if current is None:
                raise expired(self.account)
            if current.refresh_token != grant.refresh_token and current.fresh():
                self.refreshed_at = current.refreshed_at
                return str(current.access_token)
            response = self.client.refresh(current.refresh_token)
            try:
                new = grant_from(response, current)
            except ValueError:
                raise expired(self.account) from None
            self.tokens.save(name, new)  # the rotated refresh token is kept before anything else happens
        self.refreshed_at = new.refreshed_at
        return str(new.access_token)

    def __repr__(self) -> str:
        return f"OAuthCredential({self.account.name!r})"
