"""Proves the OAuth2 test tools: ``oauth_provider.OAuthProvider``, Dovecot's XOAUTH2/OAUTHBEARER
(``DovecotServer(oauth2=...)``) and ``SmtpServer(oauth_verify=...)``.

Only stdlib clients (urllib, imaplib, poplib, smtplib) and PyJWT are used, never vmailkit: these
tests pin down what the tools do, so that the product's OAuth2 tests (issue 10) can rely on them.
"""
from __future__ import annotations

import base64
import imaplib
import json
import poplib
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dovecot import DovecotServer, jwt_key_file_name
from oauth_provider import (
    DEVICE_CODE_GRANT,
    OAuthProvider,
    oauthbearer_string,
    pkce_pair,
    xoauth2_string,
)
from smtpserver import SmtpServer

CLIENT = "vmailkit-harness"


# ---------------------------------------------------------------- helpers
def post(url: str, form: dict[str, str], *, basic: tuple[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """POST a form with urllib; returns (status, headers, JSON body or None)."""
    req = urllib.request.Request(url, data=urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    if basic:
        cred = f"{quote(basic[0], safe='')}:{quote(basic[1], safe='')}".encode()
        req.add_header("Authorization", "Basic " + base64.b64encode(cred).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, headers, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers), e.read()
    return status, headers, json.loads(raw) if raw else None


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def refresh(provider: OAuthProvider, rt: str, client: str = CLIENT, **extra: str) -> tuple[int, dict[str, str], Any]:
    return post(provider.token_url, {"grant_type": "refresh_token", "refresh_token": rt, "client_id": client, **extra})


def access_token_for(provider: OAuthProvider, user: str) -> str:
    """An access token obtained the way the product will: a grant plus a refresh_token request."""
    status, _, body = refresh(provider, provider.add_grant(user, CLIENT))
    assert status == 200, body
    return body["access_token"]


def imap_authenticate(srv: DovecotServer, mech: str, response: str, retry: str = "") -> tuple[str, str, list[bytes]]:
    """IMAPS AUTHENTICATE; answers a second (failure) challenge with ``retry``.

    Returns ("OK"|"NO", text, the challenges Dovecot sent, decoded).
    """
    ctx = ssl.create_default_context(cafile=srv.ca_file)
    c = imaplib.IMAP4_SSL(srv.host, srv.imaps_port, ssl_context=ctx, timeout=10)
    challenges: list[bytes] = []

    def answer(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return response.encode() if len(challenges) == 1 else retry.encode()

    try:
        typ, data = c.authenticate(mech, answer)
        text = data[0].decode()
        if typ == "OK":
            typ2, _ = c.select("INBOX", readonly=True)
            assert typ2 == "OK"
        return typ, text, challenges
    except imaplib.IMAP4.error as e:
        return "NO", str(e), challenges
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def log_lines(srv: DovecotServer, needle: str, timeout: float = 3.0) -> list[str]:
    """Lines of the Dovecot log containing ``needle`` (waits a little: the log process writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in srv.log_file.read_text(errors="replace").splitlines() if needle in ln]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# ------------------------------------------------------------- provider
def test_refresh_grant_returns_rs256_jwt(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    rt = p.add_grant("alice", CLIENT)
    n = p.token_requests
    status, headers, body = refresh(p, rt)
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["expires_in"] == p.access_lifetime
    assert body["refresh_token"] not in (None, rt)
    assert "mail" in body["scope"].split()
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": p.kid}
    claims = jwt.decode(token, p.public_key_pem, algorithms=["RS256"], audience=p.audience, issuer=p.issuer)
    assert claims["email"] == "alice" and claims["sub"] == p.subject("alice")
    assert "mail" in claims["scope"].split() and "azp" not in claims
    assert claims["exp"] - claims["iat"] == p.access_lifetime
    assert p.verify_access_token(token, "alice")["jti"] == claims["jti"]
    # the log keeps what the client sent, secrets included
    assert p.token_requests == n + 1
    assert p.requests[-1]["form"]["refresh_token"] == rt and p.requests[-1]["status"] == 200
    # the JWKS and the discovery document describe the same key and endpoints
    status, _, raw = get(p.jwks_url)
    key = jwt.PyJWK(json.loads(raw)["keys"][0])
    assert key.key_id == p.kid
    jwt.decode(token, key.key, algorithms=["RS256"], audience=p.audience)
    status, _, raw = get(p.issuer + "/tenant-x/v2.0/.well-known/openid-configuration")  # MSAL's path
    meta = json.loads(raw)
    assert status == 200 and meta["token_endpoint"] == p.token_url and meta["issuer"] == p.issuer
    assert meta["device_authorization_endpoint"] == p.device_url and meta["revocation_endpoint"] == p.revoke_url


def test_access_lifetime_is_configurable(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    old = p.access_lifetime
    p.access_lifetime = 2
    try:
        status, _, body = refresh(p, p.add_grant("alice", CLIENT))
    finally:
        p.access_lifetime = old
    assert status == 200 and body["expires_in"] == 2
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 2


def test_rotation_and_replay_revokes_the_grant(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    rt0 = p.add_grant("alice", CLIENT)
    _, _, b1 = refresh(p, rt0)
    rt1 = b1["refresh_token"]
    _, _, b2 = refresh(p, rt1)
    rt2 = b2["refresh_token"]
    assert len({rt0, rt1, rt2}) == 3 and p.grant_for(rt0).refreshes == 2
    # replaying a rotated-away token: invalid_grant, and the whole grant is revoked
    status, _, body = refresh(p, rt1)
    assert status == 400 and body["error"] == "invalid_grant"
    status, _, body = refresh(p, rt2)
    assert status == 400 and body["error"] == "invalid_grant" and "revoked" in body["error_description"]
    assert p.grant_for(rt2).revoked
    # the grant's access tokens fail the online check (SmtpServer), not Dovecot's offline one
    assert not p.check_token("alice", b2["access_token"])
    # unknown token, missing token, wrong client
    assert refresh(p, "rt.nonsense")[2]["error"] == "invalid_grant"
    assert post(p.token_url, {"grant_type": "refresh_token", "client_id": CLIENT})[2]["error"] == "invalid_request"
    assert refresh(p, p.add_grant("alice", CLIENT), client="someone-else")[2]["error"] == "invalid_grant"
    status, _, body = post(p.token_url, {"grant_type": "password", "client_id": CLIENT})
    assert (status, body["error"]) == (400, "unsupported_grant_type")


def test_without_rotation_the_refresh_token_stays(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    p.rotate_refresh_tokens = False
    try:
        rt = p.add_grant("alice", CLIENT)
        for _ in range(2):  # Google-like: no refresh_token in the answer, the old one keeps working
            status, _, body = refresh(p, rt)
            assert status == 200 and "refresh_token" not in body
    finally:
        p.rotate_refresh_tokens = True


def test_fault_switch_and_delay(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    rt = p.add_grant("alice", CLIENT)
    n = p.token_requests
    p.fail_with = 503
    try:
        for _ in range(2):
            status, _, body = refresh(p, rt)
            assert status == 503 and body["error"] == "temporarily_unavailable"
        status, _, body = post(p.device_url, {"client_id": CLIENT})
        assert status == 503
    finally:
        p.fail_with = None
    assert p.token_requests == n + 2
    status, _, body = refresh(p, rt)  # the failed requests did not consume the token
    assert status == 200
    rt = body["refresh_token"]
    p.fail_with, p.fail_times = 500, 1  # just once
    assert refresh(p, rt)[0] == 500
    status, _, body = refresh(p, rt)
    assert status == 200 and p.fail_with is None
    p.delay = 0.3
    try:
        t0 = time.monotonic()
        assert refresh(p, body["refresh_token"])[0] == 200
        assert time.monotonic() - t0 >= 0.3
    finally:
        p.delay = 0.0


def test_device_flow(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    status, _, dev = post(p.device_url, {"client_id": CLIENT, "scope": "mail offline_access"})
    assert status == 200
    assert set(dev) >= {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
    assert dev["verification_uri"] == p.device_url and dev["interval"] == p.device_interval
    assert dev["user_code"] in p.pending_user_codes
    poll = {"grant_type": DEVICE_CODE_GRANT, "device_code": dev["device_code"], "client_id": CLIENT}
    status, _, body = post(p.token_url, poll)
    assert (status, body["error"]) == (400, "authorization_pending")
    p.approve(dev["user_code"], "bob")
    status, _, body = post(p.token_url, poll)
    assert status == 200, body
    assert p.verify_access_token(body["access_token"], "bob")
    assert refresh(p, body["refresh_token"])[0] == 200  # a normal grant from now on
    assert post(p.token_url, poll)[2]["error"] == "invalid_grant"  # device code used up
    # denied, expired, slow_down
    _, _, dev2 = post(p.device_url, {"client_id": CLIENT})
    p.deny(dev2["user_code"])
    poll2 = {**poll, "device_code": dev2["device_code"]}
    assert post(p.token_url, poll2)[2]["error"] == "access_denied"
    p.device_code_lifetime, p.enforce_device_interval = 0, True
    try:
        _, _, dev3 = post(p.device_url, {"client_id": CLIENT})
        time.sleep(0.01)
        assert post(p.token_url, {**poll, "device_code": dev3["device_code"]})[2]["error"] == "expired_token"
        p.device_code_lifetime = 600
        _, _, dev4 = post(p.device_url, {"client_id": CLIENT})
        poll4 = {**poll, "device_code": dev4["device_code"]}
        assert post(p.token_url, poll4)[2]["error"] == "authorization_pending"
        assert post(p.token_url, poll4)[2]["error"] == "slow_down"  # polled again within `interval`
    finally:
        p.device_code_lifetime, p.enforce_device_interval = 600, False


def test_client_secret_required_when_registered(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    rt = p.add_grant("carol", "confidential-app", client_secret="s3cret/+")
    form = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": "confidential-app"}
    status, headers, body = post(p.token_url, form)
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert post(p.token_url, {**form, "client_secret": "wrong"})[:1] == (401,)
    assert p.grant_for(rt).refresh_token == rt  # failed client auth consumed nothing
    status, _, body = post(p.token_url, {**form, "client_secret": "s3cret/+"})
    assert status == 200
    # HTTP Basic (RFC 6749 2.3.1: form-urlencoded id and secret)
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    status, _, body2 = post(p.token_url, form, basic=("confidential-app", "s3cret/+"))
    assert status == 200
    assert post(p.token_url, form, basic=("confidential-app", "nope"))[0] == 401
    # both methods at once, no client at all
    status, _, body3 = post(p.token_url, {**form, "client_secret": "s3cret/+"}, basic=("confidential-app", "s3cret/+"))
    assert (status, body3["error"]) == (400, "invalid_request")
    status, _, body3 = post(p.token_url, {"grant_type": "refresh_token", "refresh_token": body2["refresh_token"]})
    assert (status, body3["error"]) == (401, "invalid_client")


def test_revocation(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    rt = p.add_grant("dave", CLIENT)
    _, _, body = refresh(p, rt)
    token, rt = body["access_token"], body["refresh_token"]
    assert p.check_token("dave", token)
    status, _, resp = post(p.revoke_url, {"token": rt, "token_type_hint": "refresh_token", "client_id": CLIENT})
    assert status == 200 and resp is None
    assert refresh(p, rt)[2]["error"] == "invalid_grant"
    assert not p.check_token("dave", token)
    assert post(p.revoke_url, {"token": "unknown", "client_id": CLIENT})[0] == 200  # RFC 7009 2.2
    assert post(p.revoke_url, {"client_id": CLIENT})[2]["error"] == "invalid_request"
    # an access token alone
    _, _, body = refresh(p, p.add_grant("dave", CLIENT))
    assert post(p.revoke_url, {"token": body["access_token"], "client_id": CLIENT})[0] == 200
    assert not p.check_token("dave", body["access_token"])
    assert refresh(p, body["refresh_token"])[0] == 200  # the grant lives on
    # provider.revoke(user): every grant of the user
    rt_a, rt_b = p.add_grant("erin", CLIENT), p.add_grant("erin", "other-app")
    assert p.revoke("erin") == 2
    assert refresh(p, rt_a)[2]["error"] == "invalid_grant"
    assert refresh(p, rt_b, client="other-app")[2]["error"] == "invalid_grant"


def test_authorization_code_with_pkce(oauth_provider: OAuthProvider) -> None:
    p = oauth_provider
    verifier, challenge = pkce_pair()
    redirect = "http://127.0.0.1:9/callback"
    q = {"response_type": "code", "client_id": CLIENT, "redirect_uri": redirect, "state": "xyz",
         "scope": "mail offline_access openid", "code_challenge": challenge, "code_challenge_method": "S256",
         "login_hint": "frank"}
    status, headers, _ = get(p.auth_url + "?" + urlencode(q))
    assert status == 302
    loc = urlsplit(headers["Location"])
    params = {k: v[0] for k, v in parse_qs(loc.query).items()}
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == redirect
    assert params["state"] == "xyz" and params["iss"] == p.issuer
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect, "client_id": CLIENT}
    assert post(p.token_url, {**form, "code_verifier": pkce_pair()[0]})[2]["error"] == "invalid_grant"
    assert post(p.token_url, form)[2]["error"] == "invalid_grant"  # verifier missing
    status, _, body = post(p.token_url, {**form, "code_verifier": verifier})
    assert status == 200, body
    assert p.verify_access_token(body["access_token"], "frank")
    assert jwt.decode(body["id_token"], options={"verify_signature": False})["aud"] == CLIENT
    # replaying the code fails and revokes what it produced
    assert post(p.token_url, {**form, "code_verifier": verifier})[2]["error"] == "invalid_grant"
    assert refresh(p, body["refresh_token"])[2]["error"] == "invalid_grant"
    # without PKCE, or without a user to sign in as
    status, headers, _ = get(p.auth_url + "?" + urlencode({k: v for k, v in q.items() if k != "code_challenge"}))
    assert "error=invalid_request" in headers["Location"]
    status, headers, _ = get(p.auth_url + "?" + urlencode({k: v for k, v in q.items() if k != "login_hint"}))
    assert "error=access_denied" in headers["Location"]


def test_https_mode(tmp_path) -> None:
    with OAuthProvider(tls_dir=tmp_path) as p:
        assert p.issuer.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=p.ca_file)
        rt = p.add_grant("alice", CLIENT)
        req = urllib.request.Request(p.token_url, data=urlencode(
            {"grant_type": "refresh_token", "refresh_token": rt, "client_id": CLIENT}).encode())
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            body = json.loads(r.read())
        assert p.verify_access_token(body["access_token"], "alice")


# --------------------------------------------------------------- Dovecot
@pytest.mark.dovecot
def test_dovecot_oauth_config(dovecot_oauth: DovecotServer, oauth_provider: OAuthProvider) -> None:
    conf = dovecot_oauth.conf_file.read_text()
    assert "auth_mechanisms = plain login xoauth2 oauthbearer" in conf
    assert "mechanisms = plain login\n" in conf and "driver = oauth2" in conf
    key = dovecot_oauth.oauth2_key_dir / "default" / "RS256" / jwt_key_file_name(oauth_provider.kid)
    assert key.read_text() == oauth_provider.public_key_pem
    assert jwt_key_file_name("a/b%c") == "a%2fb%25c"


@pytest.mark.dovecot
def test_imap_xoauth2_and_oauthbearer(dovecot_oauth: DovecotServer, oauth_provider: OAuthProvider) -> None:
    user = dovecot_oauth.new_user()
    dovecot_oauth.deliver(user.name, b"Subject: via oauth\r\n\r\nhello\r\n")
    token = access_token_for(oauth_provider, user.name)
    typ, text, challenges = imap_authenticate(dovecot_oauth, "XOAUTH2", xoauth2_string(user.name, token))
    assert (typ, challenges) == ("OK", [b""]), text
    typ, text, _ = imap_authenticate(dovecot_oauth, "OAUTHBEARER", oauthbearer_string(user.name, token))
    assert typ == "OK", text
    typ, text, _ = imap_authenticate(
        dovecot_oauth, "OAUTHBEARER",
        oauthbearer_string(user.name, token, host=dovecot_oauth.host, port=dovecot_oauth.imaps_port))
    assert typ == "OK", text


@pytest.mark.dovecot
def test_imap_refuses_bad_tokens(dovecot_oauth: DovecotServer, oauth_provider: OAuthProvider) -> None:
    """Every refusal is checked against the reason Dovecot logs, run in parallel (each costs ~0.5 s)."""
    p, srv = oauth_provider, dovecot_oauth
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    victim = srv.new_user()
    cases: dict[str, tuple[str, str, str, str]] = {}  # name -> (user, mech, response, expected log text)

    def case(name: str, mech: str, make: Any, reason: str) -> None:
        u = srv.new_user()
        cases[name] = (u.name, mech, make(u), reason)

    case("expired", "XOAUTH2", lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, lifetime=-60)),
         "Token has expired")
    case("other key", "XOAUTH2",
         lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, signing_key=other_key)), "signature")
    case("other user", "XOAUTH2", lambda u: xoauth2_string(u.name, access_token_for(p, victim.name)),
         "did not match")
    case("password as token", "XOAUTH2", lambda u: xoauth2_string(u.name, u.password), "Not a JWT token")
    case("no mail scope", "XOAUTH2", lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, scope="calendar")),
         "scope 'mail'")
    case("other issuer", "XOAUTH2",
         lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, issuer="http://127.0.0.1:1")), "Issuer")
    case("typ at+jwt", "XOAUTH2",
         lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, headers={"typ": "at+jwt"})), "'typ'")
    case("unknown kid", "XOAUTH2",
         lambda u: xoauth2_string(u.name, p.mint_access_token(u.name, kid="vmk-unknown")), "not found")
    case("oauthbearer other user", "OAUTHBEARER",
         lambda u: oauthbearer_string(u.name, access_token_for(p, victim.name)), "did not match")
    case("oauthbearer without a=", "OAUTHBEARER",
         lambda u: oauthbearer_string(None, p.mint_access_token(u.name)), "Missing username or token")

    def run(item: tuple[str, tuple[str, str, str, str]]) -> tuple[str, tuple[str, str, list[bytes]]]:
        name, (_, mech, response, _) = item
        return name, imap_authenticate(srv, mech, response)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(pool.map(run, cases.items()))
    for name, (typ, text, challenges) in results.items():
        user, mech, _, reason = cases[name]
        assert typ == "NO" and "AUTHENTICATIONFAILED" in text, (name, text)
        if name == "oauthbearer without a=":
            assert challenges == [b""], name  # malformed SASL data: no failure challenge
            assert log_lines(srv, reason), name
            continue
        # a refused token: one more challenge with the RFC 7628 error JSON, then NO
        assert len(challenges) == 2, (name, challenges)
        err = json.loads(challenges[1])
        if mech == "XOAUTH2":
            assert (err["status"], err["schemes"], err["scope"]) == ("401", "bearer", "mail"), name
        else:
            assert err["status"] == "invalid_token", name
        assert err["openid-configuration"] == p.openid_configuration_url
        assert any(reason in ln for ln in log_lines(srv, f"oauth2({user},")), (name, log_lines(srv, user))
    # passwords still work on the same server, and the tokens' owner can log in
    c = srv.imap(victim.name)
    c.logout()
    assert imap_authenticate(srv, "XOAUTH2", xoauth2_string(victim.name, access_token_for(p, victim.name)))[0] == "OK"


@pytest.mark.dovecot
def test_pop3_xoauth2(dovecot_oauth: DovecotServer, oauth_provider: OAuthProvider) -> None:
    srv = dovecot_oauth
    user = srv.new_user()
    srv.deliver(user.name, b"Subject: pop\r\n\r\nhello\r\n")
    token = access_token_for(oauth_provider, user.name)
    ctx = ssl.create_default_context(cafile=srv.ca_file)

    def session() -> poplib.POP3_SSL:
        return poplib.POP3_SSL(srv.host, srv.pop3s_port, context=ctx, timeout=10)

    c = session()
    assert "XOAUTH2" in c.capa()["SASL"] and "OAUTHBEARER" in c.capa()["SASL"]
    # initial response on the AUTH line (RFC 5034)
    c._putcmd("AUTH XOAUTH2 " + b64(xoauth2_string(user.name, token)))
    assert c._getline()[0].startswith(b"+OK")
    assert c.stat()[0] == 1
    c.quit()
    # AUTH XOAUTH2, then "+ ", then the response
    c = session()
    c._putcmd("AUTH XOAUTH2")
    assert c._getline()[0] == b"+ "
    c._putcmd(b64(xoauth2_string(user.name, token)))
    assert c._getline()[0].startswith(b"+OK")
    c.quit()
    # refused: "+ <base64 JSON>", the client sends an empty line, then -ERR
    c = session()
    c._putcmd("AUTH XOAUTH2 " + b64(xoauth2_string(user.name, oauth_provider.mint_access_token(user.name, lifetime=-5))))
    line = c._getline()[0]
    assert line.startswith(b"+ ")
    assert json.loads(base64.b64decode(line[2:]))["status"] == "401"
    c._putcmd("")
    assert re.match(rb"-ERR \[AUTH\] Authentication failed", c._getline()[0])
    c.close()


# ------------------------------------------------------------------ SMTP
def test_smtp_xoauth2(smtp_oauth: SmtpServer, oauth_provider: OAuthProvider) -> None:
    srv, p = smtp_oauth, oauth_provider
    ctx = ssl.create_default_context(cafile=srv.ca_file)
    rt = p.add_grant("grace@example.test", CLIENT)
    _, _, body = refresh(p, rt)
    token = body["access_token"]

    def connect() -> smtplib.SMTP:
        s = smtplib.SMTP(srv.host, srv.port, timeout=10)
        s.starttls(context=ctx)
        s.ehlo()
        assert "XOAUTH2" in s.esmtp_features["auth"].split()
        return s

    def auth(user: str, tok: str) -> Any:
        return lambda challenge=None: xoauth2_string(user, tok) if challenge is None else ""

    s = connect()
    assert s.auth("XOAUTH2", auth("grace@example.test", token))[0] == 235
    s.sendmail("grace@example.test", ["bob@example.test"], b"Subject: oauth smtp\r\n\r\nhi\r\n")
    s.quit()
    assert srv.messages[-1].login == "grace@example.test"
    assert srv.oauth_logins[-1] == "grace@example.test"
    bad = {
        "other user": ("mallory@example.test", token),
        "expired": ("grace@example.test", p.mint_access_token("grace@example.test", lifetime=-5)),
        "garbage": ("grace@example.test", "not-a-token"),
    }
    for name, (user, tok) in bad.items():
        s = connect()
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            s.auth("XOAUTH2", auth(user, tok))
        assert exc.value.smtp_code == 535 and b"5.7.8" in exc.value.smtp_error, name
        s.close()
    assert srv.failed_logins[-3:] == ["mallory@example.test", "grace@example.test", "grace@example.test"]
    # revocation is seen by the online check
    post(p.revoke_url, {"token": body["refresh_token"], "client_id": CLIENT})
    s = connect()
    with pytest.raises(smtplib.SMTPAuthenticationError):
        s.auth("XOAUTH2", auth("grace@example.test", token))
    s.close()
