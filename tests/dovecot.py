"""A private, throw-away Dovecot IMAP/POP3 server for the real-server tests.

``DovecotServer(base_dir)`` writes its own ``dovecot.conf`` (no ``!include`` of
/etc/dovecot), passwd-files, a self-signed CA + server certificate and one
Maildir per user below ``base_dir`` and runs ``dovecot -c <conf>`` listening
on free high ports of 127.0.0.1 only::

    with DovecotServer(tmp_path) as srv:
        user = srv.new_user()
        srv.deliver(user.name, b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
        ctx = ssl.create_default_context(cafile=srv.ca_file)
        imap = imaplib.IMAP4_SSL(srv.host, srv.imaps_port, ssl_context=ctx)

Layout below ``base_dir``::

    dovecot.conf  dovecot.log  dovecot.start.out
    passwd.d/<user>  one passwd-file per user (``{PLAIN}`` passwords)
    run/          Dovecot base_dir (sockets, master.pid)
    state/        Dovecot state_dir
    ssl/          ca.crt (``ca_file``), server.crt, server.key
    mail/<user>/Maildir   per-user Maildir++ (``maildir(user)``)

Running as root (CI): Dovecot refuses to run mail processes as uid 0, so
mail is owned by ``nobody``/``nogroup`` (65534).  pytest's temp directories
are mode 0700, which ``nobody`` cannot traverse, so the mail processes chroot
into ``base_dir/mail`` (passwd-file home ``<base>/mail/./<user>``; chroot()
happens while still root, then privileges are dropped).  The auth process
runs as root so that it can read the passwd-file inside the private tree.

Running as a normal user: every Dovecot service and the mail run as the
current uid, chroots are switched off.

Timing (Dovecot 2.3.19): start ~0.05-0.1s; stop ~0.25s (the master would
sleep a fixed 1s for its log process; ``stop()`` cuts that short); a failed
login answers after ~0.5s (auth flushes failures on a 500 ms timer even with
``auth_failure_delay = 0``).

Needs the Debian packages ``dovecot-imapd`` and ``dovecot-pop3d`` (they pull
in ``dovecot-core``) and the ``openssl`` command line tool.

OAuth2 (opt-in): ``DovecotServer(base, oauth2=OAuth2Settings.from_provider(p))``
(or ``srv.enable_oauth2(p)`` before ``start()``) adds the SASL mechanisms
XOAUTH2 and OAUTHBEARER, validated *locally* by Dovecot's ``passdb oauth2``
against the provider's RS256 public key -- Dovecot never talks to the
provider.  Generated configuration (Dovecot 2.3.19)::

    auth_mechanisms = plain login xoauth2 oauthbearer
    passdb { driver = passwd-file  mechanisms = plain login  args = ... }
    passdb { driver = oauth2  mechanisms = xoauth2 oauthbearer  args = <base>/dovecot-oauth2.conf.ext }

    # dovecot-oauth2.conf.ext
    introspection_mode = local
    local_validation_key_dict = fs:posix:prefix=<base>/oauth2-keys/
    issuers = <issuer>
    username_attribute = email
    username_format = %Lu
    scope = mail
    openid_configuration_url = <issuer>/.well-known/openid-configuration

``mechanisms = plain login`` on the password passdb matters: without it a
password sent as the XOAUTH2 bearer token would log in.  The key file is
``oauth2-keys/<azp>/<alg>/<kid>`` holding the PEM public key, ``<azp>`` being
``default`` unless the token has an ``azp`` claim; Dovecot escapes only ``/``
and ``%`` in the kid (``%2f``, ``%25``), no base64url.  What Dovecot 2.3.19 checks
(src/lib-oauth2/oauth2-jwt.c, src/auth/db-oauth2.c): header ``typ`` must be
``JWT``; ``sub`` and ``exp`` must be present, ``exp`` not past, ``nbf``/``iat``
not in the future; ``iss`` among ``issuers``; the signature; then the
``email`` claim, formatted with ``username_format`` (``%Lu``), must equal the
login name (else "user unknown"), and ``mail`` must be one of the
space-separated ``scope`` claim (falling back to ``aud``; Debian's
2.3.19.1+dfsg1-2.1+deb12u7 carries the CVE-2026-40205 fix, which logs
"configured scope 'mail' missing from token scope '...'").  ``aud`` itself
is not checked.  A public key is cached per kid for the life of the auth
process: use a fresh kid per key (``OAuthProvider`` does).  Pass
``auth_verbose=True`` to have the log say why a token was refused
("oauth2 failed: Local validation failed: Token has expired", "Bad
signature", "Username 'a' did not match 'b'", "Not a JWT token", ...).
Each refused login answers after ~0.5 s, like a wrong password.

On a refused token Dovecot does not answer NO/-ERR at once: it sends a
continuation carrying base64 JSON -- ``{"status":"401","schemes":"bearer",
"scope":"mail","openid-configuration":"<url>"}`` for XOAUTH2,
``{"status":"invalid_token","openid-configuration":"<url>"}`` for
OAUTHBEARER -- and waits for one more client line (empty for XOAUTH2, ``^A``
for OAUTHBEARER by RFC 7628; Dovecot accepts any), then fails the
authentication (``NO [AUTHENTICATIONFAILED]`` / ``-ERR [AUTH]``).  Malformed
SASL data (no ``auth=Bearer``, OAUTHBEARER without ``a=user``) fails at once
without the challenge.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from certs import make_certs

__all__ = [
    "DovecotError",
    "DovecotServer",
    "MailUser",
    "OAuth2Settings",
    "find_dovecot",
    "imap_utf7_encode",
    "jwt_key_file_name",
]

#: Environment variable overriding where the ``dovecot`` binary is.  If it is
#: set, *only* that path is considered (so ``VMAILKIT_DOVECOT=/nonexistent``
#: simulates a machine without Dovecot).
DOVECOT_ENV = "VMAILKIT_DOVECOT"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}$")
_MAX_UNIX_SOCKET_PATH = 100  # sun_path is 108 bytes; keep a margin
_counter = itertools.count(1)


class DovecotError(RuntimeError):
    """Dovecot could not be started/stopped; the message has the log tail."""


@dataclass(frozen=True)
class MailUser:
    name: str  # login name (also the passwd-file user name)
    password: str
    address: str  # e-mail address, ``name@example.test``


@dataclass(frozen=True)
class OAuth2Settings:
    """What Dovecot needs to validate an OAuth2 provider's JWT access tokens locally.

    ``issuer`` must equal the tokens' ``iss`` claim; ``public_key_pem`` is the
    PEM public key (SubjectPublicKeyInfo) for ``kid``/``alg``; ``scope`` is the
    scope a token must carry; ``username_attribute``/``username_format`` map
    the token to the login name; ``openid_configuration_url`` is echoed in
    Dovecot's failure challenge (RFC 7628 section 3.2.2); ``extra`` are
    further ``key = value`` lines for the oauth2 passdb file (e.g.
    ``(("debug", "yes"),)``).
    """

    issuer: str
    public_key_pem: str
    kid: str
    alg: str = "RS256"
    scope: str = "mail"
    username_attribute: str = "email"
    username_format: str = "%Lu"
    openid_configuration_url: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_provider(cls, provider: object, **overrides: object) -> "OAuth2Settings":
        """Settings for a started ``tests/oauth_provider.OAuthProvider`` (duck-typed)."""
        kw: dict[str, object] = {
            "issuer": provider.issuer,  # type: ignore[attr-defined]
            "public_key_pem": provider.public_key_pem,  # type: ignore[attr-defined]
            "kid": provider.kid,  # type: ignore[attr-defined]
            "openid_configuration_url": getattr(provider, "openid_configuration_url", None),
        }
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]


def jwt_key_file_name(kid: str) -> str:
    """The file name Dovecot 2.3 looks up for a JWT ``kid``: ``/`` -> ``%2f``, ``%`` -> ``%25``."""
    if not kid or kid.startswith("."):
        raise ValueError(f"unsupported kid {kid!r}")
    return kid.replace("%", "%25").replace("/", "%2f")


def find_dovecot() -> str | None:
    """Path of the ``dovecot`` binary or None.

    ``$VMAILKIT_DOVECOT`` wins if set (even if it points nowhere); otherwise
    ``PATH`` and then ``/usr/sbin/dovecot`` / ``/usr/local/sbin/dovecot``.
    """
    override = os.environ.get(DOVECOT_ENV)
    if override:
        p = Path(override)
        return str(p) if p.is_file() and os.access(p, os.X_OK) else None
    found = shutil.which("dovecot")
    if found:
        return found
    for cand in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(cand, os.X_OK):
            return cand
    return None


def imap_utf7_encode(name: str) -> str:
    """Modified UTF-7 (RFC 3501 5.1.3) for IMAP mailbox names."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            b = base64.b64encode("".join(buf).encode("utf-16-be")).decode("ascii")
            out.append("&" + b.rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def _free_ports(n: int) -> list[int]:
    """Reserve ``n`` distinct free TCP ports on 127.0.0.1 (bind 0, close)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie.

    The daemonised master is not our child, and PID 1 in a container does not
    always reap, so a killed master may linger as a zombie: treat it as dead.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _descendants(pid: int) -> list[int]:
    """All descendant pids of ``pid`` (via /proc; empty if unavailable)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for e in entries:
        if not e.isdigit():
            continue
        try:
            stat = Path(f"/proc/{e}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class DovecotServer:
    """A private Dovecot on 127.0.0.1 (see the module docstring).

    Attributes: ``host``, ``imap_port``, ``pop3_port`` (plain, STARTTLS/STLS
    offered when ``tls``), ``imaps_port``, ``pop3s_port`` (None if not
    ``tls``), ``ca_file`` (None if not ``tls``), ``pid`` (master pid while
    running), ``log_file``, ``conf_file``, ``mail_uid``, ``mail_gid``,
    ``startup_seconds``; with OAuth2: ``oauth2`` (the ``OAuth2Settings``),
    ``oauth2_conf_file``, ``oauth2_key_dir``.

    Keyword arguments: ``tls``, ``dovecot_bin``, ``start_timeout``, ``debug``,
    ``oauth2`` (``OAuth2Settings``: XOAUTH2/OAUTHBEARER on), ``auth_verbose``
    (log why logins fail, without the rest of ``debug``).
    """

    host = "127.0.0.1"
    domain = "example.test"

    def __init__(
        self,
        base_dir: Path | str,
        *,
        tls: bool = True,
        dovecot_bin: str | None = None,
        start_timeout: float = 20.0,
        debug: bool = False,
        oauth2: OAuth2Settings | None = None,
        auth_verbose: bool = False,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.tls = tls
        self.debug = debug
        # auth_verbose = yes without the rest of debug: the log then says why
        # a login failed (e.g. "oauth2 failed: Local validation failed: Token has expired")
        self.auth_verbose = auth_verbose
        self.start_timeout = start_timeout
        self.dovecot_bin = dovecot_bin or find_dovecot()
        if not self.dovecot_bin:
            raise DovecotError("dovecot binary not found (install dovecot-imapd dovecot-pop3d)")

        self.conf_file = self.base_dir / "dovecot.conf"
        self.passwd_dir = self.base_dir / "passwd.d"
        self.log_file = self.base_dir / "dovecot.log"
        self.state_dir = self.base_dir / "state"
        self.mail_root = self.base_dir / "mail"
        self.ssl_dir = self.base_dir / "ssl"
        self.run_dir = self.base_dir / "run"
        self._own_run_dir = False
        if len(str(self.run_dir)) + 26 > _MAX_UNIX_SOCKET_PATH:
            # unix socket paths (e.g. run/replication-notify-fifo) are limited
            # to 108 bytes: use a short directory instead
            self.run_dir = Path(tempfile.mkdtemp(prefix="vmk-dovecot-"))
            self._own_run_dir = True
        self.pid_file = self.run_dir / "master.pid"

        self.is_root = os.geteuid() == 0
        if self.is_root:
            nobody = pwd.getpwnam("nobody")
            self.mail_uid = nobody.pw_uid
            self.mail_gid = _nogroup_gid(nobody.pw_gid)
        else:
            self.mail_uid = os.geteuid()
            self.mail_gid = os.getegid()

        self.ca_file: Path | None = (self.ssl_dir / "ca.crt") if tls else None
        self.server_cert: Path | None = (self.ssl_dir / "server.crt") if tls else None
        self.server_key: Path | None = (self.ssl_dir / "server.key") if tls else None

        self.imap_port: int | None = None
        self.pop3_port: int | None = None
        self.imaps_port: int | None = None
        self.pop3s_port: int | None = None
        self.pid: int | None = None
        self.startup_seconds: float | None = None
        self._users: dict[str, str] = {}
        self._instance = f"vmk{os.getpid()}x{next(_counter)}"
        self.oauth2: OAuth2Settings | None = oauth2
        self.oauth2_conf_file = self.base_dir / "dovecot-oauth2.conf.ext"
        self.oauth2_key_dir = self.base_dir / "oauth2-keys"

    # ----------------------------------------------------------------- oauth2
    def enable_oauth2(self, settings: OAuth2Settings | object) -> OAuth2Settings:
        """Turn on XOAUTH2/OAUTHBEARER before ``start()``.

        ``settings`` is an ``OAuth2Settings`` or a started ``OAuthProvider``.
        """
        if self.running:
            raise DovecotError("enable_oauth2() must be called before start()")
        if not isinstance(settings, OAuth2Settings):
            settings = OAuth2Settings.from_provider(settings)
        self.oauth2 = settings
        return settings

    def add_oauth2_key(self, kid: str, public_key_pem: str, alg: str = "RS256", azp: str = "default") -> Path:
        """Install another validation key (works while running: unknown kids are looked up on demand).

        A kid the auth process has already loaded keeps its old key until
        ``restart()``.  ``azp`` is the directory Dovecot uses for tokens with
        that ``azp`` claim (``default`` for tokens without one).
        """
        d = self.oauth2_key_dir / jwt_key_file_name(azp) / alg.upper()
        d.mkdir(parents=True, exist_ok=True)
        path = d / jwt_key_file_name(kid)
        tmp = d / f".{path.name}.tmp"
        tmp.write_text(public_key_pem if public_key_pem.endswith("\n") else public_key_pem + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    def _write_oauth2_files(self) -> None:
        o = self.oauth2
        assert o is not None
        for value in (o.issuer, o.scope, o.username_attribute, o.username_format, o.openid_configuration_url or ""):
            if any(c in value for c in "\r\n\"#"):
                raise DovecotError(f"OAuth2 setting {value!r} contains characters unsafe for Dovecot")
        self.oauth2_key_dir.mkdir(parents=True, exist_ok=True)
        self.add_oauth2_key(o.kid, o.public_key_pem, o.alg)
        lines = [
            "# generated by vmailkit tests/dovecot.py -- passdb oauth2, local JWT validation",
            "introspection_mode = local",
            f"local_validation_key_dict = fs:posix:prefix={_quote(self.oauth2_key_dir)}/",
            f"issuers = {o.issuer}",
            f"username_attribute = {o.username_attribute}",
            f"username_format = {o.username_format}",
            f"scope = {o.scope}",
        ]
        if o.openid_configuration_url:
            lines.append(f"openid_configuration_url = {o.openid_configuration_url}")
        lines += [f"{k} = {v}" for k, v in o.extra]
        self.oauth2_conf_file.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, password: str) -> MailUser:
        """Add (or re-password) a user; works before and after ``start()``.

        Each user has a one-line passwd-file ``passwd.d/<name>`` (the
        passdb/userdb path is ``passwd.d/%u``).  Dovecot's passwd-file driver
        re-stat()s a cached file at most once per second, so with a single
        shared file a user added right after a login stayed invisible for up
        to a second; a new per-user file is never cached, so new users are
        visible immediately.  Changing an existing user's password while the
        server runs sleeps ~1s for the cache to expire.
        """
        if not _NAME_RE.match(name):
            raise ValueError(f"unsupported user name {name!r}")
        if not password or any(c in password for c in ":\r\n\0"):
            raise ValueError("password must be non-empty without ':' / newlines")
        changed = self._users.get(name) not in (None, password)
        self._users[name] = password
        home = self.mail_root / name
        home.mkdir(parents=True, exist_ok=True)
        self._chown(home)
        self._write_passwd(name)
        if changed and self.running:
            time.sleep(1.1)
        return MailUser(name, password, f"{name}@{self.domain}")

    def new_user(self, prefix: str = "u") -> MailUser:
        """Create a fresh user with a unique name and random password."""
        name = f"{prefix}{next(_counter)}x{uuid.uuid4().hex[:6]}"
        return self.add_user(name, "pw-" + uuid.uuid4().hex[:12])

    def password(self, user: str) -> str:
        return self._users[user]

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    def _home_field(self, name: str) -> str:
        # "/./" marks the chroot: the mail process chroot()s into mail_root
        # while still root, then switches to mail_uid.
        if self.is_root:
            return f"{self.mail_root}/./{name}"
        return f"{self.mail_root}/{name}"

    def _write_passwd(self, name: str) -> None:
        self.passwd_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.passwd_dir, 0o700)
        line = (
            f"{name}:{{PLAIN}}{self._users[name]}:{self.mail_uid}:{self.mail_gid}"
            f"::{self._home_field(name)}::\n"
        )
        path = self.passwd_dir / name
        old = None
        with contextlib.suppress(FileNotFoundError):
            old = path.stat()
        tmp = self.passwd_dir / f".{name}.tmp"
        tmp.write_text(line)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        if old is not None:
            new = path.stat()
            if int(new.st_mtime) == int(old.st_mtime) and new.st_size == old.st_size:
                # same second and size (password change): make the change visible
                os.utime(path, (old.st_atime, int(old.st_mtime) + 1))

    # -------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def start(self) -> "DovecotServer":
        if self.running:
            return self
        t0 = time.monotonic()
        for d in (self.base_dir, self.state_dir, self.mail_root, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.mail_root, 0o755)
        if self.tls and not self.ca_file.exists():
            self._make_certs()
        self.passwd_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.passwd_dir, 0o700)
        fixed_ports = self.imap_port is not None  # restart(): keep ports
        last_err: DovecotError | None = None
        for _attempt in range(1 if fixed_ports else 3):
            if not fixed_ports:
                self._pick_ports()
            try:
                self._launch()
                self._wait_ready(t0 + self.start_timeout)
                self.startup_seconds = time.monotonic() - t0
                atexit.register(self.stop)
                return self
            except DovecotError as exc:
                last_err = exc
                self._kill()
                if "Address already in use" not in str(exc):
                    break
        assert last_err is not None
        raise last_err

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master, wait, SIGKILL fallback.  Idempotent."""
        if self.pid is None:
            return
        self._kill(timeout)
        atexit.unregister(self.stop)
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same ports (mail and users are kept)."""
        self.stop()
        self.start()

    def __enter__(self) -> "DovecotServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<DovecotServer {self.host} imap={self.imap_port} imaps={self.imaps_port} "
            f"pop3={self.pop3_port} pop3s={self.pop3s_port} pid={self.pid} base={self.base_dir}>"
        )

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for f in (self.base_dir / "dovecot.start.out", self.log_file):
            with contextlib.suppress(OSError):
                text = f.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    parts.append(f"--- {f.name}\n" + "\n".join(text))
        return "\n".join(parts) or "(no log output)"

    def _pick_ports(self) -> None:
        ports = _free_ports(4 if self.tls else 2)
        self.imap_port, self.pop3_port = ports[0], ports[1]
        if self.tls:
            self.imaps_port, self.pop3s_port = ports[2], ports[3]

    def _launch(self) -> None:
        if self.oauth2 is not None:
            self._write_oauth2_files()
        self.conf_file.write_text(self._config())
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        out = self.base_dir / "dovecot.start.out"
        # stdout/stderr go to a file, not a pipe: the daemon would keep a
        # pipe open and make communicate() hang.
        with open(out, "wb") as fh:
            try:
                rc = subprocess.run(
                    [self.dovecot_bin, "-c", str(self.conf_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    timeout=self.start_timeout,
                    start_new_session=True,
                ).returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0:
            raise DovecotError(f"`dovecot -c {self.conf_file}` exited with {rc}\n{self.log_tail()}")

    def _wait_ready(self, deadline: float) -> None:
        while True:
            # the master writes its pid file in two steps: an empty file can be seen in between
            with contextlib.suppress(OSError, ValueError, IndexError):
                self.pid = int(self.pid_file.read_text().split()[0])
                break
            if time.monotonic() > deadline:
                raise DovecotError(f"no {self.pid_file} after start\n{self.log_tail()}")
            time.sleep(0.02)
        # plain ports: wait for the greeting (login process up); TLS ports:
        # wait for accept.
        checks = [(self.imap_port, b"* OK", b"a LOGOUT\r\n"), (self.pop3_port, b"+OK", b"QUIT\r\n")]
        checks += [(p, None, None) for p in (self.imaps_port, self.pop3s_port) if p]
        for port, greeting, bye in checks:
            while True:
                if not _pid_alive(self.pid):
                    raise DovecotError(f"dovecot (pid {self.pid}) died during start\n{self.log_tail()}")
                try:
                    with socket.create_connection((self.host, port), timeout=1.0) as s:
                        if greeting is None:
                            break
                        if s.recv(64).startswith(greeting):
                            s.sendall(bye)
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise DovecotError(
                        f"port {port} not ready after {self.start_timeout}s\n{self.log_tail()}"
                    )
                time.sleep(0.02)

    def _kill(self, timeout: float = 10.0) -> None:
        pid, self.pid = self.pid, None
        if pid is None:  # failed start: the pid file is from our launch
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(self.pid_file.read_text().split()[0])
        if pid is None or not _pid_alive(pid):
            return
        kids = [k for k in _descendants(pid) if self._is_ours(k)]
        log_kids = [k for k in kids if self._is_ours(k, "log")]
        others = [k for k in kids if k not in log_kids]
        # SIGTERM the master *and* the processes serving clients: logged-in
        # imap/pop3 processes and login processes with pending clients do not
        # notice the master's exit (shutdown_clients notwithstanding) and
        # would outlive it, holding connections open.
        client_procs = [
            k for k in others
            if any(self._is_ours(k, svc) for svc in ("imap", "pop3", "imap-login", "pop3-login"))
        ]
        for p in [pid, *client_procs]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        quiet_since = None
        while _pid_alive(pid) and time.monotonic() < deadline:
            if not any(_pid_alive(k) for k in others):
                # Only the log process is left: the master now just sleeps a
                # fixed second for it to drain.  Give it 0.2s instead.
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.2:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)
        leftovers = [p for p in [pid, *kids] if _pid_alive(p)]
        for p in leftovers:  # fallback: only our master and its children
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_pid_alive(p) for p in leftovers) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _is_ours(self, pid: int, service: str | None = None) -> bool:
        """Is ``pid`` a process of this instance (title ``dovecot-<instance>/<service>``)?"""
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            return False
        prefix = f"dovecot-{self._instance}/"
        if not title.startswith(prefix):
            return False
        return service is None or title[len(prefix):].split(" ")[0] == service

    # ------------------------------------------------------------ config/tls
    def _config(self) -> str:
        q = _quote
        b = []
        a = b.append
        a("# generated by vmailkit tests/dovecot.py -- private test instance")
        a(f"instance_name = {self._instance}")
        a(f"base_dir = {q(self.run_dir)}")
        a(f"state_dir = {q(self.state_dir)}")
        a(f"log_path = {q(self.log_file)}")
        a(f"info_log_path = {q(self.log_file)}")
        a(f"debug_log_path = {q(self.log_file)}")
        a("protocols = imap pop3")
        a(f"listen = {self.host}")
        a("shutdown_clients = yes")
        a("disable_plaintext_auth = no")
        a("auth_mechanisms = plain login" + (" xoauth2 oauthbearer" if self.oauth2 else ""))
        # fast wrong-password tests: no failure delay (2.3 still answers on a
        # 500 ms timer), and no anvil "auth penalty" (grows by ~4.5s per
        # failure from one IP, login_trusted_networks or not); mode = 0 on
        # its socket (below) disables it.
        a("auth_failure_delay = 0")
        a("auth_cache_size = 0")
        a(f"auth_verbose = {'yes' if self.debug or self.auth_verbose else 'no'}")
        a(f"auth_debug = {'yes' if self.debug else 'no'}")
        a(f"mail_debug = {'yes' if self.debug else 'no'}")
        a(f"verbose_ssl = {'yes' if self.debug else 'no'}")
        a("login_trusted_networks = 127.0.0.0/8")
        a("mail_location = maildir:~/Maildir")
        a("mail_fsync = never")
        a("mail_max_userip_connections = 200")
        a("pop3_uidl_format = %08Xu%08Xv")
        a("first_valid_uid = 1")
        a("first_valid_gid = 1")
        if self.tls:
            a("ssl = yes")
            a(f"ssl_cert = <{self.server_cert}")
            a(f"ssl_key = <{self.server_key}")
            a("ssl_min_protocol = TLSv1.2")
        else:
            a("ssl = no")
        if self.oauth2 is None:
            a(f"passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u\n}}")
        else:
            # the password passdb must not see XOAUTH2/OAUTHBEARER "passwords"
            # (the bearer token), or a password sent as token would log in
            a(
                "passdb {\n  driver = passwd-file\n  mechanisms = plain login\n"
                f"  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u\n}}"
            )
            a(
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {_quote(self.oauth2_conf_file)}\n}}"
            )
        a(f"userdb {{\n  driver = passwd-file\n  args = username_format=%u {self.passwd_dir}/%u\n}}")
        a(
            "namespace inbox {\n  inbox = yes\n  separator = /\n"
            "  mailbox Drafts {\n    special_use = \\Drafts\n  }\n"
            "  mailbox Junk {\n    special_use = \\Junk\n  }\n"
            "  mailbox Sent {\n    special_use = \\Sent\n  }\n"
            "  mailbox Trash {\n    special_use = \\Trash\n  }\n}"
        )
        login_extra = anvil_extra = ""
        if self.is_root:
            a(f"valid_chroot_dirs = {self.mail_root}")
            a(f"default_internal_user = {_existing_user('dovecot')}")
            a(f"default_internal_group = {_existing_group('dovecot')}")
            a(f"default_login_user = {_existing_user('dovenull')}")
            # the passwd-file lives in a 0700 pytest dir: auth must be root
            a("service auth {\n  user = root\n}")
        else:
            me = pwd.getpwuid(os.geteuid()).pw_name
            mygroup = grp.getgrgid(os.getegid()).gr_name
            a(f"default_internal_user = {me}")
            a(f"default_internal_group = {mygroup}")
            a(f"default_login_user = {me}")
            anvil_extra = "  chroot =\n"
            a("service auth-worker {\n  user = $default_internal_user\n}")
            login_extra = "  chroot =\n"
        a("service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n" + anvil_extra + "}")
        for svc, plain, tlsname, pport, tport in (
            ("imap", "imap", "imaps", self.imap_port, self.imaps_port),
            ("pop3", "pop3", "pop3s", self.pop3_port, self.pop3s_port),
        ):
            a(
                f"service {svc}-login {{\n"
                f"  inet_listener {plain} {{\n    address = {self.host}\n    port = {pport}\n  }}\n"
                f"  inet_listener {tlsname} {{\n    address = {self.host}\n    port = {tport or 0}\n"
                f"    ssl = {'yes' if tport else 'no'}\n  }}\n"
                "  service_count = 0\n  process_min_avail = 1\n"
                f"{login_extra}}}"
            )
        return "\n".join(b) + "\n"

    def _make_certs(self) -> None:
        """Self-signed CA + server cert (SAN IP:127.0.0.1, DNS:localhost), see ``tests/certs.py``."""
        try:
            make_certs(self.ssl_dir)
        except RuntimeError as exc:
            raise DovecotError(str(exc)) from None

    # ---------------------------------------------------------------- mail
    def maildir(self, user: str) -> Path:
        """The user's Maildir (INBOX) on disk."""
        if user not in self._users:
            raise KeyError(f"unknown user {user!r}")
        return self.mail_root / user / "Maildir"

    def folder_dir(self, user: str, folder: str = "INBOX") -> Path:
        """On-disk Maildir++ directory of ``folder`` ('/'-separated name)."""
        root = self.maildir(user)
        if folder.upper() == "INBOX":
            return root
        if "." in folder or folder.startswith("/") or folder.endswith("/") or "//" in folder:
            raise ValueError(f"folder name {folder!r} not supported by this Maildir++ helper")
        return root / ("." + imap_utf7_encode(folder).replace("/", "."))

    def ensure_folder(self, user: str, folder: str = "INBOX") -> Path:
        """Create the folder's Maildir on disk (owned by the mail uid)."""
        root = self.maildir(user)
        fdir = self.folder_dir(user, folder)
        for d in (root.parent, root, fdir, fdir / "cur", fdir / "new", fdir / "tmp"):
            if not d.exists():
                d.mkdir(mode=0o700)
                self._chown(d)
        if fdir != root and not (fdir / "maildirfolder").exists():
            (fdir / "maildirfolder").touch()
            self._chown(fdir / "maildirfolder")
        return fdir

    def deliver(
        self,
        user: str,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: str = "",
        internaldate: float | None = None,
    ) -> Path:
        """Drop ``raw`` unchanged into the folder's Maildir and return the file.

        Without ``flags`` the file goes to ``new/`` (\\Recent, unseen); with
        Maildir flag letters (e.g. ``"S"`` = \\Seen, ``"FS"``) to ``cur/`` as
        ``<name>:2,<flags>``.  ``internaldate`` (epoch seconds) sets the
        mtime, which Dovecot reports as INTERNALDATE.  The file is written to
        ``tmp/`` and renamed, and owned by the mail uid.
        """
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError("raw must be bytes")
        fdir = self.ensure_folder(user, folder)
        now = time.time()
        base = (
            f"{int(now)}.M{int((now % 1) * 1e6)}P{os.getpid()}"
            f"Q{next(_counter)}R{uuid.uuid4().hex[:8]}.vmailkit-test"
        )
        tmp = fdir / "tmp" / base
        with open(tmp, "xb") as fh:
            fh.write(bytes(raw))
        os.chmod(tmp, 0o600)
        self._chown(tmp)
        if internaldate is not None:
            os.utime(tmp, (internaldate, internaldate))
        if flags:
            dest = fdir / "cur" / f"{base}:2,{''.join(sorted(set(flags)))}"
        else:
            dest = fdir / "new" / base
        os.rename(tmp, dest)
        return dest

    def imap(self, user: str, password: str | None = None) -> imaplib.IMAP4:
        """A logged-in plain-text imaplib client (caller must logout())."""
        c = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        c.login(user, password if password is not None else self._users[user])
        return c

    def append(
        self,
        user: str,
        password: str | None,
        raw: bytes,
        folder: str = "INBOX",
        *,
        flags: str | None = None,
    ) -> int | None:
        """IMAP APPEND (creating ``folder`` if needed); returns the new UID.

        Note: imaplib turns every line ending into CRLF before sending, so
        the stored message is the CRLF-normalised ``raw``.
        ``password=None`` uses the password given to ``add_user``.
        """
        mbox = _imap_quote(imap_utf7_encode(folder))
        c = self.imap(user, password)
        try:
            if folder.upper() != "INBOX":
                c.create(mbox)  # NO [ALREADYEXISTS] is fine
            typ, data = c.append(mbox, flags, None, bytes(raw))
            if typ != "OK":
                raise DovecotError(f"APPEND failed: {data!r}")
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(m.group(1)) if m else None
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """UIDVALIDITY of ``folder`` via IMAP STATUS."""
        c = self.imap(user)
        try:
            typ, data = c.status(_imap_quote(imap_utf7_encode(folder)), "(UIDVALIDITY)")
            if typ != "OK":
                raise DovecotError(f"STATUS failed: {data!r}")
            return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))
        finally:
            with contextlib.suppress(Exception):
                c.logout()

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Make Dovecot assign a new UIDVALIDITY, keeping the messages.

        Deletes the folder's ``dovecot-uidlist`` and ``dovecot.index*``
        files, like a server whose index was rebuilt; the messages get new
        UIDs 1..n under a new UIDVALIDITY (Dovecot takes it from
        ``Maildir/dovecot-uidvalidity*``, strictly increasing).  Works for
        INBOX.  Log out IMAP sessions of the user before calling this.
        Returns the new UIDVALIDITY (checked to differ from the old one).
        """
        old = self.uidvalidity(user, folder)
        fdir = self.folder_dir(user, folder)
        for f in list(fdir.glob("dovecot-uidlist*")) + list(fdir.glob("dovecot.index*")):
            f.unlink()
        new = self.uidvalidity(user, folder)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {user}/{folder} did not change ({old})")
        return new

    def delete_folder_and_recreate(self, user: str, folder: str) -> int:
        """IMAP DELETE + CREATE of a non-INBOX folder (its messages are lost).

        Returns the new UIDVALIDITY (checked to differ from the old one).
        For INBOX, which IMAP cannot delete, use ``reset_uidvalidity``.
        """
        if folder.upper() == "INBOX":
            raise ValueError("INBOX cannot be deleted; use reset_uidvalidity()")
        mbox = _imap_quote(imap_utf7_encode(folder))
        old = self.uidvalidity(user, folder)
        c = self.imap(user)
        try:
            for cmd in (c.delete, c.create):
                typ, data = cmd(mbox)
                if typ != "OK":
                    raise DovecotError(f"{cmd.__name__.upper()} {folder} failed: {data!r}")
        finally:
            with contextlib.suppress(Exception):
                c.logout()
        new = self.uidvalidity(user, folder)
        if new == old:
            raise DovecotError(f"UIDVALIDITY of {user}/{folder} did not change ({old})")
        return new

    def _chown(self, path: Path) -> None:
        if self.is_root:
            os.chown(path, self.mail_uid, self.mail_gid)


def _quote(p: Path | str) -> str:
    s = str(p)
    if any(c in s for c in ' "#{}\\'):
        raise DovecotError(f"path {s!r} contains characters unsafe for dovecot.conf")
    return s


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _existing_user(name: str) -> str:
    try:
        return pwd.getpwnam(name).pw_name
    except KeyError:
        return "nobody"


def _existing_group(name: str) -> str:
    try:
        return grp.getgrnam(name).gr_name
    except KeyError:
        return grp.getgrgid(_nogroup_gid(65534)).gr_name


def _nogroup_gid(default: int) -> int:
    for g in ("nogroup", "nobody"):
        with contextlib.suppress(KeyError):
            return grp.getgrnam(g).gr_gid
    return default
