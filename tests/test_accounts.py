"""Accounts, users, subscriptions and secret references (no server needed)."""
from __future__ import annotations

import pytest

from vmailkit import Store, ValidationError, make_account
from vmailkit.errors import NotFoundError, SecretError
from vmailkit.secrets import check_reference, resolve_secret


def imap(name: str = "office", **kw):
    args = dict(kind="general", protocol="imap", host="mail.example.com", security="ssl",
                address="office@example.com", secret="env:OFFICE_PW")
    args.update(kw)
    return make_account(name, **args)


@pytest.mark.parametrize(
    "protocol,security,port",
    [("imap", "ssl", 993), ("imap", "starttls", 143), ("imap", "plain", 143),
     ("pop3", "ssl", 995), ("pop3", "starttls", 110), ("pop3", "plain", 110)],
)
def test_default_ports(protocol: str, security: str, port: int) -> None:
    assert imap(protocol=protocol, security=security).port == port


def test_explicit_port_and_login_default() -> None:
    acc = imap(port=1993)
    assert acc.port == 1993
    assert acc.login == "office@example.com"
    assert imap(login="office").login == "office"
    assert acc.folder == "INBOX"


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(host=""), "host"),
        (dict(host="   "), "host"),
        (dict(port=0), "port"),
        (dict(port=70000), "port"),
        (dict(port="abc"), "port"),
        (dict(protocol="smtp"), "protocol"),
        (dict(security="tls13"), "security"),
        (dict(kind="personal"), "owner"),
        (dict(kind="general", owner="anna"), "owner"),
        (dict(kind="shared"), "kind"),
        (dict(address="nobody"), "address"),
        (dict(protocol="pop3", folder="Sent"), "folder"),
        (dict(ca_file="/does/not/exist.pem"), "ca_file"),
        (dict(ca_file=__file__), "ca_file"),          # exists, but is not a certificate
        (dict(host="mail example.com"), "host"),
        (dict(host="mail.example.com\nx"), "host"),
        (dict(login="off\nice"), "login"),
        (dict(address="office@example.com\r\nBcc: x@y.z"), "address"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        imap(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("name", ["off\nice", "off\tice", "off\x00ice", "off\u200bice"])
def test_account_name_with_control_character_refused(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        imap(name)
    assert info.value.field == "name" and "control or invisible character" in str(info.value)
    assert "\n" not in str(info.value)     # one line: the name is shown escaped


def test_secret_must_be_a_reference() -> None:
    assert check_reference("env:X") == "env:X"
    assert check_reference("") == "prompt:"
    with pytest.raises(ValidationError) as info:
        check_reference("hunter2")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError):
        check_reference("keyring:nosep")


def test_resolve_env_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMK_TEST_PW", "s3cret")
    assert resolve_secret("office", "env:VMK_TEST_PW") == "s3cret"
    assert resolve_secret("office", "prompt:", {"office": "typed"}) == "typed"
    monkeypatch.delenv("VMK_TEST_PW")
    with pytest.raises(SecretError) as info:
        resolve_secret("office", "env:VMK_TEST_PW")
    assert "office" in str(info.value) and "env:VMK_TEST_PW" in str(info.value)
    with pytest.raises(SecretError, match="office"):
        resolve_secret("office", "prompt:")


def test_resolve_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring

    calls = []

    def fake_get(service: str, name: str):
        calls.append((service, name))
        return "from-keyring" if name == "info@example.com" else None

    monkeypatch.setattr(keyring, "get_password", fake_get)
    assert resolve_secret("office", "keyring:vmailkit/info@example.com") == "from-keyring"
    assert calls == [("vmailkit", "info@example.com")]
    with pytest.raises(SecretError, match="keyring:vmailkit/other"):
        resolve_secret("office", "keyring:vmailkit/other")


def test_store_accounts_users_subscriptions(tmp_path) -> None:
    store = Store(tmp_path / "v.duckdb")
    store.add_user("anna", "anna@example.com")
    store.add_user("ben")
    with pytest.raises(ValidationError, match="name"):
        store.add_user("anna")
    store.add_account(imap())
    personal = make_account("anna-mail", kind="personal", owner="anna", protocol="pop3", host="pop.example.com",
                            security="starttls", address="anna@example.com", secret="keyring:vmailkit/anna")
    store.add_account(personal)
    with pytest.raises(ValidationError) as info:
        store.add_account(imap())
    assert info.value.field == "name"
    with pytest.raises(ValidationError, match="owner"):
        store.add_account(make_account("x", kind="personal", owner="nobody", protocol="imap", host="h",
                                       security="ssl", address="x@y.z", secret="env:X"))
    got = store.get_account("anna-mail")
    assert (got.owner, got.port, got.login, got.secret_ref) == ("anna", 110, "anna@example.com", "keyring:vmailkit/anna")
    # ben subscribes to the general account and to anna's personal account
    store.subscribe("ben", "office")
    store.subscribe("ben", "anna-mail")
    store.subscribe("ben", "office")  # idempotent
    assert [a.name for a in store.subscribed_accounts("ben")] == ["office", "anna-mail"]
    store.unsubscribe("ben", "anna-mail")
    assert [a.name for a in store.subscribed_accounts("ben")] == ["office"]
    with pytest.raises(NotFoundError):
        store.subscribe("carl", "office")
    assert store.db.applied_migrations()[0] == "0001_core"


def test_password_never_stored(tmp_path) -> None:
    store = Store(tmp_path / "v.duckdb")
    with pytest.raises(ValidationError):
        store.add_account(imap(secret="PlainPassword!"))
    store.add_account(imap(secret="env:OFFICE_PW"))
    data = (tmp_path / "v.duckdb").read_bytes()
    assert b"PlainPassword!" not in data
