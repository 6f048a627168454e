"""OAuth2 sign-in for Microsoft 365, Google and other providers (IMAP, POP3 and SMTP).

* :mod:`.tokens`: where grants live (keyring, or a 0600 file), never in DuckDB;
* :mod:`.providers`: refresh and sign-in through msal, google-auth and authlib;
* :mod:`.grant`: :class:`OAuthCredential`, the access tokens the transports log in with;
* :mod:`.signin`: signing an account in (device code, browser, or adopting a refresh token).

:func:`credential_for` gives what a session logs in with: the password for a password account, an
:class:`OAuthCredential` for an OAuth2 account.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..accounts import Account
from ..secrets import resolve_secret
from .grant import OAuthCredential
from .tokens import FileTokenStore, Grant, KeyringTokenStore, TokenStore, token_store


def credential_for(account: Account, passwords: Mapping[str, str] | None = None,
                   tokens: TokenStore | None = None) -> str | OAuthCredential:
    """The password (resolved from its reference) or, for an OAuth2 account, its :class:`OAuthCredential`.

    Raises :class:`~vmailkit.errors.SecretError` for a password that cannot be resolved and
    :class:`~vmailkit.errors.ValidationError` when no token store can be used.
    """
    if account.oauth is not None:
        return OAuthCredential(account, tokens if tokens is not None else token_store())
    return resolve_secret(account.name, account.secret_ref, passwords)


__all__ = ["FileTokenStore", "Grant", "KeyringTokenStore", "OAuthCredential", "TokenStore", "credential_for",
           "token_store"]
