"""The embedded demo: a tour operator's mail on a built-in mail server, imported by the batch notebook.

``make demo`` (``python -m vmailkit.demo``) does, in ``demo/``:

1. generates the demo content (:mod:`vmailkit.demo.content`: ~300 mails, CRM tables, ground truth);
2. creates or updates ``demo/vmail.duckdb``: users ``anna`` and ``ben``, the general IMAP account
   ``office``, the personal accounts ``anna-mail`` (IMAP) and ``ben-mail`` (POP3), subscriptions, and
   loads the CRM data from ``demo/crm/*.csv``;
3. starts the embedded mail server (:mod:`vmailkit.demo.server`) on 127.0.0.1;
4. runs ``notebooks/batch_import.ipynb`` through papermill for every user;
5. prints the summary (per account: listed, downloaded, links by rule) and where the results are,
   then stops the server.

Passwords are random for each run, set in the environment of the server and the notebook's
kernel only (the accounts' secrets are ``env:VMAILKIT_DEMO_PW_*`` references): nothing secret is
written to disk. Running it again reports nothing new and duplicates nothing.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .content import COMPANY, DemoContent, generate
from .server import HOST, DemoServer, DemoServerError

if TYPE_CHECKING:
    from ..batch import BatchReport

DEFAULT_DIR = "demo"
DEFAULT_IMAP_PORT = int(os.environ.get("VMAILKIT_DEMO_IMAP_PORT") or 14143)
DEFAULT_POP3_PORT = int(os.environ.get("VMAILKIT_DEMO_POP3_PORT") or 14110)

__all__ = ["DEFAULT_DIR", "DEFAULT_IMAP_PORT", "DEFAULT_POP3_PORT", "DemoError", "DemoPaths", "DemoResult",
           "DemoServer", "demo_passwords", "generate", "run_demo", "setup_demo"]


class DemoError(RuntimeError):
    """The demo could not run (server not starting, notebook failing); the message says why."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps its files (all below one directory, ``demo/`` by default)."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "vmail.duckdb"

    @property
    def crm(self) -> Path:
        return self.root / "crm"

    @property
    def notebook_output(self) -> Path:
        return self.root / "batch_import.out.ipynb"

    @property
    def report(self) -> Path:
        return self.root / "last_run.json"

    @property
    def server_state(self) -> Path:
        return self.root / "server.json"

    @property
    def server_log(self) -> Path:
        return self.root / "server.log"


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the batch report, the ground truth and the printed text."""

    paths: DemoPaths
    content: DemoContent
    report: "BatchReport"
    text: str
    seconds: float


def demo_passwords(content: DemoContent, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The accounts' passwords as environment variables (``VMAILKIT_DEMO_PW_<ACCOUNT>``): the value
    already in ``env`` (default: this process's environment) when set, else a fresh random one."""
    env = os.environ if env is None else env
    return {a.secret_env: env.get(a.secret_env) or secrets.token_urlsafe(18) for a in content.accounts}


def write_crm_csv(content: DemoContent, directory: Path) -> list[Path]:
    """Write the demo CRM as ``<table>.csv`` files (the format a CRM export has)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table, frame in content.crm.items():
        path = directory / f"{table}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")
        written.append(path)
    return written


def setup_demo(paths: DemoPaths, content: DemoContent, *, host: str = HOST, imap_port: int, pop3_port: int,
               out: Callable[[str], None] = print) -> None:
    """Create or update the demo database: users, accounts (pointing at ``host``/ports), subscriptions
    and the CRM data. Idempotent."""
    from ..accounts import make_account
    from ..errors import NotFoundError
    from ..store import Store

    store = Store(paths.db)
    existing_users = set(store.users()["name"])
    for user in content.users:
        if user.name not in existing_users:
            store.add_user(user.name, user.email)
    for acc in content.accounts:
        wanted = make_account(
            acc.name, kind=acc.kind, protocol=acc.protocol, host=host,
            port=imap_port if acc.protocol == "imap" else pop3_port, security="plain", address=acc.address,
            login=acc.address, owner=acc.owner, secret=f"env:{acc.secret_env}",
        )
        try:
            current = store.get_account(acc.name)
        except NotFoundError:
            store.add_account(wanted)
            continue
        if (current.host, current.port, current.security, current.secret_ref, current.protocol) != (
                wanted.host, wanted.port, wanted.security, wanted.secret_ref, wanted.protocol):
            store.update_account(wanted)
    for user, account in content.subscriptions:
        store.subscribe(user, account)
    write_crm_csv(content, paths.crm)
    try:
        from ..crm import load_crm
    except ImportError:
        out("(CRM loading is not available in this version: mail is imported without automatic links)")
        return
    load_crm(store, paths.crm)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_demo(
    directory: str | os.PathLike[str] = DEFAULT_DIR,
    *,
    imap_port: int = DEFAULT_IMAP_PORT,
    pop3_port: int = DEFAULT_POP3_PORT,
    out: Callable[[str], None] = print,
    env: Mapping[str, str] | None = None,
) -> DemoResult:
    """Run the whole demo (see the module docstring) and return what it did.

    Raises :class:`DemoError` when the server does not start or the notebook fails.
    """
    from ..batch import BatchReport, run_notebook

    started = time.monotonic()
    paths = DemoPaths(Path(directory).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    content = generate()
    base_env = dict(os.environ if env is None else env)
    child_env = {**base_env, **demo_passwords(content, base_env)}
    per_account = content.mails_per_account()
    crm_sizes = ", ".join(f"{len(content.crm[t])} {t}" for t in ("persons", "customers", "suppliers", "reservations"))
    out(f"vmailkit demo: {COMPANY}, a tour operator. {len(content.mails)} mails over seven weeks in "
        f"{len(per_account)} mailboxes ({', '.join(f'{a} {n}' for a, n in per_account.items())}); "
        f"CRM: {crm_sizes}.")
    server = DemoServer(state_file=paths.server_state, log_file=paths.server_log, env=child_env,
                        imap_port=imap_port, pop3_port=pop3_port)
    try:
        server.start()
    except DemoServerError as exc:
        raise DemoError(str(exc)) from None
    try:
        out(f"Demo mail server on {HOST}: IMAP port {server.imap_port}, POP3 port {server.pop3_port} "
            "(local demo, no TLS)")
        # the accounts point at the ports in use (free ones were picked for ports 0)
        setup_demo(paths, content, imap_port=server.imap_port, pop3_port=server.pop3_port, out=out)
        out("Running notebooks/batch_import.ipynb through papermill for every user ...")
        paths.report.unlink(missing_ok=True)
        t0 = time.monotonic()
        try:
            proc = run_notebook(paths.notebook_output, {"db_path": str(paths.db), "user": None,
                                                         "report_path": str(paths.report)}, env=child_env)
        except subprocess.TimeoutExpired:
            raise DemoError("the batch notebook did not finish within 10 minutes") from None
        took = time.monotonic() - t0
    finally:
        server.stop()
    if proc.returncode != 0 or not paths.report.exists():
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-40:])
        raise DemoError(f"the batch notebook failed (papermill exit {proc.returncode}); "
                        f"see {_rel(paths.notebook_output)}\n{tail}")
    report = BatchReport.load(paths.report)
    lines = [f"... done in {took:.1f} s.", "", report.to_text(), ""]
    if report.total("listed") == 0:
        lines += ["Nothing new: every message on the demo server was imported before (nothing was duplicated).", ""]
    lines += [
        "Results:",
        f"  database       {_rel(paths.db)}   (tables: docs/schema.md)",
        f"  notebook run   {_rel(paths.notebook_output)}",
        f"  CRM data       {_rel(paths.crm)}/*.csv",
        "  look around    VMAILKIT_DB=" + _rel(paths.db) + " .venv/bin/vmailkit emails --search 'rooming list'",
        "  interactively  make lab   (JupyterLab on notebooks/ with the demo mail server)",
        "The demo mail server is stopped.",
    ]
    text = "\n".join(lines)
    out(text)
    return DemoResult(paths=paths, content=content, report=report, text=text, seconds=time.monotonic() - started)

