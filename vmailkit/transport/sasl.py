"""OAuth2 logins over SASL: XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628).

The transports get a :class:`TokenSource` instead of a password. :func:`log_in_with_token` tries the
current access token and, when the server refuses it, once more with a freshly refreshed one (a
token revoked or expired early); a second refusal is the account's sign-in error. A server's error
challenge (``+ <base64 JSON>``) is never answered with credentials: the exchange is cancelled.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Protocol

MECHANISMS = ("XOAUTH2", "OAUTHBEARER")


class TokenSource(Protocol):
    """What a transport logs in with for an OAuth2 account (see :class:`vmailkit.oauth.OAuthCredential`)."""

    @property
    def user(self) -> str:
        """The login the token is for."""
        ...

    def token(self, *, force: bool = False) -> str:
        """A valid access token (refreshed first with ``force``)."""
        ...


def initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The SASL client response carrying the bearer token (not base64-encoded)."""
    if mechanism == "OAUTHBEARER":
        return f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def choose(offered: list[str]) -> str | None:
    """XOAUTH2 when offered, else OAUTHBEARER, else None (``offered``: mechanism names, any case)."""
    names = {m.upper() for m in offered}
    return next((m for m in MECHANISMS if m in names), None)


def describe_challenge(challenge: bytes) -> str:
    """The server's error challenge in plain words (RFC 7628 JSON: status, scope)."""
    raw = challenge.strip()
    try:
        data = json.loads(base64.b64decode(raw, validate=True) if raw and not raw.startswith(b"{") else raw or b"{}")
    except (ValueError, binascii.Error):
        return ""
    if not isinstance(data, dict):
        return ""
    status = str(data.get("status", ""))
    if status in ("401", "invalid_token"):
        return "the token was not accepted"
    if status in ("403", "insufficient_scope"):
        return "the token does not allow mail access (scope)"
    if status == "400":
        return "the server found the request malformed"
    return f"status {status}" if status else ""


def log_in_with_token(source: TokenSource, attempt: Callable[[str], str | None]) -> str | None:
    """Log in with ``attempt(token)`` (None: logged in; else the server's refusal in words).

    Tries the current token, then once a refreshed one. Returns None when logged in, else the last
    refusal. Sign-in errors of the token source (expired grant, service down) propagate.
    """
    refusal = attempt(source.token())
    if refusal is None:
        return None
    return attempt(source.token(force=True))
