"""Shared fixtures: the private Dovecot test server and the MIME corpus."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from dovecot import DOVECOT_ENV, DovecotServer, MailUser, find_dovecot

DOVECOT_MISSING = (
    "Dovecot is required under CI: install dovecot-imapd dovecot-pop3d "
    f"(looked in PATH and /usr/sbin; ${DOVECOT_ENV} overrides)"
)


def dovecot_bin() -> str:
    """Path of ``dovecot``; fail under CI (``CI=true``), skip loudly elsewhere."""
    path = find_dovecot()
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(DOVECOT_MISSING, pytrace=False)
    reason = (
        "!!! DOVECOT NOT INSTALLED: real-server tests SKIPPED "
        "(sudo apt-get install dovecot-imapd dovecot-pop3d) !!!"
    )
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, tls: bool):
    binary = dovecot_bin()  # fails/skips before any temp dir is made
    srv = DovecotServer(tmp_path_factory.mktemp(name), tls=tls, dovecot_bin=binary)
    srv.start()
    return srv


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory):
    """A started Dovecot with TLS (IMAPS/POP3S + STARTTLS/STLS), shared by the session."""
    srv = _server(tmp_path_factory, "dovecot", tls=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def dovecot_notls(tmp_path_factory: pytest.TempPathFactory):
    """A started Dovecot with ``ssl = no``: plain ports only, no STARTTLS/STLS."""
    srv = _server(tmp_path_factory, "dovecot-notls", tls=False)
    yield srv
    srv.stop()


@pytest.fixture
def mailuser(dovecot: DovecotServer) -> MailUser:
    """A fresh user (``.name``, ``.password``, ``.address``) on ``dovecot``."""
    return dovecot.new_user()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if not path.is_dir():
        pytest.skip(f"MIME corpus not found at {path}")
    return path


@pytest.fixture(scope="session")
def oauth_provider():
    """A started loopback OAuth2 authorization server (``tests/oauth_provider.py``), plain HTTP.

    Shared by the session: a test that changes its switches (``fail_with``,
    ``delay``, ``access_lifetime``...) must put them back (``reset()`` clears
    the fault switches and the request log).
    """
    from oauth_provider import OAuthProvider

    provider = OAuthProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def dovecot_oauth(tmp_path_factory: pytest.TempPathFactory, oauth_provider):
    """A second started Dovecot (TLS) that also accepts XOAUTH2/OAUTHBEARER with ``oauth_provider``'s JWTs.

    Passwords keep working (PLAIN/LOGIN).  ``auth_verbose`` is on, so
    ``dovecot_oauth.log_file`` says why a token was refused.
    """
    from dovecot import OAuth2Settings

    binary = dovecot_bin()
    srv = DovecotServer(
        tmp_path_factory.mktemp("dovecot-oauth"), tls=True, dovecot_bin=binary,
        oauth2=OAuth2Settings.from_provider(oauth_provider), auth_verbose=True,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def smtp_oauth(tmp_path_factory: pytest.TempPathFactory, oauth_provider):
    """A started aiosmtpd (STARTTLS) offering AUTH XOAUTH2, accepting ``oauth_provider.check_token``."""
    from smtpserver import SmtpServer

    srv = SmtpServer(tmp_path_factory.mktemp("smtp-oauth"), mode="starttls",
                     oauth_verify=oauth_provider.check_token)
    srv.start()
    yield srv
    srv.stop()
