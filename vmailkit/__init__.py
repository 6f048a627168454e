"""vmailkit: pull e-mail from POP3/IMAP accounts into DuckDB and link it to CRM records.

The Python API in one place::

    from vmailkit import Store, make_account, check, download

    store = Store("vmail.duckdb")
    store.add_user("anna", "anna@example.com")
    store.add_account(make_account("office", kind="general", protocol="imap", host="mail.example.com",
                                   security="ssl", address="office@example.com", secret="env:OFFICE_PW"))
    store.subscribe("anna", "office")
    result = check(store, "anna")             # headers of new mail, newest first
    download(store, "anna", picks=result.messages.head(10), after_chunk=match_new)

    load_crm(store, "crm-export/")            # persons.csv, customers.csv, reservations.parquet, ...
    match_all(store)                          # link every stored mail by the automatic rules
    link(store, 42, "reservation", 7, user="anna")
"""
from __future__ import annotations

from .accounts import Account, SmtpSettings, User, default_port, make_account, make_smtp_settings
from .crm import CrmLoadError, LoadResult, load_crm
from .errors import (
    AuthError,
    ConnectionLost,
    HostError,
    MailServerError,
    MailTimeout,
    NotFoundError,
    ProtocolError,
    SecretError,
    SendError,
    SignInError,
    SignInExpired,
    SignInUnavailable,
    StartTLSNotOffered,
    StoreError,
    StoreLockedError,
    TLSFailure,
    ValidationError,
    VmailkitError,
)
from .links import link, link_candidates, related, search, unlink
from .match import MatchResult, match_all, match_emails, match_new, match_unlinked
from .reply import Draft, OutgoingAttachment, compose_reply, send_reply
from .store import EmailFilter, Store
from .refs import MessageRef, Watermark
from .sync import AccountDownload, AccountStatus, CheckResult, DownloadSummary, PickFailure, check, download, test_account

__version__ = "0.1.0"

__all__ = [
    "Account", "AccountDownload", "AccountStatus", "AuthError", "CheckResult", "ConnectionLost",
    "DownloadSummary", "MessageRef", "PickFailure", "SignInError", "SignInExpired", "SignInUnavailable", "Watermark",
    "EmailFilter", "HostError", "MailServerError", "MailTimeout", "NotFoundError", "ProtocolError", "SecretError",
    "StartTLSNotOffered", "Store", "StoreError", "StoreLockedError", "TLSFailure", "User", "ValidationError",
    "VmailkitError", "check", "default_port", "download", "make_account", "test_account",
    "CrmLoadError", "LoadResult", "MatchResult", "link", "link_candidates", "load_crm", "match_all", "match_emails",
    "match_new", "match_unlinked", "related", "search", "unlink",
    "Draft", "OutgoingAttachment", "SendError", "SmtpSettings", "compose_reply", "make_smtp_settings", "send_reply",
]
