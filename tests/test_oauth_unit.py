"""OAuth2 without a server: settings, what Microsoft's and Google's libraries are asked, token stores, refresh.

Microsoft and Google cannot be reached from these machines: their clients are checked by what msal
and google-auth are asked (fakes record the calls); the real flows run against the loopback
provider and Dovecot in test_oauth_dovecot.py.
"""
from __future__ import annotations

import os
import stat
import time

import pytest

from vmailkit.accounts import DEFAULT_SCOPES, make_account, make_oauth_settings
from vmailkit.errors import SignInError, SignInExpired, SignInUnavailable, ValidationError
from vmailkit.oauth import FileTokenStore, Grant, OAuthCredential, token_store
from vmailkit.oauth.providers import GoogleClient, MicrosoftClient, TokenResponse


def account(provider: str = "microsoft", **kw):
    settings = make_oauth_settings(provider=provider, client_id="app-123", **kw)
    return make_account("office", kind="general", protocol="imap", host="outlook.office365.com", security="ssl",
                        address="office@tour.example", oauth=settings)


# -- settings -------------------------------------------------------------------------------------------
def test_provider_defaults():
    ms = make_oauth_settings(provider="microsoft", client_id="app", tenant="contoso.onmicrosoft.com")
    assert ms.scopes == DEFAULT_SCOPES["microsoft"] and "offline_access" in ms.scopes
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in ms.scopes
    assert "https://outlook.office.com/SMTP.Send" in ms.scopes
    assert ms.authority == "https://login.microsoftonline.com/contoso.onmicrosoft.com"
    assert make_oauth_settings(provider="microsoft", client_id="app").authority.endswith("/organizations")
    g = make_oauth_settings(provider="google", client_id="app.apps.googleusercontent.com")
    assert g.scopes == ("https://mail.google.com/",) and g.token_url == "https://oauth2.googleapis.com/token"
    generic = make_oauth_settings(provider="generic", client_id="c", token_url="https://id.example/token", scope="mail x")
    assert generic.scopes == ("mail", "x")


@pytest.mark.parametrize("kwargs,field", [
    ({"provider": "yahoo", "client_id": "c"}, "oauth_provider"),
    ({"provider": "microsoft", "client_id": ""}, "client_id"),
    ({"provider": "microsoft", "client_id": "c", "client_secret": "s3cr3t-value"}, "client_secret"),
    ({"provider": "microsoft", "client_id": "c", "client_secret": "prompt:"}, "client_secret"),
    ({"provider": "google", "client_id": "c", "tenant": "x"}, "tenant"),
    ({"provider": "generic", "client_id": "c", "scope": "mail"}, "token_url"),
    ({"provider": "generic", "client_id": "c", "scope": "mail", "token_url": "http://id.example/token"}, "token_url"),
    ({"provider": "generic", "client_id": "c", "token_url": "https://id.example/token"}, "scope"),
])
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as info:
        make_oauth_settings(**kwargs)
    assert info.value.field == field and "s3cr3t-value" not in str(info.value)


# -- what msal and google-auth are asked ----------------------------------------------------------------------
class FakeMsalApp:
    calls: list[tuple] = []
    answer: dict = {}

    def __init__(self, client_id, client_credential=None, *, authority=None, timeout=None, **kw):
        FakeMsalApp.calls.append(("init", type(self).__name__, client_id, client_credential, authority))

    def acquire_token_by_refresh_token(self, refresh_token, scopes):
        FakeMsalApp.calls.append(("refresh", refresh_token, tuple(scopes)))
        return dict(FakeMsalApp.answer)

    def initiate_device_flow(self, scopes=None):
        FakeMsalApp.calls.append(("device", tuple(scopes)))
        return {"user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900,
                "interval": 5, "message": "go"}


class FakePublic(FakeMsalApp):
    pass


class FakeConfidential(FakeMsalApp):
    pass


@pytest.fixture
def fake_msal(monkeypatch):
    import msal

    FakeMsalApp.calls = []
    monkeypatch.setattr(msal, "PublicClientApplication", FakePublic)
    monkeypatch.setattr(msal, "ConfidentialClientApplication", FakeConfidential)
    return FakeMsalApp


def test_microsoft_refresh_asks_msal_for_the_mail_scopes(fake_msal):
    fake_msal.answer = {"access_token": "AT", "refresh_token": "RT2", "expires_in": 3599}
    acc = account("microsoft", tenant="contoso.com")
    got = MicrosoftClient(acc, acc.oauth, None).refresh("RT1")
    init, refresh = fake_msal.calls
    assert init == ("init", "FakePublic", "app-123", None, "https://login.microsoftonline.com/contoso.com")
    assert refresh == ("refresh", "RT1", ("https://outlook.office.com/IMAP.AccessAsUser.All",
                                          "https://outlook.office.com/POP.AccessAsUser.All",
                                          "https://outlook.office.com/SMTP.Send"))  # msal adds offline_access
    assert (got.access_token, got.refresh_token, got.expires_in) == ("AT", "RT2", 3599)
    MicrosoftClient(acc, acc.oauth, "the-secret").refresh("RT1")
    assert fake_msal.calls[2] == ("init", "FakeConfidential", "app-123", "the-secret",
                                  "https://login.microsoftonline.com/contoso.com")
    code = MicrosoftClient(acc, acc.oauth, None).start_device()
    assert code.user_code == "ABCD-EFGH" and code.verification_uri.startswith("https://microsoft.com")


@pytest.mark.parametrize("error,kind", [("invalid_grant", SignInExpired), ("interaction_required", SignInExpired),
                                        ("temporarily_unavailable", SignInUnavailable),
                                        ("invalid_client", SignInError)])
def test_microsoft_errors_in_plain_words(fake_msal, error, kind):
    fake_msal.answer = {"error": error, "error_description": "AADSTS700082: The refresh token has expired"}
    acc = account("microsoft")
    with pytest.raises(kind) as info:
        MicrosoftClient(acc, acc.oauth, None).refresh("RT1")
    assert "AADSTS" not in str(info.value) and "RT1" not in str(info.value)
    if kind is SignInExpired:
        assert "vmailkit account signin office" in str(info.value)


def test_google_refresh_asks_google_auth(monkeypatch):
    import google.oauth2.credentials

    seen = {}

    class FakeCredentials:
        def __init__(self, token, **kw):
            seen.update(kw)
            self.token, self.refresh_token, self.expiry = None, kw["refresh_token"], None

        def refresh(self, request):
            seen["refreshed"] = True
            self.token = "ya29.fresh"

    monkeypatch.setattr(google.oauth2.credentials, "Credentials", FakeCredentials)
    acc = account("google")
    got = GoogleClient(acc, acc.oauth, "gsecret").refresh("1//refresh")
    assert seen == {"refresh_token": "1//refresh", "token_uri": "https://oauth2.googleapis.com/token",
                    "client_id": "app-123", "client_secret": "gsecret", "scopes": ["https://mail.google.com/"],
                    "refreshed": True}
    assert got.access_token == "ya29.fresh" and got.refresh_token is None  # Google does not rotate
    with pytest.raises(SignInError) as info:
        GoogleClient(acc, acc.oauth, None).start_device()
    assert "browser" in str(info.value)


# -- token stores --------------------------------------------------------------------------------------------
def test_file_store_is_private_and_refuses_what_others_can_read(tmp_path):
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save("office", Grant(refresh_token="RT-secret", access_token="AT-secret", expires_at=time.time() + 60))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.load("office").refresh_token == "RT-secret"
    assert "RT-secret" not in repr(store.load("office")) and "AT-secret" not in repr(store.load("office"))
    os.chmod(path, 0o644)
    with pytest.raises(ValidationError) as info:
        store.load("office")
    assert "chmod 600" in str(info.value) and "RT-secret" not in str(info.value)
    os.chmod(path, 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(ValidationError):
        FileTokenStore(link).load("office")
    store.delete("office")
    assert store.load("office") is None


def test_token_store_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VMAILKIT_TOKEN_STORE", f"file:{tmp_path / 't.json'}")
    assert isinstance(token_store(), FileTokenStore)
    with pytest.raises(ValidationError):
        token_store("vault:x")


# -- refresh: before expiry, rotation saved at once, forced after a refusal --------------------------------------
class CountingClient:
    def __init__(self):
        self.calls: list[str] = []

    def refresh(self, refresh_token):
        self.calls.append(refresh_token)
        n = len(self.calls)
        return TokenResponse(access_token=f"AT{n}", expires_in=3600, refresh_token=f"RT{n + 1}")


def test_credential_refreshes_when_due_and_saves_the_rotated_token(tmp_path):
    store = FileTokenStore(tmp_path / "t.json")
    store.save("office", Grant(refresh_token="RT1", access_token="AT0", expires_at=time.time() + 3600))
    client = CountingClient()
    cred = OAuthCredential(account(), store, client=client)  # type: ignore[arg-type]
    assert cred.token() == "AT0" and client.calls == []            # still fresh: no refresh
    store.save("office", Grant(refresh_token="RT1", access_token="AT0", expires_at=time.time() + 30))
    assert cred.token() == "AT1" and client.calls == ["RT1"]       # about to expire: refreshed
    assert store.load("office").refresh_token == "RT2"              # the rotated token is kept
    assert cred.token(force=True) == "AT2" and client.calls == ["RT1", "RT2"]
    assert store.load("office").refresh_token == "RT3" and cred.refreshed_at is not None
    FileTokenStore(tmp_path / "t.json").delete("office")
    with pytest.raises(SignInExpired):
        cred.token()
