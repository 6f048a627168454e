"""The embedded demo mail server: IMAP (pymap, in-memory) and POP3 (twisted.mail.pop3) on 127.0.0.1.

Both run on one asyncio event loop (Twisted's asyncio reactor) in their own process
(``python -m vmailkit.demo serve``, serving :func:`vmailkit.demo.content.generate`'s mailboxes), so
the demo, a test or JupyterLab starts and stops it like any server::

    env = {**os.environ, **demo_passwords(content)}            # VMAILKIT_DEMO_PW_* for the child
    with DemoServer(state_file="demo/server.json", env=env, imap_port=0, pop3_port=0) as srv:
        print(srv.imap_port, srv.pop3_port)                     # 0: free ports were picked

It is a *local demo*: plain text on the loopback interface only, no TLS, the accounts use security
``plain``. Passwords come from the environment of the process that starts it and are never written.

Pitfalls handled here:

* pymap's in-memory ("dict") backend picks a random UIDVALIDITY for every mailbox on each start; it
  is pinned (:data:`DEMO_UIDVALIDITY`) so that a restarted server is the same mailbox, not a reset.
  Messages are appended in a fixed order, so UIDs are stable too (pymap's first UID is 101).
* pymap's Maildir backend slows down badly above a few hundred messages: the dict backend is used.
* Twisted's POP3 sends through a producer; without ``TCP_NODELAY`` every ``RETR`` waits ~45 ms for
  the client's delayed ACK. The protocol sets it on its transport.
* Twisted's POP3 expects ``\\n`` line ends in the files it serves and turns them into ``\\r\\n``;
  messages are kept as bytes (never text) with ``\\n`` ends, and dot-stuffing of lines starting
  with ``.`` is done correctly across the 16 KB chunks Twisted sends.
* The greeting of both servers would look the host's FQDN up in DNS; a fixed name is used.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HOST = "127.0.0.1"
#: The UIDVALIDITY of every demo IMAP folder (pinned: see the module docstring).
DEMO_UIDVALIDITY = 1_762_000_001
#: The first UID pymap's dict backend gives (it starts counting at 100).
FIRST_UID = 101
GREETING_NAME = "vmailkit-demo.localhost"


@dataclass(frozen=True)
class ServedMailbox:
    """One mailbox the demo server serves: a login, its password and messages (CRLF bytes)."""

    login: str
    password: str
    protocol: str                                   # "imap" or "pop3"
    messages: Sequence[tuple[bytes, datetime]] = field(default_factory=tuple)


def pop3_uidl(raw: bytes) -> str:
    """The UIDL the demo POP3 server gives a message: stable across restarts (a content hash)."""
    return hashlib.sha1(raw).hexdigest()[:20]


# -- IMAP: pymap ------------------------------------------------------------------------------
async def start_imap(stack: AsyncExitStack, mailboxes: Iterable[ServedMailbox], host: str, port: int,
                     uidvalidity: int = DEMO_UIDVALIDITY) -> int:
    """Start pymap's dict backend in this event loop, seeded with ``mailboxes``; return the port.

    ``port`` must not be 0 (pick one with :func:`free_port`).
    """
    from argparse import Namespace

    from pymap.backend.dict import Config, DictBackend, Identity, Login
    from pymap.imap import IMAPService
    from pymap.parsing.message import AppendMessage
    from pymap.user import Passwords, UserMetadata

    args = Namespace(debug=False, host=host, port=port, cert=None, key=None, tls=False, passlib_cfg=None,
                     proxy_protocol=None, inherited_sockets=None, demo_data=False, demo_user="",
                     demo_password="")
    config = Config.from_args(args, invalid_user_sleep=0.05, reject_dnsbl=False)
    config.apply_context()
    login = Login(config)
    backend = DictBackend(login, config)
    passwords = Passwords(config)
    for mb in mailboxes:
        identity = Identity(mb.login, login, None, frozenset())
        await identity.set(UserMetadata(config, mb.login, password=await passwords.hash_password(mb.password)))
        async with identity.new_session() as session:
            inbox = await session.mailbox_set.get_mailbox("INBOX")
            if not hasattr(inbox, "_uid_validity"):  # pragma: no cover - guarded by the version pin
                raise DemoServerError("this pymap version keeps UIDVALIDITY elsewhere; install pymap>=0.36,<0.37")
            inbox._uid_validity = uidvalidity  # pinned: pymap would pick a random one on every start
            for raw, when in mb.messages:
                await inbox.append(AppendMessage(raw, when, frozenset()), recent=False)
    service = IMAPService(backend, config)
    await service.start(stack)
    return port


# -- POP3: twisted.mail.pop3 ------------------------------------------------------------------
def start_pop3(mailboxes: Iterable[ServedMailbox], host: str, port: int):  # type: ignore[no-untyped-def]
    """Listen for POP3 on the running Twisted reactor; return the listening port object."""
    mailboxes = list(mailboxes)
    from twisted.cred import checkers, portal
    from twisted.internet import protocol, reactor
    from twisted.mail import pop3
    from zope.interface import implementer

    @implementer(pop3.IMailbox)
    class Box:
        """A read-only mailbox: messages kept as bytes with LF ends (what Twisted expects)."""

        def __init__(self, messages: Sequence[bytes]) -> None:
            self.lf = [m.replace(b"\r\n", b"\n") for m in messages]
            self.sizes = [len(m) for m in messages]          # octets as sent (CRLF)
            self.uidls = [pop3_uidl(m).encode() for m in messages]

        def listMessages(self, i=None):  # noqa: N802 - Twisted's interface
            return list(self.sizes) if i is None else self.sizes[self._check(i)]

        def getMessage(self, i):  # noqa: N802
            return io.BytesIO(self.lf[self._check(i)])   # binary, never text

        def getUidl(self, i):  # noqa: N802
            return self.uidls[self._check(i)]

        def deleteMessage(self, i):  # noqa: N802 - the demo server is read-only
            raise ValueError("the demo mailbox is read-only")

        def undeleteMessages(self):  # noqa: N802
            pass

        def sync(self):
            pass

        def _check(self, i: int) -> int:
            if not 0 <= i < len(self.lf):
                raise ValueError(i)
            return i

    boxes = {mb.login.encode(): Box([raw for raw, _ in mb.messages]) for mb in mailboxes}

    @implementer(portal.IRealm)
    class Realm:
        def requestAvatar(self, avatar_id, mind, *interfaces):  # noqa: N802
            if pop3.IMailbox not in interfaces:
                raise NotImplementedError()
            return pop3.IMailbox, boxes[avatar_id], lambda: None

    checker = checkers.InMemoryUsernamePasswordDatabaseDontUse()
    for mb in mailboxes:
        checker.addUser(mb.login.encode(), mb.password.encode())
    the_portal = portal.Portal(Realm(), [checker])
    protocol_class = pop3_protocol()

    class Factory(protocol.ServerFactory):
        noisy = False

        def buildProtocol(self, addr):  # noqa: N802
            p = protocol_class()
            p.portal = the_portal
            p.factory = self
            return p

    return reactor.listenTCP(port, Factory(), interface=host)


def pop3_protocol():  # type: ignore[no-untyped-def]
    """Twisted's POP3 server protocol with the demo's fixes (TCP_NODELAY, dot-stuffing, no DNS)."""
    from twisted.mail import pop3

    counter = iter(range(1, 1 << 62))

    class DemoPOP3(pop3.POP3):
        timeOut = 120
        _prev_lf = True

        def connectionMade(self) -> None:  # noqa: N802
            self.transport.setTcpNoDelay(True)   # else ~45 ms per RETR (Nagle + delayed ACK)
            super().connectionMade()

        def generateMagic(self) -> bytes:  # noqa: N802 - no DNS lookup for the APOP banner
            return f"<{os.getpid()}.{next(counter)}@{GREETING_NAME}>".encode()

        def successResponse(self, message=""):  # noqa: N802 - a message follows each +OK of RETR/TOP
            self._prev_lf = True
            super().successResponse(message)

        def transformChunk(self, chunk: bytes) -> bytes:  # noqa: N802
            """LF to CRLF and dot-stuffing, also for a line that starts a chunk (Twisted's own
            version misses a ``.`` right after a chunk boundary, and on the first line)."""
            out = chunk.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
            if self._prev_lf and out.startswith(b"."):
                out = b"." + out
            if chunk:
                self._prev_lf = chunk.endswith(b"\n")
            return out

    return DemoPOP3


# -- the server process -----------------------------------------------------------------------
def serve_forever(mailboxes: Sequence[ServedMailbox], *, host: str = HOST, imap_port: int = 0, pop3_port: int = 0,
                  state_file: str | os.PathLike[str] | None = None, parent_pid: int | None = None) -> None:
    """Run IMAP and POP3 until SIGTERM/SIGINT, or until process ``parent_pid`` is gone.

    Writes ``state_file`` (JSON: pid, host, ports) once both listen, and removes it on exit.
    """
    os.environ.setdefault("FQDN", GREETING_NAME)   # pymap's greeting would look the FQDN up in DNS
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    stack = AsyncExitStack()
    imap_boxes = [m for m in mailboxes if m.protocol == "imap"]
    pop_boxes = [m for m in mailboxes if m.protocol == "pop3"]
    if not imap_port:
        imap_port = free_port(host)
    imap_port = loop.run_until_complete(start_imap(stack, imap_boxes, host, imap_port))
    listening = start_pop3(pop_boxes, host, pop3_port)
    pop3_port = listening.getHost().port
    state = Path(state_file) if state_file else None
    if state is not None:
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "host": host, "imap_port": imap_port,
                                   "pop3_port": pop3_port}))
        tmp.replace(state)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, reactor.stop)

    def watch_parent() -> None:  # never outlive the demo, the lab or the test that started us
        if parent_pid and os.getppid() != parent_pid:
            reactor.stop()
        else:
            loop.call_later(1.0, watch_parent)

    if parent_pid:
        loop.call_later(1.0, watch_parent)
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        if state is not None:
            state.unlink(missing_ok=True)
        try:
            loop.run_until_complete(stack.aclose())
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class DemoServerError(RuntimeError):
    """The demo mail server could not be started."""


class DemoServer:
    """The demo mail server in a child process (``python -m vmailkit.demo serve``).

    ``env`` carries the passwords (``VMAILKIT_DEMO_PW_*``) to the child; nothing is written to disk
    but ``state_file`` (pid and ports).
    """

    def __init__(self, *, state_file: str | os.PathLike[str], env: Mapping[str, str], imap_port: int = 0,
                 pop3_port: int = 0, host: str = HOST, log_file: str | os.PathLike[str] | None = None) -> None:
        self.state_file = Path(state_file)
        self.env = dict(env)
        self.host = host
        self.imap_port = imap_port
        self.pop3_port = pop3_port
        self.log_file = Path(log_file) if log_file else self.state_file.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "DemoServer":
        for port, what in ((self.imap_port, "IMAP"), (self.pop3_port, "POP3")):
            if port and port_in_use(port, self.host):
                raise DemoServerError(
                    f"port {port} ({what}) on {self.host} is already in use: is another demo server running "
                    "(make lab)? Stop it first, or choose other ports (--imap-port/--pop3-port)")
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        if not self.imap_port:
            self.imap_port = free_port(self.host)
        cmd = [sys.executable, "-m", "vmailkit.demo", "serve", "--state-file", str(self.state_file),
               "--imap-port", str(self.imap_port), "--pop3-port", str(self.pop3_port), "--host", self.host,
               "--parent-pid", str(os.getpid())]
        log = open(self.log_file, "wb")  # noqa: SIM115 - the child keeps it
        try:
            # its own session: a Ctrl-C in the terminal reaches the demo or JupyterLab, which then stop it
            self.proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self.state_file.exists():
            if self.proc.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise DemoServerError(f"the demo mail server stopped while starting:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise DemoServerError(f"the demo mail server did not start within {timeout:.0f} s")
            time.sleep(0.05)
        state = json.loads(self.state_file.read_text())
        self.imap_port, self.pop3_port = int(state["imap_port"]), int(state["pop3_port"])
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL after ``timeout``)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.state_file.unlink(missing_ok=True)

    def __enter__(self) -> "DemoServer":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def served_mailboxes(content, env: Mapping[str, str]) -> list[ServedMailbox]:  # type: ignore[no-untyped-def]
    """The demo content's mailboxes, with the passwords found in ``env`` (``VMAILKIT_DEMO_PW_*``)."""
    boxes = []
    for acc in content.accounts:
        password = env.get(acc.secret_env)
        if not password:
            raise DemoServerError(f"{acc.secret_env} is not set: start the demo server through "
                                  "`python -m vmailkit.demo` (it sets the passwords)")
        boxes.append(ServedMailbox(acc.address, password, acc.protocol, content.mailbox(acc.name)))
    return boxes
