"""``make lab``: the demo mail server in the background and JupyterLab on ``notebooks/``.

The notebooks find the demo database through ``VMAILKIT_DB`` and the accounts' passwords through
the ``VMAILKIT_DEMO_PW_*`` variables, both set in JupyterLab's environment (and so in every
kernel's) only. When JupyterLab stops (Ctrl-C twice, or File > Shut Down), the mail server stops.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import DemoPaths, demo_passwords, setup_demo
from .content import generate
from .server import HOST, DemoServer

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _start(directory: str | os.PathLike[str], imap_port: int, pop3_port: int) -> tuple[DemoPaths, DemoServer, dict[str, str]]:
    paths = DemoPaths(Path(directory).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    content = generate()
    env = {**os.environ, **demo_passwords(content)}
    server = DemoServer(state_file=paths.server_state, log_file=paths.server_log, env=env,
                        imap_port=imap_port, pop3_port=pop3_port).start()
    try:
        setup_demo(paths, content, imap_port=server.imap_port, pop3_port=server.pop3_port)
    except BaseException:
        server.stop()
        raise
    print(f"Demo mail server on {HOST}: IMAP port {server.imap_port} (office, anna-mail), "
          f"POP3 port {server.pop3_port} (ben-mail); database {paths.db}")
    return paths, server, env


def run_lab(directory: str | os.PathLike[str], *, imap_port: int, pop3_port: int, jupyter_port: int | None = None,
            open_browser: bool = True) -> int:
    """Start the demo server, then JupyterLab on ``notebooks/``; stop the server when the lab ends."""
    from ..batch import kernel_env

    paths, server, env = _start(directory, imap_port, pop3_port)
    env = kernel_env(env)
    env["VMAILKIT_DB"] = str(paths.db)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}"]
    if jupyter_port:
        cmd.append(f"--ServerApp.port={jupyter_port}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")   # containers and CI machines run as root
    print("Starting JupyterLab on notebooks/ (the notebooks use the demo database; Ctrl-C twice stops both) ...")
    lab = subprocess.Popen(cmd, env=env)

    def forward(signum: int, _frame: object) -> None:   # SIGTERM to us: stop the lab, then the server
        if lab.poll() is None:
            lab.send_signal(signum)

    old_term = signal.signal(signal.SIGTERM, forward)
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)   # the terminal's Ctrl-C goes to JupyterLab itself
    try:
        return lab.wait()
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if lab.poll() is None:
            lab.terminate()
            try:
                lab.wait(10)
            except subprocess.TimeoutExpired:
                lab.kill()
        server.stop()
        print("The demo mail server is stopped.")


def run_server(directory: str | os.PathLike[str], *, imap_port: int, pop3_port: int) -> int:
    """Only the demo mail server, in the foreground, until Ctrl-C.

    To log in from other programs (``vmailkit check anna`` with ``VMAILKIT_DB=demo/vmail.duckdb``),
    export ``VMAILKIT_DEMO_PW_OFFICE``, ``..._ANNA_MAIL`` and ``..._BEN_MAIL`` first, in both shells:
    the server uses them instead of random passwords.
    """
    content = generate()
    preset = all(os.environ.get(a.secret_env) for a in content.accounts)
    paths, server, env = _start(directory, imap_port, pop3_port)
    for acc in content.accounts:
        print(f"  {acc.name:10} {acc.protocol:5} login {acc.address:34} password: ${acc.secret_env}")
    if not preset:
        print("  (the passwords are random for this run: export the variables above before starting the server\n"
              "   to use other programs, e.g. `vmailkit check anna`, against it)")
    print("Ctrl-C stops the server.")
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print("The demo mail server is stopped.")
    return 0
