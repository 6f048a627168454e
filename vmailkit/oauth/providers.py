"""Talking to the sign-in service: one client per provider, each through the provider's own library.

* Microsoft 365 (Entra ID): :mod:`msal` (refresh, device code, browser with PKCE on a loopback
  redirect); msal adds ``offline_access`` itself and refuses it in the scope list.
* Google: :mod:`google.oauth2.credentials` refreshes, :mod:`google_auth_oauthlib` signs in through
  the browser. Google does not allow the device flow for mail scopes.
* Any other standard authorization server: :mod:`authlib` (RFC 6749 refresh, RFC 8628 device code,
  authorization code with PKCE).

Every client returns a :class:`TokenResponse` and raises :class:`SignInExpired` (the grant is gone:
sign in again), :class:`SignInUnavailable` (the service did not answer: retry later) or
:class:`SignInError` (the service refused the application or the request). Messages never carry a
token or the client secret.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..accounts import Account, OAuthSettings
from ..errors import SignInError, SignInExpired, SignInUnavailable

#: Seconds to wait for the sign-in service.
HTTP_TIMEOUT = 30.0
#: Scopes msal adds itself and refuses when asked for.
_MSAL_RESERVED = {"offline_access", "openid", "profile"}
#: How errors of the token endpoint read (RFC 6749 section 5.2, RFC 8628 section 3.5).
_EXPIRED = {"invalid_grant", "expired_token", "access_denied", "interaction_required", "consent_required"}
_UNAVAILABLE = {"temporarily_unavailable", "server_error"}


@dataclass(frozen=True)
class TokenResponse:
    """What the token endpoint gave: an access token, its lifetime, and maybe a new refresh token."""

    access_token: str = field(repr=False)
    expires_in: float
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None


@dataclass
class DeviceCode:
    """A device sign-in under way: show ``verification_uri`` and ``user_code`` to the person."""

    verification_uri: str
    user_code: str
    expires_in: float
    interval: float
    message: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)


def expired(account: Account) -> SignInExpired:
    """The error for a grant that is gone (expired, revoked, never made)."""
    return SignInExpired(account.name, f"the sign-in for {account.name} has expired or was revoked: "
                                       f"run `vmailkit account signin {account.name}` (or Sign in in the accounts panel)")


def unavailable(account: Account, settings: OAuthSettings, what: str) -> SignInUnavailable:
    """The error for a sign-in service that did not answer."""
    return SignInUnavailable(account.name, f"the sign-in service of {account.name} ({settings.service}) {what}; "
                                           "nothing was changed: try again later")


def _from_error(account: Account, settings: OAuthSettings, code: str | None, status: int | None = None) -> SignInError:
    code = (code or "").strip()
    if code in _EXPIRED:
        return expired(account)
    if code in _UNAVAILABLE or (status is not None and status >= 500):
        return unavailable(account, settings, "is not working right now")
    if code in ("invalid_client", "unauthorized_client"):
        return SignInError(account.name, f"{settings.service} does not accept the application registered for "
                                         f"{account.name}: check its client id and client secret")
    if code == "invalid_scope":
        return SignInError(account.name, f"{settings.service} does not grant the access {account.name} asks for: "
                                         "check the account's scopes")
    return SignInError(account.name, f"{settings.service} refused the sign-in for {account.name}"
                                     f"{' (' + code.replace('_', ' ') + ')' if code else ''}")


class OAuthClient:
    """One provider's way to refresh a grant and to sign in."""

    def __init__(self, account: Account, settings: OAuthSettings, client_secret: str | None) -> None:
        self.account = account
        self.settings = settings
        self._secret = client_secret

    def refresh(self, refresh_token: str) -> TokenResponse:  # pragma: no cover - interface
        """A new access token for ``refresh_token`` (and the rotated refresh token, when the provider rotates)."""
        raise NotImplementedError

    def start_device(self) -> DeviceCode:  # pragma: no cover - interface
        """Begin a device-code sign-in (RFC 8628)."""
        raise NotImplementedError

    def finish_device(self, code: DeviceCode, cancel: threading.Event | None = None) -> TokenResponse:  # pragma: no cover
        """Wait until the person approved ``code`` (or it expired); the tokens."""
        raise NotImplementedError

    def browser(self, open_browser: bool = True, timeout: float = 300.0,
                show: Callable[[str], None] | None = None) -> TokenResponse:  # pragma: no cover
        """Sign in through the browser (authorization code with PKCE, redirect to 127.0.0.1).

        ``show(url)`` is told the address to open (when no browser is opened, or in addition).
        """
        raise NotImplementedError


# -- generic: authlib ---------------------------------------------------------------------------------
class GenericClient(OAuthClient):
    """A standard authorization server, through authlib's requests client."""

    def _session(self) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(self.settings.client_id, self._secret, scope=" ".join(self.settings.scopes),
                                token_endpoint_auth_method="client_secret_post" if self._secret else "none")

        def raise_5xx(response: Any, *args: Any, **kwargs: Any) -> None:
            if response.status_code >= 500:
                raise _ServerDown(response.status_code)

        session.hooks["response"].append(raise_5xx)
        return session

    def _call(self, func: Callable[[], dict[str, Any]]) -> TokenResponse | None:
        import requests
        from authlib.integrations.base_client.errors import OAuthError

        try:
            token = func()
        except _ServerDown as exc:
            raise unavailable(self.account, self.settings, f"answered with an error ({exc.status})") from None
        except OAuthError as exc:
            raise _from_error(self.account, self.settings, exc.error) from None
        except requests.Timeout:
            raise unavailable(self.account, self.settings, "did not answer in time") from None
        except requests.RequestException:
            raise unavailable(self.account, self.settings, "cannot be reached") from None
        except ValueError:
            raise unavailable(self.account, self.settings, "answered something that is not a token") from None
        if not token:
            return None  # still waiting (device code not entered yet)
        return _token(self.account, self.settings, token)

    def refresh(self, refresh_token: str) -> TokenResponse:
        session = self._session()
        return _required(self._call(lambda: session.refresh_token(self.settings.token_url, refresh_token=refresh_token,
                                                                  timeout=HTTP_TIMEOUT)), self.account, self.settings)

    def start_device(self) -> DeviceCode:
        import requests

        if not self.settings.device_url:
            raise SignInError(self.account.name, f"{self.account.name} has no device sign-in address (device_url): "
                                                 "sign in through the browser or adopt a refresh token")
        form = {"client_id": self.settings.client_id, "scope": " ".join(self.settings.scopes)}
        if self._secret:
            form["client_secret"] = self._secret
        try:
            response = requests.post(self.settings.device_url, data=form, timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            raise unavailable(self.account, self.settings, "cannot be reached") from None
        if response.status_code >= 500:
            raise unavailable(self.account, self.settings, f"answered with an error ({response.status_code})")
        try:
            data = response.json()
        except ValueError:
            raise unavailable(self.account, self.settings, "answered something unexpected") from None
        if response.status_code != 200 or "device_code" not in data:
            raise _from_error(self.account, self.settings, data.get("error"), response.status_code)
        uri = str(data.get("verification_uri") or data.get("verification_url") or "")
        return DeviceCode(verification_uri=uri, user_code=str(data["user_code"]),
                          expires_in=float(data.get("expires_in") or 600), interval=float(data.get("interval") or 5),
                          message=f"Open {uri} and enter the code {data['user_code']}", data=data)

    def finish_device(self, code: DeviceCode, cancel: threading.Event | None = None) -> TokenResponse:
        from authlib.integrations.base_client.errors import OAuthError

        session = self._session()
        deadline = time.monotonic() + code.expires_in
        interval = code.interval

        def poll() -> dict[str, Any]:
            nonlocal interval
            try:
                return session.fetch_token(  # type: ignore[no-any-return]
                    self.settings.token_url, grant_type="urn:ietf:params:oauth:grant-type:device_code",
                    device_code=code.data["device_code"], timeout=HTTP_TIMEOUT)
            except OAuthError as exc:
                if exc.error in ("authorization_pending", "slow_down"):
                    interval += 5 if exc.error == "slow_down" else 0
                    return {}
                raise

        while time.monotonic() < deadline:
            token = self._call(poll)
            if token is not None:
                return token
            if cancel is not None:
                if cancel.wait(interval):
                    raise SignInError(self.account.name, "the sign-in was cancelled")
            else:
                time.sleep(interval)
        raise SignInError(self.account.name, "the code was not entered in time: start the sign-in again")

    def browser(self, open_browser: bool = True, timeout: float = 300.0,
                show: Callable[[str], None] | None = None) -> TokenResponse:
        if not self.settings.auth_url:
            raise SignInError(self.account.name, f"{self.account.name} has no browser sign-in address (auth_url)")
        from authlib.common.security import generate_token

        from .loopback import wait_for_redirect

        verifier = generate_token(64)
        session = self._session()
        session.code_challenge_method = "S256"

        def authorize(redirect_uri: str) -> tuple[str, str]:
            session.redirect_uri = redirect_uri
            url, state = session.create_authorization_url(self.settings.auth_url, code_verifier=verifier)
            return url, state

        code, redirect_uri = wait_for_redirect(authorize, open_browser=open_browser, timeout=timeout,
                                               account=self.account.name, show=show)
        session.redirect_uri = redirect_uri
        return _required(self._call(lambda: session.fetch_token(self.settings.token_url, code=code,
                                                                code_verifier=verifier, timeout=HTTP_TIMEOUT)),
                         self.account, self.settings)


def _required(token: TokenResponse | None, account: Account, settings: OAuthSettings) -> TokenResponse:
    if token is None:
        raise SignInError(account.name, f"{settings.service} answered without an access token")
    return token


class _ServerDown(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _token(account: Account, settings: OAuthSettings, data: dict[str, Any]) -> TokenResponse:
    if "error" in data:
        raise _from_error(account, settings, str(data.get("error")))
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise SignInError(account.name, f"{settings.service} answered without an access token")
    refresh = data.get("refresh_token")
    return TokenResponse(access_token=access, expires_in=float(data.get("expires_in") or 3600),
                         refresh_token=refresh if isinstance(refresh, str) and refresh else None,
                         scope=data.get("scope") if isinstance(data.get("scope"), str) else None)


# -- Microsoft: msal -----------------------------------------------------------------------------------
class MicrosoftClient(OAuthClient):
    """Microsoft 365 through msal (public client, or confidential with a client secret)."""

    def _app(self) -> Any:
        import msal

        if self._secret:
            return msal.ConfidentialClientApplication(self.settings.client_id, client_credential=self._secret,
                                                      authority=self.settings.authority, timeout=HTTP_TIMEOUT)
        return msal.PublicClientApplication(self.settings.client_id, authority=self.settings.authority,
                                            timeout=HTTP_TIMEOUT)

    @property
    def scopes(self) -> list[str]:
        """The scopes handed to msal (without the ones msal adds itself)."""
        return [s for s in self.settings.scopes if s not in _MSAL_RESERVED]

    def _result(self, func: Callable[[], dict[str, Any] | None]) -> TokenResponse:
        import requests

        try:
            result = func()
        except requests.Timeout:
            raise unavailable(self.account, self.settings, "did not answer in time") from None
        except (requests.RequestException, OSError):
            raise unavailable(self.account, self.settings, "cannot be reached") from None
        except ValueError as exc:  # msal refuses its arguments
            raise SignInError(self.account.name, f"the sign-in settings of {self.account.name} are not accepted: {exc}") from None
        if not result:
            raise expired(self.account)
        return _token(self.account, self.settings, result)

    def refresh(self, refresh_token: str) -> TokenResponse:
        app = self._app()
        return self._result(lambda: app.acquire_token_by_refresh_token(refresh_token, scopes=self.scopes))

    def start_device(self) -> DeviceCode:
        app = self._app()
        flow = app.initiate_device_flow(scopes=self.scopes)
        if "user_code" not in flow:
            raise _from_error(self.account, self.settings, flow.get("error"))
        self._device_app = app
        return DeviceCode(verification_uri=str(flow.get("verification_uri", "")), user_code=str(flow["user_code"]),
                          expires_in=float(flow.get("expires_in") or 900), interval=float(flow.get("interval") or 5),
                          message=str(flow.get("message") or ""), data=flow)

    def finish_device(self, code: DeviceCode, cancel: threading.Event | None = None) -> TokenResponse:
        app = getattr(self, "_device_app", None) or self._app()
        exit_condition = (lambda flow: cancel.is_set()) if cancel is not None else (lambda flow: False)
        return self._result(lambda: app.acquire_token_by_device_flow(code.data, exit_condition=exit_condition))

    def browser(self, open_browser: bool = True, timeout: float = 300.0,
                show: Callable[[str], None] | None = None) -> TokenResponse:
        app = self._app()
        return self._result(lambda: app.acquire_token_interactive(self.scopes, timeout=int(timeout)))


# -- Google: google-auth ----------------------------------------------------------------------------------
class GoogleClient(OAuthClient):
    """Google Workspace and Gmail through google-auth (refresh) and google-auth-oauthlib (browser)."""

    def refresh(self, refresh_token: str) -> TokenResponse:
        import google.auth.exceptions
        import google.auth.transport.requests
        from google.oauth2.credentials import Credentials

        creds = Credentials(None, refresh_token=refresh_token, token_uri=self.settings.token_url,
                            client_id=self.settings.client_id, client_secret=self._secret,
                            scopes=list(self.settings.scopes))
        try:
            creds.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.RefreshError as exc:
            text = " ".join(str(a) for a in exc.args)
            if "invalid_grant" in text:
                raise expired(self.account) from None
            if "invalid_client" in text or "unauthorized_client" in text:
                raise _from_error(self.account, self.settings, "invalid_client") from None
            raise unavailable(self.account, self.settings, "refused to renew the sign-in now") from None
        except google.auth.exceptions.TransportError:
            raise unavailable(self.account, self.settings, "cannot be reached") from None
        expires_in = 3600.0
        if creds.expiry is not None:
            from datetime import datetime

            expires_in = max(0.0, (creds.expiry - datetime.utcnow()).total_seconds())
        return TokenResponse(access_token=str(creds.token), expires_in=expires_in,
                             refresh_token=creds.refresh_token if creds.refresh_token != refresh_token else None)

    def start_device(self) -> DeviceCode:
        raise SignInError(self.account.name, "Google does not allow the device sign-in for mail: "
                                             "sign in through the browser, or adopt a refresh token")

    def finish_device(self, code: DeviceCode, cancel: threading.Event | None = None) -> TokenResponse:
        raise self.start_device()  # type: ignore[misc]

    def browser(self, open_browser: bool = True, timeout: float = 300.0,
                show: Callable[[str], None] | None = None) -> TokenResponse:
        from google_auth_oauthlib.flow import InstalledAppFlow

        config = {"installed": {"client_id": self.settings.client_id, "client_secret": self._secret or "",
                                "auth_uri": self.settings.auth_url, "token_uri": self.settings.token_url,
                                "redirect_uris": ["http://127.0.0.1"]}}
        flow = InstalledAppFlow.from_client_config(config, scopes=list(self.settings.scopes))
        creds = flow.run_local_server(host="127.0.0.1", port=0, open_browser=open_browser,
                                      timeout_seconds=int(timeout))
        if creds is None or not creds.token:
            raise SignInError(self.account.name, "the browser sign-in did not finish")
        return TokenResponse(access_token=str(creds.token), expires_in=3600.0, refresh_token=creds.refresh_token)


def client_for(account: Account, client_secret: str | None) -> OAuthClient:
    """The client for the account's provider; raises :class:`SignInError` for an account without OAuth2."""
    settings = account.oauth
    if settings is None:
        raise SignInError(account.name, f"{account.name} signs in with a password, not OAuth2")
    cls = {"microsoft": MicrosoftClient, "google": GoogleClient}.get(settings.provider, GenericClient)
    return cls(account, settings, client_secret)
