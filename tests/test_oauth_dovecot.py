"""OAuth2 end to end, offline: the loopback token endpoint, Dovecot validating its JWTs, aiosmtpd with XOAUTH2.

The accounts use the ``generic`` provider (authlib) pointed at the test's token endpoint; Microsoft
and Google are covered by test_oauth_unit.py (what their libraries are asked).
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time

import pytest
from click.testing import CliRunner

from helpers import add_account, port_for, stored_bytes
from mailfactory import make_mail
from vmailkit import Store, check, compose_reply, download, make_account, make_smtp_settings, send_reply
from vmailkit.accounts import make_oauth_settings
from vmailkit.cli import main
from vmailkit.errors import AuthError, SignInExpired, SignInUnavailable, ValidationError
from vmailkit.oauth import FileTokenStore, OAuthCredential
from vmailkit.oauth.signin import adopt_refresh_token, sign_in_device

pytestmark = pytest.mark.dovecot

CLIENT = "vmailkit-desk"


@pytest.fixture
def provider(oauth_provider):
    oauth_provider.reset()
    yield oauth_provider
    oauth_provider.reset()
    oauth_provider.access_lifetime = 3600
    oauth_provider.authorize_user = None


@pytest.fixture
def tokens(tmp_path) -> FileTokenStore:
    return FileTokenStore(tmp_path / "private" / "tokens.json")


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "vmail.duckdb")
    s.add_user("anna", "anna@tour.example")
    return s


def oauth_account(store: Store, server, user, provider, *, name="office", protocol="imap", security="ssl",
                  smtp=None):
    settings = make_oauth_settings(provider="generic", client_id=CLIENT, token_url=provider.token_url,
                                   device_url=provider.device_url, scope="mail offline_access")
    acc = make_account(name, kind="general", protocol=protocol, host=server.host,
                       port=port_for(server, protocol, security), security=security, address=user.address,
                       login=user.name, ca_file=str(server.ca_file), oauth=settings)
    store.add_account(acc)
    if smtp is not None:
        store.set_smtp(name, make_smtp_settings(host=smtp.host, port=smtp.port, security="starttls", login=user.name,
                                                ca_file=str(smtp.ca_file)))
    store.subscribe("anna", name)
    return store.get_account(name)


@pytest.mark.parametrize("protocol,security", [("imap", "ssl"), ("imap", "starttls"), ("pop3", "ssl")])
def test_adopted_grant_checks_and_downloads_and_rotates(store, tokens, provider, dovecot_oauth, protocol, security):
    user = dovecot_oauth.new_user()
    for n in range(1, 4):
        dovecot_oauth.deliver(user.name, make_mail(n))
    acc = oauth_account(store, dovecot_oauth, user, provider, protocol=protocol, security=security)
    first = provider.add_grant(user.name, CLIENT)
    adopt_refresh_token(acc, tokens, first)
    kept = tokens.load("office")
    grant = provider.grant_for(first)  # rotated at once: only the new refresh token is alive
    assert kept.refresh_token != first and grant.refresh_token == kept.refresh_token and first in grant.retired
    listed = check(store, "anna", tokens=tokens)
    assert [s.ok for s in listed.statuses] == [True], listed.statuses
    assert len(listed.messages) == 3
    summary = download(store, "anna", all_new=True, tokens=tokens)
    assert summary.ok and summary.total("downloaded") == 3
    health = store.health().iloc[0]
    assert health["auth"] == "oauth2" and not str(health["grant_refreshed_at"]) in ("NaT", "None")


def test_device_sign_in_then_expired_access_token_is_refreshed_silently(store, tokens, provider, dovecot_oauth):
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    acc = oauth_account(store, dovecot_oauth, user, provider)
    shown = []

    def approve(code):  # the person opens the address and types the code
        shown.append((code.verification_uri, code.user_code))
        provider.approve(code.user_code, user.name)

    sign_in_device(acc, tokens, approve)
    assert shown and shown[0][0].startswith(provider.issuer)
    grant = tokens.load("office")
    grant.expires_at = time.time() - 10  # the access token has expired
    tokens.save("office", grant)
    before = provider.token_requests
    listed = check(store, "anna", tokens=tokens)
    assert listed.statuses[0].ok and len(listed.messages) == 1
    assert provider.token_requests == before + 1
    assert tokens.load("office").refresh_token != grant.refresh_token  # rotated, and kept
    assert tokens.load("office").expires_at > time.time() + 60


def test_revoked_grant_is_a_plain_error_and_other_accounts_work(store, tokens, provider, dovecot_oauth, dovecot):
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    acc = oauth_account(store, dovecot_oauth, user, provider)
    adopt_refresh_token(acc, tokens, provider.add_grant(user.name, CLIENT))
    other = dovecot.new_user()
    dovecot.deliver(other.name, make_mail(2))
    add_account(store, dovecot, other, name="shop")
    store.subscribe("anna", "shop")
    provider.revoke(user.name)
    grant = tokens.load("office")
    grant.expires_at = 0  # force the refresh that meets the revoked grant
    tokens.save("office", grant)
    result = check(store, "anna", passwords={"shop": other.password}, tokens=tokens)
    by = {s.account: s for s in result.statuses}
    assert by["shop"].ok and list(result.messages["account"]) == ["shop"]
    assert not by["office"].ok and by["office"].reason == "signin"
    assert "the sign-in for office has expired or was revoked: run `vmailkit account signin office`" in by["office"].error
    assert store.health().set_index("account").loc["office", "failing_since"] is not None


def test_replayed_refresh_token_revokes_the_grant(store, tokens, provider, dovecot_oauth):
    user = dovecot_oauth.new_user()
    acc = oauth_account(store, dovecot_oauth, user, provider)
    first = provider.add_grant(user.name, CLIENT)
    adopt_refresh_token(acc, tokens, first)
    with pytest.raises(SignInExpired):  # somebody replays the old refresh token: the provider ends the grant
        adopt_refresh_token(acc, FileTokenStore(tokens.path.with_name("other.json")), first)
    with pytest.raises(SignInExpired):
        OAuthCredential(acc, tokens).token(force=True)


def test_token_endpoint_down_is_retryable_in_plain_words(store, tokens, provider, dovecot_oauth):
    user = dovecot_oauth.new_user()
    acc = oauth_account(store, dovecot_oauth, user, provider)
    adopt_refresh_token(acc, tokens, provider.add_grant(user.name, CLIENT))
    provider.fail_with = 503
    with pytest.raises(SignInUnavailable) as info:
        OAuthCredential(acc, tokens).token(force=True)
    assert info.value.retryable and "try again later" in str(info.value) and "127.0.0.1" in str(info.value)
    status = check(store, "anna", tokens=tokens).statuses[0]  # the stored access token is still good: no refresh needed
    assert status.ok
    provider.fail_with = None
    assert OAuthCredential(acc, tokens).token(force=True)


def test_token_of_another_user_is_refused(store, tokens, provider, dovecot_oauth):
    user, intruder = dovecot_oauth.new_user(), dovecot_oauth.new_user()
    acc = oauth_account(store, dovecot_oauth, user, provider)
    adopt_refresh_token(acc, tokens, provider.add_grant(intruder.name, CLIENT))
    status = check(store, "anna", tokens=tokens).statuses[0]
    assert not status.ok and status.reason == "auth" and "refused the OAuth2 sign-in" in status.error


def test_reply_over_smtp_with_xoauth2(store, tokens, provider, dovecot_oauth, smtp_oauth):
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1, to=user.address))
    acc = oauth_account(store, dovecot_oauth, user, provider, smtp=smtp_oauth)
    adopt_refresh_token(acc, tokens, provider.add_grant(user.name, CLIENT))
    summary = download(store, "anna", all_new=True, tokens=tokens)
    draft = compose_reply(store, summary.email_ids[0], body="Confirmed.", user="anna")
    before = len(smtp_oauth.messages)
    send_reply(store, draft, user="anna", tokens=tokens)
    assert len(smtp_oauth.messages) == before + 1 and smtp_oauth.messages[-1].login == user.name


def test_password_accounts_unchanged_and_password_is_no_token(store, tokens, provider, dovecot_oauth):
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    add_account(store, dovecot_oauth, user, name="pw")
    store.subscribe("anna", "pw")
    assert check(store, "anna", passwords={"pw": user.password}, tokens=tokens).statuses[0].ok
    # the password sent as a bearer token is refused (the password passdb serves PLAIN/LOGIN only)
    acc = oauth_account(store, dovecot_oauth, user, provider, name="sneaky")

    class PasswordAsToken:
        user = acc.login

        def token(self, *, force=False):
            return user.password

    from vmailkit.transport import open_session

    with pytest.raises(AuthError):
        open_session(acc, PasswordAsToken()).open()


def test_cli_sign_in_health_and_no_secret_anywhere(tmp_path, provider, dovecot_oauth, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    db = tmp_path / "v.duckdb"
    token_file = tmp_path / "private" / "tokens.json"
    provider.add_client("confidential-app", "client-secret-value-42")
    refresh = provider.add_grant(user.name, "confidential-app", "client-secret-value-42")
    monkeypatch.setenv("VMAILKIT_TOKEN_STORE", f"file:{token_file}")
    monkeypatch.setenv("OFFICE_RT", refresh)
    monkeypatch.setenv("OFFICE_CLIENT_SECRET", "client-secret-value-42")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, ["--db", str(db), *args])

    assert run("user", "add", "anna").exit_code == 0
    added = run("account", "add", "office", "--kind", "general", "--protocol", "imap", "--host", dovecot_oauth.host,
                "--port", str(dovecot_oauth.imaps_port), "--security", "ssl", "--address", user.address,
                "--login", user.name, "--ca-file", str(dovecot_oauth.ca_file), "--auth", "oauth2",
                "--oauth-provider", "generic", "--client-id", "confidential-app",
                "--client-secret", "env:OFFICE_CLIENT_SECRET", "--token-url", provider.token_url, "--scope", "mail")
    assert added.exit_code == 0, added.output
    assert run("subscribe", "anna", "office").exit_code == 0
    before = run("account", "health")
    assert before.exit_code == 3 and "has not been signed in yet" in before.stderr
    signed = run("account", "signin", "office", "--refresh-token", "env:OFFICE_RT")
    assert signed.exit_code == 0, signed.output
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    listed = run("check", "anna", "--format", "json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)["messages"]) == 1
    dl = run("download", "anna", "--all", "--format", "json")
    assert dl.exit_code == 0 and json.loads(dl.stdout)[0]["downloaded"] == 1
    healthy = run("account", "health", "--format", "json")
    assert healthy.exit_code == 0, healthy.stderr
    row = json.loads(healthy.stdout)[0]
    assert row["auth"] == "oauth2" and row["grant_refreshed_at"] and row["last_check_at"] and row["last_download_at"]
    accounts = json.loads(run("account", "list", "--format", "json").stdout)[0]
    assert accounts["auth"] == "oauth2" and accounts["last_download_at"]
    # no refresh token, access token or client secret in the database, the logs or any output
    grant = FileTokenStore(token_file).load("office")
    secrets = [grant.refresh_token, grant.access_token, refresh, "client-secret-value-42"]
    raw_db = b"".join(stored_bytes(db))  # the database, its WAL and the full-text index
    outputs = "".join(r.output for r in (added, signed, listed, dl, healthy)) + caplog.text
    for secret in secrets:
        assert secret.encode() not in raw_db and secret not in outputs
    # a token file others can read is refused, in plain words
    os.chmod(token_file, 0o644)
    refused = run("check", "anna")
    assert refused.exit_code == 3 and "chmod 600" in refused.stderr
    os.chmod(token_file, 0o600)


def test_token_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    with pytest.raises(ValidationError):
        FileTokenStore(path).load("office")


def test_batch_notebook_with_an_oauth_account_shows_no_token(tmp_path, provider, dovecot_oauth, monkeypatch):
    papermill = pytest.importorskip("papermill")
    from pathlib import Path

    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    store = Store(tmp_path / "nb.duckdb")
    store.add_user("anna", "anna@tour.example")
    acc = oauth_account(store, dovecot_oauth, user, provider)
    token_file = tmp_path / "tokens.json"
    adopt_refresh_token(acc, FileTokenStore(token_file), provider.add_grant(user.name, CLIENT))
    monkeypatch.setenv("VMAILKIT_TOKEN_STORE", f"file:{token_file}")
    out = tmp_path / "batch.out.ipynb"
    papermill.execute_notebook(str(Path(__file__).resolve().parents[1] / "notebooks" / "batch_import.ipynb"), str(out),
                               parameters={"db_path": str(store.path), "user": "anna"}, cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False, log_output=False, execution_timeout=120)
    assert store.count_emails() == 1
    grant = FileTokenStore(token_file).load("office")
    text = out.read_text()
    assert grant.refresh_token not in text and grant.access_token not in text


def test_browser_sign_in_with_pkce_and_a_loopback_redirect(store, tokens, provider, dovecot_oauth):
    import threading
    import urllib.request

    from vmailkit.oauth.signin import sign_in_browser

    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    settings = make_oauth_settings(provider="generic", client_id=CLIENT, token_url=provider.token_url,
                                   auth_url=provider.auth_url, scope="mail offline_access")
    store.add_account(make_account("office", kind="general", protocol="imap", host=dovecot_oauth.host,
                                   port=dovecot_oauth.imaps_port, security="ssl", address=user.address,
                                   login=user.name, ca_file=str(dovecot_oauth.ca_file), oauth=settings))
    store.subscribe("anna", "office")
    provider.authorize_user = user.name
    opened: list[str] = []

    def browser(url: str) -> None:  # the person's browser: follows the provider's redirect to 127.0.0.1
        opened.append(url)
        threading.Thread(target=lambda: urllib.request.urlopen(url, timeout=10).read(), daemon=True).start()

    sign_in_browser(store.get_account("office"), tokens, open_browser=False, show=browser, timeout=20)
    assert opened and "code_challenge=" in opened[0] and "code_challenge_method=S256" in opened[0]
    assert "redirect_uri=http%3A%2F%2F127.0.0.1" in opened[0]
    assert check(store, "anna", tokens=tokens).statuses[0].ok


def test_accounts_panel_signs_in_with_a_device_code_shown_in_the_panel(tmp_path, provider, dovecot_oauth):
    import re

    pytest.importorskip("ipywidgets")
    from vmailkit.ui import AccountsPanel

    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, make_mail(1))
    store = Store(tmp_path / "ui.duckdb", lock_timeout=5)
    store.add_user("anna", "anna@tour.example")
    tokens = FileTokenStore(tmp_path / "tokens.json")
    panel = AccountsPanel(store, tokens=tokens)
    panel.new_button.click()
    panel.name.value, panel.host.value = "office", dovecot_oauth.host
    panel.address.value, panel.login.value = user.address, user.name
    panel.custom_port.value, panel.port.value = True, dovecot_oauth.imaps_port
    panel.ca_file.value = str(dovecot_oauth.ca_file)
    panel.secret_kind.value = "oauth2"
    assert panel.oauth_box.layout.display == "" and panel.password_row.layout.display == "none"
    panel.oauth_provider.value = "generic"
    assert panel.generic_rows.layout.display == "" and panel.tenant_row.layout.display == "none"
    panel.client_id.value, panel.token_url.value = CLIENT, provider.token_url
    panel.device_url.value, panel.scope.value = provider.device_url, "mail offline_access"
    panel.save_button.click()
    assert store.get_account("office").oauth.token_url == provider.token_url
    panel.signin_button.click()
    deadline = time.monotonic() + 20
    while "vmk-user-code" not in panel.signin_code.value and time.monotonic() < deadline:
        time.sleep(0.05)
    code = re.search(r'vmk-user-code">([^<]+)<', panel.signin_code.value).group(1)
    assert provider.device_url.split("/device")[0] in panel.signin_code.value
    provider.approve(code, user.name)
    assert panel.wait(30)
    assert "is signed in" in panel.signin_code.value and tokens.load("office") is not None
    assert "generic sign-in" in panel.accounts_table.value
    store.subscribe("anna", "office")
    assert check(store, "anna", tokens=tokens).statuses[0].ok
