"""The accounts panel driven like a person would: set widget values, click buttons."""
from __future__ import annotations

import pytest

from helpers import port_for
from vmailkit import Store
from vmailkit.ui import AccountsPanel, PasswordBook


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "ui.duckdb", lock_timeout=5)
    s.add_user("anna", "anna@tour.example")
    s.add_user("ben", "ben@tour.example")
    return s


def fill(panel: AccountsPanel, name: str, *, host: str = "mail.tour.example", address: str = "office@tour.example",
         login: str = "", protocol: str = "imap") -> None:
    panel.new_button.click()
    panel.name.value = name
    panel.host.value = host
    panel.address.value = address
    panel.login.value = login
    panel.protocol.value = protocol


def test_toggles_fill_default_ports_and_exclude_each_other(store):
    p = AccountsPanel(store)
    assert (p.ssl.value, p.starttls.value, p.port.value, p.port.disabled) == (True, False, 993, True)
    p.starttls.value = True
    assert (p.ssl.value, p.port.value, p.security) == (False, 143, "starttls")
    p.protocol.value = "pop3"
    assert p.port.value == 110 and p.folder_row.layout.display == "none"
    p.ssl.value = True
    assert (p.starttls.value, p.port.value) == (False, 995)
    p.ssl.value = False
    assert (p.security, p.port.value) == ("plain", 110)
    p.custom_port.value = True
    assert not p.port.disabled
    p.port.value = 1110
    p.ssl.value = True            # a custom port is kept when the security changes
    assert p.port.value == 1110
    p.custom_port.value = False
    assert p.port.value == 995
    p.kind.value = "personal"
    assert p.owner_row.layout.display == ""
    p.secret_kind.value = "env"
    assert p.password_row.layout.display == "none" and p.secret_ref_row.layout.display == ""
    assert p.errors == []


def test_add_edit_delete_and_validation(store, tmp_path):
    passwords = PasswordBook()
    p = AccountsPanel(store, passwords=passwords)
    fill(p, "office")
    p.secret_kind.value = "env"
    p.secret_ref.value = "OFFICE_PW"
    p.save_button.click()
    assert p.errors == []
    a = store.get_account("office")
    assert (a.secret_ref, a.port, a.security, a.login) == ("env:OFFICE_PW", 993, "ssl", "office@tour.example")
    assert p.account_picker.value == "office" and "office" in p.accounts_table.value

    # personal account with a typed password: kept in memory, never stored
    fill(p, "anna-mail", address="anna@tour.example", protocol="pop3")
    p.kind.value = "personal"
    p.owner.value = "anna"
    p.starttls.value = True
    p.custom_port.value = True
    p.port.value = 1110
    p.password.value = "typed-Secret-123"
    p.save_button.click()
    assert p.errors == []
    b = store.get_account("anna-mail")
    assert (b.kind, b.owner, b.protocol, b.security, b.port, b.secret_ref) == ("personal", "anna", "pop3", "starttls", 1110, "prompt:")
    assert p.password.value == "" and passwords["anna-mail"] == "typed-Secret-123"
    assert "typed-Secret-123" not in repr(passwords)

    # edit: load, change, save updates the same account
    p.account_picker.value = "office"
    assert (p.name.value, p.secret_kind.value, p.secret_ref.value, p.host.value) == ("office", "env", "OFFICE_PW", "mail.tour.example")
    p.host.value = "imap.tour.example"
    p.save_button.click()
    assert store.get_account("office").host == "imap.tour.example" and len(store.list_accounts()) == 2

    # a bad value is shown in the panel, not raised
    fill(p, "broken", address="not-an-address")
    p.save_button.click()
    assert p.errors and "address" in p.errors[-1] and "error" in p.message.value
    fill(p, "also broken")
    p.secret_kind.value = "env"
    p.save_button.click()
    assert "secret" in p.errors[-1]
    assert {a.name for a in store.list_accounts()} == {"office", "anna-mail"}

    # delete asks first
    p.account_picker.value = "office"
    p.delete_button.click()
    assert p.confirm_box.layout.display == "" and store.get_account("office")
    p.cancel_delete.click()
    assert p.confirm_box.layout.display == "none"
    p.delete_button.click()
    p.confirm_delete.click()
    assert [a.name for a in store.list_accounts()] == ["anna-mail"] and p.account_picker.value == "__new__"
    p.account_picker.value = "anna-mail"
    p.delete_button.click()
    p.confirm_delete.click()
    assert "anna-mail" not in passwords
    assert b"typed-Secret-123" not in (tmp_path / "ui.duckdb").read_bytes()


def test_users_and_subscriptions(store):
    p = AccountsPanel(store, user="anna")
    p.new_user_name.value = "carla"
    p.new_user_email.value = "carla@tour.example"
    p.add_user_button.click()
    assert "carla" in list(store.users()["name"]) and p.new_user_name.value == ""
    p.new_user_name.value = "carla"
    p.add_user_button.click()
    assert "already exists" in p.errors[-1]
    p.clear_errors()

    fill(p, "office")
    p.save_button.click()
    for owner in ("anna", "ben"):
        fill(p, f"{owner}-mail", address=f"{owner}@tour.example")
        p.kind.value = "personal"
        p.owner.value = owner
        p.save_button.click()
    assert p.errors == []

    p.sub_user.value = "anna"
    assert [b.description.split()[0] for b in p.general_box.children] == ["office"]
    assert [b.description.split()[0] for b in p.own_box.children] == ["anna-mail"]
    p.other_user.value = "ben"
    assert [b.description.split()[0] for b in p.other_box.children] == ["ben-mail"]
    p.sub_toggles["office"].value = True
    p.sub_toggles["anna-mail"].value = True
    p.sub_toggles["ben-mail"].value = True
    assert [a.name for a in store.subscribed_accounts("anna")] == ["office", "anna-mail", "ben-mail"]
    p.sub_toggles["ben-mail"].value = False
    assert [a.name for a in store.subscribed_accounts("anna")] == ["office", "anna-mail"]
    p.sub_user.value = "ben"
    assert not p.sub_toggles["office"].value and [b.description.split()[0] for b in p.own_box.children] == ["ben-mail"]
    p.other_user.value = "anna"
    assert [b.description.split()[0] for b in p.other_box.children] == ["anna-mail"]
    assert p.errors == []


@pytest.mark.dovecot
def test_test_connection_against_dovecot(store, dovecot, mailuser, tmp_path, monkeypatch):
    passwords = PasswordBook()
    p = AccountsPanel(store, passwords=passwords)
    fill(p, "office", host=dovecot.host, address=mailuser.address, login=mailuser.name)
    p.ca_file.value = str(dovecot.ca_file)
    p.custom_port.value = True
    p.port.value = port_for(dovecot, "imap", "ssl")

    p.password.value = "wrong-Password-9"
    p.test_button.click()
    assert p.wait(30)
    assert p.last_test[0] is False and "(auth)" in p.test_result.value and "app password" in p.test_result.value
    assert "wrong-Password-9" not in p.test_result.value and p.password.value == ""

    p.password.value = mailuser.password
    p.test_button.click()
    assert p.wait(30)
    assert p.last_test[0] is True and "OK: office" in p.test_result.value, p.test_result.value
    assert p.password.value == "" and passwords["office"] == mailuser.password
    p.save_button.click()
    assert store.get_account("office").secret_ref == "prompt:"

    # STARTTLS on the plain port
    p.starttls.value = True
    p.port.value = port_for(dovecot, "imap", "starttls")
    p.test_button.click()
    assert p.wait(30) and p.last_test[0] is True

    # an environment reference is saved, its value never
    monkeypatch.setenv("VMK_UI_TEST_PW", mailuser.password)
    fill(p, "pop", host=dovecot.host, address=mailuser.address, login=mailuser.name, protocol="pop3")
    p.ca_file.value = str(dovecot.ca_file)
    p.custom_port.value = True
    p.port.value = port_for(dovecot, "pop3", "ssl")
    p.secret_kind.value = "env"
    p.secret_ref.value = "VMK_UI_TEST_PW"
    p.test_button.click()
    assert p.wait(30) and p.last_test[0] is True, p.test_result.value
    p.save_button.click()
    assert store.get_account("pop").secret_ref == "env:VMK_UI_TEST_PW"

    # nothing answers on this port: the plain-words reason
    fill(p, "nowhere", host="127.0.0.1", address="x@example.test")
    p.custom_port.value = True
    p.port.value = 9
    p.password.value = "x"
    p.test_button.click()
    assert p.wait(30) and p.last_test[0] is False and "(host)" in p.test_result.value
    assert p.errors == []
    assert mailuser.password.encode() not in (tmp_path / "ui.duckdb").read_bytes()
