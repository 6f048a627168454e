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
