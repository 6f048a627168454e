"""Signing an account in: device code, browser, or adopting a grant obtained elsewhere.

Each way ends with the grant saved in the token store (never in DuckDB) and returns it. Adopting a
refresh token refreshes it once at once: that proves it works and, with providers that rotate
refresh tokens, leaves only the new one usable.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from ..accounts import Account
from ..errors import SignInError
from .grant import client_secret, grant_from
from .providers import DeviceCode, OAuthClient, TokenResponse, client_for
from .tokens import Grant, TokenStore


def _client(account: Account, client: OAuthClient | None) -> OAuthClient:
    if account.oauth is None:
        raise SignInError(account.name, f"{account.name} signs in with a password, not OAuth2")
    return client if client is not None else client_for(account, client_secret(account))


def _keep(account: Account, tokens: TokenStore, response: TokenResponse) -> Grant:
    try:
        grant = grant_from(response)
    except ValueError:
        raise SignInError(account.name, "the sign-in gave no lasting grant (refresh token): make sure the application "
                                        "may ask for offline access, then sign in again") from None
    with tokens.lock():
        tokens.save(account.name, grant)
    return grant


def sign_in_device(account: Account, tokens: TokenStore, show: Callable[[DeviceCode], None], *,
                   cancel: threading.Event | None = None, client: OAuthClient | None = None) -> Grant:
    """Device-code sign-in: ``show(code)`` tells the person where to go and what to type; waits for approval."""
    c = _client(account, client)
    code = c.start_device()
    show(code)
    return _keep(account, tokens, c.finish_device(code, cancel))


def sign_in_browser(account: Account, tokens: TokenStore, *, open_browser: bool = True,
                    show: Callable[[str], None] | None = None, timeout: float = 300.0,
                    client: OAuthClient | None = None) -> Grant:
    """Browser sign-in (authorization code with PKCE, redirect to 127.0.0.1)."""
    c = _client(account, client)
    return _keep(account, tokens, c.browser(open_browser=open_browser, timeout=timeout, show=show))


def adopt_refresh_token(account: Account, tokens: TokenStore, refresh_token: str, *,
                        client: OAuthClient | None = None) -> Grant:
    """Take over a refresh token obtained elsewhere (headless set-up): refreshed once, then kept."""
    refresh_token = (refresh_token or "").strip()
    if not refresh_token:
        raise SignInError(account.name, "the refresh token to adopt is empty")
    c = _client(account, client)
    response = c.refresh(refresh_token)
    if response.refresh_token is None:
        response = TokenResponse(response.access_token, response.expires_in, refresh_token, response.scope)
    return _keep(account, tokens, response)


def sign_out(account: Account, tokens: TokenStore) -> None:
    """Forget the account's grant (it stays valid at the provider until revoked there)."""
    with tokens.lock():
        tokens.delete(account.name)
