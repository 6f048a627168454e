"""Transports: one session class per protocol, both with the same shape.

``open_session(account, password)`` returns an :class:`ImapSession` or :class:`Pop3Session`
(context managers), both implementing :class:`SessionBase`: they list message references past a
watermark, fetch header fields and fetch messages by reference in chunks; they never change the
server.
"""
from __future__ import annotations

from ..accounts import Account
from .base import DEFAULT_TIMEOUT, FetchedChunk, FetchFailure, RemoteHeader, RemoteMessage, SessionBase, tls_context
from .imap import ImapSession
from .pop3 import Pop3Session
from .sasl import TokenSource

Session = ImapSession | Pop3Session


def open_session(account: Account, password: str | TokenSource, *, timeout: float = DEFAULT_TIMEOUT) -> Session:
    """Return an unopened session for ``account`` (use it with ``with``)."""
    if account.protocol == "imap":
        return ImapSession(account, password, timeout=timeout)
    return Pop3Session(account, password, timeout=timeout)


__all__ = ["ImapSession", "Pop3Session", "FetchedChunk", "FetchFailure", "RemoteHeader", "RemoteMessage", "Session",
           "SessionBase", "TokenSource", "open_session", "tls_context", "DEFAULT_TIMEOUT"]
